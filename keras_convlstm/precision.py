"""The compute precision that suits the machine: ``precision="auto"`` resolved from what the hardware reports.

bfloat16 halves the memory traffic of every activation, but it only runs faster where the hardware multiplies
bfloat16 natively: a CPU with the AVX512_BF16 or AMX instructions, or a GPU of compute capability 8.0 or newer.
Elsewhere each bfloat16 product is emulated with conversions: without those instructions cpu-fast trained 3.4x
slower in bfloat16 than in float32, with them 1.7x faster (BENCHMARKS.md, section (g)). Older GPUs (a T4 is 7.5)
multiply float16 natively; float16 has a narrow range, so it trains with loss scaling
(``keras.optimizers.LossScaleOptimizer``).

:func:`choose_precision` is the rule; :func:`resolve_precision` applies it to this machine:

============================================  ============
hardware                                      ``"auto"``
============================================  ============
GPU of compute capability >= 8.0               ``"bfloat16"``
older GPU                                      ``"float16"``
CPU with ``avx512_bf16`` or ``amx_bf16``       ``"bfloat16"``
any other CPU, or flags unknown                ``"float32"``
============================================  ============

oneDNN, the CPU kernel library of TensorFlow, can be told to use fewer instructions than the CPU has
(``ONEDNN_MAX_CPU_ISA=AVX2``); bfloat16 is then emulated, so a limit that excludes the bfloat16 instructions counts as
a CPU without them.

Example:
    >>> choose_precision(cpu_flags={"avx2", "fma"}, gpu_compute_capability=None)
    'float32'
    >>> choose_precision(cpu_flags=None, gpu_compute_capability=(7, 5))
    'float16'
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterable
from pathlib import Path

import keras

PRECISIONS = ("float32", "bfloat16", "float16")
AUTO = "auto"
# CPU flags (Linux /proc/cpuinfo names) of instructions that multiply bfloat16 natively.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
# Oldest CUDA compute capability with bfloat16 tensor cores (Ampere).
BF16_GPU_CAPABILITY = (8, 0)
# ONEDNN_MAX_CPU_ISA limits (oneDNN's names) below the bfloat16 instructions: oneDNN then emulates bfloat16.
PRE_BF16_ONEDNN_ISAS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")


def cpu_info() -> dict[str, str]:
    """The fields of the first processor in ``/proc/cpuinfo`` (empty where that file does not exist)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_flags() -> frozenset[str] | None:
    """The CPU's instruction-set flags as Linux names them (``avx2``, ``avx512_bf16``, ...); None when unknown.

    Only Linux reports them (``/proc/cpuinfo``); elsewhere the answer is None and ``"auto"`` chooses float32.
    """
    flags = cpu_info().get("flags")
    return frozenset(flags.split()) if flags else None


def gpu_compute_capability() -> tuple[int, int] | None:
    """CUDA compute capability ``(major, minor)`` of the oldest visible GPU, as the Keras backend reports it.

    Returns None when no GPU is visible (or the backend cannot tell, as the NumPy backend cannot).
    """
    backend = keras.backend.backend()
    capabilities = []
    if backend == "tensorflow":
        import tensorflow as tf

        for device in tf.config.list_physical_devices("GPU"):
            capability = tf.config.experimental.get_device_details(device).get("compute_capability")
            if capability:
                capabilities.append(tuple(capability))
    elif backend == "jax":
        import jax

        for device in jax.devices():
            if device.platform == "gpu" and getattr(device, "compute_capability", None):
                capabilities.append(tuple(int(part) for part in str(device.compute_capability).split(".")))
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            capabilities = [torch.cuda.get_device_capability(index) for index in range(torch.cuda.device_count())]
    return min(capabilities) if capabilities else None


def onednn_max_cpu_isa() -> str | None:
    """The ``ONEDNN_MAX_CPU_ISA`` limit set in the environment (upper case), or None when unset."""
    value = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    return value or None


def choose_precision(
    cpu_flags: Iterable[str] | None,
    gpu_compute_capability: tuple[int, int] | None,
    onednn_max_cpu_isa: str | None = None,
) -> str:
    """The precision ``"auto"`` stands for on hardware that reports these facts (see the module's table).

    Args:
        cpu_flags: the CPU's flags as in ``/proc/cpuinfo``, or None when unknown.
        gpu_compute_capability: ``(major, minor)`` of the GPU the model runs on, or None without a GPU.
        onednn_max_cpu_isa: the ``ONEDNN_MAX_CPU_ISA`` limit, or None when unset.

    Returns:
        ``"bfloat16"``, ``"float16"`` or ``"float32"``.
    """
    if gpu_compute_capability is not None:
        return "bfloat16" if tuple(gpu_compute_capability) >= BF16_GPU_CAPABILITY else "float16"
    if onednn_max_cpu_isa is not None and onednn_max_cpu_isa.upper() in PRE_BF16_ONEDNN_ISAS:
        return "float32"
    if cpu_flags is not None and not set(cpu_flags).isdisjoint(BF16_CPU_FLAGS):
        return "bfloat16"
    return "float32"


def resolve_precision(precision: str = AUTO) -> str:
    """``precision`` itself, or for ``"auto"`` the precision this machine computes fastest (:func:`choose_precision`).

    Args:
        precision: ``"auto"``, ``"float32"``, ``"bfloat16"`` or ``"float16"``.

    Returns:
        One of ``"float32"``, ``"bfloat16"``, ``"float16"``.

    Raises:
        ValueError: ``precision`` is none of those.
    """
    if precision in PRECISIONS:
        return precision
    if precision != AUTO:
        raise ValueError(f"precision must be {AUTO!r} or one of {PRECISIONS}, got {precision!r}")
    return choose_precision(cpu_flags(), gpu_compute_capability(), onednn_max_cpu_isa())


def describe_hardware() -> str:
    """One line naming what :func:`resolve_precision` looked at: the GPU, or the CPU's bfloat16 flags."""
    capability = gpu_compute_capability()
    if capability is not None:
        return f"GPU of compute capability {capability[0]}.{capability[1]}"
    flags = cpu_flags()
    model = cpu_info().get("model name", platform.processor() or "unknown CPU")
    if flags is None:
        found = "CPU flags unknown"
    else:
        found = ", ".join(flag for flag in BF16_CPU_FLAGS if flag in flags) or "no bfloat16 instructions"
    limit = onednn_max_cpu_isa()
    return f"{model} ({found}{f'; ONEDNN_MAX_CPU_ISA={limit}' if limit else ''})"
