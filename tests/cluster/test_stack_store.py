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

A second store is prepared for a VIP this host does not have, at the
production paths (/srv/messaging, /run/messaging), and served from a "node":
a network namespace holding the VIP, with private mount and PID namespaces
(this file run as its PID 1), where the store is bind-mounted and /run is a
fresh tmpfs, as the three-node harness's nodes have them.

Run: MSG_BUILD_DIR=<build dir> /usr/bin/python3 -m pytest tests/cluster/test_stack_store.py
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "integration"))

import procs  # noqa: E402
from mail_client import MailClient  # noqa: E402
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
        return MailClient(self.values.vip, self.values.ports["smtp"], self.values.user, timeout_s=5.0, **kw)

    def missing(self, client: MailClient) -> list:
        v = self.values
        return client.missing(v.vip, v.ports["imap"], v.user, v.password)

    def wait_delivered(self, client: MailClient, timeout_s: float) -> None:
        """Until every message client got a 250 for is in the mailbox (IMAP)."""
        def none_missing() -> bool:
            try:
                return not self.missing(client)
            except OSError:
                return False
        try:
            wait_for(none_missing, timeout_s, "every accepted message in the mailbox", period_s=0.25)
        except AssertionError:
            missing = self.missing(client)
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
        # The stack's processes are killed first: busy only if something else works in it.
        if procs.run(["umount", str(dst)]).returncode != 0:
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


# ---------------------------------------------------------------------------
# mail_client's bookkeeping, against a scripted SMTP server

class ScriptedSmtp:
    """An SMTP server on 127.0.0.1 that ends each connection's DATA as the next entry
    of `endings` says: a reply line to send, or None to hang up without one."""

    def __init__(self, endings: list[bytes | None]):
        self.endings = list(endings)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True, name="scripted-smtp")
        self.thread.start()

    def _serve(self) -> None:
        for ending in self.endings:
            conn, _ = self.listener.accept()
            with conn, conn.makefile("rb") as f:
                conn.sendall(b"220 scripted ESMTP\r\n")
                while line := f.readline():
                    verb = line[:4].upper()
                    if verb == b"DATA":
                        conn.sendall(b"354 go ahead\r\n")
                        while f.readline() not in (b".\r\n", b""):
                            pass
                        if ending is None:
                            break
                        conn.sendall(ending + b"\r\n")
                    elif verb == b"QUIT":
                        conn.sendall(b"221 bye\r\n")
                        break
                    else:
                        conn.sendall(b"250 ok\r\n")
        self.listener.close()


def test_mail_client_counts_only_a_250_after_data_and_times_the_outage() -> None:
    server = ScriptedSmtp([b"250 2.0.0 queued", b"451 4.3.0 try later", None, b"250 2.0.0 queued again"])
    client = MailClient("127.0.0.1", server.port, "alice@example.com", timeout_s=5.0)
    outcomes = [client.send_one() for _ in range(4)]
    server.thread.join(10)
    refused = client.send_one()  # the server is gone: connection refused
    assert [type(o).__name__ for o in outcomes + [refused]] == \
        ["Submission", "Failure", "Failure", "Submission", "Failure"], outcomes + [refused]
    assert client.accepted == [outcomes[0], outcomes[3]]
    assert outcomes[0].reply.startswith("250") and outcomes[0].message_id != outcomes[3].message_id
    assert "451" in outcomes[1].reason and not outcomes[1].uncertain
    assert outcomes[2].uncertain, "a hang-up after the data went out may have delivered: uncertain"
    assert "refused" in refused.reason.lower() and not refused.uncertain
    first_failure, first_success = client.outage()
    assert (first_failure, first_success) == (outcomes[1], outcomes[3])
    assert client.outage_s() == pytest.approx(outcomes[3].mono - outcomes[1].mono)


# ---------------------------------------------------------------------------
# A store for a foreign VIP, served from a node's namespaces

NODE_VIP = "10.213.254.100"  # exists only inside the test's network namespace
NODE_MESSAGES = 5


def test_store_for_a_foreign_vip_serves_from_a_node_namespace(build_tree_agents: Path) -> None:
    base = make_base_dir("msg-itest-stack-node-")
    netns = f"msgss-{uuid.uuid4().hex[:8]}"
    try:
        values = prepare_store(base / "shared", NODE_VIP, mount_point="/srv/messaging", run_root="/run/messaging")
        assert not Path("/srv/messaging").exists() or not any(Path("/srv/messaging").iterdir()), \
            "preparing the store left a mount or files on this host's /srv/messaging"
        procs.run(["ip", "netns", "add", netns], check=True)
        procs.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        procs.run(["ip", "-n", netns, "addr", "add", f"{NODE_VIP}/24", "dev", "lo"], check=True)
        # PID 1 of its own PID namespace: when it exits, every daemon it started dies.
        r = procs.run(["ip", "netns", "exec", netns, "unshare", "--mount", "--propagation", "private", "--pid",
                       "--fork", "--kill-child", "--mount-proc", "/usr/bin/python3", str(Path(__file__).resolve()),
                       "--node", str(base / "shared")],
                      env={**os.environ, "MSG_BUILD_DIR": str(build_tree_agents.parents[2])}, timeout=240)
        print(r.stdout)
        assert r.returncode == 0, f"the node failed ({r.returncode}):\n{r.stdout}\n{r.stderr[-4000:]}"
        report = json.loads(r.stdout.strip().splitlines()[-1])
        assert report["listeners"] == sorted([NODE_VIP, p] for p in values.ports.values())
        assert report["missing"] == [] and report["accepted"] >= NODE_MESSAGES, report
        assert report["left"] == [], report
    finally:
        procs.run(["ip", "netns", "del", netns])
        rmtree(base)


def _node_main(shared: Path) -> int:
    """In the node's namespaces: mount the store and a fresh /run, run the stack from
    the values on the store, print a JSON report as the last line."""
    procs.enable_subreaper()  # PID 1 here: reap the daemons' orphans
    values = load_values(shared)
    for mnt, how in (("/run", ["-t", "tmpfs", "-o", "mode=0755", "node-run"]),
                     ("/srv", ["-t", "tmpfs", "-o", "mode=0755", "node-srv"])):
        procs.run(["mount", *how, mnt], check=True)
    for d in ("/run/lock", "/run/resource-agents", values.mount_point):
        os.makedirs(d, exist_ok=True)
    procs.run(["mount", "--bind", str(shared), values.mount_point], check=True)
    stack = Stack(values, shared, "node")
    took = stack.start_all()
    for rid in START_ORDER:
        r = stack.rscs[rid].monitor(20)
        if r.rc != OCF.SUCCESS:
            raise AssertionError(f"{rid} monitor at depth 20:\n{r.describe()}")
    client = stack.client()
    with client:
        client.wait_accepted(NODE_MESSAGES, timeout_s=60)
    listeners = sorted([a, p] for a, p in _tcp_listeners(stack.insts.processes()))
    missing: list[str] = []
    try:
        stack.wait_delivered(client, timeout_s=30)
    except AssertionError as e:
        missing = [str(e)]
    stack.stop_all()
    report = {"started_s": round(sum(took.values()), 1), "accepted": len(client.accepted), "missing": missing,
              "listeners": listeners, "left": stack.insts.processes()}
    print(f"node: stack on {values.vip} started in {report['started_s']}s, {report['accepted']} messages "
          f"through it, {len(missing)} missing")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--node"] and len(sys.argv) == 3:
        sys.exit(_node_main(Path(sys.argv[2])))
    sys.exit(f"usage: {sys.argv[0]} --node SHARED_DIR (test_stack_store runs this in a node's namespaces)")
