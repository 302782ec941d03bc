"""Feature extraction on images of many sizes: images/s on N images of N distinct sizes against N of one size.

A model specialised per input shape (a retrace or an XLA compilation per size) makes the mixed case far slower
than the equal-size one; a shape-polymorphic forward pass keeps the ratio near 1. Each case starts cold, on a
freshly built backbone (random init, the same seed, nothing downloaded), in this process, with batch size 1
(mixed sizes never share a batch): deepfl's `compute_features` (one trace for every size) on one size and on the
mixed sizes, and the peer, Keras' `predict_on_batch` (a trace for the first size, another for unknown sizes at
the second), on the mixed sizes.

    python bench/features_mixed.py --arch tiny --n 20
    python bench/features_mixed.py --arch inception_resnet_v2 --n 20
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from deepfl.quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # TensorFlow's C++ start-up lines (oneDNN, CUDA probes) stay off the bench's output
os.environ.setdefault("DEEPFL_NO_PROGRESS", "1")
import numpy as np  # noqa: E402

import deepfl  # noqa: E402,F401  (before TensorFlow: deepfl sets its oneDNN default)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="tiny", choices=["inception_resnet_v2", "tiny"])
    parser.add_argument("--n", type=int, default=20, help="images per case")
    args = parser.parse_args()

    import keras
    from skimage import data

    from deepfl import features
    from deepfl.models import build_backbone

    photo = data.astronaut()
    sides = [(200 + 10 * k, 300 + 5 * k) for k in range(args.n)]  # 200x300 .. 390x395, all distinct
    mixed = [np.ascontiguousarray(photo[k : k + h, k : k + w]) for k, (h, w) in enumerate(sides)]
    same = [np.ascontiguousarray(photo[k : k + 301, k : k + 347]) for k in range(args.n)]  # one unused size

    def deepfl_features(extractor, images):
        features.compute_features(extractor, images, batch_size=1)

    def keras_features(extractor, images):
        for image in images:
            extractor.predict_on_batch(image[None].astype(np.float32))

    rates = {}
    cases = (
        ("deepfl, one size", deepfl_features, same),
        ("deepfl, all sizes differ", deepfl_features, mixed),
        ("Keras predict_on_batch, all sizes differ", keras_features, mixed),
    )
    for label, run, images in cases:
        keras.utils.set_random_seed(0)
        extractor = build_backbone(weights=None, input_shape=(None, None, 3), arch=args.arch)
        start = time.perf_counter()
        run(extractor, images)
        rates[label] = len(images) / (time.perf_counter() - start)
    print(f"{args.arch}, {args.n} images per case, batch 1, each case cold on a new model")
    for label, rate in rates.items():
        print(f"{label:42s} {rate:8.2f} images/s")
    mixed_rate = rates["deepfl, all sizes differ"]
    print(f"ratio mixed / one size: {mixed_rate / rates['deepfl, one size']:.2f}")
    print(f"ratio deepfl / Keras predict_on_batch, all sizes differ: {mixed_rate / rates[cases[2][0]]:.2f}")


if __name__ == "__main__":
    main()
