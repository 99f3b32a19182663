"""A throw-away Dovecot instance from the Debian package, for tests.

Everything the instance owns lives under one base directory::

    base_dir/dovecot.conf   config_file (standalone: no conf.d includes)
    base_dir/run/           Dovecot's base_dir (master.pid, sockets, base_dir/lmtp)
    base_dir/state/         state_dir
    base_dir/mail/          mail_root: one home per user, mail in ~/Maildir (owned by vmail)
    base_dir/users          passwd-file passdb AND userdb (so doveadm can list users)
    base_dir/probe.cred     the probe account's credentials file (root, 0600)
    base_dir/dovecot.log    log_path (no syslog on these machines)

It listens on host (127.0.0.1 unless given) only: IMAP, POP3 and LMTP on the
ports given, and LMTP also on run/lmtp.  run/ may be given elsewhere (run_dir,
e.g. node-local below /run while the rest sits on shared storage); Dovecot
creates it at start.  Users: probe@, alice@ and bob@example.com, each
with its name as password.  Its processes run as root and vmail; every one
of them works (cwd) below base_dir, which is how processes() finds them.

Typical use::

    inst = DovecotInstance(make_base_dir("msg-itest-dovecot-"), free_port(), free_port(), free_port())
    inst.create()
    inst.start()        # fixture set-up only: tests drive the agent
    ...
    inst.kill_all()

All processes are spawned through procs.run(), so a caller that enabled
procs.enable_subreaper() reaps killed daemons promptly.
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import smtplib
import socket
import subprocess
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import procs

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
VMAIL = "vmail"
DOMAIN = "example.com"
USERS = ("probe", "alice", "bob")
PROBE_USER = f"probe@{DOMAIN}"


def vmail_ids() -> tuple[int, int]:
    """uid and gid of the vmail user; fails loudly if scripts/install-deps has not created it."""
    try:
        pw = pwd.getpwnam(VMAIL)
    except KeyError:
        raise RuntimeError("user vmail is missing: run scripts/install-deps") from None
    return pw.pw_uid, pw.pw_gid


class DovecotInstance:
    """One Dovecot instance below base_dir. Construction touches nothing; create() writes the files."""

    def __init__(self, base_dir: Path, imap_port: int, pop3_port: int, lmtp_port: int, host: str = "127.0.0.1",
                 run_dir: Path | None = None):
        self.base_dir = Path(base_dir).resolve()
        self.host = host
        self.imap_port = imap_port
        self.pop3_port = pop3_port
        self.lmtp_port = lmtp_port
        self.config_file = self.base_dir / "dovecot.conf"
        self.run_dir = Path(run_dir) if run_dir else self.base_dir / "run"
        self.state_dir = self.base_dir / "state"
        self.mail_root = self.base_dir / "mail"
        self.users_file = self.base_dir / "users"
        self.credentials_file = self.base_dir / "probe.cred"
        self.log_file = self.base_dir / "dovecot.log"
        self.pid_file = self.run_dir / "master.pid"
        self.lmtp_socket = self.run_dir / "lmtp"
        # Unique per instance: Dovecot names its processes "dovecot-<name>/auth".
        self.instance_name = f"msgit-{self.base_dir.name}"

    # ---- configuration -------------------------------------------------

    def config_text(self) -> str:
        return f"""# written by tests/integration/dovecot_instance.py
base_dir = {self.run_dir}
state_dir = {self.state_dir}
instance_name = {self.instance_name}
protocols = imap pop3 lmtp
listen = {self.host}
log_path = {self.log_file}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
first_valid_uid = 5000
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.users_file}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.users_file}
  default_fields = uid={VMAIL} gid={VMAIL} home={self.mail_root}/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = {self.host}
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {self.host}
    port = {self.lmtp_port}
  }}
}}
protocol lmtp {{
  postmaster_address = postmaster@{DOMAIN}
}}
"""

    def create(self) -> None:
        """Write the configuration, users and credentials; create the (empty) store owned by vmail."""
        uid, gid = vmail_ids()
        for d in (self.state_dir, self.mail_root):
            d.mkdir(parents=True, exist_ok=True)
        if self.base_dir in self.run_dir.parents:  # a node-local run_dir is Dovecot's to create at start
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.config_text())
        self.users_file.write_text("".join(f"{u}@{DOMAIN}:{{PLAIN}}{u}::::::\n" for u in USERS))
        # as Debian ships its own: readable by Dovecot's auth, not by users
        os.chown(self.users_file, 0, grp.getgrnam("dovecot").gr_gid)
        os.chmod(self.users_file, 0o640)
        self.write_credentials(PROBE_USER, "probe")
        os.chown(self.mail_root, uid, gid)

    def write_credentials(self, user: str, password: str, mode: int = 0o600) -> None:
        self.credentials_file.write_text(f"{user}\n{password}\n")
        os.chmod(self.credentials_file, mode)

    def maildir(self, user: str = "alice", folder: str | None = None) -> Path:
        """The Maildir of user (its INBOX), or of one of its folders (Maildir++: .Folder)."""
        box = self.mail_root / DOMAIN / user / "Maildir"
        return box / f".{folder}" if folder else box

    # ---- control (fixture set-up; tests drive the agent instead) -------

    def start(self, timeout: float = 20.0) -> int:
        """`dovecot -c config_file` and wait until IMAP answers; return the master pid."""
        # The master and its log process keep stderr open for life: a pipe
        # would never reach EOF, so it goes to a file.
        err_file = self.base_dir / "dovecot-start.err"
        with open(err_file, "w") as err:
            p = procs.popen([DOVECOT, "-c", str(self.config_file)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err)
            try:
                rc = p.wait(timeout)
            finally:
                if p.returncode is None:
                    p.kill()
                    p.wait()
                procs.release(p)
        if rc != 0:
            raise RuntimeError(f"dovecot exited {rc}: {err_file.read_text()}\n{self.log_tail()}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.master_pid()
            if pid and self.imap_answers():
                return pid
            time.sleep(0.05)
        raise RuntimeError(f"dovecot started but IMAP on port {self.imap_port} never answered\n{self.log_tail()}")

    def doveadm(self, *args: str, timeout: float = 30.0) -> str:
        """Run `doveadm -c config_file ARGS` against the running instance; raise on failure."""
        r = procs.run([DOVEADM, "-c", str(self.config_file), *args], timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} exited {r.returncode}: {r.stderr}")
        return r.stdout

    # ---- state ----------------------------------------------------------

    def master_pid(self) -> int | None:
        """The pid in master.pid if that process is alive, runs DOVECOT and works in run_dir."""
        pid = self.pid_file_pid()
        if pid and procs.alive(pid) and _link(pid, "exe") == DOVECOT and _link(pid, "cwd") == str(self.run_dir):
            return pid
        return None

    def pid_file_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def write_pid_file(self, pid: int) -> None:
        """Write master.pid as Dovecot does, e.g. to fake a stale one."""
        self.pid_file.write_text(f"{pid}\n")

    def processes(self) -> list[int]:
        """Live (non-zombie) pids of this instance and only those: every process
        whose cwd is below base_dir or run_dir (the master and its children work
        in run/, run/empty, run/login; imap, pop3 and lmtp in the user's home)."""
        me = os.getpid()
        roots = {str(self.base_dir), str(self.run_dir)}
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            cwd = _link(int(entry.name), "cwd")
            if cwd and any(cwd == r or cwd.startswith(r + "/") for r in roots):
                found.append(int(entry.name))
        return sorted(p for p in found if procs.alive(p))

    def children(self, name: str) -> list[int]:
        """Live processes of this instance whose comm is name ('auth', 'imap-login', 'lmtp', ...)."""
        return [pid for pid in self.processes() if procs.comm(pid) == name]

    def kill_all(self, timeout: float = 5.0) -> list[int]:
        """SIGKILL every process of the instance (see processes()); return survivors."""
        return procs.kill_all(self.processes, timeout)

    def imap_answers(self, timeout: float = 2.0) -> bool:
        """True if an IMAP greeting arrives within timeout."""
        try:
            with socket.create_connection((self.host, self.imap_port), timeout=timeout) as s:
                s.settimeout(timeout)
                return s.recv(512).startswith(b"* OK")
        except OSError:
            return False

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no dovecot.log)"

    # ---- mail -----------------------------------------------------------

    def lmtp_deliver(self, lmtp: smtplib.LMTP, rcpt: str = f"alice@{DOMAIN}",
                     subject: str | None = None) -> tuple[str, int]:
        """Deliver one message on an open LMTP session; return (subject, reply code for rcpt).

        subject defaults to a unique token so that subjects() can find it."""
        subject = subject or f"itest-{uuid.uuid4()}"
        msg = EmailMessage()
        msg["From"] = "sender@example.org"
        msg["To"] = rcpt
        msg["Subject"] = subject
        msg["Message-ID"] = f"<{subject}@itest.example.org>"
        msg.set_content(f"test message {subject}\n")
        refused = lmtp.sendmail("sender@example.org", [rcpt], msg.as_bytes())
        return subject, refused.get(rcpt, (250, b""))[0]

    def lmtp(self, timeout: float = 10.0) -> smtplib.LMTP:
        """An LMTP session on the TCP listener (LHLO done)."""
        session = smtplib.LMTP(self.host, self.lmtp_port, timeout=timeout)
        session.ehlo_or_helo_if_needed()
        return session

    def subjects(self, user: str = "alice", mailbox: str = "INBOX", timeout: float = 10.0) -> list[str]:
        """Subjects of every message in user's mailbox, read over IMAP (a client's view)."""
        with imaplib.IMAP4(self.host, self.imap_port, timeout=timeout) as imap:
            imap.login(f"{user}@{DOMAIN}", user)
            typ, data = imap.select(mailbox, readonly=True)
            if typ != "OK":
                raise RuntimeError(f"SELECT {mailbox} as {user}: {typ} {data}")
            if int(data[0]) == 0:
                return []
            typ, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            if typ != "OK":
                raise RuntimeError(f"FETCH as {user}: {typ} {data}")
            out = []
            for item in data:
                if isinstance(item, tuple):
                    header = item[1].decode(errors="replace").strip()
                    out.append(header.split(":", 1)[1].strip() if ":" in header else header)
            imap.logout()
            return out


def _link(pid: int, name: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/{name}")
    except OSError:
        return None
