"""A real mail stack for the mailflow tests: Postfix delivering over LMTP into Dovecot.

Built from the two instance classes the single-service tests use
(postfix_instance.PostfixInstance and dovecot_instance.DovecotInstance),
wired the way a production stack is::

    SMTP 127.0.0.1:<postfix smtp_port>
      -> Postfix (virtual_mailbox_domains = example.com)
      -> lmtp:unix:<dovecot run_dir>/lmtp      (virtual_transport)
      -> Dovecot LMTP -> Maildir of probe@, alice@, bob@example.com
      -> IMAP 127.0.0.1:<dovecot imap_port>

Dovecot also listens for LMTP on TCP (lmtp_port): the port a single-service
monitor of Dovecot checks.  The faults the tests inject are the ones a
single-service monitor cannot see:

* remove_lmtp_socket(): Dovecot's LMTP unix socket is gone (Dovecot keeps
  running, IMAP and the TCP LMTP listener still answer);
* route(domain, nexthop): a transport map entry, e.g. one that sends
  example.com to a dead host;
* SlowLmtpProxy: an LMTP relay that holds back the server's greeting, for a
  slow but working delivery.

Typical use (the fixtures create and tear down the instances)::

    stack = MailStack(postfix_inst, dovecot_inst)
    stack.wire()        # before the instances start
    stack.start()
    stack.route("example.com", f"smtp:[127.0.0.1]:{free_port()}")
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from pathlib import Path

from dovecot_instance import DOMAIN, PROBE_USER, USERS, DovecotInstance
from postfix_instance import PostfixInstance, settle

__all__ = ["MailStack", "SlowLmtpProxy", "PROBE_USER"]


class MailStack:
    """One Postfix instance delivering every @example.com recipient into one Dovecot instance."""

    probe_address = PROBE_USER

    def __init__(self, postfix: PostfixInstance, dovecot: DovecotInstance):
        self.postfix = postfix
        self.dovecot = dovecot
        self.mailboxes_file = postfix.config_dir / "dovecot-mailboxes"
        self.transport_file = postfix.config_dir / "transport"
        self._routes: dict[str, str] = {}

    def wire(self) -> None:
        """Point Postfix's virtual delivery at Dovecot's LMTP socket; call after both create()s."""
        # Postfix only accepts recipients it knows: Dovecot's users.
        self.mailboxes_file.write_text("".join(f"{u}@{DOMAIN} dovecot\n" for u in USERS))
        settle(self.mailboxes_file)
        self._write_transport()
        self.postfix.set_main(virtual_transport=f"lmtp:unix:{self.dovecot.lmtp_socket}",
                              virtual_mailbox_maps=f"texthash:{self.mailboxes_file}",
                              transport_maps=f"texthash:{self.transport_file}")

    def start(self) -> None:
        """Dovecot first (Postfix would defer into a missing socket), then Postfix."""
        self.dovecot.start()
        self.postfix.start()

    def route(self, domain: str, nexthop: str | None) -> None:
        """Set (or with None remove) a transport map entry for domain, then `postfix reload`.

        trivial-rewrite caches the transport map for its lifetime: the reload
        is what makes a running Postfix see the change, as for an operator."""
        if nexthop is None:
            self._routes.pop(domain, None)
        else:
            self._routes[domain] = nexthop
        self._write_transport()
        self.postfix.postfix("reload")

    def _write_transport(self) -> None:
        self.transport_file.write_text("".join(f"{d} {n}\n" for d, n in self._routes.items()))
        settle(self.transport_file)

    def remove_lmtp_socket(self) -> None:
        """Delete Dovecot's LMTP unix socket under the running Dovecot (which does not recreate it)."""
        self.dovecot.lmtp_socket.unlink()

    def flush(self) -> None:
        """`postfix flush`: retry deferred mail now (after a fault is repaired)."""
        self.postfix.postfix("flush")

    def probe_messages(self) -> list[Path]:
        """Files in the probe account's INBOX Maildir (new/ and cur/): what the probe left behind."""
        box = self.dovecot.maildir("probe")
        return [f for sub in ("new", "cur") if (box / sub).is_dir() for f in (box / sub).iterdir()]


class SlowLmtpProxy:
    """An LMTP relay on 127.0.0.1 that holds back the server's greeting by delay_s.

    Every connection is relayed to upstream_port on 127.0.0.1 byte for byte,
    except that nothing the server sends reaches the client before delay_s
    has passed: a delivery that works, slowly.  Runs in daemon threads; use
    as a context manager, which closes every socket on exit."""

    def __init__(self, upstream_port: int, delay_s: float):
        self.upstream_port = upstream_port
        self.delay_s = delay_s
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = [self._listener]
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, name="slow-lmtp-proxy", daemon=True)

    def __enter__(self) -> "SlowLmtpProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.close()
        self._thread.join(5)

    def _accept_loop(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), name="slow-lmtp-relay", daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets += [client, server]
        release_at = time.monotonic() + self.delay_s
        held = b""
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ, server)
        sel.register(server, selectors.EVENT_READ, client)
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.05):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    if key.fileobj is server and (held or time.monotonic() < release_at):
                        held += data
                    else:
                        key.data.sendall(data)
                if held and time.monotonic() >= release_at:
                    client.sendall(held)
                    held = b""
        except OSError:
            return
        finally:
            sel.close()
            client.close()
            server.close()
