"""Benchmark of the eight TensorFlow FR metrics (SSIM .. SR-SIM) against piq, side by side in one process.

Times each metric on the same 512x384 (ref, dist) pairs (a real photograph and distorted versions of it),
ours batched (one call for --batch pairs) and piq (one call per pair: piq's SR-SIM normalises saliency over
the whole batch), and prints ms per pair and the ratio piq / ours. piq is configured to the originals'
preprocessing (MATLAB rgb2gray input for the gray metrics, argument order of the asymmetric ones).
`--via_compute` adds a last row: all the metrics through `deepfl.fr.compute` (uint8 in, two metrics at a time
on two threads: what users and `deepfl-label` call) against the sum of piq's rows.

    python bench/fr.py --pairs 8 --batch 8 --repeats 3
    python bench/fr.py --pairs 8 --batch 8 --repeats 3 --via_compute
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from deepfl.quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # TensorFlow's C++ start-up lines (oneDNN, CUDA probes) stay off the bench's output
import numpy as np  # noqa: E402
import piq  # noqa: E402,F401  (before TensorFlow: importing piq/torchvision/triton after it segfaults)
import torch  # noqa: E402

import deepfl  # noqa: E402,F401  (before TensorFlow: deepfl sets its oneDNN default)

EIGHT = ("ssim", "msssim", "iwssim", "mdsi", "vsi", "fsim", "gmsd", "sr_sim")


def matlab_gray(rgb: np.ndarray) -> np.ndarray:
    """MATLAB rgb2gray of uint8 NHWC -> float64 NHW (numpy, for piq's inputs)."""
    w = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
    g = rgb.astype(np.float64) @ w
    return np.clip(np.floor(g + 0.5), 0, 255)


def piq_scores(name: str, ref: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """piq's score of each pair (uint8 NHWC), configured to match the MATLAB original's preprocessing."""

    def rgb(a):
        return torch.from_numpy(a.astype(np.float32)).permute(0, 3, 1, 2)

    def gray(a):
        return torch.from_numpy(matlab_gray(a).astype(np.float32))[:, None]

    out = []
    for i in range(len(ref)):
        r, d = ref[i : i + 1], dist[i : i + 1]
        with torch.no_grad():
            if name == "ssim":
                v = piq.ssim(gray(r) / 255, gray(d) / 255, data_range=1.0, downsample=True)
            elif name == "msssim":
                v = piq.multi_scale_ssim(gray(r) / 255, gray(d) / 255, data_range=1.0)
            elif name == "iwssim":  # piq's y is the reference (GSM fitted on y)
                v = piq.information_weighted_ssim(gray(d), gray(r), data_range=255.0)
            elif name == "mdsi":  # piq's x plays the distorted image in GS(x, fused) - GS(y, fused)
                v = piq.mdsi(rgb(d), rgb(r), data_range=255.0)
            elif name == "vsi":
                v = piq.vsi(rgb(r), rgb(d), data_range=255.0)
            elif name == "fsim":
                v = piq.fsim(rgb(r), rgb(d), data_range=255.0, chromatic=True)
            elif name == "gmsd":
                v = piq.gmsd(gray(r), gray(d), data_range=255.0)
            elif name == "sr_sim":
                v = piq.srsim(rgb(r), rgb(d), data_range=255.0, chromatic=False)
            else:
                raise ValueError(f"name: unknown metric {name!r}")
        out.append(float(v))
    return np.asarray(out)


def make_pairs(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """count 384x512 pairs: scikit-image's astronaut crop as reference, distorted by several KADID types."""
    from skimage import data

    ref = np.ascontiguousarray(data.astronaut()[64:448, :512])
    try:
        from deepfl.distortions import distort

        types = [1, 9, 10, 11, 16, 19, 22, 25]
        dists = [distort(ref, types[i % len(types)], 1 + i % 5, rng=seed + i) for i in range(count)]
    except ImportError:  # fall back to noise if the distortions package is missing
        rng = np.random.default_rng(seed)
        dists = [np.clip(ref + rng.normal(0, 5 + 3 * i, ref.shape), 0, 255).astype(np.uint8) for i in range(count)]
    return np.stack([ref] * count), np.stack(dists)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=8, help="number of 512x384 pairs")
    parser.add_argument("--batch", type=int, default=8, help="pairs per call of our batched functions")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions (best is reported)")
    parser.add_argument("--metrics", default=",".join(EIGHT), help="comma-separated subset of the eight")
    parser.add_argument(
        "--via_compute",
        action="store_true",
        help="also time all the metrics together through deepfl.fr.compute (two at a time on two threads)",
    )
    args = parser.parse_args()

    import tensorflow as tf

    from deepfl.fr import compute, metric_function
    from deepfl.fr.functional.staging import compiled_from_first_call

    torch.set_num_threads(os.cpu_count() or 1)
    ref, dist = make_pairs(args.pairs)
    print(
        f"{args.pairs} pairs of 384x512, batch {args.batch}, best of {args.repeats}; "
        f"tf {tf.__version__}, torch {torch.__version__}, {os.cpu_count()} CPU threads"
    )
    print(f"{'metric':8s} {'ours ms/pair':>13s} {'piq ms/pair':>12s} {'piq/ours':>9s} {'max |diff|':>11s}")
    total_ours = total_piq = 0.0
    with compiled_from_first_call():  # the equal-size case: warm compiled graphs, as deepfl-label runs them
        for name in args.metrics.split(","):
            fn = metric_function(name)
            batches = [
                (tf.constant(ref[i : i + args.batch], tf.float32), tf.constant(dist[i : i + args.batch], tf.float32))
                for i in range(0, args.pairs, args.batch)
            ]
            ours = np.concatenate([np.asarray(fn(r, d)) for r, d in batches])  # warm-up (tracing)
            theirs = piq_scores(name, ref, dist)  # piq's warm-up too: its first call pays its own start-up
            best_ours = best_piq = float("inf")
            for _ in range(args.repeats):
                start = time.perf_counter()
                for r, d in batches:
                    np.asarray(fn(r, d))
                best_ours = min(best_ours, time.perf_counter() - start)
                start = time.perf_counter()
                theirs = piq_scores(name, ref, dist)
                best_piq = min(best_piq, time.perf_counter() - start)
            ms_ours, ms_piq = 1e3 * best_ours / args.pairs, 1e3 * best_piq / args.pairs
            total_ours += ms_ours
            total_piq += ms_piq
            diff = np.max(np.abs(ours - theirs))
            print(f"{name:8s} {ms_ours:13.1f} {ms_piq:12.1f} {ms_piq / ms_ours:9.2f} {diff:11.2e}")
    print(f"{'all':8s} {total_ours:13.1f} {total_piq:12.1f} {total_piq / total_ours:9.2f}")
    if args.via_compute:
        names = args.metrics.split(",")
        with compiled_from_first_call():
            chunks = [(ref[i : i + args.batch], dist[i : i + args.batch]) for i in range(0, args.pairs, args.batch)]
            for r, d in chunks:  # warm-up (tracing)
                compute(r, d, names)
            best = float("inf")
            for _ in range(args.repeats):
                start = time.perf_counter()
                for r, d in chunks:
                    compute(r, d, names)
                best = min(best, time.perf_counter() - start)
        ms_compute = 1e3 * best / args.pairs
        print(f"{'compute':8s} {ms_compute:13.1f} {total_piq:12.1f} {total_piq / ms_compute:9.2f}")


if __name__ == "__main__":
    main()
