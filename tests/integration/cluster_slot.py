"""A real one-node Pacemaker for integration tests that need pacemaker-attrd, started politely.

tests/cluster/cluster.py runs the cluster; only one can run on a host
(Pacemaker's compiled-in dirs and IPC names), and its start() stops a
harness cluster of another base dir.  Other engineers and test runs share
this host, so one_node_cluster() never starts beside a running cluster: it
waits (bounded) until no corosync or pacemakerd runs, holding the host-wide
lock (cluster.host_slot(), which the three-node harness holds too) so that
two runs do not both grab the free slot,
then starts its own cluster in a fresh base dir and always destroys exactly
that one.  If the slot stays busy it fails loudly; it never skips.

Commands for the cluster (attrd_updater, crm_attribute, crm) go through
run(), which spawns with procs (so the integration tests' subreaper cannot
steal the exit status) in the cluster's environment.
"""

from __future__ import annotations

import contextlib
import re
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import pytest

import procs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cluster"))
from cluster import Cluster, ClusterError, host_slot  # noqa: E402

__all__ = ["one_node_cluster", "run", "attrd_value", "cib_node_attribute", "Cluster"]



@contextlib.contextmanager
def one_node_cluster(wait_s: float = 900.0, start_timeout_s: float = 90.0) -> Iterator[Cluster]:
    """Wait for the host's cluster slot, start a fresh one-node cluster, yield it, destroy it."""
    slot = host_slot(wait_s)
    try:
        slot.__enter__()
    except ClusterError as e:
        pytest.fail(f"{e} (never stopping a cluster this run did not start)", pytrace=False)
    try:
        base = Path(tempfile.mkdtemp(prefix="msg-cluster-itest-", dir="/var/tmp"))
        cluster = Cluster(base)
        try:
            try:
                cluster.start(timeout=start_timeout_s)
            except ClusterError as e:
                pytest.fail(f"cannot start the one-node cluster in {base}: {e}", pytrace=False)
            yield cluster
        finally:
            cluster.destroy()
    finally:
        slot.__exit__(None, None, None)


def run(cluster: Cluster, argv: Sequence[str], timeout: float = 60.0):
    """Run a cluster CLI in the cluster's environment; a CompletedProcess with text output."""
    return procs.run(list(argv), env=cluster.env(), timeout=timeout)


_VALUE_RE = re.compile(r'value="([^"]*)"')


def attrd_value(cluster: Cluster, name: str) -> str | None:
    """The local node's value of attribute name in pacemaker-attrd (attrd_updater -Q), None if unknown.

    "" is what attrd_updater -D leaves: Pacemaker cannot remove an attribute."""
    r = run(cluster, ["attrd_updater", "-Q", "-n", name])
    if r.returncode != 0:
        return None
    m = _VALUE_RE.search(r.stdout)
    if not m:
        raise AssertionError(f"attrd_updater -Q -n {name!r} printed no value: {r.stdout!r} {r.stderr!r}")
    return m.group(1)


def cib_node_attribute(cluster: Cluster, name: str, node: str = "node1") -> str | None:
    """The transient (status section) node attribute as written to the CIB, where the scheduler reads it."""
    r = run(cluster, ["crm_attribute", "--lifetime=reboot", "--node", node, "--name", name, "--query", "--quiet"])
    if r.returncode != 0:
        return None
    return r.stdout.strip()
