"""ocf:messaging:innd against a real INN 2.7 (Debian package), issue #5 "Tests".

Every test gets its own INN instance (own inn.conf, spool, history, loopback
port) from the make_inn fixture, drives it through the BUILD-TREE agent, and
leaves nothing behind: the fixture SIGKILLs the instance's processes by pid
(pid file, working directory, INNCONF in their environment) and deletes its
directory, even when an assertion fails.  Nothing here skips: without INN the
tests fail loudly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
from pathlib import Path
from typing import Callable, Iterator

import pytest

import procs
from agent_checks import expect_meta_data, expect_ocf_tester_passes, expect_stopped_cleanly
from inn_instance import INN_BIN, PROBE_GROUP, InnInstance, nntp_exchange
from ocf import OCF, AgentResource, Result, agent_path, expect, expect_reason, snapshot, wait_for
from postfix_instance import free_port, make_base_dir, rmtree, self_signed_cert

START_MS = 30000
STOP_MS = 30000
MONITOR_MS = 10000
# Short enough to keep the hang tests fast, long enough for a healthy check.
HANG_MONITOR_MS = 6000


@pytest.fixture
def innd_agent(build_tree: Path) -> Path:
    """The build-tree ocf:messaging:innd agent, after checking that INN is installed."""
    problems = []
    agent = agent_path("innd")
    if not os.access(agent, os.X_OK):
        problems.append(f"agent {agent} missing or not executable")
    for tool in ("innd", "innconfval", "ctlinnd", "rc.news", "makehistory", "makedbz"):
        if not os.access(INN_BIN / tool, os.X_OK):
            problems.append(f"{INN_BIN / tool} missing (run scripts/install-deps: inn2)")
    if problems:
        pytest.fail("INN prerequisites missing:\n  " + "\n  ".join(problems), pytrace=False)
    return agent


MakeInn = Callable[..., InnInstance]


@pytest.fixture
def make_inn(innd_agent: Path) -> Iterator[MakeInn]:
    """Factory: make_inn(start=False) -> a fresh InnInstance on a free loopback port.

    Teardown, even after a failure: SIGKILL every process of the instance by
    pid, then delete its directory."""
    stack = contextlib.ExitStack()

    def make(start: bool = False) -> InnInstance:
        base = make_base_dir("msg-itest-inn-")
        stack.callback(rmtree, base)
        inn = InnInstance(base, free_port())
        stack.callback(_kill_inn, inn)
        inn.create()
        if start:
            inn.start()
        return inn

    with stack:
        yield make


def _kill_inn(inn: InnInstance) -> None:
    survivors = inn.kill_all()
    if survivors:
        print(f"WARNING: processes of {inn.base_dir} survived SIGKILL: {survivors}")


@pytest.fixture
def inn(make_inn: MakeInn) -> InnInstance:
    """A fresh, stopped INN instance (config, active with msg.probe, empty history)."""
    return make_inn()


def resource(agent: Path, inn: InnInstance, **params: object) -> AgentResource:
    return AgentResource(agent, {"inn_conf": inn.inn_conf, "probe_group": PROBE_GROUP, **params},
                         start_ms=START_MS, stop_ms=STOP_MS, monitor_ms=MONITOR_MS)


@pytest.fixture
def rsc(innd_agent: Path, inn: InnInstance) -> AgentResource:
    return resource(innd_agent, inn)


def started(r: AgentResource, inn: InnInstance) -> int:
    """Start through the agent, assert success and an innd that greets; return its pid."""
    res = r.start()
    expect(res, OCF.SUCCESS)
    pid = inn.innd_pid()
    assert pid, f"start returned 0 but no live innd in {inn.pid_file}\n{res.describe()}"
    assert inn.greeting().startswith("200"), f"start returned 0 but innd does not greet\n{res.describe()}"
    return pid


def stopped_cleanly(r: AgentResource, inn: InnInstance, timeout_ms: int = STOP_MS) -> Result:
    """Stop through the agent; assert rc 0 inside the stop timeout and no process of the instance left."""
    return expect_stopped_cleanly(r, inn.processes, timeout_ms, settle_s=3)


# ---------------------------------------------------------------------------
# meta-data and ocf-tester


def test_meta_data_advertises_spec_parameters_and_depths(innd_agent: Path) -> None:
    expect_meta_data(innd_agent, ("inn_conf", "probe_host", "port", "probe_group", "credentials_file", "probe_tls",
                                  "probe_timeout", "cert_warn_days"))


def test_ocf_tester_passes(innd_agent: Path, inn: InnInstance) -> None:
    expect_ocf_tester_passes(innd_agent, {"inn_conf": inn.inn_conf, "probe_group": PROBE_GROUP}, inn.processes,
                             timeout_s=240)


# ---------------------------------------------------------------------------
# lifecycle at every depth


@pytest.mark.parametrize("level", [0, 10, 20])
def test_start_monitor_stop_at_level(rsc: AgentResource, inn: InnInstance, level: int) -> None:
    expect(rsc.probe(), OCF.NOT_RUNNING)
    expect(rsc.monitor(level), OCF.NOT_RUNNING)
    pid = started(rsc, inn)
    expect(rsc.start(), OCF.SUCCESS)  # already running: idempotent
    assert inn.innd_pid() == pid
    res = rsc.monitor(level)
    expect(res, OCF.SUCCESS)
    expect(rsc.probe(), OCF.SUCCESS)
    stopped_cleanly(rsc, inn)
    expect(rsc.monitor(level), OCF.NOT_RUNNING)
    expect(rsc.stop(), OCF.SUCCESS)  # already stopped


def test_level_20_round_trip_leaves_a_readable_probe_article(rsc: AgentResource, inn: InnInstance) -> None:
    started(rsc, inn)
    before = nntp_exchange(inn.port, ["MODE READER", f"GROUP {PROBE_GROUP}"])[2]
    expect(rsc.monitor(20), OCF.SUCCESS)
    after = nntp_exchange(inn.port, ["MODE READER", f"GROUP {PROBE_GROUP}"])[2]
    # "211 count low high group": one article more in the probe group
    assert int(after.split()[1]) == int(before.split()[1]) + 1, f"{before} -> {after}"


def test_probe_without_inn_conf_is_not_running(rsc: AgentResource, inn: InnInstance) -> None:
    missing = inn.base_dir / "etc" / "absent.conf"
    res = rsc.probe(inn_conf=missing)
    expect(res, OCF.NOT_RUNNING)
    assert res.exit_reason is None, res.describe()
    res = rsc.monitor(0, inn_conf=missing)
    expect(res, OCF.ERR_INSTALLED)
    expect_reason(res, f"inn.conf {missing} is missing")


# ---------------------------------------------------------------------------
# faults


def test_articles_accepted_before_kill_9_are_readable_after_start(rsc: AgentResource, inn: InnInstance) -> None:
    started(rsc, inn)
    msgids = [inn.post(f"before kill {i}") for i in range(5)]
    pid = inn.innd_pid()
    os.kill(pid, signal.SIGKILL)
    procs.wait_gone([pid], 5)
    res = rsc.monitor(0)
    expect(res, OCF.NOT_RUNNING)
    res = rsc.start()
    expect(res, OCF.SUCCESS)
    assert "unclean shutdown" in res.stderr, res.describe()
    assert "renumbering the active file" in res.stderr, res.describe()
    missing = [m for m in msgids if not inn.has_article(m)]
    assert not missing, f"articles lost across kill -9 and start: {missing}\n{res.describe()}"
    # The server takes new articles after the recovery, too.
    assert inn.has_article(inn.post("after restart"))
    expect(rsc.monitor(20), OCF.SUCCESS)


def test_a_stop_cut_short_after_the_flush_loses_nothing(rsc: AgentResource, inn: InnInstance) -> None:
    # The stop does not wait out the second innd sleeps after its shutdown
    # has closed everything: what it accepted must all be on disk anyway, and
    # the next start must see a clean shutdown, not a crash to recover from.
    started(rsc, inn)
    msgids = [inn.post(f"before stop {i}") for i in range(5)]
    res = stopped_cleanly(rsc, inn)
    assert "its final second of sleep is not waited out" in res.stderr, res.describe()
    assert not inn.pid_file.exists(), f"{inn.pid_file} left behind by the stop"
    res = rsc.start()
    expect(res, OCF.SUCCESS)
    assert "unclean shutdown" not in res.stderr and "history intact" in res.stderr, res.describe()
    missing = [m for m in msgids if not inn.has_article(m)]
    assert not missing, f"articles lost across a stop and start: {missing}\n{res.describe()}"
    expect(rsc.monitor(20), OCF.SUCCESS)


def test_truncated_history_is_rebuilt_by_start(rsc: AgentResource, inn: InnInstance) -> None:
    started(rsc, inn)
    msgids = [inn.post(f"history {i}") for i in range(6)]
    stopped_cleanly(rsc, inn)
    size = inn.history.stat().st_size
    with inn.history.open("r+b") as f:
        f.truncate(size // 2 + 7)  # mid-line
    res = rsc.start()
    expect(res, OCF.SUCCESS)
    assert "history rebuilt from the spool with makehistory and makedbz" in res.stderr, res.describe()
    kept = inn.damaged_histories()
    assert len(kept) == 1 and kept[0].stat().st_size == size // 2 + 7, kept
    # Every stored article is in the rebuilt history: innd finds each by Message-ID.
    missing = [m for m in msgids if not inn.has_article(m)]
    assert not missing, f"articles missing from the rebuilt history: {missing}"
    assert inn.has_article(inn.post("after rebuild"))
    # And the next start finds it intact.
    stopped_cleanly(rsc, inn)
    res = rsc.start()
    expect(res, OCF.SUCCESS)
    assert "history intact" in res.stderr, res.describe()


def test_sigstop_fails_level_10_in_time_and_stop_still_stops(rsc: AgentResource, inn: InnInstance) -> None:
    pid = started(rsc, inn)
    os.kill(pid, signal.SIGSTOP)
    try:
        res = rsc.monitor(10, timeout_ms=HANG_MONITOR_MS)
        expect(res, OCF.ERR_GENERIC)
        expect_reason(res, r"innd \(PID \d+\) is stopped \(SIGSTOP\)")
        assert res.elapsed < HANG_MONITOR_MS / 1000, res.describe()
        res = stopped_cleanly(rsc, inn)
        assert res.elapsed < 10, f"a frozen innd must stop fast\n{res.describe()}"
        # Continued and shut down cleanly, not killed: its history stays intact.
        assert "continuing it for a clean shutdown" in res.stderr and "KILL" not in res.stderr, res.describe()
        assert not inn.pid_file.exists(), "a clean shutdown removes innd.pid"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def test_innd_hung_in_the_kernel_fails_level_10_at_the_probe_deadline(rsc: AgentResource,
                                                                       inn: InnInstance) -> None:
    """A ptrace-stopped innd (state t, like one stuck in the kernel) is not seen in
    /proc as SIGSTOPped: the NNTP dialogue's deadline catches it."""
    pid = started(rsc, inn)
    with procs.Wedge([pid]):
        res = rsc.monitor(10, timeout_ms=HANG_MONITOR_MS, probe_timeout=2)
        expect(res, OCF.ERR_GENERIC)
        expect_reason(res, r"no NNTP greeting within \d+ ms")
        assert res.elapsed < HANG_MONITOR_MS / 1000, res.describe()
        # innd never acts on ctlinnd's shutdown, nor on TERM: KILL ends it in time.
        res = stopped_cleanly(rsc, inn)
        assert "innd did not exit within" in res.stderr and "sending KILL" in res.stderr, res.describe()
    assert not procs.alive(pid)


def test_throttled_server_fails_level_10_with_the_400_reason(rsc: AgentResource, inn: InnInstance) -> None:
    started(rsc, inn)
    r = inn.ctlinnd("throttle", "disk maintenance")
    assert r.returncode == 0, r.stdout + r.stderr
    # innd itself is alive: depth 0 says so, as the init script's status does.
    expect(rsc.monitor(0), OCF.SUCCESS)
    for level in (10, 20):
        res = rsc.monitor(level)
        expect(res, OCF.ERR_GENERIC)
        expect_reason(res, "400 disk maintenance")
    # A start on the running, throttled innd reports the throttle it leaves.
    res = rsc.start()
    expect(res, OCF.SUCCESS)
    assert "but not serving: Server throttled disk maintenance" in res.stderr, res.describe()
    inn.ctlinnd("go", "disk maintenance")
    expect(rsc.monitor(20), OCF.SUCCESS)


def test_paused_server_fails_level_10_with_the_pause_reason(rsc: AgentResource, inn: InnInstance) -> None:
    started(rsc, inn)
    assert inn.ctlinnd("pause", "expire running").returncode == 0
    res = rsc.monitor(10)
    expect(res, OCF.ERR_GENERIC)
    expect_reason(res, "MODE READER rejected: 403 expire running")
    inn.ctlinnd("go", "expire running")
    expect(rsc.monitor(10), OCF.SUCCESS)


def test_unwritable_spool_fails_level_20(rsc: AgentResource, inn: InnInstance) -> None:
    started(rsc, inn)
    overview = inn.spool / "overview"
    mode = overview.stat().st_mode
    overview.chmod(0o555)
    try:
        res = rsc.monitor(20)
        expect(res, OCF.ERR_GENERIC)
        expect_reason(res, f"{overview} is not writable by news")
    finally:
        overview.chmod(stat.S_IMODE(mode))
    expect(rsc.monitor(20), OCF.SUCCESS)


def test_too_little_free_space_fails_level_20(innd_agent: Path, inn: InnInstance) -> None:
    # innwatch's threshold far above what any disk here has free: what
    # innwatch would throttle at, the agent fails at.
    inn.write_inn_conf(innwatchspoolspace="4000000000")
    r = resource(innd_agent, inn)
    started(r, inn)
    res = r.monitor(20)
    expect(res, OCF.ERR_GENERIC)
    expect_reason(res, rf"KB free in {inn.spool} \(innwatchspoolspace 4000000000\): innwatch throttles innd")


def test_starttls_login_round_trip_and_certificate_expiry(innd_agent: Path, inn: InnInstance) -> None:
    """The probe against the real nnrpd: STARTTLS after MODE READER, the certificate
    verified and its expiry judged, AUTHINFO through ckpasswd, then the round trip."""
    cert, key = self_signed_cert(inn.base_dir / "tls", days=10, names=("localhost",), stem="nnrpd")
    inn.enable_tls(cert, key)
    inn.add_reader_login("probe", "pr0be pass")
    creds = inn.base_dir / "probe.credentials"
    creds.write_text("probe\npr0be pass\n")
    creds.chmod(0o600)
    r = resource(innd_agent, inn, probe_tls="starttls", probe_ca_file=cert, credentials_file=creds)
    started(r, inn)
    expect(r.monitor(10), OCF.SUCCESS)
    res = r.monitor(20)
    expect(res, OCF.DEGRADED)
    expect_reason(res, r"TLS certificate CN=localhost expires in (9|10) days")
    expect(r.monitor(20, cert_warn_days=5), OCF.SUCCESS)

    wrong = inn.base_dir / "wrong.credentials"
    wrong.write_text("probe\nnot the password\n")
    wrong.chmod(0o600)
    res = r.monitor(10, credentials_file=wrong)
    expect(res, OCF.ERR_GENERIC)
    expect_reason(res, "AUTHINFO PASS for probe rejected: 481")
    assert "not the password" not in res.stderr

    res = r.monitor(10, probe_ca_file=None)
    expect(res, OCF.ERR_GENERIC)
    expect_reason(res, "self-signed certificate")


def test_stale_pid_file_naming_a_stranger(rsc: AgentResource, inn: InnInstance, sleeper: int) -> None:
    inn.pid_file.write_text(f"{sleeper}\n")
    expect(rsc.probe(), OCF.NOT_RUNNING)
    started(rsc, inn)
    stopped_cleanly(rsc, inn)
    assert procs.alive(sleeper), "the agent signalled a process that merely reused innd's pid"


def test_deleted_pid_file_under_running_innd_is_not_a_clean_stop(rsc: AgentResource, inn: InnInstance) -> None:
    pid = started(rsc, inn)
    inn.pid_file.unlink()
    res = rsc.monitor(0)
    expect(res, OCF.ERR_GENERIC)
    expect_reason(res, rf"processes of this instance still run: PIDs .*{pid}")
    # start stops the orphan before it starts innd afresh.
    new = started(rsc, inn)
    assert new != pid and not procs.alive(pid)
    stopped_cleanly(rsc, inn)


def test_reload_and_reload_agent(rsc: AgentResource, inn: InnInstance) -> None:
    started(rsc, inn)
    res = rsc("reload")
    expect(res, OCF.SUCCESS)
    assert "reloaded" in res.stderr, res.describe()
    expect(rsc("reload-agent", probe_timeout=5), OCF.SUCCESS)
    expect(rsc.monitor(10), OCF.SUCCESS)


# ---------------------------------------------------------------------------
# parameters


@pytest.mark.parametrize("override, reason", [
    ({"inn_conf": "etc/inn.conf"}, "inn_conf 'etc/inn.conf' must be an absolute path"),
    ({"probe_tls": "sometimes"}, "probe_tls 'sometimes' must be one of none, starttls, tls"),
    ({"port": "70000"}, "port '70000' is not a TCP port"),
    ({"probe_timeout": "0"}, "probe_timeout '0' is not a positive number of seconds"),
    ({"probe_group": "two groups"}, "must not contain blanks"),
    ({"credentials_file": "creds"}, "credentials_file 'creds' must be an absolute path"),
    ({"cert_warn_days": "soon"}, "cert_warn_days 'soon' is not a number of days"),
])
def test_bad_parameters_are_err_configured_with_a_reason(rsc: AgentResource, inn: InnInstance,
                                                          override: dict, reason: str) -> None:
    for action in ("validate-all", "start", "monitor"):
        res = rsc(action, **override)
        expect(res, OCF.ERR_CONFIGURED)
        expect_reason(res, reason.replace("(", r"\(").replace(")", r"\)"))
    assert not inn.processes(), "a rejected start started something"


def test_unsafe_credentials_file_is_err_configured(rsc: AgentResource, inn: InnInstance) -> None:
    creds = inn.base_dir / "probe.credentials"
    creds.write_text("probe\nsecret\n")
    creds.chmod(0o644)
    for action in ("validate-all", "start"):
        res = rsc(action, credentials_file=creds)
        expect(res, OCF.ERR_CONFIGURED)
        expect_reason(res, f"credentials_file {creds} has mode 644")
    assert not inn.processes()


def test_broken_inn_conf_is_err_configured_with_inns_message(rsc: AgentResource, inn: InnInstance) -> None:
    with inn.inn_conf.open("a") as f:
        f.write("this line is no parameter\n")
    for action in ("validate-all", "start"):
        res = rsc(action)
        expect(res, OCF.ERR_CONFIGURED)
        expect_reason(res, "parse error")


def test_inn_conf_broken_under_a_running_innd_is_degraded_and_stop_still_stops(rsc: AgentResource,
                                                                              inn: InnInstance) -> None:
    started(rsc, inn)
    with inn.inn_conf.open("a") as f:
        f.write("this line is no parameter\n")
    for level in (0, 10):
        res = rsc.monitor(level)
        expect(res, OCF.DEGRADED)
        expect_reason(res, r"runs with the inn.conf it read at start, but .*parse error")
    stopped_cleanly(rsc, inn)


def test_stop_finds_innd_even_when_inn_bin_dir_points_nowhere(rsc: AgentResource, inn: InnInstance) -> None:
    pid = started(rsc, inn)
    # A running innd is never reported as cleanly stopped, not even by a probe.
    res = rsc.probe(inn_bin_dir="/nonexistent")
    expect(res, OCF.ERR_GENERIC)
    expect_reason(res, rf"innd \(PID {pid}\) runs, but INN is not installed")
    res = rsc.stop(inn_bin_dir="/nonexistent")
    expect(res, OCF.SUCCESS)
    wait_for(lambda: not inn.processes(), 3, f"no process of {inn.base_dir} left after stop")


def test_validate_all_has_no_side_effects(rsc: AgentResource, inn: InnInstance) -> None:
    before = snapshot(inn.base_dir)
    for level in (None, 10):
        expect(rsc("validate-all", check_level=level), OCF.SUCCESS)
    assert snapshot(inn.base_dir) == before
    assert not inn.processes()
