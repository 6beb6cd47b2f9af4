"""The benchmark scripts' quick mode runs end to end and writes figures that agree with each other.

The quick runs (marked ``bench``) take tens of seconds each and measure rather than check the package, so ``make
bench`` runs them before it measures and ``make test`` leaves them out; the counting and sorting helpers below are
part of ``make test``."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from harness import tiny_model

from benchmarks import flops, step_profile
from benchmarks.ship_pretrained import rollout_table
from keras_convlstm import evaluation, precision
from keras_convlstm.models import build_model

ROOT = Path(__file__).resolve().parents[1]
PRECISIONS = ("float32", "bfloat16")


def run_quick(name: str, out: Path, *options: str) -> dict:
    command = [sys.executable, "-m", f"benchmarks.{name}", "--quick", "--out", str(out), *options]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True, timeout=600)
    return json.loads(out.read_text())


def test_conv_flops_of_the_official_network_are_counted_per_layer():
    counts = flops.conv_flops_per_frame(build_model("keras-example"))
    pixels = 64 * 64
    assert counts == {
        "conv_lstm_1": 2.0 * pixels * 25 * (1 + 64) * 256,
        "conv_lstm_2": 2.0 * pixels * 9 * (64 + 64) * 256,
        "conv_lstm_3": 2.0 * pixels * 1 * (64 + 64) * 256,
        "output_conv": 2.0 * pixels * 27 * 64 * 1,
    }


@pytest.mark.bench
def test_rollout_speed_quick_run(tmp_path):
    record = run_quick("rollout_speed", tmp_path / "rollout.json")
    settings = record["settings"]
    assert record["quick"] is True and record["benchmark"] == "rollout_speed"
    assert [entry["batch_size"] for entry in record["results"]] == settings["batch_sizes"]
    for entry in record["results"]:
        assert entry["max_abs_difference"] <= 1e-5
        assert entry["speedup_steady"] == pytest.approx(entry["official_steady_s"] / entry["ours_steady_s"])
        ours_frames = entry["batch_size"] * (settings["context"] + settings["horizon"] - 1)
        expected = ours_frames * entry["conv_flops_per_frame"] / entry["ours_steady_s"] / 1e9
        assert entry["ours_steady_gflops"] == pytest.approx(expected)
    assert settings["peak"]["peak_gflops"] == pytest.approx(
        settings["peak"]["cores"] * settings["peak"]["ghz"] * settings["peak"]["flops_per_cycle"]
    )


@pytest.mark.bench
@pytest.mark.half_precision
def test_flops_quick_run(tmp_path):
    record = run_quick("flops", tmp_path / "flops.json")
    peak = record["results"]["peak"]
    assert peak["matmul_gflops"] > 0 and peak["matmul_bf16_gflops"] > 0
    systems = record["results"]["systems"]
    assert sorted(entry["preset"] for entry in systems.values()) == ["cpu-fast", "keras-example", "keras-example"]
    for entry in systems.values():
        forward = sum(entry["forward_flops_per_frame_by_layer"].values()) * entry["frames"]
        assert entry["training_gflop_per_sequence"] == pytest.approx(3 * forward / 1e9)
        assert entry["achieved_gflops"] == pytest.approx(3 * forward * entry["sequences_per_s"] / 1e9)
        assert entry["fraction_of_matmul"] == pytest.approx(entry["achieved_gflops"] / peak["matmul_gflops"])


@pytest.mark.bench
def test_replicas_quick_mode_times_one_and_two_replicas(tmp_path):
    results = run_quick("replicas", tmp_path / "replicas.json")["results"]
    systems = results["systems"]
    assert sorted(systems) == sorted(
        f"{label}, {count} replica(s)" for label in ("cpu-fast", "official network") for count in (1, 2)
    )
    for label, ratio in results["two_over_one_replica"].items():
        one, two = systems[f"{label}, 1 replica(s)"], systems[f"{label}, 2 replica(s)"]
        assert one["batch_size"] == two["batch_size"] and two["replicas"] == 2
        assert ratio == pytest.approx(two["sequences_per_s"] / one["sequences_per_s"])


@pytest.mark.bench
def test_conv_products_quick_run_times_each_direction_and_agrees_with_xla(tmp_path):
    record = run_quick("conv_products", tmp_path / "conv_products.json")
    results = record["results"]
    (case,) = results["convolutions"].values()
    assert list(case) == ["bfloat16"]
    assert list(case["bfloat16"]) == ["forward", "input gradient", "kernel gradient"]
    for entry in case["bfloat16"].values():
        assert entry["xla_ms"] > 0 and entry["products_ms"] > 0
        assert entry["products_over_xla"] == pytest.approx(entry["products_ms"] / entry["xla_ms"])
        assert entry["largest_gap"] <= 2**-7  # within one bfloat16 rounding of XLA's result
    assert set(results["matmul"]) == {"float32", "bfloat16"}
    m, k, n = record["settings"]["matmul"]
    for entry in results["matmul"].values():
        assert entry["gflop_per_s"] == pytest.approx(2 * m * k * n / entry["ms"] / 1e6)


@pytest.mark.bench
def test_precision_isa_quick_run_measures_under_the_avx2_limit_in_its_own_process(tmp_path):
    record = run_quick("precision_isa", tmp_path / "precision_isa.json", "--limits", "AVX2")
    assert list(record["results"]["limits"]) == ["AVX2"]
    measured = record["results"]["limits"]["AVX2"]
    machine = measured["machine"]
    assert machine["onednn_max_cpu_isa"] == "AVX2" and machine["cpu_flags"] == record["machine"]["cpu_flags"]
    assert machine["auto_precision"] == precision.choose_precision(
        precision.cpu_flags(), precision.gpu_compute_capability(), "AVX2"
    )
    assert list(measured["systems"]) == [f"cpu-fast, {name}" for name in PRECISIONS]
    assert measured["systems"]["cpu-fast, float32"]["sequences_per_s"] > 0
    assert measured["matmul"]["float32"]["gflops"] > 0
    # bfloat16 runs (emulated), or fails with oneDNN's error: a graph error in training, an abort in the matmul.
    bfloat16 = measured["systems"]["cpu-fast, bfloat16"]
    assert bfloat16.get("sequences_per_s", 0) > 0 or bfloat16["error"]
    assert measured["matmul"]["bfloat16"].get("gflops", 0) > 0 or "aborted" in measured["matmul"]["bfloat16"]["error"]
    ratio = record["results"]["ratios"]["AVX2: cpu-fast bfloat16 / float32"]
    if "sequences_per_s" in bfloat16:
        float32 = measured["systems"]["cpu-fast, float32"]["sequences_per_s"]
        assert ratio == pytest.approx(bfloat16["sequences_per_s"] / float32)
    else:
        assert ratio is None


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ("adam/Add_10:AddV2", "optimizer"),
        (
            "gradient_tape/m/conv_lstm_1/while/grad/conv_lstm_cell/convolution_6_grad/Conv2DBackpropFilter:"
            "_MklNativeConv2DBackpropFilter",
            "convolution gradient (weights)",
        ),
        (
            "gradient_tape/m/output_conv/convolution/Conv3DBackpropInputV2:_MklNativeConv3DBackpropInputV2",
            "convolution gradient (inputs)",
        ),
        ("m/conv_lstm_2/while/conv_lstm_cell/convolution_3:_MklNativeConv2D", "convolution (forward)"),
        ("m/batch_norm_1/Cast_5:Cast", "casts"),
        ("gradient_tape/m/batch_norm_2/batchnorm/mul_1/Mul:Mul", "BatchNormalization"),
        ("m/conv_lstm_3/while/conv_lstm_cell/Sigmoid_2:Sigmoid", "gate arithmetic"),
        ("m/conv_lstm_1/while/conv_lstm_cell/split_2:Split", "layout and copies"),
        ("m/binary_crossentropy/Mean:Mean", "reductions (loss, metrics)"),
        ("m/conv_lstm_1/VariableShape:VariableShape", "other"),
    ],
)
def test_profiled_kernels_are_sorted_by_kind_of_work(event, kind):
    assert step_profile.kind_of(event) == kind


@pytest.mark.bench
@pytest.mark.half_precision
def test_step_profile_quick_run_adds_up(tmp_path):
    record = run_quick("step_profile", tmp_path / "profile.json", "--profiled-steps", "1")
    results = record["results"]
    throughput, profile = results["throughput"], results["profile"]
    assert throughput["fraction_of_bf16_matmul"] == pytest.approx(
        throughput["achieved_gflops"] / results["ceiling"]["matmul_bf16_gflops"]
    )
    assert sum(profile["kinds_s_per_step"].values()) == pytest.approx(profile["kernel_s_per_step"])
    assert sum(profile["kinds_share"].values()) == pytest.approx(1.0)
    assert profile["compute_threads"] >= 1 and profile["wall_s_per_step"] > 0
    for kind in ("convolution (forward)", "convolution gradient (weights)", "gate arithmetic", "optimizer"):
        assert profile["kinds_s_per_step"][kind] > 0, kind


def test_the_shipping_record_takes_its_rollout_table_from_the_views_as_evaluate_would_score_it():
    """ship_pretrained rolls Moving MNIST out once: the views' rollout row is ``evaluate``'s table, to the bit."""
    model = tiny_model("keras-example-causal", filters=(4,), kernel_sizes=(3,), image_size=16, precision="float32")
    sequences = np.random.default_rng(5).integers(0, 256, size=(3, 7, 16, 16, 1), dtype=np.uint8)
    views = evaluation.evaluate_views(model, sequences, 4, 3, batch_size=2)
    table, scored = rollout_table(views), evaluation.evaluate(model, sequences, 4, 3, batch_size=2)
    assert table.systems == scored.systems == ["model", "copy-last-frame", "blank"]
    assert table.threshold == scored.threshold
    for system in scored.systems:
        for metric, values in scored.metrics[system].items():
            np.testing.assert_array_equal(table.metrics[system][metric], values)
