#!/usr/bin/python3
"""A real Corosync + Pacemaker cluster for the demo and the cluster tests.

No systemd is needed: ``pcs cluster start`` and ``crm cluster start`` call
systemctl and fail, so the daemons are started directly, the way the
cluster spike in ../shared/notes/cluster-recipe.md does it.

Layout of a base dir (default /var/tmp/msg-cluster)::

    cluster.json       marks the dir as ours, and records the configuration
    corosync.conf      one file for every node (each node finds itself by address)
    system.json        what existed in Pacemaker's fixed system dirs before we started
    saved/             a foreign cib.xml moved aside while we run, put back at stop
    n1/                one dir per node: init.pid, corosync.pid, pacemakerd.pid,
                       init.log, corosync.log, pacemaker.log, corosync state dir, crm.conf

Every node runs under its own small init (``cluster.py _node-init``), a
child subreaper that starts corosync, then pacemakerd, and reaps every
process the cluster leaves behind.  This machine's PID 1 reaps orphans
about 1.5 s late; without our init, a Postfix master killed with SIGKILL
would linger as a zombie that ``kill -0`` still finds.

For now there is one kind of node: node1 in the host's own namespaces on
127.0.0.1.  Pacemaker compiles in /var/lib/pacemaker, /run/crm and the
abstract IPC socket names, so only one such cluster can run on a host;
``start`` refuses to run beside a cluster this harness did not start, and
stops one it did start from another base dir.  Multi-node clusters (one
network/mount/UTS/PID namespace per node) are meant to slot in as another
``Node`` kind: ``Cluster.run(argv, node=...)`` is the only way callers reach
a node, so they need not change.

Command line::

    cluster.py [--base DIR] start [--timeout S]     # idempotent; prints the time to online
    cluster.py [--base DIR] wait-online [--timeout S]
    cluster.py [--base DIR] status                  # pids and crm_mon -1
    cluster.py [--base DIR] exec [--node N] -- CMD...   # crm, crm_mon, cibadmin ... on a node
    cluster.py [--base DIR] stop [--timeout S]      # graceful, then forced; only our pids
    cluster.py [--base DIR] destroy                 # stop, then remove the base dir

From Python::

    from cluster import Cluster
    c = Cluster("/var/tmp/x")
    c.start()
    c.run(["crm", "configure", "primitive", ...], check=True)
    c.stop()
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import dataclasses
import fcntl
import grp
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

MAGIC = "resource-agents-messaging cluster harness v1"
DEFAULT_BASE = Path("/var/tmp/msg-cluster")
PYTHON = "/usr/bin/python3"
SELF = Path(__file__).resolve()

COROSYNC = "/usr/sbin/corosync"
PACEMAKERD = "/usr/sbin/pacemakerd"
COROSYNC_PID_FILE = Path("/var/run/corosync.pid")  # compiled into corosync

# Pacemaker's compiled-in dirs, created as the packaging (systemd-tmpfiles)
# would.  Entries that appear in them while we run are removed at stop; a
# dir we had to create is removed again when it is empty.
HA_USER, HA_GROUP = "hacluster", "haclient"
PCMK_DIRS: list[tuple[Path, str, str, int]] = [
    (Path("/var/lib/pacemaker"), HA_USER, HA_GROUP, 0o750),
    (Path("/var/lib/pacemaker/cib"), HA_USER, HA_GROUP, 0o750),
    (Path("/var/lib/pacemaker/pengine"), HA_USER, HA_GROUP, 0o750),
    (Path("/var/lib/pacemaker/blackbox"), HA_USER, HA_GROUP, 0o750),
    (Path("/var/lib/pacemaker/cores"), HA_USER, HA_GROUP, 0o750),
    (Path("/var/log/pacemaker"), HA_USER, HA_GROUP, 0o770),
    (Path("/run/crm"), HA_USER, HA_GROUP, 0o750),
]
# Shared with anything else on the host that runs resource agents: created
# if missing, removed only if we created it and it is empty again.
SHARED_DIRS: list[tuple[Path, str, str, int]] = [
    (Path("/run/resource-agents"), "root", "root", 0o1755),
]
CIB_DIR = Path("/var/lib/pacemaker/cib")

DAEMON_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
PR_SET_CHILD_SUBREAPER = 36


class ClusterError(Exception):
    """The cluster could not be started, reached or stopped; the message says why."""


def log(msg: str) -> None:
    try:
        print(f"{time.strftime('%H:%M:%S')} cluster: {msg}", flush=True)
    except BrokenPipeError:
        # Nobody reads our output any more (`... | head`): a stop must still
        # run to the end, so keep going without it.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


# --------------------------------------------------------------------------
# /proc: process identity.  A zombie counts as dead: it can no longer do
# anything, and this machine's PID 1 leaves orphaned zombies around ~1.5 s.


def proc_state(pid: int) -> str | None:
    """One-letter state from /proc/PID/stat, or None if there is no such pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()[0]


def alive(pid: int | None) -> bool:
    """True if pid exists and is not a zombie (state Z) or dead (X)."""
    if not pid or pid <= 0:
        return False
    st = proc_state(pid)
    return st is not None and st not in ("Z", "X")


def ppid_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[1])


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        k, sep, v = item.decode(errors="replace").partition("=")
        if sep:
            env[k] = v
    return env


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def descendants(root: int) -> list[int]:
    """Live descendants of root (deepest first is not guaranteed)."""
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        pp = ppid_of(pid)
        if pp is not None:
            children.setdefault(pp, []).append(pid)
    out, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return [p for p in out if alive(p)]


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def write_pid(path: Path, pid: int) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(path)


def signal_pid(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _remove_if_empty(d: Path) -> None:
    """A base dir a caller made for a cluster that never started (nothing of ours in it)."""
    try:
        d.rmdir()
    except OSError:
        pass  # missing, or not empty: not ours to remove


def reap_if_child(pid: int) -> None:
    """Collect pid's exit status if it is our child (another reaper may have)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


# --------------------------------------------------------------------------
# Configuration


@dataclasses.dataclass
class Node:
    """One cluster node.  Only kind so far: the host's own namespaces."""
    nodeid: int
    name: str
    addr: str
    dir: Path

    def identifies(self, pid: int, what: str, base: Path) -> bool:
        """True if live pid is this node's `what` (init, corosync, pacemakerd)."""
        if not alive(pid):
            return False
        argv = cmdline(pid)
        if not argv:
            return False
        if what == "init":
            return "_node-init" in argv and str(base) in argv and self.name in argv
        if what == "corosync":
            return (os.path.basename(argv[0]) == "corosync"
                    and str(base / "corosync.conf") in argv)
        if what == "pacemakerd":
            env = environ(pid)
            return (os.path.basename(argv[0]) == "pacemakerd"
                    and env.get("MSG_CLUSTER_BASE") == str(base)
                    and env.get("MSG_CLUSTER_NODE") == self.name)
        raise ValueError(what)


def corosync_conf(c: "Cluster", *, logfile: str, totem: str = "", system: str = "") -> str:
    """corosync.conf for cluster c: one file for every node (each finds itself by address)."""
    nodelist = "".join(f"    node {{\n        name: {n.name}\n        nodeid: {n.nodeid}\n"
                       f"        ring0_addr: {n.addr}\n    }}\n" for n in c.nodes)
    return f"""# written by {SELF.name}; regenerated on every start
totem {{
    version: 2
    cluster_name: {c.cluster_name}
    transport: knet
    crypto_cipher: none
    crypto_hash: none
    token: {c.token_ms}
{totem}}}
logging {{
    to_stderr: no
    to_syslog: no
    to_logfile: yes
    logfile: {logfile}
    timestamp: on
}}
{system}quorum {{
    provider: corosync_votequorum
}}
nodelist {{
{nodelist}}}
"""


class Cluster:
    """A cluster rooted in base_dir.  All methods are safe to call twice."""

    magic = MAGIC  # in base/cluster.json: the dir is this kind of harness's

    def __init__(self, base_dir: str | os.PathLike = DEFAULT_BASE, *, nodes: int = 1,
                 token_ms: int = 1000, stonith_enabled: bool = False,
                 no_quorum_policy: str = "stop", cluster_name: str = "msgtest",
                 pacemaker_stop_timeout: float = 120.0) -> None:
        self.base = Path(base_dir).resolve()
        if nodes != 1:
            raise ClusterError("Cluster is the single node on loopback; use NamespaceCluster for more")
        self.cluster_name = cluster_name
        self.token_ms = token_ms
        self.stonith_enabled = stonith_enabled
        # A single node always has quorum (1 of 1 votes), so "stop" costs
        # nothing and is what a real cluster should use.
        self.no_quorum_policy = no_quorum_policy
        self.pacemaker_stop_timeout = pacemaker_stop_timeout
        self.nodes = [Node(1, "node1", "127.0.0.1", self.base / "n1")]

    # ---- paths and files -------------------------------------------------

    @property
    def conf(self) -> Path:
        return self.base / "corosync.conf"

    def node(self, which: int | str | None = None) -> Node:
        if which is None:
            return self.nodes[0]
        for n in self.nodes:
            if which in (n.nodeid, n.name, str(n.nodeid)):
                return n
        raise ClusterError(f"no node {which!r} in this cluster")

    def is_ours(self) -> bool:
        try:
            return json.loads((self.base / "cluster.json").read_text()).get("magic") == self.magic
        except (OSError, ValueError):
            return False

    def _make_dirs(self) -> None:
        """The base and node dirs.  Pacemaker's daemons run as hacluster and
        write below the node dirs: reachable for group haclient."""
        hagid = grp.getgrnam(HA_GROUP).gr_gid
        for d in [self.base] + [n.dir for n in self.nodes]:
            d.mkdir(parents=True, exist_ok=True)
            os.chown(d, 0, hagid)
            d.chmod(0o750)

    def _write_config(self) -> None:
        self._make_dirs()
        self._check_traversable(self.base)
        (self.base / "cluster.json").write_text(json.dumps({
            "magic": MAGIC, "cluster_name": self.cluster_name, "token_ms": self.token_ms,
            "nodes": [dataclasses.asdict(n) | {"dir": str(n.dir)} for n in self.nodes],
        }, indent=2) + "\n")
        n1 = self.nodes[0]
        self.conf.write_text(corosync_conf(self, logfile=f"{n1.dir}/corosync.log",
                                           system=f"system {{\n    state_dir: {n1.dir}\n}}\n"))

    @staticmethod
    def _check_traversable(path: Path) -> None:
        ha = pwd.getpwnam(HA_USER)
        for d in [path, *path.parents]:
            st = d.stat()
            ok = (st.st_mode & 0o001) or (st.st_gid == ha.pw_gid and st.st_mode & 0o010) \
                or (st.st_uid == ha.pw_uid)
            if not ok:
                raise ClusterError(f"{d} is not searchable by user {HA_USER}; "
                                   "Pacemaker could not write its log below it")

    def _cib_xml(self, extra_properties: Sequence[tuple[str, str]] = (), resources: str = "") -> str:
        """The CIB a fresh cluster starts from: no 20 s wait for a DC (dc-deadtime),
        the cluster's properties, and any resources given as XML."""
        props = [("dc-deadtime", "2s"), ("stonith-enabled", "true" if self.stonith_enabled else "false"),
                 *extra_properties, ("no-quorum-policy", self.no_quorum_policy),
                 ("cluster-recheck-interval", "1min"), ("cluster-name", self.cluster_name)]
        nvpairs = "".join(f'        <nvpair id="cib-bootstrap-options-{k}" name="{k}" value="{v}"/>\n'
                          for k, v in props)
        return f"""<cib validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
{nvpairs}      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources>{resources}</resources>
    <constraints/>
    <rsc_defaults>
      <meta_attributes id="rsc-options">
        <nvpair id="rsc-options-resource-stickiness" name="resource-stickiness" value="1"/>
      </meta_attributes>
    </rsc_defaults>
  </configuration>
  <status/>
</cib>
"""

    # ---- Pacemaker's system dirs ------------------------------------------

    def _prepare_system_dirs(self) -> None:
        snap_file = self.base / "system.json"
        if snap_file.exists():
            # Left by a run that never reached stop: its snapshot is the
            # state from before that run, keep it.
            snap = json.loads(snap_file.read_text())
        else:
            snap = {"created": [], "entries": {}, "saved_cib": []}
            snap["owner"] = {}
            for d, *_ in PCMK_DIRS + SHARED_DIRS:
                if d.is_dir():
                    snap["entries"][str(d)] = sorted(os.listdir(d))
                    st = d.stat()
                    snap["owner"][str(d)] = [st.st_uid, st.st_gid, st.st_mode & 0o7777]
                else:
                    snap["created"].append(str(d))
            snap_file.write_text(json.dumps(snap, indent=2) + "\n")
        for d, user, group, mode in PCMK_DIRS + SHARED_DIRS:
            if not d.is_dir():
                d.mkdir(parents=True)
                os.chown(d, pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)
                d.chmod(mode)
        # A CIB that was there before us (another setup on this host) is
        # moved aside, not destroyed, and put back at stop.
        saved = self.base / "saved"
        saved.mkdir(exist_ok=True)
        for name in snap["entries"].get(str(CIB_DIR), []):
            src = CIB_DIR / name
            if src.exists() and name not in snap["saved_cib"]:
                shutil.move(str(src), saved / name)
                snap["saved_cib"].append(name)
        snap_file.write_text(json.dumps(snap, indent=2) + "\n")
        for f in CIB_DIR.iterdir():  # ours, from a run that crashed
            f.unlink()
        cib = CIB_DIR / "cib.xml"
        cib.write_text(self._cib_xml())
        os.chown(cib, pwd.getpwnam(HA_USER).pw_uid, grp.getgrnam(HA_GROUP).gr_gid)
        cib.chmod(0o600)

    def _restore_system_dirs(self) -> None:
        snap_file = self.base / "system.json"
        if not snap_file.exists():
            return
        snap = json.loads(snap_file.read_text())
        for d, *_ in PCMK_DIRS:
            if not d.is_dir():
                continue
            before = set(snap["entries"].get(str(d), []))
            for name in os.listdir(d):
                if name in before:
                    continue
                p = d / name
                if p.is_dir() and not p.is_symlink():
                    if d != Path("/var/lib/pacemaker"):  # its subdirs are tracked on their own
                        shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
        # pacemakerd chowns its dirs to hacluster on start: put back what was there.
        for d, (uid, gid, mode) in snap.get("owner", {}).items():
            try:
                os.chown(d, uid, gid)
                os.chmod(d, mode)
            except OSError:
                pass
        saved = self.base / "saved"
        for name in snap.get("saved_cib", []):
            if (saved / name).exists():
                shutil.move(str(saved / name), CIB_DIR / name)
        shutil.rmtree(saved, ignore_errors=True)
        for d in sorted((Path(p) for p in snap["created"]), key=lambda p: len(p.parts), reverse=True):
            try:
                d.rmdir()
            except OSError:
                pass  # not empty: something else uses it now
        pid = read_pid(COROSYNC_PID_FILE)
        if pid is not None and not alive(pid):
            COROSYNC_PID_FILE.unlink(missing_ok=True)
        snap_file.unlink()

    # ---- processes ---------------------------------------------------------

    def _pid(self, node: Node, what: str) -> int | None:
        pid = read_pid(node.dir / f"{what}.pid")
        if pid is not None and node.identifies(pid, what, self.base):
            return pid
        return None

    def running_pids(self, node: Node | None = None) -> dict[str, int]:
        """Our live init/corosync/pacemakerd of a node, verified through /proc."""
        node = node or self.node()
        out = {}
        for what in ("init", "corosync", "pacemakerd"):
            pid = self._pid(node, what)
            if pid:
                out[what] = pid
        return out

    def is_running(self) -> bool:
        return any(self.running_pids(n) for n in self.nodes)

    def env(self, node: Node | None = None) -> dict[str, str]:
        """Environment for cluster CLIs (crm, crm_mon, cibadmin, pcs) on node."""
        node = node or self.node()
        env = dict(os.environ)
        # crmsh keeps history and settings under XDG dirs; keep them in the node dir.
        env["XDG_CACHE_HOME"] = str(node.dir / "xdg-cache")
        env["XDG_CONFIG_HOME"] = str(node.dir / "xdg-config")
        env["XDG_DATA_HOME"] = str(node.dir / "xdg-data")
        env["PATH"] = DAEMON_PATH + ":" + env.get("PATH", "")
        return env

    def run(self, argv: Sequence[str], *, node: int | str | None = None, check: bool = False,
            timeout: float = 120.0, capture: bool = True, input: str | None = None
            ) -> subprocess.CompletedProcess:
        """Run a command on a node (for node1 on the host: directly)."""
        n = self.node(node)
        try:
            r = subprocess.run(list(argv), env=self.env(n), timeout=timeout, text=True,
                               input=input, stdin=None if input is not None else subprocess.DEVNULL,
                               capture_output=capture)
        except ChildProcessError:
            # A subreaper thread in this process (tests/integration/procs.py)
            # collected the status first; we cannot know the exit code.
            raise ClusterError(f"exit status of {argv[0]} was reaped by someone else")
        if check and r.returncode != 0:
            raise ClusterError(f"{' '.join(argv)} exited {r.returncode}: "
                               f"{(r.stderr or '').strip() or (r.stdout or '').strip()}")
        return r

    def crm_mon_xml(self, node: int | str | None = None) -> ET.Element | None:
        r = self.run(["crm_mon", "-1", "--output-as=xml"], node=node, timeout=15)
        if r.returncode != 0:
            return None
        try:
            return ET.fromstring(r.stdout)
        except ET.ParseError:
            return None

    def online_nodes(self, node: int | str | None = None) -> list[str]:
        """Names of nodes that crm_mon shows online, once there is a DC."""
        x = self.crm_mon_xml(node)
        if x is None:
            return []
        dc = x.find("./summary/current_dc")
        if dc is None or dc.get("present") != "true":
            return []
        return [n.get("name", "") for n in x.iterfind("./nodes/node")
                if n.get("online") == "true" and n.get("pending") != "true"]

    # ---- lifecycle ---------------------------------------------------------

    def _foreign_check(self) -> None:
        """Stop a cluster of ours from another base dir; refuse to run beside any other."""
        others: set[Path] = set()
        cpid = read_pid(COROSYNC_PID_FILE)
        candidates = [cpid] if cpid else []
        candidates += [p for p in all_pids() if cmdline(p)[:1] and
                       os.path.basename(cmdline(p)[0]) in ("corosync", "pacemakerd")]
        for pid in candidates:
            if not alive(pid):
                continue
            argv = cmdline(pid)
            name = os.path.basename(argv[0]) if argv else "?"
            if name == "corosync":
                conf = argv[argv.index("-c") + 1] if "-c" in argv[:-1] else "/etc/corosync/corosync.conf"
                base = Path(conf).parent
            elif name == "pacemakerd":
                base = Path(environ(pid).get("MSG_CLUSTER_BASE", "/nonexistent"))
            else:
                continue
            if base == self.base:
                continue
            if Cluster(base).is_ours():
                others.add(base)
            else:
                raise ClusterError(f"a {name} this harness did not start is running (pid {pid}, "
                                   f"{' '.join(argv)}); refusing to start beside it")
        for base in others:
            log(f"stopping a leftover cluster of this harness in {base}")
            Cluster(base).stop()

    def start(self, timeout: float = 60.0) -> float:
        """Bring the cluster up and wait until every node is online.

        Returns the seconds it took (0 if it was already up).  A leftover from
        a crashed run (daemons without their init, or an init that cannot
        reach online) is stopped and started afresh."""
        if os.geteuid() != 0:
            raise ClusterError("must run as root")
        t0 = time.monotonic()
        n1 = self.node()
        if self.is_ours():
            pids = self.running_pids(n1)
            if "init" in pids and "corosync" in pids and "pacemakerd" in pids:
                try:
                    self.wait_online(timeout=min(timeout, 20.0), quiet=True)
                    log(f"already running in {self.base} (init pid {pids['init']}), online")
                    return 0.0
                except ClusterError:
                    log("already running but not online: restarting it")
            if pids:
                log(f"stopping leftover processes of a previous run: {pids}")
            if pids or (self.base / "system.json").exists():
                self.stop()
        elif self.base.exists() and any(self.base.iterdir()):
            raise ClusterError(f"{self.base} exists, is not empty and is not a harness base dir")
        self._foreign_check()
        self._write_config()
        self._prepare_system_dirs()
        for f in ("init.pid", "corosync.pid", "pacemakerd.pid"):
            (n1.dir / f).unlink(missing_ok=True)
        with open(n1.dir / "init.log", "ab") as out:
            proc = subprocess.Popen(
                [PYTHON, str(SELF), "--base", str(self.base), "_node-init", "--node", n1.name,
                 "--pacemaker-stop-timeout", str(self.pacemaker_stop_timeout)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True, cwd="/")
        log(f"node {n1.name}: init pid {proc.pid}, base {self.base}")
        try:
            t_up = self.wait_online(timeout=timeout, quiet=True, init_pid=proc.pid)
        except ClusterError:
            self.stop()
            raise
        took = time.monotonic() - t0
        log(f"online: [ {' '.join(n.name for n in self.nodes)} ] after {took:.1f}s "
            f"(corosync up after {t_up:.1f}s)")
        return took

    def wait_online(self, timeout: float = 60.0, *, quiet: bool = False,
                    init_pid: int | None = None) -> float:
        """Wait until every node is online with a DC elected.  Returns the
        seconds corosync took (when a fresh init_pid is being watched)."""
        deadline = time.monotonic() + timeout
        t0 = time.monotonic()
        t_corosync = 0.0
        want = {n.name for n in self.nodes}
        while True:
            n1 = self.node()
            pids = self.running_pids(n1)
            if init_pid is not None and not alive(init_pid):
                reap_if_child(init_pid)
                raise ClusterError("node init exited during start:\n" + self.log_tail())
            if not t_corosync and "corosync" in pids:
                t_corosync = time.monotonic() - t0
            if "pacemakerd" in pids and want <= set(self.online_nodes()):
                if not quiet:
                    log(f"online: [ {' '.join(sorted(want))} ]")
                return t_corosync
            if time.monotonic() > deadline:
                raise ClusterError(f"nodes not online after {timeout:.0f}s:\n" + self.log_tail())
            time.sleep(0.2)

    def log_tail(self, lines: int = 15) -> str:
        out = []
        for n in self.nodes:
            for f in ("init.log", "corosync.log", "pacemaker.log"):
                p = n.dir / f
                if p.exists():
                    tail = p.read_text(errors="replace").splitlines()[-lines:]
                    out.append(f"--- {p} (last {len(tail)} lines)")
                    out.extend(tail)
        return "\n".join(out)

    def stop(self, timeout: float | None = None) -> None:
        """Stop Pacemaker (which stops the resources), then Corosync.

        Graceful first; whatever is left when the time is up is killed.  Only
        processes this harness started are signalled: the pids in the node
        dir, each verified through /proc, and the descendants of our init."""
        timeout = self.pacemaker_stop_timeout if timeout is None else timeout
        if not self.is_ours():
            if self.base.exists():
                log(f"{self.base} is not a harness base dir: nothing to stop")
            return
        if not self.is_running() and not (self.base / "system.json").exists():
            return  # already stopped and cleaned up
        for n in self.nodes:
            pids = self.running_pids(n)
            init = pids.get("init")
            if init:
                log(f"node {n.name}: stopping (init pid {init})")
                signal_pid(init, signal.SIGTERM)
                end = time.monotonic() + timeout + 30
                while alive(init) and time.monotonic() < end:
                    reap_if_child(init)
                    time.sleep(0.1)
                if alive(init):
                    log(f"node {n.name}: init {init} did not finish; killing what it started")
                    for pid in descendants(init):
                        signal_pid(pid, signal.SIGKILL)
                    signal_pid(init, signal.SIGKILL)
                reap_if_child(init)
            elif pids:
                log(f"node {n.name}: no init, stopping its daemons directly: {pids}")
                shutdown_node(n, self.base, timeout, reap=lambda: None)
            # Whatever is still around carries our node's marker in its environment.
            strays = [p for p in all_pids() if alive(p) and p != os.getpid()
                      and environ(p).get("MSG_CLUSTER_BASE") == str(self.base)
                      and environ(p).get("MSG_CLUSTER_NODE") == n.name]
            if strays:
                log(f"node {n.name}: killing leftover processes {strays}")
                for pid in strays:
                    signal_pid(pid, signal.SIGKILL)
            for f in ("init.pid", "corosync.pid", "pacemakerd.pid"):
                (n.dir / f).unlink(missing_ok=True)
        self._restore_system_dirs()
        log("stopped")

    def destroy(self) -> None:
        """stop(), then remove the base dir (logs included)."""
        self.stop()
        if self.is_ours():
            shutil.rmtree(self.base)
        _remove_if_empty(self.base)

    def status(self) -> str:
        lines = [f"base {self.base}"]
        for n in self.nodes:
            pids = self.running_pids(n)
            lines.append(f"node {n.name}: " + (", ".join(f"{k} {v}" for k, v in pids.items())
                                               or "not running"))
        if self.is_running():
            r = self.run(["crm_mon", "-1"], timeout=15)
            lines.append((r.stdout or r.stderr).rstrip())
        return "\n".join(lines)


# --------------------------------------------------------------------------
# The node init: a child subreaper that runs corosync and pacemakerd.


def daemon_env(base: Path, node: Node) -> dict[str, str]:
    return {
        "PATH": DAEMON_PATH,
        "LANG": "C.UTF-8",
        "HOME": "/root",
        "PCMK_logfile": str(node.dir / "pacemaker.log"),
        "PCMK_logfacility": "none",  # there is no syslog daemon here
        "PCMK_logpriority": "info",
        "MSG_CLUSTER_BASE": str(base),  # marks every process the node started
        "MSG_CLUSTER_NODE": node.name,
    }


def spawn(argv: list[str], env: dict[str, str], out: Path) -> int:
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        return os.posix_spawn(argv[0], argv, env, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, fd, 1),
            (os.POSIX_SPAWN_DUP2, fd, 2),
        ], setsigmask=[], setsigdef=[signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD,
                                     signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
    finally:
        os.close(fd)


def reap_all() -> list[tuple[int, int]]:
    done = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return done
        if pid == 0:
            return done
        done.append((pid, status))


def wait_gone(pids: Iterable[int], seconds: float, reap: Callable[[], object]) -> bool:
    end = time.monotonic() + seconds
    pids = list(pids)
    while True:
        reap()
        if not any(alive(p) for p in pids):
            return True
        if time.monotonic() > end:
            return False
        time.sleep(0.05)


def shutdown_node(node: Node, base: Path, pacemaker_timeout: float,
                  reap: Callable[[], object]) -> None:
    """Pacemaker first (it stops the resources), then Corosync; then force."""
    pm = read_pid(node.dir / "pacemakerd.pid")
    cs = read_pid(node.dir / "corosync.pid")
    pm = pm if pm and node.identifies(pm, "pacemakerd", base) else None
    cs = cs if cs and node.identifies(cs, "corosync", base) else None
    if pm:
        print(f"{time.strftime('%H:%M:%S')} stopping pacemakerd {pm}", flush=True)
        # Its subdaemons may outlive it when it is killed: note them now.
        subs = descendants(pm)
        signal_pid(pm, signal.SIGTERM)  # same as `pacemakerd --shutdown`
        if not wait_gone([pm], pacemaker_timeout, reap):
            print(f"pacemakerd {pm} still running after {pacemaker_timeout:.0f}s: killing it",
                  flush=True)
            subs = descendants(pm) + subs
            signal_pid(pm, signal.SIGKILL)
            for p in subs:  # descendants of our pacemakerd: ours
                signal_pid(p, signal.SIGKILL)
            wait_gone([pm] + subs, 5, reap)
    if cs:
        print(f"{time.strftime('%H:%M:%S')} stopping corosync {cs}", flush=True)
        signal_pid(cs, signal.SIGTERM)
        if not wait_gone([cs], 15, reap):
            print(f"corosync {cs} still running after 15s: killing it", flush=True)
            signal_pid(cs, signal.SIGKILL)
            wait_gone([cs], 5, reap)


def stop_signal_pending(sigs: set[signal.Signals], wait: float) -> bool:
    """Wait up to `wait` s for one of the blocked sigs; True if one other than
    SIGCHLD (a request to stop) came.  SIGCHLDs only wake us up to reap."""
    info = signal.sigtimedwait(sigs, wait)
    while info is not None:
        if info.si_signo != signal.SIGCHLD:
            return True
        info = signal.sigtimedwait(sigs, 0)
    return False


def node_init(base: Path, node_name: str, pacemaker_stop_timeout: float) -> int:
    cluster = Cluster(base)
    node = cluster.node(node_name)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}", flush=True)
        return 1
    sigs = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    write_pid(node.dir / "init.pid", os.getpid())
    say = lambda m: print(f"{time.strftime('%H:%M:%S')} {node.name} init: {m}", flush=True)
    env = daemon_env(base, node)
    stopping = False

    def pending_stop(wait: float) -> bool:
        return stop_signal_pending(sigs, wait)

    def log_exits(exits: list[tuple[int, int]], watched: dict[int, str]) -> None:
        for pid, status in exits:
            if pid in watched:
                say(f"{watched[pid]} (pid {pid}) exited: "
                    + (f"status {os.waitstatus_to_exitcode(status)}"))

    say(f"subreaper pid {os.getpid()}, starting corosync")
    t0 = time.monotonic()
    cs = spawn([COROSYNC, "-f", "-c", str(cluster.conf)], env, node.dir / "corosync.out")
    write_pid(node.dir / "corosync.pid", cs)
    watched = {cs: "corosync"}
    while True:
        log_exits(reap_all(), watched)
        if not alive(cs):
            say("corosync exited during start; see corosync.out and corosync.log")
            return 1
        r = subprocess.run(["corosync-cfgtool", "-s"], env=env, capture_output=True)
        if r.returncode == 0:
            break
        if pending_stop(0.1):
            stopping = True
            break
        if time.monotonic() - t0 > 30:
            say("corosync did not answer within 30s")
            stopping = True
            break
    if not stopping:
        say(f"corosync {cs} up after {time.monotonic() - t0:.1f}s, starting pacemakerd")
        pm = spawn([PACEMAKERD], env, node.dir / "pacemakerd.out")
        write_pid(node.dir / "pacemakerd.pid", pm)
        watched[pm] = "pacemakerd"
        while True:
            log_exits(reap_all(), watched)
            if pending_stop(1.0):
                break
    say("stopping")
    shutdown_node(node, base, pacemaker_stop_timeout, reap=lambda: log_exits(reap_all(), watched))
    # Anything the cluster left behind (e.g. a daemon an agent failed to stop)
    # was adopted by us: end it, so that no process outlives the node.
    left = descendants(os.getpid())
    if left:
        say(f"terminating leftover processes {left}: "
            + "; ".join(" ".join(cmdline(p))[:60] for p in left))
        for p in left:
            signal_pid(p, signal.SIGTERM)
        if not wait_gone(left, 5, reap_all):
            for p in descendants(os.getpid()):
                signal_pid(p, signal.SIGKILL)
            wait_gone(left, 5, reap_all)
    say("stopped")
    return 0


# --------------------------------------------------------------------------
# N nodes on one host, each in its own network, mount, UTS, IPC and PID
# namespace (the multi-node Node kind; see ../shared/notes/cluster-recipe.md
# §3-6 for why each piece is there).
#
#   host netns: untouched (nothing is added to it)
#   netns <tag>-sw:  bridge br0, ports hv1..hvN (+ hvc for the client)
#   netns <tag>-n1:  eth0 NET.11/24 ... one per node; deleted when the node
#                    dies, so addresses IPaddr2 added (the VIP) die with it
#   netns <tag>-cl:  eth0 NET.250/24, where test clients reach the VIP from
#
# Each node is `ip netns exec <tag>-nI unshare --mount --uts --ipc --pid
# --fork --kill-child --mount-proc cluster.py _ns-init`: PID 1 of its own
# PID namespace.  SIGKILL of that init is a power cut: the kernel kills
# every process of the node.  The init gives the node private /run,
# /dev/shm, /tmp, /var/lib/{pacemaker,corosync}, /var/log/{pacemaker,
# corosync} (bind mounts of dirs below the node dir), /etc/corosync and
# /etc/hosts shared by all nodes, /proc/sysrq-trigger masked, then starts
# corosync, waits (bounded) until every node is a member, and only then
# pacemakerd (a node Pacemaker never saw would be startup-fenced).
#
# One host-side daemon, the power switch (`cluster.py _powerd`), owns the
# nodes: it holds the host's cluster slot lock for the cluster's whole
# life, creates and deletes the namespaces, boots and kills nodes, and
# answers the test fence agent (fence_msgtest) on a unix socket that every
# node sees at /run/msgtest/power/power.sock.


NS_DEFAULT_BASE = Path("/var/tmp/msg-cluster3")
NS_MAGIC = "resource-agents-messaging netns cluster harness v1"
# tests/integration/cluster_slot.py's host lock: one cluster per host.
SLOT_LOCK = Path("/run/lock/msg-test-cluster-slot.lock")
FENCE_AGENT = "fence_msgtest"
FENCE_AGENT_SRC = SELF.parent / FENCE_AGENT
POWER_DIR_IN_NODE = "/run/msgtest/power"
POWER_SOCKET = "power.sock"
CLONE_NEWNET = 0x40000000


def _now() -> str:
    t = time.time()
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(["ip", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise ClusterError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


def _pid_ns(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


@dataclasses.dataclass
class NsNode:
    """A node in its own namespaces; nodeid i has address NET.(10+i)."""
    nodeid: int
    name: str
    addr: str
    dir: Path
    netns: str

    def _is_ours(self, pid: int, base: Path, first: str) -> bool:
        argv = cmdline(pid)
        return (alive(pid) and "_ns-init" in argv and str(base) in argv and self.name in argv
                and (os.path.basename(argv[0]) == "unshare") == (first == "unshare"))

    def init_pid(self, base: Path) -> int | None:
        """Host-side pid of the node's PID 1, verified through /proc (never a stale pid file)."""
        pid = read_pid(self.dir / "init.pid")
        if pid and self._is_ours(pid, base, "init") and _pid_ns(pid) != _pid_ns("self"):
            return pid
        return None

    def unshare_pids(self, base: Path) -> list[int]:
        return [p for p in all_pids() if self._is_ours(p, base, "unshare")]

    def init_pids(self, base: Path) -> list[int]:
        """Every init of this node found in /proc (a crashed run may have left one)."""
        return [p for p in all_pids() if self._is_ours(p, base, "init") and _pid_ns(p) != _pid_ns("self")]


class NamespaceCluster(Cluster):
    """N (default 3) nodes in namespaces on this host; same interface as Cluster.

    Everything a node needs is recorded in base/cluster.json, which the node
    inits and the power switch read.  ``binds`` are (host path, node path)
    pairs bind-mounted into every node (a node path that does not exist on
    the host is created inside the node only, on an overlay); ``private_dirs``
    are host dirs each node gets its own copy of; ``run_dirs`` and
    ``run_links`` ((link, target) pairs) are made in each node's fresh /run
    at every boot (what systemd-tmpfiles would do);
    ``store_mount`` is created
    (empty) in every node for ocf:heartbeat:Filesystem to bind-mount the
    shared store (base/store) on."""

    magic = NS_MAGIC

    def __init__(self, base_dir: str | os.PathLike = NS_DEFAULT_BASE, *, nodes: int = 3,
                 net: str = "10.213.7", token_ms: int = 1000, cluster_name: str = "msgtest",
                 binds: Sequence[tuple[str, str]] = (), private_dirs: Sequence[str] = (),
                 run_dirs: Sequence[str] = (), run_links: Sequence[tuple[str, str]] = (), store_mount: str = "/srv/messaging", slot_wait: float = 900.0,
                 pacemaker_stop_timeout: float = 60.0, gate_timeout: float = 20.0,
                 fence_reboot_delay: float = 1.0) -> None:
        self.base = Path(base_dir).resolve()
        if self.base == Path("/tmp") or Path("/tmp") in self.base.parents:
            # Each node mounts its private /tmp over /tmp: the base dir must stay visible.
            raise ClusterError(f"base dir {self.base} must not be below /tmp")
        if nodes < 1 or nodes > 9:
            raise ClusterError("1 to 9 nodes")
        self.cluster_name = cluster_name
        self.token_ms = token_ms
        self.stonith_enabled = True
        self.no_quorum_policy = "stop"
        self.pacemaker_stop_timeout = pacemaker_stop_timeout
        self.net = net
        self.binds = [(str(a), str(b)) for a, b in binds]
        self.private_dirs = [str(d) for d in private_dirs]
        self.run_dirs = [str(d) for d in run_dirs]
        self.run_links = [(str(a), str(b)) for a, b in run_links]
        self.store_mount = store_mount
        self.slot_wait = slot_wait
        self.gate_timeout = gate_timeout
        self.fence_reboot_delay = fence_reboot_delay
        self.tag = "msgc" + hashlib.sha1(str(self.base).encode()).hexdigest()[:6]
        self.nodes = [NsNode(i, f"node{i}", f"{net}.{10 + i}", self.base / f"n{i}", f"{self.tag}-n{i}")
                      for i in range(1, nodes + 1)]  # type: ignore[misc]
        self.switch_netns = f"{self.tag}-sw"
        self.client_netns = f"{self.tag}-cl"
        self.client_addr = f"{net}.250"
        self.vip = f"{net}.100"
        # A test process that dies without its fixture finalizer still tears
        # the cluster down (the command line's `start` turns this off).
        self.stop_at_exit = True

    # ---- configuration, shared with the node inits and the power switch --

    def _config(self) -> dict:
        return {
            "magic": NS_MAGIC, "kind": "netns", "nodes": len(self.nodes), "net": self.net,
            "token_ms": self.token_ms, "cluster_name": self.cluster_name, "binds": self.binds,
            "private_dirs": self.private_dirs, "run_dirs": self.run_dirs,
            "run_links": self.run_links, "store_mount": self.store_mount,
            "slot_wait": self.slot_wait, "pacemaker_stop_timeout": self.pacemaker_stop_timeout,
            "gate_timeout": self.gate_timeout, "fence_reboot_delay": self.fence_reboot_delay,
        }

    @classmethod
    def load(cls, base: str | os.PathLike) -> "NamespaceCluster":
        """The cluster recorded in base/cluster.json (for the inits, the power switch, destroy)."""
        base = Path(base).resolve()
        try:
            cfg = json.loads((base / "cluster.json").read_text())
        except (OSError, ValueError) as e:
            raise ClusterError(f"{base} is not a netns cluster base dir: {e}")
        if cfg.get("magic") != NS_MAGIC:
            raise ClusterError(f"{base} is not a netns cluster base dir")
        return cls(base, nodes=cfg["nodes"], net=cfg["net"], token_ms=cfg["token_ms"],
                   cluster_name=cfg["cluster_name"], binds=[tuple(b) for b in cfg["binds"]],
                   private_dirs=cfg["private_dirs"], run_dirs=cfg.get("run_dirs", []),
                   run_links=[tuple(x) for x in cfg.get("run_links", [])], store_mount=cfg["store_mount"],
                   slot_wait=cfg["slot_wait"], pacemaker_stop_timeout=cfg["pacemaker_stop_timeout"],
                   gate_timeout=cfg["gate_timeout"], fence_reboot_delay=cfg["fence_reboot_delay"])

    @property
    def store(self) -> Path:
        """The shared store on the host; nodes mount it at store_mount."""
        return self.base / "store"

    @property
    def power_dir(self) -> Path:
        return self.base / "power"

    def _write_config(self) -> None:
        self._make_dirs()
        self.store.mkdir(exist_ok=True)
        self.power_dir.mkdir(exist_ok=True)
        (self.base / "cluster.json").write_text(json.dumps(self._config(), indent=2) + "\n")
        (self.base / "etc-corosync").mkdir(exist_ok=True)
        # knet pings every 200 ms: links come up in ~0.5 s instead of ~4 s (recipe §3).
        (self.base / "etc-corosync" / "corosync.conf").write_text(corosync_conf(
            self, logfile="/var/log/corosync/corosync.log",
            totem="    interface {\n        linknumber: 0\n        knet_ping_interval: 200\n"
                  "        knet_ping_timeout: 1000\n        knet_pong_count: 1\n    }\n"))
        (self.base / "hosts").write_text("127.0.0.1 localhost\n" + "".join(
            f"{n.addr} {n.name}.example.com {n.name}\n" for n in self.nodes)
            + f"{self.client_addr} client.example.com client\n")
        for n in self.nodes:
            self._prepare_node_dir(n)

    def _prepare_node_dir(self, n: NsNode) -> None:
        """Fresh private state for node n (a new cluster: nothing kept from an earlier run)."""
        ha_uid, ha_gid = pwd.getpwnam(HA_USER).pw_uid, grp.getgrnam(HA_GROUP).gr_gid
        for sub in ("lib-pacemaker", "lib-corosync", "log-pacemaker", "log-corosync", "tmp", "priv", "ovl"):
            shutil.rmtree(n.dir / sub, ignore_errors=True)
        for sub in ("lib-corosync", "log-corosync", "ovl"):
            (n.dir / sub).mkdir()
        (n.dir / "tmp").mkdir(mode=0o1777)
        (n.dir / "tmp").chmod(0o1777)
        for sub, mode in (("lib-pacemaker", 0o750), ("lib-pacemaker/cib", 0o750),
                          ("lib-pacemaker/pengine", 0o750), ("lib-pacemaker/blackbox", 0o750),
                          ("lib-pacemaker/cores", 0o750), ("log-pacemaker", 0o770)):
            (n.dir / sub).mkdir()
            os.chown(n.dir / sub, ha_uid, ha_gid)
            (n.dir / sub).chmod(mode)
        cib = n.dir / "lib-pacemaker" / "cib" / "cib.xml"
        cib.write_text(self._cib_xml())
        os.chown(cib, ha_uid, ha_gid)
        cib.chmod(0o600)
        for d in self.private_dirs:
            dst = n.dir / "priv" / d.lstrip("/")
            dst.parent.mkdir(parents=True, exist_ok=True)
            if Path(d).is_dir():
                subprocess.run(["cp", "-a", "--", d, str(dst)], check=True)
            else:
                dst.mkdir()

    def _cib_xml(self, extra_properties: Sequence[tuple[str, str]] = (), resources: str = "") -> str:
        """Fencing from the start: stonith-enabled=true with the fence_msgtest device."""
        hosts = " ".join(n.name for n in self.nodes)
        fence = f"""
      <primitive id="fence-msgtest" class="stonith" type="{FENCE_AGENT}">
        <instance_attributes id="fence-msgtest-ia">
          <nvpair id="fence-msgtest-hosts" name="pcmk_host_list" value="{hosts}"/>
          <nvpair id="fence-msgtest-reboot-timeout" name="pcmk_reboot_timeout" value="90s"/>
        </instance_attributes>
        <operations><op id="fence-msgtest-mon" name="monitor" interval="60s"/></operations>
      </primitive>
    """
        # node-action-limit: Pacemaker's default is 2 jobs per core, halved for a
        # peer whose load it has not heard yet (the first report comes 30 s after
        # boot, and these clusters fail over sooner). On these 2-core nodes that
        # is 2 jobs: a started service's two first monitors took both, and every
        # next start of the ordered stack waited for them (0.1-0.9 s each, 2-3 s
        # per failover). 8 is the default of a modest 4-core server.
        return super()._cib_xml([("stonith-timeout", "90s"), ("node-action-limit", "8"), *extra_properties],
                                fence + resources)

    # ---- reaching nodes ------------------------------------------------------

    def node(self, which: int | str | None = None) -> NsNode:  # type: ignore[override]
        """A node by id or name; None = the first node that is running."""
        if which is None:
            for n in self.nodes:
                if n.init_pid(self.base):
                    return n
            return self.nodes[0]
        for n in self.nodes:
            if which in (n.nodeid, n.name, str(n.nodeid)):
                return n
        raise ClusterError(f"no node {which!r} in this cluster")

    def running_nodes(self) -> list[str]:
        return [n.name for n in self.nodes if n.init_pid(self.base)]

    def running_pids(self, node: NsNode | None = None) -> dict[str, int]:  # type: ignore[override]
        node = node or self.node()
        pid = node.init_pid(self.base)
        return {"init": pid} if pid else {}

    def is_running(self) -> bool:
        return self._powerd_pid() is not None or any(n.init_pids(self.base) for n in self.nodes)

    def env(self, node: NsNode | None = None) -> dict[str, str]:  # type: ignore[override]
        env = dict(os.environ)
        # crmsh keeps history and settings under XDG dirs: the node's own /tmp.
        env.update({"XDG_CACHE_HOME": "/tmp/xdg-cache", "XDG_CONFIG_HOME": "/tmp/xdg-config",
                    "XDG_DATA_HOME": "/tmp/xdg-data", "HOME": "/root",
                    "PATH": DAEMON_PATH + ":" + env.get("PATH", "")})
        return env

    def run(self, argv: Sequence[str], *, node: int | str | None = None, check: bool = False,
            timeout: float = 120.0, capture: bool = True, input: str | None = None
            ) -> subprocess.CompletedProcess:
        """Run a command inside a node: all of its namespaces (a CLI needs the node's
        /run, /dev/shm and abstract sockets, not only its network)."""
        n = self.node(node)
        pid = n.init_pid(self.base)
        if pid is None:
            raise ClusterError(f"{n.name} is not running")
        full = ["nsenter", "-t", str(pid), "--mount", "--uts", "--ipc", "--net", "--pid",
                "--wd=/", "--", *argv]
        return _run_here(full, env=self.env(n), timeout=timeout, input=input, check=check,
                         capture=capture)

    def run_client(self, argv: Sequence[str], *, timeout: float = 120.0, check: bool = False,
                   input: str | None = None) -> subprocess.CompletedProcess:
        """Run a command in the client netns (it reaches the VIP like a mail client would)."""
        return _run_here(["ip", "netns", "exec", self.client_netns, *argv], env=dict(os.environ),
                         timeout=timeout, input=input, check=check, capture=True)

    @contextlib.contextmanager
    def in_client_netns(self) -> Iterator[None]:
        """Run the calling THREAD in the client netns (sockets it opens meanwhile live there;
        threads and processes it starts meanwhile stay there).  Network namespaces are per thread."""
        with thread_in_netns(self.client_netns):
            yield

    # ---- the power switch ------------------------------------------------------

    def _powerd_pid(self) -> int | None:
        for pid in [read_pid(self.power_dir / "powerd.pid")] + all_pids():
            if pid and alive(pid):
                argv = cmdline(pid)
                if "_powerd" in argv and str(self.base) in argv:
                    return pid
        return None

    def power(self, request: str, timeout: float = 120.0) -> str:
        """Send one request line to the power switch ("off node2", "on node2",
        "reboot node2", "hold node2", "release node2", "status node2", "list")."""
        return power_request(self.power_dir / POWER_SOCKET, request, timeout)

    def kill_node(self, node: int | str) -> float:
        """Pull node's plug: SIGKILL its PID namespace, delete its netns (VIP included).
        Returns the wall-clock time of the kill."""
        t = time.time()
        self.power(f"off {self.node(node).name}")
        return t

    def boot_node(self, node: int | str) -> None:
        self.power(f"on {self.node(node).name}")

    def cut_link(self, node: int | str) -> None:
        """Unplug node's cable at the switch (the node keeps running, alone)."""
        _ip("-n", self.switch_netns, "link", "set", f"hv{self.node(node).nodeid}", "down")

    def restore_link(self, node: int | str) -> None:
        """Plug the cable back (a no-op if the node was powered off meanwhile: its
        port went with it, and booting plugs a new one)."""
        _ip("-n", self.switch_netns, "link", "set", f"hv{self.node(node).nodeid}", "up", check=False)

    def hold_fencing(self, node: int | str) -> None:
        """Fence requests against node wait (bounded by 60 s) until release_fencing()."""
        self.power(f"hold {self.node(node).name}")

    def release_fencing(self, node: int | str) -> None:
        self.power(f"release {self.node(node).name}")

    def power_log(self) -> list[str]:
        try:
            return (self.power_dir / "powerd.log").read_text().splitlines()
        except OSError:
            return []

    # ---- lifecycle -----------------------------------------------------------

    def start(self, timeout: float = 120.0) -> float:
        """Create the network, boot every node, wait until all are online (DC elected).

        Waits (up to slot_wait) for the host's cluster slot first.  A leftover
        of a crashed run in the same base dir is destroyed first."""
        if os.geteuid() != 0:
            raise ClusterError("must run as root")
        t0 = time.monotonic()
        if self.is_ours() and self.is_running():
            recorded = json.loads((self.base / "cluster.json").read_text())
            if recorded == self._config() and set(self.running_nodes()) == {n.name for n in self.nodes}:
                try:
                    self.wait_online(timeout=min(timeout, 20.0))
                    log(f"already running in {self.base}, online")
                    return 0.0
                except ClusterError:
                    pass
            log("a previous run of this base dir is still around: removing it")
            self.stop()
        elif not self.is_ours() and self.base.exists() and any(self.base.iterdir()):
            raise ClusterError(f"{self.base} exists, is not empty and is not a harness base dir")
        self._write_config()
        for f in self.power_dir.iterdir():
            f.unlink()
        with open(self.power_dir / "powerd.out", "ab") as out:
            proc = subprocess.Popen(
                [PYTHON, str(SELF), "--base", str(self.base), "_powerd"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True, cwd="/")
        log(f"power switch pid {proc.pid}; waiting for the host's cluster slot ({SLOT_LOCK})")
        if self.stop_at_exit:
            atexit.register(self._stop_at_exit)
        sock = self.power_dir / POWER_SOCKET
        end = time.monotonic() + self.slot_wait + 30
        while not sock.exists():
            if proc.poll() is not None or not alive(proc.pid):
                raise ClusterError("power switch exited:\n" + self._tail(self.power_dir / "powerd.log"))
            if time.monotonic() > end:
                self.stop()
                raise ClusterError("power switch did not come up:\n"
                                   + self._tail(self.power_dir / "powerd.log"))
            time.sleep(0.1)
        t_slot = time.monotonic()
        try:
            for n in self.nodes:
                self.power(f"on {n.name}")
            self.wait_online(timeout=timeout)
        except ClusterError:
            log("start failed:\n" + self.log_tail())
            self.stop()
            raise
        took = time.monotonic() - t_slot
        log(f"online: [ {' '.join(n.name for n in self.nodes)} ] {took:.1f}s after the first boot "
            f"(slot wait {t_slot - t0:.1f}s)")
        return took

    def wait_online(self, timeout: float = 60.0, *, quiet: bool = False,  # type: ignore[override]
                    init_pid: int | None = None, nodes: Iterable[str] | None = None) -> float:
        want = set(nodes) if nodes is not None else {n.name for n in self.nodes}
        end = time.monotonic() + timeout
        t0 = time.monotonic()
        while True:
            for name in sorted(want):
                if self.node(name).init_pid(self.base):
                    try:
                        if want <= set(self.online_nodes(name)):
                            return time.monotonic() - t0
                    except (ClusterError, subprocess.TimeoutExpired):
                        pass
                    break
            if time.monotonic() > end:
                raise ClusterError(f"nodes {sorted(want)} not online after {timeout:.0f}s")
            time.sleep(0.25)

    @staticmethod
    def _tail(path: Path, lines: int = 20) -> str:
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"({path} missing)"

    def log_tail(self, lines: int = 15) -> str:
        out = [f"--- power switch\n{self._tail(self.power_dir / 'powerd.log', lines)}"]
        for n in self.nodes:
            for f in ("init.log", "log-corosync/corosync.log", "log-pacemaker/pacemaker.log"):
                out.append(f"--- {n.dir / f}\n{self._tail(n.dir / f, lines)}")
        return "\n".join(out)

    def stop(self, timeout: float | None = None) -> None:
        """Graceful stop of every node (bounded), then everything of ours is killed
        and every namespace, veth and the bridge deleted.  Safe after a crash."""
        timeout = self.pacemaker_stop_timeout if timeout is None else timeout
        if not self.is_ours():
            if self.base.exists():
                log(f"{self.base} is not a netns harness base dir: nothing to stop")
            return
        pid = self._powerd_pid()
        if pid is not None:
            try:
                self.power(f"shutdown {timeout:.0f}", timeout=timeout + 60)
            except ClusterError as e:
                log(f"power switch did not shut down cleanly: {e}")
            end = time.monotonic() + 15
            while alive(pid) and time.monotonic() < end:
                reap_if_child(pid)
                time.sleep(0.1)
            if alive(pid):
                log(f"killing power switch {pid}")
                signal_pid(pid, signal.SIGKILL)
                reap_if_child(pid)
        self._kill_leftovers()
        log("stopped")

    def _stop_at_exit(self) -> None:
        if self.is_ours() and self.is_running():
            log(f"process exiting: stopping the cluster in {self.base}")
            self.stop(timeout=20)

    def _kill_leftovers(self) -> None:
        """What a crashed harness left: our node inits (their whole PID namespaces
        die with them), their unshare parents, our namespaces."""
        for n in self.nodes:
            for p in n.init_pids(self.base) + n.unshare_pids(self.base):
                log(f"{n.name}: killing leftover {' '.join(cmdline(p))[:50]} (pid {p})")
                signal_pid(p, signal.SIGKILL)
        for n in self.nodes:
            wait_gone(n.init_pids(self.base) + n.unshare_pids(self.base), 10, lambda: None)
        for ns in [n.netns for n in self.nodes] + [self.client_netns, self.switch_netns]:
            if Path(f"/run/netns/{ns}").exists():
                _ip("netns", "del", ns, check=False)

    def status(self) -> str:
        lines = [f"base {self.base}", f"power switch: pid {self._powerd_pid()}"]
        for n in self.nodes:
            pid = n.init_pid(self.base)
            lines.append(f"{n.name} {n.addr} netns {n.netns}: "
                         + (f"init pid {pid}" if pid else "off"))
        if self.running_nodes():
            r = self.run(["crm_mon", "-1"], timeout=30)
            lines.append((r.stdout or r.stderr).rstrip())
        return "\n".join(lines)


def _run_here(argv: list[str], *, env: dict[str, str], timeout: float, input: str | None,
              check: bool, capture: bool) -> subprocess.CompletedProcess:
    """subprocess.run, through tests/integration/procs when a test process has
    a subreaper thread (so it cannot steal the exit status)."""
    procs = sys.modules.get("procs")
    if procs is not None and capture:
        r = procs.run(argv, timeout=timeout, env=env, input=input, cwd="/")
    else:
        r = subprocess.run(argv, env=env, timeout=timeout, text=True, input=input, cwd="/",
                           stdin=None if input is not None else subprocess.DEVNULL,
                           capture_output=capture)
    if check and r.returncode != 0:
        raise ClusterError(f"{' '.join(argv)} exited {r.returncode}: "
                           f"{(r.stderr or '').strip() or (r.stdout or '').strip()}")
    return r


@contextlib.contextmanager
def thread_in_netns(netns: str) -> Iterator[None]:
    """setns(2) the calling thread into /run/netns/<netns>, and back at the end."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise ClusterError(f"setns {netns}: {os.strerror(ctypes.get_errno())}")
        try:
            yield
        finally:
            if libc.setns(own, CLONE_NEWNET) != 0:
                raise ClusterError(f"setns back from {netns}: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(own)
        os.close(target)


def power_request(sock_path: Path | str, request: str, timeout: float = 120.0) -> str:
    """One request to the power switch; returns its answer text, raises on rc != 0."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(sock_path))
        s.sendall(request.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError as e:
        raise ClusterError(f"power switch {sock_path}: {request}: {e}")
    finally:
        s.close()
    rc, _, text = data.decode(errors="replace").strip().partition(" ")
    if rc != "0":
        raise ClusterError(f"power switch: {request}: {text or 'no answer'}")
    return text


def cluster_for(base: str | os.PathLike) -> Cluster:
    """The harness recorded in base (one node or namespaced), for the command line."""
    base = Path(base)
    try:
        kind = json.loads((base / "cluster.json").read_text()).get("kind")
    except (OSError, ValueError):
        kind = None
    return NamespaceCluster.load(base) if kind == "netns" else Cluster(base)


# ---- the power switch daemon (host side) ----------------------------------------


class PowerSwitch:
    """Boots, kills and watches the nodes; answers fence_msgtest and the harness."""

    def __init__(self, cluster: NamespaceCluster) -> None:
        self.c = cluster
        self.base = cluster.base
        self.lock = threading.Lock()          # one power action at a time
        self.unshare: dict[str, subprocess.Popen] = {}
        self.expected_down: set[str] = set()
        self.held: dict[str, threading.Event] = {}
        self.logf = open(cluster.power_dir / "powerd.log", "a", buffering=1)
        self.stopping = threading.Event()

    def say(self, msg: str) -> None:
        self.logf.write(f"{_now()} {msg}\n")

    # -- slot and network
    def net_up(self) -> None:
        c = self.c
        for ns in [n.netns for n in c.nodes] + [c.client_netns, c.switch_netns]:
            _ip("netns", "del", ns, check=False)
        _ip("netns", "add", c.switch_netns)
        _ip("-n", c.switch_netns, "link", "set", "lo", "up")
        _ip("-n", c.switch_netns, "link", "add", "br0", "type", "bridge")
        _ip("-n", c.switch_netns, "link", "set", "br0", "up")
        self.plug(c.client_netns, "hvc", c.client_addr)

    def plug(self, netns: str, port: str, addr: str) -> None:
        """A fresh netns with eth0 cabled to the switch.  The veth is made inside
        the switch ns and its peer moved straight into netns: nothing ever
        appears in the host's own network namespace."""
        c = self.c
        _ip("netns", "add", netns)
        _ip("-n", c.switch_netns, "link", "add", port, "type", "veth", "peer", "name", "eth0",
            "netns", netns)
        _ip("-n", c.switch_netns, "link", "set", port, "master", "br0", "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        _ip("-n", netns, "addr", "add", f"{addr}/24", "dev", "eth0")
        _ip("-n", netns, "link", "set", "eth0", "up")

    def net_down(self) -> None:
        c = self.c
        for ns in [n.netns for n in c.nodes] + [c.client_netns, c.switch_netns]:
            _ip("netns", "del", ns, check=False)

    # -- nodes
    def on(self, n: NsNode) -> str:
        if n.init_pid(self.base):
            return f"{n.name} already on"
        if not Path(f"/run/netns/{n.netns}").exists():
            self.plug(n.netns, f"hv{n.nodeid}", n.addr)
        out = open(n.dir / "init.log", "ab")
        p = subprocess.Popen(
            ["ip", "netns", "exec", n.netns, "unshare", "--mount", "--uts", "--ipc", "--pid",
             "--fork", "--kill-child", "--mount-proc",
             PYTHON, str(SELF), "--base", str(self.base), "_ns-init", "--node", n.name],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True, cwd="/")
        out.close()
        self.unshare[n.name] = p
        mine = _pid_ns("self")
        end = time.monotonic() + 10
        while time.monotonic() < end:
            for child in _children(p.pid):
                if _pid_ns(child) != mine and n._is_ours(child, self.base, "init"):
                    write_pid(n.dir / "init.pid", child)
                    self.expected_down.discard(n.name)
                    self.say(f"{n.name} booting: init pid {child}")
                    return f"{n.name} booting"
            if p.poll() is not None:
                break
            time.sleep(0.01)
        p.kill()
        p.wait()
        raise ClusterError(f"{n.name}: its init did not appear (see {n.dir / 'init.log'})")

    def off(self, n: NsNode, why: str) -> str:
        self.expected_down.add(n.name)
        pid = n.init_pid(self.base)
        if pid:
            # SIGKILL of a PID namespace's init: the kernel kills every
            # process in it, and init is reaped only after all of them.
            signal_pid(pid, signal.SIGKILL)
        p = self.unshare.pop(n.name, None)
        if p is not None:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for q in n.init_pids(self.base) + n.unshare_pids(self.base):
            signal_pid(q, signal.SIGKILL)
        # Addresses belong to the netns, not to processes: without this the
        # VIP would survive the node (recipe §6.4).
        _ip("netns", "del", n.netns, check=False)
        (n.dir / "init.pid").unlink(missing_ok=True)
        self.say(f"{n.name} powered off ({why})" + (f", init pid {pid} killed" if pid else ""))
        return f"{n.name} off"

    def stop_all(self, timeout: float) -> None:
        inits = {n.name: n.init_pid(self.base) for n in self.nodes_on()}
        for name, pid in inits.items():
            self.expected_down.add(name)
            if pid:
                signal_pid(pid, signal.SIGTERM)
        end = time.monotonic() + timeout + 15
        while any(alive(p) for p in inits.values() if p) and time.monotonic() < end:
            time.sleep(0.1)
        for n in self.c.nodes:
            self.off(n, "cluster stop")

    def nodes_on(self) -> list[NsNode]:
        return [n for n in self.c.nodes if n.init_pid(self.base)]

    # -- requests
    def handle(self, line: str) -> str:
        words = line.split()
        if not words:
            return "2 empty request"
        verb, args = words[0], words[1:]
        fence = verb == "fence"
        if fence:
            verb, args = (args[0], args[1:]) if args else ("", [])
        if verb == "ping":
            return "0 pong"
        if verb == "list":
            return "0 " + " ".join(n.name for n in self.c.nodes)
        if verb == "shutdown":
            t = float(args[0]) if args else self.c.pacemaker_stop_timeout
            with self.lock:
                self.say("shutdown requested")
                self.stop_all(t)
            return "0 down"  # the request handler stops the switch once this is sent
        if len(args) != 1:
            return f"2 usage: {verb} NODE"
        try:
            n = self.c.node(args[0])
        except ClusterError as e:
            return f"1 {e}"
        if verb == "status":
            return "0 on" if n.init_pid(self.base) else "0 off"
        if verb in ("hold", "release"):
            with self.lock:
                ev = self.held.setdefault(n.name, threading.Event())
            if verb == "hold":
                ev.clear()
            else:
                ev.set()
            self.say(f"fencing of {n.name}: {verb}")
            return f"0 {verb}"
        if fence:
            self.say(f"fence request: {verb} {n.name}")
            ev = self.held.get(n.name)
            if ev is not None and not ev.is_set():
                self.say(f"fence request: {verb} {n.name} held by the test")
                ev.wait(60)
        try:
            with self.lock:
                if verb == "on":
                    return "0 " + self.on(n)
                if verb == "off":
                    return "0 " + self.off(n, "fenced" if fence else "power cut")
                if verb == "reboot":
                    text = self.off(n, "fenced (reboot)" if fence else "reboot")
            if verb == "reboot":
                threading.Thread(target=self._boot_later, args=(n,), daemon=True).start()
                return "0 " + text
        except ClusterError as e:
            self.say(f"{line}: {e}")
            return f"1 {e}"
        return f"2 unknown request {line!r}"

    def _boot_later(self, n: NsNode) -> None:
        time.sleep(self.c.fence_reboot_delay)
        if self.stopping.is_set():
            return
        try:
            with self.lock:
                if not self.stopping.is_set():
                    self.on(n)
        except ClusterError as e:
            self.say(f"reboot of {n.name}: {e}")

    def watch(self) -> None:
        """A node whose init died on its own (a panic: reboot() in its PID ns,
        pacemakerd gone) loses its NIC too, exactly like a power cut."""
        while not self.stopping.wait(0.2):
            with self.lock:
                for name, p in list(self.unshare.items()):
                    if p.poll() is not None and name not in self.expected_down:
                        self.unshare.pop(name)
                        self.off(self.c.node(name), "went down by itself")

    def serve(self) -> int:
        slot = host_slot(self.c.slot_wait, self.say)
        slot.__enter__()
        try:
            self.net_up()
            handler_self = self

            class Handler(socketserver.StreamRequestHandler):
                def handle(self) -> None:
                    line = self.rfile.readline().decode(errors="replace").strip()
                    try:
                        answer = handler_self.handle(line)
                    except Exception as e:  # a request must get an answer
                        handler_self.say(f"{line}: {type(e).__name__}: {e}")
                        answer = f"1 {e}"
                    self.wfile.write(answer.encode() + b"\n")
                    self.wfile.flush()
                    if line.startswith("shutdown"):
                        handler_self.stopping.set()

            sock = self.c.power_dir / POWER_SOCKET
            server = socketserver.ThreadingUnixStreamServer(str(sock), Handler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.say(f"power switch up, pid {os.getpid()}")
            self.watch()
            server.shutdown()
            server.server_close()
            sock.unlink(missing_ok=True)
        finally:
            for n in self.c.nodes:
                if n.init_pid(self.base) or self.unshare.get(n.name):
                    self.off(n, "power switch exiting")
            self.net_down()
            self.say("power switch down")
            slot.__exit__(None, None, None)
        return 0


@contextlib.contextmanager
def host_slot(wait_s: float = 900.0, say: Callable[[str], None] = log) -> Iterator[None]:
    """Hold the host's cluster slot (tests/integration/cluster_slot.py's lock) for the block.

    Waits, bounded by wait_s, until no other run holds the lock and no
    corosync or pacemakerd runs anywhere on the host (fails loudly after)."""
    SLOT_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(SLOT_LOCK, "a") as f:
        end = time.monotonic() + wait_s
        said = False
        while True:
            try:
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                others = _cluster_daemons()
                if not others:
                    break
                fcntl.lockf(f, fcntl.LOCK_UN)
            except OSError:
                others = [f"another run holds {SLOT_LOCK}"]
            if not said:
                say("waiting for the host's cluster slot: " + "; ".join(others))
                said = True
            if time.monotonic() > end:
                raise ClusterError(f"the host's cluster slot stayed busy for {wait_s:.0f}s: " + "; ".join(others))
            time.sleep(1)
        say(f"holding the host's cluster slot {SLOT_LOCK}")
        try:
            yield
        finally:
            fcntl.lockf(f, fcntl.LOCK_UN)


def _cluster_daemons() -> list[str]:
    """corosync / pacemakerd processes anywhere on the host (ours or anyone's)."""
    out = []
    for pid in all_pids():
        argv = cmdline(pid)
        if argv and os.path.basename(argv[0]) in ("corosync", "pacemakerd") and alive(pid):
            out.append(f"{pid} {' '.join(argv)}")
    return out


def powerd_main(base: Path) -> int:
    c = NamespaceCluster.load(base)
    write_pid(c.power_dir / "powerd.pid", os.getpid())
    ps = PowerSwitch(c)
    signal.signal(signal.SIGTERM, lambda *_: ps.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: ps.stopping.set())
    try:
        return ps.serve()
    except ClusterError as e:
        ps.say(f"error: {e}")
        return 1


# ---- the node init: PID 1 of a node's PID namespace ---------------------------


def _sh(*argv: str) -> None:
    r = subprocess.run(list(argv), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise ClusterError(f"{' '.join(argv)}: {r.stderr.strip()}")


class NodeMounts:
    """Makes node paths exist without touching the host's file systems: the
    nearest existing parent gets an overlay whose upper layer is in the node dir."""

    def __init__(self, node: NsNode) -> None:
        self.node = node
        self.overlaid: set[str] = set()

    def ensure(self, path: str, like: Path) -> None:
        p = Path(path)
        if p.exists() or p.is_symlink():
            return
        parent = p.parent
        while not parent.exists():
            parent = parent.parent
        if str(parent) not in self.overlaid:
            key = str(parent).strip("/").replace("/", "_") or "root"
            upper, work = self.node.dir / "ovl" / key / "upper", self.node.dir / "ovl" / key / "work"
            upper.mkdir(parents=True, exist_ok=True)
            work.mkdir(parents=True, exist_ok=True)
            _sh("mount", "-t", "overlay", f"ovl-{key}", "-o",
                f"lowerdir={parent},upperdir={upper},workdir={work}", str(parent))
            self.overlaid.add(str(parent))
        if like.is_dir():
            p.mkdir(parents=True, exist_ok=True)
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.touch()

    def bind(self, src: str | Path, dst: str) -> None:
        self.ensure(dst, Path(src))
        _sh("mount", "--bind", str(src), dst)


def ns_node_init(base: Path, node_name: str) -> int:
    c = NamespaceCluster.load(base)
    node = c.node(node_name)
    say = lambda m: print(f"{_now()} {node.name} init: {m}", flush=True)
    sigs = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    # PID 1 of a namespace gets only signals it has a handler for: install
    # handlers, and block them to take them with sigtimedwait.
    for s in sigs:
        signal.signal(s, lambda *_: None)
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        say(f"pid {os.getpid()} in its PID namespace, setting up mounts")
        socket.sethostname(node.name)
        m = NodeMounts(node)
        _sh("mount", "-t", "tmpfs", "-o", "mode=0755,size=64m", f"run-{node.name}", "/run")
        _sh("mount", "-t", "tmpfs", "-o", "mode=1777,size=256m", f"shm-{node.name}", "/dev/shm")
        ha_uid, ha_gid = pwd.getpwnam(HA_USER).pw_uid, grp.getgrnam(HA_GROUP).gr_gid
        for d, mode, owner in (("/run/lock", 0o1777, (0, 0)), ("/run/crm", 0o750, (ha_uid, ha_gid)),
                               ("/run/resource-agents", 0o1755, (0, 0)),
                               ("/run/fence-agents", 0o1755, (0, 0)), (POWER_DIR_IN_NODE, 0o755, (0, 0))):
            os.makedirs(d, exist_ok=True)
            os.chown(d, *owner)
            os.chmod(d, mode)
        _sh("mount", "--bind", str(c.power_dir), POWER_DIR_IN_NODE)
        for d in c.run_dirs:
            os.makedirs(d, mode=0o755, exist_ok=True)
        for link, target in c.run_links:
            os.symlink(target, link)
        for sub, dst in (("lib-pacemaker", "/var/lib/pacemaker"), ("lib-corosync", "/var/lib/corosync"),
                         ("log-pacemaker", "/var/log/pacemaker"), ("log-corosync", "/var/log/corosync")):
            m.bind(node.dir / sub, dst)
        m.bind(base / "etc-corosync", "/etc/corosync")
        m.bind(base / "hosts", "/etc/hosts")
        # A Pacemaker panic (fence-reaction=panic, no-quorum-policy=suicide)
        # writes 'b' to sysrq-trigger: it must never reach the host's kernel.
        for f in ("/proc/sysrq-trigger", "/proc/sys/kernel/sysrq"):
            if os.path.exists(f):
                _sh("mount", "--bind", "/dev/null", f)
        m.bind(FENCE_AGENT_SRC, f"/usr/sbin/{FENCE_AGENT}")
        # Every node mounts its own /tmp over the host's: a bind below /tmp (a
        # build tree in a clone under /tmp) is held outside /tmp first, then
        # bound again on top of the node's /tmp.
        below_tmp = [(src, dst) for src, dst in c.binds if Path("/tmp") in Path(dst).parents]
        for src, dst in c.binds:
            if (src, dst) not in below_tmp:
                m.bind(src, dst)
        held = [node.dir / "held" / str(i) for i in range(len(below_tmp))]
        for (src, _), stage in zip(below_tmp, held):
            stage.mkdir(parents=True, exist_ok=True)
            _sh("mount", "--bind", src, str(stage))
        for d in c.private_dirs:
            m.bind(node.dir / "priv" / d.lstrip("/"), d)
        m.ensure(c.store_mount, Path("/"))
        m.bind(node.dir / "tmp", "/tmp")  # last: the node dir is reached through the host paths
        for (_, dst), stage in zip(below_tmp, held):
            os.makedirs(dst, exist_ok=True)
            _sh("mount", "--bind", str(stage), dst)
        os.chdir("/")
    except (ClusterError, OSError) as e:
        say(f"setup failed: {e}")
        return 1

    env = {"PATH": DAEMON_PATH, "LANG": "C.UTF-8", "HOME": "/root", "PCMK_logfacility": "none",
           "PCMK_logpriority": "info", "MSG_CLUSTER_BASE": str(base), "MSG_CLUSTER_NODE": node.name}
    stop = False

    def pending_stop(wait: float) -> bool:
        return stop_signal_pending(sigs, wait)

    def members() -> int:
        r = subprocess.run(["corosync-cmapctl", "-b", "runtime.members"], capture_output=True,
                           text=True, env=env)
        return r.stdout.count("status (str) = joined")

    t0 = time.monotonic()
    cs = spawn([COROSYNC, "-f"], env, Path("/var/log/corosync/corosync.out"))
    pm = 0
    while not stop:
        reap_all()
        if not alive(cs):
            say("corosync exited during start; see log-corosync/")
            return 1
        if subprocess.run(["corosync-cfgtool", "-s"], capture_output=True, env=env).returncode == 0:
            break
        stop = pending_stop(0.05)
    # Startup fencing: a node Pacemaker never saw is fenced.  Start pacemakerd
    # only once every node is a corosync member (bounded).
    n = 0
    while not stop:
        n = members()
        if n >= len(c.nodes) or time.monotonic() - t0 > c.gate_timeout:
            break
        stop = pending_stop(0.1)
    if not stop:
        say(f"corosync up after {time.monotonic() - t0:.1f}s with {n} of {len(c.nodes)} members; "
            "starting pacemakerd")
        pm = spawn([PACEMAKERD], env, Path("/var/log/pacemaker/pacemakerd.out"))
        while not stop:
            reap_all()
            if not alive(pm):
                say("pacemakerd exited: stopping corosync")
                break
            stop = pending_stop(0.5)
    say("stopping" if stop else "going down")
    if pm and alive(pm):
        signal_pid(pm, signal.SIGTERM)  # stops the resources first
        if not wait_gone([pm], c.pacemaker_stop_timeout, reap_all):
            say(f"pacemakerd still running after {c.pacemaker_stop_timeout:.0f}s")
    if alive(cs):
        signal_pid(cs, signal.SIGTERM)
        wait_gone([cs], 10, reap_all)
    say("down")
    return 0 if stop else 1   # our exit kills whatever is left in the namespace


# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Corosync + Pacemaker for the demo and the cluster tests: "
                                 "one node on loopback, or N nodes in namespaces (--nodes N).")
    ap.add_argument("--base", default=os.environ.get("MSG_CLUSTER_BASE_DIR"),
                    help=f"state dir (default {DEFAULT_BASE}, with --nodes > 1 {NS_DEFAULT_BASE}; "
                    "or $MSG_CLUSTER_BASE_DIR)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("start", help="start (idempotent) and wait until online")
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--nodes", type=int, default=1, help="> 1: nodes in namespaces, with fencing")
    p.add_argument("--stonith", action="store_true", help="one node: keep stonith-enabled=true")
    p.add_argument("--token-ms", type=int, default=1000)
    p = sub.add_parser("wait-online")
    p.add_argument("--timeout", type=float, default=60)
    p = sub.add_parser("stop", help="graceful, then forced stop of what we started")
    p.add_argument("--timeout", type=float, default=120, help="for Pacemaker to stop resources")
    sub.add_parser("destroy", help="stop, then remove the base dir (finds a crashed run's leftovers)")
    sub.add_parser("status")
    p = sub.add_parser("exec", help="run a command on a node, e.g. exec --node 2 -- crm_mon -1")
    p.add_argument("--node", default=None)
    p.add_argument("command", nargs=argparse.REMAINDER)
    for verb, what in (("kill-node", "power cut"), ("boot-node", "power on"),
                       ("cut-link", "unplug its cable"), ("restore-link", "plug it back")):
        p = sub.add_parser(verb, help=f"namespaced nodes: {what}")
        p.add_argument("node")
    p = sub.add_parser("_node-init", help=argparse.SUPPRESS)
    p.add_argument("--node", required=True)
    p.add_argument("--pacemaker-stop-timeout", type=float, default=120)
    p = sub.add_parser("_ns-init", help=argparse.SUPPRESS)
    p.add_argument("--node", required=True)
    sub.add_parser("_powerd", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)

    many = a.cmd == "start" and a.nodes > 1
    base = Path(a.base or (NS_DEFAULT_BASE if many else DEFAULT_BASE))
    try:
        if a.cmd == "_node-init":
            return node_init(base.resolve(), a.node, a.pacemaker_stop_timeout)
        if a.cmd == "_ns-init":
            return ns_node_init(base.resolve(), a.node)
        if a.cmd == "_powerd":
            return powerd_main(base.resolve())
        if a.cmd == "start":
            if many:
                nc = NamespaceCluster(base, nodes=a.nodes, token_ms=a.token_ms)
                nc.stop_at_exit = False  # it outlives this command until `stop`/`destroy`
                nc.start(timeout=a.timeout)
            else:
                Cluster(base, stonith_enabled=a.stonith, token_ms=a.token_ms).start(timeout=a.timeout)
            return 0
        c = cluster_for(base)
        if a.cmd == "wait-online":
            c.wait_online(timeout=a.timeout)
        elif a.cmd == "stop":
            c.stop(timeout=a.timeout)
        elif a.cmd == "destroy":
            c.destroy()
        elif a.cmd == "status":
            print(c.status())
            return 0 if c.is_running() else 3
        elif a.cmd == "exec":
            cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
            if not cmd:
                ap.error("exec needs a command")
            if isinstance(c, NamespaceCluster):
                r = c.run(cmd, node=a.node, capture=False, timeout=24 * 3600)
                return r.returncode
            os.execvpe(cmd[0], cmd, c.env(c.node(a.node)))
        else:
            if not isinstance(c, NamespaceCluster):
                raise ClusterError(f"{a.cmd} needs a namespaced cluster")
            {"kill-node": c.kill_node, "boot-node": c.boot_node, "cut-link": c.cut_link,
             "restore-link": c.restore_link}[a.cmd](a.node)
    except ClusterError as e:
        print(f"cluster: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
