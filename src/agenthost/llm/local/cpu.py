"""What the local model's runtime needs of the CPU, checked before its process starts.

The xllamacpp wheel carries one build of llama.cpp's CPU backend, compiled for x86-64 with AVX2, FMA,
F16C and BMI2 (``xllamacpp.get_system_info()`` lists them; a test keeps ``RUNTIME_X86_FEATURES`` in
step with the installed wheel). It runs on any x86-64 CPU of the last decade (Intel Haswell, AMD
Excavator/Zen and later, AVX-512 and AMX hosts included); on an older one its process would die of
SIGILL at the first matrix product. Checking ``/proc/cpuinfo`` first turns that into a clear error.
Only x86-64 is checked here; on arm64 a worker that dies of a signal is reported as such (client.py).
"""

from __future__ import annotations

import platform
from functools import cache
from pathlib import Path

# llama.cpp's name of each instruction set the runtime was built with → the Linux cpuinfo flag.
RUNTIME_X86_FEATURES: dict[str, str] = {
    "SSE3": "pni",
    "SSSE3": "ssse3",
    "AVX": "avx",
    "AVX2": "avx2",
    "F16C": "f16c",
    "FMA": "fma",
    "BMI2": "bmi2",
}
# Implied by AVX2 code generation without being listed by llama.cpp.
_IMPLIED = {"sse4_1": "SSE4.1", "sse4_2": "SSE4.2"}
# Reported with a crash or a refusal: the flags that decide which llama.cpp code can run.
_REPORTED = ("sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512bw", "avx512_vnni", "amx_tile")


@cache
def cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags from ``/proc/cpuinfo`` (None where that file or its flags are missing)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return None


def is_x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def missing_cpu_features(flags: frozenset[str] | None = None) -> list[str]:
    """The instruction sets the runtime needs and this CPU lacks (empty when it can run, or cannot tell)."""
    flags = flags if flags is not None else cpu_flags()
    if flags is None or not is_x86_64():
        return []
    needed = {**{flag: name for name, flag in RUNTIME_X86_FEATURES.items()}, **_IMPLIED}
    return [name for flag, name in needed.items() if flag not in flags]


def cpu_report() -> str:
    """One line for the log: machine, model name and the flags that matter."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    flags = cpu_flags() or frozenset()
    present = [flag for flag in _REPORTED if flag in flags]
    absent = [flag for flag in _REPORTED if flag not in flags]
    return (
        f"{platform.machine()} {model or 'unknown model'}; has {' '.join(present) or 'none'}; "
        f"lacks {' '.join(absent) or 'none'}"
    )
