#!/usr/bin/python3
"""The cluster part of scripts/demo: ocf:messaging:postfix under real Pacemaker.

A single-node Corosync + Pacemaker (cluster.py) runs one Postfix instance
as a cluster resource; we send a mail, kill -9 the Postfix master, and
watch Pacemaker detect the failure and restart Postfix in place.

Everything lives below /var/tmp/msg-demo and is removed at the end, also
after a failure or Ctrl-C (logs of a failed run are kept in
/var/tmp/msg-demo/failed-run/).  A run that was killed outright leaves
state that the next run finds and removes first.  The pack itself must be
installed (scripts/demo does that); --agent ocf:heartbeat:postfix runs the
same scenario with the stock agent, for comparison.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "integration"))

from cluster import Cluster, ClusterError, alive, environ  # noqa: E402
import postfix_instance as pfi  # noqa: E402
from postfix_instance import PostfixInstance, free_port  # noqa: E402

DEMO_BASE = Path("/var/tmp/msg-demo")
RSC = "mta"
T0 = time.monotonic()


def say(msg: str = "") -> None:
    try:
        print(msg, flush=True)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): carry on silently, so the
        # teardown still runs to the end.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def step(title: str) -> None:
    say(f"\n==> [{time.monotonic() - T0:5.1f}s] {title}")


def indent(text: str) -> str:
    return textwrap.indent(text.rstrip(), "    ")


class DemoError(Exception):
    pass


def unregister_leftover(config_dir: Path) -> None:
    """Remove config_dir from the default main.cf's alternate_config_directories.

    Only for the demo's own fixed path, left registered by a run that was
    killed before it could undo it.  Uses postfix_instance's lock and parser,
    so concurrent test runs registering their own dirs are not disturbed."""
    entry = str(config_dir)
    with pfi._locked(pfi.MAIN_CF_LOCK):
        text = pfi.DEFAULT_MAIN_CF.read_text()
        groups = pfi._split_logical(text.splitlines(keepends=True))
        out, changed = [], False
        for g in groups:
            if pfi._ACD_RE.match(g[0]) and entry in pfi._acd_tokens(g):
                toks = [t for t in pfi._acd_tokens(g) if t != entry]
                changed = True
                if toks:
                    out.append([f"{pfi._ACD} = {' '.join(toks)}\n"])
                continue
            out.append(g)
        if changed:
            pfi._replace_file(pfi.DEFAULT_MAIN_CF, "".join("".join(g) for g in out))
            say(f"    removed a leftover {pfi._ACD} entry {entry} from {pfi.DEFAULT_MAIN_CF}")


def clean_leftovers(cluster: Cluster, inst: PostfixInstance) -> None:
    if cluster.is_ours():
        cluster.destroy()
    if inst.config_dir.exists():
        left = inst.processes()
        if left:
            say(f"    killing Postfix processes of a previous demo run: {left}")
            inst.kill_all()
    unregister_leftover(inst.config_dir)
    for d in (DEMO_BASE / "postfix", DEMO_BASE / "failed-run"):
        shutil.rmtree(d, ignore_errors=True)


def failures(c: Cluster) -> list[ET.Element]:
    x = c.crm_mon_xml()
    return [] if x is None else list(x.iterfind("./failures/failure"))


def resource_state(c: Cluster) -> tuple[str, bool]:
    """(role, failed) of our resource as crm_mon sees it."""
    x = c.crm_mon_xml()
    if x is None:
        return "unknown", False
    r = x.find(f".//resources/resource[@id='{RSC}']")
    if r is None:
        return "absent", False
    return r.get("role", "?"), r.get("failed") == "true"


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def plain(text: str) -> str:
    """Tool output without terminal colours (crmsh colours warnings regardless of -D plain)."""
    return ANSI.sub("", text)


def crm_mon(c: Cluster, *extra: str) -> str:
    r = c.run(["crm_mon", "-1", *extra], timeout=20)
    return plain(r.stdout if r.returncode == 0 else r.stdout + r.stderr)


def log_timeline(c: Cluster, since: str) -> str:
    """Pacemaker's own log lines about our resource, from `since` (HH:MM:SS) on."""
    keep = re.compile(r"(Result of (monitor|start|stop|probe) operation for " + RSC +
                      r"|Actions: +(Recover|Restart|Start|Stop) +" + RSC +
                      r"|Setting fail-count-" + RSC + r"|Unexpected result .* " + RSC + ")")
    # The recurring monitors Pacemaker cancels before the stop are noise here.
    skip = re.compile(r": Cancelled$")
    lines: list[str] = []
    for line in (c.node().dir / "pacemaker.log").read_text(errors="replace").splitlines():
        m = re.match(r"\w{3} +\d+ (\d\d:\d\d:\d\d)(\.\d+)? \S+ (pacemaker-\w+)\s*\[\d+\] \(\S+\)\s+\w+: (.*)",
                     line)
        if m and m.group(1) >= since and keep.search(m.group(4)):
            msg = re.sub(r"\s*\|.*$", "", m.group(4))  # drop the details after '|'
            if skip.search(msg):
                continue
            msg = re.sub(r"\s{2,}", " ", msg)
            entry = f"{m.group(1)}{m.group(2) or ''} {m.group(3):<21} {msg}"
            if all(prev[13:] != entry[13:] for prev in lines[-3:]):  # the scheduler logs some twice
                lines.append(entry)
    return "\n".join(lines) or "(no matching lines)"


def wait_for(what: str, cond, timeout: float, interval: float = 0.2):
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def scenario(c: Cluster, inst: PostfixInstance, agent: str) -> None:
    step("Single-node cluster: Corosync (knet on 127.0.0.1, token 1000 ms) + Pacemaker")
    took = c.start()
    say(f"    node1 online {took:.1f}s after start; state and logs in {c.base}")

    ours = agent == "ocf:messaging:postfix"
    step(f"Configure the resource: {agent}")
    if ours:
        params = (f"config_dir={inst.config_dir} probe_host=127.0.0.1 probe_port={inst.smtp_port}")
        ops = ("op start timeout=60s interval=0s op stop timeout=60s interval=0s "
               "op monitor interval=5s timeout=20s OCF_CHECK_LEVEL=0 "
               "op monitor interval=10s timeout=30s OCF_CHECK_LEVEL=10")
    else:
        params = f"config_dir={inst.config_dir}"
        ops = "op monitor interval=5s timeout=20s"
    conf = f"primitive {RSC} {agent} params {params} {ops}"
    say(indent("crm configure " + " \\\n    ".join(re.split(r" (?=op |params )", conf))))
    r = c.run(["crm", "-D", "plain", "configure", *conf.split()], timeout=60)
    if r.stdout.strip() or r.stderr.strip():
        say(indent(plain(r.stdout + r.stderr).strip()))
        if "Blind faith" in r.stdout + r.stderr:
            say("    (expected here: this one-node demo cluster runs without fencing, stonith-enabled=false)")
    if r.returncode != 0:
        raise DemoError(f"crm configure failed (exit {r.returncode})")

    step("Wait for Pacemaker to probe and start it")
    t = time.monotonic()

    def started() -> bool:
        for f in failures(c):
            if f.get("task") == "start" and f.get("op_key", "").startswith(RSC + "_"):
                say(indent(crm_mon(c)))
                raise DemoError(f"Pacemaker could not start {RSC}: {f.get('exitstatus')} "
                                f"({f.get('exitcode')}): {f.get('exitreason') or 'no reason given'}")
        return resource_state(c) == ("Started", False)

    wait_for(f"{RSC} to be Started", started, 90)
    c.run(["crm_resource", "--wait", "--timeout=60s"], timeout=70)
    say(f"    started in {time.monotonic() - t:.1f}s; master pid {inst.master_pid()}")
    say(indent(crm_mon(c)))

    step(f"Send a mail through it (SMTP 127.0.0.1:{inst.smtp_port})")
    subject, (code, text) = inst.send_mail()
    say(f"    DATA answered: {code} {text.decode(errors='replace')}")
    wait_for("delivery", lambda: any(subject in m for m in inst.delivered()), 20, 0.1)
    say(f"    delivered to {inst.mail_dir}/example.com/user/new/ (subject {subject})")

    step("kill -9 the Postfix master (what a crash or the OOM killer does)")
    old = inst.master_pid()
    if not old:
        raise DemoError("no Postfix master to kill")
    since = time.strftime("%H:%M:%S")
    t_kill = time.monotonic()
    os.kill(old, signal.SIGKILL)
    say(f"    {time.strftime('%H:%M:%S')} SIGKILL to master pid {old}")
    t_fail = t_smtp = None
    shown_failure = False
    while time.monotonic() - t_kill < 60:
        now = time.monotonic()
        if t_fail is None and failures(c):
            t_fail = now
            say(f"    +{t_fail - t_kill:.1f}s Pacemaker records the failed monitor:")
            say(indent(crm_mon(c)))
            shown_failure = True
        new = inst.master_pid()
        if t_smtp is None and new and new != old and inst.smtp_answers(timeout=1.0):
            t_smtp = now
            say(f"    +{t_smtp - t_kill:.1f}s SMTP answers again (new master pid {new})")
        if t_fail is not None and t_smtp is not None:
            break
        time.sleep(0.1)
    if t_smtp is None:
        raise DemoError("Postfix did not come back within 60s")
    if not shown_failure:
        say("    (Postfix came back before any failure was recorded)")

    step("Pacemaker's log: detection and restart in place")
    c.run(["crm_resource", "--wait", "--timeout=60s"], timeout=70)
    say(indent(log_timeline(c, since)))
    say(indent(crm_mon(c, "--include=failcounts")))
    say(f"    kill -9 -> failure recorded: {t_fail - t_kill:.1f}s" if t_fail else
        "    kill -9 -> failure recorded: (not seen)")
    say(f"    kill -9 -> SMTP answering again: {t_smtp - t_kill:.1f}s "
        f"(level-0 monitor interval 5s bounds the detection time)")

    step("A second mail after the recovery")
    subject, (code, text) = inst.send_mail()
    say(f"    DATA answered: {code} {text.decode(errors='replace')}")
    wait_for("delivery", lambda: any(subject in m for m in inst.delivered()), 20, 0.1)
    say(f"    delivered; {len(inst.delivered())} mails in the mailbox")


def teardown(c: Cluster, inst: PostfixInstance, failed: bool) -> None:
    """Every step runs even if an earlier one fails; the first error is re-raised at the end."""
    step("Tear down: resource stop, cluster stop, Postfix instance removal")
    errors: list[BaseException] = []

    def attempt(what: str, fn) -> None:
        try:
            fn()
        except Exception as e:  # keep tearing down
            say(f"    {what} failed: {e}")
            errors.append(e)

    def stop_resource() -> None:
        if not c.is_running():
            return
        r = c.run(["crm", "-D", "plain", "resource", "stop", RSC], timeout=30)
        if r.returncode == 0:
            c.run(["crm_resource", "--wait", "--timeout=60s"], timeout=70)
            say(f"    crm resource stop {RSC}: {resource_state(c)[0]}")

    def kill_postfix() -> None:
        left = inst.processes() if inst.config_dir.exists() else []
        if left:
            say(f"    WARNING: Postfix processes left after the cluster stopped: {left}; killing them")
            inst.kill_all()

    def keep_logs() -> None:
        keep = DEMO_BASE / "failed-run"
        keep.mkdir(parents=True, exist_ok=True)
        for f in (c.node().dir / "pacemaker.log", c.node().dir / "corosync.log",
                  c.node().dir / "init.log", inst.maillog):
            if f.exists():
                shutil.copy2(f, keep / f.name)
        say(f"    logs of this failed run kept in {keep}")

    attempt("resource stop", stop_resource)
    attempt("cluster stop", c.stop)
    attempt("Postfix cleanup", kill_postfix)
    if failed:
        attempt("keeping logs", keep_logs)
    attempt("cluster state removal", c.destroy)
    attempt("instance removal", lambda: shutil.rmtree(inst.base_dir, ignore_errors=True))
    if errors:
        raise errors[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", default="ocf:messaging:postfix",
                    choices=["ocf:messaging:postfix", "ocf:heartbeat:postfix"])
    a = ap.parse_args()
    if os.geteuid() != 0:
        say("demo: must run as root")
        return 2
    # SIGTERM and SIGHUP tear down like Ctrl-C does.
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, lambda n, _f: sys.exit(128 + n))

    DEMO_BASE.mkdir(mode=0o755, exist_ok=True)
    DEMO_BASE.chmod(0o755)  # Postfix's unprivileged daemons must traverse it
    c = Cluster(DEMO_BASE / "cluster")
    inst = PostfixInstance(DEMO_BASE / "postfix", free_port())
    step("Remove leftovers of an earlier run, if any")
    clean_leftovers(c, inst)

    step(f"Create a Postfix instance: {inst.config_dir}, SMTP on 127.0.0.1:{inst.smtp_port}")
    failed = True
    try:
        with inst.register_alternate():
            say(f"    listed in alternate_config_directories of {pfi.DEFAULT_MAIN_CF} while the demo runs")
            inst.create()
            say("    main.cf, master.cf (chroot = n), queue created by `postfix check`; not started: "
                "Pacemaker starts it")
            try:
                scenario(c, inst, a.agent)
                failed = False
            finally:
                teardown(c, inst, failed)
    except (DemoError, ClusterError, RuntimeError) as e:
        say(f"\nDEMO FAILED: {e}")
        return 1
    except KeyboardInterrupt:
        say("\ninterrupted: torn down")
        return 130
    try:
        DEMO_BASE.rmdir()
    except OSError:
        pass
    left = list(inst.processes()) + [
        int(p) for p in os.listdir("/proc") if p.isdigit() and alive(int(p))
        and environ(int(p)).get("MSG_CLUSTER_BASE") == str(c.base)]
    if left:
        say(f"\nDEMO FAILED: processes left behind: {sorted(set(left))}")
        return 1
    say(f"\ndemo finished in {time.monotonic() - T0:.0f}s; no process of the demo is left")
    return 0


if __name__ == "__main__":
    sys.exit(main())
