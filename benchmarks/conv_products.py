"""XLA:CPU's 'same' convolution against the package's matrix-product forms, per direction, on JAX's CPU backend.

For the convolutions a ConvLSTM step runs (one per frame, of ``[X_t, H_{t-1}]`` to the four gates), times with
``jax.jit``, best of ``repeats`` after compiling:

- forward: ``keras.ops.conv(padding="same")`` (XLA) and ``convolution.same_conv_as_products``;
- input gradient: XLA's (``jax.vjp`` of ``keras.ops.conv``) and the products' (the same of
  ``same_conv_as_products``);
- kernel gradient: XLA's and ``convolution.kernel_gradient`` (one product per kernel position).

Shapes: the two layers of ``cpu-fast`` (16 sequences, 16x16 grid, 5x5 kernels, 16 + 32 and 32 + 32 channels to 4 x 32)
in bfloat16, as it trains on a CPU with bfloat16 instructions, and in float32; the official network's first layer
(5 sequences, 64x64, 5x5, 1 + 64 channels to 4 x 64) in float32 and bfloat16. Also one matrix product of the size
of ``cpu-fast``'s first layer (4,096 x 1,200 x 128) in both dtypes, for the rate XLA reaches on products.

Usage (from the repository root; the script sets ``KERAS_BACKEND=jax`` for itself)::

    python -m benchmarks.conv_products [--quick] [--repeats 15]
"""

from __future__ import annotations

import os
import sys
import time

os.environ["KERAS_BACKEND"] = "jax"  # before Keras is imported: this measures JAX's CPU backend only

import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402

NAME = "conv_products"
FULL = {
    "repeats": 15,
    "cases": {
        "cpu-fast layer 1": {"input": (16, 16, 16, 48), "kernel": (5, 5, 48, 128), "dtypes": ("bfloat16", "float32")},
        "cpu-fast layer 2": {"input": (16, 16, 16, 64), "kernel": (5, 5, 64, 128), "dtypes": ("bfloat16", "float32")},
        "official layer 1": {"input": (5, 64, 64, 65), "kernel": (5, 5, 65, 256), "dtypes": ("float32", "bfloat16")},
    },
    "matmul": (4096, 1200, 128),
    "seed": 0,
}
QUICK = {
    "repeats": 2,
    "cases": {"tiny, 8x8": {"input": (2, 8, 8, 6), "kernel": (3, 3, 6, 8), "dtypes": ("bfloat16",)}},
    "matmul": (64, 32, 16),
    "seed": 0,
}


def best_ms(function, *arguments, repeats: int) -> float:
    """The fastest of ``repeats`` calls of ``function(*arguments)`` in milliseconds, after one compiling call."""
    import jax

    jax.block_until_ready(function(*arguments))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(function(*arguments))
        times.append(time.perf_counter() - started)
    return 1e3 * min(times)


def measure_case(case: dict, dtype: str, repeats: int, rng: np.random.Generator) -> dict:
    """Times of the three directions for XLA and the products, and their largest gaps (relative to the largest
    XLA value) as a check that both compute the same thing."""
    import jax
    import jax.numpy as jnp

    from keras_convlstm import convolution

    inputs = jnp.asarray(rng.standard_normal(case["input"]), dtype)
    kernel = jnp.asarray(rng.standard_normal(case["kernel"]) * 0.05, dtype)
    gradient = jnp.asarray(rng.standard_normal((*case["input"][:3], case["kernel"][-1])), dtype)

    def xla(x, k):
        return keras.ops.conv(x, k, padding="same")

    def input_gradient(conv):
        return jax.jit(lambda x, k, g: jax.vjp(lambda frames: conv(frames, k), x)[1](g)[0])

    def kernel_gradient_of(conv):
        return jax.jit(lambda x, k, g: jax.vjp(lambda weights: conv(x, weights), k)[1](g)[0])

    def products_kernel_gradient(x, k, g):
        return convolution.kernel_gradient(x, g, k.shape[:2]).astype(k.dtype)

    functions = {
        "forward": (jax.jit(xla), jax.jit(convolution.same_conv_as_products)),
        "input gradient": (input_gradient(xla), input_gradient(convolution.same_conv_as_products)),
        "kernel gradient": (kernel_gradient_of(xla), jax.jit(products_kernel_gradient)),
    }
    record = {}
    for direction, (theirs, ours) in functions.items():
        arguments = (inputs, kernel) if direction == "forward" else (inputs, kernel, gradient)
        reference = np.asarray(theirs(*arguments), np.float32)
        gap = np.abs(np.asarray(ours(*arguments), np.float32) - reference).max() / np.abs(reference).max()
        xla_ms = best_ms(theirs, *arguments, repeats=repeats)
        products_ms = best_ms(ours, *arguments, repeats=repeats)
        record[direction] = {
            "xla_ms": xla_ms,
            "products_ms": products_ms,
            "products_over_xla": products_ms / xla_ms,
            "largest_gap": float(gap),
        }
    return record


def measure_matmul(shape: tuple[int, int, int], dtype: str, repeats: int, rng: np.random.Generator) -> dict:
    """One ``(m, k) @ (k, n)`` product with float32 sums: milliseconds and GFLOP/s."""
    import jax
    import jax.numpy as jnp

    m, k, n = shape
    left = jnp.asarray(rng.random((m, k)), dtype)
    right = jnp.asarray(rng.random((k, n)), dtype)
    product = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
    ms = best_ms(product, left, right, repeats=repeats)
    return {"ms": ms, "gflop_per_s": 2 * m * k * n / ms / 1e6}


def report(results: dict) -> str:
    header = ["case", "dtype", "direction", "XLA ms", "products ms", "products / XLA", "largest gap"]
    rows = [
        [
            name,
            dtype,
            direction,
            entry["xla_ms"],
            entry["products_ms"],
            entry["products_over_xla"],
            entry["largest_gap"],
        ]
        for name, dtypes in results["convolutions"].items()
        for dtype, directions in dtypes.items()
        for direction, entry in directions.items()
    ]
    matmul = [[dtype, entry["ms"], entry["gflop_per_s"]] for dtype, entry in results["matmul"].items()]
    return common.table(header, rows) + "\n\n" + common.table(["matmul dtype", "ms", "GFLOP/s"], matmul)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = common.argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None, help="timed calls of each function (best is kept)")
    args = parser.parse_args(argv)
    if keras.backend.backend() != "jax":
        raise SystemExit(f"conv_products measures JAX; Keras was already imported with {keras.backend.backend()}")
    settings = QUICK if args.quick else FULL
    settings = {**settings, "repeats": args.repeats or settings["repeats"]}
    print(common.describe_machine(common.machine_info()))
    rng = np.random.default_rng(settings["seed"])
    results: dict = {"convolutions": {}, "matmul": {}}
    for name, case in settings["cases"].items():
        results["convolutions"][name] = {
            dtype: measure_case(case, dtype, settings["repeats"], rng) for dtype in case["dtypes"]
        }
        print(f"{name}: {results['convolutions'][name]}", flush=True)
    for dtype in ("float32", "bfloat16"):
        results["matmul"][dtype] = measure_matmul(settings["matmul"], dtype, settings["repeats"], rng)
    print(report(results))
    common.finish(NAME, args, argv, settings, results)
    return results


if __name__ == "__main__":
    main()
