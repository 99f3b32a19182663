"""A throw-away Postfix instance from the Debian package, for tests, bench/ and the demo.

Everything the instance owns lives under one base directory::

    base_dir/etc/        config_dir: main.cf, master.cf, vmailbox (texthash table)
    base_dir/spool/      queue_directory (pid/master.pid lives here)
    base_dir/data/       data_directory (owned by postfix)
    base_dir/mail/       virtual_mailbox_base: delivered mail, one Maildir per recipient
    base_dir/maillog     maillog_file (no syslog on these machines)

It listens on host:smtp_port only (host 127.0.0.1 unless given), relays nothing, and delivers
``@example.com`` recipients with Postfix's own ``virtual(8)`` agent into
Maildirs (a real local delivery the caller can read back with
``delivered()``).  Every master.cf service runs with chroot = n.

Typical use::

    inst = PostfixInstance(make_base_dir(), free_port())
    with inst.register_alternate():
        inst.create()                 # main.cf, master.cf, queue (postfix check)
        inst.start()                  # returns the master pid once SMTP answers
        subject, (code, text) = inst.send_mail()
        ...
        inst.kill_all()               # or inst.stop(); then rmtree(inst.base_dir)

API in brief:

* configuration: main_params(), set_main(**params) (rewrites main.cf),
  enable_tls(cert, key), self_signed_cert(dir, days); paths config_dir,
  queue_dir, data_dir, mail_dir, maillog, main_cf, master_cf, pid_file.
* control: create(queue_template=None), postfix(*args), start(), stop().
* state: master_pid() (this instance's live master, by exe AND cwd),
  pid_file_pid(), write_pid_file(pid), processes() (every live pid of the
  instance, found by pid file, cwd or cmdline), children(comm), kill_all(),
  smtp_answers().
* mail: send_mail(), delivered(rcpt), queue_count(queue), maillog_tail().
* registration: register_alternate() / register_alternate_config_dir().
  Postfix 3.7 run as root accepts an unregistered -c directory for start,
  check and postqueue alike; ocf:heartbeat:postfix insists on the entry,
  so the tests register every instance, under a machine-wide lock.

Files this module writes are dated 10 s back (settle()): Postfix re-reads a
main.cf or table changed within the last second every 300 ms until it is
stable, which would add up to 2 s to every command after an edit.  Call
settle(path) after editing a file by other means.

All processes are spawned through procs.run(), so a caller that enabled
procs.enable_subreaper() reaps killed daemons promptly.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import re
import shutil
import smtplib
import socket
import tempfile
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Iterator

import procs

DEFAULT_MAIN_CF = Path("/etc/postfix/main.cf")
# Shared by every test run and engineer on the machine: serialises the
# read-modify-write of alternate_config_directories in the default main.cf.
MAIN_CF_LOCK = Path("/run/lock/msg-test-postfix-main-cf.lock")
POSTFIX = "/usr/sbin/postfix"
MASTER_EXE = "/usr/lib/postfix/sbin/master"
MAIL_UID = 65534  # nobody: owner of the virtual Maildirs
MAIL_GID = 65534

_MASTER_SERVICES = [
    # service            type  private unpriv chroot wakeup maxproc command
    ("pickup", "unix", "n", "-", "n", "60", "1", "pickup"),
    ("cleanup", "unix", "n", "-", "n", "-", "0", "cleanup"),
    ("qmgr", "unix", "n", "-", "n", "300", "1", "qmgr"),
    ("tlsmgr", "unix", "-", "-", "n", "1000?", "1", "tlsmgr"),
    ("rewrite", "unix", "-", "-", "n", "-", "-", "trivial-rewrite"),
    ("bounce", "unix", "-", "-", "n", "-", "0", "bounce"),
    ("defer", "unix", "-", "-", "n", "-", "0", "bounce"),
    ("trace", "unix", "-", "-", "n", "-", "0", "bounce"),
    ("verify", "unix", "-", "-", "n", "-", "1", "verify"),
    ("flush", "unix", "n", "-", "n", "1000?", "0", "flush"),
    ("proxymap", "unix", "-", "-", "n", "-", "-", "proxymap"),
    ("proxywrite", "unix", "-", "-", "n", "-", "1", "proxymap"),
    ("smtp", "unix", "-", "-", "n", "-", "-", "smtp"),
    ("relay", "unix", "-", "-", "n", "-", "-", "smtp"),
    ("showq", "unix", "n", "-", "n", "-", "-", "showq"),
    ("error", "unix", "-", "-", "n", "-", "-", "error"),
    ("retry", "unix", "-", "-", "n", "-", "-", "error"),
    ("discard", "unix", "-", "-", "n", "-", "-", "discard"),
    ("lmtp", "unix", "-", "-", "n", "-", "-", "lmtp"),
    ("virtual", "unix", "-", "n", "n", "-", "-", "virtual"),
    ("anvil", "unix", "-", "-", "n", "-", "1", "anvil"),
    ("scache", "unix", "-", "-", "n", "-", "1", "scache"),
    ("postlog", "unix-dgram", "n", "-", "n", "-", "1", "postlogd"),
]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on host that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def make_base_dir(prefix: str = "msg-itest-postfix-") -> Path:
    """A fresh world-traversable directory under /tmp for an instance.

    pytest's tmp_path sits below a 0700 directory, which Postfix's unprivileged
    daemons (data_directory) and virtual(8) (running as nobody) cannot traverse."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    d.chmod(0o755)
    return d


def self_signed_cert(directory: Path, days: int, names: tuple[str, ...] = ("mx.example.com",),
                     ips: tuple[str, ...] = ("127.0.0.1",), stem: str = "smtpd") -> tuple[Path, Path]:
    """A self-signed P-256 certificate valid for `days` from now, with the given DNS
    names and IP addresses as subjectAltNames; return (cert_file, key_file).

    The certificate is its own CA: pass cert_file as the client's CA file."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
    san = ",".join([f"DNS:{n}" for n in names] + [f"IP:{i}" for i in ips])
    procs.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
               "-nodes", "-keyout", str(key), "-out", str(cert), "-days", str(days),
               "-subj", f"/CN={names[0]}", "-addext", f"subjectAltName={san}"], check=True)
    key.chmod(0o600)
    return cert, key


class PostfixInstance:
    """One Postfix instance below base_dir, SMTP on host:smtp_port (host: the address it binds).

    Construction touches nothing; create() writes the files."""

    recipients = ("user@example.com", "postmaster@example.com")
    domain = "example.com"

    def __init__(self, base_dir: Path, smtp_port: int, hostname: str = "mx.example.com", host: str = "127.0.0.1"):
        self.base_dir = Path(base_dir).resolve()
        self.smtp_port = smtp_port
        self.host = host
        self.hostname = hostname
        self.config_dir = self.base_dir / "etc"
        self.queue_dir = self.base_dir / "spool"
        self.data_dir = self.base_dir / "data"
        self.mail_dir = self.base_dir / "mail"
        self.maillog = self.base_dir / "maillog"
        self.main_cf = self.config_dir / "main.cf"
        self.master_cf = self.config_dir / "master.cf"
        self.pid_file = self.queue_dir / "pid" / "master.pid"
        self._overrides: dict[str, str] = {}

    # ---- configuration -------------------------------------------------

    def main_params(self) -> dict[str, str]:
        """The main.cf parameters create() writes (before overrides)."""
        b = self.base_dir
        return {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            "syslog_name": "postfix-itest",
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(b),
            "myhostname": self.hostname,
            "mydomain": self.domain,
            "myorigin": self.domain,
            "mydestination": "",
            "inet_interfaces": self.host,
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_banner": "$myhostname ESMTP",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "relayhost": "",
            "default_transport": "error:no outbound mail from test instances",
            "relay_transport": "error:no outbound mail from test instances",
            "smtpd_relay_restrictions": "permit_mynetworks reject_unauth_destination",
            "virtual_mailbox_domains": self.domain,
            "virtual_mailbox_base": str(self.mail_dir),
            "virtual_mailbox_maps": f"texthash:{self.config_dir / 'vmailbox'}",
            "virtual_uid_maps": f"static:{MAIL_UID}",
            "virtual_gid_maps": f"static:{MAIL_GID}",
            "virtual_transport": "virtual",
            "message_size_limit": "1048576",
            "smtputf8_enable": "no",
            "biff": "no",
        }

    def set_main(self, **params: str) -> None:
        """Override main.cf parameters and rewrite main.cf (usable before or after create())."""
        self._overrides.update({k: str(v) for k, v in params.items()})
        if self.config_dir.exists():
            self._write_main_cf()

    def _write_main_cf(self) -> None:
        params = {**self.main_params(), **self._overrides}
        text = "# written by tests/integration/postfix_instance.py\n"
        text += "".join(f"{k} = {v}\n" for k, v in params.items())
        _write_settled(self.main_cf, text)

    def _write_master_cf(self) -> None:
        rows = [(f"{self.host}:{self.smtp_port}", "inet", "n", "-", "n", "-", "-", "smtpd")]
        rows += _MASTER_SERVICES
        _write_settled(
            self.master_cf,
            "# written by tests/integration/postfix_instance.py; chroot = n everywhere\n"
            + "".join("{:<18} {:<10} {:<7} {:<6} {:<6} {:<6} {:<7} {}\n".format(*r) for r in rows))

    def enable_tls(self, cert_file: Path, key_file: Path) -> None:
        """Offer STARTTLS on the smtpd port with this certificate (rewrites main.cf)."""
        self.set_main(smtpd_tls_cert_file=str(cert_file), smtpd_tls_key_file=str(key_file),
                      smtpd_tls_security_level="may", smtpd_tls_loglevel="1")

    def create(self, queue_template: Path | None = None) -> None:
        """Write the configuration and let `postfix check` build the queue.

        The config dir must already be registered (register_alternate()),
        because postfix -c refuses unregistered directories.  queue_template,
        the queue_dir of an instance created earlier, is copied first (cp -a)
        so `postfix check` only verifies (0.3 s) instead of building (2+ s)."""
        for d in (self.config_dir, self.queue_dir, self.data_dir, self.mail_dir):
            d.mkdir(parents=True, exist_ok=True)
        if queue_template is not None:
            procs.run(["cp", "-a", f"{queue_template}/.", f"{self.queue_dir}/"], check=True)
        self._write_main_cf()
        self._write_master_cf()
        _write_settled(
            self.config_dir / "vmailbox",
            "".join(f"{r} {self.domain}/{r.split('@')[0]}/\n" for r in self.recipients))
        pw = pwd.getpwnam("postfix")
        os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
        os.chown(self.mail_dir, MAIL_UID, MAIL_GID)
        self.postfix("check")

    # ---- control (fixture setup; tests drive the agent instead) -------

    def postfix(self, *args: str, timeout: float = 60.0) -> str:
        """Run `postfix -c config_dir ARGS`; raise with the maillog tail on failure."""
        r = procs.run([POSTFIX, "-c", str(self.config_dir), *args], timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"postfix {' '.join(args)} exited {r.returncode}: "
                               f"{r.stdout}{r.stderr}\n--- maillog tail ---\n{self.maillog_tail()}")
        return r.stdout + r.stderr

    def start(self, timeout: float = 30.0) -> int:
        """`postfix start` and wait until SMTP answers; return the master pid."""
        self.postfix("start")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.master_pid()
            if pid and self.smtp_answers():
                return pid
            time.sleep(0.05)
        raise RuntimeError(f"postfix started but SMTP on port {self.smtp_port} never answered\n"
                           + self.maillog_tail())

    def stop(self, timeout: float = 30.0) -> None:
        """`postfix stop` and wait until no process of the instance is left."""
        self.postfix("stop")
        left = procs.wait_gone(self.processes(), timeout)
        if left:
            raise RuntimeError(f"postfix stop left processes {left}")

    # ---- state ----------------------------------------------------------

    def master_pid(self) -> int | None:
        """The pid in queue_dir/pid/master.pid if that process is alive and is THIS
        instance's master: exe is Postfix's master and its cwd is our queue_directory
        (another instance's master has the same exe)."""
        pid = self.pid_file_pid()
        if pid and procs.alive(pid) and _exe(pid) == MASTER_EXE and _cwd(pid) == str(self.queue_dir):
            return pid
        return None

    def pid_file_pid(self) -> int | None:
        """Whatever pid master.pid names (no liveness check), None without a file."""
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def write_pid_file(self, pid: int) -> None:
        """Write master.pid in Postfix's own format (%10d\\n), e.g. to fake a stale one."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(f"{pid:10d}\n")

    def processes(self) -> list[int]:
        """Live (non-zombie) pids that belong to this instance and only those:
        the pid-file master (if it is a Postfix master), and every process whose
        cwd or command line refers to base_dir (Postfix daemons run in the queue dir)."""
        found: set[int] = set()
        m = self.master_pid()
        if m:
            found.add(m)
        me = os.getpid()
        base = str(self.base_dir)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            if pid == me:
                continue
            try:
                cwd = os.readlink(entry / "cwd")
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cwd == base or cwd.startswith(base + "/") or base in cmdline:
                found.add(pid)
        return sorted(p for p in found if procs.alive(p))

    def children(self, name: str) -> list[int]:
        """Live processes of this instance whose comm is name (e.g. 'smtpd', 'qmgr')."""
        out = []
        for pid in self.processes():
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                    out.append(pid)
            except OSError:
                pass
        return out

    def kill_all(self, timeout: float = 5.0) -> list[int]:
        """SIGKILL every process of the instance (see processes()); return survivors."""
        survivors: list[int] = []
        for _ in range(3):  # a dying master may still have forked a child
            survivors = procs.kill_and_wait(self.processes(), timeout)
            if not self.processes():
                break
        return survivors

    def smtp_answers(self, timeout: float = 2.0) -> bool:
        """True if a 220 banner arrives on the SMTP port within timeout."""
        try:
            with socket.create_connection((self.host, self.smtp_port), timeout=timeout) as s:
                s.settimeout(timeout)
                return s.recv(512).startswith(b"220")
        except OSError:
            return False

    # ---- mail -----------------------------------------------------------

    def send_mail(self, rcpt: str = "user@example.com", subject: str | None = None,
                  sender: str = "sender@example.org", timeout: float = 10.0) -> tuple[str, tuple[int, bytes]]:
        """Submit one message over SMTP; return (subject, (code, text) of the reply to DATA).

        subject defaults to a unique token so delivered() can find the message."""
        subject = subject or f"itest-{uuid.uuid4()}"
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = rcpt
        msg["Subject"] = subject
        msg.set_content(f"test message {subject}\n")
        with smtplib.SMTP(self.host, self.smtp_port, timeout=timeout) as s:
            s.ehlo("client.example.org")
            s.mail(sender)
            code, text = s.rcpt(rcpt)
            if code != 250:
                raise RuntimeError(f"RCPT TO:<{rcpt}> got {code} {text!r}")
            reply = s.data(msg.as_bytes())
        return subject, reply

    def delivered(self, rcpt: str = "user@example.com") -> list[str]:
        """Texts of the messages delivered to rcpt's Maildir (new/ and cur/)."""
        box = self.mail_dir / self.domain / rcpt.split("@")[0]
        out = []
        for sub in ("new", "cur"):
            d = box / sub
            if d.is_dir():
                out += [f.read_text(errors="replace") for f in sorted(d.iterdir()) if f.is_file()]
        return out

    def queue_count(self, queue: str = "deferred") -> int:
        """Number of queue files in queue_dir/<queue> (hashed subdirectories included)."""
        d = self.queue_dir / queue
        if not d.is_dir():
            return 0
        return sum(len(files) for _, _, files in os.walk(d))

    def maillog_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.maillog.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no maillog)"

    # ---- registration in the default main.cf ------------------------------

    @contextlib.contextmanager
    def register_alternate(self, main_cf: Path = DEFAULT_MAIN_CF) -> Iterator[None]:
        """Add config_dir to alternate_config_directories in the default main.cf, and undo it.

        See register_alternate_config_dir()."""
        with register_alternate_config_dir(self.config_dir, main_cf):
            yield


# ---- alternate_config_directories, shared with concurrent users -------------

_ACD = "alternate_config_directories"
_ACD_RE = re.compile(rf"^{_ACD}\s*=")


def _split_logical(lines: list[str]) -> list[list[str]]:
    """Group main.cf lines into logical lines (a line starting with whitespace continues the previous one)."""
    groups: list[list[str]] = []
    for line in lines:
        if groups and line[:1] in (" ", "\t") and line.strip() and not groups[-1][0].lstrip().startswith("#"):
            groups[-1].append(line)
        else:
            groups.append([line])
    return groups


def _acd_tokens(group: list[str]) -> list[str]:
    value = "".join(group).split("=", 1)[1]
    return [t for t in re.split(r"[\s,]+", value) if t]


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fd:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN)


def _replace_file(path: Path, text: str) -> None:
    """Atomically replace path's content, keeping its mode and owner."""
    st = path.stat()
    tmp = path.with_name(f".{path.name}.msg-itest.{os.getpid()}")
    tmp.write_text(text)
    os.chown(tmp, st.st_uid, st.st_gid)
    os.chmod(tmp, st.st_mode & 0o7777)
    settle(tmp)  # else every postfix command waits up to 2 s for main.cf to "settle"
    os.replace(tmp, path)


@contextlib.contextmanager
def register_alternate_config_dir(config_dir: Path, main_cf: Path = DEFAULT_MAIN_CF,
                                  lock_path: Path = MAIN_CF_LOCK) -> Iterator[None]:
    """Context manager: list config_dir in main_cf's alternate_config_directories.

    Read-modify-write under an exclusive fcntl lock on lock_path, which every
    test run on the machine shares.  On exit only our own entry is removed; if
    nobody else changed main_cf meanwhile, the exact original bytes come back."""
    entry = str(config_dir)
    with _locked(lock_path):
        original = main_cf.read_text()
        lines = original.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        groups = _split_logical(lines)
        idx = next((i for i, g in enumerate(groups) if _ACD_RE.match(g[0])), None)
        if idx is None:
            groups.append([f"{_ACD} = {entry}\n"])
        elif entry not in _acd_tokens(groups[idx]):
            groups[idx] = [f"{_ACD} = {' '.join(_acd_tokens(groups[idx]) + [entry])}\n"]
        else:
            idx = -2  # already registered (by someone else): leave it alone
        written = "".join("".join(g) for g in groups)
        if idx != -2:
            _replace_file(main_cf, written)
    try:
        yield
    finally:
        if idx != -2:
            with _locked(lock_path):
                current = main_cf.read_text()
                if current == written:
                    restored = original
                else:
                    groups = _split_logical(current.splitlines(keepends=True))
                    out = []
                    for g in groups:
                        if _ACD_RE.match(g[0]):
                            toks = [t for t in _acd_tokens(g) if t != entry]
                            if toks:
                                out.append([f"{_ACD} = {' '.join(toks)}\n"])
                            continue
                        out.append(g)
                    restored = "".join("".join(g) for g in out)
                if restored != current:
                    _replace_file(main_cf, restored)


def _write_settled(path: Path, text: str) -> None:
    """Write a config file and date it 10 s back.

    Postfix re-reads a table or main.cf that changed within the last second
    every 300 ms until it has been stable for a second (dict_load_file), which
    makes the first command after every edit cost up to 2 s."""
    path.write_text(text)
    settle(path)


def settle(path: Path) -> None:
    """Backdate path's mtime by 10 s (see _write_settled); use after editing a config file by hand."""
    t = time.time() - 10
    os.utime(path, (t, t))


def _exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def _cwd(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


def rmtree(path: Path) -> None:
    """shutil.rmtree that tolerates a missing path."""
    shutil.rmtree(path, ignore_errors=True)
