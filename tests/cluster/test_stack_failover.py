"""Issue #7's five scenarios on a real three-node cluster running the whole stack.

One cluster for the module (tests/cluster/cluster.py NamespaceCluster: three
nodes in their own namespaces, fence_msgtest, stonith-enabled=true), one
store prepared by stack_store.prepare_store() on its shared dir, the CIB from
cib-templates/render.  Between tests the fail counts are cleared and the
cluster is whole again; the stack stays wherever it runs.  Every check reads
the cluster's own records (op history call ids, crm_mon, the fence history,
the nodes' logs); times are printed, never asserted.

Run as root: MSG_BUILD_DIR=<build> /usr/bin/python3 -m pytest tests/cluster/test_stack_failover.py
"""

from __future__ import annotations

import imaplib
import tempfile
import time
from typing import Iterator

import pytest

from cluster import NamespaceCluster
from cluster_records import crm_mon, last_ops, wait_for
from mail_client import MailClient
from stack_cluster import Stack, build_dir, measure_migration, measure_node_kill, stack_cluster

# What issue #7 orders: store -> IP -> directory -> mailbox store -> transport
# (internal MTA, then the gateway relaying to it) -> news -> attendant.
ISSUE_ORDER = ["Filesystem", "IPaddr2", "slapd", "dovecot", "postfix", "postfix", "innd", "mailflow"]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    c = stack_cluster(tempfile.mkdtemp(prefix="msg-cluster3-stack-", dir="/var/tmp"))
    try:
        c.start()
        s = Stack(c, "messaging")
        s.prepare()
        yield s
    finally:
        c.destroy()


@pytest.fixture
def whole(stack: Stack) -> Stack:
    """Every node online, no fail counts; the stack loaded and running somewhere."""
    stack.c.wait_online(timeout=120)
    if not stack.resources_active():
        stack.load("crm")
    stack.c.run(["crm_resource", "--cleanup"], timeout=60)
    stack.wait_running()
    return stack


def report(capsys: pytest.CaptureFixture, text: str) -> None:
    with capsys.disabled():
        print(f"\n    {text}")


def agent_types(stack: Stack, order: list[str]) -> list[str]:
    x = crm_mon(stack.c)
    types = {r.get("id"): r.get("resource_agent", "").rsplit(":", 1)[-1] for r in x.iter("resource")}
    return [types[r] for r in order]


def fence_requests(c: NamespaceCluster, node: str) -> int:
    """How many times the power switch was asked to fence node."""
    return sum(f"fence request: reboot {node}" in line for line in c.power_log())


def answers_on_vip(stack: Stack) -> bool:
    from stack_cluster import in_client_netns
    return bool(in_client_netns(stack.c, lambda: stack.smtp_answers() and stack.imap_login() is not None))


@pytest.mark.parametrize("fmt", ["crm", "pcs"])
def test_rendering_loads_and_the_stack_starts_on_one_node_in_order(stack: Stack, fmt: str,
                                                                   capsys: pytest.CaptureFixture) -> None:
    if stack.resources_active():
        stack.unload()
    t0 = time.monotonic()
    stack.load(fmt)
    node = stack.wait_running()
    took = time.monotonic() - t0
    ids = stack.resource_ids()
    order = stack.start_order(node)
    assert order == ids, f"started on {node} in the order {order}, rendered order {ids}"
    assert agent_types(stack, order) == ISSUE_ORDER
    assert wait_for("SMTP and IMAP on the VIP", lambda: answers_on_vip(stack), 60)
    report(capsys, f"{fmt}: the stack started on {node} in {took:.1f}s, in the order {' -> '.join(order)}")


def test_a_killed_service_restarts_in_place_and_the_others_never_stop(whole: Stack,
                                                                      capsys: pytest.CaptureFixture) -> None:
    stack, victim = whole, "dovecot"
    node = stack.wait_running()
    before = last_ops(stack.c)
    old_pid = stack.kill_service(victim, node)
    t0 = time.monotonic()

    def restarted() -> bool:
        op = last_ops(stack.c).get((node, victim))
        return (op is not None and op.operation == "start" and op.rc == 0
                and op.call_id > before[(node, victim)].call_id and stack.running_on() == node)

    wait_for(f"{victim} restarted on {node}", restarted, 120)
    took = time.monotonic() - t0
    assert stack.fail_count(victim, node) == 1
    assert stack.main_pid(victim, node) != old_pid
    after = last_ops(stack.c)
    for rsc in stack.resource_ids():
        if rsc == victim:
            continue
        # No stop, no start: the resource's last operation is the very one it had.
        assert after[(node, rsc)].call_id == before[(node, rsc)].call_id, (
            f"{rsc} was touched while {victim} recovered: {before[(node, rsc)]} -> {after[(node, rsc)]}")
    assert wait_for("SMTP and IMAP on the VIP", lambda: answers_on_vip(stack), 60)
    report(capsys, f"kill -9 of {victim} on {node}: restarted in place {took:.1f}s later; "
                   "no other resource stopped or started")


def test_failures_past_migration_threshold_move_the_whole_stack_in_order(whole: Stack,
                                                                          capsys: pytest.CaptureFixture) -> None:
    stack = whole
    f = measure_migration(stack, "dovecot")
    assert f.to_node != f.from_node
    order = stack.start_order(f.to_node)
    assert order == stack.resource_ids(), f"restarted on {f.to_node} in the order {order}"
    assert not [r for r, nodes in stack.resources_active().items() if f.from_node in nodes]
    report(capsys, f.line())


def test_node_kill_under_continuous_mail_loses_nothing(whole: Stack, capsys: pytest.CaptureFixture) -> None:
    stack = whole
    c = stack.c
    v = stack.values
    client = MailClient(c.vip, v.ports["smtp"], v.user, netns=c.client_netns, interval_s=0.05)
    with client:
        client.wait_accepted(10, timeout_s=60)
        f = measure_node_kill(stack)   # fenced, back on a survivor, mail from before delivered
        n = len(client.accepted)
        client.wait_accepted(n + 10, timeout_s=60)  # and mail keeps flowing after the failover
    hist = c.run(["stonith_admin", "--history", f.from_node, "--verbose"], node=f.to_node).stdout
    assert f"reboot of {f.from_node} successful" in hist, hist
    def nothing_missing() -> bool:
        try:
            return not client.missing(c.vip, v.ports["imap"], v.user, v.password)
        except (OSError, RuntimeError, imaplib.IMAP4.error):
            return False

    # Mail queued on the dead node's store is delivered by the survivor: wait
    # (bounded) for the queues to drain, then nothing may be missing.
    wait_for("every accepted message in the mailbox", nothing_missing, 120, 1.0)
    assert client.missing(c.vip, v.ports["imap"], v.user, v.password) == []
    report(capsys, f.line())
    report(capsys, f"mail client: {client.summary()}; all {len(client.accepted)} accepted messages delivered")


def test_a_cut_off_node_stops_the_stack_and_never_recovers_without_quorum(whole: Stack,
                                                                          capsys: pytest.CaptureFixture) -> None:
    stack = whole
    c = stack.c
    cut = stack.wait_running()
    log = c.node(cut).dir / "log-pacemaker" / "pacemaker.log"
    recoveries_before = log.read_text(errors="replace").count(" recovered ")
    fenced_before = fence_requests(c, cut)
    c.hold_fencing(cut)  # the majority's fence request waits: look at the cut-off node meanwhile
    try:
        c.cut_link(cut)
        t0 = time.monotonic()
        wait_for(f"{cut} to lose quorum",
                 lambda: "Quorate:          No" in c.run(["corosync-quorumtool", "-s"], node=cut).stdout, 60)
        wait_for(f"{cut} to stop the stack (no-quorum-policy=stop)",
                 lambda: not [r for r, nodes in stack.resources_active(node=cut).items()], 120, 0.5)
        stopped = time.monotonic() - t0
        # msg-recover on the inquorate node refuses, with its reason.
        conf = stack.values.resources["postfix-internal"].params["config_dir"]
        r = c.run([str(build_dir() / "libexec" / "msg-recover"), "postfix", "--config-dir", conf], node=cut)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert "not quorate" in r.stderr, r.stderr
        # The majority has quorum and waits for fencing before it takes over.
        others = [n.name for n in c.nodes if n.name != cut]
        q = c.run(["corosync-quorumtool", "-s"], node=others[0]).stdout
        assert "Quorate:          Yes" in q, q
        wait_for(f"the majority's request to fence {cut}",
                 lambda: fence_requests(c, cut) > fenced_before, 60)
    finally:
        c.release_fencing(cut)
        c.restore_link(cut)
    new = stack.wait_running(not_on=cut)
    took = time.monotonic() - t0
    # No recovery ran on the cut-off node while it was inquorate (the agents log
    # msg-recover's summary, "recovered ...", when it does).
    assert log.read_text(errors="replace").count(" recovered ") == recoveries_before
    hist = c.run(["stonith_admin", "--history", cut, "--verbose"], node=new).stdout
    assert f"reboot of {cut} successful" in hist, hist
    c.wait_online(timeout=120)
    report(capsys, f"{cut} cut off: it stopped the stack {stopped:.1f}s after the cut; msg-recover there: "
                   f"{r.stderr.strip()!r}; after fencing the stack runs on {new}, {took:.1f}s after the cut "
                   "(fencing was held while we looked)")
