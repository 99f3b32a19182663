"""What every bench/ program shares: running an agent or helper the way
pacemaker-execd does and measuring what that one call cost, statistics, and
the machine facts a report quotes.

Measuring goes through bench/rusage-exec.c (compiled on first use into the
work dir): it forks the program and reports wait4(2)'s figures for the whole
process tree (see there for why a launcher and not Python's own fork).  Each
call runs in a session of its own, so a call that overruns its operation
timeout is killed with its whole process group, as Pacemaker kills it.
"""

from __future__ import annotations

import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

import procs  # noqa: E402

OCF_ROOT = "/usr/lib/ocf"
STOCK_DIR = Path(OCF_ROOT) / "resource.d" / "heartbeat"
_REASON_RE = re.compile(r"^ocf-exit-reason:(.*)$", re.MULTILINE)
_LOG_PREFIX_RE = re.compile(r"^(?:\S+\[\d+\]:\s*)?(?:[A-Z][a-z]{2} +\d+ [\d:]{8} )?")


def build_dir(arg: str | None = None) -> Path:
    """--build-dir, else $MSG_BUILD_DIR, else <repo>/build (what scripts/test and scripts/bench build)."""
    return Path(arg or os.environ.get("MSG_BUILD_DIR") or REPO / "build").resolve()


def ours(build: Path, agent: str) -> Path:
    return build / "ocf" / "resource.d" / "messaging" / agent


def agent_env(params: dict[str, object], *, check_level: int | None, interval_ms: int, timeout_ms: int,
              instance: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment pacemaker-execd gives an OCF agent (interval > 0: a recurring monitor, not a probe)."""
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C",
        "OCF_ROOT": OCF_ROOT,
        "OCF_RA_VERSION_MAJOR": "1",
        "OCF_RA_VERSION_MINOR": "1",
        "OCF_RESOURCE_INSTANCE": instance,
        "OCF_RESKEY_CRM_meta_interval": str(interval_ms),
        "OCF_RESKEY_CRM_meta_timeout": str(timeout_ms),
    }
    if check_level is not None:
        env["OCF_CHECK_LEVEL"] = str(check_level)
    env.update({f"OCF_RESKEY_{k}": str(v) for k, v in params.items() if v is not None})
    env.update(extra or {})
    return env


@dataclass
class Call:
    """What one measured call did. rc is None when it overran its timeout and was killed."""
    rc: int | None
    wall_ms: float
    cpu_ms: float
    rss_kib: int
    stderr: str

    @property
    def reason(self) -> str:
        """The agent's ocf-exit-reason, else its last ERROR/WARNING line, else its last stderr line."""
        reasons = [m.strip() for m in _REASON_RE.findall(self.stderr)]
        if reasons:
            return reasons[-1]
        lines = [ln.strip() for ln in self.stderr.splitlines() if ln.strip()]
        flagged = [ln for ln in lines if "ERROR" in ln or "WARNING" in ln]
        # ocf_log without a log daemon: "[agent(instance)[pid]:] Nov 26 14:37:10 ERROR: text"
        return _LOG_PREFIX_RE.sub("", (flagged or lines or [""])[-1])


class Launcher:
    """bench/rusage-exec.c, compiled once into work_dir."""

    def __init__(self, work_dir: Path):
        self.exe = work_dir / "rusage-exec"
        self.errlog = work_dir / "call.stderr"
        r = procs.run(["cc", "-O2", "-Wall", "-Werror", "-o", str(self.exe), str(REPO / "bench" / "rusage-exec.c")])
        if r.returncode != 0:
            raise SystemExit(f"bench: cannot compile bench/rusage-exec.c:\n{r.stderr}")

    def call(self, argv: list[str], env: dict[str, str], timeout_s: float | None = None) -> Call:
        """Run argv (stdin /dev/null, stdout discarded) and measure it; kill its
        process group at timeout_s, the operation timeout Pacemaker would apply."""
        rfd, wfd = os.pipe()
        with open(self.errlog, "wb") as err:
            t0 = time.monotonic()
            p = procs.popen([str(self.exe), str(wfd), *argv], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err, pass_fds=(wfd,), start_new_session=True,
                            cwd="/")
        os.close(wfd)
        try:
            p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        finally:
            procs.release(p)
        elapsed_ms = (time.monotonic() - t0) * 1000
        with os.fdopen(rfd) as f:
            line = f.read().split()
        stderr = self.errlog.read_text(errors="replace")
        if len(line) != 4:
            if timeout_s is not None and elapsed_ms >= timeout_s * 1000:
                return Call(None, elapsed_ms, float("nan"), 0, stderr)
            raise SystemExit(f"bench: rusage-exec failed on {argv}: {stderr}")
        rc, wall_ns, cpu_ns, rss = (int(x) for x in line)
        return Call(rc, wall_ns / 1e6, cpu_ns / 1e6, rss, stderr)


def op_timeout_s(agent: Path, depth: int) -> float:
    """The monitor timeout the agent's meta-data advises for depth (the one an
    operator copies into the CIB); the depth-0 one when depth is not listed."""
    r = procs.run([str(agent), "meta-data"], env={"OCF_ROOT": OCF_ROOT, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    found: dict[int, float] = {}
    for m in re.finditer(r'<action\s+name="monitor"([^>]*)>', r.stdout):
        attrs = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        t = re.fullmatch(r"(\d+)(ms|s|m)?", attrs.get("timeout", "20s"))
        if t:
            scale = {"ms": 0.001, "s": 1, None: 1, "m": 60}[t.group(2)]
            found[int(attrs.get("depth", "0"))] = int(t.group(1)) * scale
    if not found:
        raise SystemExit(f"bench: {agent} meta-data lists no monitor action")
    return found.get(depth, found.get(0, min(found.values())))


@dataclass
class Spread:
    median: float
    lo: float
    hi: float
    q1: float
    q3: float
    n: int

    @classmethod
    def of(cls, xs: list[float]) -> "Spread":
        xs = sorted(xs)
        q = statistics.quantiles(xs, n=4) if len(xs) >= 2 else [xs[0]] * 3
        return cls(statistics.median(xs), xs[0], xs[-1], q[0], q[2], len(xs))

    def text(self, fmt: str = ".1f") -> str:
        return f"{self.median:{fmt}} ({self.lo:{fmt}}-{self.hi:{fmt}})"


@dataclass
class Samples:
    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    rss_kib: list[float] = field(default_factory=list)

    def add(self, c: Call) -> None:
        self.wall_ms.append(c.wall_ms)
        self.cpu_ms.append(c.cpu_ms)
        self.rss_kib.append(float(c.rss_kib))

    def summary(self) -> dict[str, dict[str, float]]:
        return {k: vars(Spread.of(getattr(self, k))) for k in ("wall_ms", "cpu_ms", "rss_kib")
                if getattr(self, k)}


def machine_facts() -> dict[str, object]:
    """What the report says about where it ran."""
    cpu = ""
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        mem_kib = int(next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines()
                           if ln.startswith("MemTotal")))
    except (OSError, StopIteration):
        mem_kib = 0
    debian = Path("/etc/debian_version").read_text().strip() if Path("/etc/debian_version").exists() else "?"
    versions = {}
    for pkg in ("postfix", "dovecot-core", "slapd", "resource-agents", "pacemaker"):
        r = procs.run(["dpkg-query", "-W", "-f", "${Version}", pkg])
        versions[pkg] = r.stdout.strip() if r.returncode == 0 else "not installed"
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "host_kernel": platform.release(),
        "debian": debian,
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "mem_mib": mem_kib // 1024,
        "loadavg": list(os.getloadavg()),
        "packages": versions,
    }


def git_head() -> str:
    r = procs.run(["git", "-C", str(REPO), "log", "-1", "--format=%h %s"])
    return r.stdout.strip() if r.returncode == 0 else "?"
