"""A mail client that proves nothing is lost: it keeps submitting over SMTP and
later looks every accepted message up over IMAP.

* ``MailClient``: submits one message per new connection to host:port, with
  short timeouts, as fast as ``interval_s`` allows, in a thread of its own
  (start()/stop(), or a ``with`` block).  A message counts as sent only when
  the server answered 250 to its DATA; a refused connection, a timeout or
  any other reply is recorded as a failure and the next attempt is a new
  message (it never counts).  A connection that breaks after the data went
  out but before the reply is recorded as ``uncertain``: the message may
  arrive (a duplicate, never a loss), but it is not counted as accepted.
* ``outage()``: when the first failure came and when the first acceptance
  after it came, i.e. how long the client saw the service gone.
* ``imap_message_ids()`` / ``MailClient.missing()``: which accepted
  Message-IDs are not in the mailbox, read as the user over IMAP.

Both can run inside a network namespace (``netns``: a name under
/run/netns, as ``ip netns`` makes them): a thread of its own enters it, so
the rest of the test process stays where it is.

Timestamps are time.time() (wall clock, comparable with logs and with
another process's timestamps) and time.monotonic() (for durations).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import imaplib
import os
import smtplib
import threading
import time
import uuid
from email.message import EmailMessage
from typing import Callable, TypeVar

__all__ = ["MailClient", "Submission", "Failure", "imap_message_ids", "in_netns"]

_CLONE_NEWNET = 0x40000000
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Submission:
    """One message the server accepted (250 after DATA)."""
    message_id: str
    subject: str
    wall: float       # time.time() of the 250
    mono: float       # time.monotonic() of the 250
    reply: str


@dataclasses.dataclass(frozen=True)
class Failure:
    """One attempt that did not end in a 250 after DATA."""
    wall: float
    mono: float
    reason: str
    uncertain: bool   # the data went out, the reply never came: it may be delivered


def _enter_netns(name: str) -> None:
    """Move the calling THREAD into network namespace /run/netns/<name>."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}): {os.strerror(err)}")
    finally:
        os.close(fd)


def in_netns(netns: str | None, fn: Callable[[], T], timeout_s: float = 120.0) -> T:
    """fn() in network namespace netns (None: here), from a thread that enters it."""
    if netns is None:
        return fn()
    box: dict[str, object] = {}

    def run() -> None:
        try:
            _enter_netns(netns)
            box["value"] = fn()
        except BaseException as e:  # handed to the caller below
            box["error"] = e

    t = threading.Thread(target=run, name=f"netns-{netns}", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        raise TimeoutError(f"{fn!r} in netns {netns} still running after {timeout_s}s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


class MailClient:
    """Continuous SMTP submission to host:port, one message per connection.

    Thread-safe reads: accepted, failures (copies), outage(), counts."""

    def __init__(self, host: str, port: int, rcpt: str, *, sender: str = "client@example.org",
                 interval_s: float = 0.1, timeout_s: float = 2.0, netns: str | None = None,
                 helo: str = "client.example.org", tag: str | None = None):
        self.host, self.port, self.rcpt, self.sender = host, port, rcpt, sender
        self.interval_s, self.timeout_s, self.netns, self.helo = interval_s, timeout_s, netns, helo
        self.tag = tag or uuid.uuid4().hex[:8]  # in every Message-ID: this client's mail, no one else's
        self._lock = threading.Lock()
        self._accepted: list[Submission] = []
        self._failures: list[Failure] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._seq = 0

    # ---- one attempt -----------------------------------------------------

    def send_one(self) -> Submission | Failure:
        """One new connection, one message; record and return the outcome."""
        self._seq += 1
        subject = f"mailclient {self.tag} #{self._seq}"
        message_id = f"<mc.{self.tag}.{self._seq}.{uuid.uuid4().hex[:12]}@client.example.org>"
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = self.rcpt
        msg["Subject"] = subject
        msg["Message-ID"] = message_id
        msg.set_content(f"{subject}\n")
        data_sent = False
        smtp: smtplib.SMTP | None = None
        try:
            smtp = smtplib.SMTP(self.host, self.port, local_hostname=self.helo, timeout=self.timeout_s)
            smtp.ehlo_or_helo_if_needed()
            code, text = smtp.mail(self.sender)
            if code != 250:
                return self._failed(f"MAIL FROM: {code} {text.decode(errors='replace')}")
            code, text = smtp.rcpt(self.rcpt)
            if code not in (250, 251):
                return self._failed(f"RCPT TO: {code} {text.decode(errors='replace')}")
            code, text = smtp.docmd("DATA")
            if code != 354:
                return self._failed(f"DATA: {code} {text.decode(errors='replace')}")
            data_sent = True
            smtp.send(_dot_stuffed(msg.as_bytes()) + b".\r\n")
            code, text = smtp.getreply()
            reply = f"{code} {text.decode(errors='replace')}"
            if code != 250:
                return self._failed(f"after DATA: {reply}")
            sub = Submission(message_id, subject, time.time(), time.monotonic(), reply)
            with self._lock:
                self._accepted.append(sub)
            return sub
        except (OSError, smtplib.SMTPException) as e:
            return self._failed(f"{type(e).__name__}: {e}", uncertain=data_sent)
        finally:
            if smtp is not None:
                # The outcome is recorded: whatever QUIT meets changes nothing.
                with contextlib.suppress(OSError, smtplib.SMTPException):
                    smtp.quit()
                smtp.close()

    def _failed(self, reason: str, uncertain: bool = False) -> Failure:
        f = Failure(time.time(), time.monotonic(), reason, uncertain)
        with self._lock:
            self._failures.append(f)
        return f

    # ---- the thread ------------------------------------------------------

    def _loop(self) -> None:
        try:
            if self.netns:
                _enter_netns(self.netns)
            while not self._stop.is_set():
                started = time.monotonic()
                self.send_one()
                self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))
        except BaseException as e:  # reported by stop()
            self._error = e

    def start(self) -> "MailClient":
        if self._thread is not None:
            raise RuntimeError("MailClient already started")
        self._thread = threading.Thread(target=self._loop, name=f"mailclient-{self.tag}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop submitting (after the attempt in progress); re-raise what killed the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s if timeout_s is not None else 4 * self.timeout_s + 5)
            if self._thread.is_alive():
                raise TimeoutError("mail client thread did not stop")
        if self._error is not None:
            raise RuntimeError(f"mail client thread died: {self._error!r}") from self._error

    def __enter__(self) -> "MailClient":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_accepted(self, n: int, timeout_s: float) -> None:
        """Wait until at least n messages were accepted in total."""
        deadline = time.monotonic() + timeout_s
        while len(self.accepted) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.accepted)} of {n} messages accepted in {timeout_s}s; "
                                   f"last failure: {self.failures[-1:] or None}")
            if self._error is not None:
                raise RuntimeError(f"mail client thread died: {self._error!r}")
            time.sleep(0.02)

    # ---- what happened ---------------------------------------------------

    @property
    def accepted(self) -> list[Submission]:
        with self._lock:
            return list(self._accepted)

    @property
    def failures(self) -> list[Failure]:
        with self._lock:
            return list(self._failures)

    def outage(self) -> tuple[Failure | None, Submission | None]:
        """(first failure, first acceptance after it): either None if it has not happened."""
        with self._lock:
            if not self._failures:
                return None, None
            first = self._failures[0]
            after = next((s for s in self._accepted if s.mono > first.mono), None)
            return first, after

    def outage_s(self) -> float | None:
        """Seconds from the first failure to the first acceptance after it, None if not both."""
        first, after = self.outage()
        return after.mono - first.mono if first and after else None

    def summary(self) -> str:
        first, after = self.outage()
        acc, fails = self.accepted, self.failures
        text = f"{len(acc)} accepted, {len(fails)} failed ({sum(f.uncertain for f in fails)} uncertain)"
        if first:
            text += f"; first failure {_clock(first.wall)} ({first.reason})"
        if after:
            text += f"; first success after it {_clock(after.wall)} ({after.mono - first.mono:.2f}s later)"
        return text

    def missing(self, imap_host: str, imap_port: int, user: str, password: str, *, mailbox: str = "INBOX",
                timeout_s: float = 10.0, netns: str | None = None) -> list[Submission]:
        """Accepted messages whose Message-ID is not in user's mailbox (read over IMAP)."""
        found = imap_message_ids(imap_host, imap_port, user, password, mailbox=mailbox, timeout_s=timeout_s,
                                 netns=netns if netns is not None else self.netns)
        return [s for s in self.accepted if s.message_id not in found]


def _clock(wall: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(wall)) + f"{wall % 1:.3f}"[1:] + "Z"


def _dot_stuffed(data: bytes) -> bytes:
    """The message as DATA sends it: CRLF line ends, leading dots doubled, ending in CRLF."""
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)


def imap_message_ids(host: str, port: int, user: str, password: str, *, mailbox: str = "INBOX",
                     timeout_s: float = 10.0, netns: str | None = None) -> set[str]:
    """Every Message-ID in user's mailbox, read over IMAP (read-only)."""

    def read() -> set[str]:
        with imaplib.IMAP4(host, port, timeout=timeout_s) as imap:
            imap.login(user, password)
            typ, data = imap.select(mailbox, readonly=True)
            if typ != "OK":
                raise RuntimeError(f"SELECT {mailbox} as {user}: {typ} {data}")
            ids: set[str] = set()
            if int(data[0]) > 0:
                typ, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
                if typ != "OK":
                    raise RuntimeError(f"FETCH as {user}: {typ} {data}")
                for item in data:
                    if isinstance(item, tuple):
                        header = item[1].decode(errors="replace").strip()
                        if ":" in header:
                            ids.add(header.split(":", 1)[1].strip())
            imap.logout()
            return ids

    return in_netns(netns, read)
