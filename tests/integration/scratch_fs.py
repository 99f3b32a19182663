"""Small file systems for fault injection: a tmpfs that is always unmounted
again, and filling one up (the "disk full" faults of the tests and benches)."""

from __future__ import annotations

import contextlib
import errno
import os
import time
from pathlib import Path
from typing import Iterator

import procs


@contextlib.contextmanager
def tmpfs(path: Path, size_mib: int) -> Iterator[Path]:
    """A tmpfs of size_mib on path (created if needed), always unmounted again.

    Raises RuntimeError when it cannot be mounted."""
    path.mkdir(parents=True, exist_ok=True)
    r = procs.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs", str(path)])
    if r.returncode != 0:
        raise RuntimeError(f"cannot mount a tmpfs on {path}: {r.stderr.strip()}")
    try:
        yield path
    finally:
        # A daemon that just let go of a file may keep the mount busy briefly.
        for _ in range(50):
            if procs.run(["umount", str(path)]).returncode == 0:
                break
            time.sleep(0.1)
        else:
            procs.run(["umount", "-l", str(path)])


def fill(directory: Path, leave_bytes: int = 0) -> Path:
    """Write into directory until its file system has about leave_bytes free
    (0: no block left); return the filler file, whose removal undoes it."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        # Large writes first, then smaller ones for the last partial blocks.
        for size in (1 << 16, 4096, 512):
            try:
                while True:
                    if leave_bytes:
                        st = os.statvfs(directory)
                        if st.f_bavail * st.f_frsize <= leave_bytes + size:
                            break
                    f.write(b"\0" * size)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
    return filler
