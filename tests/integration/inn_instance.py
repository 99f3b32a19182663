"""A throw-away INN 2.7 news server instance from the Debian package, for tests.

Everything the instance owns lives under one base directory, as in
stock-agents-measured.md section 1.4, with its own inn.conf (INNCONF)::

    base_dir/etc/        pathetc: a copy of /etc/news with our own inn.conf
    base_dir/db/         pathdb: active (with the probe group msg.probe),
                         newsgroups, history and its dbz index, .news.daily
    base_dir/run/        pathrun: innd.pid, control and nntpin sockets
    base_dir/spool/      pathspool: articles/, overview/, incoming/, ...
    base_dir/log/        pathlog: news, errlog, ...

innd listens on host:port only (127.0.0.1 unless given; a high port needs no innbind), with
innwatch off.  db/.news.daily exists, so rc.news never mails the news admin
through the system's Postfix.

Typical use::

    inn = InnInstance(make_base_dir("msg-itest-inn-"), free_port())
    inn.create()
    inn.start()                       # rc.news as news; returns innd's pid
    inn.enable_tls(cert, key)         # STARTTLS in nnrpd (inn.conf's tls*)
    inn.add_reader_login(user, pw)    # AUTHINFO USER/PASS through ckpasswd
    msgid = inn.post("hello")         # POST over NNTP; its Message-ID
    assert inn.has_article(msgid)     # STAT by Message-ID
    inn.kill_all()                    # every process of the instance, by pid

Every INN tool runs as the news user with INNCONF in an explicit, minimal
environment (as_news()), and every process is spawned through procs.run(), so
a caller that enabled procs.enable_subreaper() reaps killed daemons promptly.
The instance's processes are found by pid file, by working directory
(patharticles) and by the INNCONF in their environment: the agent starts
innd with it, so even an innd whose pid file is gone is found and killed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import procs

__all__ = ["InnInstance", "INN_BIN", "PROBE_GROUP", "nntp_exchange"]

INN_BIN = Path("/usr/lib/news/bin")
PROBE_GROUP = "msg.probe"
_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def nntp_exchange(port: int, commands: list[str], timeout: float = 5.0, host: str = "127.0.0.1") -> list[str]:
    """Greeting, then each command's status line (multi-line replies are read
    to their "." and dropped); ends with QUIT.  Lines without CR LF."""
    lines = []
    with socket.create_connection((host, port), timeout=timeout) as s:
        f = s.makefile("rb")

        def status() -> str:
            line = f.readline().decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            return line

        status()
        for command in commands + ["QUIT"]:
            s.sendall(command.encode() + b"\r\n")
            line = status()
            if line[:3] in ("101", "215", "220", "221", "222", "224", "225", "230", "231"):
                while f.readline().rstrip(b"\r\n") != b".":
                    pass
    return lines


class InnInstance:
    """One INN instance under base_dir, innd on host:port."""

    def __init__(self, base_dir: Path, port: int, host: str = "127.0.0.1"):
        self.base_dir = Path(base_dir)
        self.port = port
        self.host = host
        self.etc = self.base_dir / "etc"
        self.inn_conf = self.etc / "inn.conf"
        self.db = self.base_dir / "db"
        self.run_dir = self.base_dir / "run"
        self.spool = self.base_dir / "spool"
        self.articles = self.spool / "articles"
        self.log_dir = self.base_dir / "log"
        self.pid_file = self.run_dir / "innd.pid"
        self.history = self.db / "history"
        news = pwd.getpwnam("news")
        self.news_uid, self.news_gid = news.pw_uid, news.pw_gid

    # ---- configuration

    def paths(self) -> dict[str, Path]:
        """inn.conf's path parameters for this instance."""
        return {
            "pathdb": self.db, "pathetc": self.etc, "pathfilter": self.etc / "filter",
            "pathhttp": self.base_dir / "http", "pathincoming": self.spool / "incoming",
            "pathlog": self.log_dir, "pathoutgoing": self.spool / "outgoing",
            "pathoverview": self.spool / "overview", "pathrun": self.run_dir, "pathspool": self.spool,
            "pathtmp": self.spool / "incoming" / "tmp", "patharchive": self.spool / "archive",
            "patharticles": self.articles,
        }

    def write_inn_conf(self, **extra: str) -> None:
        """A minimal inn.conf (what innconfval -C demands, plus our paths), then extra."""
        params = {
            "mta": '"/usr/sbin/sendmail -oi -oem %s"', "organization": '"msg-itest"',
            "ovmethod": "tradindexed", "hismethod": "hisv6", "pathhost": "news.example.com",
            "pathnews": "/usr/lib/news", "domain": "example.com", "port": str(self.port),
            "bindaddress": self.host, "doinnwatch": "false", "pathbin": str(INN_BIN),
            "pathcontrol": str(INN_BIN / "control"),
        }
        params.update({k: str(v) for k, v in self.paths().items()})
        params.update(extra)
        self.inn_conf.write_text("".join(f"{k}: {v}\n" for k, v in params.items()))

    def create(self) -> None:
        """Config, active file with the probe group, empty history indexed by makedbz."""
        shutil.copytree("/etc/news", self.etc, symlinks=True)
        for d in self.paths().values():
            d.mkdir(parents=True, exist_ok=True)
        self.write_inn_conf()
        if self.host not in ("127.0.0.1", "localhost", "::1"):
            # host is a cluster's VIP: the agent's probe on the node holding it
            # connects from that node's own address, in the VIP's /24 in the
            # tests.  Let those read like localhost.
            with (self.etc / "readers.conf").open("a") as f:
                f.write(f'\nauth "cluster" {{\n    hosts: "{self.host}/24"\n    default: "<localhost>"\n}}\n')
        examples = Path("/usr/lib/news/examples")
        active = (examples / "active").read_text() + f"{PROBE_GROUP} 0000000000 0000000001 y\n"
        (self.db / "active").write_text(active)
        (self.db / "newsgroups").write_text((examples / "newsgroups").read_text()
                                            + f"{PROBE_GROUP}\tProbe articles of ocf:messaging:innd.\n")
        for name in ("history", "active.times", ".news.daily"):
            (self.db / name).touch()
        self.chown_all()
        self.as_news(str(INN_BIN / "makedbz"), "-i", "-o", "-s", "1000", check=True)

    def enable_tls(self, cert_file: Path, key_file: Path) -> None:
        """nnrpd offers STARTTLS with this certificate (it reads inn.conf's tls* at each connection)."""
        for f in (cert_file, key_file):
            os.chown(f, self.news_uid, self.news_gid)
        with self.inn_conf.open("a") as f:
            f.write(f"tlscertfile: {cert_file}\ntlskeyfile: {key_file}\ntlscafile: {cert_file}\n")

    def add_reader_login(self, user: str, password: str) -> None:
        """An AUTHINFO login for nnrpd: a ckpasswd file and its readers.conf blocks."""
        hashed = procs.run(["openssl", "passwd", "-6", "-stdin"], input=password + "\n", check=True).stdout.strip()
        passwd = self.etc / "readers.passwd"
        passwd.write_text(f"{user}:{hashed}\n")
        os.chown(passwd, self.news_uid, self.news_gid)
        passwd.chmod(0o640)
        with (self.etc / "readers.conf").open("a") as f:
            f.write(f'\nauth "login" {{\n    hosts: "localhost, 127.0.0.1, ::1"\n'
                    f'    auth: "ckpasswd -f {passwd}"\n}}\n'
                    f'access "login" {{\n    users: "{user}"\n    newsgroups: "*"\n    access: RPA\n}}\n')

    def chown_all(self) -> None:
        os.chown(self.base_dir, self.news_uid, self.news_gid)
        for root, dirs, files in os.walk(self.base_dir):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), self.news_uid, self.news_gid)

    # ---- control

    def as_news(self, *args: str, check: bool = False, timeout: float = 60.0):
        """Run args as the news user with only PATH, LANG and INNCONF in its environment."""
        return procs.run(["setpriv", "--reuid=news", "--regid=news", "--init-groups", "--",
                          "env", "-i", f"PATH={_PATH}", "LANG=C", f"INNCONF={self.inn_conf}", *args],
                         check=check, timeout=timeout, cwd="/")

    def ctlinnd(self, *args: str, timeout_s: int = 5):
        return self.as_news(str(INN_BIN / "ctlinnd"), "-t", str(timeout_s), *args, timeout=timeout_s + 10)

    def start(self, timeout: float = 30.0) -> int:
        """rc.news as news, as the init script does; returns innd's pid once it greets."""
        out = self.base_dir / "rc.news.out"
        with out.open("w") as f:
            p = procs.popen(["setpriv", "--reuid=news", "--regid=news", "--init-groups", "--",
                             "env", "-i", f"PATH={_PATH}", "LANG=C", f"INNCONF={self.inn_conf}",
                             str(INN_BIN / "rc.news")], stdin=subprocess.DEVNULL, stdout=f,
                            stderr=f, cwd="/")
            try:
                p.wait(timeout)
            finally:
                procs.release(p)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.innd_pid()
            if pid and self.greeting(timeout=1.0).startswith("200"):
                return pid
            time.sleep(0.1)
        raise RuntimeError(f"innd of {self.base_dir} did not start: {out.read_text()} {self.errlog_tail()}")

    def stop(self, timeout: float = 30.0) -> None:
        self.ctlinnd("shutdown", "test stop")
        left = procs.wait_gone(self.processes(), timeout)
        if left:
            raise RuntimeError(f"innd of {self.base_dir} did not stop: {left}")

    # ---- state

    def innd_pid(self) -> int | None:
        """This instance's live innd per its pid file (exe innd, cwd patharticles), else None."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if procs.alive(pid) and _link(pid, "exe") == str(INN_BIN / "innd") and _link(pid, "cwd") == str(self.articles):
            return pid
        return None

    def processes(self) -> list[int]:
        """Every live pid of the instance: innd per pid file, anything working in
        its spool, anything with its INNCONF in the environment."""
        found = set()
        pid = self.innd_pid()
        if pid:
            found.add(pid)
        marker = f"INNCONF={self.inn_conf}".encode()
        base = str(self.base_dir)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            p = int(entry.name)
            if p == os.getpid() or not procs.alive(p):
                continue
            cwd = _link(p, "cwd") or ""
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                environ = []
            if cwd.startswith(base) or marker in environ:
                found.add(p)
        return sorted(found)

    def kill_all(self, timeout: float = 5.0) -> list[int]:
        """SIGKILL every process of the instance (rounds, as a dying innd may fork); return survivors."""
        return procs.kill_all(self.processes, timeout)

    def greeting(self, timeout: float = 2.0) -> str:
        """innd's first line, or '' when nothing answers in time."""
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout) as s:
                return s.makefile("rb").readline().decode("utf-8", "replace").rstrip("\r\n")
        except OSError:
            return ""

    def errlog_tail(self, lines: int = 10) -> str:
        try:
            return "\n".join((self.log_dir / "errlog").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # ---- articles

    def post(self, subject: str = "test article", group: str = "local.test") -> str:
        """POST one article over NNTP (MODE READER first); return its Message-ID."""
        msgid = f"<itest.{uuid.uuid4().hex}@example.com>"
        article = (f"From: itest <itest@example.com>\r\nNewsgroups: {group}\r\nSubject: {subject}\r\n"
                   f"Message-ID: {msgid}\r\n\r\nbody of {subject}\r\n.\r\n")
        with socket.create_connection((self.host, self.port), timeout=10) as s:
            f = s.makefile("rb")

            def say(line: str) -> str:
                s.sendall(line.encode() + b"\r\n")
                return f.readline().decode().rstrip("\r\n")

            f.readline()
            say("MODE READER")
            reply = say("POST")
            if not reply.startswith("340"):
                raise RuntimeError(f"POST refused: {reply}")
            s.sendall(article.encode())
            reply = f.readline().decode().rstrip("\r\n")
            say("QUIT")
        if not reply.startswith("240"):
            raise RuntimeError(f"article {msgid} refused: {reply}")
        return msgid

    def has_article(self, msgid: str) -> bool:
        """True when ARTICLE by Message-ID returns it (220)."""
        lines = nntp_exchange(self.port, ["MODE READER", f"ARTICLE {msgid}"], host=self.host)
        return lines[2].startswith("220")

    def damaged_histories(self) -> list[Path]:
        return sorted(self.db.glob("history.damaged-*"))


def _link(pid: int, name: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/{name}")
    except OSError:
        return None
