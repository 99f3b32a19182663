"""Process plumbing shared by the integration tests, bench/ and scripts/demo.

Two things live here:

* ``run()`` / ``popen()``: the ONLY way this code base spawns processes.  They
  record the child's pid while it is ours to wait for, so that the subreaper
  below never steals its exit status (if it did, ``subprocess`` would see
  ECHILD and silently report exit code 0).
* ``enable_subreaper()``: makes the calling process a child subreaper
  (``prctl(PR_SET_CHILD_SUBREAPER)``) and starts a daemon thread that reaps
  every zombie child it is not waiting for itself.  Daemons such as Postfix's
  master double-fork; once they are adopted by us, a killed daemon is reaped
  within ~20 ms instead of lingering as a zombie for ~1.5 s under this
  machine's PID 1 (brief, "Machine facts").

Liveness helpers (``alive()``, ``state()``) treat zombies as dead, as every
process check on this machine must.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

_PR_SET_CHILD_SUBREAPER = 36

_lock = threading.Lock()
_waited_for: set[int] = set()  # pids of children whose status belongs to a Popen
_reaper: threading.Thread | None = None


def popen(args: Sequence[str], **kwargs) -> subprocess.Popen:
    """subprocess.Popen, registered so the reaper thread leaves the child alone.

    Call ``release(p)`` after ``p.wait()`` (``run()`` does this for you)."""
    with _lock:
        p = subprocess.Popen(args, **kwargs)
        _waited_for.add(p.pid)
    return p


def release(p: subprocess.Popen) -> None:
    """Forget a child that popen() registered once it has been waited for."""
    with _lock:
        _waited_for.discard(p.pid)


def run(args: Sequence[str], *, timeout: float = 60.0, env: dict | None = None,
        cwd: str | os.PathLike | None = None, input: str | None = None,
        check: bool = False) -> subprocess.CompletedProcess:
    """Run a command to completion (text mode, stdout/stderr captured).

    On timeout the child is SIGKILLed and subprocess.TimeoutExpired propagates.
    With check=True a non-zero exit raises CalledProcessError (stderr included)."""
    p = popen(args, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
              env=env, cwd=cwd)
    try:
        out, err = p.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise
    finally:
        if p.returncode is not None:
            release(p)
    result = subprocess.CompletedProcess(list(args), p.returncode, out, err)
    if check and p.returncode != 0:
        raise subprocess.CalledProcessError(p.returncode, list(args), out, err)
    return result


def _our_children() -> list[int]:
    pids: list[int] = []
    for task in Path("/proc/self/task").iterdir():
        try:
            pids.extend(int(x) for x in (task / "children").read_text().split())
        except OSError:
            continue
    return pids


def _reap_loop(period_s: float) -> None:
    while True:
        with _lock:
            for pid in _our_children():
                if pid in _waited_for or state(pid) != "Z":
                    continue
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
        time.sleep(period_s)


def enable_subreaper(period_s: float = 0.02) -> None:
    """Become a child subreaper and reap adopted zombies in a daemon thread.

    Idempotent.  Raises OSError if prctl fails."""
    global _reaper
    if _reaper is not None:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "prctl(PR_SET_CHILD_SUBREAPER): " + os.strerror(err))
    _reaper = threading.Thread(target=_reap_loop, args=(period_s,), name="subreaper", daemon=True)
    _reaper.start()


def state(pid: int) -> str | None:
    """The one-letter state from /proc/PID/stat ('R', 'S', 'T', 'Z', ...), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may contain spaces and parentheses: the state follows the LAST ')'.
    return stat[stat.rindex(")") + 2]


def alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    s = state(pid)
    return s is not None and s not in ("Z", "X")


def wait_gone(pids: Iterable[int], timeout_s: float) -> list[int]:
    """Wait until none of pids is alive; return those still alive at the timeout."""
    pids = list(pids)
    deadline = time.monotonic() + timeout_s
    while True:
        left = [p for p in pids if alive(p)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.02)


def kill_and_wait(pids: Iterable[int], timeout_s: float = 5.0) -> list[int]:
    """SIGKILL every live pid (works on SIGSTOPped ones too); return survivors."""
    pids = [p for p in pids if alive(p)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return wait_gone(pids, timeout_s)


# ---- wedging: a process that only SIGKILL can end -------------------------

_WEDGE_CODE = r"""
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_SEIZE, PTRACE_INTERRUPT = 0x4206, 0x4207
for pid in map(int, sys.argv[1:]):
    for req in (PTRACE_SEIZE, PTRACE_INTERRUPT):
        if libc.ptrace(req, pid, None, None) != 0:
            sys.exit(f"ptrace({req:#x}, {pid}): errno {ctypes.get_errno()}")
print("wedged", flush=True)
sys.stdin.read()  # hold them until our stdin closes; exiting detaches them
"""


class Wedge:
    """Hold processes in ptrace-stop, where SIGTERM and SIGCONT stay pending and
    only SIGKILL acts: a stand-in for a daemon hung in the kernel, which SIGSTOP
    is not (SIGCONT would revive it).  The tracer is a separate child process;
    release() (or its death) detaches, and the pending signals then arrive."""

    def __init__(self, pids: Iterable[int]):
        self.pids = list(pids)
        self._p = popen(["/usr/bin/python3", "-c", _WEDGE_CODE, *map(str, self.pids)],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self._p.stdout.readline()
        if line.strip() != "wedged":
            self.release()
            raise OSError(f"could not wedge {self.pids}: {self._p.stderr.read().strip()}")

    def release(self) -> None:
        if self._p.returncode is None:
            self._p.stdin.close()
            self._p.wait(10)
            release(self._p)

    def __enter__(self) -> "Wedge":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def comm(pid: int) -> str | None:
    """The command name from /proc/PID/comm, None if gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def describe(pids: Iterable[int]) -> str:
    """'pid(comm,state) ...' for assertion messages."""
    return " ".join(f"{p}({comm(p) or '?'},{state(p)})" for p in pids)


def kill_all(find: Callable[[], list[int]], timeout_s: float = 5.0, rounds: int = 3) -> list[int]:
    """SIGKILL every pid find() returns until it returns none (a dying daemon
    may still fork); return the survivors of the last round."""
    survivors: list[int] = []
    for _ in range(rounds):
        survivors = kill_and_wait(find(), timeout_s)
        if not find():
            break
    return survivors
