"""precision="auto": the rule for every kind of hardware, faked, and what it does to models and saved files."""

import keras
import numpy as np
import pytest

from keras_convlstm import precision
from keras_convlstm.models import build_model

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


def test_real_machine_flags_are_read_from_cpuinfo():
    flags = precision.cpu_flags()
    info = precision.cpu_info()
    assert flags == (frozenset(info["flags"].split()) if "flags" in info else None)
    assert precision.resolve_precision("auto") in precision.PRECISIONS


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
    model = build_model("cpu-fast", image_size=16, filters=(4, 4), kernel_sizes=(3, 3))
    assert model.config.precision == expected
    assert model.get_layer("conv_lstm_1").dtype_policy.name == policy
    assert model.get_layer("output_conv").dtype_policy.name == "float32"
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == (expected == "float16")


def test_a_saved_model_keeps_the_precision_it_was_built_in(fake_hardware, tmp_path):
    fake_hardware(cpu_flags=AVX2_ONLY)
    keras.utils.set_random_seed(0)
    model = build_model("cpu-quality", image_size=16, filters=(4, 4), kernel_sizes=(3, 3))
    assert model.config.precision == "float32"
    model.save(tmp_path / "model.keras")
    fake_hardware(cpu_flags=AMX)  # read back on a machine where "auto" means bfloat16
    reloaded = keras.saving.load_model(tmp_path / "model.keras", compile=False)
    assert reloaded.config == model.config
    assert reloaded.get_layer("conv_lstm_2").dtype_policy.name == "float32"
    frames = np.random.default_rng(0).random((2, 3, 16, 16, 1), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(reloaded(frames)), np.asarray(model(frames)))
