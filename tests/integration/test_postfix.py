"""ocf:messaging:postfix against a real Postfix (Debian package), issue #2 "Tests".

Every test gets its own Postfix instance (own config_dir, queue, loopback port)
from the make_postfix fixture, drives it through the BUILD-TREE agent, and
leaves nothing behind: the fixture SIGKILLs the instance's processes by pid,
unmounts, unregisters and deletes, even when an assertion fails.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

import procs
from scratch_fs import fill
from agent_checks import (expect_lifecycle, expect_meta_data, expect_ocf_tester_passes,
                          expect_stopped_cleanly)
from ocf import OCF, AgentResource, Result, expect, expect_reason, snapshot, wait_for
from postfix_instance import PostfixInstance, free_port, self_signed_cert, settle

START_MS = 20000
STOP_MS = 30000
MONITOR_MS = 10000
# Short enough to keep the hang tests fast, long enough for a healthy check.
HANG_MONITOR_MS = 6000
PROBE_RECIPIENT = "postmaster@example.com"
PROBE_SENDER = "probe@example.org"


class Resource(AgentResource):
    """ocf:messaging:postfix bound to one instance, probing its SMTP port with the probe addresses."""

    def __init__(self, agent: Path, inst: PostfixInstance, instance: str = "itest", **params: object):
        super().__init__(agent, {
            "config_dir": inst.config_dir,
            "probe_host": "127.0.0.1",
            "probe_port": inst.smtp_port,
            "probe_sender": PROBE_SENDER,
            "probe_recipient": PROBE_RECIPIENT,
            **params,
        }, instance=instance, start_ms=START_MS, stop_ms=STOP_MS, monitor_ms=MONITOR_MS)
        self.inst = inst


@pytest.fixture
def rsc(postfix_agent: Path, postfix: PostfixInstance) -> Resource:
    return Resource(postfix_agent, postfix)


def started(r: Resource) -> int:
    """Start through the agent, assert success and a listening master; return its pid."""
    res = r.start()
    expect(res, OCF.SUCCESS)
    pid = r.inst.master_pid()
    assert pid, f"start returned 0 but no live master in {r.inst.pid_file}\n{res.describe()}"
    assert r.inst.smtp_answers(), "start returned 0 but SMTP does not answer"
    return pid


def stopped_cleanly(r: Resource, timeout_ms: int = STOP_MS) -> Result:
    """Stop through the agent; assert rc 0 inside the stop timeout and no process of the instance left."""
    return expect_stopped_cleanly(r, r.inst.processes, timeout_ms)


def idle_smtpd(inst: PostfixInstance) -> int:
    """Make sure an idle smtpd child exists (serve one connection) and return its pid."""
    assert inst.smtp_answers(), "SMTP does not answer"
    return wait_for(lambda: inst.children("smtpd"), 5, "an idle smtpd")[0]


def break_main_cf(inst: PostfixInstance) -> None:
    """A syntax error postconf/postfix refuse ("missing '=' after attribute name")."""
    with inst.main_cf.open("a") as f:
        f.write("this line is not a parameter assignment\n")
    settle(inst.main_cf)


# ---------------------------------------------------------------------------
# meta-data and ocf-tester


def test_meta_data_advertises_spec_parameters_and_depths(postfix_agent: Path) -> None:
    expect_meta_data(postfix_agent, ("binary", "config_dir", "probe_host", "probe_port", "probe_tls", "cert_warn_days",
                                     "queue_warn", "bind_address"))


def test_ocf_tester_passes(postfix_agent: Path, postfix: PostfixInstance) -> None:
    expect_ocf_tester_passes(postfix_agent, {"config_dir": postfix.config_dir, "probe_host": "127.0.0.1",
                                             "probe_port": postfix.smtp_port}, postfix.processes, timeout_s=180)


def test_unknown_action_is_unimplemented(rsc: Resource) -> None:
    expect(rsc("frobnicate"), OCF.ERR_UNIMPLEMENTED)


# ---------------------------------------------------------------------------
# lifecycle at every depth


@pytest.mark.parametrize("level", [0, 10, 20])
def test_start_monitor_stop_at_level(rsc: Resource, level: int) -> None:
    expect_lifecycle(rsc, level, lambda: started(rsc), rsc.inst.master_pid, lambda: stopped_cleanly(rsc))


@pytest.mark.parametrize("override,unmount_queue", [
    pytest.param({"config_dir": "/nonexistent/msg-itest/etc"}, False, id="config_dir-missing-store-not-mounted"),
    pytest.param({}, True, id="queue_directory-missing-store-not-mounted"),
    pytest.param({"binary": "/nonexistent/sbin/postfix"}, False, id="binary-missing-not-installed"),
])
def test_probe_where_postfix_cannot_run_is_not_running(rsc: Resource, override: dict, unmount_queue: bool) -> None:
    if unmount_queue:  # config_dir is local, queue_directory on the shared store
        rsc.inst.queue_dir.rename(rsc.inst.queue_dir.with_name("spool.unmounted"))
    r = rsc.probe(**override)
    expect(r, OCF.NOT_RUNNING)
    assert not Path("/nonexistent").exists()
    if unmount_queue:
        assert not rsc.inst.queue_dir.exists(), "the probe created queue_directory"


# ---------------------------------------------------------------------------
# crashes and hangs


@pytest.mark.parametrize("victim", ["master", "every-process"])
def test_kill_9_detected_then_start_recovers(rsc: Resource, victim: str) -> None:
    master = started(rsc)
    pids = [master] if victim == "master" else rsc.inst.processes()  # every-process: a node crash
    assert not procs.kill_and_wait(pids, 5)

    for level in (0, 10):
        # 7 for "cleanly" stopped is debatable after a crash; the spec allows 1.
        r = rsc.monitor(level)
        expect(r, OCF.NOT_RUNNING, OCF.ERR_GENERIC)
    expect(rsc.probe(), OCF.NOT_RUNNING, OCF.ERR_GENERIC)

    res = rsc.start()
    expect(res, OCF.SUCCESS)
    new_master = rsc.inst.master_pid()
    assert new_master and new_master != master, res.describe()
    expect(rsc.monitor(10), OCF.SUCCESS)
    expect(rsc.monitor(20), OCF.SUCCESS)
    stopped_cleanly(rsc)


def test_deleted_pid_file_under_running_postfix_is_not_clean_stop(rsc: Resource) -> None:
    """master.pid removed by hand while Postfix runs: not "cleanly stopped" (7), and
    the recovery Pacemaker then runs (stop, start) must stop the orphans and start one
    Postfix. The stock agent says 7 and its start then fails."""
    inst = rsc.inst
    master = started(rsc)
    inst.pid_file.unlink()
    for r in (rsc.monitor(0), rsc.monitor(10), rsc.probe()):
        assert r.rc != OCF.NOT_RUNNING, f"Postfix still runs, yet:\n{r.describe()}"
    stopped_cleanly(rsc)
    assert not procs.alive(master)
    started(rsc)
    expect(rsc.monitor(10), OCF.SUCCESS)
    stopped_cleanly(rsc)


@pytest.mark.parametrize("victim", ["master", "idle-smtpd"])
def test_sigstop_fails_level_10_in_time_and_stop_still_stops(rsc: Resource, victim: str) -> None:
    master = started(rsc)
    smtpd = idle_smtpd(rsc.inst)  # an idle smtpd exists in real life; it still answers with a frozen master
    frozen = master if victim == "master" else smtpd
    os.kill(frozen, signal.SIGSTOP)
    wait_for(lambda: procs.state(frozen) == "T", 2, f"{victim} {frozen} to be stopped")

    r = rsc.monitor(10, timeout_ms=HANG_MONITOR_MS)
    expect(r, OCF.ERR_GENERIC)
    expect_reason(r)
    assert r.elapsed < HANG_MONITOR_MS / 1000, (
        f"level-10 monitor took {r.elapsed:.2f}s, not inside its {HANG_MONITOR_MS} ms timeout\n{r.describe()}")

    # A frozen Postfix must be stopped inside the stop timeout (no SIGCONT), or the node gets fenced.
    stopped_cleanly(rsc, timeout_ms=20000)
    assert not procs.alive(frozen)


def test_stop_kills_a_wedged_instance_that_ignores_term(rsc: Resource) -> None:
    """Every process of the instance is held in ptrace-stop, like daemons hung in
    the kernel: `postfix stop`, TERM and CONT do nothing, only KILL works.  Stop
    must escalate to KILL and return 0 inside its timeout, or the node is fenced."""
    started(rsc)
    idle_smtpd(rsc.inst)
    victims = rsc.inst.processes()
    with procs.Wedge(victims):
        stopped_cleanly(rsc, timeout_ms=10000)
        assert not [p for p in victims if procs.alive(p)]


# ---------------------------------------------------------------------------
# broken configuration under a running Postfix


def test_broken_main_cf_under_running_postfix(rsc: Resource) -> None:
    inst = rsc.inst
    started(rsc)
    # Warm the daemons a running Postfix uses (as on a live gateway), so they need not re-read main.cf.
    subject, reply = inst.send_mail()
    assert reply[0] == 250, reply
    wait_for(lambda: any(subject in m for m in inst.delivered()), 10, "delivery before the breakage")
    idle_smtpd(inst)

    break_main_cf(inst)

    r = rsc.validate()
    expect(r, OCF.ERR_CONFIGURED)
    expect_reason(r)

    expect(rsc.monitor(0), OCF.SUCCESS)
    expect(rsc.monitor(10), OCF.SUCCESS)
    # The stock agent's probe says "not running" here, inviting a second copy elsewhere.
    expect(rsc.probe(), OCF.SUCCESS)
    r = rsc.monitor(20)
    expect(r, OCF.DEGRADED)
    expect_reason(r)

    # `postfix stop` refuses a broken main.cf; the agent must stop every process anyway.
    procs_before = inst.processes()
    assert len(procs_before) >= 5, procs.describe(procs_before)
    stopped_cleanly(rsc)


def test_start_with_broken_main_cf_fails_with_reason(rsc: Resource) -> None:
    break_main_cf(rsc.inst)
    r = rsc.start()
    expect(r, OCF.ERR_CONFIGURED, OCF.ERR_GENERIC)
    expect_reason(r)
    assert r.elapsed < START_MS / 1000
    assert not rsc.inst.processes(), procs.describe(rsc.inst.processes())


# ---------------------------------------------------------------------------
# mail safety and queue health


def test_mail_accepted_before_kill_9_is_delivered_after_start(postfix_agent: Path, make_postfix) -> None:
    # Delivery is down (LMTP target refuses) and the retry is an hour away,
    # so only the agent's `postfix flush` after the restart can deliver.
    dead = free_port()
    inst = make_postfix(virtual_transport=f"lmtp:inet:127.0.0.1:{dead}",
                        minimal_backoff_time="3600s", maximal_backoff_time="4000s")
    rsc = Resource(postfix_agent, inst)
    started(rsc)

    subjects = []
    for _ in range(3):
        subject, reply = inst.send_mail()
        assert reply[0] == 250, reply
        subjects.append(subject)
    wait_for(lambda: inst.queue_count("deferred") == 3, 15, "3 messages in the deferred queue")

    assert not procs.kill_and_wait(inst.processes(), 5)
    assert inst.queue_count("deferred") == 3

    inst.set_main(virtual_transport="virtual")  # the destination is back
    r = rsc.start()
    expect(r, OCF.SUCCESS)

    def all_delivered():
        got = inst.delivered()
        return all(sum(s in m for m in got) == 1 for s in subjects)

    try:
        wait_for(all_delivered, 20, "the 3 messages to be delivered after start (postfix flush)")
    except AssertionError as e:
        raise AssertionError(f"{e}; deferred={inst.queue_count('deferred')} "
                             f"delivered={len(inst.delivered())}\n{inst.maillog_tail()}") from None
    assert len(inst.delivered()) == 3
    assert inst.queue_count("deferred") == 0
    stopped_cleanly(rsc)


def test_deferred_queue_over_queue_warn_is_degraded_at_level_20(postfix_agent: Path, make_postfix) -> None:
    inst = make_postfix(virtual_transport=f"lmtp:inet:127.0.0.1:{free_port()}",
                        minimal_backoff_time="3600s", maximal_backoff_time="4000s")
    rsc = Resource(postfix_agent, inst)
    started(rsc)
    for _ in range(3):
        assert inst.send_mail()[1][0] == 250
    wait_for(lambda: inst.queue_count("deferred") == 3, 15, "3 deferred messages")

    expect(rsc.monitor(20, queue_warn=100), OCF.SUCCESS)
    r = rsc.monitor(20, queue_warn=1)
    expect(r, OCF.DEGRADED)
    expect_reason(r, r"defer|queue")
    expect(rsc.monitor(10, queue_warn=1), OCF.SUCCESS)  # queue health is a level-20 matter
    stopped_cleanly(rsc)


def test_full_queue_filesystem_fails_level_20(postfix_agent: Path, make_postfix) -> None:
    inst = make_postfix(queue_tmpfs_mib=8)
    rsc = Resource(postfix_agent, inst)
    started(rsc)
    expect(rsc.monitor(20), OCF.SUCCESS)

    filler = fill(inst.queue_dir)
    st = os.statvfs(inst.queue_dir)
    assert st.f_bavail == 0, f"{inst.queue_dir} not full: {st.f_bavail} blocks free"
    r = rsc.monitor(20)
    expect(r, OCF.ERR_GENERIC)
    expect_reason(r, r"452|insufficient system storage")

    filler.unlink()
    expect(rsc.monitor(20), OCF.SUCCESS)
    stopped_cleanly(rsc)


def test_unwritable_queue_directory_fails_level_20_with_that_reason(rsc: Resource) -> None:
    """Depth 20 checks that the queue takes files (as mail_owner: root passes any
    permission test); the reason must name the directory, not a symptom."""
    inst = rsc.inst
    started(rsc)
    incoming = inst.queue_dir / "incoming"
    mode = incoming.stat().st_mode & 0o7777
    incoming.chmod(0)
    try:
        expect(rsc.monitor(10), OCF.SUCCESS)
        r = rsc.monitor(20)
        expect(r, OCF.ERR_GENERIC)
        expect_reason(r, r"incoming.*(writ|permission)")
        assert r.elapsed < MONITOR_MS / 1000
    finally:
        incoming.chmod(mode)
    expect(rsc.monitor(20), OCF.SUCCESS)
    stopped_cleanly(rsc)


def test_level_20_reports_bind_address_mismatch(postfix_agent: Path, make_postfix) -> None:
    """A gateway must send from the service IP; smtp_bind_address unset means the node's own address."""
    inst = make_postfix()
    rsc = Resource(postfix_agent, inst, bind_address="127.0.0.1")
    started(rsc)
    r = rsc.monitor(20)
    expect(r, OCF.DEGRADED, OCF.ERR_GENERIC)
    expect_reason(r, r"smtp_bind_address|127\.0\.0\.1")
    expect(rsc.monitor(10), OCF.SUCCESS)

    inst.set_main(smtp_bind_address="127.0.0.1")
    expect(rsc.monitor(20), OCF.SUCCESS)
    stopped_cleanly(rsc)


def test_starttls_probe_verifies_the_certificate_and_warns_before_expiry(postfix_agent: Path, make_postfix) -> None:
    inst = make_postfix()
    cert, key = self_signed_cert(inst.base_dir / "tls", days=30)
    inst.enable_tls(cert, key)
    rsc = Resource(postfix_agent, inst, probe_tls="starttls", probe_ca_file=cert, cert_warn_days=14)
    started(rsc)
    expect(rsc.monitor(10), OCF.SUCCESS)
    expect(rsc.monitor(20), OCF.SUCCESS)

    # 30 days left, warn at 60: degraded at depth 20 only, where expiry is checked
    r = rsc.monitor(20, cert_warn_days=60)
    expect(r, OCF.DEGRADED)
    expect_reason(r, r"expir")
    expect(rsc.monitor(10, cert_warn_days=60), OCF.SUCCESS)

    # a certificate the probe cannot verify fails at any TLS depth
    other_ca, _ = self_signed_cert(inst.base_dir / "other-ca", days=30, stem="other")
    for level in (10, 20):
        r = rsc.monitor(level, probe_ca_file=other_ca)
        expect(r, OCF.ERR_GENERIC)
        expect_reason(r, r"certif|verif")
    stopped_cleanly(rsc)


def test_two_instances_side_by_side_are_managed_independently(postfix_agent: Path, make_postfix) -> None:
    """An internal MTA and a gateway on one node: failing, restarting and stopping
    one must not touch the other."""
    a, b = make_postfix(), make_postfix()
    ra = Resource(postfix_agent, a)
    rb = Resource(postfix_agent, b, instance="itest-b")
    a_master, b_master = started(ra), started(rb)
    expect(ra.monitor(20), OCF.SUCCESS)
    expect(rb.monitor(20), OCF.SUCCESS)

    assert not procs.kill_and_wait([a_master], 5)
    expect(ra.monitor(0), OCF.NOT_RUNNING, OCF.ERR_GENERIC)
    expect(rb.monitor(10), OCF.SUCCESS)
    started(ra)
    stopped_cleanly(ra)

    assert b.master_pid() == b_master, "the other instance's master changed"
    expect(rb.monitor(20), OCF.SUCCESS)
    stopped_cleanly(rb)


# ---------------------------------------------------------------------------
# process identity


@pytest.fixture(params=["sleep", "other-postfix-master"])
def stranger(request, sleeper: int, make_postfix) -> tuple[int, PostfixInstance | None]:
    """A live process that is NOT this instance's master: a plain sleep, or the
    master of a second Postfix instance on the same node (same exe!)."""
    if request.param == "sleep":
        return sleeper, None
    other = make_postfix(start=True)
    return other.master_pid(), other


def test_stale_pid_file_naming_a_stranger(rsc: Resource, stranger) -> None:
    pid, other = stranger
    inst = rsc.inst
    inst.write_pid_file(pid)

    expect(rsc.probe(), OCF.NOT_RUNNING)
    expect(rsc.monitor(0), OCF.NOT_RUNNING)
    expect(rsc.monitor(10), OCF.NOT_RUNNING)
    # stop of a stopped resource must not signal whatever the pid file names
    expect(rsc.stop(), OCF.SUCCESS)
    assert procs.alive(pid), "stop killed the unrelated process named by the stale pid file"

    started(rsc)
    assert inst.master_pid() != pid
    expect(rsc.monitor(10), OCF.SUCCESS)
    stopped_cleanly(rsc)
    assert procs.alive(pid), "start/stop killed the unrelated process named by the stale pid file"
    if other is not None:
        assert other.smtp_answers(), "the other Postfix instance stopped answering"


# ---------------------------------------------------------------------------
# validate-all: no side effects, clear errors


BAD = (OCF.ERR_CONFIGURED, OCF.ERR_ARGS)


@pytest.mark.parametrize("override,codes,reason", [
    # A missing config_dir is node-local (store not mounted here): 5, as the stock agent says, or 6.
    pytest.param({"config_dir": "/nonexistent/msg-itest/etc"}, (OCF.ERR_INSTALLED, OCF.ERR_CONFIGURED),
                 r"config|/nonexistent", id="config_dir-missing"),
    pytest.param({"binary": "/nonexistent/sbin/postfix"}, (OCF.ERR_INSTALLED,),
                 r"/nonexistent|binary|postfix", id="binary-missing"),
    pytest.param({"probe_port": "smtp-ish"}, BAD, r"probe_port|port", id="probe_port-not-numeric"),
    pytest.param({"probe_port": "70000"}, BAD, r"probe_port|port", id="probe_port-out-of-range"),
    pytest.param({"probe_tls": "sometimes"}, BAD, r"probe_tls|tls", id="probe_tls-bogus"),
    pytest.param({"cert_warn_days": "soon"}, BAD, r"cert_warn_days", id="cert_warn_days-not-numeric"),
    pytest.param({"queue_warn": "many"}, BAD, r"queue_warn", id="queue_warn-not-numeric"),
])
def test_validate_all_rejects_bad_parameters_without_side_effects(
        rsc: Resource, override: dict, codes: tuple, reason: str) -> None:
    before = snapshot(rsc.inst.base_dir)
    r = rsc.validate(**override)
    expect(r, *codes)
    expect_reason(r, reason)
    assert snapshot(rsc.inst.base_dir) == before, "validate-all changed the instance's files"
    assert not rsc.inst.processes()
    assert not Path("/nonexistent").exists()


def test_validate_all_good_config_creates_and_starts_nothing(rsc: Resource) -> None:
    inst = rsc.inst
    before = snapshot(inst.base_dir)
    r = rsc.validate()
    expect(r, OCF.SUCCESS)
    assert snapshot(inst.base_dir) == before, f"validate-all changed files\n{r.describe()}"
    assert not inst.processes(), "validate-all started something"
    assert not inst.smtp_answers(timeout=0.5)

    # `postfix check` would quietly recreate a missing queue directory: validate-all must not.
    (inst.queue_dir / "hold").rmdir()
    before = snapshot(inst.base_dir)
    r = rsc.validate()
    assert snapshot(inst.base_dir) == before, f"validate-all changed files\n{r.describe()}"
    assert not (inst.queue_dir / "hold").exists(), "validate-all recreated queue_directory/hold"
    assert not inst.processes(), "validate-all started something"


# ---------------------------------------------------------------------------
# reload


def test_reload_applies_changed_main_cf(rsc: Resource) -> None:
    inst = rsc.inst
    master = started(rsc)
    inst.set_main(smtpd_banner="$myhostname ESMTP reloaded-by-agent")
    r = rsc("reload", timeout_ms=START_MS)
    expect(r, OCF.SUCCESS)
    assert inst.master_pid() == master, "reload restarted the master instead of reloading it"

    def banner():
        with socket.create_connection(("127.0.0.1", inst.smtp_port), timeout=3) as s:
            return s.recv(512)
    wait_for(lambda: b"reloaded-by-agent" in banner(), 10, "the new banner after reload")
    expect(rsc.monitor(10), OCF.SUCCESS)

    # reload-agent: Pacemaker changed only reloadable parameters; Postfix keeps running
    r = rsc("reload-agent", probe_timeout=5, queue_warn=50)
    expect(r, OCF.SUCCESS)
    assert inst.master_pid() == master, "reload-agent restarted Postfix"
    stopped_cleanly(rsc)
