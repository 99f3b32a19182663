"""Run OCF resource agents the way Pacemaker's executor does, and read their results.

Agents under test are the BUILD-TREE copies: <build>/ocf/resource.d/messaging/<agent>,
configured with the helpers in <build>/libexec.  <build> is $MSG_BUILD_DIR, by
default the repository's build/ directory (what scripts/test builds).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import procs

REPO_ROOT = Path(__file__).resolve().parents[2]
OCF_ROOT = "/usr/lib/ocf"


class OCF(IntEnum):
    """OCF exit codes (keep in sync with ocf-returncodes).

    190/191 are OCF 1.1's degraded codes, which Pacemaker 2.0.5+ knows
    (PCMK_OCF_DEGRADED*) but resource-agents 4.12's ocf-returncodes lacks."""
    SUCCESS = 0
    ERR_GENERIC = 1
    ERR_ARGS = 2
    ERR_UNIMPLEMENTED = 3
    ERR_PERM = 4
    ERR_INSTALLED = 5
    ERR_CONFIGURED = 6
    NOT_RUNNING = 7
    RUNNING_MASTER = 8
    FAILED_MASTER = 9
    DEGRADED = 190
    DEGRADED_MASTER = 191


def build_dir() -> Path:
    """$MSG_BUILD_DIR, else <repo>/build."""
    return Path(os.environ.get("MSG_BUILD_DIR", REPO_ROOT / "build")).resolve()


def agent_path(name: str) -> Path:
    return build_dir() / "ocf" / "resource.d" / "messaging" / name


def helper_dir() -> Path:
    return build_dir() / "libexec"


_REASON_RE = re.compile(r"^ocf-exit-reason:(.*)$", re.MULTILINE)


@dataclass
class Result:
    """What one agent invocation did. elapsed is wall seconds."""
    rc: int
    stdout: str
    stderr: str
    exit_reason: str | None
    elapsed: float
    action: str = ""

    def describe(self) -> str:
        """A multi-line summary for assertion messages."""
        return (f"action {self.action!r} rc={self.rc} ({_rc_name(self.rc)}) in {self.elapsed:.2f}s\n"
                f"exit reason: {self.exit_reason!r}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}")


def _rc_name(rc: int) -> str:
    try:
        return OCF(rc).name
    except ValueError:
        return "?"


def agent_environment(agent: str | os.PathLike, params: dict[str, object], *, check_level: int | None = None,
                      interval_ms: int = 0, timeout_ms: int = 20000, instance: str = "itest",
                      env_extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment Pacemaker's executor gives `agent`: OCF_RESKEY_<k>=<v> for params,
    the meta attributes, and env_extra on top."""
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C",
        "OCF_ROOT": OCF_ROOT,
        "OCF_RESOURCE_INSTANCE": instance,
        "OCF_RESOURCE_TYPE": Path(agent).name,
        "OCF_RESOURCE_PROVIDER": "messaging",
        "OCF_RA_VERSION_MAJOR": "1",
        "OCF_RA_VERSION_MINOR": "1",
        "OCF_RESKEY_CRM_meta_interval": str(interval_ms),
        "OCF_RESKEY_CRM_meta_timeout": str(timeout_ms),
    }
    if check_level is not None:
        env["OCF_CHECK_LEVEL"] = str(check_level)
    for k, v in params.items():
        env[f"OCF_RESKEY_{k}"] = str(v)
    env.update(env_extra or {})
    return env


def agent_result(rc: int, stdout: str, stderr: str, elapsed: float, action: str) -> Result:
    """A Result, its exit reason the last ocf-exit-reason line of stderr."""
    reasons = [m.strip() for m in _REASON_RE.findall(stderr)]
    return Result(rc, stdout, stderr, reasons[-1] if reasons else None, elapsed, action)


def run_agent(agent: str | os.PathLike, action: str, params: dict[str, object], *,
              check_level: int | None = None, interval_ms: int = 0, timeout_ms: int = 20000,
              instance: str = "itest", env_extra: dict[str, str] | None = None,
              wall_timeout_s: float | None = None) -> Result:
    """Run `agent action` with OCF_RESKEY_<k>=<v> for params.

    interval_ms 0 makes a monitor a probe, as Pacemaker does.  The agent is killed
    (and TimeoutExpired raised) after wall_timeout_s, by default timeout_ms plus
    10 s, so a hung agent fails the test instead of hanging the suite."""
    env = agent_environment(agent, params, check_level=check_level, interval_ms=interval_ms,
                            timeout_ms=timeout_ms, instance=instance, env_extra=env_extra)
    if wall_timeout_s is None:
        wall_timeout_s = timeout_ms / 1000 + 10
    t0 = time.monotonic()
    r = procs.run([str(agent), action], env=env, timeout=wall_timeout_s, cwd="/")
    return agent_result(r.returncode, r.stdout, r.stderr, time.monotonic() - t0, action)


def no_cluster_path(directory: Path) -> str:
    """PATH with an attrd_updater that always fails, made in `directory`, first: for agents
    (mailflow) whose node attributes must never reach a cluster that may run on this host."""
    stub = directory / "bin" / "attrd_updater"
    stub.parent.mkdir(exist_ok=True)
    stub.write_text("#!/bin/sh\necho 'attrd_updater: no cluster in this test' >&2\nexit 102\n")
    stub.chmod(0o755)
    return f"{stub.parent}:/usr/sbin:/usr/bin:/sbin:/bin"


class AgentResource:
    """One agent bound to fixed parameters, called the way Pacemaker calls it:
    r.start(), r.monitor(10), r.probe(), r("validate-all"), each with per-call
    parameter overrides (a value of None removes a parameter)."""

    def __init__(self, agent: str | os.PathLike, params: dict[str, object], *, instance: str = "itest",
                 start_ms: int = 20000, stop_ms: int = 30000, monitor_ms: int = 10000):
        self.agent = agent
        self.params = dict(params)
        self.instance = instance
        self.start_ms, self.stop_ms, self.monitor_ms = start_ms, stop_ms, monitor_ms

    def __call__(self, action: str, *, check_level: int | None = None, interval_ms: int = 0,
                 timeout_ms: int | None = None, **override: object) -> Result:
        params = {k: v for k, v in {**self.params, **override}.items() if v is not None}
        return run_agent(self.agent, action, params, check_level=check_level, interval_ms=interval_ms,
                         timeout_ms=timeout_ms or self.monitor_ms, instance=self.instance)

    def start(self, **kw) -> Result:
        return self("start", timeout_ms=kw.pop("timeout_ms", self.start_ms), **kw)

    def stop(self, **kw) -> Result:
        return self("stop", timeout_ms=kw.pop("timeout_ms", self.stop_ms), **kw)

    def monitor(self, level: int, **kw) -> Result:
        """A recurring monitor (interval 10 s) at OCF_CHECK_LEVEL level."""
        return self("monitor", check_level=level, interval_ms=10000, **kw)

    def probe(self, **kw) -> Result:
        """A probe: monitor with interval 0, as Pacemaker runs it (depth 0)."""
        return self("monitor", interval_ms=0, **kw)

    def validate(self, **kw) -> Result:
        return self("validate-all", **kw)


def expect(r: Result, *codes: int) -> None:
    """Fail (at the caller's line) unless the agent exited with one of codes."""
    __tracebackhide__ = True
    if r.rc not in codes:
        raise AssertionError(f"expected {' or '.join(OCF(c).name for c in codes)}, got:\n{r.describe()}")


def expect_reason(r: Result, pattern: str = r"\S") -> None:
    """Fail unless the agent gave an ocf-exit-reason matching pattern (case-insensitive)."""
    __tracebackhide__ = True
    if not (r.exit_reason and re.search(pattern, r.exit_reason, re.IGNORECASE)):
        raise AssertionError(f"expected an ocf-exit-reason matching /{pattern}/, got:\n{r.describe()}")


def wait_for(pred, timeout_s: float, what: str, period_s: float = 0.1):
    """Poll pred() until it returns something true, and return that; raise
    AssertionError naming `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(period_s)


def snapshot(root: Path) -> dict[str, tuple]:
    """Everything below root (mode, owner, size, mtime; not access times), to prove
    that an action such as validate-all created or changed nothing."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            snap[str(p.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns)
    return snap


__all__ = ["OCF", "Result", "run_agent", "agent_environment", "agent_result", "no_cluster_path", "agent_path", "helper_dir", "build_dir", "OCF_ROOT", "REPO_ROOT",
           "AgentResource", "expect", "expect_reason", "wait_for", "snapshot"]
