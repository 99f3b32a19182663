"""What a Pacemaker cluster records about its resources, read the way an operator would.

The CIB status section keeps, per node and resource, the last operation
(`<rsc>_last_0`), the last failure and each recurring monitor, each with the
executor's `call-id`.  Call ids grow with every operation a node's executor
runs, so they order the starts on one node exactly, where `last-rc-change`
has only one-second resolution.  These are the records the tests and the
failover benchmark assert on: no wall clock of ours, no guessing.
"""

from __future__ import annotations

import dataclasses
import time
import xml.etree.ElementTree as ET
from typing import Callable, Iterable, TypeVar

from cluster import Cluster, ClusterError

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Op:
    node: str
    rsc: str
    op_id: str          # e.g. dovecot_last_0, dovecot_monitor_10000
    operation: str      # start, stop, monitor, probe ("monitor" with interval 0)
    interval_ms: int
    call_id: int
    rc: int
    last_rc_change: int  # epoch seconds


def op_history(c: Cluster, node: str | None = None) -> list[Op]:
    """Every lrm_rsc_op in the CIB status section, as one node's cib copy shows it."""
    r = c.run(["cibadmin", "--query", "--scope", "status"], node=node, check=True, timeout=30)
    root = ET.fromstring(r.stdout)
    ops = []
    for ns in root.iter("node_state"):
        uname = ns.get("uname", "")
        for rsc in ns.iter("lrm_resource"):
            for op in rsc.iter("lrm_rsc_op"):
                ops.append(Op(uname, rsc.get("id", ""), op.get("id", ""), op.get("operation", ""),
                              int(op.get("interval", "0") or 0), int(op.get("call-id", "-1")),
                              int(op.get("rc-code", "-1")), int(op.get("last-rc-change", "0") or 0)))
    return ops


def last_ops(c: Cluster, node: str | None = None) -> dict[tuple[str, str], Op]:
    """(node, rsc) -> the resource's last non-recurring operation on that node."""
    return {(o.node, o.rsc): o for o in op_history(c, node) if o.op_id.endswith("_last_0")}


def start_order(c: Cluster, on: str, rscs: Iterable[str]) -> list[str]:
    """rscs sorted by the call id of their current successful start on node `on`.

    Fails if one of them is not started there."""
    last = last_ops(c)
    missing = [r for r in rscs if (on, r) not in last or last[(on, r)].operation != "start"
               or last[(on, r)].rc != 0]
    if missing:
        raise AssertionError(f"not started on {on} (last ops: "
                             + ", ".join(f"{r}={last.get((on, r))}" for r in missing) + ")")
    return sorted(rscs, key=lambda r: last[(on, r)].call_id)


def crm_mon(c: Cluster, node: str | None = None) -> ET.Element:
    x = c.crm_mon_xml(node)
    if x is None:
        raise ClusterError("crm_mon gave no XML")
    return x


def placement(c: Cluster, node: str | None = None) -> dict[str, tuple[str, list[str]]]:
    """rsc id -> (role, nodes it is active on), for every primitive crm_mon lists."""
    out = {}
    for r in crm_mon(c, node).iter("resource"):
        nodes = [n.get("name", "") for n in r.iter("node")]
        out[r.get("id", "")] = (r.get("role", ""), nodes)
    return out


def fail_count(c: Cluster, rsc: str, on: str, node: str | None = None) -> int:
    """rsc's fail count on node `on` (every operation), 0 if none."""
    x = crm_mon(c, node)
    total = 0
    for n in x.iterfind("./node_history/node"):
        if n.get("name") != on:
            continue
        for h in n.iterfind("resource_history"):
            if h.get("id") == rsc:
                total += int(h.get("fail-count", "0") or 0)
    return total


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T:
    """Poll probe until it returns something truthy; raise with `what` on timeout."""
    end = time.monotonic() + timeout
    last_err: Exception | None = None
    while True:
        try:
            v = probe()
            if v:
                return v
        except (ClusterError, AssertionError, OSError) as e:
            last_err = e
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                                 + (f" (last error: {last_err})" if last_err else ""))
        time.sleep(interval)
