"""What tests/cib's tests share: where the renderer and the agents are, and how to call it."""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RENDER = REPO / "cib-templates" / "render"
README = REPO / "cib-templates" / "README.md"
BUILD = Path(os.environ.get("MSG_BUILD_DIR", REPO / "build")).resolve()
MESSAGING_AGENTS = BUILD / "ocf" / "resource.d" / "messaging"
OCF_ROOT = Path("/usr/lib/ocf")
# A fence agent that ships with Pacemaker, so crm and pcs find its
# meta-data offline; it is never run here.
TEST_FENCE = "fence_watchdog"
COMMAND_TIMEOUT = 300  # pcs is slow on a busy 2-core machine: ~1 s per command idle

AGENT_SETS = ("messaging", "stock")


def render(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(RENDER), *args], capture_output=True, text=True, check=check,
                          timeout=COMMAND_TIMEOUT)


def render_with(values: dict[str, str], fmt: str, agents: str) -> str:
    sets = [a for k, v in values.items() for a in ("--set", f"{k}={v}")]
    return render("--format", fmt, "--agents", agents, *sets).stdout


def cib_xml(text: str) -> ET.Element:
    """The <cib> of an XML rendering (after its header comments)."""
    return ET.fromstring(text.split("-->\n")[-1])
