"""The messaging stack on the three-node harness: load it, find it, break it, time its failover.

Used by tests/cluster/test_stack_failover.py, scripts/demo and the failover
benchmark (issue #9).  The pieces:

* ``stack_cluster(base)``: a NamespaceCluster whose nodes see the build
  tree's agents at /usr/lib/ocf/resource.d/messaging (no install needed).
* ``Stack``: the store prepared by stack_store.prepare_store() on the shared
  dir, the CIB rendered by cib-templates/render from those values, loaded
  with crm or pcs; where the stack runs, in which order it started, killing
  a service's main process, and what a mail client on the VIP sees.
* ``measure_node_kill()`` / ``measure_migration()``: one failover each,
  timed from the kill to SMTP and IMAP answering on the VIP with the mail
  submitted before the kill in the mailbox (the bench calls these with
  agents="messaging" and agents="stock").
"""

from __future__ import annotations

import dataclasses
import imaplib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Iterator

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "integration"))

from cluster import ClusterError, NamespaceCluster  # noqa: E402
from cluster_records import fail_count, last_ops, op_history, placement, start_order, wait_for  # noqa: E402

RENDER = REPO / "cib-templates" / "render"
AGENT_SETS = ("messaging", "stock")


def build_dir() -> Path:
    """$MSG_BUILD_DIR, else <repo>/build (as tests/integration/ocf.py)."""
    return Path(os.environ.get("MSG_BUILD_DIR", REPO / "build")).resolve()


FENCED_NODE_REBOOT_S = 10.0


def stack_cluster(base: str | os.PathLike, **kwargs) -> NamespaceCluster:
    """The three-node harness with the build tree's agents visible in every node."""
    agents = build_dir() / "ocf" / "resource.d" / "messaging"
    if not (agents / "postfix").is_file():
        raise ClusterError(f"no built agents in {agents}: build first (or set MSG_BUILD_DIR)")
    binds = [(str(agents), "/usr/lib/ocf/resource.d/messaging")] + list(kwargs.pop("binds", []))
    if Path("/tmp") in agents.parents:
        # The agents name their helpers and shell library by build-tree paths,
        # which a node's private /tmp would hide.
        binds.append((str(build_dir()), str(build_dir())))
    # Each node its own /etc/postfix and /etc/dovecot (the stock agents want the
    # store's config dirs in main.cf, and the store's dovecot.conf as the default
    # one: they ignore config_file), and the store's node-local runtime root at boot,
    # as tmpfiles.d would make it (our agents make it; the stock ones do not).
    from stack_store import DEFAULT_RUN_ROOT
    # A fenced server takes far longer than the harness's 1 s to boot again
    # (POST alone is tens of seconds). Back within a second, it rejoins while
    # the survivor is still starting the stack: the DC aborts the transition,
    # probes every resource on it, and its booting daemons take the CPU the
    # starts need. That measured 11.2 s to "back" where 7.9 s is the stack's
    # own time. 10 s keeps the rejoin after the failover and the runs short.
    kwargs.setdefault("fence_reboot_delay", FENCED_NODE_REBOOT_S)
    return NamespaceCluster(base, binds=binds, private_dirs=["/etc/postfix", "/etc/dovecot"],
                            run_dirs=[str(DEFAULT_RUN_ROOT)],
                            # ocf:heartbeat:dovecot looks for master.pid in /run/dovecot only
                            run_links=[("/run/dovecot", str(DEFAULT_RUN_ROOT / "dovecot"))], **kwargs)


def render_values(c: NamespaceCluster, values, monitor_interval: str | None = None) -> dict:
    """cib-templates/render's keys (cib-templates/README.md) for this cluster and store:
    the shared dir bind-mounted as the store, the VIP on eth0, every service's
    parameters as stack_store.prepare_store() returned them.  No fence device:
    the harness's fence_msgtest is in the CIB already."""
    out: dict = {
        "nodes": " ".join(n.name for n in c.nodes),
        "store": {"device": str(c.store), "directory": c.store_mount, "fstype": "none", "options": "bind"},
        "vip": {"ip": c.vip, "cidr_netmask": "24", "nic": "eth0"},
    }
    for rid, r in values.resources.items():
        out[rid] = dict(r.params)
        if monitor_interval and rid != "mailflow":
            out[rid]["monitor-10-interval"] = monitor_interval
    return out


# The daemon behind each agent: (process name, how to tell instances apart).
# A node's PID namespace holds only its own processes, so the name is enough
# for single-instance services; Postfix's masters differ by their queue dir.
MAIN_PROCESS = {"slapd": "slapd", "dovecot": "dovecot", "postfix": "master", "innd": "innd"}


@dataclasses.dataclass
class Failover:
    """One measured failover.  Times are seconds after the kill."""
    kind: str               # "node-kill", "migration" or "migration-late"
    agents: str
    from_node: str
    to_node: str
    stack_running: float    # every resource started on the new node (crm_mon)
    smtp: float             # SMTP banner on the VIP
    imap: float             # IMAP login on the VIP
    delivered: float        # the mail submitted before the kill found by IMAP
    back: float             # all three of smtp, imap, delivered
    detected: float | None = None  # migration: the failed monitor's result (Pacemaker's log)

    def line(self) -> str:
        noticed = "" if self.detected is None else f"failure noticed {self.detected:.1f}s, "
        return (f"{self.kind} ({self.agents} agents) {self.from_node} -> {self.to_node}: stack back "
                f"{self.back:.1f}s after the kill ({noticed}resources started {self.stack_running:.1f}s, SMTP "
                f"{self.smtp:.1f}s, IMAP {self.imap:.1f}s, mail from before the kill delivered "
                f"{self.delivered:.1f}s)")


class Stack:
    """The messaging stack on a NamespaceCluster, from the shared store to the mailbox."""

    def __init__(self, cluster: NamespaceCluster, agents: str = "messaging",
                 monitor_interval: str | None = "5s") -> None:
        """monitor_interval: the services' level-10 (stock: only) monitor interval;
        the rendering's default (30s) makes a killed daemon wait up to 30 s to be
        noticed, which tests and the migration benchmark need not sit through.
        None keeps the rendering's defaults."""
        if agents not in AGENT_SETS:
            raise ValueError(f"agents must be one of {AGENT_SETS}")
        self.c = cluster
        self.agents = agents
        self.monitor_interval = monitor_interval
        self.values = None
        self.base_cib = cluster.base / "cib-base.xml"

    # ---- the store and the configuration ---------------------------------

    def prepare(self) -> None:
        """Write every service's configuration and data on the shared store."""
        from stack_store import load_values, prepare_store
        if (self.c.store / "stack.json").exists():
            self.values = load_values(self.c.store)
        else:
            self.values = prepare_store(self.c.store, self.c.vip, mount_point=self.c.store_mount)
        if self.agents == "stock":
            self._register_postfix_config_dirs()
            self._default_dovecot_conf_is_the_store()
        # What the cluster had before the stack: put back by unload().
        r = self.c.run(["cibadmin", "--query", "--scope", "configuration"], check=True, timeout=30)
        self.base_cib.write_text(r.stdout)

    def _register_postfix_config_dirs(self) -> None:
        """ocf:heartbeat:postfix refuses a config_dir the default main.cf does not list in
        alternate_config_directories (each node's private copy of /etc/postfix)."""
        dirs = " ".join(r.params["config_dir"] for r in self.values.resources.values() if r.agent == "postfix")
        for n in self.c.nodes:
            main_cf = n.dir / "priv" / "etc" / "postfix" / "main.cf"
            lines = [ln for ln in main_cf.read_text().splitlines()
                     if not ln.startswith("alternate_config_directories")]
            main_cf.write_text("\n".join(lines + [f"alternate_config_directories = {dirs}"]) + "\n")

    def _default_dovecot_conf_is_the_store(self) -> None:
        """ocf:heartbeat:dovecot 4.12 never passes its config_file to dovecot (it tests
        an unset $config_dir), so dovecot reads /etc/dovecot/dovecot.conf: make each
        node's private copy include the store's configuration, as an operator would."""
        conf = self.values.resources["dovecot"].params["config_file"]
        for n in self.c.nodes:
            (n.dir / "priv" / "etc" / "dovecot" / "dovecot.conf").write_text(
                f"# the stock agent ignores config_file: the store's configuration\n!include {conf}\n")

    def render(self, fmt: str) -> Path:
        """cib-templates/render's output for this store and cluster, in a file every node can read."""
        out = self.c.base / f"stack-{self.agents}.{fmt}"
        values = self.c.base / "render-values.json"
        values.write_text(json.dumps(render_values(self.c, self.values, self.monitor_interval),
                                     indent=2) + "\n")
        r = subprocess.run([sys.executable, str(RENDER), "--format", fmt, "--values", str(values),
                            "--agents", self.agents], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise ClusterError(f"render --format {fmt} failed ({r.returncode}): {r.stderr.strip()}")
        out.write_text(r.stdout)
        return out

    def load(self, fmt: str = "crm") -> None:
        """Load the rendered stack the way an operator would: crm, or a pcs script on a CIB file."""
        f = self.render(fmt)
        if fmt == "crm":
            self.c.run(["crm", "-D", "plain", "configure", "load", "update", str(f)], check=True, timeout=120)
        elif fmt == "pcs":
            cib = self.c.base / "pcs-cib.xml"
            self.c.run(["pcs", "cluster", "cib", str(cib)], check=True, timeout=60)
            self.c.run(["env", f"CIB={cib}", "sh", "-e", str(f)], check=True, timeout=300)
            self.c.run(["pcs", "cluster", "cib-push", str(cib), "--config"], check=True, timeout=60)
        else:
            raise ValueError(fmt)

    def unload(self, timeout: float = 180.0) -> None:
        """Back to the cluster without the stack (resources stopped, history cleaned)."""
        self.c.run(["cibadmin", "--replace", "--scope", "configuration", "--xml-file", str(self.base_cib)],
                   check=True, timeout=60)
        wait_for("the stack to stop", lambda: not self.resources_active(), timeout, 0.5)
        self.c.run(["crm_resource", "--cleanup"], timeout=60)

    # ---- where it runs -----------------------------------------------------

    def resource_ids(self) -> list[str]:
        """The stack's primitives in their start order (the rendered constraints' order)."""
        return stack_order(ET.fromstring(self.render("xml").read_text()))

    def resources_active(self, node: str | None = None) -> dict[str, list[str]]:
        """Stack resources active anywhere -> their nodes, as `node` (default: any) sees it."""
        ids = set(self.resource_ids_cached())
        return {r: nodes for r, (role, nodes) in placement(self.c, node).items() if r in ids and nodes}

    def resource_ids_cached(self) -> list[str]:
        if not hasattr(self, "_ids"):
            self._ids = self.resource_ids()
        return self._ids

    def running_on(self) -> str | None:
        """The node running every resource of the stack, or None."""
        ids = self.resource_ids_cached()
        pl = placement(self.c)
        nodes = {tuple(pl.get(r, ("", []))[1]) for r in ids}
        if len(nodes) == 1:
            only = next(iter(nodes))
            if len(only) == 1 and all(pl[r][0] == "Started" for r in ids):
                return only[0]
        return None

    def wait_running(self, timeout: float = 240.0, not_on: str | None = None) -> str:
        return wait_for("the whole stack to run on one node" + (f" other than {not_on}" if not_on else ""),
                        lambda: (lambda n: n if n and n != not_on else None)(self.running_on()),
                        timeout, 0.25)

    def start_order(self, node: str) -> list[str]:
        return start_order(self.c, node, self.resource_ids_cached())

    def last_ops(self) -> dict:
        return last_ops(self.c)

    def fail_count(self, rsc: str, node: str) -> int:
        return fail_count(self.c, rsc, node)

    def meta(self, rsc: str, name: str) -> str | None:
        """A meta attribute of rsc as rendered (its own, else rsc_defaults)."""
        x = ET.fromstring(self.render("xml").read_text())
        for p in x.iter("primitive"):
            if p.get("id") == rsc:
                for nv in p.iterfind("meta_attributes/nvpair"):
                    if nv.get("name") == name:
                        return nv.get("value")
        for nv in x.iterfind(".//rsc_defaults/meta_attributes/nvpair"):
            if nv.get("name") == name:
                return nv.get("value")
        return None

    def migration_threshold(self, rsc: str) -> int:
        v = self.meta(rsc, "migration-threshold")
        if v is None or v == "INFINITY":
            raise ClusterError(f"{rsc} has no finite migration-threshold")
        return int(v)

    # ---- breaking it -------------------------------------------------------

    def main_pid(self, rsc: str, node: str) -> int:
        """pid (in the node's namespace) of the daemon behind rsc on node."""
        x = ET.fromstring(self.render("xml").read_text())
        prim = next(p for p in x.iter("primitive") if p.get("id") == rsc)
        agent = prim.get("type", "")
        name = MAIN_PROCESS[agent]
        params = {nv.get("name"): nv.get("value") for ia in prim.iterfind("instance_attributes")
                  for nv in ia.iterfind("nvpair")}
        # The executable, not the name: the agent script running a monitor is "dovecot" too.
        script = (f"for p in $(pgrep -x {name}); do echo $p $(readlink /proc/$p/exe) "
                  "$(readlink /proc/$p/cwd); done")
        r = self.c.run(["sh", "-c", script], node=node, check=True)
        found = [[f[0], f[2] if len(f) > 2 else ""] for f in
                 (line.split() for line in r.stdout.splitlines() if line.strip())
                 if len(f) > 1 and os.path.basename(f[1]) == name]
        if agent == "postfix":
            conf = params.get("config_dir", "")
            qd = self.c.run(["postconf", "-c", conf, "-h", "queue_directory"], node=node,
                            check=True).stdout.strip()
            found = [f for f in found if len(f) == 2 and f[1] == qd]
        if len(found) != 1:
            raise ClusterError(f"{rsc}: expected one {name} process on {node}, found {found}")
        return int(found[0][0])

    def kill_service(self, rsc: str, node: str) -> int:
        pid = self.main_pid(rsc, node)
        self.c.run(["kill", "-KILL", str(pid)], node=node, check=True)
        return pid

    # ---- a mail client's view, from the client network namespace ------------

    def smtp_answers(self, timeout: float = 2.0) -> bool:
        return _banner(self.c.vip, self.values.ports["smtp"], b"220", timeout)

    def imap_login(self, timeout: float = 2.0) -> imaplib.IMAP4 | None:
        try:
            m = imaplib.IMAP4(self.c.vip, self.values.ports["imap"], timeout=timeout)
        except OSError:
            return None
        try:
            m.login(self.values.user, self.values.password)
            return m
        except (imaplib.IMAP4.error, OSError):
            try:
                m.shutdown()
            except OSError:
                pass
            return None

    def subjects_in_mailbox(self, timeout: float = 5.0) -> set[str] | None:
        """Subjects of every message in the test user's INBOX; None if IMAP does not answer."""
        m = self.imap_login(timeout)
        if m is None:
            return None
        try:
            m.select("INBOX", readonly=True)
            typ, data = m.search(None, "ALL")
            if typ != "OK" or not data or not data[0]:
                return set()
            nums = data[0].split()
            typ, data = m.fetch(b",".join(nums), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            out = set()
            for item in data:
                if isinstance(item, tuple):
                    for line in item[1].decode(errors="replace").splitlines():
                        if line.lower().startswith("subject:"):
                            out.add(line.split(":", 1)[1].strip())
            return out
        except (imaplib.IMAP4.error, OSError):
            return None
        finally:
            try:
                m.logout()
            except (imaplib.IMAP4.error, OSError):
                pass

    def send(self, subject: str, timeout: float = 10.0) -> None:
        """Submit one mail to the test user through the gateway on the VIP (needs a 250)."""
        import smtplib
        msg = (f"From: bench@example.com\r\nTo: {self.values.user}\r\nSubject: {subject}\r\n"
               f"Message-ID: <{subject}@example.com>\r\n\r\n{subject}\r\n")
        with smtplib.SMTP(self.c.vip, self.values.ports["smtp"], timeout=timeout) as s:
            s.sendmail("bench@example.com", [self.values.user], msg)


def _banner(host: str, port: int, want: bytes, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(512).startswith(want)
    except OSError:
        return False


def stack_order(cib: ET.Element) -> list[str]:
    """Primitives of a rendered configuration in start order: a topological sort
    of its rsc_order constraints (primitives no constraint names come last)."""
    prims = [p.get("id", "") for p in cib.iter("primitive") if p.get("class") != "stonith"]
    after: dict[str, set[str]] = {p: set() for p in prims}
    for o in cib.iter("rsc_order"):
        first, then = o.get("first"), o.get("then")
        if first in after and then in after:
            after[then].add(first)
    for rs in cib.iter("resource_set"):  # sequential sets order their members
        refs = [r.get("id") for r in rs.iter("resource_ref")]
        for a, b in zip(refs, refs[1:]):
            if a in after and b in after:
                after[b].add(a)
    out: list[str] = []
    todo = list(prims)
    while todo:
        ready = [p for p in todo if after[p] <= set(out)]
        if not ready:
            raise ClusterError(f"order constraints form a cycle among {todo}")
        out.append(ready[0])
        todo.remove(ready[0])
    return out


# ---- failover, timed --------------------------------------------------------


def _in_thread_in_client_netns(c: NamespaceCluster, fn: Callable[[], object]) -> object:
    """fn() on a thread living in the client netns (the VIP is reachable only there)."""
    box: dict[str, object] = {}

    def body() -> None:
        try:
            with c.in_client_netns():
                box["value"] = fn()
        except BaseException as e:  # handed to the caller
            box["error"] = e

    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


def in_client_netns(c: NamespaceCluster, fn: Callable[[], object]) -> object:
    """Public form: run fn() where a mail client of the VIP would be."""
    return _in_thread_in_client_netns(c, fn)


def _watch_until_back(stack: Stack, t_kill: float, subject: str, from_node: str, kind: str,
                      timeout: float) -> Failover:
    """Poll (client netns, every 0.1 s) until SMTP and IMAP answer on the VIP and
    `subject` is in the mailbox; crm_mon for the resources on another node."""
    c = stack.c
    seen: dict[str, float] = {}
    to_node = ""

    down: set[str] = set()

    def back(what: str, ok: bool) -> None:
        # Only an answer after an outage counts: in a migration the old node
        # keeps answering for a while before the stack stops there.
        if not ok:
            down.add(what)
        elif what not in seen and (what in down or "stack_running" in seen):
            seen[what] = time.time() - t_kill

    def poll() -> None:
        end = time.time() + timeout
        while time.time() < end:
            back("smtp", stack.smtp_answers(timeout=1.0))
            if "imap" not in seen or "delivered" not in seen:
                subjects = stack.subjects_in_mailbox(timeout=2.0)
                back("imap", subjects is not None)
                if subjects is not None and subject in subjects:
                    seen.setdefault("delivered", time.time() - t_kill)
            if {"smtp", "imap", "delivered"} <= set(seen):
                return
            time.sleep(0.1)

    watcher = threading.Thread(target=lambda: _in_thread_in_client_netns(c, poll), daemon=True)
    watcher.start()
    try:
        to_node = stack.wait_running(timeout=timeout, not_on=from_node)
        seen["stack_running"] = time.time() - t_kill
    finally:
        watcher.join(timeout + 5)
    missing = {"smtp", "imap", "delivered"} - set(seen)
    if missing:
        raise ClusterError(f"{kind}: after {timeout:.0f}s still missing {sorted(missing)} (seen {seen})")
    return Failover(kind, stack.agents, from_node, to_node, seen["stack_running"], seen["smtp"],
                    seen["imap"], seen["delivered"], max(seen["smtp"], seen["imap"], seen["delivered"]))


def _mail_before_kill(stack: Stack, tag: str) -> str:
    subject = f"before-{tag}-{time.time_ns()}"
    in_client_netns(stack.c, lambda: stack.send(subject))
    return subject


def measure_node_kill(stack: Stack, timeout: float = 120.0) -> Failover:
    """Kill the node running the stack (power cut) and time the stack's return
    on a survivor.  A mail is submitted just before the kill; "back" needs it
    delivered.  The killed node is fenced and reboots on its own."""
    from_node = stack.wait_running()
    subject = _mail_before_kill(stack, "node-kill")
    t_kill = stack.c.kill_node(from_node)
    f = _watch_until_back(stack, t_kill, subject, from_node, "node-kill", timeout)
    stack.c.wait_online(timeout=120)  # the fenced node is back before the next run
    return f


# "Nov 26 17:40:58.309 node2 ...", the day maybe space-padded.
_LOG_STAMP = re.compile(r"(\w{3})\s+(\d{1,2}) (\d\d:\d\d:\d\d)\.(\d+) ")


def monitor_results(c: NamespaceCluster, node: str, rsc: str, interval_ms: int) -> list[tuple[float, str]]:
    """(epoch time, result) of every logged result of rsc's recurring monitor
    with interval_ms on node, from that node's pacemaker.log.  The executor
    reports a recurring monitor's first result and every change, not each run."""
    path = c.node(node).dir / "log-pacemaker" / "pacemaker.log"
    key = f"key={rsc}_monitor_{interval_ms} "
    year = time.localtime().tm_year
    out = []
    with open(path, errors="replace") as log:
        for line in log:
            if "Result of monitor operation for " not in line or key not in line:
                continue
            # "Nov 26 17:40:58.309 node2 pacemaker-controld ... Result of monitor operation
            #  for dovecot on node2: not running (...) | ... key=dovecot_monitor_5000 rc=7"
            stamp = _LOG_STAMP.match(line)
            if stamp is None:
                continue
            def logged_in(y: int) -> float:
                return time.mktime(time.strptime(f"{y} {stamp[1]} {stamp[2]} {stamp[3]}", "%Y %b %d %H:%M:%S"))
            when = logged_in(year)
            if when > time.time() + 86400:  # logged in December, read in January
                when = logged_in(year - 1)
            when += float("0." + stamp[4])
            result = line.split("Result of monitor operation for ", 1)[1].split(": ", 1)[1]
            out.append((when, result.split(" |", 1)[0].split(" (", 1)[0].strip()))
    return out


def measure_migration(stack: Stack, rsc: str = "dovecot", timeout: float = 120.0,
                      phase: float = 0.5, kind: str = "migration") -> Failover:
    """Fail rsc (kill -9 of its daemon) until its migration-threshold is reached;
    time from the last kill to the stack answering on another node.  Clears
    the fail counts afterwards.

    The last kill lands `phase` of the monitor interval after a run of rsc's
    monitor: by default half-way between two runs, the mean wait of a failure
    at a random moment; 0.1 is close to the worst case (the next run is
    nearly a whole interval away).  Both agent sets get the same wait."""
    from_node = stack.wait_running()
    threshold = stack.migration_threshold(rsc)
    # The most frequent of rsc's recurring monitors there, as Pacemaker records it.
    interval_ms = min(o.interval_ms for o in op_history(stack.c)
                      if o.node == from_node and o.rsc == rsc and o.operation == "monitor" and o.interval_ms > 0)
    subject = ""
    t_kill = 0.0
    for i in range(1, threshold + 1):
        before = last_ops(stack.c)[(from_node, rsc)].call_id
        if i == threshold:
            # The recurring monitor runs right after each start, then every
            # interval after the end of the run before.
            ran = [t for t, result in monitor_results(stack.c, from_node, rsc, interval_ms) if result == "ok"]
            if not ran:
                raise ClusterError(f"no result of {rsc}'s {interval_ms} ms monitor in {from_node}'s log")
            kill_at = ran[-1] + phase * interval_ms / 1000
            while kill_at < time.time() + 1.0:
                kill_at += interval_ms / 1000
            subject = _mail_before_kill(stack, "migration")
            time.sleep(max(0.0, kill_at - time.time()))
            t_kill = time.time()
        stack.kill_service(rsc, from_node)
        if i < threshold:
            def restarted_in_place() -> bool:
                op = last_ops(stack.c).get((from_node, rsc))
                return (op is not None and op.operation == "start" and op.rc == 0 and op.call_id > before
                        and stack.fail_count(rsc, from_node) >= i and stack.running_on() == from_node)
            wait_for(f"{rsc} restarted in place after failure {i}", restarted_in_place, timeout, 0.2)
    f = _watch_until_back(stack, t_kill, subject, from_node, kind, timeout)
    failed = [t for t, result in monitor_results(stack.c, from_node, rsc, interval_ms)
              if t >= t_kill and result != "ok"]
    f.detected = failed[0] - t_kill if failed else None
    stack.c.run(["crm_resource", "--cleanup", "--resource", rsc], timeout=60)
    return f


def failover_times(kind: str, agents: str = "messaging", runs: int = 3,
                   base: str | os.PathLike | None = None, log: Callable[[str], None] = print
                   ) -> Iterator[Failover]:
    """For the benchmark: a fresh three-node cluster with the stack from
    `agents` ("messaging" or "stock"), `runs` failovers of `kind` ("node-kill",
    "migration", or "migration-late": the last kill just after a monitor run),
    torn down afterwards whatever happens. Yields each failover as it is
    measured, so one that fails (raises) leaves the earlier ones counted."""
    import tempfile
    measure = {"node-kill": measure_node_kill, "migration": measure_migration,
               "migration-late": lambda stack: measure_migration(stack, phase=0.1, kind="migration-late")}
    if kind not in measure:
        raise ValueError(kind)
    base = base or tempfile.mkdtemp(prefix=f"msg-failover-{agents}-", dir="/var/tmp")
    c = stack_cluster(base)
    try:
        c.start()
        stack = Stack(c, agents)
        stack.prepare()
        stack.load("crm")
        stack.wait_running()
        for _ in range(runs):
            f = measure[kind](stack)
            log(f.line())
            yield f
    finally:
        c.destroy()
