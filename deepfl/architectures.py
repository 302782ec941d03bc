"""The backbones deepfl builds, by name, and which of them can start from pretrained weights.

A module of its own, free of Keras, so that the scripts can offer the names as flag choices and refuse a bad
combination before TensorFlow loads.
"""

from __future__ import annotations

from deepfl.wording import by_caller

PAPER_ARCHITECTURE = "inception_resnet_v2"
# The paper's network; "small", a 5-stage CNN with the MLSP interface that learns weak labels on a CPU in
# minutes (the demo's); "tiny", a smaller one for smoke tests.
ARCHITECTURES = (PAPER_ARCHITECTURE, "small", "tiny")
# The smallest image side the paper's network takes (its unpadded convolutions and poolings; Keras' minimum for
# InceptionResNetV2). The other backbones pad, so they take any size.
PAPER_MIN_SIDE = 75
# Keras' ImageNet weights of the paper's network, by the name `weights=` takes; as a model to score with
# (`deepfl-export/deepfl-predict --model imagenet`), the backbone with them: the paper's baseline.
IMAGENET = "imagenet"


def check_architecture(arch: str, weights: str | None) -> None:
    """Raises ValueError naming the culprit when `arch` is unknown, or when `weights` asks for pretrained
    weights ("imagenet" or a file) that only the paper's network has."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch: must be one of {ARCHITECTURES}, got {arch!r}")
    if arch != PAPER_ARCHITECTURE and str(weights or "").lower() not in ("", "none"):
        raise ValueError(
            f"weights: arch {arch!r} has no pretrained weights, got {weights!r}; use "
            f"{by_caller('--weights=none', 'weights=None')} (random init)"
        )


def default_pixel_scaling(weights: str | None) -> str:
    """The pixel scaling the weights were trained with: Keras' [-1, 1] for "imagenet", x / 255 otherwise."""
    return "symmetric" if weights == "imagenet" else "unit"


def too_small_reason(height: int, width: int) -> str | None:
    """Why a model failed on an image of height x width, when the size explains it (a side below the paper's
    network's minimum); None otherwise."""
    if min(height, width) >= PAPER_MIN_SIDE:
        return None
    return (
        f"too small for the network: InceptionResNetV2 needs at least {PAPER_MIN_SIDE}x{PAPER_MIN_SIDE} pixels; "
        "use a larger image"
    )
