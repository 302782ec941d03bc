"""Cold start on mixed image sizes: the eight FR metrics (SSIM .. SR-SIM) against piq, in a fresh process.

Scores `--pairs` (ref, dist) pairs whose sizes all differ (evenly spread between 300x400 and 384x512, crops of
a real photograph with Gaussian noise), one pair per call, first calls included: what a researcher scoring a
folder of photos, or deepfl-label on LIVE, meets. Each of `--rounds` rounds takes a new set of sizes (round k
takes k pixels off both sides, so no size repeats) and times piq (configured as in bench/fr.py) and then ours on
them, side by side: the ratio of each round is measured within seconds, and the median over rounds is robust
to the load swings of a shared machine. After the rounds, ours runs again on the last round's sizes (each size
repeats once: under the default compile budget, `staging.COMPILE_AFTER_S`, nothing compiles); then with
compilation forced from the first call (`staging.compiled_from_first_call`: every size compiles, the old
compile-on-repeat cliff) and once more warm (compiled). `--passes N` stops after N of our four passes (the
first is the rounds). Prints seconds per pair, piq / ours, and the largest score difference between our NumPy
and compiled passes. A single process's round 1 swings with the machine (piq's own by up to 2x): `--processes N`
runs N fresh processes one after another (`--passes 1`, the other flags passed on) and prints each one's round 1
beside piq's, and the median ratio.

    python bench/fr_mixed.py --pairs 12 --rounds 3
    python bench/fr_mixed.py --pairs 12 --via_compute --processes 5   # round 1 of 5 fresh processes
    python bench/fr_mixed.py --pairs 12 --per_metric    # cold ms per pair of each metric, beside piq's
    python bench/fr_mixed.py --pairs 12 --via_compute   # ours through deepfl.fr.compute (uint8 in, the public API)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from deepfl.quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # TensorFlow's C++ start-up lines (oneDNN, CUDA probes) stay off the bench's output
import numpy as np  # noqa: E402
import piq  # noqa: E402,F401  (before TensorFlow: importing piq/torchvision/triton after it segfaults)
import torch  # noqa: E402
from fr import EIGHT, piq_scores  # noqa: E402  (bench/fr.py)

import deepfl  # noqa: E402,F401  (before TensorFlow: deepfl sets its oneDNN default)


def mixed_pairs(count: int, seed: int = 0, shrink: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` 1xHxWx3 uint8 pairs of distinct sizes from 300x400 to 384x512 (astronaut crops + noise), each
    side `shrink` pixels shorter."""
    from skimage import data

    photo = data.astronaut()
    rng = np.random.default_rng(seed)
    pairs = []
    for k in range(count):
        step = k / max(count - 1, 1)
        h, w = 300 + round(84 * step) - shrink, 400 + round(112 * step) - shrink
        top, left = min(k, photo.shape[0] - h), min(k, photo.shape[1] - w)
        ref = np.ascontiguousarray(photo[top : top + h, left : left + w])
        dist = np.clip(ref + rng.normal(0, 8, ref.shape), 0, 255).astype(np.uint8)
        pairs.append((ref[None], dist[None]))
    return pairs


def per_metric_cold(pairs: list[tuple[np.ndarray, np.ndarray]], names: list[str]) -> None:
    """Prints each metric's cold ms per pair, piq's (all of piq first) beside ours, and the sums."""
    piq_ms = {}
    for name in names:
        start = time.perf_counter()
        for ref, dist in pairs:
            piq_scores(name, ref, dist)
        piq_ms[name] = 1000 * (time.perf_counter() - start) / len(pairs)

    import tensorflow as tf

    from deepfl.fr import metric_function

    tensors = [(tf.constant(r, tf.float32), tf.constant(d, tf.float32)) for r, d in pairs]
    print(f"{'metric':10s} {'piq ms/pair':>12s} {'ours ms/pair':>13s} {'piq/ours':>9s}", flush=True)
    ours_ms = {}
    for name in names:
        function = metric_function(name)
        start = time.perf_counter()
        for r, d in tensors:
            np.asarray(function(r, d))
        ours_ms[name] = 1000 * (time.perf_counter() - start) / len(pairs)
        print(f"{name:10s} {piq_ms[name]:12.1f} {ours_ms[name]:13.1f} {piq_ms[name] / ours_ms[name]:9.2f}", flush=True)
    total_piq, total_ours = sum(piq_ms.values()), sum(ours_ms.values())
    print(f"{'sum':10s} {total_piq:12.1f} {total_ours:13.1f} {total_piq / total_ours:9.2f}")


def numba_kernels_compiled() -> int:
    """How many of deepfl's Numba kernels this process compiled instead of loading from the disk cache."""
    from numba.core.dispatcher import Dispatcher

    return sum(
        sum(kernel.stats.cache_misses.values())
        for name, module in list(sys.modules.items())
        if name.startswith("deepfl")
        for kernel in vars(module).values()
        if isinstance(kernel, Dispatcher)
    )


def fresh_processes(count: int, argv: list[str]) -> None:
    """Runs this script `count` times in fresh processes with `argv` and `--passes 1`, one after another; prints
    each run's round 1 (ours, piq, ratio) and the median ratio."""
    import subprocess

    print(f"{'fresh process':44s} {'s/pair':>8s} {'piq s/pair':>11s} {'piq/ours':>9s}", flush=True)
    ratios = []
    for run in range(count):
        child = subprocess.run(
            [sys.executable, __file__, *argv, "--passes", "1"], capture_output=True, text=True, check=False
        )
        line = next((row for row in child.stdout.splitlines() if row.startswith("round 1:")), None)
        if child.returncode or line is None:
            raise SystemExit(f"process {run + 1} failed (exit {child.returncode}):\n{child.stderr[-2000:]}")
        ours_s, piq_s, ratio = (float(value) for value in line.split()[-3:])
        ratios.append(ratio)
        print(f"{f'process {run + 1}: round 1, cold':44s} {ours_s:8.3f} {piq_s:11.3f} {ratio:9.2f}", flush=True)
    print(f"{'median over processes':44s} {'':8s} {'':11s} {float(np.median(ratios)):9.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=12, help="number of pairs, each of its own size")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of new sizes, piq and ours side by side")
    parser.add_argument("--metrics", default=",".join(EIGHT), help="comma-separated subset of the eight")
    parser.add_argument(
        "--passes",
        type=int,
        default=4,
        choices=[1, 2, 3, 4],
        help="our passes: the cold rounds only, + sizes repeated once, + compiled from the first call, + warm",
    )
    parser.add_argument(
        "--per_metric",
        action="store_true",
        help="instead: cold ms per pair of each metric on its own, piq's beside ours (each of our metrics meets "
        "every size for the first time)",
    )
    parser.add_argument(
        "--via_compute",
        action="store_true",
        help="score ours with deepfl.fr.compute (uint8 in, what users call; two metrics at a time on two threads) "
        "instead of one "
        "metric function after another",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="instead: run this bench (round 1 only matters) in N fresh processes one after another and print "
        "each one's round 1 and the median ratio",
    )
    args = parser.parse_args()
    if args.processes:
        forwarded = [f"--pairs={args.pairs}", f"--rounds={args.rounds}", f"--metrics={args.metrics}"]
        fresh_processes(args.processes, forwarded + ["--via_compute"] * args.via_compute)
        return
    names = args.metrics.split(",")
    pairs = mixed_pairs(args.pairs)
    sizes = sorted({p[0].shape[1:3] for p in pairs})
    if len(sizes) != len(pairs):
        raise SystemExit(f"--pairs {args.pairs}: sizes repeat; at most 85 distinct sizes")
    torch.set_num_threads(os.cpu_count() or 1)
    print(
        f"{len(pairs)} pairs of {len(sizes)} sizes ({sizes[0][0]}x{sizes[0][1]} .. {sizes[-1][0]}x{sizes[-1][1]}), "
        f"one pair per call, metrics: {', '.join(names)}; torch {torch.__version__}, {os.cpu_count()} CPU threads"
    )
    if args.per_metric:
        per_metric_cold(pairs, names)
        return
    import tensorflow as tf

    from deepfl.fr import compute, metric_function
    from deepfl.fr.functional.staging import compiled_from_first_call

    functions = {name: metric_function(name) for name in names}

    def piq_pass(pairs: list) -> float:
        start = time.perf_counter()
        for ref, dist in pairs:
            for name in names:
                piq_scores(name, ref, dist)
        return (time.perf_counter() - start) / len(pairs)

    def our_pass(pairs: list) -> tuple[float, dict[str, np.ndarray]]:
        tensors = [(tf.constant(r, tf.float32), tf.constant(d, tf.float32)) for r, d in pairs]
        start = time.perf_counter()
        if args.via_compute:
            results = [compute(r, d, names) for r, d in pairs]
            scores = {name: np.concatenate([result[name] for result in results]) for name in names}
        else:
            scores = {
                name: np.concatenate([np.asarray(fn(r, d)) for r, d in tensors]) for name, fn in functions.items()
            }
        return (time.perf_counter() - start) / len(pairs), scores

    print(f"{'case':44s} {'s/pair':>8s} {'piq s/pair':>11s} {'piq/ours':>9s}", flush=True)
    ratios = []
    for round_ in range(args.rounds):
        pairs = mixed_pairs(args.pairs, shrink=round_)
        piq_s = piq_pass(pairs)
        ours_s, _ = our_pass(pairs)
        ratios.append(piq_s / ours_s)
        label = f"round {round_ + 1}: cold, every size new (NumPy)"
        print(f"{label:44s} {ours_s:8.3f} {piq_s:11.3f} {piq_s / ours_s:9.2f}", flush=True)
    print(f"{'median over rounds':44s} {'':8s} {'':11s} {float(np.median(ratios)):9.2f}", flush=True)
    compiled = numba_kernels_compiled()
    if compiled:
        print(
            f"(round 1 includes compiling {compiled} Numba kernels: their disk cache was empty, as on a fresh "
            "installation; once per installation, later processes load them)",
            flush=True,
        )

    passes = (
        ("sizes repeated once (default budget)", contextlib.nullcontext),
        ("compiled from first call (compiles)", compiled_from_first_call),
        ("warm (compiled)", compiled_from_first_call),
    )
    scores = []
    for label, path in passes[: args.passes - 1]:
        with path():
            seconds, result = our_pass(pairs)
        scores.append(result)
        print(f"{label:44s} {seconds:8.3f} {piq_s:11.3f} {piq_s / seconds:9.2f}", flush=True)
    if len(scores) == 3:
        diff = max(float(np.max(np.abs(scores[0][n] - scores[-1][n]))) for n in names)
        print(f"max |NumPy - compiled| score: {diff:.2e}")


if __name__ == "__main__":
    main()
