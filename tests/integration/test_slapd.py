"""ocf:messaging:slapd against a real slapd (Debian package), issue #4 "Tests".

Every test gets its own slapd instance (own cn=config or slapd.conf, MDB
database, loopback port and ldapi socket) from the make_slapd fixture, drives
it through the BUILD-TREE agent, and leaves nothing behind: the fixture
SIGKILLs every slapd of the instance by pid (found by exe and command line)
and deletes its directory, even when an assertion fails.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

import procs
from agent_checks import (expect_lifecycle, expect_meta_data, expect_ocf_tester_passes,
                          expect_stopped_cleanly)
from ocf import OCF, AgentResource, Result, agent_path, expect, expect_reason, wait_for
from postfix_instance import free_port
from slapd_instance import (MONITOR_DN, PEOPLE, PROBE_ENTRY, ROOT_DN, SLAPD, SUFFIX, PausableProxy,
                            SlapdInstance, acknowledged_adds, entry_ldif, make_base_dir, rmtree)

START_MS = 20000
STOP_MS = 30000
MONITOR_MS = 10000
# Short enough to keep the hang tests fast, long enough for a healthy check.
HANG_MONITOR_MS = 6000
TOOLS = (SLAPD, "/usr/sbin/slapadd", "/usr/sbin/slaptest", "/usr/sbin/slappasswd", "/usr/bin/ldapsearch",
         "/usr/bin/ldapadd", "/usr/bin/ldapmodify", "/usr/bin/mdb_stat", "/usr/sbin/ocf-tester")


class Slapd(AgentResource):
    """ocf:messaging:slapd bound to one instance, with every depth 20 check on:
    a simple bind as cn=ha-monitor, the probe entry and its write probe."""

    def __init__(self, agent: Path, inst: SlapdInstance, instance: str = "itest", **params: object):
        defaults: dict[str, object] = {
            "config": inst.config,
            "services": inst.services,
            "user": "openldap",
            "group": "openldap",
            "suffix": SUFFIX,
            "bind_dn": MONITOR_DN,
            "bind_password_file": inst.monitor_pw,
            "probe_entry": PROBE_ENTRY,
            "write_probe_attr": "description",
        }
        super().__init__(agent, {**defaults, **params}, instance=instance,
                         start_ms=START_MS, stop_ms=STOP_MS, monitor_ms=MONITOR_MS)
        self.inst = inst


@pytest.fixture(scope="session")
def slapd_agent(build_tree: Path) -> Path:
    """The build-tree ocf:messaging:slapd, after checking slapd and its tools are installed."""
    agent = agent_path("slapd")
    problems = [] if os.access(agent, os.X_OK) else [f"agent {agent} missing or not executable"]
    problems += [f"{t} missing (run scripts/install-deps)" for t in TOOLS if not os.access(t, os.X_OK)]
    if problems:
        pytest.fail("slapd test prerequisites missing:\n  " + "\n  ".join(problems), pytrace=False)
    return agent


MakeSlapd = Callable[..., SlapdInstance]


@pytest.fixture
def make_slapd(slapd_agent: Path) -> Iterator[MakeSlapd]:
    """Factory: make_slapd(config_format="ldif"|"conf", start=False, **create_options).

    Each instance lives in its own /tmp dir on a free loopback port. Teardown,
    even after a failure: SIGKILL every slapd of the instance, delete the dir."""
    with contextlib.ExitStack() as stack:
        def make(config_format: str = "ldif", start: bool = False, **create: object) -> SlapdInstance:
            base = make_base_dir()
            stack.callback(rmtree, base)
            inst = SlapdInstance(base, free_port(), config_format)
            stack.callback(_kill_instance, inst)
            inst.create(**create)
            if start:
                inst.start()
            return inst
        yield make


def _kill_instance(inst: SlapdInstance) -> None:
    survivors = inst.kill_all()
    if survivors:
        print(f"WARNING: slapd of {inst.base_dir} survived SIGKILL: {survivors}")


@pytest.fixture
def inst(make_slapd: MakeSlapd) -> SlapdInstance:
    """A fresh, stopped instance with cn=config (data loaded, nothing running)."""
    return make_slapd()


@pytest.fixture
def rsc(slapd_agent: Path, inst: SlapdInstance) -> Slapd:
    return Slapd(slapd_agent, inst)


def started(r: Slapd) -> int:
    """Start through the agent, assert success and an answering slapd; return its pid."""
    res = r.start()
    expect(res, OCF.SUCCESS)
    pid = r.inst.slapd_pid()
    assert pid, f"start returned 0 but no slapd of {r.inst.config} per {r.inst.pid_file}\n{res.describe()}"
    assert r.inst.answers(), "start returned 0 but slapd does not answer"
    return pid


def stopped_cleanly(r: Slapd, timeout_ms: int = STOP_MS) -> Result:
    """Stop through the agent; assert rc 0 inside the stop timeout and no slapd of the instance left."""
    return expect_stopped_cleanly(r, r.inst.processes, timeout_ms)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and directory below root with its mode, owner, size and (files
    only) mtime: to prove an action left nothing created, removed or changed.
    Directory mtimes are left out: slaptest -u creates and at once removes
    probe files (db/DUMMY, a missing pid file) to test that they are writable."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            mtime = None if p.is_dir() else st.st_mtime_ns
            snap[str(p.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, mtime)
    return snap


def bulk_dns(inst: SlapdInstance, prefix: str) -> set[str]:
    """DNs of the entries below ou=people whose cn starts with prefix."""
    return set(inst.search(PEOPLE, "one", f"(cn={prefix}*)", "1.1"))


# ---------------------------------------------------------------------------
# meta-data and ocf-tester


def test_meta_data_advertises_spec_parameters_and_depths(slapd_agent: Path) -> None:
    params = expect_meta_data(slapd_agent, ("slapd", "config", "services", "user", "group", "suffix", "bind_dn",
                                            "bind_password_file", "probe_entry", "provider_uri",
                                            "max_replication_lag", "replication_lag_warn", "maxsize_warn_percent",
                                            "pidfile", "write_probe_attr"), actions=())
    assert "password" not in params, "a password must never be a parameter (it would show in the CIB)"


@pytest.mark.parametrize("config_format", ["ldif", "conf"])
def test_ocf_tester_passes(slapd_agent: Path, make_slapd: MakeSlapd, config_format: str) -> None:
    inst = make_slapd(config_format)
    expect_ocf_tester_passes(slapd_agent, {"config": inst.config, "services": inst.services, "suffix": SUFFIX},
                             inst.processes, timeout_s=180)


def test_unknown_action_is_unimplemented(rsc: Slapd) -> None:
    expect(rsc("frobnicate"), OCF.ERR_UNIMPLEMENTED)


# ---------------------------------------------------------------------------
# lifecycle at every depth, with cn=config and with slapd.conf


@pytest.mark.parametrize("config_format", ["ldif", "conf"])
@pytest.mark.parametrize("level", [0, 10, 20])
def test_start_monitor_stop_at_level(slapd_agent: Path, make_slapd: MakeSlapd, config_format: str,
                                     level: int) -> None:
    inst = make_slapd(config_format)
    rsc = Slapd(slapd_agent, inst)

    def probe_entry_written() -> None:
        if level == 20:
            got = inst.search(PROBE_ENTRY, "base", "(objectClass=*)", "description")
            assert got[PROBE_ENTRY]["description"] != ["created by slapd_instance.py"], (
                "the depth 20 write probe did not write description of the probe entry")

    expect_lifecycle(rsc, level, lambda: started(rsc), inst.slapd_pid, lambda: stopped_cleanly(rsc), daemon="slapd",
                     while_running=probe_entry_written)


def test_slapd_runs_as_user_from_root_and_holds_no_mount_busy(rsc: Slapd) -> None:
    pid = started(rsc)
    status = Path(f"/proc/{pid}/status").read_text()
    uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
    assert int(uid) == pwd.getpwnam("openldap").pw_uid, status
    assert os.readlink(f"/proc/{pid}/cwd") == "/", "slapd keeps its caller's cwd: the agent must start it from /"
    stopped_cleanly(rsc)


def test_sasl_external_bind_over_ldapi(rsc: Slapd) -> None:
    """bind_method=external: root's peer credentials over ldapi (services lists
    ldap:// first: the check picks the ldapi:// listener); root may read but
    not write the probe entry."""
    started(rsc)
    expect(rsc.monitor(20, bind_method="external", write_probe_attr=None, bind_dn=None,
                       bind_password_file=None), OCF.SUCCESS)
    r = rsc.monitor(20, bind_method="external", bind_dn=None, bind_password_file=None)
    expect(r, OCF.ERR_GENERIC)  # the ACL lets only cn=ha-monitor write description
    expect_reason(r, r"write|insufficient|50")
    stopped_cleanly(rsc)


@pytest.mark.parametrize("how", ["config-missing", "binary-missing", "db-dir-missing"])
def test_probe_where_slapd_cannot_run_is_not_running(rsc: Slapd, how: str) -> None:
    override: dict[str, object] = {}
    if how == "config-missing":  # the configuration lives on storage not mounted here
        override["config"] = "/nonexistent/msg-itest/slapd.d"
    elif how == "binary-missing":
        override["slapd"] = "/nonexistent/sbin/slapd"
    else:  # the database directory lives on storage not mounted here
        rsc.inst.db_dir.rename(rsc.inst.db_dir.with_name("db.unmounted"))
    r = rsc.probe(**override)
    expect(r, OCF.NOT_RUNNING)
    assert r.exit_reason is None, f"a clean 'not running' probe must not set an exit reason\n{r.describe()}"
    assert not Path("/nonexistent").exists()
    if how == "db-dir-missing":
        assert not rsc.inst.db_dir.exists(), "the probe created the database directory"
        r = rsc.start()
        expect(r, OCF.ERR_INSTALLED)
        expect_reason(r, r"db|director|mount")
        assert not rsc.inst.processes()


# ---------------------------------------------------------------------------
# crashes, lost writes, hangs


def test_acknowledged_adds_survive_kill_9_and_agent_start(rsc: Slapd) -> None:
    """1000 adds by one `ldapadd -c -v`, slapd SIGKILLed in the middle of them:
    after the agent's start every add slapd acknowledged is there, and at most
    the one in flight at the kill besides."""
    inst = rsc.inst
    pid = started(rsc)
    ldif = inst.base_dir / "bulk.ldif"
    ldif.write_text("".join(entry_ldif(f"bulk{i:04d}", "added before the crash") for i in range(1000)))
    # stdbuf: ldapadd's stdout (where it says "modify complete" per
    # acknowledged add) is line-buffered, so progress is visible at once.
    p = procs.popen(["stdbuf", "-oL", "ldapadd", "-c", "-v", "-H", inst.ldap_uri, "-o", "nettimeout=5",
                     "-x", "-D", ROOT_DN, "-y", str(inst.admin_pw), "-f", str(ldif)],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                    env={"PATH": "/usr/bin:/bin", "LDAPNOINIT": "1"})
    out: list[str] = []
    acked_before_kill = 0
    try:
        for line in p.stdout:
            out.append(line)
            if line.strip() == "modify complete":
                acked_before_kill += 1
                if acked_before_kill == 300:
                    os.kill(pid, signal.SIGKILL)
                    break
        out_rest, err = p.communicate(timeout=60)
        out.append(out_rest)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
        procs.release(p)
    assert procs.wait_gone([pid], 5) == [], "slapd survived SIGKILL"
    acked = acknowledged_adds("".join(out))
    assert 300 <= len(acked) < 1000, (f"{len(acked)} adds acknowledged: the kill did not interrupt the run\n"
                                      f"ldapadd stderr tail: {err[-500:]}")

    expect(rsc.probe(), OCF.NOT_RUNNING, OCF.ERR_GENERIC)
    res = rsc.start()
    expect(res, OCF.SUCCESS)
    present = bulk_dns(inst, "bulk")
    lost = sorted(set(acked) - present)
    assert not lost, f"{len(lost)} acknowledged adds lost after kill -9 and start, e.g. {lost[:5]}"
    extra = present - set(acked)
    assert len(extra) <= 1, f"entries present that were never acknowledged (only one can be in flight): {extra}"
    expect(rsc.monitor(20), OCF.SUCCESS)
    stopped_cleanly(rsc)


def test_kill_9_detected_then_start_recovers(rsc: Slapd) -> None:
    pid = started(rsc)
    assert not procs.kill_and_wait([pid], 5)
    assert rsc.inst.pid_file.exists(), "kill -9 should leave the pid file behind (the case under test)"
    for level in (0, 10, 20):
        expect(rsc.monitor(level), OCF.NOT_RUNNING, OCF.ERR_GENERIC)
    expect(rsc.probe(), OCF.NOT_RUNNING, OCF.ERR_GENERIC)
    new = started(rsc)
    assert new != pid
    expect(rsc.monitor(20), OCF.SUCCESS)
    stopped_cleanly(rsc)


@pytest.mark.parametrize("level", [0, 10])
def test_sigstop_fails_in_time_with_reason_and_stop_is_fast(rsc: Slapd, level: int) -> None:
    """The stock agent hangs until Pacemaker's timeout on a frozen slapd, and
    needs 15.5 s to stop it."""
    pid = started(rsc)
    rsc.inst.freeze(pid)
    r = rsc.monitor(level, timeout_ms=HANG_MONITOR_MS)
    expect(r, OCF.ERR_GENERIC)
    expect_reason(r, r"stop|frozen|SIGSTOP")
    assert r.elapsed < HANG_MONITOR_MS / 1000, f"monitor took {r.elapsed:.2f}s\n{r.describe()}"
    expect(rsc.probe(), OCF.ERR_GENERIC)  # a frozen slapd is not "cleanly stopped"

    res = stopped_cleanly(rsc)
    assert res.elapsed < 5, f"stopping a frozen slapd took {res.elapsed:.2f}s (stock: 15.5 s)\n{res.describe()}"
    assert not procs.alive(pid)


def test_wedged_slapd_fails_level_10_by_the_probe_deadline(rsc: Slapd) -> None:
    """slapd held in ptrace-stop (state t, not T: no shortcut by process
    state), like a slapd whose threads all hang: the kernel still accepts
    connections, nothing answers. The
    LDAP check itself must give up inside the operation timeout, with a reason."""
    pid = started(rsc)
    # every thread: ptrace stops one thread, and slapd's others would serve
    threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    with procs.Wedge(threads):
        expect(rsc.monitor(0), OCF.SUCCESS)  # alive, as far as depth 0 can tell
        r = rsc.monitor(10, timeout_ms=HANG_MONITOR_MS)
        expect(r, OCF.ERR_GENERIC)
        expect_reason(r)
        assert r.elapsed < HANG_MONITOR_MS / 1000, f"monitor took {r.elapsed:.2f}s\n{r.describe()}"
        # probe_timeout bounds the check below the operation timeout
        r = rsc.monitor(10, timeout_ms=MONITOR_MS, probe_timeout=2)
        expect(r, OCF.ERR_GENERIC)
        assert r.elapsed < 4, f"probe_timeout=2 yet the monitor took {r.elapsed:.2f}s\n{r.describe()}"
        # TERM and CONT stay pending in ptrace-stop: only the KILL escalation stops it
        res = stopped_cleanly(rsc, timeout_ms=10000)
        assert not procs.alive(pid)
    assert res.elapsed < 10


def test_deleted_pid_file_under_running_slapd_is_not_clean_stop(rsc: Slapd) -> None:
    """The stock agent says 7 here, and its start then fails on the busy port."""
    pid = started(rsc)
    rsc.inst.pid_file.unlink()
    for r in (rsc.monitor(0), rsc.monitor(10), rsc.probe()):
        assert r.rc == OCF.ERR_GENERIC, f"slapd still runs, yet:\n{r.describe()}"
        expect_reason(r, str(pid))
    stopped_cleanly(rsc)
    assert not procs.alive(pid)
    started(rsc)
    stopped_cleanly(rsc)


def test_database_moved_away_under_running_slapd_fails_level_20(rsc: Slapd) -> None:
    """The stock agent reports this as healthy while every write goes into the moved files."""
    inst = rsc.inst
    started(rsc)
    inst.db_dir.rename(inst.db_dir.with_name("db.moved"))
    inst.db_dir.mkdir()
    procs.run(["cp", "-a", f"{inst.db_dir.with_name('db.moved')}/.", f"{inst.db_dir}/"], check=True)
    expect(rsc.monitor(10), OCF.SUCCESS)
    r = rsc.monitor(20)
    expect(r, OCF.ERR_GENERIC)
    expect_reason(r, r"data\.mdb|moved|replaced")
    stopped_cleanly(rsc)


def test_database_that_fails_to_open_is_refused_at_start(rsc: Slapd) -> None:
    """msg-recover opens every MDB database before slapd does: a damaged one
    is a refusal with the reason, not a slapd that dies or serves garbage."""
    (rsc.inst.db_dir / "data.mdb").write_bytes(os.urandom(64 << 10))
    r = rsc.start()
    expect(r, OCF.ERR_GENERIC)
    expect_reason(r, r"fails to open.*data\.mdb|MDB_INVALID|not an LMDB")
    assert not rsc.inst.processes(), "slapd was started on a database that fails to open"


# ---------------------------------------------------------------------------
# process identity


@pytest.mark.parametrize("config_format", ["ldif", "conf"])
def test_configuration_without_pid_file_is_found_by_its_command_line(slapd_agent: Path, make_slapd: MakeSlapd,
                                                                      config_format: str) -> None:
    inst = make_slapd(config_format, pid_file=False)
    rsc = Slapd(slapd_agent, inst)
    expect(rsc.validate(), OCF.SUCCESS)
    expect(rsc.probe(), OCF.NOT_RUNNING)
    expect(rsc.start(), OCF.SUCCESS)
    pids = inst.processes()
    assert len(pids) == 1 and not inst.pid_file.exists(), pids
    expect(rsc.monitor(20), OCF.SUCCESS)
    expect(rsc.probe(), OCF.SUCCESS)
    stopped_cleanly(rsc)
    assert not procs.alive(pids[0])


@pytest.fixture(params=["sleep", "other-slapd"])
def stranger(request, sleeper: int, make_slapd: MakeSlapd) -> tuple[int, SlapdInstance | None]:
    """A live process that is NOT this instance's slapd: a plain sleep, or the
    slapd of a second instance on the same node (same binary!)."""
    if request.param == "sleep":
        return sleeper, None
    other = make_slapd(start=True)
    return other.slapd_pid(), other


def test_stale_pid_file_naming_a_stranger(rsc: Slapd, stranger) -> None:
    """The stock agent says "already running" without starting, and its stop kills the stranger."""
    pid, other = stranger
    inst = rsc.inst
    inst.write_pid_file(pid)

    expect(rsc.probe(), OCF.NOT_RUNNING)
    expect(rsc.monitor(0), OCF.NOT_RUNNING)
    expect(rsc.monitor(10), OCF.NOT_RUNNING)
    expect(rsc.stop(), OCF.SUCCESS)
    assert procs.alive(pid), "stop killed the unrelated process named by the stale pid file"

    own = started(rsc)
    assert own != pid
    expect(rsc.monitor(20), OCF.SUCCESS)
    stopped_cleanly(rsc)
    assert procs.alive(pid), "start/stop killed the unrelated process named by the stale pid file"
    if other is not None:
        assert other.answers(), "the other slapd stopped answering"


# ---------------------------------------------------------------------------
# directory health at depth 20


def test_map_full_fails_level_20_with_error_80(rsc: Slapd) -> None:
    """olcDbMaxSize lowered at runtime over ldapi, then the map filled: reads
    still work, writes fail with LDAP error 80. The stock agent says healthy."""
    inst = rsc.inst
    started(rsc)
    expect(rsc.monitor(20), OCF.SUCCESS)
    inst.set_max_size(256 << 10)
    fill = inst.base_dir / "fill.ldif"
    fill.write_text("".join(entry_ldif(f"fill{i:05d}", "x" * 200) for i in range(3000))
                    + "".join(entry_ldif(f"fillsmall{i:05d}") for i in range(500)))
    r = inst.ldap("ldapadd", "-c", "-f", str(fill), timeout=120)
    assert "(80)" in r.stderr, f"the map never filled up: rc {r.returncode}\n{r.stderr[-1000:]}"
    # the precondition: a client's write now fails with 80
    r = inst.ldap("ldapadd", input=entry_ldif("one-more"))
    assert r.returncode == 80, f"an add on the full map returned {r.returncode}: {r.stderr}"

    # A full map is a failure whatever the warning level (0: no warning).
    r = rsc.monitor(20, maxsize_warn_percent=0)
    expect(r, OCF.ERR_GENERIC)
    expect_reason(r, r"\b80\b")
    expect(rsc.monitor(10), OCF.SUCCESS)
    expect(rsc.monitor(0), OCF.SUCCESS)
    stopped_cleanly(rsc)


def test_map_use_over_maxsize_warn_percent_is_degraded(rsc: Slapd) -> None:
    inst = rsc.inst
    started(rsc)
    expect(rsc.monitor(20), OCF.SUCCESS)
    inst.set_max_size(1 << 20)
    r = inst.ldap("ldapadd", "-c", input="".join(entry_ldif(f"grow{i:04d}", "y" * 200) for i in range(1500)),
                  timeout=120)
    assert r.returncode in (0, 80), r.stderr[-500:]
    r = rsc.monitor(20, maxsize_warn_percent=50)
    expect(r, OCF.DEGRADED, OCF.ERR_GENERIC)
    expect_reason(r, r"maxsize|map|%")
    expect(rsc.monitor(10, maxsize_warn_percent=50), OCF.SUCCESS)
    stopped_cleanly(rsc)


def test_failed_bind_during_monitor_is_a_service_error_not_configured(rsc: Slapd) -> None:
    """Returning 6 here (as the stock agent does for error 49) stops the resource on every node."""
    started(rsc)
    wrong = rsc.inst.secrets / "wrong.pw"
    wrong.write_text("not-the-password")
    wrong.chmod(0o600)
    r = rsc.monitor(20, bind_password_file=wrong)
    expect(r, OCF.ERR_GENERIC)
    expect_reason(r, r"bind|credentials|49")
    assert "not-the-password" not in r.stderr + r.stdout, "the password leaked into the agent's output"
    expect(rsc.monitor(10, bind_password_file=wrong), OCF.SUCCESS)  # no bind at depth 10
    r = rsc.monitor(20, bind_password_file=rsc.inst.secrets / "gone.pw")
    expect(r, OCF.ERR_GENERIC)
    expect_reason(r)
    stopped_cleanly(rsc)


def test_missing_probe_entry_fails_level_20(rsc: Slapd) -> None:
    started(rsc)
    r = rsc.monitor(20, probe_entry=f"cn=no-such-entry,{SUFFIX}", write_probe_attr=None)
    expect(r, OCF.ERR_GENERIC)
    expect_reason(r, r"no-such-entry|no such object|32")
    stopped_cleanly(rsc)


def test_replication_lag_and_provider_loss(slapd_agent: Path, make_slapd: MakeSlapd) -> None:
    """A provider and a consumer (syncrepl refreshAndPersist). The consumer
    replicates through a proxy that the test can pause: a replication link
    that stalls while both servers stay up, so the consumer falls behind for
    real. The monitor compares contextCSNs with the provider directly: lag
    over replication_lag_warn is degraded (190), over max_replication_lag a
    failure; once the link flows again the consumer catches up (0). Then the
    provider is stopped: the consumer still serves, and its depth 20 monitor
    reports that the lag can no longer be measured (degraded, with a reason),
    not a failure of the consumer."""
    provider = make_slapd(syncprov=True, start=True)
    with PausableProxy(provider.port) as link:
        consumer = make_slapd(consumer_of=f"ldap://127.0.0.1:{link.port}/")
        rsc = Slapd(slapd_agent, consumer, provider_uri=provider.ldap_uri,
                    replication_lag_warn=2, max_replication_lag=6,
                    write_probe_attr=None)  # a consumer refuses writes

        started(rsc)
        provider.set_description(PROBE_ENTRY, "before the stall")

        def in_sync() -> bool:
            there = provider.context_csn()
            return bool(there) and consumer.context_csn() == there
        wait_for(in_sync, 20, "the consumer to replicate the provider")
        expect(rsc.monitor(20), OCF.SUCCESS)

        link.pause()
        time.sleep(3.5)
        provider.set_description(PROBE_ENTRY, "during the stall, 3.5 s later")
        r = rsc.monitor(20)
        expect(r, OCF.DEGRADED)
        expect_reason(r, r"replication lag")
        expect(rsc.monitor(10), OCF.SUCCESS)

        time.sleep(3.5)
        provider.set_description(PROBE_ENTRY, "during the stall, 7 s later")
        r = rsc.monitor(20)
        expect(r, OCF.ERR_GENERIC)
        expect_reason(r, r"replication lag.*limit")

        link.resume()
        wait_for(in_sync, 20, "the consumer to catch up once the link flows")
        expect(rsc.monitor(20), OCF.SUCCESS)
        got = consumer.search(PROBE_ENTRY, "base", "(objectClass=*)", "description")
        assert got[PROBE_ENTRY]["description"] == ["during the stall, 7 s later"], got

        assert not provider.kill_all()
        assert consumer.answers(), "the consumer must keep serving without its provider"
        r = rsc.monitor(20)
        expect(r, OCF.DEGRADED)
        expect_reason(r, r"provider|unreachable|replication")
        expect(rsc.monitor(10), OCF.SUCCESS)
        stopped_cleanly(rsc)


# ---------------------------------------------------------------------------
# configuration errors


def break_config(inst: SlapdInstance) -> str:
    """A syntax error slaptest rejects; returns a word its message contains."""
    if inst.config_format == "ldif":
        db = inst.config_dir / "cn=config" / "olcDatabase={1}mdb.ldif"
        db.write_text(db.read_text().replace("olcDbMaxSize: ", "olcDbMaxSize: banana"))
        return "banana"
    inst.conf_file.write_text(inst.conf_file.read_text() + "\nthisisnotadirective foo\n")
    return "thisisnotadirective"


@pytest.mark.parametrize("config_format", ["ldif", "conf"])
def test_bad_config_is_err_configured_with_slaptests_reason(slapd_agent: Path, make_slapd: MakeSlapd,
                                                             config_format: str) -> None:
    inst = make_slapd(config_format)
    rsc = Slapd(slapd_agent, inst)
    word = break_config(inst)
    before = snapshot(inst.base_dir)
    r = rsc.validate()
    expect(r, OCF.ERR_CONFIGURED)
    expect_reason(r, word)
    assert snapshot(inst.base_dir) == before, "validate-all changed the instance's files"

    r = rsc.start()
    expect(r, OCF.ERR_CONFIGURED)
    expect_reason(r, word)
    assert r.elapsed < START_MS / 1000
    assert not inst.processes(), "start of a broken configuration left a slapd"


@pytest.mark.parametrize("config_format", ["ldif", "conf"])
def test_config_broken_on_disk_under_running_slapd_is_degraded_at_level_20(slapd_agent: Path,
                                                                            make_slapd: MakeSlapd,
                                                                            config_format: str) -> None:
    """The running slapd keeps the configuration it loaded, so it still serves;
    the next start (a failover) would fail. Depth 20 runs "slaptest -u" and
    reports that as degraded (190) with slaptest's message; 0 and 10 stay 0."""
    inst = make_slapd(config_format)
    rsc = Slapd(slapd_agent, inst)
    pid = started(rsc)
    expect(rsc.monitor(20), OCF.SUCCESS)
    word = break_config(inst)
    for level in (0, 10):
        expect(rsc.monitor(level), OCF.SUCCESS)
    r = rsc.monitor(20)
    expect(r, OCF.DEGRADED)
    expect_reason(r, r"configuration on disk is broken \(the running slapd still uses the one it loaded\): .*" + word)
    assert inst.slapd_pid() == pid and inst.answers(), "the check disturbed the running slapd"
    stopped_cleanly(rsc)


def test_hand_edited_ldif_with_only_a_checksum_warning_is_not_broken(rsc: Slapd) -> None:
    """slaptest warns about the CRC of a hand-edited slapd.d LDIF yet exits 0
    (slapd starts with it): that alone is no broken configuration."""
    started(rsc)
    ldif = rsc.inst.config_dir / "cn=config.ldif"
    with ldif.open("a") as f:
        f.write("olcNoSuchAttribute: hand-edited\n")
    expect(rsc.monitor(20), OCF.SUCCESS)
    stopped_cleanly(rsc)


BAD = (OCF.ERR_CONFIGURED,)


@pytest.mark.parametrize("override,codes,reason", [
    pytest.param({"config": "relative/slapd.d"}, BAD, r"config.*absolute", id="config-relative"),
    pytest.param({"services": ""}, BAD, r"services", id="services-empty"),
    pytest.param({"services": "http://127.0.0.1/"}, BAD, r"services|URI", id="services-not-ldap"),
    pytest.param({"probe_uri": "tcp://x"}, BAD, r"probe_uri", id="probe_uri-not-ldap"),
    pytest.param({"probe_tls": "sometimes"}, BAD, r"probe_tls", id="probe_tls-bogus"),
    pytest.param({"probe_timeout": "soon"}, BAD, r"probe_timeout", id="probe_timeout-not-numeric"),
    pytest.param({"bind_method": "kerberos"}, BAD, r"bind_method", id="bind_method-bogus"),
    pytest.param({"bind_password_file": None}, BAD, r"bind_password_file", id="bind_dn-without-password-file"),
    pytest.param({"probe_entry": None}, BAD, r"probe_entry", id="write_probe-without-probe_entry"),
    pytest.param({"provider_uri": "ldap://127.0.0.1:1/", "suffix": None}, BAD, r"suffix", id="provider-without-suffix"),
    pytest.param({"max_replication_lag": "a while"}, BAD, r"max_replication_lag", id="lag-not-numeric"),
    pytest.param({"replication_lag_warn": "400"}, BAD, r"replication_lag_warn", id="warn-above-limit"),
    pytest.param({"maxsize_warn_percent": "120"}, BAD, r"maxsize_warn_percent", id="percent-out-of-range"),
    pytest.param({"bind_method": "external"}, BAD, r"external|ldapi", id="external-without-ldapi"),
    pytest.param({"config": "/nonexistent/msg-itest/slapd.d"}, (OCF.ERR_INSTALLED,), r"/nonexistent",
                 id="config-missing"),
    pytest.param({"slapd": "/nonexistent/sbin/slapd"}, (OCF.ERR_INSTALLED,), r"/nonexistent", id="slapd-missing"),
    pytest.param({"user": "no-such-user-msg"}, (OCF.ERR_INSTALLED,), r"no-such-user-msg", id="user-missing"),
])
def test_bad_parameters_are_refused_with_reason_and_no_side_effects(
        rsc: Slapd, override: dict, codes: tuple, reason: str) -> None:
    if override.get("bind_method") == "external":
        override = {**override, "probe_uri": rsc.inst.ldap_uri}
    before = snapshot(rsc.inst.base_dir)
    r = rsc.validate(**override)
    expect(r, *codes)
    expect_reason(r, reason)
    assert snapshot(rsc.inst.base_dir) == before, "validate-all changed the instance's files"
    r = rsc.start(**override)
    expect(r, *codes)
    expect_reason(r, reason)
    assert not rsc.inst.processes(), "start with a bad parameter started slapd"
    assert not Path("/nonexistent").exists()


@pytest.mark.parametrize("mode,owner_root", [(0o644, True), (0o600, False)])
def test_unsafe_password_file_is_refused(rsc: Slapd, mode: int, owner_root: bool) -> None:
    pw = rsc.inst.secrets / "monitor.pw"
    pw.chmod(mode)
    if not owner_root:
        os.chown(pw, 65534, 65534)
    r = rsc.validate()
    expect(r, OCF.ERR_CONFIGURED)
    expect_reason(r, r"bind_password_file")


def test_validate_all_good_config_creates_and_starts_nothing(rsc: Slapd) -> None:
    inst = rsc.inst
    inst.run_dir.rmdir()  # on a real node /run/slapd is gone after a reboot
    before = snapshot(inst.base_dir)
    r = rsc.validate()
    expect(r, OCF.SUCCESS)
    assert snapshot(inst.base_dir) == before, f"validate-all changed files\n{r.describe()}"
    assert not inst.processes(), "validate-all started something"
    # start creates the pid file's directory (owned by the slapd user)
    started(rsc)
    assert inst.run_dir.stat().st_uid == pwd.getpwnam("openldap").pw_uid
    stopped_cleanly(rsc)


def test_reload_agent_keeps_slapd_running(rsc: Slapd) -> None:
    pid = started(rsc)
    r = rsc("reload-agent", probe_timeout=5, maxsize_warn_percent=80)
    expect(r, OCF.SUCCESS)
    assert rsc.inst.slapd_pid() == pid
    stopped_cleanly(rsc)
