"""cib-templates/render: every rendering loads offline and crm_verify is clean.

No cluster is needed: each rendering is loaded into an empty CIB file the
way an operator loads it into a live one (crm configure load update, the
pcs -f script, the XML as is), then checked with crm_verify -V -x.  The
three resulting configurations must be the same once the ids the tools
choose are set aside; every rendered agent parameter must exist in that
agent's meta-data; bad values exit 2 with the key in the message.

crm and pcs look agents up through crm_resource, which only searches
/usr/lib/ocf/resource.d.  So loads run in a private mount namespace
(unshare) where the build tree's agents are bound there as "messaging";
nothing is installed and the host's mounts are never touched.

Run: MSG_BUILD_DIR=build /usr/bin/python3 -m pytest tests/cib (as root, for
unshare).  CTest runs it as test cib_templates.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cib_checks import (AGENT_SETS, COMMAND_TIMEOUT, MESSAGING_AGENTS, OCF_ROOT, README, RENDER, TEST_FENCE,
                        cib_xml, render, render_with)

# What a three-node test harness passes: a bind-mounted shared directory,
# a private 10.x address, high ports, its own paths.
TEST_VALUES = {
    "nodes": "node1 node2 node3",
    "fence_agent": TEST_FENCE,
    "fence.pcmk_reboot_timeout": "90s",
    "store.device": "/var/tmp/msg-cluster/store",
    "store.directory": "/srv/messaging",
    "store.fstype": "none",
    "store.options": "bind",
    "vip.ip": "10.251.0.100",
    "vip.cidr_netmask": "24",
    "vip.nic": "eth0",
    "slapd.services": "ldap://10.251.0.100:20389/",
    "slapd.probe_uri": "ldap://10.251.0.100:20389/",
    "slapd.suffix": "dc=example,dc=com",
    "slapd.bind_password_file": "/srv/messaging/slapd/monitor.pw",
    "dovecot.imap_port": "20143",
    "dovecot.lmtp_port": "20024",
    "dovecot.credentials_file": "/srv/messaging/dovecot/probe.cred",
    "postfix-internal.probe_port": "20025",
    "postfix-gateway.probe_port": "20026",
    "postfix-gateway.probe_recipient": "alice@example.com",
    "innd.port": "20119",
    "innd.probe_group": "local.probe",
    "mailflow.probe_address": "alice@example.com",
    "mailflow.credentials_file": "/srv/messaging/dovecot/probe.cred",
    "slapd.monitor-10-interval": "5s",
    "slapd.migration-threshold": "2",
    "postfix-gateway.failure-timeout": "2min",
    "mailflow.monitor-0-interval": "30s",
    "resource_stickiness": "200",
}
# The production defaults need only a fence device, which is site-specific.
DEFAULT_VALUES = {"fence_agent": TEST_FENCE, "nodes": "node1 node2 node3"}
VALUE_SETS = {"test": TEST_VALUES, "defaults": DEFAULT_VALUES}
FORMATS = ("crm", "pcs", "xml")


def require_agents() -> None:
    # A missing build is a failure, not a skip: the parameter check below
    # would otherwise check nothing.
    assert (MESSAGING_AGENTS / "postfix").is_file(), f"no built agents in {MESSAGING_AGENTS} (build first)"


# The mount namespace: /usr/lib/ocf/resource.d replaced, inside it only, by a
# directory holding the host's providers plus the build tree's messaging.
_NS_SCRIPT = r"""
t=$1; agents=$2; shift 2
for p in /usr/lib/ocf/resource.d/*; do
    mkdir "$t/${p##*/}"; mount --bind "$p" "$t/${p##*/}"
done
mkdir "$t/messaging"; mount --bind "$agents" "$t/messaging"
chmod 755 "$t"; mount --rbind "$t" /usr/lib/ocf/resource.d
exec "$@"
"""


def run_with_agents(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    require_agents()
    with tempfile.TemporaryDirectory(prefix="cib-ocf-") as t:
        return subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-ec", _NS_SCRIPT, "sh", t,
             str(MESSAGING_AGENTS), *argv],
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT, env={**os.environ, **(env or {})})


def empty_cib(path: Path) -> None:
    path.write_text(subprocess.run(["cibadmin", "--empty"], capture_output=True, text=True,
                                   check=True).stdout)


def load(fmt: str, text: str, workdir: Path) -> Path:
    """The rendering loaded into a fresh CIB file, as an operator would load it."""
    workdir.mkdir(parents=True, exist_ok=True)
    cib = workdir / "cib.xml"
    script = workdir / f"stack.{fmt}"
    script.write_text(text)
    if fmt == "xml":
        # What cibadmin --replace would install: the file itself.
        shutil.copy(script, cib)
        return cib
    empty_cib(cib)
    if fmt == "crm":
        r = run_with_agents(["crm", "configure", "load", "update", str(script)], env={"CIB_file": str(cib)})
    else:
        r = run_with_agents(["sh", str(script)], env={"CIB": str(cib)})
    assert r.returncode == 0, f"{fmt} load failed (rc {r.returncode}):\n{r.stdout}\n{r.stderr}"
    assert not re.search(r"^(ERROR|Error)", r.stdout + r.stderr, re.M), r.stdout + r.stderr
    return cib


def crm_verify(cib: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["crm_verify", "-V", "-x", str(cib)], capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT)


_loads: dict[tuple[str, str, str], Path] = {}


@pytest.fixture(scope="session")
def loaded(tmp_path_factory):
    """loaded(fmt, agents, value_set): the loaded CIB; each rendering is loaded once per run."""
    def load_once(fmt: str, agents: str, value_set: str) -> Path:
        key = (fmt, agents, value_set)
        if key not in _loads:
            text = render_with(VALUE_SETS[value_set], fmt, agents)
            _loads[key] = load(fmt, text, tmp_path_factory.mktemp(f"{fmt}-{agents}-{value_set}"))
        return _loads[key]
    return load_once


def _nvpairs(parent: ET.Element | None, tag: str) -> tuple:
    if parent is None:
        return ()
    return tuple(sorted((nv.get("name"), nv.get("value"))
                        for s in parent.findall(tag) for nv in s.findall("nvpair")))


def normalised(cib: Path) -> dict:
    """The configuration without the ids and element order each tool picks."""
    conf = ET.parse(cib).getroot().find("configuration")
    assert conf is not None
    prims = {}
    for p in conf.iter("primitive"):
        ops = sorted((op.get("name"), op.get("interval"), op.get("timeout"), op.get("on-fail"),
                      _nvpairs(op, "instance_attributes")) for op in p.iter("op"))
        prims[p.get("id")] = {
            "agent": (p.get("class"), p.get("provider"), p.get("type")),
            "params": _nvpairs(p, "instance_attributes"), "meta": _nvpairs(p, "meta_attributes"),
            "ops": ops}
    cons = {}
    for c in conf.find("constraints") or []:
        cons[c.get("id")] = (c.tag, tuple(sorted((k, v) for k, v in c.attrib.items() if k != "id")))
    return {"properties": _nvpairs(conf.find("crm_config"), "cluster_property_set"),
            "rsc_defaults": _nvpairs(conf.find("rsc_defaults"), "meta_attributes"),
            "primitives": prims, "constraints": cons}


# ---------------------------------------------------------------------------

@pytest.mark.parametrize("value_set", VALUE_SETS)
@pytest.mark.parametrize("agents", AGENT_SETS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_rendering_loads_and_crm_verify_is_clean(loaded, fmt, agents, value_set):
    cib = loaded(fmt, agents, value_set)
    r = crm_verify(cib)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", \
        f"crm_verify -V -x {cib}: rc {r.returncode}\n{r.stdout}{r.stderr}"
    assert len(normalised(cib)["primitives"]) == (9 if agents == "messaging" else 7)


@pytest.mark.parametrize("value_set", VALUE_SETS)
@pytest.mark.parametrize("agents", AGENT_SETS)
def test_crm_pcs_and_xml_give_the_same_configuration(loaded, agents, value_set):
    want = normalised(loaded("xml", agents, value_set))
    for fmt in ("crm", "pcs"):
        got = normalised(loaded(fmt, agents, value_set))
        for part in want:
            assert got[part] == want[part], f"{fmt} differs from xml in {part}"


def test_test_values_reach_the_configuration(loaded):
    conf = normalised(loaded("xml", "messaging", "test"))
    prims = conf["primitives"]
    assert ("fstype", "none") in prims["store"]["params"] and ("options", "bind") in prims["store"]["params"]
    assert ("ip", "10.251.0.100") in prims["vip"]["params"]
    # Node-specific settings follow the VIP: every probe and bind address is it.
    for rid, param in (("dovecot", "probe_host"), ("postfix-internal", "bind_address"),
                       ("postfix-gateway", "probe_host"), ("innd", "probe_host"), ("mailflow", "smtp_host"),
                       ("mailflow", "imap_host")):
        assert (param, "10.251.0.100") in prims[rid]["params"], (rid, param)
    # A key refers to another: mailflow submits to the gateway and reads dovecot's IMAP port.
    assert ("smtp_port", "20026") in prims["mailflow"]["params"]
    assert ("imap_port", "20143") in prims["mailflow"]["params"]
    assert ("migration-threshold", "2") in prims["slapd"]["meta"]
    assert ("failure-timeout", "2min") in prims["postfix-gateway"]["meta"]
    assert ("monitor", "5s", "20s", None, (("OCF_CHECK_LEVEL", "10"),)) in prims["slapd"]["ops"]
    assert ("pcmk_reboot_timeout", "90s") in prims["fence"]["params"]
    assert ("pcmk_host_list", "node1 node2 node3") in prims["fence"]["params"]
    assert ("resource-stickiness", "200") in conf["rsc_defaults"]


def test_every_store_defaults_under_the_mount_point(loaded):
    conf = normalised(loaded("xml", "messaging", "defaults"))
    mount = dict(conf["primitives"]["store"]["params"])["directory"]
    paths = [(rid, k, v) for rid, p in conf["primitives"].items() if rid != "store"
             for k, v in p["params"] if v.startswith("/")]
    assert {rid for rid, _, _ in paths} >= {"slapd", "dovecot", "postfix-internal", "postfix-gateway",
                                            "innd", "mailflow"}
    for rid, k, v in paths:
        assert v.startswith(mount + "/"), f"{rid}.{k}={v} is not on the store {mount}"


def test_the_stack_structure(loaded):
    conf = normalised(loaded("xml", "messaging", "defaults"))
    props = dict(conf["properties"])
    assert props["stonith-enabled"] == "true" and props["no-quorum-policy"] == "stop"
    assert props["node-health-strategy"] == "migrate-on-red"
    cons = {cid: dict(attrs) for cid, (_, attrs) in conf["constraints"].items()}
    # Every service with the IP, the IP with the store.
    colocated = {(c["rsc"], c["with-rsc"]) for c in cons.values() if "with-rsc" in c}
    apps = ["slapd", "dovecot", "postfix-internal", "postfix-gateway", "innd", "mailflow"]
    assert colocated == {("vip", "store")} | {(a, "vip") for a in apps}
    assert all(c["score"] == "INFINITY" for c in cons.values() if "with-rsc" in c)
    # Store, then IP (hard), then the services in order (optional between
    # services, so one restarting alone does not restart those after it).
    orders = {(c["first"], c["then"]): c["kind"] for c in cons.values() if "first" in c}
    assert orders[("store", "vip")] == "Mandatory"
    assert all(orders[("vip", a)] == "Mandatory" for a in apps)
    chain = list(zip(apps, apps[1:]))
    assert all(orders[pair] == "Optional" for pair in chain)
    # The news server starts in its place, but the transport's stop does not
    # wait for it; the attendant keeps stopping before the transport.
    asymmetric = {(c["first"], c["then"]) for c in cons.values() if c.get("symmetrical") == "false"}
    assert asymmetric == {("postfix-gateway", "innd")}
    assert orders[("postfix-gateway", "mailflow")] == "Optional"
    prims = conf["primitives"]
    for rid, p in prims.items():
        meta = dict(p["meta"])
        if rid != "fence":
            assert meta["migration-threshold"] == "3" and meta["failure-timeout"] == "10min", rid
    # News and the attendant do not drag the stack; the attendant runs on a red node.
    for rid in ("innd", "mailflow"):
        assert dict(prims[rid]["meta"])["critical"] == "false"
    for rid in ("store", "vip", "slapd", "dovecot", "postfix-internal", "postfix-gateway"):
        assert "critical" not in dict(prims[rid]["meta"]), rid
    assert dict(prims["mailflow"]["meta"])["allow-unhealthy-nodes"] == "true"
    assert [op[3] for op in prims["mailflow"]["ops"] if op[0] == "monitor"] == ["ignore"]
    # Two monitors at check levels 10 and 20, at different intervals.
    for rid in ("store", "slapd", "dovecot", "postfix-internal", "postfix-gateway", "innd"):
        monitors = [op for op in prims[rid]["ops"] if op[0] == "monitor"]
        assert sorted(dict(op[4])["OCF_CHECK_LEVEL"] for op in monitors) == ["10", "20"], rid
        assert len({op[1] for op in monitors}) == 2, rid


def _meta_data(agent: tuple[str, str, str]) -> ET.Element:
    cls, provider, typ = agent
    assert cls == "ocf"
    path = (MESSAGING_AGENTS if provider == "messaging" else OCF_ROOT / "resource.d" / provider) / typ
    r = subprocess.run([str(path), "meta-data"], capture_output=True, text=True, check=True,
                       env={**os.environ, "OCF_ROOT": str(OCF_ROOT)}, timeout=60)
    return ET.fromstring(r.stdout)


def _seconds(d: str) -> float:
    m = re.fullmatch(r"([0-9]+)(ms|s|min|m|h)?", d)
    assert m, d
    return int(m.group(1)) * {"ms": 0.001, None: 1, "s": 1, "m": 60, "min": 60, "h": 3600}[m.group(2)]


def _renderer():
    """The renderer as a module, for its key table and checks."""
    loader = importlib.machinery.SourceFileLoader("cib_render", str(RENDER))
    module = types.ModuleType(loader.name)
    sys.modules[loader.name] = module  # dataclasses look their module up there
    loader.exec_module(module)
    return module


def _all_keys_values() -> dict[str, str]:
    """A valid value for every key, so that every parameter the renderer can render is rendered."""
    r = _renderer()
    out = {}
    for key in r.KEYS.values():
        for candidate in ("/srv/messaging/x", "10.251.0.7", "2", "true", "tls", "30s", "#health-messaging",
                          "fence_watchdog", "ldap:///", "migrate-on-red", "text"):
            try:
                key.check(key.name, candidate)
            except r.RenderError:
                continue
            out[key.name] = candidate
            break
        else:
            pytest.fail(f"no test value for {key.name}")
    return out


@pytest.mark.parametrize("agents", AGENT_SETS)
def test_every_rendered_parameter_exists_in_the_agents_meta_data(agents):
    require_agents()
    values = _all_keys_values()
    # Different intervals per monitor and a node list for the fence device.
    for k in list(values):
        depth = re.search(r"monitor-([0-9]+)-interval$", k)
        if depth:
            values[k] = f"{int(depth.group(1)) + 5}s"
    values["nodes"] = values["fence.pcmk_host_list"] = "node1 node2"
    cib = cib_xml(render_with(values, "xml", agents))
    checked = 0
    for p in cib.iter("primitive"):
        if p.get("class") != "ocf":
            continue
        md = _meta_data((p.get("class"), p.get("provider"), p.get("type")))
        known = {e.get("name") for e in md.iter("parameter")}
        for nv in p.find("instance_attributes").findall("nvpair"):
            assert nv.get("name") in known, f"{p.get('id')}: {nv.get('name')} not in {p.get('type')} meta-data"
            checked += 1
    assert checked > 80 if agents == "messaging" else checked > 20


@pytest.mark.parametrize("agents", AGENT_SETS)
def test_default_timeouts_are_at_least_the_agents_advice(agents):
    require_agents()
    cib = cib_xml(render_with(DEFAULT_VALUES, "xml", agents))
    for p in cib.iter("primitive"):
        if p.get("class") != "ocf":
            continue
        advice = {}
        for a in _meta_data((p.get("class"), p.get("provider"), p.get("type"))).iter("action"):
            advice[(a.get("name"), a.get("depth", "0"))] = _seconds(a.get("timeout"))
        for op in p.iter("op"):
            depth = op.find(".//nvpair[@name='OCF_CHECK_LEVEL']")
            key = (op.get("name"), depth.get("value") if depth is not None else "0")
            if p.get("provider") == "heartbeat" and key not in advice:
                # Filesystem documents depths 10 and 20 in its longdesc only.
                key = (op.get("name"), "0")
            assert key in advice, f"{p.get('id')}: {key} is not an action of {p.get('type')}"
            assert _seconds(op.get("timeout")) >= advice[key], f"{p.get('id')} {key}: timeout below meta-data"


def test_stock_agents_leave_out_what_has_no_stock_agent():
    out = render_with(DEFAULT_VALUES, "crm", "stock")
    assert "ocf:heartbeat:slapd" in out and "ocf:heartbeat:dovecot" in out and "ocf:heartbeat:postfix" in out
    assert "ocf:messaging:" not in out
    assert "innd: no stock agent exists" in out and "mailflow: no stock agent exists" in out


def test_without_a_fence_device_stonith_stays_on_and_crm_verify_says_so():
    out = render("--format", "xml").stdout
    assert "No fence device rendered" in out
    with tempfile.TemporaryDirectory() as d:
        cib = Path(d) / "cib.xml"
        cib.write_text(out)
        r = crm_verify(cib)
    assert r.returncode != 0
    assert "Resource start-up disabled since no STONITH resources have been defined" in r.stderr
    assert 'name="stonith-enabled" value="true"' in out


@pytest.mark.parametrize("args, message", [
    (["--set", "no_such_key=1"], "unknown key 'no_such_key'"),
    (["--set", "vip.ip=not-an-ip"], "vip.ip: not an IP address"),
    (["--set", "vip.ip=10.0.0.300"], "vip.ip: not an IP address"),
    (["--set", "dovecot.config_file=etc/dovecot.conf"], "dovecot.config_file: not an absolute path"),
    (["--set", "store.directory=srv"], "store.directory: not an absolute path"),
    (["--set", "postfix-gateway.probe_port=70000"], "postfix-gateway.probe_port: not a TCP port"),
    (["--set", "slapd.monitor-10-timeout=soon"], "slapd.monitor-10-timeout: not a duration"),
    (["--set", "slapd.monitor-20-interval=30s"], "slapd: the monitors need different intervals"),
    (["--set", "vip.ip="], "vip.ip: must not be empty"),
    (["--set", "slapd.suffix=dc=\"x\""], "slapd.suffix: quotes"),
    (["--set", "mailflow.health_attribute=messaging"], "mailflow.health_attribute: node-health-strategy"),
    (["--set", "fence_agent=ipmi"], "fence_agent: not a fence agent name"),
    (["--set", "vip.ip={vip.nic}", "--set", "vip.nic={vip.ip}"], "refers to itself"),
    (["--set", "vip.ip={nope}"], "refers to unknown key {nope}"),
    (["--set", "novalue"], "not key=value"),
])
def test_bad_values_exit_2_with_a_reason(args, message):
    r = render("--format", "crm", *args, check=False)
    assert r.returncode == 2, r
    assert r.stdout == ""
    assert r.stderr.startswith("render: ") and message in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_values_files_key_value_and_json(tmp_path):
    kv = tmp_path / "values"
    kv.write_text("# test\nvip.ip = 10.251.0.9\nstore.fstype=none\n")
    js = tmp_path / "values.json"
    js.write_text(json.dumps({"dovecot": {"imap_port": 20143}, "store.options": "bind"}))
    out = render("--format", "crm", "--values", str(kv), "--values", str(js), "--set", "vip.cidr_netmask=16").stdout
    assert "ip=10.251.0.9 cidr_netmask=16" in out
    assert "fstype=none options=bind" in out and "imap_port=20143" in out
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = render("--format", "crm", "--values", str(bad), check=False)
    assert r.returncode == 2 and "bad JSON" in r.stderr
    r = render("--format", "crm", "--values", str(tmp_path / "missing"), check=False)
    assert r.returncode == 2 and "No such file" in r.stderr


def test_readme_documents_every_key_with_its_default():
    table = render("--list-keys").stdout
    assert table.count("\n") > 150
    assert table in README.read_text(), "README.md's key table is not `render --list-keys` (regenerate it)"
