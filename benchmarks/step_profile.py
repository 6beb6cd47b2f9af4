"""Where the official network's bfloat16 training step spends its time, beside the bfloat16 matmul ceiling.

TensorFlow only. In one process:

1. the ceiling: ``tf.matmul`` of two 4096 x 4096 bfloat16 matrices (oneDNN's best kernel on this CPU; best of 4,
   :func:`benchmarks.flops.matmul_gflops`), and the same in float32;
2. the throughput: ``model.fit`` of the official network (``keras-example``, 746,689 parameters) in bfloat16,
   batch 5, 19-frame 64x64 inputs, after warm-up steps; its convolution FLOPs counted as in
   :mod:`benchmarks.flops` (3x the forward pass), hence the achieved GFLOP/s and their share of the ceiling;
3. the profile: TensorFlow's profiler around further training steps of the same model. Every kernel that the
   executor runs is timed on its thread (2 compute threads here); the script sums the times by kind of work
   (:data:`KINDS`): forward convolutions, the two convolution gradients, gate arithmetic (activations and their
   gradients, element-wise products and sums), casts between bfloat16 and float32, BatchNormalization, the
   optimizer (ops under the optimizer's name scope), layout and copies (transposes, reshapes, slices,
   concatenations), and the rest. Shares are of the summed kernel time; the kernel time over (wall time x
   threads) says how busy the threads were.

Usage (from the repository root)::

    python -m benchmarks.step_profile [--quick] [--profiled-steps 2]
"""

from __future__ import annotations

import collections
import re
import sys
import tempfile
from pathlib import Path

import keras
import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from benchmarks import common, flops
from keras_convlstm import data

NAME = "step_profile"
FULL = {"stride": 1, "num_frames": 20, "batch_size": 5, "warmup_steps": 2, "timed_steps": 4, "matmul_size": 4096}
QUICK = {"stride": 4, "num_frames": 6, "batch_size": 2, "warmup_steps": 1, "timed_steps": 1, "matmul_size": 256}
MATMUL_REPEATS = 4
SEED = 0
# Kinds of work, tried in order on "op name:op type": the first pattern found in it names the kind.
KINDS = (
    ("optimizer", re.compile(r"^(adam|Adam|sgd|SGD|optimizer)\w*/")),
    ("convolution gradient (weights)", re.compile(r"Conv[23]DBackpropFilter\w*$")),
    ("convolution gradient (inputs)", re.compile(r"Conv[23]DBackpropInput\w*$")),
    ("convolution (forward)", re.compile(r":(_Mkl)?(Native)?(_?Fused)?Conv[23]D\w*$")),
    ("casts", re.compile(r":(_Mkl)?Cast$")),
    ("BatchNormalization", re.compile(r"(^|/)(batch_norm|batch_normalization)\w*/|FusedBatchNorm")),
    (
        "gate arithmetic",
        re.compile(
            r":(_Mkl)?(Sigmoid|Tanh|Relu|Elu|SigmoidGrad|TanhGrad|ReluGrad|Mul|AddV2|Add|AddN|Sub|BiasAdd|"
            r"BiasAddGrad|Maximum|Minimum|Square|Neg|Log|Log1p|Exp|RealDiv|Rsqrt|RsqrtGrad|Sqrt|Select|SelectV2|"
            r"GreaterEqual|Less|Greater|LogicalAnd|ZerosLike|OnesLike|Fill|BroadcastTo)$"
        ),
    ),
    (
        "layout and copies",
        re.compile(
            r":(_Mkl)?(Transpose|Reshape|Pad|Slice|StridedSlice|StridedSliceGrad|ConcatV2|Split|SplitV|Pack|"
            r"Unpack|Identity|Tile|Squeeze|ExpandDims|TensorList\w*|GatherV2|Copy\w*)$"
        ),
    ),
    ("reductions (loss, metrics)", re.compile(r":(Sum|Mean|Max|Min|Prod|ArgMax)$")),
)
# Events of a compute thread that wrap kernels rather than being kernels.
WRAPPERS = ("Process", "ParallelFor", "ExecutorState::Process", "ExecutorDoneCallback")


def kind_of(event_name: str) -> str:
    """The kind of work (:data:`KINDS`) of a profiled kernel named ``"op name:op type"``; "other" if none."""
    for kind, pattern in KINDS:
        if pattern.search(event_name):
            return kind
    return "other"


def kernel_times(xplane: Path) -> tuple[dict[str, float], dict[str, float], float, int]:
    """Summed kernel seconds by kind and by op type, the wall seconds of the traced steps, and the threads.

    The wall time is the sum of the ``one_step_on_data`` events of the Python thread (Keras's training step).
    """
    space = xplane_pb2.XSpace()
    space.ParseFromString(xplane.read_bytes())
    (host,) = [plane for plane in space.planes if plane.name == "/host:CPU"]
    names = {key: metadata.name for key, metadata in host.event_metadata.items()}
    by_kind: collections.Counter = collections.Counter()
    by_type: collections.Counter = collections.Counter()
    wall, threads = 0.0, 0
    for line in host.lines:
        if line.name == "python":
            wall += sum(event.duration_ps for event in line.events if names[event.metadata_id] == "one_step_on_data")
            continue
        if not line.name.startswith("tf_Compute"):
            continue
        threads += 1
        for event in line.events:
            name = names[event.metadata_id]
            if ":" not in name or name.split(":")[-1] in WRAPPERS:
                continue
            by_kind[kind_of(name)] += event.duration_ps
            by_type[name.split(":")[-1]] += event.duration_ps
    to_s = 1e-12
    return (
        {kind: ps * to_s for kind, ps in by_kind.most_common()},
        {op: ps * to_s for op, ps in by_type.most_common()},
        wall * to_s,
        threads,
    )


def profile_steps(model: keras.Model, inputs, targets, steps: int, batch_size: int) -> dict[str, object]:
    """Traces ``steps`` training steps of ``model`` and returns :func:`kernel_times` as a record."""
    model.train_on_batch(inputs[:batch_size], targets[:batch_size])  # traces train_on_batch's own function
    with tempfile.TemporaryDirectory() as folder:
        tf.profiler.experimental.start(folder)
        for step in range(steps):
            batch = slice(step * batch_size, (step + 1) * batch_size)
            model.train_on_batch(inputs[batch], targets[batch])
        tf.profiler.experimental.stop()
        (xplane,) = Path(folder).rglob("*.xplane.pb")
        by_kind, by_type, wall, threads = kernel_times(xplane)
    total = sum(by_kind.values())
    return {
        "profiled_steps": steps,
        "wall_s_per_step": wall / steps,
        "compute_threads": threads,
        "kernel_s_per_step": total / steps,
        "busy_fraction": total / (wall * threads) if wall and threads else float("nan"),
        "kinds_s_per_step": {kind: seconds / steps for kind, seconds in by_kind.items()},
        "kinds_share": {kind: seconds / total for kind, seconds in by_kind.items()},
        "top_op_types_s_per_step": {op: seconds / steps for op, seconds in list(by_type.items())[:15]},
    }


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = common.argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--profiled-steps", type=int, default=2, help="training steps traced (>= 1)")
    args = parser.parse_args(argv)
    if args.profiled_steps < 1:
        parser.error(f"--profiled-steps: expected a whole number >= 1, got {args.profiled_steps}")
    settings = {**(QUICK if args.quick else FULL), "profiled_steps": args.profiled_steps}
    print(common.describe_machine(common.machine_info()), flush=True)
    size = settings["matmul_size"]
    ceiling = {
        "matmul_bf16_gflops": flops.matmul_gflops(size, MATMUL_REPEATS, tf.bfloat16),
        "matmul_fp32_gflops": flops.matmul_gflops(size, MATMUL_REPEATS),
    }
    batch_size, warmup, timed = settings["batch_size"], settings["warmup_steps"], settings["timed_steps"]
    count = batch_size * max(warmup + timed, args.profiled_steps)
    sequences = common.moving_mnist(count, seed=1, num_frames=settings["num_frames"], stride=settings["stride"])
    inputs, targets = data.create_shifted_frames(sequences)
    fitted = batch_size * (warmup + timed)
    print("training the official network in bfloat16 ...", flush=True)
    model, timing = common.timed_training(
        "keras-example",
        inputs[:fitted],
        targets[:fitted],
        batch_size=batch_size,
        warmup_steps=warmup,
        seed=SEED,
        image_size=64 // settings["stride"],
        precision="bfloat16",
    )
    gflop = flops.TRAINING_FACTOR * sum(flops.conv_flops_per_frame(model).values()) * inputs.shape[1] / 1e9
    achieved = gflop * timing["sequences_per_s"]
    throughput = {
        **timing,
        "training_gflop_per_sequence": gflop,
        "achieved_gflops": achieved,
        "fraction_of_bf16_matmul": achieved / ceiling["matmul_bf16_gflops"],
    }
    print("profiling ...", flush=True)
    profile = profile_steps(model, inputs, targets, args.profiled_steps, batch_size)
    results = {"ceiling": ceiling, "throughput": throughput, "profile": profile}
    print(
        f"\nbfloat16 matmul {ceiling['matmul_bf16_gflops']:.0f} GFLOP/s, float32 {ceiling['matmul_fp32_gflops']:.0f}; "
        f"official network in bfloat16: {timing['sequences_per_s']:.3g} sequences/s = {achieved:.0f} GFLOP/s, "
        f"{throughput['fraction_of_bf16_matmul']:.0%} of the bfloat16 matmul\n"
        f"profiled step: {profile['wall_s_per_step']:.3g} s wall, {profile['kernel_s_per_step']:.3g} s of kernels "
        f"on {profile['compute_threads']} threads ({profile['busy_fraction']:.0%} busy)"
    )
    rows = [[kind, seconds, profile["kinds_share"][kind]] for kind, seconds in profile["kinds_s_per_step"].items()]
    print(common.table(["kind of work", "kernel s per step", "share"], rows))
    print(common.table(["op type", "kernel s per step"], list(profile["top_op_types_s_per_step"].items())))
    common.finish(NAME, args, argv, settings, results)
    return results


if __name__ == "__main__":
    main()
