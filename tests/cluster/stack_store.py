"""The messaging stack's shared store: every service's configuration and data on one directory.

issue #7: the store moves with the stack, so everything that must survive a
failover lives on it, and everything node-specific follows the virtual IP::

    <mount_point>/stack.json        what prepare_store() returned (StackValues)
    <mount_point>/slapd/            slapd.d (cn=config), db/ (MDB), secrets/ (0600)
    <mount_point>/dovecot/          dovecot.conf, users, probe.cred (0600), mail/ (Maildirs
                                    and their indexes), state/, dovecot.log
    <mount_point>/postfix-internal/ internal MTA: etc/ (main.cf, master.cf), spool/ (queue),
                                    data/, maillog; delivers @example.com over LMTP to Dovecot
    <mount_point>/postfix-gateway/  internet gateway: the same layout; relays @example.com
                                    to the internal MTA on the VIP
    <mount_point>/inn/              etc/ (inn.conf), db/ (active, history), spool/, run/, log/
    <mount_point>/mailflow/         credentials (0600): the probe account mailflow logs in as

Node-local runtime stays under run_root (default /run/messaging, a tmpfs on a
real node, private per node in the test harness) where the daemon or its
agent creates it at start: Dovecot's base_dir (master.pid, the LMTP socket
Postfix delivers to) and slapd's pid file and ldapi socket.  Postfix keeps its
pid file in the queue and INN its pid file in pathrun: both on the store,
where msg-recover removes what a dead node left behind.

Every daemon binds the VIP only, on high ports picked here (or given), and
every host name is written into the configuration (myhostname, pathhost),
never taken from the node.  Mail to example.com from anywhere reaches the
gateway, then the internal MTA, then Dovecot's LMTP; both Postfix instances
retry deferred mail every few seconds, since their next hop is this stack,
down only while it fails over.

The configuration writers are the integration tests' instance classes
(tests/integration/*_instance.py), given the VIP and the mount-point paths.
When the store is written somewhere else than where the nodes mount it
(store_root != mount_point, e.g. the harness's shared dir on the host),
prepare_store() writes it in a private mount namespace with store_root
bind-mounted at mount_point, so that every path the tools (postfix check,
slapadd, makedbz) see and write is the one the nodes will see.  When the VIP
is not an address of this host (it lives on the active node), it writes in
a private network namespace too, with the VIP on its loopback: `postfix
check` refuses an inet_interfaces that is not local.

Usage::

    values = prepare_store(cluster.store, cluster.vip, mount_point="/srv/messaging")
    values.resources["postfix-gateway"].params   # OCF_RESKEY_* for the renderer
    values.ports["smtp"], values.user, values.password
    insts = stack_instances(values)              # the instance objects, e.g. to kill by PID
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "integration"))

import procs  # noqa: E402
from dovecot_instance import DOMAIN, PROBE_USER, USERS, DovecotInstance  # noqa: E402
from inn_instance import PROBE_GROUP, InnInstance  # noqa: E402
from postfix_instance import PostfixInstance, free_port, settle  # noqa: E402
from slapd_instance import MONITOR_DN, PROBE_ENTRY, SUFFIX, SlapdInstance  # noqa: E402

__all__ = ["StackValues", "Resource", "StackInstances", "prepare_store", "stack_instances", "load_values",
           "START_ORDER", "PORT_NAMES", "TEST_USER", "TEST_PASSWORD"]

# Resource ids in start order: directory, mailbox store, transport (internal
# MTA before the gateway that relays to it), news, attendant.
START_ORDER = ("slapd", "dovecot", "postfix-internal", "postfix-gateway", "innd", "mailflow")
PORT_NAMES = ("ldap", "imap", "pop3", "lmtp", "smtp_internal", "smtp", "nntp")
# The test mailbox (dovecot_instance.USERS: each password is the user name).
TEST_USER = f"alice@{DOMAIN}"
TEST_PASSWORD = "alice"
DEFAULT_RUN_ROOT = Path("/run/messaging")
# Next hop is the stack itself: retry soon after it comes back, not in 5 min.
_RETRY_PARAMS = {"queue_run_delay": "2s", "minimal_backoff_time": "2s", "maximal_backoff_time": "30s"}
_VALUES_FILE = "stack.json"


@dataclasses.dataclass
class Resource:
    """One cluster resource: its agent (ocf:messaging:<agent>) and OCF_RESKEY_* parameters."""
    agent: str
    params: dict[str, str]


@dataclasses.dataclass
class StackValues:
    """What the CIB renderer and the tests need about a prepared store.

    resources: resource id -> Resource, in START_ORDER.  ports: PORT_NAMES ->
    port on the VIP ("smtp" is the gateway clients submit to).  paths: where
    each store piece lives, as seen on the active node."""
    vip: str
    mount_point: str
    store_root: str
    run_root: str
    ports: dict[str, int]
    user: str
    password: str
    resources: dict[str, Resource]
    paths: dict[str, str]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    def render_values(self) -> dict[str, dict[str, str]]:
        """The values for cib-templates/render --values (JSON nested one level:
        resource id -> parameter -> value), without what only the cluster knows
        (node names, netmask, NIC, the store's device and fstype)."""
        out: dict[str, dict[str, str]] = {"vip": {"ip": self.vip}, "store": {"directory": self.mount_point}}
        for rid, rsc in self.resources.items():
            out[rid] = dict(rsc.params)
        return out

    @classmethod
    def from_json(cls, text: str) -> "StackValues":
        d = json.loads(text)
        d["resources"] = {k: Resource(**v) for k, v in d["resources"].items()}
        return cls(**d)


@dataclasses.dataclass
class StackInstances:
    """The instance objects behind the stack (paths as seen on the active node)."""
    slapd: SlapdInstance
    dovecot: DovecotInstance
    postfix_internal: PostfixInstance
    postfix_gateway: PostfixInstance
    inn: InnInstance

    def all(self) -> list:
        return [self.slapd, self.dovecot, self.postfix_internal, self.postfix_gateway, self.inn]

    def processes(self) -> list[int]:
        """Every live pid of every service of this stack."""
        return sorted({p for inst in self.all() for p in inst.processes()})

    def kill_all(self) -> list[int]:
        """SIGKILL every process of the stack by pid (rounds); return survivors."""
        return procs.kill_all(self.processes)


def _is_local(address: str) -> bool:
    """True if this host (network namespace) has address on one of its interfaces.

    Not by binding a socket: in a fresh network namespace (loopback down)
    binding any address succeeds."""
    listing = procs.run(["ip", "-o", "addr", "show"], check=True).stdout
    return any(f" {address}/" in line for line in listing.splitlines())


def _pick_ports(vip: str, given: dict[str, int] | None) -> dict[str, int]:
    """Free high ports on the VIP if it is up here, else on loopback (the VIP's
    node is a fresh network namespace: any port free here is free there)."""
    ports = dict(given or {})
    unknown = set(ports) - set(PORT_NAMES)
    if unknown:
        raise ValueError(f"unknown port names {sorted(unknown)}; known: {PORT_NAMES}")
    host = vip if _is_local(vip) else "127.0.0.1"
    for name in PORT_NAMES:
        while name not in ports:
            port = free_port(host)
            if port not in ports.values():
                ports[name] = port
    return ports


def stack_instances(values: StackValues) -> StackInstances:
    """The instance objects for a store, built from values alone (so any node can rebuild them)."""
    mount, run, vip, ports = Path(values.mount_point), Path(values.run_root), values.vip, values.ports
    return StackInstances(
        slapd=SlapdInstance(mount / "slapd", ports["ldap"], host=vip, run_dir=run / "slapd"),
        dovecot=DovecotInstance(mount / "dovecot", ports["imap"], ports["pop3"], ports["lmtp"], host=vip,
                                run_dir=run / "dovecot"),
        postfix_internal=PostfixInstance(mount / "postfix-internal", ports["smtp_internal"],
                                         hostname="mail.example.com", host=vip),
        postfix_gateway=PostfixInstance(mount / "postfix-gateway", ports["smtp"], hostname="mx.example.com",
                                        host=vip),
        inn=InnInstance(mount / "inn", ports["nntp"], host=vip),
    )


def _resources(values: StackValues, insts: StackInstances) -> dict[str, Resource]:
    vip, ports, mount = values.vip, values.ports, Path(values.mount_point)
    s, d, pi, pg, n = insts.slapd, insts.dovecot, insts.postfix_internal, insts.postfix_gateway, insts.inn

    def postfix(inst: PostfixInstance) -> Resource:
        return Resource("postfix", {
            "config_dir": str(inst.config_dir), "probe_host": vip, "probe_port": str(inst.smtp_port),
            "probe_sender": f"postmaster@{DOMAIN}", "probe_recipient": PROBE_USER, "bind_address": vip})

    res = {
        "slapd": Resource("slapd", {
            "config": str(s.config), "services": s.services, "user": "openldap", "group": "openldap",
            "pidfile": str(s.pid_file), "suffix": SUFFIX, "probe_uri": s.ldap_uri, "bind_dn": MONITOR_DN,
            "bind_password_file": str(s.monitor_pw), "probe_entry": PROBE_ENTRY, "write_probe_attr": "description"}),
        "dovecot": Resource("dovecot", {
            "config_file": str(d.config_file), "probe_host": vip, "imap_port": str(d.imap_port),
            "pop3_port": str(d.pop3_port), "lmtp_port": str(d.lmtp_port), "lmtp_socket": str(d.lmtp_socket),
            "credentials_file": str(d.credentials_file), "mail_root": str(d.mail_root)}),
        "postfix-internal": postfix(pi),
        "postfix-gateway": postfix(pg),
        "innd": Resource("innd", {
            "inn_conf": str(n.inn_conf), "probe_host": vip, "port": str(n.port), "probe_group": PROBE_GROUP}),
        "mailflow": Resource("mailflow", {
            "smtp_host": vip, "smtp_port": str(ports["smtp"]), "imap_host": vip, "imap_port": str(ports["imap"]),
            "credentials_file": str(mount / "mailflow" / "credentials"), "probe_address": PROBE_USER,
            "postfix_queue_dir": str(pi.queue_dir), "mail_root": str(d.mail_root)}),
    }
    assert tuple(res) == START_ORDER
    return res


def _paths(values: StackValues, insts: StackInstances) -> dict[str, str]:
    return {k: str(v) for k, v in {
        "slapd_config": insts.slapd.config, "slapd_db": insts.slapd.db_dir,
        "dovecot_config": insts.dovecot.config_file, "mail_root": insts.dovecot.mail_root,
        "lmtp_socket": insts.dovecot.lmtp_socket,
        "postfix_internal_config": insts.postfix_internal.config_dir,
        "postfix_internal_queue": insts.postfix_internal.queue_dir,
        "postfix_gateway_config": insts.postfix_gateway.config_dir,
        "postfix_gateway_queue": insts.postfix_gateway.queue_dir,
        "inn_conf": insts.inn.inn_conf, "inn_spool": insts.inn.spool, "inn_history": insts.inn.history,
        "credentials_file": Path(values.mount_point) / "mailflow" / "credentials",
    }.items()}


def prepare_store(store_root: str | os.PathLike, vip: str, *, mount_point: str | os.PathLike | None = None,
                  run_root: str | os.PathLike = DEFAULT_RUN_ROOT, ports: dict[str, int] | None = None) -> StackValues:
    """Write every service's configuration and data into store_root (which must
    be empty or missing), as it will be seen mounted at mount_point (default:
    store_root itself), binding only vip; return the values and write them to
    <store>/stack.json.

    run_root: node-local runtime root (Dovecot's base_dir, slapd's pid file
    and ldapi socket), created at start on each node.  ports: any of
    PORT_NAMES to fix; the rest are picked free."""
    store_root = Path(store_root).resolve()
    mount = Path(mount_point) if mount_point is not None else store_root
    if not mount.is_absolute() or not Path(run_root).is_absolute():
        raise ValueError("mount_point and run_root must be absolute paths")
    store_root.mkdir(parents=True, exist_ok=True)
    if any(store_root.iterdir()):
        raise FileExistsError(f"{store_root} is not empty: prepare_store writes a new store only")
    values = StackValues(vip=vip, mount_point=str(mount), store_root=str(store_root), run_root=str(run_root),
                         ports=_pick_ports(vip, ports), user=TEST_USER, password=TEST_PASSWORD,
                         resources={}, paths={})
    insts = stack_instances(values)
    values.resources = _resources(values, insts)
    values.paths = _paths(values, insts)
    if mount == store_root and _is_local(vip):
        _write_store(values)
    else:
        _write_in_namespaces(values, private_net=not _is_local(vip))
    return values


def load_values(store_root: str | os.PathLike) -> StackValues:
    """The StackValues prepare_store() recorded in a store."""
    return StackValues.from_json((Path(store_root) / _VALUES_FILE).read_text())


def _write_in_namespaces(values: StackValues, private_net: bool) -> None:
    """Run _write_store in a private mount namespace with store_root bind-mounted at
    mount_point, and with private_net in a network namespace holding the VIP."""
    r = procs.run(["unshare", "--mount", "--propagation", "private", *(["--net"] if private_net else []),
                   "/usr/bin/python3", str(Path(__file__).resolve()), "--write-store"],
                  input=values.to_json(), timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"writing the store through {values.mount_point} failed ({r.returncode}):\n"
                           f"{r.stdout}{r.stderr}")


def _enter_store_here(values: StackValues) -> None:
    """In our private namespaces: the VIP on loopback unless it is local already;
    store_root at mount_point unless they are the same.  A missing mount point
    is made on a tmpfs over its nearest existing ancestor (seen only here)."""
    if not _is_local(values.vip):
        procs.run(["ip", "link", "set", "lo", "up"], check=True)
        procs.run(["ip", "addr", "add", f"{values.vip}/32", "dev", "lo"], check=True)
    mount, store = Path(values.mount_point), Path(values.store_root)
    if mount == store:
        return
    if not mount.is_dir():
        ancestor = mount.parent
        while not ancestor.exists():
            ancestor = ancestor.parent
        if ancestor == Path("/") or ancestor == store or ancestor in store.parents:
            raise RuntimeError(f"cannot make mount point {mount}: create it (its ancestor {ancestor} "
                               "would have to be hidden)")
        procs.run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=1m", "msg-stack-mnt", str(ancestor)], check=True)
        mount.mkdir(parents=True)
    procs.run(["mount", "--bind", str(store), str(mount)], check=True)


def _write_store(values: StackValues) -> None:
    """Write the store at values.mount_point (which must show store_root)."""
    mount = Path(values.mount_point)
    closed = [str(d) for d in mount.parents if not d.stat().st_mode & 0o001]
    if closed:
        raise PermissionError(f"the services' users (openldap, vmail, postfix, news) cannot reach {mount}: "
                              f"{', '.join(closed)} not searchable by others")
    mount.chmod(0o755)
    insts = stack_instances(values)
    vip = values.vip

    insts.slapd.create()
    for d in (insts.slapd.base_dir, insts.dovecot.base_dir, insts.inn.base_dir):
        d.mkdir(exist_ok=True)
        d.chmod(0o755)
    insts.dovecot.create()
    with insts.dovecot.config_file.open("a") as conf:
        # LMTP replies and generated headers name the service, not whichever node runs it.
        conf.write("hostname = mail.example.com\n")

    internal, gateway = insts.postfix_internal, insts.postfix_gateway
    # Postfix accepts only recipients Dovecot knows; the gateway only those too.
    known = "".join(f"{u}@{DOMAIN} ok\n" for u in USERS)
    own_networks = f"127.0.0.0/8 {vip}/32"
    internal.set_main(**_RETRY_PARAMS, smtp_bind_address=vip, mynetworks=own_networks,
                      virtual_transport=f"lmtp:unix:{insts.dovecot.lmtp_socket}",
                      virtual_mailbox_maps=f"texthash:{internal.config_dir / 'mailboxes'}")
    gateway.set_main(**_RETRY_PARAMS, smtp_bind_address=vip, mynetworks=own_networks,
                     virtual_mailbox_domains="", virtual_mailbox_maps="", virtual_transport="error:not a mailbox host",
                     relay_domains=DOMAIN, relay_recipient_maps=f"texthash:{gateway.config_dir / 'recipients'}",
                     transport_maps=f"texthash:{gateway.config_dir / 'transport'}")
    for inst, table, text in ((internal, "mailboxes", known), (gateway, "recipients", known),
                              (gateway, "transport", f"{DOMAIN} smtp:[{vip}]:{internal.smtp_port}\n")):
        inst.config_dir.mkdir(parents=True, exist_ok=True)
        (inst.config_dir / table).write_text(text)
        settle(inst.config_dir / table)
    internal.create()
    gateway.create()

    insts.inn.create()
    # mailflow logs in as the same probe account as Dovecot's monitor, from a file of its own.
    mailflow_cred = Path(values.paths["credentials_file"])
    mailflow_cred.parent.mkdir(mode=0o700)
    mailflow_cred.write_bytes(insts.dovecot.credentials_file.read_bytes())
    mailflow_cred.chmod(0o600)
    (mount / _VALUES_FILE).write_text(values.to_json())


def _main(argv: list[str]) -> int:
    if argv == ["--write-store"]:
        values = StackValues.from_json(sys.stdin.read())
        _enter_store_here(values)
        _write_store(values)
        return 0
    print(f"usage: {Path(__file__).name} --write-store < values.json (used by prepare_store)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
