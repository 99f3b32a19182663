"""stack_store.prepare_store() and mail_client, proved without a cluster (issue #7).

One store is prepared the way the three-node harness uses it: written to a
"shared" directory and seen by the services at a different mount point
(bind-mounted here, as ocf:heartbeat:Filesystem does on the active node),
with the node-local runtime under its own dir in /run.  Every service is
started by its build-tree agent with exactly the parameters prepare_store()
returned, monitored at depths 0, 10 and 20, and mail submitted through the
gateway is found over IMAP.  Then the "node" dies with a message still in
the internal MTA's queue (Dovecot stopped): every process is killed, the
node-local runtime is wiped as on a fresh node, and the stack starts again
from the same store (msg-recover runs in each start).  Nothing is lost: the
earlier mail, the queued message, the directory and the news article.

Run: MSG_BUILD_DIR=<build dir> /usr/bin/python3 -m pytest tests/cluster/test_stack_store.py
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "integration"))

import procs  # noqa: E402
from mail_client import MailClient, imap_message_ids  # noqa: E402
from ocf import OCF, AgentResource, agent_path, expect, wait_for  # noqa: E402
from postfix_instance import make_base_dir, rmtree  # noqa: E402
from slapd_instance import PEOPLE  # noqa: E402
from stack_store import (START_ORDER, StackInstances, StackValues, load_values, prepare_store,  # noqa: E402
                         stack_instances)

VIP = "127.0.0.1"
MESSAGES = 20
START_MS, STOP_MS, MONITOR_MS = 60000, 60000, 30000


@pytest.fixture(scope="module", autouse=True)
def reaper() -> None:
    # Daemons double-fork and are adopted by us: reap them at once (brief,
    # machine facts), and turn a CI timeout's TERM into teardown.
    procs.enable_subreaper()
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class Stack:
    """A prepared store, the services' instance objects and one agent resource per service."""

    def __init__(self, values: StackValues, shared: Path, tag: str):
        self.values = values
        self.shared = shared
        self.insts: StackInstances = stack_instances(values)
        self.rscs = {rid: AgentResource(agent_path(r.agent), r.params, instance=f"itest-stack-{tag}-{rid}",
                                        start_ms=START_MS, stop_ms=STOP_MS, monitor_ms=MONITOR_MS)
                     for rid, r in values.resources.items()}

    def start_all(self) -> dict[str, float]:
        took = {}
        for rid in START_ORDER:
            r = self.rscs[rid].start()
            expect(r, OCF.SUCCESS)
            took[rid] = r.elapsed
        return took

    def stop_all(self) -> None:
        for rid in reversed(START_ORDER):
            expect(self.rscs[rid].stop(), OCF.SUCCESS)

    def client(self, **kw) -> MailClient:
        return MailClient(VIP, self.values.ports["smtp"], self.values.user, timeout_s=5.0, **kw)

    def mailbox_ids(self) -> set[str]:
        return imap_message_ids(VIP, self.values.ports["imap"], self.values.user, self.values.password)

    def wait_delivered(self, client: MailClient, timeout_s: float) -> None:
        """Until every message client got a 250 for is in the mailbox (IMAP)."""
        def none_missing() -> bool:
            try:
                return not client.missing(VIP, self.values.ports["imap"], self.values.user, self.values.password)
            except OSError:
                return False
        try:
            wait_for(none_missing, timeout_s, "every accepted message in the mailbox", period_s=0.25)
        except AssertionError:
            missing = client.missing(VIP, self.values.ports["imap"], self.values.user, self.values.password)
            raise AssertionError(f"{len(missing)} of {len(client.accepted)} accepted messages not in the "
                                 f"mailbox: {[m.message_id for m in missing][:5]}\n"
                                 f"internal maillog:\n{self.insts.postfix_internal.maillog_tail(15)}\n"
                                 f"gateway maillog:\n{self.insts.postfix_gateway.maillog_tail(15)}") from None


@contextlib.contextmanager
def bind_mount(src: Path, dst: Path) -> Iterator[None]:
    dst.mkdir(parents=True, exist_ok=True)
    procs.run(["mount", "--bind", str(src), str(dst)], check=True)
    try:
        yield
    finally:
        for _ in range(50):
            if procs.run(["umount", str(dst)]).returncode == 0:
                break
            time.sleep(0.1)
        else:
            procs.run(["umount", "-l", str(dst)])


@pytest.fixture
def stack(build_tree_agents: Path) -> Iterator[Stack]:
    """A store written to base/shared, mounted at base/mnt/store (absent while it is
    prepared), runtime in /run/msg-itest-stack-<tag>.  Teardown, even after a
    failure: SIGKILL every process of the stack by pid, unmount, delete it all."""
    base = make_base_dir("msg-itest-stack-")
    tag = uuid.uuid4().hex[:8]
    run_root = Path(f"/run/msg-itest-stack-{tag}")
    shared, mount = base / "shared", base / "mnt" / "store"
    mount.parent.mkdir()
    stack_obj: Stack | None = None
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(rmtree, base)
        cleanup.callback(rmtree, run_root)
        cleanup.callback(_remove_agent_state, tag)
        values = prepare_store(shared, VIP, mount_point=mount, run_root=run_root)
        cleanup.enter_context(bind_mount(shared, mount))
        stack_obj = Stack(values, shared, tag)
        cleanup.callback(_kill_stack, stack_obj.insts)  # before the unmount
        yield stack_obj


@pytest.fixture(scope="module")
def build_tree_agents() -> Path:
    missing = [str(agent_path(a)) for a in ("slapd", "dovecot", "postfix", "innd", "mailflow")
               if not os.access(agent_path(a), os.X_OK)]
    if missing:
        pytest.fail(f"build-tree agents missing (build, or set MSG_BUILD_DIR): {missing}", pytrace=False)
    return agent_path("postfix").parent


def _kill_stack(insts: StackInstances) -> None:
    survivors = insts.kill_all()
    if survivors:
        print(f"WARNING: stack processes survived SIGKILL: {procs.describe(survivors)}")


def _remove_agent_state(tag: str) -> None:
    for f in Path("/run/resource-agents").glob(f"*itest-stack-{tag}-*"):
        f.unlink(missing_ok=True)


# ---------------------------------------------------------------------------

def test_store_holds_everything_and_configs_name_only_the_mount_point(stack: Stack) -> None:
    v = stack.values
    mount, run_root = v.mount_point, v.run_root
    assert list(v.resources) == list(START_ORDER)
    assert load_values(v.mount_point) == v, "stack.json on the store differs from what prepare_store returned"
    assert len(set(v.ports.values())) == len(v.ports), f"ports collide: {v.ports}"
    # Every path an agent is given is on the store or node-local runtime.
    for rid, rsc in v.resources.items():
        for name, value in rsc.params.items():
            if value.startswith("/"):
                assert value.startswith((mount + "/", run_root + "/")), f"{rid} {name}={value} is off the store"
    # The configuration names the mount point, never where the store was written.
    written_at = str(stack.shared).encode()
    offenders = [str(p) for p in stack.shared.rglob("*")
                 if p.is_file() and not p.is_symlink() and p.name != "stack.json" and p.stat().st_size < 1 << 20
                 and written_at in p.read_bytes()]
    assert not offenders, f"files naming the host path {written_at!r}: {offenders}"
    # What must survive a failover is on the store (node-local runtime is not).
    for piece in ("slapd/slapd.d", "slapd/db/data.mdb", "dovecot/dovecot.conf", "dovecot/mail",
                  "postfix-internal/etc/main.cf", "postfix-internal/spool/deferred",
                  "postfix-gateway/spool/incoming", "inn/etc/inn.conf", "inn/db/history", "inn/spool/articles"):
        assert (stack.shared / piece).exists(), f"{piece} is not on the store"
    for cred in (stack.shared / "dovecot" / "probe.cred", stack.shared / "mailflow" / "credentials"):
        st = cred.stat()
        assert (st.st_uid, st.st_mode & 0o777) == (0, 0o600), f"{cred}: uid {st.st_uid} mode {oct(st.st_mode)}"
    # What the renderer is given is what the agents were given.
    rendered = v.render_values()
    assert rendered["vip"] == {"ip": VIP} and rendered["store"] == {"directory": mount}
    assert all(rendered[rid] == rsc.params for rid, rsc in v.resources.items())
    assert not Path(run_root).exists(), "prepare_store must leave node-local runtime to the node"


def test_stack_runs_from_the_store_and_survives_a_node_death_with_nothing_lost(stack: Stack) -> None:
    t0 = time.monotonic()
    took = stack.start_all()
    print(f"\nstarted in {sum(took.values()):.1f}s: " + ", ".join(f"{k} {s:.1f}s" for k, s in took.items()))
    listeners = _tcp_listeners(stack.insts.processes())
    expected = {(VIP, port) for port in stack.values.ports.values()}
    assert listeners == expected, f"the stack listens on {sorted(listeners)}, expected only the VIP's {sorted(expected)}"
    for rid in START_ORDER:
        for level in (0, 10, 20):
            r = stack.rscs[rid].monitor(level)
            assert r.rc == OCF.SUCCESS, f"{rid} monitor at depth {level}:\n{r.describe()}"

    # Mail through the gateway, the internal MTA and LMTP into the mailbox.
    client = stack.client(interval_s=0.05)
    with client:
        client.wait_accepted(MESSAGES, timeout_s=60)
    assert not client.failures, f"submissions failed on a healthy stack: {client.failures[:3]}"
    stack.wait_delivered(client, timeout_s=30)
    print(f"{len(client.accepted)} messages submitted and found over IMAP")

    # Data on the other stores, to find again after the failover.
    article = stack.insts.inn.post("before the failover", group="msg.probe")
    people = stack.insts.slapd.search(PEOPLE)
    assert people, "ou=people missing from the directory"

    # A second client keeps submitting from here on, through the failover.
    through = stack.client(interval_s=0.1)
    through.start()
    try:
        # Dovecot goes away: what the gateway accepts now waits in the internal MTA's queue.
        expect(stack.rscs["dovecot"].stop(), OCF.SUCCESS)
        n_before = len(through.accepted)
        internal = stack.insts.postfix_internal
        through.wait_accepted(n_before + 3, timeout_s=20)
        wait_for(lambda: internal.queue_count("deferred") >= 3, 20, "mail deferred in the internal MTA's queue")
        queued = through.accepted[n_before:]
        delivered = _store_messages(stack)
        assert not [s for s in queued if s.message_id in delivered], "delivered while Dovecot was down?"

        # The node dies: every process killed, its /run gone with it.
        t_kill = time.monotonic()
        survivors = stack.insts.kill_all()
        assert not survivors, procs.describe(survivors)
        rmtree(Path(stack.values.run_root))

        # Another node takes the store and starts the stack from it.
        took = stack.start_all()
        n_after = len(through.accepted)
        through.wait_accepted(n_after + 5, timeout_s=30)
    finally:
        through.stop()
    first_failure, first_success = through.outage()
    assert first_failure and first_success, f"the client saw no outage across a node's death: {through.summary()}"
    assert first_failure.mono >= t_kill, f"a submission failed before the node died: {through.summary()}"
    stack.wait_delivered(client, timeout_s=30)
    stack.wait_delivered(through, timeout_s=30)
    print(f"after the node's death: stack started in {sum(took.values()):.1f}s; client: {through.summary()}; "
          f"every accepted message ({len(client.accepted) + len(through.accepted)}, {len(queued)} of them queued "
          f"while Dovecot was down) in the mailbox {time.monotonic() - t_kill:.1f}s after the kill")
    assert internal.queue_count("deferred") == 0
    assert stack.insts.inn.has_article(article), f"article {article} lost in the failover"
    assert stack.insts.slapd.search(PEOPLE) == people
    for rid in START_ORDER:
        r = stack.rscs[rid].monitor(10)
        assert r.rc == OCF.SUCCESS, f"{rid} monitor at depth 10 after the failover:\n{r.describe()}"

    stack.stop_all()
    left = stack.insts.processes()
    assert not left, f"stop left {procs.describe(left)}"
    print(f"whole test body {time.monotonic() - t0:.1f}s")


def _store_messages(stack: Stack) -> str:
    """Every delivered message file's text in the user's Maildir, read from the store directly."""
    box = stack.insts.dovecot.maildir(stack.values.user.split("@")[0])
    return "".join(f.read_text(errors="replace") for sub in ("new", "cur") if (box / sub).is_dir()
                   for f in (box / sub).iterdir())


def _tcp_listeners(pids: list[int]) -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket the given processes hold."""
    out = procs.run(["ss", "-ltnpH"], check=True).stdout
    found = set()
    for line in out.splitlines():
        fields = line.split()
        if any(f"pid={p}," in line for p in pids):
            addr, _, port = fields[3].rpartition(":")
            found.add((addr.strip("[]"), int(port)))
    return found
