"""The three services the benchmarks compare agents on: how to make a fresh
running instance (tests/integration/*_instance.py), the parameters our agent
and the stock agent need for it, a client's independent view of its health,
and the faults of issue #9's matrix.

Every instance is created below its own /tmp dir on free loopback ports and
registered in an ExitStack that SIGKILLs its processes by pid, unmounts its
tmpfs and removes its dir, whatever happened.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import signal
import smtplib
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import procs
from scratch_fs import fill, tmpfs
from bench_common import STOCK_DIR, ours
from dovecot_instance import DOMAIN, DovecotInstance
from inn_instance import PROBE_GROUP, InnInstance
from ocf import wait_for
from postfix_instance import PostfixInstance, free_port, make_base_dir, rmtree, settle
from slapd_instance import MONITOR_DN, PROBE_ENTRY, SUFFIX, SlapdInstance, entry_ldif

CLIENT_TIMEOUT_S = 5.0

# The faults of issue #9, in report order: key -> column title.
FAULTS = {
    "kill9": "kill -9 of the main process",
    "stop_main": "SIGSTOP of the main process",
    "stop_worker": "SIGSTOP of the protocol worker",
    "store_ro": "store unwritable",
    "config": "configuration broken on disk",
    "disk_full": "store file system full",
}


def stop_process(pid: int) -> None:
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 2
    while procs.state(pid) != "T":
        if time.monotonic() > deadline:
            raise RuntimeError(f"process {pid} did not stop")
        time.sleep(0.01)


def kill_main(pid: int | None) -> None:
    if not pid:
        raise RuntimeError("no main process to kill")
    os.kill(pid, signal.SIGKILL)
    procs.wait_gone([pid], 5)


def kill_master(inst, stack) -> str:
    """The kill -9 fault of Postfix and Dovecot, whose instances both know their master."""
    kill_main(inst.master_pid())
    return "SIGKILL to the master"


def stop_master(inst, stack) -> str:
    stop_process(inst.master_pid())
    return "SIGSTOP to the master"


@dataclass
class Fault:
    """How one fault is made on one service. inject returns what was done, in words."""
    key: str
    inject: Callable[[object, contextlib.ExitStack], str] | None
    na: str = ""              # why the fault does not apply to this service
    tmpfs_mib: int | None = None


class Service:
    """One service of the comparison; subclasses fill in the specifics."""
    name = ""
    stock = ""
    # The label the report uses for the protocol worker of this service.
    worker = ""

    def __init__(self, build: Path):
        self.ours_agent = ours(build, self.name)
        # None: resource-agents ships no agent for this service
        self.stock_agent = STOCK_DIR / self.stock if self.stock else None

    def make(self, stack: contextlib.ExitStack, tmpfs_mib: int | None = None):
        raise NotImplementedError

    def ours_params(self, inst) -> dict[str, object]:
        raise NotImplementedError

    def stock_params(self, inst) -> dict[str, object]:
        raise NotImplementedError

    def client_view(self, inst) -> tuple[bool, str]:
        raise NotImplementedError

    def faults(self) -> list[Fault]:
        raise NotImplementedError


class PostfixService(Service):
    name, stock, worker = "postfix", "postfix", "an idle smtpd"

    def make(self, stack, tmpfs_mib=None) -> PostfixInstance:
        base = make_base_dir("msg-bench-postfix-")
        stack.callback(rmtree, base)
        inst = PostfixInstance(base, free_port())
        stack.enter_context(inst.register_alternate())  # ocf:heartbeat:postfix insists on it
        if tmpfs_mib:
            stack.enter_context(tmpfs(inst.queue_dir, tmpfs_mib))
        stack.callback(inst.kill_all)  # after the mount: runs before the unmount
        inst.create()
        inst.start()
        return inst

    def ours_params(self, inst):
        return {"config_dir": inst.config_dir, "probe_host": "127.0.0.1", "probe_port": inst.smtp_port,
                "probe_sender": "probe@example.org", "probe_recipient": "postmaster@example.com"}

    def stock_params(self, inst):
        return {"config_dir": inst.config_dir}

    def client_view(self, inst):
        """Submit a message over SMTP, checking every reply, and wait for its delivery into the Maildir."""
        subject = f"bench-{time.time_ns()}"
        rcpt = "user@example.com"
        message = f"From: sender@example.org\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nbench client view\r\n"
        try:
            with smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=CLIENT_TIMEOUT_S) as s:
                for step, send in (("EHLO", lambda: s.ehlo("client.example.org")),
                                   ("MAIL FROM", lambda: s.mail("sender@example.org")),
                                   ("RCPT TO", lambda: s.rcpt(rcpt)),
                                   ("DATA", lambda: s.data(message))):
                    code, text = send()  # one step at a time: stop at the first refusal
                    if code != 250:
                        return False, f"{step} answered {code} {text.decode(errors='replace')}"
        except (OSError, smtplib.SMTPException) as e:
            return False, f"SMTP submission failed: {_short(e)}"
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        while time.monotonic() < deadline:
            if any(subject in m for m in inst.delivered()):
                return True, "mail accepted and delivered"
            time.sleep(0.1)
        return False, f"mail accepted (250) but not delivered within {CLIENT_TIMEOUT_S:.0f} s"

    def faults(self):
        def stop_worker(inst, stack):
            assert inst.smtp_answers(), "SMTP does not answer"
            pid = wait_for(lambda: inst.children("smtpd"), 5, "an idle smtpd")[0]
            stop_process(pid)
            return "SIGSTOP to the only (idle) smtpd"

        def store_ro(inst, stack):
            (inst.queue_dir / "incoming").chmod(0)
            return "chmod 000 queue_directory/incoming"

        def config(inst, stack):
            with inst.main_cf.open("a") as f:
                f.write("this line is not a parameter assignment\n")
            settle(inst.main_cf)
            return "syntax error appended to main.cf (daemon not reloaded)"

        def disk_full(inst, stack):
            fill(inst.queue_dir)
            return "queue_directory on an 8 MiB tmpfs, filled to the last block"

        return [Fault("kill9", kill_master), Fault("stop_main", stop_master), Fault("stop_worker", stop_worker),
                Fault("store_ro", store_ro), Fault("config", config),
                Fault("disk_full", disk_full, tmpfs_mib=8)]


class DovecotService(Service):
    name, stock, worker = "dovecot", "dovecot", "imap-login serving a client; auth"

    def make(self, stack, tmpfs_mib=None) -> DovecotInstance:
        base = make_base_dir("msg-bench-dovecot-")
        stack.callback(rmtree, base)
        inst = DovecotInstance(base, free_port(), free_port(), free_port())
        if tmpfs_mib:
            stack.enter_context(tmpfs(inst.mail_root, tmpfs_mib))
        stack.callback(inst.kill_all)
        inst.create()
        inst.start()
        return inst

    def ours_params(self, inst):
        return {"config_file": inst.config_file, "probe_host": "127.0.0.1", "imap_port": inst.imap_port,
                "pop3_port": inst.pop3_port, "credentials_file": inst.credentials_file,
                "probe_mailbox": "ha-probe", "mail_root": inst.mail_root}

    def stock_params(self, inst):
        # ocf:heartbeat:dovecot ignores config_file: the daemon's options must
        # say it (stock-agents-measured.md, pitfall 9).
        return {"config_file": inst.config_file, "parameters": f"-c {inst.config_file}",
                "pid_file": inst.pid_file}

    def client_view(self, inst):
        """Deliver a message over LMTP, then log in over IMAP and find it."""
        try:
            with inst.lmtp(timeout=CLIENT_TIMEOUT_S) as lmtp:
                subject, code = inst.lmtp_deliver(lmtp)
        except (OSError, smtplib.SMTPException) as e:
            return False, f"LMTP delivery failed: {_short(e)}"
        if code != 250:
            return False, f"LMTP RCPT/DATA answered {code}"
        try:
            if subject not in inst.subjects(timeout=CLIENT_TIMEOUT_S):
                return False, "delivered over LMTP but not visible over IMAP"
        except (OSError, imaplib.IMAP4.error, RuntimeError) as e:
            return False, f"IMAP failed: {_short(e)}"
        return True, "LMTP delivery and IMAP login/SELECT/FETCH fine"

    def faults(self):
        def stop_login(inst, stack):
            before = set(inst.children("imap-login"))
            client = socket.create_connection(("127.0.0.1", inst.imap_port), timeout=CLIENT_TIMEOUT_S)
            stack.callback(client.close)
            assert client.recv(512).startswith(b"* OK")
            pid = wait_for(lambda: sorted(set(inst.children("imap-login")) - before), 5, "an imap-login")[0]
            stop_process(pid)
            return "SIGSTOP to the imap-login serving a parked client"

        def stop_auth(inst, stack):
            pid = wait_for(lambda: inst.children("auth"), 5, "the auth process")[0]
            stop_process(pid)
            return "SIGSTOP to the auth process"

        def store_ro(inst, stack):
            os.chmod(inst.mail_root, 0)
            return "chmod 000 mail_root"

        def config(inst, stack):
            with inst.config_file.open("a") as f:
                f.write("no_such_setting = 1\n")
            return "unknown setting appended to dovecot.conf (daemon not reloaded)"

        def disk_full(inst, stack):
            fill(inst.mail_root)
            return "mail_root on an 8 MiB tmpfs, filled to the last block"

        return [Fault("kill9", kill_master), Fault("stop_main", stop_master), Fault("stop_worker", stop_login),
                Fault("stop_auth", stop_auth), Fault("store_ro", store_ro), Fault("config", config),
                Fault("disk_full", disk_full, tmpfs_mib=8)]


class SlapdService(Service):
    name, stock, worker = "slapd", "slapd", "none (one multi-threaded process)"

    def make(self, stack, tmpfs_mib=None) -> SlapdInstance:
        base = make_base_dir("msg-bench-slapd-")
        stack.callback(rmtree, base)
        inst = SlapdInstance(base, free_port())
        stack.callback(inst.kill_all)
        inst.create()
        inst.start()
        return inst

    def ours_params(self, inst):
        return {"config": inst.config, "services": inst.services, "user": "openldap", "group": "openldap",
                "suffix": SUFFIX, "bind_dn": MONITOR_DN, "bind_password_file": inst.monitor_pw,
                "probe_entry": PROBE_ENTRY, "write_probe_attr": "description"}

    def stock_params(self, inst):
        return {"config": inst.config, "services": inst.services, "user": "openldap", "group": "openldap"}

    def client_view(self, inst):
        """A search and three adds of entries with a 200-byte attribute (as the rootdn over ldapi), each bounded."""
        try:
            r = inst.ldap("ldapsearch", "-LLL", "-s", "base", "-b", SUFFIX, "1.1", uri=inst.ldap_uri,
                          timeout=CLIENT_TIMEOUT_S)
            if r.returncode != 0:
                return False, f"search failed ({r.returncode}): {_short(r.stderr)}"
            # Adds of ordinary entries, not a modify: a full MDB map still
            # takes a same-size replace, and now and then an entry in pages
            # that a failed transaction freed.
            for i in range(3):
                r = inst.ldap("ldapadd", input=entry_ldif(f"client-{time.time_ns()}", "x" * 200),
                              timeout=CLIENT_TIMEOUT_S)
                if r.returncode != 0:
                    return False, f"search fine, add {i + 1} of 3 failed ({r.returncode}): {_short(r.stderr)}"
        except subprocess.TimeoutExpired:
            return False, f"no answer within {CLIENT_TIMEOUT_S:.0f} s"
        return True, "search and three adds fine"

    def faults(self):
        def kill9(inst, stack):
            kill_main(inst.slapd_pid())
            return "SIGKILL to slapd"

        def stop_main(inst, stack):
            inst.freeze(inst.slapd_pid())
            return "SIGSTOP to slapd"

        def store_ro(inst, stack):
            r = inst.modify("dn: olcDatabase={1}mdb,cn=config\nchangetype: modify\nreplace: olcReadOnly\n"
                            "olcReadOnly: TRUE\n", bind="external")
            if r.returncode != 0:
                raise RuntimeError(f"cannot set olcReadOnly: {r.stderr.strip()}")
            return "database set read-only at run time (olcReadOnly: TRUE over ldapi)"

        def config(inst, stack):
            # An unknown attribute is no fault: slapd 2.5 inserts it and
            # starts. A value it cannot parse makes the next start fail.
            ldif = inst.config_dir / "cn=config.ldif"
            with ldif.open("a") as f:
                f.write("olcIdleTimeout: broken\n")
            return "unparsable olcIdleTimeout appended to cn=config.ldif (daemon not restarted)"

        def disk_full(inst, stack):
            inst.set_max_size(256 << 10)
            data = "".join(entry_ldif(f"fill{i:05d}", "x" * 200) for i in range(3000))
            data += "".join(entry_ldif(f"fillsmall{i:05d}") for i in range(500))
            r = inst.ldap("ldapadd", "-c", input=data, timeout=180)
            if "(80)" not in r.stderr:
                raise RuntimeError(f"the MDB map never filled: rc {r.returncode} {r.stderr[-300:]}")
            # Pages that failed transactions freed take a few more entries:
            # add one at a time until three in a row fail with 80.
            refused = 0
            for i in range(300):
                r = inst.ldap("ldapadd", input=entry_ldif(f"top{i:04d}", "x" * 200), timeout=30)
                refused = refused + 1 if r.returncode == 80 else 0
                if refused == 3:
                    return "MDB map full: olcDbMaxSize lowered to 256 KiB at run time, filled until adds fail with 80"
            raise RuntimeError("the MDB map still takes entries after 300 more adds")

        return [Fault("kill9", kill9), Fault("stop_main", stop_main),
                Fault("stop_worker", None, na="slapd is one multi-threaded process: no separate worker"),
                Fault("store_ro", store_ro), Fault("config", config), Fault("disk_full", disk_full)]


class InnService(Service):
    """INN has no stock OCF agent (only the init script): ours alone, in the fault matrix only."""
    name, stock, worker = "innd", "", "none (nnrpd is forked per reader connection)"

    def make(self, stack, tmpfs_mib=None) -> InnInstance:
        base = make_base_dir("msg-bench-inn-")
        stack.callback(rmtree, base)
        inst = InnInstance(base, free_port())
        if tmpfs_mib:
            stack.enter_context(tmpfs(inst.spool, tmpfs_mib))
        stack.callback(inst.kill_all)
        inst.create()
        inst.start()
        return inst

    def ours_params(self, inst):
        return {"inn_conf": inst.inn_conf, "probe_group": PROBE_GROUP}

    def stock_params(self, inst):
        raise NotImplementedError("no stock agent for INN")

    def client_view(self, inst):
        """POST an article, then read it back by Message-ID."""
        try:
            msgid = inst.post("bench client view")
            if not inst.has_article(msgid):
                return False, f"article {msgid} accepted (240) but not readable"
        except (OSError, RuntimeError, IndexError) as e:
            return False, f"NNTP failed: {_short(e)}"
        return True, "POST and ARTICLE fine"

    def faults(self):
        def kill9(inst, stack):
            kill_main(inst.innd_pid())
            return "SIGKILL to innd"

        def stop_main(inst, stack):
            stop_process(inst.innd_pid())
            return "SIGSTOP to innd"

        def store_ro(inst, stack):
            (inst.spool / "overview").chmod(0o555)
            return "chmod 555 spool/overview"

        def config(inst, stack):
            with inst.inn_conf.open("a") as f:
                f.write("this line is no parameter\n")
            return "parse error appended to inn.conf (daemon not reloaded)"

        def disk_full(inst, stack):
            fill(inst.spool)
            return "spool on a 64 MiB tmpfs, filled to the last block"

        # 64 MiB: a healthy spool must be above innwatchspoolspace (25000 KB by default)
        return [Fault("kill9", kill9), Fault("stop_main", stop_main),
                Fault("stop_worker", None, na="innd is one process; nnrpd is forked per reader connection"),
                Fault("store_ro", store_ro), Fault("config", config), Fault("disk_full", disk_full, tmpfs_mib=64)]


SERVICES: dict[str, type[Service]] = {"postfix": PostfixService, "dovecot": DovecotService, "slapd": SlapdService,
                                      "innd": InnService}
FAULT_TITLES = {**FAULTS, "stop_auth": "SIGSTOP of the auth process"}


def _short(e: object, limit: int = 160) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


__all__ = ["SERVICES", "FAULTS", "FAULT_TITLES", "Service", "Fault", "DOMAIN"]
