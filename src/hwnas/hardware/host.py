"""What this machine is, as every fingerprint names it (lookup tables, the device agent).

Standard library only: the agent runs on boards without torch. One function, so a table
built on a board and the agent serving that board name the same CPU.
"""

from __future__ import annotations

import platform
from pathlib import Path

#: keys of /proc/cpuinfo that name the CPU: x86 has ``model name``; ARM boards may have only
#: ``Hardware`` (the SoC) and ``Model`` (the board). The first one present in the file wins.
CPUINFO_KEYS = ("model name", "Hardware", "Model")


def cpu_model() -> str:
    """The CPU's marketing name where Linux tells it, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key = line.split(":", 1)[0].strip()
            if key in CPUINFO_KEYS:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
