"""This CPU: model name and the instruction sets that decide which inference paths are fast.

Read from ``/proc/cpuinfo`` (Linux) and PyTorch's own CPU probe; nothing here is assumed. The
paths it gates: bf16 (oneDNN / OpenVINO bf16 kernels need AVX512_BF16 or AMX-BF16; without
them PyTorch emulates bf16 at a fraction of fp32 speed), INT8 (VNNI's ``vpdpbusd`` sums u8 x s8
products in 32 bits; AVX2's ``vpmaddubsw`` saturates 16-bit pair sums, so INT8 weights keep 7
bits there).
"""

from __future__ import annotations

import functools
import hashlib
import platform
from pathlib import Path

__all__ = ["ISA_FLAGS", "cpu_flags", "cpu_model", "has_bf16", "has_vnni", "isa", "isa_kind",
           "machine_id", "unavailable_bf16"]  # fmt: skip

# The flags that matter for inference speed, in the order they are reported.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
             "amx_bf16", "amx_int8")  # fmt: skip


@functools.cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    model, flags = "", frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("model name") and not model:
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = frozenset(line.split(":", 1)[1].split())
            break
    return model or platform.processor() or platform.machine() or "unknown", flags


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` says."""
    return _cpuinfo()[0]


def cpu_flags() -> frozenset[str]:
    """All ``/proc/cpuinfo`` flags (empty off Linux)."""
    return _cpuinfo()[1]


def isa() -> list[str]:
    """The :data:`ISA_FLAGS` this CPU has, e.g. ``["avx2", "fma"]``."""
    flags = cpu_flags()
    return [f for f in ISA_FLAGS if f in flags]


def has_bf16() -> bool:
    """Native bf16 arithmetic (AVX512_BF16 or AMX-BF16), by the flags or PyTorch's probe."""
    flags = cpu_flags()
    if "avx512_bf16" in flags or "amx_bf16" in flags:
        return True
    try:
        import torch

        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (ImportError, AttributeError):
        return False


def has_vnni() -> bool:
    """INT8 dot products in 32 bits (AVX512-VNNI or AVX-VNNI)."""
    flags = cpu_flags()
    return "avx512_vnni" in flags or "avx_vnni" in flags


def isa_kind() -> str:
    """A short name of the kind of CPU, for tables: ``"AVX-512 + BF16 + VNNI"``, ``"AVX2"``..."""
    flags = cpu_flags()
    if "avx512f" in flags:
        parts = ["AVX-512"]
        if has_bf16():
            parts.append("BF16")
        if has_vnni():
            parts.append("VNNI")
        return " + ".join(parts)
    if "avx2" in flags:
        return "AVX2 + VNNI" if has_vnni() else "AVX2"
    return platform.machine() or "unknown"


def unavailable_bf16() -> str | None:
    """None when bf16 runs natively here, else the one-line reason."""
    if has_bf16():
        return None
    return (f"bf16 is not available on this CPU ({cpu_model()}: {', '.join(isa()) or 'no AVX'}; "
            "it needs avx512_bf16 or amx_bf16)")  # fmt: skip


def machine_id() -> str:
    """A short stable key of this kind of machine (CPU model + ISA flags + core count), for
    caches of measurements that depend on the CPU."""
    import os

    text = f"{cpu_model()}|{','.join(isa())}|{os.cpu_count()}"
    return hashlib.sha1(text.encode()).hexdigest()[:12]
