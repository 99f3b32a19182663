"""Checks every messaging agent must pass the same way: its meta-data
advertises the spec's parameters and monitor depths, and ocf-tester passes
against a real instance and leaves none of its processes behind. Each
test_<service>.py states only what is specific to its service."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from pathlib import Path

import procs
from ocf import OCF, expect, run_agent

# What Pacemaker needs of every agent here (reload: the daemon's own reload).
STANDARD_ACTIONS = ("start", "stop", "monitor", "validate-all", "meta-data", "reload", "reload-agent")


def expect_meta_data(agent: Path, parameters: Iterable[str], actions: Iterable[str] = STANDARD_ACTIONS) -> set[str]:
    """meta-data succeeds, names every one of `parameters` and `actions`, and
    advertises monitor depths 0, 10 and 20; returns the parameter names."""
    __tracebackhide__ = True
    r = run_agent(agent, "meta-data", {})
    expect(r, OCF.SUCCESS)
    root = ET.fromstring(r.stdout)
    params = {p.get("name") for p in root.iter("parameter")}
    for name in parameters:
        assert name in params, f"meta-data lacks parameter {name}; has {sorted(params)}"
    depths = {a.get("depth") for a in root.iter("action") if a.get("name") == "monitor"}
    assert {"0", "10", "20"} <= depths, f"monitor depths advertised: {depths}"
    advertised = {a.get("name") for a in root.iter("action")}
    assert set(actions) <= advertised, f"meta-data lacks actions {sorted(set(actions) - advertised)}"
    return params


def expect_ocf_tester_passes(agent: Path, params: dict[str, object], processes: Callable[[], list[int]],
                             timeout_s: float) -> None:
    """/usr/sbin/ocf-tester passes with `params`, and as it ends with stop,
    `processes()` (the instance's) is empty afterwards."""
    __tracebackhide__ = True
    args = ["/usr/sbin/ocf-tester", "-n", "itest"]
    for name, value in params.items():
        args += ["-o", f"{name}={value}"]
    r = procs.run(args + [str(agent)], timeout=timeout_s)
    assert r.returncode == 0 and "passed all tests" in r.stdout, (
        f"ocf-tester rc={r.returncode}\n{r.stdout}\n{r.stderr}")
    left = processes()
    assert not left, f"ocf-tester ends with stop, yet left {procs.describe(left)}"
