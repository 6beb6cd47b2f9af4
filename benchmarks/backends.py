"""The same training and rollout on each Keras backend: first-step (compile) time, sequences/s, rollout time.

For every backend that is installed (TensorFlow, JAX, PyTorch), each measurement runs in a fresh process with
``KERAS_BACKEND`` set (Keras reads it once, at import) and a hard time limit, so a backend that compiles for
minutes reports that it did not finish instead of stalling the run:

- training: ``model.fit`` on generated 20-frame 64x64 Moving MNIST sequences (inputs frames 0..18, targets
  1..19) for ``cpu-fast`` (batch 16) and the official network in float32 (``keras-example``, batch 5), timed by
  ``common.time_fit``: the first step (tracing and compiling included) and the sequences/s of the steps after the
  warm-up. JAX is timed three ways: "unrolled, fused", the package's training step
  (``keras_convlstm.layers.ConvLSTM2D`` unrolls up to ``layers.MAX_UNROLLED_FRAMES`` frames, and computes each
  frame's eight convolutions as one with ``convolution.same_conv`` where its matrix products apply: frames of
  32x32 pixels or more, and smaller bfloat16 frames on a CPU with bfloat16 instructions); "Keras cell,
  unrolled", Keras's own layer with ``unroll=True``; and "lax.scan", Keras's loop, whose backward pass XLA:CPU
  runs far slower. TensorFlow runs its ``tf.while_loop``. PyTorch is timed twice: "fused", the package's step
  (``keras_convlstm.cell.run_layer``, one convolution a frame), and "Keras cell", Keras's own layer; both loop
  over frames in Python. The measuring processes inherit the environment (``GLIBC_TUNABLES`` included);
- rollout: ``rollout.predict_rollout`` of 8 sequences, 10 context frames, 10 predicted, for both models: the
  first call (compiling included) and the median of the calls after it.

Usage (from the repository root)::

    python -m benchmarks.backends [--quick] [--backends tensorflow jax] [--loops "unrolled, fused" tf.while_loop]
        [--timed-steps 2] [--time-limit 900]
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks import common

NAME = "backends"
BACKENDS = ("tensorflow", "jax", "torch")
# How each backend runs the ConvLSTM2D loops of a training step; the rollout is timed with the first.
TRAINING_LOOPS = {
    "tensorflow": ("tf.while_loop",),
    "jax": ("unrolled, fused", "Keras cell, unrolled", "lax.scan"),
    "torch": ("fused", "Keras cell"),
}
FULL = {
    "stride": 1,
    "num_frames": 20,
    "time_limit_s": 600,
    "systems": {
        "cpu-fast": {"preset": "cpu-fast", "batch_size": 16, "warmup_steps": 2, "timed_steps": 4},
        "official network, float32": {"preset": "keras-example", "batch_size": 5, "warmup_steps": 1, "timed_steps": 2},
    },
    "rollout": {"batch_size": 8, "context": 10, "horizon": 10, "repeats": 2},
    "seed": 0,
}
QUICK = {
    "stride": 4,
    "num_frames": 6,
    "time_limit_s": 300,
    "systems": {
        "cpu-fast": {"preset": "cpu-fast", "batch_size": 2, "warmup_steps": 1, "timed_steps": 1},
        "official network, float32": {"preset": "keras-example", "batch_size": 2, "warmup_steps": 1, "timed_steps": 1},
    },
    "rollout": {"batch_size": 2, "context": 3, "horizon": 2, "repeats": 1},
    "seed": 0,
}


def measure(system: dict, settings: dict, loop: str) -> dict:
    """Times training of one system on the backend of this process with the training ``loop`` of
    :data:`TRAINING_LOOPS`, and its rollout when ``loop`` is the backend's first (the package's own)."""
    import keras

    from keras_convlstm import data, models, rollout

    steps = system["warmup_steps"] + system["timed_steps"]
    count = steps * system["batch_size"]
    sequences = common.moving_mnist(
        count, seed=settings["seed"], num_frames=settings["num_frames"], stride=settings["stride"]
    )
    inputs, targets = data.create_shifted_frames(sequences)
    image_size = 64 // settings["stride"]
    keras.utils.set_random_seed(settings["seed"])
    model = models.build_model(system["preset"], image_size=image_size)
    for layer in model.layers:
        if isinstance(layer, keras.layers.ConvLSTM2D):
            layer.unroll = loop == "Keras cell, unrolled"
            if loop != TRAINING_LOOPS[keras.backend.backend()][0]:
                layer.__class__ = keras.layers.ConvLSTM2D  # Keras's own layer, with the same weights
    training = common.time_fit(
        model, inputs, targets, batch_size=system["batch_size"], warmup_steps=system["warmup_steps"]
    )
    training["backend"] = keras.backend.backend()
    if loop != TRAINING_LOOPS[training["backend"]][0]:
        return training
    keras.utils.set_random_seed(settings["seed"])
    model = models.build_model(system["preset"], image_size=image_size)
    plan = settings["rollout"]
    context = inputs[: plan["batch_size"], : plan["context"]]
    seconds = []
    for _ in range(1 + plan["repeats"]):
        started = time.perf_counter()
        rollout.predict_rollout(model, context, plan["horizon"])
        seconds.append(time.perf_counter() - started)
    return {
        **training,
        "rollout_first_s": seconds[0],
        "rollout_steady_s": statistics.median(seconds[1:]),
    }


def run_in_fresh_process(backend: str, name: str, settings: dict, loop: str) -> dict:
    """Runs :func:`measure` for system ``name`` under ``backend`` in a new process, within the time limit."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "benchmarks.backends", "--measure", json.dumps([name, settings, loop])]
    started = time.perf_counter()
    try:
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=settings["time_limit_s"], check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {settings['time_limit_s']} s"}
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"}
    record = json.loads(result.stdout.strip().splitlines()[-1])
    record["process_s"] = time.perf_counter() - started
    return record


def report(results: dict) -> str:
    header = [
        "backend",
        "system",
        "training loop",
        "first step s",
        "s/step",
        "sequences/s",
        "rollout first s",
        "rollout steady s",
    ]
    rows = []
    for backend, systems in results.items():
        for name, loops in systems.items():
            for loop, entry in loops.items():
                if "error" in entry:
                    rows.append([backend, name, loop, entry["error"], "", "", "", ""])
                    continue
                rows.append(
                    [
                        backend,
                        name,
                        loop,
                        entry["first_step_s"],
                        entry["seconds_per_step"],
                        entry["sequences_per_s"],
                        entry.get("rollout_first_s", ""),
                        entry.get("rollout_steady_s", ""),
                    ]
                )
    return common.table(header, rows)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--measure"]:
        name, settings, loop = json.loads(argv[1])
        print(json.dumps(measure(settings["systems"][name], settings, loop)))
        return {}
    parser = common.argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=None, help="default: every installed one")
    parser.add_argument("--timed-steps", type=int, default=None, help="training steps timed after the warm-up")
    parser.add_argument("--time-limit", type=int, default=None, help="seconds allowed to each measuring process")
    loops = sorted({loop for names in TRAINING_LOOPS.values() for loop in names})
    parser.add_argument("--loops", nargs="+", choices=loops, default=loops, help="training loops to time (default all)")
    args = parser.parse_args(argv)
    settings = copy.deepcopy(QUICK if args.quick else FULL)
    if args.timed_steps is not None:
        for system in settings["systems"].values():
            system["timed_steps"] = args.timed_steps
    if args.time_limit is not None:
        settings["time_limit_s"] = args.time_limit
    backends = args.backends or [name for name in BACKENDS if importlib.util.find_spec(name) is not None]
    print(common.describe_machine(common.machine_info()))
    results: dict = {}
    for backend in backends:
        results[backend] = {}
        for name in settings["systems"]:
            results[backend][name] = {}
            for loop in [loop for loop in TRAINING_LOOPS[backend] if loop in args.loops]:
                results[backend][name][loop] = run_in_fresh_process(backend, name, settings, loop)
                print(f"{backend} / {name} / {loop}: {results[backend][name][loop]}", flush=True)
    print(report(results))
    common.finish(NAME, args, argv, settings, results)
    return results


if __name__ == "__main__":
    main()
