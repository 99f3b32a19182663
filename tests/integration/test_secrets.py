"""No secret in any process's argv or environment, nor in any log, issue #10 "Agents".

Real agents with real credentials files (mailflow's IMAP login, Dovecot's
IMAP and POP3 logins, INN's AUTHINFO, slapd's bind password) run a monitor whose probe a
stalling server holds open: the probe has read the password and waits for
a reply that never comes. Meanwhile every /proc/PID/cmdline and
/proc/PID/environ on the host is scanned for the password, and the scan
must have seen the probe itself (msg-probe with the credentials file's
path) so that it looked at the right moment. Afterwards the agent's
stdout and stderr, its HA_LOGFILE and HA_DEBUGLOG (debug on) and everything
sent to syslog (the agent's ocf_log through logger, msg-probe's libqb
syslog target) must not hold it either. Syslog is captured by running the
agent in a private mount namespace whose /dev is a small tmpfs with /dev/log
pointing at this test's socket (the host has no syslog daemon, and its /dev
is left alone). The files the agents create (mailflow's state file) must be
readable by root alone.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

import procs
from ocf import (OCF, Result, agent_environment, agent_path, agent_result, expect, expect_reason, no_cluster_path,
                 run_agent)
from dovecot_instance import PROBE_USER
from inn_instance import InnInstance
from postfix_instance import free_port
from slapd_instance import MONITOR_DN, SlapdInstance, make_base_dir, rmtree

# Unique per run, so a hit can only be ours.
SECRET = f"S3cret-{uuid.uuid4().hex[:16]}"

# What /dev inside the agent's namespace holds: character devices and links.
PRIVATE_DEV = """set -e
mount -t tmpfs -o mode=0755,size=1m msg-private-dev /dev
mknod -m 666 /dev/null c 1 3
mknod -m 666 /dev/zero c 1 5
mknod -m 666 /dev/random c 1 8
mknod -m 666 /dev/urandom c 1 9
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
ln -s "$MSG_TEST_LOG_SOCKET" /dev/log
exec "$@"
"""


class StallServer:
    """Accepts on 127.0.0.1, sends `greeting`, then reads and answers nothing until the client leaves."""

    def __init__(self, greeting: bytes):
        self.greeting = greeting
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        with conn:
            conn.sendall(self.greeting)
            self.connected.set()
            conn.settimeout(0.1)
            while not self._stop.is_set():
                try:
                    if not conn.recv(4096):
                        return
                except socket.timeout:
                    continue
                except OSError:
                    return

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()


class SyslogSink:
    """A datagram socket where syslog(3) and logger(1) deliver inside the agent's namespace."""

    def __init__(self, path: Path):
        self.path = path
        self.messages: list[bytes] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self._sock.recv(65536))
            except socket.timeout:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()


@pytest.fixture
def syslog(tmp_path: Path) -> Iterator[SyslogSink]:
    sink = SyslogSink(tmp_path / "log.sock")
    yield sink
    sink.close()


@pytest.fixture
def stall_server(request) -> Iterator[StallServer]:
    server = StallServer(request.param)
    yield server
    server.close()


def secret_file(path: Path, content: str) -> Path:
    path.write_text(content)
    os.chmod(path, 0o600)
    return path


def scan(secret: bytes) -> tuple[list[str], dict[int, bytes]]:
    """Every process's cmdline and environ: where `secret` is, and the msg-probe processes seen."""
    hits: list[str] = []
    probes: dict[int, bytes] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        for part in ("cmdline", "environ"):
            try:
                data = Path(f"/proc/{entry}/{part}").read_bytes()
            except OSError:
                continue
            if secret in data:
                hits.append(f"/proc/{entry}/{part}: {data[:300]!r}")
            if part == "cmdline" and b"msg-probe" in data.split(b"\0")[0]:
                probes[int(entry)] = data
    return hits, probes


def assert_private(rsctmp: Path) -> None:
    """Whatever the agents created in HA_RSCTMP is root's alone: the file's own mode, or its
    directory's, lets neither group nor others in."""
    for dirpath, _, filenames in os.walk(rsctmp):
        for name in filenames:
            f = Path(dirpath) / name
            st = f.stat()
            parent_mode = stat.S_IMODE(Path(dirpath).stat().st_mode)
            assert st.st_uid == 0, f"{f} is not root's"
            assert stat.S_IMODE(st.st_mode) & 0o077 == 0 or (dirpath != str(rsctmp) and parent_mode & 0o077 == 0), (
                f"{f} has mode {stat.S_IMODE(st.st_mode):o} in a directory of mode {parent_mode:o}")


def monitor_held_open(agent: Path, params: dict[str, object], server: StallServer, sink: SyslogSink,
                      tmp_path: Path, secret: str, secret_path: Path, **meta) -> Result:
    """Runs `agent monitor` in a private /dev, scans /proc while its probe waits on `server`,
    and checks that neither the processes nor any log held `secret`; returns the agent's result."""
    logs = {"HA_LOGFILE": tmp_path / "ha.log", "HA_DEBUGLOG": tmp_path / "ha-debug.log"}
    env = agent_environment(agent, params, env_extra={
        "HA_LOGFACILITY": "daemon", "HA_debug": "1", "HA_RSCTMP": str(tmp_path / "rsctmp"),
        "MSG_TEST_LOG_SOCKET": str(sink.path), "PATH": no_cluster_path(tmp_path),
        **{k: str(v) for k, v in logs.items()}}, **meta)
    t0 = time.monotonic()
    p = procs.popen(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", PRIVATE_DEV, "sh",
                     str(agent), "monitor"], env=env, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    text=True)
    try:
        assert server.connected.wait(20), "the agent's probe never reached the stalling server"
        hits: list[str] = []
        probes: dict[int, bytes] = {}
        # The probe waits until its deadline: sweep while it does, at least
        # three times and until it was seen.
        sweeps = 0
        while p.poll() is None and (sweeps < 3 or not probes):
            found, seen = scan(secret.encode())
            hits += found
            probes.update(seen)
            sweeps += 1
        out, err = p.communicate(timeout=60)
    finally:
        if p.returncode is None:
            p.kill()
            p.communicate()
        procs.release(p)
    r = agent_result(p.returncode, out, err, time.monotonic() - t0, "monitor")
    assert not hits, "the secret is in a process's argv or environment:\n" + "\n".join(hits)
    assert any(str(secret_path).encode() in cmdline for cmdline in probes.values()), (
        f"no msg-probe with {secret_path} seen while the probe was held open: {probes}\n{r.describe()}")
    for name, text in {"stdout": r.stdout, "stderr": r.stderr,
                       **{k: v.read_text() if v.exists() else "" for k, v in logs.items()}}.items():
        assert secret not in text, f"the secret is in the agent's {name}"
    assert sink.messages, "nothing reached the captured syslog: the capture does not work"
    for message in sink.messages:
        assert secret.encode() not in message, f"the secret went to syslog: {message!r}"
    assert_private(tmp_path / "rsctmp")
    return r


# -- mailflow: the IMAP login of the probe mailbox

@pytest.mark.parametrize("stall_server", [b"* OK IMAP4rev1 ready\r\n"], indirect=True, ids=["imap"])
def test_mailflow_credentials_never_leak(build_tree: Path, tmp_path: Path, stall_server: StallServer,
                                         syslog: SyslogSink) -> None:
    agent = agent_path("mailflow")
    creds = secret_file(tmp_path / "probe.cred", f"probe\n{SECRET}\n")
    params = {"credentials_file": creds, "probe_address": "probe@example.com", "imap_port": stall_server.port,
              "smtp_port": free_port(), "max_delay": 5, "warn_delay": 0, "health_attribute": "#health-msg-secrets-test",
              "round_trip_attribute": "", "deferred_attribute": "", "store_free_attribute": ""}
    instance = f"secrets-{uuid.uuid4().hex[:8]}"
    env = {"HA_RSCTMP": str(tmp_path / "rsctmp"), "PATH": no_cluster_path(tmp_path)}
    started = run_agent(agent, "start", params, instance=instance, env_extra=env)
    expect(started, OCF.SUCCESS)
    try:
        assert list((tmp_path / "rsctmp").glob("mailflow-*.state")), "start created no state file"
        assert_private(tmp_path / "rsctmp")
        r = monitor_held_open(agent, params, stall_server, syslog, tmp_path, SECRET, creds,
                              interval_ms=10000, timeout_ms=12000, instance=instance)
        expect(r, OCF.ERR_GENERIC)
        expect_reason(r, "mailbox")
    finally:
        run_agent(agent, "stop", params, instance=instance, env_extra=env)


# -- Dovecot: the probe account's IMAP login (depth 10) and POP3 login (depth 20)

@pytest.mark.parametrize("stall_server,protocol,depth", [
    (b"* OK IMAP4rev1 ready\r\n", "imap", 10),
    (b"+OK POP3 ready\r\n", "pop3", 20),
], indirect=["stall_server"], ids=["imap", "pop3"])
def test_dovecot_credentials_never_leak(make_dovecot, tmp_path: Path, stall_server: StallServer,
                                        syslog: SyslogSink, protocol: str, depth: int) -> None:
    inst = make_dovecot(start=True)
    inst.write_credentials(PROBE_USER, SECRET)
    ports = {"imap_port": stall_server.port, "pop3_port": ""} if protocol == "imap" else \
        {"imap_port": "", "pop3_port": stall_server.port}
    params = {"config_file": inst.config_file, "probe_host": "127.0.0.1", "credentials_file": inst.credentials_file,
              "probe_timeout": 3, **ports}
    r = monitor_held_open(agent_path("dovecot"), params, stall_server, syslog, tmp_path, SECRET,
                          inst.credentials_file, check_level=depth, interval_ms=10000, timeout_ms=20000)
    expect(r, OCF.ERR_GENERIC)
    expect_reason(r, protocol)


# -- slapd: the bind password of the monitoring identity

@pytest.mark.parametrize("stall_server", [b""], indirect=True, ids=["ldap"])
def test_slapd_bind_password_never_leaks(build_tree: Path, tmp_path: Path, stall_server: StallServer,
                                         syslog: SyslogSink) -> None:
    base = make_base_dir()
    inst = SlapdInstance(base, free_port())
    agent = agent_path("slapd")
    password = secret_file(tmp_path / "bind.pw", SECRET + "\n")
    params = {"config": inst.config, "services": inst.services, "user": "openldap", "group": "openldap",
              "pidfile": inst.pid_file}
    try:
        inst.create()
        expect(run_agent(agent, "start", params, timeout_ms=20000), OCF.SUCCESS)
        probe = {"probe_uri": f"ldap://127.0.0.1:{stall_server.port}/", "bind_method": "simple",
                 "bind_dn": MONITOR_DN, "bind_password_file": password, "probe_timeout": 3}
        # Depth 20: the bind; depth 10's anonymous search goes first and would stall alone.
        r = monitor_held_open(agent, {**params, **probe}, stall_server, syslog, tmp_path, SECRET, password,
                              check_level=20, interval_ms=10000, timeout_ms=20000)
        expect(r, OCF.ERR_GENERIC)
        expect_reason(r, "bind")
    finally:
        run_agent(agent, "stop", params, timeout_ms=30000)
        survivors = inst.kill_all()
        rmtree(base)
        assert not survivors, f"slapd survived SIGKILL: {survivors}"


# -- innd: the probe's AUTHINFO login

@pytest.mark.parametrize("stall_server", [b"200 news.example.com ready (posting ok)\r\n"], indirect=True,
                         ids=["nntp"])
def test_innd_credentials_never_leak(build_tree: Path, tmp_path: Path, stall_server: StallServer,
                                     syslog: SyslogSink) -> None:
    base = make_base_dir("msg-itest-inn-")
    inn = InnInstance(base, free_port())
    creds = secret_file(tmp_path / "news.cred", f"probe\n{SECRET}\n")
    try:
        inn.create()
        inn.start()
        params = {"inn_conf": inn.inn_conf, "probe_host": "127.0.0.1", "port": stall_server.port,
                  "credentials_file": creds, "probe_timeout": 3}
        r = monitor_held_open(agent_path("innd"), params, stall_server, syslog, tmp_path, SECRET, creds,
                              check_level=10, interval_ms=10000, timeout_ms=20000)
        expect(r, OCF.ERR_GENERIC)
        expect_reason(r, "NNTP")
    finally:
        survivors = inn.kill_all()
        rmtree(base)
        assert not survivors, f"INN survived SIGKILL: {survivors}"
