"""Achieved training GFLOP/s of ConvLSTM models against this CPU's float32 peak.

FLOPs are counted analytically from the built model, convolutions only (the gate nonlinearities, the state
update, batch normalisation and the optimizer are left out):

- ConvLSTM2D, per frame: ``2 * H * W * k_h * k_w * (C_in + F) * 4F`` (the input and recurrent convolutions
  of the four gates, 'same' padding, stride 1);
- Conv3D (the output layer), per frame: ``2 * H * W * k_t * k_h * k_w * C_in * C_out``.

A training step is counted as 3x the forward pass (forward, plus gradients with respect to the inputs and to
the weights). ``model.fit`` runs on 19-frame inputs (frames 0..18 predicting 1..19), the first steps excluded.

Peak float32 FLOP/s = cores x clock x FLOPs per cycle per core. The clock is "cpu MHz" of /proc/cpuinfo (on
a virtual machine that is usually the nominal clock; boost clocks are higher). FLOPs per cycle come from the
CPU flags: two fused multiply-add units of the widest vector width, 2 FLOPs each per lane:

- AMD family 25 (Zen 3 and Zen 4): 32. Zen 4 accepts AVX-512 instructions (avx512f) but executes them on
  256-bit units, so its float32 rate is that of AVX2;
- avx512f on any other CPU: 64 (assumes two 512-bit FMA units; some Intel parts have one, giving 32);
- avx2 and fma: 32; avx: 16; otherwise 8.

``--flops-per-cycle`` and ``--ghz`` override both numbers. The bfloat16 rows are still compared with the
float32 peak. Because a virtual machine's "cpu MHz" is usually the nominal clock while the cores boost above
it, the script also measures a practical ceiling: the float32 rate of a large ``tf.matmul`` (square matrices,
the best-tuned kernel of the same library), and reports each system against both. The bfloat16 rate of the same
matmul bounds the speed-up that bfloat16 training can reach on this CPU.

Usage (from the repository root)::

    python -m benchmarks.flops [--quick] [--flops-per-cycle N] [--ghz G]
"""

from __future__ import annotations

import sys
import time

import keras
import tensorflow as tf

from benchmarks import common
from keras_convlstm import data

NAME = "flops"
FULL = {"stride": 1, "num_frames": 20, "matmul_size": 4096, "matmul_repeats": 4}
QUICK = {"stride": 4, "num_frames": 6, "matmul_size": 256, "matmul_repeats": 2}
# (label, preset, overrides, batch size, warm-up steps, timed steps); quick runs use QUICK_STEPS instead.
SYSTEMS = (
    ("official network, float32 (official)", "keras-example", {}, 5, 2, 8),
    ("official network, bfloat16", "keras-example", {"precision": "bfloat16"}, 5, 2, 8),
    ("cpu-fast", "cpu-fast", {}, 16, 3, 20),
)
QUICK_STEPS = (1, 2)  # warm-up and timed steps of a quick run
SEED = 0
TRAINING_FACTOR = 3


def conv_flops_per_frame(model: keras.Model) -> dict[str, float]:
    """Forward convolution FLOPs per frame of each ConvLSTM2D and Conv3D layer of ``model``, by layer name."""
    counts = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.ConvLSTM2D):
            _, _, height, width, in_channels = layer.input.shape
            kernel_h, kernel_w = layer.kernel_size
            filters = layer.filters
            counts[layer.name] = 2.0 * height * width * kernel_h * kernel_w * (in_channels + filters) * 4 * filters
        elif isinstance(layer, keras.layers.Conv3D):
            _, _, height, width, out_channels = layer.output.shape
            kernel_t, kernel_h, kernel_w = layer.kernel_size
            counts[layer.name] = (
                2.0 * height * width * kernel_t * kernel_h * kernel_w * layer.input.shape[-1] * out_channels
            )
    return counts


def flops_per_cycle(info: dict[str, str]) -> tuple[int, str]:
    """float32 FLOPs per cycle per core from /proc/cpuinfo fields, and the assumption behind the number."""
    flags = set(info.get("flags", "").split())
    vendor, family = info.get("vendor_id", ""), info.get("cpu family", "")
    if vendor == "AuthenticAMD" and family == "25":
        note = "AVX-512 on 256-bit units" if "avx512f" in flags else "AVX2"
        return 32, f"AMD family 25 (Zen 3/4): 2 FMA units x 8 float32 lanes x 2 ({note})"
    if "avx512f" in flags:
        return 64, "avx512f: assumed 2 FMA units x 16 float32 lanes x 2"
    if {"avx2", "fma"} <= flags:
        return 32, "avx2 + fma: 2 FMA units x 8 float32 lanes x 2"
    if "avx" in flags:
        return 16, "avx without fma: 1 add + 1 multiply unit x 8 float32 lanes"
    return 8, "no avx: 1 add + 1 multiply unit x 4 float32 lanes"


def peak(info: dict[str, str], per_cycle: int | None = None, ghz: float | None = None) -> dict[str, object]:
    """The float32 peak with the numbers and assumptions it rests on (``per_cycle``, ``ghz``: given values)."""
    if per_cycle is not None:
        assumption = "given with --flops-per-cycle"
    else:
        per_cycle, assumption = flops_per_cycle(info)
    if ghz is not None:
        clock_source = "given with --ghz"
    elif "cpu MHz" in info:
        ghz, clock_source = float(info["cpu MHz"]) / 1000, '"cpu MHz" of /proc/cpuinfo'
    else:
        raise SystemExit("no 'cpu MHz' in /proc/cpuinfo: give the clock with --ghz")
    cores = common.machine_info()["cores"]
    return {
        "cores": cores,
        "ghz": ghz,
        "clock_source": clock_source,
        "flops_per_cycle": per_cycle,
        "flops_per_cycle_assumption": assumption,
        "peak_gflops": cores * ghz * per_cycle,
    }


def describe_peak(ceiling: dict[str, object]) -> str:
    """One line: the float32 peak of :func:`peak`, how it was obtained, and the matmul rates when measured."""
    text = (
        f"float32 peak: {ceiling['peak_gflops']:.1f} GFLOP/s = {ceiling['cores']} cores x {ceiling['ghz']:.3f} GHz "
        f"({ceiling['clock_source']}) x {ceiling['flops_per_cycle']} FLOP/cycle "
        f"({ceiling['flops_per_cycle_assumption']})"
    )
    if "matmul_gflops" in ceiling:
        text += f"; float32 matmul: {ceiling['matmul_gflops']:.1f} GFLOP/s"
    if "matmul_bf16_gflops" in ceiling:
        ratio = ceiling["matmul_bf16_gflops"] / ceiling["matmul_gflops"]
        text += f"; bfloat16 matmul: {ceiling['matmul_bf16_gflops']:.1f} GFLOP/s ({ratio:.2f}x float32)"
    return text


def matmul_gflops(size: int, repeats: int, dtype: tf.DType = tf.float32) -> float:
    """GFLOP/s of ``tf.matmul`` on two ``size x size`` ``dtype`` matrices (best of ``repeats`` after a warm-up)."""
    a = tf.cast(tf.random.stateless_normal((size, size), seed=(1, 2)), dtype)
    b = tf.cast(tf.random.stateless_normal((size, size), seed=(3, 4)), dtype)
    product = tf.function(tf.matmul)
    product(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        product(a, b).numpy()
        best = min(best, time.perf_counter() - started)
    return 2.0 * size**3 / best / 1e9


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = common.argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--flops-per-cycle", type=int, default=None, help="float32 FLOPs per cycle per core")
    parser.add_argument("--ghz", type=float, default=None, help="clock in GHz used for the peak")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    ceiling = peak(common.cpu_info(), args.flops_per_cycle, args.ghz)
    print(common.describe_machine(common.machine_info()), flush=True)
    ceiling["matmul_gflops"] = matmul_gflops(settings["matmul_size"], settings["matmul_repeats"])
    ceiling["matmul_bf16_gflops"] = matmul_gflops(settings["matmul_size"], settings["matmul_repeats"], tf.bfloat16)
    runs = [
        {"label": label, "preset": preset, "overrides": overrides, "batch_size": batch, "steps": (warmup, timed)}
        for label, preset, overrides, batch, warmup, timed in SYSTEMS
    ]
    if args.quick:
        runs = [{**run, "steps": QUICK_STEPS} for run in runs]
    largest = max(run["batch_size"] * sum(run["steps"]) for run in runs)
    sequences = common.moving_mnist(largest, seed=1, num_frames=settings["num_frames"], stride=settings["stride"])
    inputs, targets = data.create_shifted_frames(sequences)
    frames = inputs.shape[1]
    systems = {}
    for run in runs:
        label, batch_size, (warmup, timed) = run["label"], run["batch_size"], run["steps"]
        count = batch_size * (warmup + timed)
        print(f"training {label} ...", flush=True)
        model, timing = common.timed_training(
            run["preset"],
            inputs[:count],
            targets[:count],
            batch_size=batch_size,
            warmup_steps=warmup,
            seed=SEED,
            image_size=64 // settings["stride"],
            **run["overrides"],
        )
        per_frame = conv_flops_per_frame(model)
        forward = sum(per_frame.values()) * frames
        achieved = TRAINING_FACTOR * forward * timing["sequences_per_s"] / 1e9
        systems[label] = {
            "preset": run["preset"],
            "precision": model.config.precision,
            "batch_size": batch_size,
            "frames": frames,
            "forward_flops_per_frame_by_layer": per_frame,
            "forward_gflop_per_sequence": forward / 1e9,
            "training_gflop_per_sequence": TRAINING_FACTOR * forward / 1e9,
            "achieved_gflops": achieved,
            "fraction_of_fp32_peak": achieved / ceiling["peak_gflops"],
            "fraction_of_matmul": achieved / ceiling["matmul_gflops"],
            **timing,
        }
        keras.backend.clear_session()
    results = {"peak": ceiling, "systems": systems}
    rows = [
        [
            label,
            entry["precision"],
            entry["batch_size"],
            entry["sequences_per_s"],
            entry["training_gflop_per_sequence"],
            entry["achieved_gflops"],
            f"{entry['fraction_of_fp32_peak']:.1%}",
            f"{entry['fraction_of_matmul']:.1%}",
        ]
        for label, entry in systems.items()
    ]
    header = [
        "system",
        "precision",
        "batch",
        "seq/s",
        "train GFLOP/seq",
        "achieved GFLOP/s",
        "of fp32 peak",
        "of matmul",
    ]
    print(
        f"\n{frames}-frame {64 // settings['stride']}x{64 // settings['stride']} inputs; training = "
        f"{TRAINING_FACTOR} x forward convolution FLOPs"
    )
    print(common.table(header, rows))
    print(f"\n{describe_peak(ceiling)} ({settings['matmul_size']}^2 matrices)")
    common.finish(NAME, args, argv, {**settings, "runs": runs}, results)
    return results


if __name__ == "__main__":
    main()
