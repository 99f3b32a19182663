"""Self-test of the cluster harness (run as root: /usr/bin/python3 -m pytest tests/cluster).

Not part of scripts/test: it needs the host's single Corosync/Pacemaker slot
and takes about half a minute. Run it after changing cluster.py.
"""

from __future__ import annotations

import os
import signal
import stat
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from cluster import PCMK_DIRS, Cluster, alive, environ, host_slot, proc_state


def marked_processes(base: Path) -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and alive(int(p))
            and environ(int(p)).get("MSG_CLUSTER_BASE") == str(base)]


def dir_state() -> dict[str, tuple[int, int, int, tuple[str, ...]]]:
    out = {}
    for d, *_ in PCMK_DIRS:
        if d.is_dir():
            st = d.stat()
            out[str(d)] = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), tuple(sorted(os.listdir(d))))
    return out


@pytest.fixture(scope="module")
def slot() -> Iterator[None]:
    with host_slot():  # one cluster per host: wait until the others' are gone
        yield


@pytest.fixture(scope="module")
def before(slot: None) -> dict:
    return dir_state()


@pytest.fixture(scope="module")
def cluster(before: dict) -> Iterator[Cluster]:
    base = Path(tempfile.mkdtemp(prefix="msg-cluster-test-", dir="/var/tmp"))
    c = Cluster(base)
    try:
        c.start()
        yield c
    finally:
        c.destroy()


def test_start_is_idempotent(cluster: Cluster) -> None:
    assert cluster.online_nodes() == ["node1"]
    assert cluster.start() == 0.0  # already up: nothing restarted
    pids = cluster.running_pids()
    assert set(pids) == {"init", "corosync", "pacemakerd"}


def test_daemon_killed_under_the_cluster_is_reaped_at_once(cluster: Cluster) -> None:
    # ocf:heartbeat:anything backgrounds the daemon: it is orphaned and
    # adopted by the node init, which must reap it when it dies.
    cluster.run(["crm", "-D", "plain", "configure", "primitive", "sleeper", "ocf:heartbeat:anything",
                 "params", "binfile=/bin/sleep", "cmdline_options=600",
                 f"pidfile={cluster.base}/sleeper.pid", "op", "monitor", "interval=60s"], check=True)
    cluster.run(["crm_resource", "--wait", "--timeout=60s"], check=True)
    pid = int((cluster.base / "sleeper.pid").read_text())
    init = cluster.running_pids()["init"]
    assert open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1] == str(init)
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    while proc_state(pid) is not None and time.monotonic() - t0 < 1.0:
        time.sleep(0.01)
    assert proc_state(pid) is None, f"pid {pid} still exists (state {proc_state(pid)})"
    cluster.run(["crm", "-D", "plain", "configure", "delete", "--force", "sleeper"])
    cluster.run(["crm_resource", "--wait", "--timeout=60s"], check=True)


def test_leftovers_of_a_crashed_run_are_stopped_on_next_start(cluster: Cluster) -> None:
    old = cluster.running_pids()
    os.kill(old["init"], signal.SIGKILL)  # the harness's own supervisor dies
    time.sleep(0.2)
    assert alive(old["corosync"]) and alive(old["pacemakerd"])
    cluster.start()
    new = cluster.running_pids()
    assert set(new) == {"init", "corosync", "pacemakerd"}
    assert not alive(old["corosync"]) and not alive(old["pacemakerd"])
    assert cluster.online_nodes() == ["node1"]


def test_stop_leaves_no_process_and_restores_system_dirs(cluster: Cluster, before: dict) -> None:
    cluster.stop()
    assert not cluster.is_running()
    assert marked_processes(cluster.base) == []
    assert dir_state() == before
    cluster.stop()  # twice is fine
