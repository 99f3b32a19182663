"""Checks every messaging agent must pass the same way: its meta-data
advertises the spec's parameters and monitor depths, and ocf-tester passes
against a real instance and leaves none of its processes behind. Each
test_<service>.py states only what is specific to its service."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from pathlib import Path

import procs
from ocf import OCF, AgentResource, Result, expect, run_agent, wait_for

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


def expect_stopped_cleanly(r: AgentResource, processes: Callable[[], list[int]], timeout_ms: int,
                           settle_s: float = 0) -> Result:
    """Stop through the agent: rc 0 inside the stop timeout, and no process of
    the instance left (at once, or within settle_s for a daemon whose last
    helpers exit just after it). Returns the stop's result."""
    __tracebackhide__ = True
    res = r.stop(timeout_ms=timeout_ms)
    expect(res, OCF.SUCCESS)
    assert res.elapsed < timeout_ms / 1000, f"stop overran its {timeout_ms} ms timeout\n{res.describe()}"
    if settle_s:
        wait_for(lambda: not processes(), settle_s, "no process of the instance left after stop")
    else:
        left = processes()
        assert not left, f"stop returned 0 but left processes of the instance: {procs.describe(left)}\n{res.describe()}"
    return res


def expect_lifecycle(r: AgentResource, level: int, start: Callable[[], int], daemon_pid: Callable[[], int | None],
                     stop: Callable[[], object], *, daemon: str = "master",
                     while_running: Callable[[], None] | None = None,
                     after_stop: Callable[[], None] | None = None) -> None:
    """The lifecycle at one depth, as Pacemaker drives it: probe and monitor
    say not running; start (`start` asserts it and returns the daemon's pid);
    monitor and probe succeed; a second start is a no-op that keeps the same
    daemon; stop (`stop` asserts it was clean); monitor and probe say not
    running again; stop when stopped succeeds. `while_running` and
    `after_stop` add the service's own checks at those points."""
    __tracebackhide__ = True
    expect(r.probe(), OCF.NOT_RUNNING)
    expect(r.monitor(level), OCF.NOT_RUNNING)

    pid = start()
    expect(r.monitor(level), OCF.SUCCESS)
    expect(r.probe(), OCF.SUCCESS)
    # start on a running instance is a no-op success and keeps the same daemon
    expect(r.start(), OCF.SUCCESS)
    assert daemon_pid() == pid, f"second start replaced the running {daemon}"
    if while_running:
        while_running()

    stop()
    if after_stop:
        after_stop()
    expect(r.monitor(level), OCF.NOT_RUNNING)
    expect(r.probe(), OCF.NOT_RUNNING)
    expect(r.stop(), OCF.SUCCESS)  # stop when stopped
