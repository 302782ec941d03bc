"""MLSP feature extraction throughput: deepfl's size-batched HDF5 job vs one image per forward pass.

The peer is what a straightforward script (and the authors' demo) does: `model.predict(image[None])` per image,
features kept in memory. Both run in this process on the same PNG files and the same backbone (random init,
nothing downloaded), so the ratio is meaningful on a busy machine. Prints images/s and the ratio.

  python bench/features.py                      # InceptionResNetV2, 24 images of 384x512 in 2 sizes
  python bench/features.py --arch tiny --n 200  # plumbing only
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from deepfl.quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # TensorFlow's C++ start-up lines (oneDNN, CUDA probes) stay off the bench's output
os.environ.setdefault("DEEPFL_NO_PROGRESS", "1")
import numpy as np

import deepfl  # noqa: E402,F401  (before TensorFlow: deepfl sets its oneDNN default)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="inception_resnet_v2", choices=["inception_resnet_v2", "tiny"])
    parser.add_argument("--n", type=int, default=24, help="images (half at --size, half at its transpose)")
    parser.add_argument("--size", type=int, nargs=2, default=(384, 512), metavar=("H", "W"))
    parser.add_argument("--batch", type=int, default=8, help="deepfl's batch size")
    parser.add_argument("--repeats", type=int, default=2, help="timed repetitions (best kept) after a warm-up")
    args = parser.parse_args()

    from skimage import data

    from deepfl import features
    from deepfl.images import read_image, write_image
    from deepfl.models import build_backbone

    extractor = build_backbone(weights=None, input_shape=(None, None, 3), arch=args.arch)
    h, w = args.size
    base = np.asarray(data.astronaut())
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(args.n):
            img = np.roll(np.resize(base, (max(h, w), max(h, w), 3)), 13 * i, axis=0)
            img = img[:h, :w] if i % 2 == 0 else img[:w, :h]
            path = Path(tmp) / f"im{i:04d}.png"
            write_image(path, np.ascontiguousarray(img))
            paths.append(str(path))

        def ours(k: int) -> float:
            start = time.perf_counter()
            features.extract_to_cache(extractor, paths, Path(tmp) / f"cache{k}.h5", batch_size=args.batch)
            return time.perf_counter() - start

        def peer(k: int) -> float:
            start = time.perf_counter()
            feats = [extractor.predict(read_image(p)[None].astype(np.float32), verbose=0)[0] for p in paths]
            np.stack(feats)
            return time.perf_counter() - start

        ours(-1), peer(-1)  # warm-up: tracing for both sizes
        t_ours = min(ours(k) for k in range(args.repeats))
        t_peer = min(peer(k) for k in range(args.repeats))
    print(f"MLSP extraction, {args.arch}, {args.n} images of {h}x{w} and {w}x{h}, best of {args.repeats}")
    print(f"{'':36s} {'images/s':>10s}")
    print(f"{'deepfl (size-batched, HDF5 cache)':36s} {args.n / t_ours:10.2f}")
    print(f"{'peer (predict per image, in memory)':36s} {args.n / t_peer:10.2f}")
    print(f"ratio deepfl/peer: {t_peer / t_ours:.2f}x")


if __name__ == "__main__":
    main()
