"""The host's identity is read by one function: a table built on a board and the agent on the
same board must name the same CPU, or their fingerprints never match."""

from __future__ import annotations

from pathlib import Path

import pytest

from hwnas.hardware import agent, lut
from hwnas.hardware.config import LutTarget

# /proc/cpuinfo of a Raspberry Pi 4 on a 64-bit kernel: no "model name" line at all
PI4 = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU part\t: 0xd08

Hardware\t: BCM2835
Revision\t: c03114
Serial\t\t: 100000002a5b7c7e
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""
X86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n"


@pytest.mark.parametrize(
    ("cpuinfo", "cpu"), [(PI4, "BCM2835"), (X86, "Intel(R) Xeon(R) CPU @ 2.20GHz")]
)
def test_agent_and_lookup_table_name_the_same_cpu(monkeypatch, cpuinfo, cpu):
    real = Path.read_text

    def read_text(self: Path, *args, **kwargs):
        return cpuinfo if str(self) == "/proc/cpuinfo" else real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    monkeypatch.setattr("platform.processor", lambda: "")
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    table = lut.fingerprint(LutTarget(runtime="cpu-ort", threads=1), (3, 32, 32))
    board = agent.fingerprint(threads=1, max_bytes=1)
    assert table["cpu"] == board["cpu"] == cpu
