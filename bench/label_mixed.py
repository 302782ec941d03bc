"""The labelling job on references of many sizes, cold in a fresh process, beside piq on the same pairs.

`--refs` references whose sizes all differ (evenly spread between 300x400 and 384x512, crops of a real photograph),
each with `--levels` distorted versions (blur + noise), written as PNG; `deepfl.labeling.label_pairs` scores them
with piq's eight metrics (or `--metrics`) as `deepfl-label` does: PNG decode, one reference's levels per metric
call, CSV append, first calls and any compilation included. piq scores the same pairs from memory (no decode,
no CSV) first, one pair per call. Imports (TensorFlow, the metric modules; torch, piq) are outside the timings;
first calls are inside. Every size has `levels` x pixels pixel-pairs, far below the job's compile
threshold (`labeling.COMPILE_FROM_PIXEL_PAIRS`), so the job scores every size with the metrics' NumPy forms.
`--also_compiled` then runs the job again with `compile_from_pixel_pairs=0` (every size compiles its graphs: the
job before the threshold), in the same process, on sizes one pixel smaller so that nothing is compiled already.

    python bench/label_mixed.py --refs 12 --levels 5
    python bench/label_mixed.py --refs 4 --levels 5 --also_compiled    # the compile cliff, for comparison
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
import numpy as np  # noqa: E402
import piq  # noqa: E402,F401  (before TensorFlow: importing piq/torchvision/triton after it segfaults)
import torch  # noqa: E402
from fr import EIGHT, piq_scores  # noqa: E402  (bench/fr.py)

import deepfl  # noqa: E402,F401  (before TensorFlow: deepfl sets its oneDNN default)


def write_pairs(folder: Path, refs: int, levels: int, shrink: int = 0, seed: int = 0):
    """PNG references of `refs` distinct sizes (300x400 .. 384x512, each side `shrink` shorter) with `levels`
    distorted versions each -> (manifest DataFrame, list of (ref, dist) uint8 1xHxWx3 pairs)."""
    import pandas as pd
    from scipy import ndimage
    from skimage import data

    from deepfl.images import write_image

    photo = data.astronaut()
    rng = np.random.default_rng(seed)
    rows, pairs = [], []
    for k in range(refs):
        step = k / max(refs - 1, 1)
        h, w = 300 + round(84 * step) - shrink, 400 + round(112 * step) - shrink
        ref = np.ascontiguousarray(photo[k : k + h, k : k + w])
        write_image(folder / f"ref{k:03d}.png", ref)
        for level in range(1, levels + 1):
            dist = ndimage.gaussian_filter(ref.astype(np.float64), (0.3 * level, 0.3 * level, 0))
            dist = np.clip(dist + rng.normal(0, 2.0 * level, dist.shape), 0, 255).astype(np.uint8)
            name = f"ref{k:03d}_{level:02d}.png"
            write_image(folder / name, dist)
            rows.append({"dist_im": name, "ref_im": f"ref{k:03d}.png"})
            pairs.append((ref[None], dist[None]))
    return pd.DataFrame(rows), pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refs", type=int, default=12, help="references, each of its own size (at most 85)")
    parser.add_argument("--levels", type=int, default=5, help="distorted versions per reference (KADIS: 5)")
    parser.add_argument("--metrics", default=",".join(EIGHT), help="comma-separated; piq is timed on those it has")
    parser.add_argument(
        "--also_compiled", action="store_true", help="then the job with every size compiled (slow: ~40 s a size)"
    )
    args = parser.parse_args()
    names = args.metrics.split(",")
    torch.set_num_threads(os.cpu_count() or 1)
    import tensorflow as tf  # noqa: F401  (imports stay outside the timing, as torch's and piq's do)

    from deepfl import labeling

    labeling.load_metric_functions(names)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "a").mkdir()
        manifest, pairs = write_pairs(root / "a", args.refs, args.levels)
        sizes = sorted({ref.shape[1:3] for ref, _ in pairs})
        print(
            f"{len(pairs)} pairs: {args.refs} references of {len(sizes)} sizes ({sizes[0][0]}x{sizes[0][1]} .. "
            f"{sizes[-1][0]}x{sizes[-1][1]}) x {args.levels} levels; metrics: {', '.join(names)}; "
            f"torch {torch.__version__}, {os.cpu_count()} CPU threads",
            flush=True,
        )
        start = time.perf_counter()
        for ref, dist in pairs:
            for name in names:
                if name in EIGHT:
                    piq_scores(name, ref, dist)
        piq_s = (time.perf_counter() - start) / len(pairs)
        print(f"{'case':52s} {'s/pair':>8s} {'piq s/pair':>11s} {'piq/ours':>9s}", flush=True)

        start = time.perf_counter()
        summary = labeling.label_pairs(manifest, root / "a", root / "a.csv", metrics=names)
        ours_s = (time.perf_counter() - start) / summary.written
        label = "label job, cold, every size new (NumPy forms)"
        print(f"{label:52s} {ours_s:8.3f} {piq_s:11.3f} {piq_s / ours_s:9.2f}", flush=True)

        if args.also_compiled:
            (root / "b").mkdir()
            manifest, _ = write_pairs(root / "b", args.refs, args.levels, shrink=1)
            start = time.perf_counter()
            summary = labeling.label_pairs(
                manifest, root / "b", root / "b.csv", metrics=names, compile_from_pixel_pairs=0
            )
            compiled_s = (time.perf_counter() - start) / summary.written
            label = "label job, every size compiled (before the threshold)"
            print(f"{label:52s} {compiled_s:8.3f} {piq_s:11.3f} {piq_s / compiled_s:9.2f}", flush=True)


if __name__ == "__main__":
    main()
