"""ocf:messaging:dovecot against a real Dovecot (Debian package), issue #3 "Tests".

Every test gets its own Dovecot instance (own config file, base_dir, Maildir
store and loopback ports) from the make_dovecot fixture, drives it through
the BUILD-TREE agent, and leaves nothing behind: the fixture SIGKILLs the
instance's processes by pid, unmounts and deletes, even when an assertion
fails.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import threading
from pathlib import Path

import pytest

import procs
from scratch_fs import fill
from agent_checks import (expect_lifecycle, expect_meta_data, expect_ocf_tester_passes,
                          expect_stopped_cleanly)
from dovecot_instance import PROBE_USER, DovecotInstance
from ocf import OCF, AgentResource, Result, expect, expect_reason, snapshot, wait_for

START_MS = 60000
STOP_MS = 30000
MONITOR_MS = 20000
# Short enough to keep the hang tests fast, long enough for a healthy check.
HANG_MONITOR_MS = 8000
PROBE_MAILBOX = "ha-probe"


class Dovecot(AgentResource):
    """ocf:messaging:dovecot bound to one instance, with the probe account and mail_root set."""

    def __init__(self, agent: Path, inst: DovecotInstance, **params: object):
        super().__init__(agent, {
            "config_file": inst.config_file,
            "probe_host": "127.0.0.1",
            "imap_port": inst.imap_port,
            "pop3_port": inst.pop3_port,
            "credentials_file": inst.credentials_file,
            "probe_mailbox": PROBE_MAILBOX,
            "mail_root": inst.mail_root,
            **params,
        }, start_ms=START_MS, stop_ms=STOP_MS, monitor_ms=MONITOR_MS)
        self.inst = inst


@pytest.fixture
def rsc(dovecot_agent: Path, dovecot: DovecotInstance) -> Dovecot:
    return Dovecot(dovecot_agent, dovecot)


def started(r: Dovecot, **kw) -> int:
    """Start through the agent, assert success and a serving master; return its pid."""
    res = r.start(**kw)
    expect(res, OCF.SUCCESS)
    pid = r.inst.master_pid()
    assert pid, f"start returned 0 but no live master in {r.inst.pid_file}\n{res.describe()}"
    assert r.inst.imap_answers(), f"start returned 0 but IMAP does not answer\n{res.describe()}"
    return pid


def stopped_cleanly(r: Dovecot, timeout_ms: int = STOP_MS) -> Result:
    """Stop through the agent; assert rc 0 inside the stop timeout and no process of the instance left."""
    return expect_stopped_cleanly(r, r.inst.processes, timeout_ms)


def summary_of(r: Result) -> str:
    """The msg-recover summary line start logged."""
    m = re.search(r"recovered dovecot: [^\n]*", r.stderr)
    assert m, f"start logged no recovery summary\n{r.describe()}"
    return m.group(0)


# ---------------------------------------------------------------------------
# meta-data and ocf-tester


def test_meta_data_advertises_spec_parameters_and_depths(dovecot_agent: Path) -> None:
    expect_meta_data(dovecot_agent, ("binary", "config_file", "probe_host", "imap_port", "pop3_port", "lmtp_socket",
                                     "credentials_file", "probe_mailbox", "mail_root", "min_free_percent",
                                     "cert_warn_days", "probe_tls"))


def test_ocf_tester_passes(dovecot_agent: Path, dovecot: DovecotInstance) -> None:
    expect_ocf_tester_passes(dovecot_agent, {"config_file": dovecot.config_file, "imap_port": dovecot.imap_port,
                                             "pop3_port": dovecot.pop3_port,
                                             "credentials_file": dovecot.credentials_file,
                                             "mail_root": dovecot.mail_root}, dovecot.processes, timeout_s=300)


def test_unknown_action_is_unimplemented(rsc: Dovecot) -> None:
    expect(rsc("frobnicate"), OCF.ERR_UNIMPLEMENTED)


# ---------------------------------------------------------------------------
# lifecycle at every depth


@pytest.mark.parametrize("level", [0, 10, 20])
def test_start_monitor_stop_at_level(rsc: Dovecot, level: int) -> None:
    def stopped_gracefully() -> None:
        assert not rsc.inst.pid_file.exists(), "the master did not stop gracefully (master.pid left)"

    expect_lifecycle(rsc, level, lambda: started(rsc), rsc.inst.master_pid, lambda: stopped_cleanly(rsc),
                     after_stop=stopped_gracefully)


def test_config_file_is_used_for_the_daemon_and_lmtp_by_socket_or_port(rsc: Dovecot) -> None:
    """The stock agent ignores config_file; here the master runs -c config_file, and its
    base_dir (from doveconf) locates the default LMTP socket."""
    master = started(rsc)
    cmdline = Path(f"/proc/{master}/cmdline").read_bytes().split(b"\0")
    assert b"-c" in cmdline and str(rsc.inst.config_file).encode() in cmdline, cmdline
    expect(rsc.monitor(10), OCF.SUCCESS)  # LMTP on run_dir/lmtp, found through base_dir
    expect(rsc.monitor(10, lmtp_port=rsc.inst.lmtp_port), OCF.SUCCESS)
    expect(rsc.monitor(10, lmtp_socket=rsc.inst.lmtp_socket), OCF.SUCCESS)
    r = rsc.monitor(10, lmtp_socket=rsc.inst.base_dir / "no-such-lmtp")
    expect(r, OCF.ERR_GENERIC)
    expect_reason(r, r"LMTP")
    stopped_cleanly(rsc)


@pytest.mark.parametrize("override", [
    pytest.param({"config_file": "/nonexistent/msg-itest/dovecot.conf"}, id="config_file-missing"),
    pytest.param({"binary": "/nonexistent/sbin/dovecot"}, id="binary-missing-not-installed"),
    pytest.param({"mail_root": "/nonexistent/msg-itest/mail"}, id="mail_root-missing-store-not-mounted"),
    pytest.param({"mail_root_mountpoint": "true"}, id="mail_root-not-a-mount-point"),
])
def test_probe_where_dovecot_cannot_run_is_not_running(rsc: Dovecot, override: dict) -> None:
    r = rsc.probe(**override)
    expect(r, OCF.NOT_RUNNING)
    assert not Path("/nonexistent").exists()


def test_store_not_mounted_refuses_start(rsc: Dovecot) -> None:
    r = rsc.start(mail_root_mountpoint="true")
    expect(r, OCF.ERR_INSTALLED)
    expect_reason(r, r"mount")
    assert not rsc.inst.processes(), procs.describe(rsc.inst.processes())


# ---------------------------------------------------------------------------
# crashes, mail safety and store recovery


def test_kill_9_detected_then_start_recovers(rsc: Dovecot) -> None:
    master = started(rsc)
    assert not procs.kill_and_wait([master], 5)
    # children exit once their master is gone
    wait_for(lambda: not rsc.inst.processes(), 10, "the master's children to exit")
    for level in (0, 10):
        expect(rsc.monitor(level), OCF.NOT_RUNNING, OCF.ERR_GENERIC)
    expect(rsc.probe(), OCF.NOT_RUNNING, OCF.ERR_GENERIC)

    res = rsc.start()
    expect(res, OCF.SUCCESS)
    assert rsc.inst.master_pid() not in (None, master), res.describe()
    expect(rsc.monitor(20), OCF.SUCCESS)
    stopped_cleanly(rsc)


def test_lmtp_burst_interrupted_by_kill_9_loses_no_acknowledged_message(rsc: Dovecot) -> None:
    inst = rsc.inst
    started(rsc)
    acked: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def deliver() -> None:
        # One LMTP session after another, as Postfix's lmtp client would
        # reconnect; only a 250 reply for the recipient counts as delivered.
        while not stop.is_set():
            try:
                with inst.lmtp(timeout=5) as lmtp:
                    while not stop.is_set():
                        subject, code = inst.lmtp_deliver(lmtp)
                        if code == 250:
                            acked.append(subject)
            except (OSError, EOFError) as e:  # the server went away mid-burst
                errors.append(e)
                if stop.is_set() or not inst.master_pid():
                    return
            except Exception as e:  # smtplib's SMTP* errors: not delivered
                errors.append(e)
                if not inst.master_pid():
                    return

    sender = threading.Thread(target=deliver, name="lmtp-burst", daemon=True)
    sender.start()
    try:
        wait_for(lambda: len(acked) >= 30, 30, "30 acknowledged LMTP deliveries")
        # A node crash in the middle of the burst: every process of the instance at once.
        assert not inst.kill_all(), "processes survived SIGKILL"
    finally:
        stop.set()
        sender.join(15)
    assert not sender.is_alive(), "the LMTP sender hung"
    assert acked, "no delivery was acknowledged before the crash"

    expect(rsc.monitor(0), OCF.NOT_RUNNING, OCF.ERR_GENERIC)
    res = rsc.start(tmp_quarantine_age=0)
    expect(res, OCF.SUCCESS)
    summary = summary_of(res)

    print(f"{len(acked)} deliveries acknowledged before the crash, {len(errors)} refused or cut; {summary}")
    readable = inst.subjects("alice")
    lost = [s for s in acked if s not in readable]
    assert not lost, (f"{len(lost)} of {len(acked)} acknowledged messages are not readable over IMAP "
                      f"after start: {lost[:5]}\n{summary}")
    duplicated = {s for s in acked if readable.count(s) > 1}
    assert not duplicated, f"messages delivered twice: {duplicated}"
    # Whatever was half-written in tmp/ went to the quarantine, never deleted.
    assert not list((inst.maildir() / "tmp").iterdir()), "tmp/ leftovers were not quarantined"
    expect(rsc.monitor(20), OCF.SUCCESS)
    stopped_cleanly(rsc)


def _grow_index(inst: DovecotInstance, messages: int = 120) -> None:
    """Deliver messages and change flags until Dovecot writes alice's dovecot.index
    (it writes it only once its transaction log has grown enough)."""
    with inst.lmtp() as lmtp:
        for i in range(messages):
            _, code = inst.lmtp_deliver(lmtp, subject=f"indexed-{i}")
            assert code == 250
    odd = ",".join(str(i) for i in range(1, messages + 1, 2))
    for _ in range(10):
        if (inst.maildir() / "dovecot.index").exists():
            return
        inst.doveadm("flags", "add", "-u", "alice@example.com", "\\Flagged", "mailbox", "INBOX", odd)
        inst.doveadm("flags", "remove", "-u", "alice@example.com", "\\Flagged", "mailbox", "INBOX", odd)
    raise AssertionError("Dovecot never wrote dovecot.index")


def test_corrupted_index_is_rebuilt_by_start_and_no_message_is_lost(rsc: Dovecot) -> None:
    inst = rsc.inst
    started(rsc)
    _grow_index(inst)
    before = sorted(inst.subjects("alice"))
    assert len(before) == 120
    stopped_cleanly(rsc)

    # The header now claims 65535 messages (messages_count, offset 32).
    index = inst.maildir() / "dovecot.index"
    with open(index, "r+b") as f:
        f.seek(32)
        f.write(b"\xff\xff\x00\x00")

    res = rsc.start()
    expect(res, OCF.SUCCESS)
    assert "rebuilt 1 mailbox index" in summary_of(res), res.describe()
    assert sorted(inst.subjects("alice")) == before, "messages lost or changed by the rebuild"
    expect(rsc.monitor(20), OCF.SUCCESS)
    stopped_cleanly(rsc)


@pytest.fixture(params=["sleep", "other-dovecot-master"])
def stranger(request, sleeper: int, make_dovecot) -> tuple[int, DovecotInstance | None]:
    """A live process that is NOT this instance's master: a plain sleep, or the
    master of a second Dovecot instance on the same node (same exe!)."""
    if request.param == "sleep":
        return sleeper, None
    other = make_dovecot(start=True)
    return other.master_pid(), other


def test_stale_pid_file_naming_a_stranger(rsc: Dovecot, stranger) -> None:
    """The stock agent's start fails here ("Dovecot is already running with PID")."""
    pid, other = stranger
    inst = rsc.inst
    inst.write_pid_file(pid)
    expect(rsc.probe(), OCF.NOT_RUNNING)
    expect(rsc.monitor(10), OCF.NOT_RUNNING)
    expect(rsc.stop(), OCF.SUCCESS)
    assert procs.alive(pid), "stop killed the unrelated process named by the stale pid file"

    res = rsc.start()
    expect(res, OCF.SUCCESS)
    assert "removed 1 stale file" in summary_of(res)
    assert inst.master_pid() not in (None, pid)
    stopped_cleanly(rsc)
    assert procs.alive(pid), "start/stop killed the unrelated process named by the stale pid file"
    if other is not None:
        assert other.imap_answers(), "the other Dovecot instance stopped answering"


def test_deleted_pid_file_under_running_dovecot_is_not_a_clean_stop(rsc: Dovecot) -> None:
    """The stock agent says 7 here, and its start then fails ("Socket already exists")."""
    inst = rsc.inst
    master = started(rsc)
    inst.pid_file.unlink()
    r = rsc.probe()
    expect(r, OCF.ERR_GENERIC)
    expect_reason(r, rf"processes of this instance still run: .*{master}")
    res = rsc.start()
    expect(res, OCF.SUCCESS)
    assert inst.master_pid() not in (None, master), res.describe()
    assert not procs.alive(master)
    expect(rsc.monitor(20), OCF.SUCCESS)
    stopped_cleanly(rsc)


def test_broken_config_under_running_dovecot(rsc: Dovecot) -> None:
    """The daemon keeps the configuration it loaded: report that, never 'not running'."""
    inst = rsc.inst
    started(rsc)
    with inst.config_file.open("a") as f:
        f.write("no_such_setting = 1\n")
    r = rsc.validate()
    expect(r, OCF.ERR_CONFIGURED)
    expect_reason(r, r"no_such_setting")
    expect(rsc.probe(), OCF.SUCCESS)
    expect(rsc.monitor(0), OCF.SUCCESS)
    expect(rsc.monitor(10), OCF.SUCCESS)
    r = rsc.monitor(20)
    expect(r, OCF.DEGRADED)
    expect_reason(r, r"configuration on disk is broken.*no_such_setting")
    stopped_cleanly(rsc)


# ---------------------------------------------------------------------------
# frozen processes


def _idle_imap_login(inst: DovecotInstance) -> tuple[socket.socket, int]:
    """An IMAP client parked after the greeting, and the imap-login process serving it."""
    before = set(inst.children("imap-login"))
    client = socket.create_connection(("127.0.0.1", inst.imap_port), timeout=5)
    assert client.recv(512).startswith(b"* OK")
    pid = wait_for(lambda: sorted(set(inst.children("imap-login")) - before), 5, "an imap-login")[0]
    return client, pid


@pytest.mark.parametrize("victim", ["master", "imap-login", "auth"])
def test_sigstop_fails_level_10_in_time_and_stop_still_stops(rsc: Dovecot, victim: str) -> None:
    inst = rsc.inst
    master = started(rsc)
    client = None
    try:
        if victim == "master":
            frozen = master
        elif victim == "imap-login":
            client, frozen = _idle_imap_login(inst)
        else:
            frozen = wait_for(lambda: inst.children("auth"), 5, "the auth process")[0]
        os.kill(frozen, signal.SIGSTOP)
        wait_for(lambda: procs.state(frozen) == "T", 2, f"{victim} {frozen} to be stopped")

        r = rsc.monitor(10, timeout_ms=HANG_MONITOR_MS)
        expect(r, OCF.ERR_GENERIC)
        expect_reason(r, r"stopped|SIGSTOP|within|timed out")
        assert r.elapsed < HANG_MONITOR_MS / 1000, (
            f"level-10 monitor took {r.elapsed:.2f}s, not inside its {HANG_MONITOR_MS} ms timeout\n{r.describe()}")

        # A frozen Dovecot must be stopped inside the stop timeout (no SIGCONT
        # from us), or the node gets fenced: the stock agent returns 1 after 8 s.
        stopped_cleanly(rsc, timeout_ms=20000)
        assert not procs.alive(frozen)
    finally:
        if client is not None:
            client.close()


def test_stop_of_a_frozen_master_and_children_succeeds_in_time(rsc: Dovecot) -> None:
    inst = rsc.inst
    started(rsc)
    expect(rsc.monitor(20), OCF.SUCCESS)  # so that auth, lmtp and stats processes exist
    frozen = inst.processes()
    assert len(frozen) >= 4, procs.describe(frozen)
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    res = stopped_cleanly(rsc, timeout_ms=10000)
    assert res.elapsed < 10, res.describe()


# ---------------------------------------------------------------------------
# broken but answering: caught at depth 20


def test_unwritable_store_fails_level_20_with_the_servers_reason(rsc: Dovecot) -> None:
    inst = rsc.inst
    started(rsc)
    expect(rsc.monitor(20), OCF.SUCCESS)
    os.chmod(inst.mail_root, 0)
    try:
        r = rsc.monitor(20)
        expect(r, OCF.ERR_GENERIC)
        expect_reason(r, r"SERVERBUG|451")
    finally:
        os.chmod(inst.mail_root, 0o755)
    expect(rsc.monitor(20), OCF.SUCCESS)
    stopped_cleanly(rsc)


def test_stale_dotlock_blocking_select_fails_level_20_in_time_and_start_clears_it(rsc: Dovecot) -> None:
    inst = rsc.inst
    started(rsc)
    expect(rsc.monitor(20), OCF.SUCCESS)  # creates the probe mailbox
    box = inst.maildir("probe", PROBE_MAILBOX)
    assert box.is_dir(), f"the round trip did not create {box}"
    # As a crashed node leaves it: Dovecot here waits 2 min before overriding it.
    lock = box / "dovecot-uidlist.lock"
    lock.write_text("4242:failed-node.example.com")

    r = rsc.monitor(20, timeout_ms=HANG_MONITOR_MS)
    expect(r, OCF.ERR_GENERIC)
    expect_reason(r, r"IMAP")
    assert r.elapsed < HANG_MONITOR_MS / 1000, (
        f"level-20 monitor took {r.elapsed:.2f}s, not inside its {HANG_MONITOR_MS} ms timeout\n{r.describe()}")
    expect(rsc.monitor(10), OCF.SUCCESS)  # depth 10 selects no mailbox

    # Recovery, as after a failover: the lock no live process owns goes.
    stopped_cleanly(rsc)
    res = rsc.start()
    expect(res, OCF.SUCCESS)
    assert not lock.exists(), summary_of(res)
    assert "removed 1 stale file" in summary_of(res)
    expect(rsc.monitor(20), OCF.SUCCESS)
    stopped_cleanly(rsc)


def test_free_space_below_minimum_is_degraded_and_none_left_fails(dovecot_agent: Path, make_dovecot) -> None:
    inst = make_dovecot(mail_tmpfs_mib=8)
    rsc = Dovecot(dovecot_agent, inst, mail_root_mountpoint="true")
    started(rsc)
    expect(rsc.monitor(20), OCF.SUCCESS)

    filler = fill(inst.mail_root, leave_bytes=256 * 1024)  # about 3 % of 8 MiB left
    r = rsc.monitor(20, min_free_percent=10)
    expect(r, OCF.DEGRADED)
    expect_reason(r, r"free space")
    expect(rsc.monitor(10, min_free_percent=10), OCF.SUCCESS)  # store health is a depth-20 matter

    with open(filler, "ab", buffering=0) as f:  # now to the last block
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    r = rsc.monitor(20)
    expect(r, OCF.ERR_GENERIC)
    expect_reason(r, r"space|SERVERBUG|quota|NO ")

    filler.unlink()
    expect(rsc.monitor(20), OCF.SUCCESS)
    stopped_cleanly(rsc)


# ---------------------------------------------------------------------------
# validate-all: no side effects, clear errors


BAD = (OCF.ERR_CONFIGURED,)


@pytest.mark.parametrize("override,codes,reason", [
    pytest.param({"config_file": "/nonexistent/msg-itest/dovecot.conf"}, (OCF.ERR_INSTALLED, OCF.ERR_CONFIGURED),
                 r"config|/nonexistent", id="config_file-missing"),
    pytest.param({"config_file": "dovecot.conf"}, BAD, r"config_file", id="config_file-relative"),
    pytest.param({"binary": "/nonexistent/sbin/dovecot"}, (OCF.ERR_INSTALLED,),
                 r"/nonexistent|installed", id="binary-missing"),
    pytest.param({"imap_port": "imap-ish"}, BAD, r"imap_port", id="imap_port-not-numeric"),
    pytest.param({"pop3_port": "70000"}, BAD, r"pop3_port", id="pop3_port-out-of-range"),
    pytest.param({"lmtp_port": "0"}, BAD, r"lmtp_port", id="lmtp_port-zero"),
    pytest.param({"lmtp_socket": "run/lmtp"}, BAD, r"lmtp_socket", id="lmtp_socket-relative"),
    pytest.param({"probe_tls": "sometimes"}, BAD, r"probe_tls", id="probe_tls-bogus"),
    pytest.param({"probe_timeout": "0"}, BAD, r"probe_timeout", id="probe_timeout-zero"),
    pytest.param({"probe_mailbox": ""}, BAD, r"probe_mailbox", id="probe_mailbox-empty"),
    pytest.param({"mail_root": "mail"}, BAD, r"mail_root", id="mail_root-relative"),
    pytest.param({"mail_root_mountpoint": "maybe"}, BAD, r"mail_root_mountpoint", id="mountpoint-not-boolean"),
    pytest.param({"min_free_percent": "150"}, BAD, r"min_free_percent", id="min_free_percent-over-99"),
    pytest.param({"cert_warn_days": "soon"}, BAD, r"cert_warn_days", id="cert_warn_days-not-numeric"),
    pytest.param({"tmp_quarantine_age": "-1"}, BAD, r"tmp_quarantine_age", id="tmp_quarantine_age-negative"),
    pytest.param({"index_check": "Yes"}, BAD, r"index_check", id="index_check-not-boolean"),
    pytest.param({"credentials_file": "probe.cred"}, BAD, r"credentials_file", id="credentials_file-relative"),
    pytest.param({"credentials_file": "/nonexistent/probe.cred"}, BAD, r"credentials_file",
                 id="credentials_file-missing"),
])
def test_validate_all_rejects_bad_parameters_without_side_effects(
        rsc: Dovecot, override: dict, codes: tuple, reason: str) -> None:
    before = snapshot(rsc.inst.base_dir)
    r = rsc.validate(**override)
    expect(r, *codes)
    expect_reason(r, reason)
    assert snapshot(rsc.inst.base_dir) == before, "validate-all changed the instance's files"
    assert not rsc.inst.processes()
    assert not Path("/nonexistent").exists()


def test_broken_config_file_is_configured_with_dovecots_message(rsc: Dovecot) -> None:
    with rsc.inst.config_file.open("a") as f:
        f.write("no_such_setting = 1\n")
    r = rsc.validate()
    expect(r, OCF.ERR_CONFIGURED)
    expect_reason(r, r"Unknown setting: no_such_setting")
    r = rsc.start()
    expect(r, OCF.ERR_CONFIGURED)
    expect_reason(r, r"no_such_setting")
    assert not rsc.inst.processes(), procs.describe(rsc.inst.processes())


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604], ids=["644", "640", "604"])
def test_credentials_file_readable_by_others_is_configured(rsc: Dovecot, mode: int) -> None:
    inst = rsc.inst
    inst.write_credentials(PROBE_USER, "probe", mode=mode)
    before = snapshot(inst.base_dir)
    r = rsc.validate()
    expect(r, OCF.ERR_CONFIGURED)
    expect_reason(r, rf"credentials_file .*mode {mode:o}")
    assert snapshot(inst.base_dir) == before, "validate-all changed the instance's files"
    # and start refuses to go on with a leaked password
    r = rsc.start()
    expect(r, OCF.ERR_CONFIGURED)
    expect_reason(r, r"credentials_file")
    assert not inst.processes(), procs.describe(inst.processes())


def test_credentials_file_leaking_under_a_running_store_degrades_the_monitor(rsc: Dovecot) -> None:
    """Monitor 6 would make Pacemaker stop a healthy store everywhere over a chmod."""
    inst = rsc.inst
    started(rsc)
    os.chmod(inst.credentials_file, 0o644)
    for level in (10, 20):
        r = rsc.monitor(level)
        expect(r, OCF.DEGRADED)
        expect_reason(r, r"credentials_file .*mode 644.*without a login")
    expect(rsc.monitor(0), OCF.SUCCESS)
    os.chmod(inst.credentials_file, 0o600)
    expect(rsc.monitor(20), OCF.SUCCESS)
    stopped_cleanly(rsc)


def test_credentials_file_not_owned_by_root_is_configured(rsc: Dovecot) -> None:
    os.chown(rsc.inst.credentials_file, 65534, 65534)
    r = rsc.validate()
    expect(r, OCF.ERR_CONFIGURED)
    expect_reason(r, r"owned by root")


def test_wrong_password_fails_level_10_with_a_reason(rsc: Dovecot) -> None:
    started(rsc)
    rsc.inst.write_credentials(PROBE_USER, "not-the-password")
    r = rsc.monitor(10)
    expect(r, OCF.ERR_GENERIC, OCF.ERR_CONFIGURED)
    expect_reason(r, r"LOGIN|auth")
    assert "not-the-password" not in r.stderr + r.stdout, "the password leaked into the agent's output"
    stopped_cleanly(rsc)


def test_validate_all_good_config_creates_and_starts_nothing(rsc: Dovecot) -> None:
    inst = rsc.inst
    before = snapshot(inst.base_dir)
    for level in (0, 10):
        r = rsc("validate-all", check_level=level)
        expect(r, OCF.SUCCESS)
    assert snapshot(inst.base_dir) == before, f"validate-all changed files\n{r.describe()}"
    assert not inst.processes(), "validate-all started something"
    assert not inst.imap_answers(timeout=0.5)


# ---------------------------------------------------------------------------
# reload


def test_reload_keeps_the_master_and_applies_the_config(rsc: Dovecot) -> None:
    inst = rsc.inst
    master = started(rsc)
    text = inst.config_file.read_text().replace("protocol lmtp {", 'login_greeting = reloaded-by-agent\nprotocol lmtp {')
    inst.config_file.write_text(text)
    r = rsc("reload")
    expect(r, OCF.SUCCESS)
    assert inst.master_pid() == master, "reload restarted the master instead of reloading it"

    def greeting() -> bytes:
        with socket.create_connection(("127.0.0.1", inst.imap_port), timeout=3) as s:
            return s.recv(512)
    wait_for(lambda: b"reloaded-by-agent" in greeting(), 10, "the new greeting after reload")
    expect(rsc.monitor(10), OCF.SUCCESS)
    stopped_cleanly(rsc)
