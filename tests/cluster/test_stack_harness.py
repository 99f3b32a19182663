"""The three-node harness itself: nodes isolated from each other and from the host,
fencing that really powers a node off, and teardown that leaves nothing.

Real Corosync + Pacemaker in namespaces (cluster.py NamespaceCluster); run as
root: /usr/bin/python3 -m pytest tests/cluster/test_stack_harness.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from cluster import NamespaceCluster, alive, all_pids, cluster_for, cmdline, environ


def netns_names() -> set[str]:
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in r.stdout.splitlines() if line.strip()}


def processes_of(c: NamespaceCluster) -> list[int]:
    """Everything of this cluster: node inits, their unshare parents, the power
    switch, and every process a node started (they carry its marker)."""
    out = []
    for pid in all_pids():
        if pid == os.getpid() or not alive(pid):
            continue
        argv = cmdline(pid)
        if str(c.base) in argv or environ(pid).get("MSG_CLUSTER_BASE") == str(c.base):
            out.append(pid)
    return out


def left_behind(c: NamespaceCluster) -> list[str]:
    problems = [f"process {p}: {' '.join(cmdline(p))}" for p in processes_of(c)]
    problems += [f"netns {ns}" for ns in netns_names() if ns.startswith(c.tag)]
    if c.base.exists():
        problems.append(f"base dir {c.base}")
    return problems


@pytest.fixture(scope="module")
def cluster() -> Iterator[NamespaceCluster]:
    c = NamespaceCluster(tempfile.mkdtemp(prefix="msg-cluster3-harness-", dir="/var/tmp"))
    try:
        c.start()
        yield c
    finally:
        c.destroy()


def test_three_nodes_form_a_cluster_each_in_its_own_namespaces(cluster: NamespaceCluster) -> None:
    assert sorted(cluster.online_nodes()) == ["node1", "node2", "node3"]
    host_pidns = os.readlink("/proc/self/ns/pid")
    inits = {}
    for n in cluster.nodes:
        pid = n.init_pid(cluster.base)
        assert pid, f"{n.name} has no init"
        inits[n.name] = pid
        assert os.readlink(f"/proc/{pid}/ns/pid") != host_pidns
        r = cluster.run(["sh", "-c", "hostname; crm_node -n; echo $$; ip -o -4 addr show scope global;"
                         " stat -f -c %T /run /dev/shm; ls /usr/sbin/fence_msgtest"],
                        node=n.name, check=True)
        lines = r.stdout.splitlines()
        assert lines[0] == n.name and lines[1] == n.name
        # Its own PID namespace: the shell is a small pid there, not the host's.
        assert int(lines[2]) < 1000
        assert f"inet {n.addr}/24" in lines[3] and len([x for x in lines if " inet " in x]) == 1
        assert lines[4:6] == ["tmpfs", "tmpfs"], "private /run and /dev/shm"
    # Nothing of the cluster in the host's network namespace or file systems.
    host = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    assert cluster.net not in host
    assert not Path("/usr/sbin/fence_msgtest").exists()
    assert not Path(cluster.store_mount).exists()
    # Each node sees only its own processes.
    ps = cluster.run(["ps", "-eo", "args"], node="node1", check=True).stdout
    assert ps.count("corosync") == 1 and ps.count("pacemakerd") == 1


def test_fencing_powers_the_node_off_with_its_addresses(cluster: NamespaceCluster) -> None:
    victim = cluster.node("node3")
    old_init = victim.init_pid(cluster.base)
    # An address the victim holds, as IPaddr2 would hold the VIP.
    cluster.run(["ip", "addr", "add", f"{cluster.net}.99/24", "dev", "eth0"], node="node3", check=True)
    old_pids = [p for p in all_pids() if environ(p).get("MSG_CLUSTER_NODE") == "node3"
                and environ(p).get("MSG_CLUSTER_BASE") == str(cluster.base)]
    assert old_pids, "node3's corosync and pacemakerd carry the node marker"
    cluster.run(["stonith_admin", "--reboot", "node3", "--timeout", "60"], node="node1", check=True,
                timeout=90)
    assert not alive(old_init)
    assert not [p for p in old_pids if alive(p)], "every process of the fenced node is gone"
    log = "\n".join(cluster.power_log())
    assert "fence request: reboot node3" in log and "node3 powered off (fenced (reboot))" in log
    # Fenced by a survivor through the agent, as Pacemaker records it.
    hist = cluster.run(["stonith_admin", "--history", "node3", "--verbose"], node="node1").stdout
    assert "reboot of node3 successful" in hist
    # The reboot brings node3 back with a fresh network namespace: the
    # address it held died with the old one.
    cluster.wait_online(timeout=60)
    new_init = victim.init_pid(cluster.base)
    assert new_init and new_init != old_init
    addrs = cluster.run(["ip", "-o", "-4", "addr", "show", "dev", "eth0"], node="node3", check=True).stdout
    assert f"{cluster.net}.99/" not in addrs
    ping = cluster.run(["ping", "-c1", "-W1", f"{cluster.net}.99"], node="node1")
    assert ping.returncode != 0


def test_a_cut_link_isolates_the_node_and_quorum_follows(cluster: NamespaceCluster) -> None:
    def count(text: str) -> int:
        return sum(text in line for line in cluster.power_log())

    # Pacemaker fences a lost node for what it runs. The survivors' new DC
    # can be node3, back from the test before: it never saw node2 join, so it
    # takes a node2 with nothing active for one that went down cleanly and
    # fences nobody (join_make_offer in Pacemaker's controld_join_dc.c).
    # Nodes of the stack always run something; so does node2 here.
    cluster.run(["cibadmin", "--create", "--scope", "resources", "--xml-text",
                 '<primitive id="held-by-node2" class="ocf" provider="pacemaker" type="Dummy"/>'],
                node="node1", check=True)
    cluster.run(["cibadmin", "--create", "--scope", "constraints", "--xml-text",
                 '<rsc_location id="held-by-node2-on-node2" rsc="held-by-node2" node="node2" score="INFINITY"/>'],
                node="node1", check=True)
    cluster.run(["crm_resource", "--wait", "--timeout=60s"], node="node1", check=True, timeout=90)
    where = cluster.run(["crm_resource", "--locate", "--resource", "held-by-node2"], node="node1", check=True)
    assert "is running on: node2" in where.stdout, where.stdout

    requests_before, fenced_before = count("fence request: reboot node2"), count("node2 powered off (fenced")
    cluster.hold_fencing("node2")  # keep the cut-off node alive while we look at it
    try:
        cluster.cut_link("node2")
        end = time.monotonic() + 60
        while time.monotonic() < end:
            q = cluster.run(["corosync-quorumtool", "-s"], node="node2").stdout
            if "Quorate:          No" in q:
                break
            time.sleep(0.2)
        assert "Quorate:          No" in q, q
        q1 = cluster.run(["corosync-quorumtool", "-s"], node="node1").stdout
        assert "Quorate:          Yes" in q1, q1
        # The majority asks to fence the node it lost (held until we release it).
        end = time.monotonic() + 60
        while count("fence request: reboot node2") == requests_before:
            assert time.monotonic() < end, "\n".join(cluster.power_log())
            time.sleep(0.2)
    finally:
        cluster.release_fencing("node2")
        cluster.restore_link("node2")
    end = time.monotonic() + 60
    while count("node2 powered off (fenced") == fenced_before:
        assert time.monotonic() < end, "\n".join(cluster.power_log())
        time.sleep(0.2)
    cluster.wait_online(timeout=60)  # rebooted, it rejoins


def test_teardown_leaves_nothing(cluster: NamespaceCluster) -> None:
    cluster.destroy()  # what the fixture's finalizer does; a second call is a no-op
    assert left_behind(cluster) == []


def test_destroy_after_a_crash_leaves_nothing() -> None:
    # Its own cluster (after the module's one): kill the harness's power
    # switch outright, as a crashed test run would leave things, then let
    # `cluster.py destroy` find the leftovers by the base dir alone.
    base = tempfile.mkdtemp(prefix="msg-cluster3-crash-", dir="/var/tmp")
    c = NamespaceCluster(base)
    try:
        c.start()
        powerd = c._powerd_pid()
        assert powerd
        os.kill(powerd, signal.SIGKILL)
        time.sleep(0.5)
        assert c.running_nodes() == ["node1", "node2", "node3"], "nodes outlive a crashed harness"
        r = subprocess.run(["/usr/bin/python3", str(Path(__file__).with_name("cluster.py")), "--base", base,
                            "destroy"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert left_behind(c) == []
    finally:
        cluster_for(base).destroy()
