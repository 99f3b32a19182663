"""ocf:messaging:mailflow against a real mail stack and a real Pacemaker, issue #6 "Tests".

The stack is real Postfix delivering over LMTP into real Dovecot
(mail_stack.MailStack, built from the instances the single-service tests
use); the node attributes are read back from a real one-node Pacemaker
(cluster_slot.one_node_cluster, which waits for the host's single cluster
slot and only ever stops the cluster it started).  Each fault is one that
the single-service level-10 monitors (the build-tree ocf:messaging:postfix
and ocf:messaging:dovecot) do not see: they are run and must pass while
mailflow fails with the stage named and paints the node red.

Every test gets its own Postfix and Dovecot instances (torn down by PID by
the conftest fixtures, also after a failure) and its own mailflow resource
instance, stopped at teardown so that no state file stays behind.
"""

from __future__ import annotations

import os
import re
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Iterator

import pytest

import procs
from cluster_slot import Cluster, attrd_value, cib_node_attribute, one_node_cluster, run
from mail_stack import MailStack, SlowLmtpProxy
from ocf import OCF, AgentResource, Result, agent_path, expect, expect_reason, helper_dir, run_agent, wait_for
from postfix_instance import free_port

MONITOR_MS = 40000
# Long enough for a healthy round trip on a busy host, short enough that the
# failure tests (which wait it out) stay quick.
FAIL_MAX_DELAY_S = 8
HEALTH = "#health-messaging"
ROUND_TRIP = "messaging-round-trip-ms"
DEFERRED = "messaging-deferred"
STORE_FREE = "messaging-store-free-percent"
NOT_DELIVERED = r"not delivered within \d+ ms"


@pytest.fixture(scope="module")
def mailflow_agent(build_tree: Path) -> Path:
    """The build-tree agent, after checking that msg-probe knows the mailflow round trip."""
    agent = agent_path("mailflow")
    if not os.access(agent, os.X_OK):
        pytest.fail(f"agent {agent} missing or not executable", pytrace=False)
    r = procs.run([str(helper_dir() / "msg-probe"), "mailflow", "--help"])
    if r.returncode != 0:
        pytest.fail(f"msg-probe has no mailflow subcommand: {r.stderr.strip()}", pytrace=False)
    return agent


@pytest.fixture(scope="module")
def cluster(mailflow_agent: Path) -> Iterator[Cluster]:
    """A real one-node Pacemaker for the attribute tests, started once for this module."""
    with one_node_cluster() as c:
        yield c


MakeStack = Callable[..., MailStack]


@pytest.fixture
def make_stack(make_postfix, make_dovecot) -> MakeStack:
    """Factory: make_stack(mail_tmpfs_mib=None) -> a started MailStack (Postfix -> LMTP socket -> Dovecot)."""

    def make(mail_tmpfs_mib: int | None = None) -> MailStack:
        stack = MailStack(make_postfix(), make_dovecot(mail_tmpfs_mib=mail_tmpfs_mib))
        stack.wire()
        stack.start()
        return stack

    return make


@pytest.fixture
def stack(make_stack: MakeStack) -> MailStack:
    return make_stack()


class Mailflow(AgentResource):
    """ocf:messaging:mailflow bound to one stack, under a resource instance name of its own."""

    def __init__(self, agent: Path, stack: MailStack, **params: object):
        super().__init__(agent, {
            "smtp_host": "127.0.0.1",
            "smtp_port": stack.postfix.smtp_port,
            "imap_host": "127.0.0.1",
            "imap_port": stack.dovecot.imap_port,
            "credentials_file": stack.dovecot.credentials_file,
            "probe_address": stack.probe_address,
            "max_delay": FAIL_MAX_DELAY_S,
            "warn_delay": 5,
            "postfix_queue_dir": stack.postfix.queue_dir,
            "mail_root": stack.dovecot.mail_root,
            "dampen": "1s",
            **params,
        }, instance=f"itest-mailflow-{uuid.uuid4().hex[:8]}", monitor_ms=MONITOR_MS)
        self.stack = stack

    @property
    def state_file(self) -> Path:
        return Path("/run/resource-agents") / f"mailflow-{self.instance}.state"


@pytest.fixture
def make_mailflow(mailflow_agent: Path) -> Iterator[Callable[..., Mailflow]]:
    """Factory: make_mailflow(stack, **params); every resource made is stopped at teardown."""
    made: list[Mailflow] = []

    def make(stack: MailStack, **params: object) -> Mailflow:
        rsc = Mailflow(mailflow_agent, stack, **params)
        made.append(rsc)
        return rsc

    yield make
    for rsc in made:
        rsc.stop()
        assert not rsc.state_file.exists(), f"stop left {rsc.state_file}"


def single_service_monitors_pass(stack: MailStack) -> None:
    """Level-10 monitors of the build-tree postfix and dovecot agents against the running stack: all 0.

    Dovecot's monitor checks LMTP where an operator points it: the TCP
    listener (Postfix delivers over the unix socket)."""
    postfix = AgentResource(agent_path("postfix"), {
        "config_dir": stack.postfix.config_dir, "probe_host": "127.0.0.1", "probe_port": stack.postfix.smtp_port})
    dovecot = AgentResource(agent_path("dovecot"), {
        "config_file": stack.dovecot.config_file, "probe_host": "127.0.0.1",
        "imap_port": stack.dovecot.imap_port, "pop3_port": stack.dovecot.pop3_port,
        "lmtp_port": stack.dovecot.lmtp_port, "credentials_file": stack.dovecot.credentials_file})
    for name, rsc in (("postfix", postfix), ("dovecot", dovecot)):
        r = rsc.monitor(10, timeout_ms=20000)
        assert r.rc == OCF.SUCCESS, f"the single-service {name} monitor at level 10 should not see this fault:\n" \
                                    f"{r.describe()}"


def attributes(cluster: Cluster) -> dict[str, str | None]:
    return {name: attrd_value(cluster, name) for name in (HEALTH, ROUND_TRIP, DEFERRED, STORE_FREE)}


def health_in_cib(cluster: Cluster, value: str) -> None:
    """Wait until the health attribute has reached the CIB (after dampening), where the scheduler reads it."""
    wait_for(lambda: cib_node_attribute(cluster, HEALTH) == value, 30,
             f"{HEALTH}={value} in the CIB status section (now {cib_node_attribute(cluster, HEALTH)!r})")


def green(rsc: Mailflow, cluster: Cluster, **override: object) -> Result:
    """A monitor that must find mail flowing: rc 0, health green, a plausible round trip."""
    r = rsc.monitor(0, **override)
    expect(r, OCF.SUCCESS)
    attrs = attributes(cluster)
    assert attrs[HEALTH] == "green", f"{attrs}\n{r.describe()}"
    assert attrs[ROUND_TRIP] and 0 < int(attrs[ROUND_TRIP]) < int(rsc.params["warn_delay"]) * 1000, attrs
    return r


def yellow(rsc: Mailflow, cluster: Cluster, reason: str) -> dict[str, str | None]:
    """A monitor that must find mail flowing but the node degraded: rc 190 with reason, health yellow.
    Returns the attributes."""
    r = rsc.monitor(0)
    expect(r, OCF.DEGRADED)
    expect_reason(r, reason)
    attrs = attributes(cluster)
    assert attrs[HEALTH] == "yellow", f"{attrs}\n{r.describe()}"
    return attrs


# ---------------------------------------------------------------------------
# without a cluster


def test_meta_data_advertises_spec_parameters(mailflow_agent: Path) -> None:
    r = run_agent(mailflow_agent, "meta-data", {})
    expect(r, OCF.SUCCESS)
    root = ET.fromstring(r.stdout)
    params = {p.get("name"): p for p in root.iter("parameter")}
    for name in ("smtp_host", "smtp_port", "smtp_tls", "smtp_credentials_file", "imap_host", "imap_port",
                 "imap_tls", "credentials_file", "probe_address", "mailbox", "max_delay", "warn_delay", "ca_file",
                 "health_attribute", "round_trip_attribute", "deferred_attribute", "store_free_attribute",
                 "postfix_queue_dir", "queue_warn", "mail_root", "min_free_percent", "dampen"):
        assert name in params, f"meta-data lacks parameter {name}; has {sorted(params)}"
    assert params["health_attribute"].find("content").get("default") == HEALTH
    actions = {a.get("name"): a for a in root.iter("action")}
    assert {"start", "stop", "monitor", "validate-all", "meta-data", "reload-agent"} <= set(actions)
    max_delay_s = int(params["max_delay"].find("content").get("default"))
    monitor_s = int(actions["monitor"].get("timeout").rstrip("s"))
    assert monitor_s > max_delay_s, "the advertised monitor timeout must leave room for max_delay"


def test_ocf_tester_passes(mailflow_agent: Path, stack: MailStack) -> None:
    # ocf-tester runs without a cluster: attrd cannot be reached and every
    # action must still give its real result.  The attribute names are this
    # test's own, in case another test run's cluster is up on this host.
    tag = uuid.uuid4().hex[:8]
    instance = f"itest-mailflow-{tag}"
    r = procs.run(["/usr/sbin/ocf-tester", "-n", instance,
                   "-o", f"smtp_port={stack.postfix.smtp_port}",
                   "-o", f"imap_port={stack.dovecot.imap_port}",
                   "-o", f"credentials_file={stack.dovecot.credentials_file}",
                   "-o", f"probe_address={stack.probe_address}",
                   "-o", "max_delay=8", "-o", "warn_delay=5",
                   "-o", f"health_attribute=#health-itest-{tag}",
                   "-o", f"round_trip_attribute=itest-{tag}-round-trip-ms",
                   "-o", "deferred_attribute=", "-o", "store_free_attribute=",
                   str(mailflow_agent)], timeout=300)
    assert r.returncode == 0 and "passed all tests" in r.stdout, f"ocf-tester rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    assert not (Path("/run/resource-agents") / f"mailflow-{instance}.state").exists(), "ocf-tester ends with stop"
    assert not stack.probe_messages(), f"probe mail left behind: {stack.probe_messages()}"


def test_monitor_gives_its_real_result_when_attrd_fails_or_hangs(make_mailflow, stack: MailStack,
                                                                 tmp_path: Path) -> None:
    # A stand-in attrd_updater first in PATH: one that cannot connect (no
    # cluster) and one that hangs (a wedged attrd). Either way the monitor
    # says what the round trip found, within its timeout, and logs why
    # nothing was published.
    rsc = make_mailflow(stack)
    expect(rsc.start(), OCF.SUCCESS)
    fake = tmp_path / "bin"
    fake.mkdir()
    stand_in = fake / "attrd_updater"

    def monitor(script: str) -> Result:
        stand_in.write_text("#!/bin/sh\n" + script)
        stand_in.chmod(0o755)
        r = run_agent(rsc.agent, "monitor", rsc.params, interval_ms=10000, timeout_ms=MONITOR_MS,
                      instance=rsc.instance, env_extra={"PATH": f"{fake}:/usr/sbin:/usr/bin:/sbin:/bin"})
        assert "cannot publish node attributes" in r.stderr, f"the attrd failure was not logged\n{r.describe()}"
        assert r.elapsed < MONITOR_MS / 1000, f"the monitor overran its timeout\n{r.describe()}"
        return r

    refused = 'echo "attrd_updater: Could not connect to attrd: Connection refused" >&2\nexit 102\n'
    hung = "exec sleep 120\n"
    expect(monitor(refused), OCF.SUCCESS)
    expect(monitor(hung), OCF.SUCCESS)
    # Mail no longer flows (the socket is gone) and attrd still hangs: the
    # monitor fails with the stage, on time.
    stack.remove_lmtp_socket()
    r = monitor(hung)
    expect(r, OCF.ERR_GENERIC)
    expect_reason(r, NOT_DELIVERED)


def test_validate_refuses_a_credentials_file_others_can_read(make_mailflow, stack: MailStack) -> None:
    rsc = make_mailflow(stack)
    stack.dovecot.credentials_file.chmod(0o644)
    for action in ("validate-all", "start"):
        r = rsc(action)
        expect(r, OCF.ERR_CONFIGURED)
        expect_reason(r, r"credentials_file: .*mode 644")
    assert not rsc.state_file.exists(), "a refused start recorded the resource as started"


def test_monitor_of_a_resource_never_started_is_not_running(make_mailflow, stack: MailStack) -> None:
    rsc = make_mailflow(stack)
    r = rsc.probe()
    expect(r, OCF.NOT_RUNNING)
    assert r.exit_reason is None, r.describe()
    expect(rsc.monitor(0), OCF.NOT_RUNNING)
    assert not stack.probe_messages() and stack.postfix.queue_count("deferred") == 0, "a stopped monitor sent mail"


# ---------------------------------------------------------------------------
# with a real Pacemaker: the node attributes


def test_mail_flows_green_with_round_trip_and_stop_clears(make_mailflow, stack: MailStack, cluster: Cluster) -> None:
    rsc = make_mailflow(stack)
    expect(rsc.start(), OCF.SUCCESS)
    assert rsc.state_file.exists()
    green(rsc, cluster)
    attrs = attributes(cluster)
    assert attrs[DEFERRED] == "0", attrs
    assert attrs[STORE_FREE] is not None and 0 <= int(attrs[STORE_FREE]) <= 100, attrs
    health_in_cib(cluster, "green")
    assert not stack.probe_messages(), f"the probe message was not removed: {stack.probe_messages()}"

    expect(rsc.stop(), OCF.SUCCESS)
    assert not rsc.state_file.exists()
    assert attributes(cluster) == {HEALTH: "", ROUND_TRIP: "", DEFERRED: "", STORE_FREE: ""}, \
        f"stop must clear every attribute: {attributes(cluster)}"
    expect(rsc.monitor(0), OCF.NOT_RUNNING)
    expect(rsc.stop(), OCF.SUCCESS)


def test_lmtp_socket_removed_only_mailflow_fails_and_node_goes_red(make_mailflow, stack: MailStack,
                                                                  cluster: Cluster) -> None:
    rsc = make_mailflow(stack)
    expect(rsc.start(), OCF.SUCCESS)
    green(rsc, cluster)

    stack.remove_lmtp_socket()
    single_service_monitors_pass(stack)
    r = rsc.monitor(0)
    expect(r, OCF.ERR_GENERIC)
    expect_reason(r, rf"^{NOT_DELIVERED}: probe message \w+ not in INBOX")
    attrs = attributes(cluster)
    assert attrs[HEALTH] == "red", attrs
    assert attrs[ROUND_TRIP] == "", f"a failed round trip must not leave the last good one: {attrs}"
    health_in_cib(cluster, "red")
    # The probe Postfix could not hand to Dovecot waits in the deferred queue.
    wait_for(lambda: stack.postfix.queue_count("deferred") >= 1, 15, "the probe message in the deferred queue")
    expect(rsc.monitor(0), OCF.ERR_GENERIC)
    assert int(attrd_value(cluster, DEFERRED)) >= 1, attributes(cluster)
    single_service_monitors_pass(stack)


def test_transport_to_dead_host_goes_red_moves_the_stack_and_recovers(make_mailflow, stack: MailStack,
                                                                     cluster: Cluster) -> None:
    # A stand-in for the stack (ocf:pacemaker:Dummy) under node-health-strategy
    # migrate-on-red: on a one-node cluster "moving away" means stopping.
    dummy = f"stack-{uuid.uuid4().hex[:6]}"
    crm = ["crm", "-D", "plain", "configure"]
    cfg = [crm + ["property", "node-health-strategy=migrate-on-red"],
           crm + ["primitive", dummy, "ocf:pacemaker:Dummy", "op", "monitor", "interval=10s"]]
    try:
        for argv in cfg:
            c = run(cluster, argv)
            assert c.returncode == 0, f"{argv}: {c.stderr}"
        rsc = make_mailflow(stack)
        expect(rsc.start(), OCF.SUCCESS)
        green(rsc, cluster)
        health_in_cib(cluster, "green")
        wait_for(lambda: resource_active(cluster, dummy), 60, f"{dummy} started on the green node")

        stack.route("example.com", f"smtp:[127.0.0.1]:{free_port()}")
        single_service_monitors_pass(stack)
        r = rsc.monitor(0)
        expect(r, OCF.ERR_GENERIC)
        expect_reason(r, NOT_DELIVERED)
        assert attrd_value(cluster, HEALTH) == "red", attributes(cluster)
        health_in_cib(cluster, "red")
        wait_for(lambda: not resource_active(cluster, dummy), 60, f"{dummy} to leave the red node")

        # Repaired: the transport map entry is gone and the queue retried.
        stack.route("example.com", None)
        stack.flush()
        green(rsc, cluster)
        health_in_cib(cluster, "green")
        wait_for(lambda: resource_active(cluster, dummy), 60, f"{dummy} back on the green node")
    finally:
        run(cluster, crm + ["delete", "--force", dummy])
        run(cluster, crm + ["property", "node-health-strategy=none"])
        run(cluster, ["crm_resource", "--wait", "--timeout=60s"])


def resource_active(cluster: Cluster, rsc_id: str) -> bool:
    x = cluster.crm_mon_xml()
    if x is None:
        return False
    r = x.find(f".//resources/resource[@id='{rsc_id}']")
    return r is not None and r.get("active") == "true" and r.get("role") == "Started"


def test_slow_delivery_is_yellow_and_degraded(make_mailflow, stack: MailStack, cluster: Cluster) -> None:
    delay_s = 2.5
    with SlowLmtpProxy(stack.dovecot.lmtp_port, delay_s) as proxy:
        stack.postfix.set_main(virtual_transport=f"lmtp:inet:127.0.0.1:{proxy.port}")
        stack.postfix.postfix("reload")
        rsc = make_mailflow(stack, warn_delay=1, max_delay=15)
        expect(rsc.start(), OCF.SUCCESS)
        attrs = yellow(rsc, cluster, r"mail flows slowly: round trip .*over the warning delay")
        assert int(attrs[ROUND_TRIP]) >= delay_s * 1000, attrs
        health_in_cib(cluster, "yellow")


def test_deferred_queue_over_queue_warn_is_yellow(make_mailflow, stack: MailStack, cluster: Cluster) -> None:
    stack.route("dead.example", f"smtp:[127.0.0.1]:{free_port()}")
    for _ in range(2):
        assert stack.postfix.send_mail(rcpt="someone@dead.example")[1][0] == 250
    wait_for(lambda: stack.postfix.queue_count("deferred") == 2, 20, "2 deferred messages")
    rsc = make_mailflow(stack, queue_warn=1)
    expect(rsc.start(), OCF.SUCCESS)
    attrs = yellow(rsc, cluster, r"deferred queue .* holds 2 messages \(queue_warn 1\)")
    assert attrs[DEFERRED] == "2", attrs
    assert 0 < int(attrs[ROUND_TRIP]) < 5000, f"mail to example.com still flows: {attrs}"
    green(rsc, cluster, queue_warn=2)


def test_store_short_of_space_is_yellow(make_mailflow, make_stack: MakeStack, cluster: Cluster) -> None:
    stack = make_stack(mail_tmpfs_mib=8)
    ballast = stack.dovecot.mail_root / "ballast"
    with open(ballast, "wb") as f:
        f.write(b"\0" * (6 * 1024 * 1024))
    rsc = make_mailflow(stack, min_free_percent=50)
    expect(rsc.start(), OCF.SUCCESS)
    attrs = yellow(rsc, cluster,
                   rf"free space on {re.escape(str(stack.dovecot.mail_root))} down to \d+% \(min_free_percent 50\)")
    assert int(attrs[STORE_FREE]) < 50, attrs

    ballast.unlink()
    green(rsc, cluster)
    assert int(attrd_value(cluster, STORE_FREE)) > 50, attributes(cluster)


def test_unusable_credentials_clear_health_instead_of_red(make_mailflow, stack: MailStack, cluster: Cluster) -> None:
    rsc = make_mailflow(stack)
    expect(rsc.start(), OCF.SUCCESS)
    green(rsc, cluster)
    # The file leaks to others after start: the probe refuses it, nothing
    # is measured, and a node must not be painted red over that.
    stack.dovecot.credentials_file.chmod(0o644)
    r = rsc.monitor(0)
    expect(r, OCF.ERR_CONFIGURED)
    expect_reason(r, r"cannot check the mail flow: .*credentials")
    assert attributes(cluster) == {HEALTH: "", ROUND_TRIP: "", DEFERRED: "", STORE_FREE: ""}, attributes(cluster)
    assert stack.postfix.queue_count("deferred") == 0 and not stack.probe_messages(), "mail was sent anyway"


# ---------------------------------------------------------------------------
# as a cluster resource, configured the way the longdesc tells operators to


@pytest.fixture
def provider(mailflow_agent: Path) -> Iterator[str]:
    """A temporary OCF provider for the build-tree agents, so Pacemaker can run them.

    Pacemaker 2.1.5 only looks in /usr/lib/ocf/resource.d/<provider>/ (no
    OCF_RA_PATH): a uniquely named symlink there points at the build tree,
    and is removed again, also after a failure."""
    name = f"msg-itest-{uuid.uuid4().hex[:8]}"
    link = Path("/usr/lib/ocf/resource.d") / name
    link.symlink_to(mailflow_agent.parent, target_is_directory=True)
    try:
        yield name
    finally:
        link.unlink()


def failure_of(cluster: Cluster, rsc_id: str) -> dict[str, str] | None:
    """crm_mon's record of a failed operation of rsc_id ("Failed Resource Actions"), if any."""
    r = run(cluster, ["crm_mon", "-1", "--output-as=xml", "--include=failures"])
    try:
        x = ET.fromstring(r.stdout)
    except ET.ParseError:
        return None
    # (the attributes, not the element: an element without children is false)
    return next((dict(f.attrib) for f in x.iterfind("./failures/failure")
                 if f.get("op_key", "").startswith(f"{rsc_id}_")), None)


def test_as_cluster_resource_red_moves_the_stack_and_the_failure_is_shown_not_restarted(
        provider: str, stack: MailStack, cluster: Cluster) -> None:
    # The documented deployment: op monitor on-fail=ignore, meta
    # allow-unhealthy-nodes=true, node-health-strategy=migrate-on-red.
    tag = uuid.uuid4().hex[:6]
    mf, dummy = f"mailflow-{tag}", f"stack-{tag}"
    crm = ["crm", "-D", "plain", "configure"]
    params = {"smtp_port": stack.postfix.smtp_port, "imap_port": stack.dovecot.imap_port,
              "credentials_file": stack.dovecot.credentials_file, "probe_address": stack.probe_address,
              "max_delay": FAIL_MAX_DELAY_S, "warn_delay": 5, "dampen": "1s"}
    cfg = [crm + ["property", "node-health-strategy=migrate-on-red"],
           crm + ["primitive", dummy, "ocf:pacemaker:Dummy", "op", "monitor", "interval=10s"],
           crm + ["primitive", mf, f"ocf:{provider}:mailflow", "params", *[f"{k}={v}" for k, v in params.items()],
                  "op", "monitor", "interval=15s", "timeout=40s", "on-fail=ignore",
                  "meta", "allow-unhealthy-nodes=true"]]
    try:
        for argv in cfg:
            c = run(cluster, argv)
            assert c.returncode == 0, f"{argv}: {c.stderr}"
        health_in_cib(cluster, "green")
        assert int(attrd_value(cluster, ROUND_TRIP)) > 0, attributes(cluster)
        wait_for(lambda: resource_active(cluster, dummy) and resource_active(cluster, mf), 60,
                 f"{dummy} and {mf} started")

        stack.route("example.com", f"smtp:[127.0.0.1]:{free_port()}")
        wait_for(lambda: cib_node_attribute(cluster, HEALTH) == "red", 90, f"{HEALTH}=red from the recurring monitor")
        wait_for(lambda: not resource_active(cluster, dummy), 60, f"{dummy} to leave the red node")
        failure = wait_for(lambda: failure_of(cluster, mf), 30, f"the failed monitor of {mf} in crm_mon")
        # Pacemaker keeps 128 characters of an exit reason: the stage comes first.
        assert re.match(NOT_DELIVERED, failure.get("exitreason", "")), failure
        # on-fail=ignore: not restarted (a stop would clear the red), still
        # running on the red node (allow-unhealthy-nodes), still red a full
        # monitor interval later.
        time.sleep(20)
        assert resource_active(cluster, mf), f"{mf} was stopped on the red node"
        assert cib_node_attribute(cluster, HEALTH) == "red", attributes(cluster)
        assert not resource_active(cluster, dummy)

        stack.route("example.com", None)
        stack.flush()
        wait_for(lambda: cib_node_attribute(cluster, HEALTH) == "green", 90, f"{HEALTH}=green again")
        wait_for(lambda: resource_active(cluster, dummy), 60, f"{dummy} back on the green node")
    finally:
        for rsc_id in (mf, dummy):
            run(cluster, crm + ["delete", "--force", rsc_id])
        run(cluster, crm + ["property", "node-health-strategy=none"])
        run(cluster, ["crm_resource", "--wait", "--timeout=60s"])
    # Deleting the resource stopped it, and the stop cleared its attributes.
    assert attrd_value(cluster, HEALTH) == "", attributes(cluster)
