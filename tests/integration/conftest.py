"""Fixtures for the integration tests: real Postfix instances, the build-tree agent.

Nothing here skips: a missing postfix, agent or helper fails the test loudly,
because a suite that silently skips proves nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Callable, Iterator

import pytest

import procs
import scratch_fs
from ocf import agent_path, build_dir, helper_dir
from postfix_instance import POSTFIX, PostfixInstance, free_port, make_base_dir, rmtree

HELPERS = ("msg-probe", "msg-probe-ldap", "msg-recover")


def pytest_configure(config: pytest.Config) -> None:
    # Daemons started by the agent double-fork and are adopted by us: reap
    # them at once, or a kill -9'd master lingers as a zombie for ~1.5 s.
    procs.enable_subreaper()
    # A CI timeout sends TERM: turn it into an interrupt so fixture teardown
    # still kills the daemons, unmounts and restores the default main.cf.
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def build_tree() -> Path:
    """The build dir, after checking that the postfix agent, its shell library and the helpers exist."""
    problems = []
    agent = agent_path("postfix")
    if not os.access(agent, os.X_OK):
        problems.append(f"agent {agent} missing or not executable")
    funcs = build_dir() / "ocf" / "lib" / "messaging" / "messaging-shellfuncs"
    if not funcs.is_file():
        problems.append(f"shell library {funcs} missing")
    for h in HELPERS:
        if not os.access(helper_dir() / h, os.X_OK):
            problems.append(f"helper {helper_dir() / h} missing or not executable")
    for tool in (POSTFIX, "/usr/sbin/ocf-tester", "/usr/lib/postfix/sbin/master"):
        if not os.access(tool, os.X_OK):
            problems.append(f"{tool} missing (run scripts/install-deps)")
    if problems:
        pytest.fail("integration prerequisites missing (build with scripts/test or set MSG_BUILD_DIR):\n  "
                    + "\n  ".join(problems), pytrace=False)
    return build_dir()


@pytest.fixture
def postfix_agent(build_tree: Path) -> Path:
    """Path of the build-tree ocf:messaging:postfix agent."""
    return agent_path("postfix")


@contextlib.contextmanager
def tmpfs_mount(path: Path, size_mib: int) -> Iterator[Path]:
    """Mount a tmpfs of size_mib on path (created if needed) and always unmount it."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(scratch_fs.tmpfs(path, size_mib))
        except RuntimeError as e:
            pytest.fail(str(e), pytrace=False)
        yield path


@pytest.fixture(scope="session")
def queue_template(build_tree: Path) -> Iterator[Path]:
    """A Postfix queue built once per session by `postfix check`, copied into each instance."""
    base = make_base_dir("msg-itest-template-")
    try:
        inst = PostfixInstance(base, free_port())
        with inst.register_alternate():
            inst.create()
        yield inst.queue_dir
    finally:
        rmtree(base)


MakePostfix = Callable[..., PostfixInstance]


@pytest.fixture
def make_postfix(build_tree: Path, queue_template: Path) -> Iterator[MakePostfix]:
    """Factory: make_postfix(queue_tmpfs_mib=None, start=False, **main_cf_overrides).

    Each instance lives in its own /tmp dir, on a free loopback port, registered
    in the default main.cf's alternate_config_directories.  Teardown, even after
    a failure: SIGKILL every process of the instance (by pid: its master.pid and
    any process whose cwd or cmdline is inside its base dir), unmount the tmpfs,
    unregister, delete the dir."""
    stack = contextlib.ExitStack()
    instances: list[PostfixInstance] = []

    def make(queue_tmpfs_mib: int | None = None, start: bool = False, **main_cf: str) -> PostfixInstance:
        base = make_base_dir()
        stack.callback(rmtree, base)
        inst = PostfixInstance(base, free_port())
        instances.append(inst)
        stack.enter_context(inst.register_alternate())
        if queue_tmpfs_mib:
            stack.enter_context(tmpfs_mount(inst.queue_dir, queue_tmpfs_mib))
        # Registered after the mount, so it runs before the unmount.
        stack.callback(_kill_instance, inst)
        if main_cf:
            inst.set_main(**main_cf)
        inst.create(queue_template)
        if start:
            inst.start()
        return inst

    with stack:
        yield make


def _kill_instance(inst: PostfixInstance) -> None:
    survivors = inst.kill_all()
    if survivors:
        # Not fatal for cleanup, but it must be seen.
        print(f"WARNING: processes of {inst.base_dir} survived SIGKILL: {survivors}")


@pytest.fixture
def postfix(make_postfix: MakePostfix) -> PostfixInstance:
    """A fresh, stopped Postfix instance (queue created, nothing running)."""
    return make_postfix()


@pytest.fixture
def running_postfix(make_postfix: MakePostfix) -> PostfixInstance:
    """A fresh instance started with `postfix start` (not through the agent)."""
    return make_postfix(start=True)


@pytest.fixture
def sleeper() -> Iterator[int]:
    """pid of an unrelated `sleep 300` (cwd /), killed and reaped at teardown."""
    p = procs.popen(["sleep", "300"], cwd="/")
    try:
        yield p.pid
    finally:
        p.kill()
        p.wait()
        procs.release(p)



# ---------------------------------------------------------------------------
# Dovecot (issue #3)

DOVECOT_TOOLS = ("/usr/sbin/dovecot", "/usr/bin/doveconf", "/usr/bin/doveadm", "/usr/lib/dovecot/imap",
                 "/usr/lib/dovecot/pop3", "/usr/lib/dovecot/lmtp")


@pytest.fixture
def dovecot_agent(build_tree: Path) -> Path:
    """Path of the build-tree ocf:messaging:dovecot agent, after checking Dovecot and vmail are installed."""
    from dovecot_instance import vmail_ids

    problems = []
    agent = agent_path("dovecot")
    if not os.access(agent, os.X_OK):
        problems.append(f"agent {agent} missing or not executable")
    for tool in DOVECOT_TOOLS:
        if not os.access(tool, os.X_OK):
            problems.append(f"{tool} missing (run scripts/install-deps)")
    try:
        vmail_ids()
    except RuntimeError as e:
        problems.append(str(e))
    if problems:
        pytest.fail("Dovecot prerequisites missing:\n  " + "\n  ".join(problems), pytrace=False)
    return agent


@pytest.fixture
def make_dovecot(dovecot_agent: Path) -> Iterator[Callable[..., "DovecotInstance"]]:
    """Factory: make_dovecot(mail_tmpfs_mib=None, start=False) -> DovecotInstance.

    Each instance lives in its own /tmp dir with IMAP, POP3 and LMTP on free
    loopback ports.  Teardown, even after a failure: SIGKILL every process of
    the instance by pid, unmount the tmpfs, delete the dir."""
    from dovecot_instance import DovecotInstance

    stack = contextlib.ExitStack()

    def make(mail_tmpfs_mib: int | None = None, start: bool = False) -> DovecotInstance:
        base = make_base_dir("msg-itest-dovecot-")
        stack.callback(rmtree, base)
        inst = DovecotInstance(base, free_port(), free_port(), free_port())
        if mail_tmpfs_mib:
            stack.enter_context(tmpfs_mount(inst.mail_root, mail_tmpfs_mib))
        # Registered after the mount, so it runs before the unmount.
        stack.callback(_kill_dovecot, inst)
        inst.create()
        if start:
            inst.start()
        return inst

    with stack:
        yield make


def _kill_dovecot(inst) -> None:
    survivors = inst.kill_all()
    if survivors:
        print(f"WARNING: processes of {inst.base_dir} survived SIGKILL: {survivors}")


@pytest.fixture
def dovecot(make_dovecot):
    """A fresh, stopped Dovecot instance (config, users and empty store written, nothing running)."""
    return make_dovecot()
