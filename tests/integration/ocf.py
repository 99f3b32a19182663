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


def run_agent(agent: str | os.PathLike, action: str, params: dict[str, object], *,
              check_level: int | None = None, interval_ms: int = 0, timeout_ms: int = 20000,
              instance: str = "itest", env_extra: dict[str, str] | None = None,
              wall_timeout_s: float | None = None) -> Result:
    """Run `agent action` with OCF_RESKEY_<k>=<v> for params.

    interval_ms 0 makes a monitor a probe, as Pacemaker does.  The agent is killed
    (and TimeoutExpired raised) after wall_timeout_s, by default timeout_ms plus
    10 s, so a hung agent fails the test instead of hanging the suite."""
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
    if wall_timeout_s is None:
        wall_timeout_s = timeout_ms / 1000 + 10
    t0 = time.monotonic()
    r = procs.run([str(agent), action], env=env, timeout=wall_timeout_s, cwd="/")
    elapsed = time.monotonic() - t0
    reasons = [m.strip() for m in _REASON_RE.findall(r.stderr)]
    return Result(r.returncode, r.stdout, r.stderr, reasons[-1] if reasons else None, elapsed, action)


__all__ = ["OCF", "Result", "run_agent", "agent_path", "helper_dir", "build_dir", "OCF_ROOT", "REPO_ROOT"]
