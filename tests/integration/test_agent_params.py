"""Hostile resource parameters, issue #10 "Agents": every agent, every parameter.

A parameter comes from the CIB, so from whoever may edit it: shell
metacharacters ($(...), backticks, ;, |), spaces, newlines and relative
paths must be refused by validate-all, start and monitor alike with
OCF_ERR_CONFIGURED (or OCF_ERR_ARGS) and an exit reason naming the
parameter, and nothing may run: the canary file that the injected command
would create never appears, and no process is left behind (this process is
a child subreaper, so a daemon that double-forked would be our child).
A path that does not exist is refused by validate-all at depth 10, naming
it. Credentials files that group or others can read, or that root does not
own, are refused by every agent that takes one.

The parameter list comes from each agent's own meta-data, so a parameter
added later is covered without touching this file.  Where a kind of value
is legitimate for a parameter (spaces in a DN, a relative name where no
path is meant), the tables below say so and why.
"""

from __future__ import annotations

import os
import pwd
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import procs
from ocf import OCF, Result, agent_path, expect, expect_reason, helper_dir, no_cluster_path, run_agent

AGENTS = ("postfix", "dovecot", "slapd", "innd", "mailflow")

# Parameters whose values are paths: a relative path is refused too.
PATHS = {
    "postfix": {"binary", "config_dir", "probe_ca_file"},
    "dovecot": {"binary", "config_file", "lmtp_socket", "probe_ca_file", "credentials_file", "mail_root"},
    "slapd": {"slapd", "config", "pidfile", "bind_password_file", "probe_ca_file"},
    "innd": {"inn_conf", "inn_bin_dir", "credentials_file", "probe_ca_file"},
    "mailflow": {"credentials_file", "smtp_credentials_file", "ca_file", "postfix_queue_dir", "mail_root"},
}
# Parameters where a space is legitimate: DNs ("cn=Mail Probe,dc=...") and
# slapd's services, a space-separated list of URIs.
SPACES_ALLOWED = {
    "slapd": {"services", "suffix", "probe_uri", "bind_dn", "probe_entry", "provider_uri"},
}
# What every agent needs besides the parameter under test so that it gets as
# far as checking it: mailflow requires both (meta-data required="1").
REQUIRED = {
    "mailflow": {"credentials_file": "/nonexistent/probe.cred", "probe_address": "probe@example.com"},
}


# What makes a stop aim at nothing real: the instance-defining paths
# (None: a path below the test's temp dir that does not exist) and, for
# mailflow, no node attribute a running cluster on this host might hold.
SAFE_STOP = {
    "postfix": {"config_dir": None},
    "dovecot": {"config_file": None},
    "slapd": {"config": None, "pidfile": None},
    "innd": {"inn_conf": None},
    "mailflow": {"health_attribute": "#health-msg-test-hostile-params", "round_trip_attribute": "",
                 "deferred_attribute": "", "store_free_attribute": ""},
}
# mailflow's stop clears these attributes through attrd: a hostile name
# would reach a cluster running on this host, so stop is not run for them.
MAILFLOW_ATTRIBUTES = {"health_attribute", "round_trip_attribute", "deferred_attribute", "store_free_attribute"}


def meta_parameters(agent: str) -> list[str]:
    r = run_agent(agent_path(agent), "meta-data", {})
    expect(r, OCF.SUCCESS)
    return [p.get("name") for p in ET.fromstring(r.stdout).iter("parameter")]


def hostile_values(canary: Path) -> dict[str, str]:
    """Each would create `canary` if a shell ever evaluated it."""
    return {
        "command-substitution": f"/tmp/$(touch {canary})",
        "backticks": f"/tmp/`touch {canary}`",
        "semicolon": f"/tmp/x;touch {canary}",
        "pipe": f"/tmp/x|touch {canary}",
        "and": f"/tmp/x&&touch {canary}",
        "newline": f"/tmp/x\ntouch {canary}",
    }


def cases() -> list[tuple[str, str]]:
    return [(agent, name) for agent in AGENTS for name in meta_parameters(agent)]


def leftover_children(before: set[int]) -> list[int]:
    """Processes adopted by this subreaper since `before` and still alive: daemons an agent started."""
    return [pid for pid in procs._our_children() if pid not in before and procs.alive(pid)]


def refused(r: Result, name: str) -> None:
    """OCF_ERR_CONFIGURED (or OCF_ERR_ARGS) with a one-line exit reason that names parameter `name`."""
    __tracebackhide__ = True
    expect(r, OCF.ERR_CONFIGURED, OCF.ERR_ARGS)
    expect_reason(r, rf"^{re.escape(name)}\b")


@pytest.fixture(scope="module")
def agents_built(build_tree: Path) -> Path:
    for agent in AGENTS:
        if not os.access(agent_path(agent), os.X_OK):
            pytest.fail(f"agent {agent_path(agent)} missing or not executable", pytrace=False)
    return build_tree


@pytest.mark.parametrize("agent,name", cases())
def test_hostile_value_refused_and_nothing_runs(agents_built: Path, tmp_path: Path, agent: str, name: str) -> None:
    """validate-all refuses each hostile value; start and a recurring monitor refuse the worst two;
    stop, which checks no parameter, runs nothing either."""
    canary = tmp_path / "canary"
    values = hostile_values(canary)
    if name not in SPACES_ALLOWED.get(agent, set()):
        values["space"] = "/tmp/mail store"
    if name in PATHS[agent]:
        values["relative"] = "etc/config"
    before = set(procs._our_children())
    for label, value in values.items():
        params = {**REQUIRED.get(agent, {}), name: value}
        actions = ["validate-all"]
        if label in ("command-substitution", "newline"):
            actions += ["start", "monitor"]
        if label == "command-substitution" and name not in MAILFLOW_ATTRIBUTES:
            # stop checks no parameter (a failed stop fences the node) but
            # must not run one either, whatever it answers. Its instance is
            # a nonexistent one, never this host's default daemon.
            safe = {k: (tmp_path / "nonexistent" / k if v is None else v) for k, v in SAFE_STOP[agent].items()}
            r = run_agent(agent_path(agent), "stop", {**safe, **params}, instance="msg-test-hostile-params",
                          env_extra={"MSG_HELPER_DIR": str(helper_dir()), "PATH": no_cluster_path(tmp_path)})
            assert not canary.exists(), f"{agent} stop with {name}={value!r} ran the injected command"
            assert not leftover_children(before), r.describe()
        for action in actions:
            r = run_agent(agent_path(agent), action, params, interval_ms=10000 if action == "monitor" else 0,
                          env_extra={"MSG_HELPER_DIR": str(helper_dir())})
            assert not canary.exists(), f"{agent} {action} with {name}={value!r} ran the injected command"
            try:
                refused(r, name)
            except AssertionError as e:
                raise AssertionError(f"{agent} {action} with {name} {label} {value!r}:\n{e}") from None
            if label == "newline":
                # The whole reason on its one line: the value quoted with the newline made visible.
                assert "control characters" in r.exit_reason, r.describe()
            assert not leftover_children(before), f"{agent} {action} left {procs.describe(leftover_children(before))}"


def test_every_path_parameter_is_declared(agents_built: Path) -> None:
    """The path table above names real parameters only (a renamed one would silently lose its check)."""
    for agent in AGENTS:
        declared = set(meta_parameters(agent))
        assert PATHS[agent] <= declared, f"{agent}: {PATHS[agent] - declared} not in meta-data"
        assert SPACES_ALLOWED.get(agent, set()) <= declared


def test_ordinary_values_still_pass_the_parameter_check(agents_built: Path) -> None:
    """The check is no blanket refusal: a DN with spaces, a UTF-8 mailbox name, a hostname and an
    address pass it (validate-all fails later, on this host's missing config, not on them)."""
    ordinary = {
        "slapd": {"bind_dn": "cn=Mail Probe,dc=example,dc=com", "bind_password_file": "/nonexistent/pw",
                  "services": "ldap:/// ldapi:///"},
        "dovecot": {"probe_mailbox": "Entwürfe", "probe_host": "mail-1.example.com"},
        "mailflow": {**REQUIRED["mailflow"], "probe_address": "ha-probe+1@example.com",
                     "health_attribute": "#health-messaging"},
    }
    for agent, params in ordinary.items():
        r = run_agent(agent_path(agent), "validate-all", params, env_extra={"MSG_HELPER_DIR": str(helper_dir())})
        assert not re.search(r"must not contain|must be an absolute path", r.exit_reason or ""), r.describe()


# -- credentials files

# Agent, its parameter holding a secret, and what else it needs for
# validate-all to look at that file (slapd reads the bind password only for
# a simple bind).
SECRET_FILES = [
    ("dovecot", "credentials_file", {}),
    ("innd", "credentials_file", {}),
    ("slapd", "bind_password_file", {"bind_method": "simple", "bind_dn": "cn=probe,dc=example,dc=com"}),
    ("mailflow", "credentials_file", {"probe_address": "probe@example.com"}),
    ("mailflow", "smtp_credentials_file", {"probe_address": "probe@example.com"}),
]


def secret_file(tmp_path: Path, mode: int, owner: str = "root") -> Path:
    f = tmp_path / f"secret-{mode:o}-{owner}"
    f.write_text("probe\nS3cret pw\n")
    os.chmod(f, mode)
    pw = pwd.getpwnam(owner)
    os.chown(f, pw.pw_uid, pw.pw_gid)
    return f


@pytest.mark.parametrize("agent,name,extra", SECRET_FILES, ids=[f"{a}-{n}" for a, n, _ in SECRET_FILES])
def test_readable_credentials_file_refused(agents_built: Path, tmp_path: Path, agent: str, name: str,
                                           extra: dict) -> None:
    """Group- or world-readable, or not root's: validate-all (at depth 10, where the host is looked at)
    refuses it with OCF_ERR_CONFIGURED and a reason naming the file and never its content."""
    # mailflow's other credentials file must be a good one, so the one under test is the problem.
    good = secret_file(tmp_path, 0o600)
    base = {**extra}
    if agent == "mailflow" and name == "smtp_credentials_file":
        base["credentials_file"] = good
    for mode, owner in ((0o640, "root"), (0o604, "root"), (0o644, "root"), (0o660, "root"), (0o600, "nobody")):
        f = secret_file(tmp_path, mode, owner)
        r = run_agent(agent_path(agent), "validate-all", {**base, name: f}, check_level=10,
                      env_extra={"MSG_HELPER_DIR": str(helper_dir())})
        expect(r, OCF.ERR_CONFIGURED)
        expect_reason(r, re.escape(str(f)))
        assert "S3cret" not in r.stdout + r.stderr, r.describe()


# -- nonexistent paths

# Agent, a path parameter that must name something existing before start,
# and what else makes the agent look at it. Paths a daemon creates (slapd's
# pidfile, Dovecot's lmtp_socket) are left out: their absence is normal. So
# are mailflow's postfix_queue_dir and mail_root: mailflow may run on a node
# where the queue and the store are not mounted, and then measures nothing
# there (a warning), by design.
MUST_EXIST = [
    ("postfix", "binary", {}), ("postfix", "config_dir", {}), ("postfix", "probe_ca_file", {"probe_tls": "starttls"}),
    ("dovecot", "binary", {}), ("dovecot", "config_file", {}), ("dovecot", "credentials_file", {}),
    ("dovecot", "mail_root", {}), ("dovecot", "probe_ca_file", {"probe_tls": "starttls"}),
    ("slapd", "slapd", {}), ("slapd", "config", {}), ("slapd", "probe_ca_file", {"probe_tls": "starttls"}),
    ("slapd", "bind_password_file", {"bind_method": "simple", "bind_dn": "cn=probe,dc=example,dc=com"}),
    ("innd", "inn_conf", {}), ("innd", "inn_bin_dir", {}), ("innd", "credentials_file", {}),
    ("innd", "probe_ca_file", {"probe_tls": "starttls"}),
    ("mailflow", "credentials_file", {}), ("mailflow", "smtp_credentials_file", {}), ("mailflow", "ca_file", {}),
]


@pytest.mark.parametrize("agent,name,extra", MUST_EXIST, ids=[f"{a}-{n}" for a, n, _ in MUST_EXIST])
def test_nonexistent_path_refused_with_its_name(agents_built: Path, tmp_path: Path, agent: str, name: str,
                                                extra: dict) -> None:
    """validate-all at depth 10 (where the host is looked at) refuses a path that does not exist,
    naming it: OCF_ERR_CONFIGURED, or OCF_ERR_INSTALLED where the same CIB is right on a node whose
    shared storage is mounted (OCF_ERR_CONFIGURED would stop the resource on every node)."""
    missing = tmp_path / "nonexistent" / name
    base = {**extra}
    if agent == "mailflow":
        base = {"probe_address": "probe@example.com", "credentials_file": secret_file(tmp_path, 0o600)}
    before = set(procs._our_children())
    r = run_agent(agent_path(agent), "validate-all", {**base, name: missing}, check_level=10,
                  env_extra={"MSG_HELPER_DIR": str(helper_dir())})
    expect(r, OCF.ERR_CONFIGURED, OCF.ERR_INSTALLED)
    expect_reason(r, re.escape(str(missing)))
    assert not leftover_children(before), r.describe()
