#!/usr/bin/python3
"""The cluster part of scripts/demo: the whole messaging stack on three nodes, and a node lost.

Three Corosync + Pacemaker nodes in namespaces on this host (cluster.py
NamespaceCluster, fencing by fence_msgtest), every service's configuration
and data on one shared store (stack_store.py), the CIB from
cib-templates/render loaded with crm.  We send a mail, pull the plug of the
node running the stack, and show it fenced and the stack back on a survivor,
with the time from the kill until SMTP and IMAP answer on the virtual IP and
the mail sent just before the kill is in the mailbox.

Everything lives below /var/tmp/msg-demo3 and is removed at the end, also
after a failure or Ctrl-C (a run killed outright is cleaned up by the next).
Uses the build tree's agents and helpers ($MSG_BUILD_DIR, default build/).
--agents stock runs the same with ocf:heartbeat:{slapd,dovecot,postfix}.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cluster import ClusterError, cluster_for  # noqa: E402
from stack_cluster import Stack, in_client_netns, measure_node_kill, stack_cluster  # noqa: E402

DEMO_BASE = Path("/var/tmp/msg-demo3")
T0 = time.monotonic()


def say(msg: str = "") -> None:
    try:
        print(msg, flush=True)
    except BrokenPipeError:
        # The reader went away (`| head`): carry on silently so teardown still runs.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def step(title: str) -> None:
    say(f"\n==> [{time.monotonic() - T0:5.1f}s] {title}")


def indent(text: str) -> str:
    return textwrap.indent(text.rstrip(), "    ")


def crm_mon(stack: Stack, node: str | None = None) -> str:
    return stack.c.run(["crm_mon", "-1"], node=node, timeout=30).stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", choices=("messaging", "stock"), default="messaging")
    a = ap.parse_args()
    if os.geteuid() != 0:
        say("demo: run as root (it creates namespaces and runs a cluster)")
        return 2
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    step("Clean up what an earlier run may have left")
    if DEMO_BASE.exists():
        cluster_for(DEMO_BASE).destroy()
        shutil.rmtree(DEMO_BASE, ignore_errors=True)
    say("    nothing left")

    c = stack_cluster(DEMO_BASE)
    try:
        step("Three nodes, each in its own network, mount, UTS and PID namespace")
        took = c.start()
        say(f"    online after {took:.1f}s; nodes {', '.join(f'{n.name} {n.addr}' for n in c.nodes)}; "
            f"virtual IP {c.vip}; fencing: stonith:fence_msgtest")

        step("The shared store: every service's configuration and data")
        stack = Stack(c, a.agents)
        stack.prepare()
        v = stack.values
        say(f"    {c.store} (mounted at {c.store_mount} on the active node by ocf:heartbeat:Filesystem)")
        say(f"    SMTP gateway {c.vip}:{v.ports['smtp']}, IMAP {c.vip}:{v.ports['imap']}, mailbox {v.user}")

        step(f"The CIB from cib-templates/render --format crm --agents {a.agents}, loaded with crm")
        rendered = stack.render("crm")
        say(f"    {rendered} ({len(rendered.read_text().splitlines())} lines)")
        t = time.monotonic()
        stack.load("crm")
        node = stack.wait_running()
        say(f"    every resource started on {node} after {time.monotonic() - t:.1f}s, in the order "
            + " -> ".join(stack.start_order(node)))
        say(indent(crm_mon(stack)))

        step("A mail through the gateway, read back over IMAP (from a client on the VIP's network)")
        in_client_netns(c, lambda: stack.send("demo-before-failover"))
        deadline = time.monotonic() + 60
        while "demo-before-failover" not in (in_client_netns(c, stack.subjects_in_mailbox) or set()):
            if time.monotonic() > deadline:
                raise ClusterError("the mail did not arrive within 60s")
            time.sleep(0.5)
        say("    delivered to the mailbox")

        step(f"Pull the plug of {node} (SIGKILL of its PID namespace, its network gone)")
        f = measure_node_kill(stack)
        say(f"    {f.line()}")
        fenced = c.run(["stonith_admin", "--history", f.from_node], node=f.to_node, timeout=30).stdout
        say(indent(fenced))
        say(indent("\n".join(line for line in c.power_log() if f.from_node in line)[-2000:]))

        step(f"The stack on {f.to_node}; {f.from_node} was fenced, rebooted and rejoined")
        say(indent(crm_mon(stack, f.to_node)))
        say(f"\n    FAILOVER TIME: {f.back:.1f}s from the kill until SMTP and IMAP answered on the VIP "
            "and the mail sent just before the kill was in the mailbox")
        return 0
    except (ClusterError, AssertionError, OSError) as e:
        say(f"\ndemo: FAILED: {e}")
        keep = DEMO_BASE.parent / "msg-demo3-failed-run"
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(DEMO_BASE, keep, ignore=shutil.ignore_patterns("store", "tmp", "priv", "ovl", "*.sock"),
                        ignore_dangling_symlinks=True)
        say(f"demo: logs kept in {keep}")
        return 1
    finally:
        step("Tear down: every node, namespace and file of the demo")
        c.destroy()
        say(f"    removed {DEMO_BASE}")


if __name__ == "__main__":
    sys.exit(main())
