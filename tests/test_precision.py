"""precision="auto": the rule for every kind of hardware, faked, and what it does to models and saved files."""

import platform
import sys

import keras
import pytest
from harness import random_inputs, run_model_saving_test, tiny_model

from keras_convlstm import precision

AVX2_ONLY = {"sse4_2", "avx", "avx2", "fma"}  # an AMD Zen 3 or an older Intel CPU
AVX512_BF16 = AVX2_ONLY | {"avx512f", "avx512_bf16"}  # AMD Zen 4, Intel Cooper Lake
AMX = AVX2_ONLY | {"avx512f", "amx_tile", "amx_bf16"}  # Intel Sapphire Rapids and later


@pytest.mark.parametrize(
    ("cpu_flags", "gpu", "isa", "expected"),
    [
        (AVX2_ONLY, None, None, "float32"),
        (AVX512_BF16, None, None, "bfloat16"),
        (AMX, None, None, "bfloat16"),
        (AVX2_ONLY | {"avx512f"}, None, None, "float32"),  # AVX-512 without its bfloat16 extension
        (None, None, None, "float32"),  # flags unknown (not Linux)
        (AVX512_BF16, None, "AVX2", "float32"),  # oneDNN limited below the bfloat16 instructions
        (AVX512_BF16, None, "avx512_core", "float32"),
        (AVX512_BF16, None, "AVX512_CORE_BF16", "bfloat16"),
        (AMX, None, "ALL", "bfloat16"),
        (AVX2_ONLY, (7, 5), None, "float16"),  # a T4: float16 with loss scaling
        (AVX2_ONLY, (8, 0), None, "bfloat16"),  # an A100
        (AVX512_BF16, (9, 0), "AVX2", "bfloat16"),  # the GPU computes; the CPU limit does not matter
        (AMX, (6, 1), None, "float16"),
    ],
)
def test_choose_precision_for_each_kind_of_hardware(cpu_flags, gpu, isa, expected):
    assert precision.choose_precision(cpu_flags, gpu, isa) == expected


@pytest.mark.parametrize(
    ("cpu_flags", "gpu", "expected"),
    [(AVX2_ONLY, None, "float32"), (AMX, None, "bfloat16"), (None, (7, 5), "float16"), (None, (8, 6), "bfloat16")],
)
def test_resolve_precision_asks_the_hardware_only_for_auto(fake_hardware, cpu_flags, gpu, expected):
    fake_hardware(cpu_flags=cpu_flags, gpu_compute_capability=gpu)
    assert precision.resolve_precision() == precision.resolve_precision("auto") == expected
    for explicit in precision.PRECISIONS:
        assert precision.resolve_precision(explicit) == explicit


def test_resolve_precision_reads_the_onednn_limit(fake_hardware, monkeypatch):
    fake_hardware(cpu_flags=AMX)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert precision.resolve_precision("auto") == "float32"
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in precision.describe_hardware()


def test_resolve_precision_rejects_unknown_names():
    with pytest.raises(ValueError, match=r"precision must be 'auto' or one of \('float32', .*got 'float64'"):
        precision.resolve_precision("float64")


def _cpuinfo(model_name: str, flags: str | None, processors: int = 2) -> str:
    """A /proc/cpuinfo as Linux writes it: one block per processor, ``key\t: value`` lines, blank lines between."""
    blocks = []
    for index in range(processors):
        lines = [f"processor\t: {index}", "vendor_id\t: GenuineIntel", f"model name\t: {model_name}"]
        if flags is not None:
            lines.append(f"flags\t\t: {flags}")
        blocks.append("\n".join([*lines, "bogomips\t: 4000.00", ""]))
    return "\n".join(blocks)


ARM_CPUINFO = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes sha2 crc32 bf16\n\n"


@pytest.mark.parametrize(
    ("cpuinfo", "flags", "auto", "described"),
    [
        (
            _cpuinfo("AMD EPYC 7763 64-Core Processor", "fpu sse4_2 avx avx2 fma"),
            {"fpu", "sse4_2", "avx", "avx2", "fma"},
            "float32",
            "AMD EPYC 7763 64-Core Processor (no bfloat16 instructions)",
        ),
        (
            _cpuinfo("AMD EPYC 9654 96-Core Processor", "fpu avx2 avx512f avx512_bf16"),
            {"fpu", "avx2", "avx512f", "avx512_bf16"},
            "bfloat16",
            "AMD EPYC 9654 96-Core Processor (avx512_bf16)",
        ),
        (
            _cpuinfo("Intel(R) Xeon(R) Platinum 8480+", "avx2 avx512f amx_tile amx_bf16 avx512_bf16", processors=1),
            {"avx2", "avx512f", "amx_tile", "amx_bf16", "avx512_bf16"},
            "bfloat16",
            "Intel(R) Xeon(R) Platinum 8480+ (avx512_bf16, amx_bf16)",
        ),
        (
            _cpuinfo("Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", "avx2 avx512f avx512bw"),
            {"avx2", "avx512f", "avx512bw"},
            "float32",
            "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz (no bfloat16 instructions)",
        ),
        (ARM_CPUINFO, None, "float32", "(CPU flags unknown)"),  # ARM Linux names its flags "Features"
        (None, None, "float32", "(CPU flags unknown)"),  # no /proc/cpuinfo: not Linux
    ],
)
def test_the_cpu_flags_and_precision_read_from_cpuinfo(monkeypatch, tmp_path, cpuinfo, flags, auto, described):
    """Known /proc/cpuinfo texts, a CPU without a GPU: the flags read, "auto"'s precision and its description."""
    fake = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        fake.write_text(cpuinfo)
    real_path = precision.Path
    monkeypatch.setattr(precision, "Path", lambda path: fake if str(path) == "/proc/cpuinfo" else real_path(path))
    monkeypatch.setattr(precision, "gpu_compute_capability", lambda: None)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert precision.cpu_flags() == (None if flags is None else frozenset(flags))
    assert precision.resolve_precision("auto") == auto
    assert precision.describe_hardware().endswith(described)


def test_this_machine_resolves_auto_to_a_precision():
    assert precision.resolve_precision("auto") in precision.PRECISIONS
    if sys.platform == "linux" and platform.machine() == "x86_64":
        assert "sse2" in precision.cpu_flags()  # every x86-64 CPU has SSE2


@pytest.mark.parametrize(
    ("cpu_flags", "gpu", "expected", "policy"),
    [
        (AVX2_ONLY, None, "float32", "float32"),
        (AVX512_BF16, None, "bfloat16", "mixed_bfloat16"),
        (None, (7, 5), "float16", "mixed_float16"),
    ],
)
def test_cpu_fast_computes_in_the_precision_of_the_hardware(fake_hardware, cpu_flags, gpu, expected, policy):
    fake_hardware(cpu_flags=cpu_flags, gpu_compute_capability=gpu)
    model = tiny_model("cpu-fast", kernel_sizes=(3, 3))
    assert model.config.precision == expected
    assert model.get_layer("conv_lstm_1").dtype_policy.name == policy
    assert model.get_layer("output_conv").dtype_policy.name == "float32"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == (expected == "float16")


def test_a_saved_model_keeps_the_precision_it_was_built_in(fake_hardware, tmp_path):
    fake_hardware(cpu_flags=AVX2_ONLY)
    model = tiny_model("cpu-quality", kernel_sizes=(3, 3))
    assert model.config.precision == "float32"
    fake_hardware(cpu_flags=AMX)  # saved and read back on a machine where "auto" means bfloat16
    assert precision.resolve_precision("auto") == "bfloat16"
    reloaded = run_model_saving_test(model, random_inputs(model, time=3), tmp_path)
    assert reloaded.config == model.config
    assert reloaded.get_layer("conv_lstm_2").dtype_policy.name == "float32"
