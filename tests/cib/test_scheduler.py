"""What Pacemaker's scheduler does with the rendered stack, without a cluster.

crm_simulate runs the real scheduler on the rendered CIB with three
simulated nodes: where everything starts and in which order (from the
transition graph's own dependencies), what one failed monitor does (the
service alone restarts in place), what a service banned from its node does
(what migration-threshold does after repeated failures: the whole stack
moves, except innd and mailflow, which stop alone), and what a red
#health-messaging does (the stack leaves the node).  The real cluster tests
(tests/cluster) show the same on running nodes; these show it for every
service in a second.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cib_checks import AGENT_SETS, TEST_FENCE, cib_xml, render_with

NODES = ("node1", "node2", "node3")
CORE = ("store", "vip")
CHAIN = ("slapd", "dovecot", "postfix-internal", "postfix-gateway", "innd", "mailflow")
NOT_DRAGGING = ("innd", "mailflow")
# Start order of everything but the news server: its reverse is the stop order.
MAIL_STOP_CHAIN = ("slapd", "dovecot", "postfix-internal", "postfix-gateway", "mailflow")
VALUES = {"fence_agent": TEST_FENCE, "nodes": " ".join(NODES), "vip.ip": "10.251.0.100"}


def services(agents: str) -> tuple[str, ...]:
    return CHAIN if agents == "messaging" else tuple(s for s in CHAIN if s not in NOT_DRAGGING)


class Simulation:
    """One crm_simulate transition on a CIB: its summary, graph and resulting CIB."""

    def __init__(self, cib: ET.ElementTree, *args: str):
        with tempfile.TemporaryDirectory(prefix="cib-sim-") as d:
            src, out, graph = (Path(d) / n for n in ("in.xml", "out.xml", "graph.xml"))
            cib.write(src)
            r = subprocess.run(["crm_simulate", "-x", str(src), "-S", "-O", str(out), "-G", str(graph), *args],
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr
            self.output = r.stdout
            self.result = ET.parse(out)
            self.graph = ET.parse(graph).getroot()
        summary = self.output.split("Transition Summary:")[1].split("Executing Cluster Transition:")[0]
        # "* Move  store  ( node2 -> node3 )" -> ("Move", "store", "node2 -> node3")
        self.summary = [(m.group(1), m.group(2), m.group(3).strip()) for m in
                        re.finditer(r"\* (\w+)\s+(\S+)\s+\(\s*([^)]*)\)", summary)]

    def placement(self) -> dict[str, str]:
        """Resource -> node it runs on after this transition."""
        revised = self.output.split("Revised Cluster Status:")[1]
        return {m.group(1): m.group(2) for m in re.finditer(r"\* (\S+)\s+\(\S+\):\s+Started (\S+)", revised)}

    def start_inputs(self, rid: str) -> set[str]:
        """Resources whose start the transition graph makes rid's start wait for."""
        return self._inputs(rid, "start")

    def stop_inputs(self, rid: str) -> set[str]:
        """Resources whose stop the transition graph makes rid's stop wait for."""
        return self._inputs(rid, "stop")

    def _inputs(self, rid: str, operation: str) -> set[str]:
        key = f"_{operation}_0"
        for synapse in self.graph.iter("synapse"):
            op = synapse.find("action_set/rsc_op")
            if op is not None and op.get("operation") == operation and op.get("operation_key") == rid + key:
                return {t.get("operation_key").rsplit(key, 1)[0]
                        for t in synapse.iterfind("inputs/trigger/rsc_op") if t.get("operation") == operation}
        raise AssertionError(f"no {operation} of {rid} in the transition graph")


def started_stack(agents: str) -> tuple[ET.ElementTree, Simulation, str]:
    """The rendered stack on three fresh nodes after its first two transitions (probes, then starts)."""
    text = render_with(VALUES, "xml", agents)
    cib = ET.ElementTree(cib_xml(text))
    probes = Simulation(cib, *[a for n in NODES for a in ("--node-up", n)], "-q", "1")
    starts = Simulation(probes.result)
    return starts.result, probes, text


def with_constraint(cib: ET.ElementTree, **attrs: str) -> ET.ElementTree:
    copy = ET.ElementTree(ET.fromstring(ET.tostring(cib.getroot())))
    ET.SubElement(copy.getroot().find("configuration/constraints"), "rsc_location", attrs)
    return copy


def with_node_attribute(cib: ET.ElementTree, node: str, name: str, value: str) -> ET.ElementTree:
    copy = ET.ElementTree(ET.fromstring(ET.tostring(cib.getroot())))
    state = next(s for s in copy.getroot().find("status") if s.get("uname") == node)
    attrs = ET.SubElement(ET.SubElement(state, "transient_attributes", id=node), "instance_attributes",
                          id=f"status-{node}")
    ET.SubElement(attrs, "nvpair", id=f"status-{node}-health", name=name, value=value)
    return copy


def active_node(cib: ET.ElementTree) -> str:
    return Simulation(cib).placement()["vip"]


@pytest.fixture(scope="module", params=AGENT_SETS)
def stack(request):
    cib, first, _ = started_stack(request.param)
    return request.param, cib, first


def test_everything_starts_on_one_node_in_order(stack):
    agents, cib, first = stack
    placed = Simulation(cib).placement()
    rids = CORE + services(agents)
    assert {placed[r] for r in rids} == {placed["vip"]}, placed
    # The first transition's graph: each start waits for the one before it.
    assert "store" in first.start_inputs("vip")
    for rid in services(agents):
        assert "vip" in first.start_inputs(rid), rid
    for before, after in zip(services(agents), services(agents)[1:]):
        assert before in first.start_inputs(after), (before, after)


def test_one_failed_monitor_restarts_that_service_alone_in_place(stack):
    agents, cib, _ = stack
    node = active_node(cib)
    for rid in services(agents):
        if agents == "messaging" and rid == "mailflow":
            continue  # on-fail=ignore: its failure is reported, not acted on
        sim = Simulation(cib, "-i", f"{rid}_monitor_30000@{node}=7")
        assert sim.summary == [("Recover", rid, node)], (rid, sim.summary)


@pytest.mark.parametrize("rid, interval", [("store", "20000"), ("vip", "10000")])
def test_a_failed_store_or_address_restarts_what_uses_it_in_place(stack, rid, interval):
    # Services read the store and bind the address: they restart with it
    # (Mandatory order), on the same node.
    agents, cib, _ = stack
    node = active_node(cib)
    sim = Simulation(cib, "-i", f"{rid}_monitor_{interval}@{node}=7")
    after = CORE[CORE.index(rid) + 1:] + services(agents)
    assert sim.summary == [("Recover", rid, node)] + [("Restart", r, node) for r in after], sim.summary


def test_a_service_banned_from_its_node_moves_the_whole_stack(stack):
    # A -INFINITY location is what migration-threshold gives a resource on
    # a node where it failed that often.
    agents, cib, _ = stack
    node = active_node(cib)
    everything = CORE + services(agents)
    for rid in everything:
        if rid in NOT_DRAGGING:
            continue
        sim = Simulation(with_constraint(cib, id="banned", rsc=rid, node=node, score="-INFINITY"))
        moves = {r: where for action, r, where in sim.summary if action == "Move"}
        assert set(moves) == set(everything), (rid, sim.summary)
        targets = {where.split("->")[1].strip() for where in moves.values()}
        assert len(targets) == 1 and node not in targets, (rid, moves)
        # Moved in order: each start still waits for the one before it.
        for before, after in zip(services(agents), services(agents)[1:]):
            assert before in sim.start_inputs(after), (rid, before, after)
        # Stopped in the reverse order, except the news server, which stops
        # beside the mail services (after the attendant): the attendant still
        # stops before the transport, and the IP only after everything.
        for before, after in zip(MAIL_STOP_CHAIN, MAIL_STOP_CHAIN[1:]):
            if before in services(agents) and after in services(agents):
                assert after in sim.stop_inputs(before), (rid, before, after)
        if agents == "messaging":
            assert sim.stop_inputs("innd") == {"mailflow"}, (rid, sim.stop_inputs("innd"))
            assert "innd" not in sim.stop_inputs("postfix-gateway"), rid
            assert "innd" in sim.stop_inputs("vip"), rid


@pytest.mark.parametrize("rid", NOT_DRAGGING)
def test_news_and_the_attendant_do_not_drag_the_stack(rid):
    cib, _, _ = started_stack("messaging")
    node = active_node(cib)
    sim = Simulation(with_constraint(cib, id="banned", rsc=rid, node=node, score="-INFINITY"))
    assert sim.summary == [("Stop", rid, node)], sim.summary


def test_a_red_node_loses_the_stack_and_yellow_keeps_it():
    cib, _, _ = started_stack("messaging")
    node = active_node(cib)
    red = Simulation(with_node_attribute(cib, node, "#health-messaging", "red"))
    moved = {r for action, r, _ in red.summary if action == "Move"}
    assert moved == set(CORE + CHAIN), red.summary
    yellow = Simulation(with_node_attribute(cib, node, "#health-messaging", "yellow"))
    assert yellow.summary == [], yellow.summary
