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
import ctypes
import dataclasses
import grp
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Iterable, Sequence

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


class Cluster:
    """A cluster rooted in base_dir.  All methods are safe to call twice."""

    def __init__(self, base_dir: str | os.PathLike = DEFAULT_BASE, *, nodes: int = 1,
                 token_ms: int = 1000, stonith_enabled: bool = False,
                 no_quorum_policy: str = "stop", cluster_name: str = "msgtest",
                 pacemaker_stop_timeout: float = 120.0) -> None:
        self.base = Path(base_dir).resolve()
        if nodes != 1:
            raise ClusterError("only a single node on loopback is implemented so far")
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
            return json.loads((self.base / "cluster.json").read_text()).get("magic") == MAGIC
        except (OSError, ValueError):
            return False

    def _write_config(self) -> None:
        hagid = grp.getgrnam(HA_GROUP).gr_gid
        # Pacemaker's daemons run as hacluster and write their log below the
        # node dir: it must be reachable for group haclient.
        for d in [self.base] + [n.dir for n in self.nodes]:
            d.mkdir(parents=True, exist_ok=True)
            os.chown(d, 0, hagid)
            d.chmod(0o750)
        self._check_traversable(self.base)
        (self.base / "cluster.json").write_text(json.dumps({
            "magic": MAGIC, "cluster_name": self.cluster_name, "token_ms": self.token_ms,
            "nodes": [dataclasses.asdict(n) | {"dir": str(n.dir)} for n in self.nodes],
        }, indent=2) + "\n")
        nodelist = "".join(
            f"    node {{\n        name: {n.name}\n        nodeid: {n.nodeid}\n"
            f"        ring0_addr: {n.addr}\n    }}\n" for n in self.nodes)
        n1 = self.nodes[0]
        self.conf.write_text(f"""# written by {SELF.name}; regenerated on every start
totem {{
    version: 2
    cluster_name: {self.cluster_name}
    transport: knet
    crypto_cipher: none
    crypto_hash: none
    token: {self.token_ms}
}}
logging {{
    to_stderr: no
    to_syslog: no
    to_logfile: yes
    logfile: {n1.dir}/corosync.log
    timestamp: on
}}
system {{
    state_dir: {n1.dir}
}}
quorum {{
    provider: corosync_votequorum
}}
nodelist {{
{nodelist}}}
""")

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

    def _cib_xml(self) -> str:
        stonith = "true" if self.stonith_enabled else "false"
        return f"""<cib validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="cib-bootstrap-options-dc-deadtime" name="dc-deadtime" value="2s"/>
        <nvpair id="cib-bootstrap-options-stonith-enabled" name="stonith-enabled" value="{stonith}"/>
        <nvpair id="cib-bootstrap-options-no-quorum-policy" name="no-quorum-policy" value="{self.no_quorum_policy}"/>
        <nvpair id="cib-bootstrap-options-cluster-recheck-interval" name="cluster-recheck-interval" value="1min"/>
        <nvpair id="cib-bootstrap-options-cluster-name" name="cluster-name" value="{self.cluster_name}"/>
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources/>
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
        info = signal.sigtimedwait(sigs, wait)
        while info is not None:
            if info.si_signo != signal.SIGCHLD:
                return True
            info = signal.sigtimedwait(sigs, 0)
        return False

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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Single-node Corosync + Pacemaker on loopback, "
                                 "for the demo and the cluster tests.")
    ap.add_argument("--base", default=os.environ.get("MSG_CLUSTER_BASE_DIR", str(DEFAULT_BASE)),
                    help="state dir (default %(default)s, or $MSG_CLUSTER_BASE_DIR)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("start", help="start (idempotent) and wait until online")
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--stonith", action="store_true", help="keep stonith-enabled=true")
    p.add_argument("--token-ms", type=int, default=1000)
    p = sub.add_parser("wait-online")
    p.add_argument("--timeout", type=float, default=60)
    p = sub.add_parser("stop", help="graceful, then forced stop of what we started")
    p.add_argument("--timeout", type=float, default=120, help="for Pacemaker to stop resources")
    sub.add_parser("destroy", help="stop, then remove the base dir")
    sub.add_parser("status")
    p = sub.add_parser("exec", help="run a command on a node, e.g. exec -- crm_mon -1")
    p.add_argument("--node", default=None)
    p.add_argument("command", nargs=argparse.REMAINDER)
    p = sub.add_parser("_node-init", help=argparse.SUPPRESS)
    p.add_argument("--node", required=True)
    p.add_argument("--pacemaker-stop-timeout", type=float, default=120)
    a = ap.parse_args(argv)

    base = Path(a.base)
    try:
        if a.cmd == "_node-init":
            return node_init(base.resolve(), a.node, a.pacemaker_stop_timeout)
        if a.cmd == "start":
            Cluster(base, stonith_enabled=a.stonith, token_ms=a.token_ms).start(timeout=a.timeout)
        elif a.cmd == "wait-online":
            Cluster(base).wait_online(timeout=a.timeout)
        elif a.cmd == "stop":
            Cluster(base).stop(timeout=a.timeout)
        elif a.cmd == "destroy":
            Cluster(base).destroy()
        elif a.cmd == "status":
            c = Cluster(base)
            print(c.status())
            return 0 if c.is_running() else 3
        elif a.cmd == "exec":
            cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
            if not cmd:
                ap.error("exec needs a command")
            c = Cluster(base)
            os.execvpe(cmd[0], cmd, c.env(c.node(a.node)))
    except ClusterError as e:
        print(f"cluster: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
