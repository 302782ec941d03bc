"""Features of one very large image: banded convolutions against whole ones, in this process.

With oneDNN on (deepfl's default) and an x86 CPU without AVX-512, a convolution whose input holds about 2^27
values per image falls back to oneDNN's reference kernel; `deepfl.models.banded_conv` runs such convolutions in
row bands. This bench times the features of one random image of `--size` both ways (the whole case on an
unbanded copy of the same network, random init, nothing downloaded), twice each (the first call includes
tracing), and prints the ratio. `--isa AVX2` caps oneDNN at AVX2 (ONEDNN_MAX_CPU_ISA) to show the fallback on a
CPU that has AVX-512; `--skip_whole` leaves out the whole case (minutes per call where it falls back).

    python bench/large_images.py --arch small --size 4000x3000 --isa AVX2
    python bench/large_images.py --arch inception_resnet_v2 --size 5472x3648 --isa AVX2 --skip_whole
"""

from __future__ import annotations

import argparse
import os
import time


def _width_height(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 4000x3000, got {text!r}")
    return int(width), int(height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="small", choices=["small", "inception_resnet_v2", "tiny"])
    parser.add_argument("--size", type=_width_height, default="4000x3000", help="image width x height")
    parser.add_argument("--isa", default=None, help="cap oneDNN's instruction set (ONEDNN_MAX_CPU_ISA), e.g. AVX2")
    parser.add_argument("--skip_whole", action="store_true", help="time only the banded case")
    args = parser.parse_args()
    width, height = args.size
    if args.isa:
        os.environ["ONEDNN_MAX_CPU_ISA"] = args.isa
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from deepfl.quiet import quiet_tensorflow

    quiet_tensorflow()
    import keras
    import numpy as np

    import deepfl  # noqa: F401  (before TensorFlow: deepfl sets its oneDNN default)
    from deepfl.models import build_backbone
    from deepfl.models.banded_conv import batch_predictor, onednn_fallback_possible

    network = build_backbone(weights=None, input_shape=(None, None, 3), arch=args.arch)
    whole_network = keras.models.clone_model(network)  # new layers: convolutions as Keras makes them
    whole_network.set_weights(network.get_weights())
    image = np.random.default_rng(0).uniform(0, 255, (1, height, width, 3)).astype(np.float32)
    cases = {"banded": batch_predictor(network, banded=True)}
    if not args.skip_whole:
        cases["whole"] = batch_predictor(whole_network, banded=False)
    print(
        f"{args.arch}, one {width}x{height} image ({width * height / 1e6:.1f} MP), oneDNN capped at "
        f"{args.isa or 'nothing'}, fallback possible here: {onednn_fallback_possible()}"
    )
    seconds, outputs = {}, {}
    for label, predict in cases.items():
        for call in ("first", "second"):
            start = time.perf_counter()
            outputs[label] = predict(image)
            seconds[label, call] = time.perf_counter() - start
            print(f"{label:7s} {call:6s} call {seconds[label, call]:8.2f} s", flush=True)
    if "whole" in cases:
        ratio = seconds["whole", "second"] / seconds["banded", "second"]
        difference = np.abs(outputs["banded"] - outputs["whole"]).max() / np.abs(outputs["whole"]).max()
        print(f"whole / banded (second calls): {ratio:.1f}x; largest feature difference {difference:.1e} (relative)")


if __name__ == "__main__":
    main()
