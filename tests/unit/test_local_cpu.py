"""The CPU check before the local model's process starts (llm/local/cpu.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from agenthost.llm.local import cpu

# What llama.cpp's system info lists besides instruction sets.
_NOT_INSTRUCTIONS = {"LLAMAFILE", "OPENMP", "REPACK", "ACCELERATE", "KLEIDIAI"}
_HASWELL = frozenset("fpu sse2 pni ssse3 sse4_1 sse4_2 avx avx2 f16c fma bmi1 bmi2 movbe".split())

x86_only = pytest.mark.skipif(not cpu.is_x86_64(), reason="the check applies to x86-64 only")


@x86_only
def test_a_cpu_with_avx2_can_run_the_runtime() -> None:
    assert cpu.missing_cpu_features(_HASWELL) == []
    assert cpu.missing_cpu_features(_HASWELL | {"avx512f", "amx_tile"}) == []


@x86_only
def test_an_older_cpu_is_told_what_it_lacks() -> None:
    sandy_bridge = _HASWELL - {"avx2", "fma", "bmi2", "f16c"}
    assert cpu.missing_cpu_features(sandy_bridge) == ["AVX2", "F16C", "FMA", "BMI2"]
    nehalem = sandy_bridge - {"avx"}
    assert "AVX" in cpu.missing_cpu_features(nehalem)


def test_the_report_names_the_flags_that_matter() -> None:
    report = cpu.cpu_report()
    if cpu.cpu_flags() is not None and cpu.is_x86_64():
        assert "avx2" in report and ("has" in report and "lacks" in report)


@pytest.mark.skipif(
    importlib.util.find_spec("xllamacpp") is None or bool(cpu.missing_cpu_features()),
    reason="the local-llm extra is not installed, or this CPU cannot import it",
)
def test_the_checked_features_are_the_ones_the_installed_runtime_was_built_with() -> None:
    # In a child process, as in production: the server itself never imports the runtime.
    info = subprocess.run(
        [sys.executable, "-c", "import xllamacpp; print(xllamacpp.get_system_info())"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    listed = {
        name.strip()
        for part in info.replace("CPU :", "").split("|")
        if (name := part.partition("=")[0]).strip() and part.partition("=")[2].strip() == "1"
    }
    assert listed, info
    if cpu.is_x86_64():
        assert listed - _NOT_INSTRUCTIONS == set(cpu.RUNTIME_X86_FEATURES), info
