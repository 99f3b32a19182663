"""A throw-away OpenLDAP slapd instance from the Debian package, for tests.

Everything the instance owns lives under one base directory::

    base_dir/slapd.d/      cn=config directory (config_format "ldif", built with slapadd -n0)
    base_dir/slapd.conf    or a slapd.conf file (config_format "conf")
    base_dir/db/           the MDB database of dc=example,dc=com
    base_dir/run/          slapd.pid, slapd.args, the ldapi socket
    base_dir/secrets/      root-only password files (0600) for the clients

It listens on ldap://host:port/ (host 127.0.0.1 unless given) and on ldapi://
in run/ (or run_dir: node-local, created by the agent's start), runs as
openldap (the tree is chowned to it), and holds::

    dc=example,dc=com            the suffix (dcObject, organization)
    ou=people,...                where the tests add entries
    cn=admin,...                 the rootdn (password in secrets/admin.pw)
    cn=ha-monitor,...            the monitor's bind identity (secrets/monitor.pw),
                                 allowed to write only `description` of:
    cn=ha-probe,...              the probe entry of the depth 20 check

Root has "manage" on cn=config over ldapi (SASL EXTERNAL), so tests can change
the running configuration (olcDbMaxSize) the way an operator would.

A provider (syncprov=True) carries the syncprov overlay; a consumer
(consumer_of=URI) replicates the suffix from it with refreshAndPersist and
starts with an empty database.

Passwords are never put on a command line: clients read them with -y FILE,
and slapd's own hashes come from `slappasswd -T FILE`.

All processes are spawned through procs.run()/popen(), so a caller that
enabled procs.enable_subreaper() reaps killed daemons promptly.
"""

from __future__ import annotations

import os
import pwd
import re
import select
import shutil
import signal
import socket
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import procs

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
SLAPPASSWD = "/usr/sbin/slappasswd"
SCHEMAS = ("core", "cosine", "nis", "inetorgperson")
SUFFIX = "dc=example,dc=com"
ROOT_DN = f"cn=admin,{SUFFIX}"
MONITOR_DN = f"cn=ha-monitor,{SUFFIX}"
PROBE_ENTRY = f"cn=ha-probe,{SUFFIX}"
PEOPLE = f"ou=people,{SUFFIX}"
ROOT_PEERCRED = "gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth"
# Client-side bounds for every ldap-utils call the tests make: a frozen slapd
# must fail a test, not hang it.
CLIENT_TIMEOUT_S = 15


def make_base_dir(prefix: str = "msg-itest-slapd-") -> Path:
    """A fresh world-traversable directory under /tmp (slapd runs as openldap)."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    d.chmod(0o755)
    return d


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def ldapi_uri(socket_path: Path) -> str:
    return "ldapi://" + urllib.parse.quote(str(socket_path), safe="")


class SlapdInstance:
    """One slapd below base_dir on host:port and ldapi. Construction touches nothing."""

    def __init__(self, base_dir: Path, port: int, config_format: str = "ldif", host: str = "127.0.0.1",
                 run_dir: Path | None = None):
        assert config_format in ("ldif", "conf")
        self.base_dir = Path(base_dir).resolve()
        self.port = port
        self.config_format = config_format
        self.config_dir = self.base_dir / "slapd.d"
        self.conf_file = self.base_dir / "slapd.conf"
        self.db_dir = self.base_dir / "db"
        self.run_dir = Path(run_dir) if run_dir else self.base_dir / "run"
        self.secrets = self.base_dir / "secrets"
        self.pid_file = self.run_dir / "slapd.pid"
        self.args_file = self.run_dir / "slapd.args"
        self.ldapi_path = self.run_dir / "ldapi"
        self.ldap_uri = f"ldap://{host}:{port}/"
        self.ldapi_uri = ldapi_uri(self.ldapi_path)
        self.services = f"{self.ldap_uri} {self.ldapi_uri}"
        self.admin_pw = self.secrets / "admin.pw"
        self.monitor_pw = self.secrets / "monitor.pw"

    @property
    def config(self) -> Path:
        """What the agent's `config` parameter names: the slapd.d dir or the slapd.conf file."""
        return self.config_dir if self.config_format == "ldif" else self.conf_file

    # ---- creation -----------------------------------------------------------

    def create(self, max_size: int = 64 << 20, syncprov: bool = False, consumer_of: str | None = None,
               pid_file: bool = True) -> None:
        """Write the configuration and load the data (a consumer loads none: it replicates).
        pid_file=False leaves olcPidFile/pidfile out: slapd then writes no pid file."""
        self.with_pid_file = pid_file
        for d in (self.db_dir, self.secrets):
            d.mkdir(parents=True, exist_ok=True)
        if self.base_dir in self.run_dir.parents:  # a node-local run_dir is the agent's to create
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.secrets.chmod(0o700)
        _write_secret(self.admin_pw, "admin-secret")
        _write_secret(self.monitor_pw, "monitor-secret")
        root_hash = self._hash(self.admin_pw)
        if self.config_format == "ldif":
            self.config_dir.mkdir()
            ldif = self.base_dir / "config.ldif"
            ldif.write_text(self._config_ldif(root_hash, max_size, syncprov, consumer_of))
            procs.run([SLAPADD, "-n0", "-F", str(self.config_dir), "-l", str(ldif)], check=True)
            load = ["-F", str(self.config_dir)]
        else:
            self.conf_file.write_text(self._config_conf(root_hash, max_size, syncprov, consumer_of))
            load = ["-f", str(self.conf_file)]
        if consumer_of is None:
            data = self.base_dir / "data.ldif"
            data.write_text(self._data_ldif())
            procs.run([SLAPADD, *load, "-b", SUFFIX, "-l", str(data)], check=True)
        ldap = pwd.getpwnam("openldap")
        for root, dirs, files in os.walk(self.base_dir):
            if Path(root) == self.secrets:
                dirs[:] = []
                continue
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.lchown(name, ldap.pw_uid, ldap.pw_gid)

    def _hash(self, secret_file: Path) -> str:
        return procs.run([SLAPPASSWD, "-T", str(secret_file)], check=True).stdout.strip()

    def _acl(self) -> list[str]:
        return [
            f'to dn.exact="{PROBE_ENTRY}" attrs=description by dn.exact="{MONITOR_DN}" write by * read',
            'to attrs=userPassword by self =xw by anonymous auth by * none',
            'to * by * read',
        ]

    def _syncrepl(self, provider: str) -> str:
        # Tests only: the rootdn's password in the consumer's configuration.
        return (f'rid=001 provider={provider} bindmethod=simple binddn="{ROOT_DN}" '
                f'credentials=admin-secret searchbase="{SUFFIX}" type=refreshAndPersist '
                f'retry="1 +" timeout=3 network-timeout=3')

    def _config_ldif(self, root_hash: str, max_size: int, syncprov: bool, consumer_of: str | None) -> str:
        modules = "olcModuleLoad: back_mdb\n" + ("olcModuleLoad: syncprov\n" if syncprov else "")
        schemas = "".join(f"include: file:///etc/ldap/schema/{s}.ldif\n" for s in SCHEMAS)
        acl = "".join(f"olcAccess: {{{i}}}{a}\n" for i, a in enumerate(self._acl()))
        pid_line = f"olcPidFile: {self.pid_file}\n" if self.with_pid_file else ""
        text = f"""dn: cn=config
objectClass: olcGlobal
cn: config
{pid_line}olcArgsFile: {self.args_file}
olcLogLevel: none

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: /usr/lib/ldap
{modules}
dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{schemas}
dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcAccess: {{0}}to * by * read

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by dn.exact={ROOT_PEERCRED} manage by * break

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {SUFFIX}
olcRootDN: {ROOT_DN}
olcRootPW: {root_hash}
olcDbDirectory: {self.db_dir}
olcDbMaxSize: {max_size}
olcDbIndex: objectClass eq
olcDbIndex: entryCSN,entryUUID eq
{acl}"""
        if consumer_of:
            text += f"olcSyncrepl: {self._syncrepl(consumer_of)}\n"
        if syncprov:
            text += """
dn: olcOverlay={0}syncprov,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: {0}syncprov
olcSpCheckpoint: 1 1
"""
        return text

    def _config_conf(self, root_hash: str, max_size: int, syncprov: bool, consumer_of: str | None) -> str:
        schemas = "".join(f"include /etc/ldap/schema/{s}.schema\n" for s in SCHEMAS)
        acl = "".join(f"access {a}\n" for a in self._acl())
        pid_line = f"pidfile {self.pid_file}\n" if self.with_pid_file else ""
        text = f"""# written by tests/integration/slapd_instance.py
{schemas}{pid_line}argsfile "{self.args_file}"
loglevel none
modulepath /usr/lib/ldap
moduleload back_mdb
{"moduleload syncprov" if syncprov else ""}

database mdb
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {root_hash}
directory {self.db_dir}
maxsize {max_size}
index objectClass eq
index entryCSN,entryUUID eq
{acl}"""
        if consumer_of:
            text += f"syncrepl {self._syncrepl(consumer_of)}\n"
        if syncprov:
            text += "overlay syncprov\nsyncprov-checkpoint 1 1\n"
        return text

    def _data_ldif(self) -> str:
        monitor_hash = self._hash(self.monitor_pw)
        return f"""dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: {PEOPLE}
objectClass: organizationalUnit
ou: people

dn: {MONITOR_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: ha-monitor
userPassword: {monitor_hash}

dn: {PROBE_ENTRY}
objectClass: organizationalRole
cn: ha-probe
description: created by slapd_instance.py
"""

    # ---- control (fixture set-up; tests drive the agent instead) ------------

    def start(self, timeout: float = 20.0) -> int:
        """Start slapd directly (not through the agent); return its pid once it answers."""
        opt = "-F" if self.config_format == "ldif" else "-f"
        r = procs.run([SLAPD, "-h", self.services, "-u", "openldap", "-g", "openldap", opt, str(self.config)],
                      cwd="/", timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"slapd exited {r.returncode}: {r.stdout}{r.stderr}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.slapd_pid()
            if pid and self.answers():
                return pid
            time.sleep(0.05)
        raise RuntimeError(f"slapd started but {self.ldap_uri} never answered")

    # ---- state --------------------------------------------------------------

    def pid_file_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def write_pid_file(self, pid: int) -> None:
        self.pid_file.write_text(f"{pid}\n")

    def processes(self) -> list[int]:
        """Live slapd processes of this instance: exe is slapd and the command line names our config."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.readlink(entry / "exe") != SLAPD:
                    continue
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if str(self.config).encode() in args and procs.alive(int(entry.name)):
                found.append(int(entry.name))
        return sorted(found)

    def slapd_pid(self) -> int | None:
        """The pid file's pid if it is one of processes(), else None."""
        pid = self.pid_file_pid()
        return pid if pid in self.processes() else None

    def kill_all(self) -> list[int]:
        """SIGKILL every process of the instance; return survivors."""
        return procs.kill_and_wait(self.processes(), 5)

    def freeze(self, pid: int) -> None:
        os.kill(pid, signal.SIGSTOP)
        deadline = time.monotonic() + 2
        while procs.state(pid) != "T":
            if time.monotonic() > deadline:
                raise RuntimeError(f"slapd {pid} did not stop")
            time.sleep(0.01)

    # ---- LDAP clients -------------------------------------------------------

    def ldap(self, tool: str, *args: str, uri: str | None = None, bind: str = "admin", input: str | None = None,
             timeout: float = CLIENT_TIMEOUT_S):
        """Run an ldap-utils tool against this server. bind: "admin" (rootdn), "monitor",
        "external" (SASL EXTERNAL over ldapi) or "anonymous"."""
        if bind == "external":
            uri = self.ldapi_uri
        argv = [tool, "-H", uri or self.ldapi_uri, "-o", "nettimeout=5", "-o", "ldif-wrap=no"]
        if bind == "admin":
            argv += ["-x", "-D", ROOT_DN, "-y", str(self.admin_pw)]
        elif bind == "monitor":
            argv += ["-x", "-D", MONITOR_DN, "-y", str(self.monitor_pw)]
        elif bind == "external":
            argv += ["-Q", "-Y", "EXTERNAL"]
        else:
            argv += ["-x"]
        env = {"PATH": "/usr/bin:/bin", "LDAPNOINIT": "1"}
        return procs.run(argv + list(args), input=input, timeout=timeout, env=env)

    def answers(self, uri: str | None = None) -> bool:
        try:
            r = self.ldap("ldapsearch", "-LLL", "-s", "base", "-b", "", "(objectClass=*)", "1.1",
                          uri=uri or self.ldap_uri, bind="anonymous", timeout=5)
        except Exception:
            return False
        return r.returncode == 0

    def search(self, base: str, scope: str = "base", filt: str = "(objectClass=*)", *attrs: str,
               uri: str | None = None, bind: str = "admin") -> dict[str, dict[str, list[str]]]:
        """{dn: {attr: [values]}} (plain-text values only); raises on an LDAP error other than noSuchObject."""
        r = self.ldap("ldapsearch", "-LLL", "-s", scope, "-b", base, filt, *attrs, uri=uri, bind=bind)
        if r.returncode not in (0, 32):
            raise RuntimeError(f"ldapsearch -b {base} failed ({r.returncode}): {r.stderr.strip()}")
        entries: dict[str, dict[str, list[str]]] = {}
        current: dict[str, list[str]] | None = None
        for line in r.stdout.splitlines():
            if not line:
                current = None
                continue
            key, _, value = line.partition(": ")
            if key == "dn":
                current = entries.setdefault(value, {})
            elif current is not None:
                current.setdefault(key, []).append(value)
        return entries

    def context_csn(self, uri: str | None = None) -> list[str]:
        got = self.search(SUFFIX, "base", "(objectClass=*)", "contextCSN", uri=uri)
        return got.get(SUFFIX, {}).get("contextCSN", [])

    def modify(self, ldif: str, bind: str = "admin"):
        return self.ldap("ldapmodify", uri=self.ldapi_uri, bind=bind, input=ldif)

    def set_description(self, dn: str, text: str) -> None:
        r = self.modify(f"dn: {dn}\nchangetype: modify\nreplace: description\ndescription: {text}\n")
        if r.returncode != 0:
            raise RuntimeError(f"modify of {dn} failed ({r.returncode}): {r.stderr.strip()}")

    def set_max_size(self, size: int) -> None:
        """Lower (or raise) olcDbMaxSize of the running server through cn=config (EXTERNAL over ldapi)."""
        r = self.modify(f"dn: olcDatabase={{1}}mdb,cn=config\nchangetype: modify\nreplace: olcDbMaxSize\n"
                        f"olcDbMaxSize: {size}\n", bind="external")
        if r.returncode != 0:
            raise RuntimeError(f"cannot set olcDbMaxSize: {r.stderr.strip()}")


def entry_ldif(cn: str, description: str = "") -> str:
    """One organizationalRole below ou=people, as LDIF (ending in a blank line)."""
    text = f"dn: cn={cn},{PEOPLE}\nobjectClass: organizationalRole\ncn: {cn}\n"
    if description:
        text += f"description: {description}\n"
    return text + "\n"


_ADDING_RE = re.compile(r'^adding new entry "(.*)"$')


def acknowledged_adds(verbose_stdout: str) -> list[str]:
    """DNs whose add the server acknowledged, from `ldapadd -c -v` stdout: each
    'adding new entry "DN"' line followed by 'modify complete' (printed only
    once the server answered success)."""
    done, pending = [], None
    for line in verbose_stdout.splitlines():
        m = _ADDING_RE.match(line)
        if m:
            pending = m.group(1)
        elif line == "modify complete" and pending is not None:
            done.append(pending)
            pending = None
    return done


def _write_secret(path: Path, secret: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret)  # no newline: ldap-utils' -y sends the file's complete contents
    os.chmod(path, 0o600)



class PausableProxy:
    """A TCP forwarder on 127.0.0.1 (a free port) to 127.0.0.1:target_port whose
    flow can be paused: connections stay open, but no byte moves either way
    until resume(). Stands in for a replication link that stalls (a dropped
    firewall state, a hung router) while both servers stay up."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self._flowing = threading.Event()
        self._flowing.set()
        self._closed = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._sockets: list = []
        self._threads = [threading.Thread(target=self._accept_loop, daemon=True, name="proxy-accept")]
        self._threads[0].start()

    def pause(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        self._listener.close()
        for s in self._sockets:
            try:
                s.close()
            except OSError:
                pass

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                t = threading.Thread(target=self._pump, args=(a, b), daemon=True, name="proxy-pump")
                t.start()

    def _pump(self, src, dst) -> None:
        try:
            while not self._closed.is_set():
                if not self._flowing.wait(0.2):
                    continue
                ready, _, _ = select.select([src], [], [], 0.2)
                if not ready or not self._flowing.is_set():
                    continue
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def __enter__(self) -> "PausableProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["SlapdInstance", "PausableProxy", "make_base_dir", "rmtree", "ldapi_uri", "entry_ldif", "acknowledged_adds",
           "SLAPD", "SUFFIX", "ROOT_DN", "MONITOR_DN", "PROBE_ENTRY", "PEOPLE"]
