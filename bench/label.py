"""Weak-label throughput: pairs/s of the labelling job at 512x384 and ms per pair of each metric, beside piq.

    python bench/label.py [--pairs 100] [--batch 25] [--repeats 3] [--metrics sff,scqi,add_gsim]

Prints (1) ms/pair of each of our metrics on one batch of `--batch` 512x384 pairs (5 distorted levels per
reference, as in KADIS), twice: with every pair's reference passed on its own ("plain", the reference repeated)
and with the unique references plus `ref_index` ("shared": reference-only work once per reference, what the job
does), next to piq's time for the eight metrics it has, measured in the same process on the same pairs; (2) the
end-to-end job (`label_pairs`: PNG decode in tf.data, `--batch` pairs of several references per metric call,
all chosen metrics, CSV append) in pairs/s: warm on the graphs the table compiled, or with `--job_only` cold, on the
path the job chooses (compiled graphs from 357 pairs of 512x384 up, the NumPy forms below; see
bench/label_mixed.py for many sizes). Metrics whose module is not in the package yet are listed as missing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from deepfl.quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # TensorFlow's C++ start-up lines (oneDNN, CUDA probes) stay off the bench's output
os.environ.setdefault("DEEPFL_NO_PROGRESS", "1")
import numpy as np

import deepfl  # noqa: E402,F401  (before TensorFlow: deepfl sets its oneDNN default)

PIQ_NAMES = {
    "ssim": "ssim",
    "msssim": "multi_scale_ssim",
    "iwssim": "information_weighted_ssim",
    "mdsi": "mdsi",
    "vsi": "vsi",
    "fsim": "fsim",
    "gmsd": "gmsd",
    "sr_sim": "srsim",
}


def make_pairs(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`count` 384x512 pairs: crops of the embedded photographs (one per 5 pairs), seeded blur + noise."""
    from scipy import ndimage

    from deepfl.fr.sff_basis import embedded_training_images

    rng = np.random.default_rng(seed)
    photos = [image for _, image in embedded_training_images() if min(image.shape[:2]) >= 384]
    refs, dists = [], []
    for i in range(count):
        if i % 5 == 0:  # five distorted versions per reference crop, as in KADIS
            photo = photos[(i // 5) % len(photos)]
            y = rng.integers(0, photo.shape[0] - 384 + 1)
            x = rng.integers(0, max(1, photo.shape[1] - 512 + 1))
            ref = np.zeros((384, 512, 3), np.uint8)
            crop = photo[y : y + 384, x : x + 512]
            ref[: crop.shape[0], : crop.shape[1]] = crop
        level = 1 + i % 5
        dist = ndimage.gaussian_filter(ref.astype(np.float64), (0.3 * level, 0.3 * level, 0))
        dist = np.clip(dist + rng.normal(0, 2.0 * level, dist.shape), 0, 255).astype(np.uint8)
        refs.append(ref)
        dists.append(dist)
    return np.stack(refs), np.stack(dists)


def time_call(fn, repeats: int) -> float:
    """Best wall time of `repeats` calls after one warm-up call (tracing / compilation: the FR metrics compile from
    their first call here, as `deepfl-label` does for a size with many pairs, instead of running NumPy until a shape
    has repeated enough)."""
    from deepfl.fr.functional.staging import compiled_from_first_call

    with compiled_from_first_call():
        fn()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100, help="pairs for the end-to-end job (5 per reference)")
    parser.add_argument("--batch", type=int, default=25, help="pairs per metric call (5 levels per reference)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--metrics", default=None, help="comma-separated subset (default: all available)")
    parser.add_argument(
        "--job_only",
        action="store_true",
        help="skip the per-metric table: the job then pays tracing/XLA compilation itself (cold)",
    )
    args = parser.parse_args()

    try:  # torch must be imported before TensorFlow here (the reverse order segfaults)
        import piq
        import torch
    except ImportError:
        piq = torch = None
    import tensorflow as tf

    from deepfl import labeling
    from deepfl.fr import METRICS, metric_function

    wanted = labeling.check_metrics(args.metrics)
    functions, missing = {}, []
    for name in wanted:
        try:
            functions[name] = metric_function(name)
        except ImportError:
            missing.append(name)
    refs, dists = make_pairs(max(args.pairs, args.batch))
    ref_t = tf.constant(refs[: args.batch], tf.float32)
    dist_t = tf.constant(dists[: args.batch], tf.float32)
    unique_t = tf.constant(refs[: args.batch : 5], tf.float32)  # make_pairs: a new reference every 5 pairs
    index_t = tf.constant(np.arange(args.batch, dtype=np.int32) // 5)

    threads = None
    if piq is not None:
        ref_p = torch.from_numpy(refs[: args.batch]).permute(0, 3, 1, 2).float() / 255.0
        dist_p = torch.from_numpy(dists[: args.batch]).permute(0, 3, 1, 2).float() / 255.0
        threads = torch.get_num_threads()

    print(
        f"512x384 pairs, one batch of {args.batch} (5 levels per reference); tf threads: default; "
        f"torch threads: {threads}; best of {args.repeats}"
    )
    if not args.job_only:
        print(
            f"{'metric':10s} {'plain ms/pair':>14s} {'shared ms/pair':>15s} {'piq ms/pair':>12s} {'piq/shared':>11s}"
            f" {'max |plain-shared|':>19s}"
        )
    plain_total = ours_total = piq_total = piq_common = 0.0
    for name in METRICS if not args.job_only else ():
        if name not in functions:
            print(f"{name:10s} {'missing' if name in missing else 'not asked':>14s}")
            continue
        fn = functions[name]
        plain = time_call(lambda: np.asarray(fn(ref_t, dist_t)), args.repeats) / args.batch * 1000
        ours = time_call(lambda: np.asarray(fn(unique_t, dist_t, ref_index=index_t)), args.repeats) / args.batch * 1000
        gap = np.max(
            np.abs(
                np.asarray(fn(ref_t, dist_t), np.float64)
                - np.asarray(fn(unique_t, dist_t, ref_index=index_t), np.float64)
            )
        )
        plain_total += plain
        ours_total += ours
        theirs = None
        if piq is not None and name in PIQ_NAMES:
            pfn = getattr(piq, PIQ_NAMES[name])
            with torch.no_grad():
                theirs = time_call(lambda: pfn(ref_p, dist_p, data_range=1.0, reduction="none"), args.repeats)
            theirs = theirs / args.batch * 1000
            piq_total += theirs
            piq_common += ours
        piq_text = f"{theirs:12.1f} {theirs / ours:11.2f}" if theirs else f"{'-':>12s} {'-':>11s}"
        print(f"{name:10s} {plain:14.1f} {ours:15.1f} {piq_text} {gap:19.2e}")
    if not args.job_only:
        print(
            f"{'sum':10s} {plain_total:14.1f} {ours_total:15.1f} {piq_total:12.1f}   (ours: all "
            f"{len(functions)}; piq: its {sum(n in PIQ_NAMES for n in functions)}); ours shared on piq's "
            f"metrics: {piq_common:.1f} ms/pair"
        )

    with tempfile.TemporaryDirectory() as tmp:
        from deepfl.images import write_image

        root = Path(tmp)
        rows = []
        for i in range(args.pairs):
            ref_name = f"ref{i // 5:03d}.png"
            if i % 5 == 0:
                write_image(root / ref_name, refs[i])
            write_image(root / f"d{i:04d}.png", dists[i])
            rows.append({"dist_im": f"d{i:04d}.png", "ref_im": ref_name})
        import pandas as pd

        pairs = pd.DataFrame(rows)  # each 5 distorted images share one reference
        # Warm: the compiled graphs the table built (every size compiles); cold (--job_only): the job's own choice
        # of path, compiled graphs when pixels x pairs reach labeling.COMPILE_FROM_PIXEL_PAIRS (>= 357 pairs here).
        path = {} if args.job_only else {"compile_from_pixel_pairs": 0}
        start = time.perf_counter()
        summary = labeling.label_pairs(
            pairs, root, root / "labels.csv", metrics=list(functions), batch_size=args.batch, **path
        )
        elapsed = time.perf_counter() - start
    rate = summary.written / elapsed
    print(
        f"label job: {summary.written} pairs in {elapsed:.1f} s = {rate:.2f} pairs/s "
        f"({1000 / rate:.0f} ms/pair, metrics: {','.join(functions)}; "
        + (
            "cold: includes tracing and XLA compilation where the job compiles)"
            if args.job_only
            else "warm: the functions were compiled for this batch shape by the table above)"
        )
    )
    if missing:
        print(f"missing metric modules: {', '.join(missing)}")


if __name__ == "__main__":
    main()
