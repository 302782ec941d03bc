"""The backbones deepfl builds, by name, and which of them can start from pretrained weights.

A module of its own, free of Keras, so that the scripts can offer the names as flag choices and refuse a bad
combination before TensorFlow loads.
"""

from __future__ import annotations

PAPER_ARCHITECTURE = "inception_resnet_v2"
# The paper's network; "small", a 5-stage CNN with the MLSP interface that learns weak labels on a CPU in
# minutes (the demo's); "tiny", a smaller one for smoke tests.
ARCHITECTURES = (PAPER_ARCHITECTURE, "small", "tiny")


def check_architecture(arch: str, weights: str | None) -> None:
    """Raises ValueError naming the culprit when `arch` is unknown, or when `weights` asks for pretrained
    weights ("imagenet" or a file) that only the paper's network has."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch: must be one of {ARCHITECTURES}, got {arch!r}")
    if arch != PAPER_ARCHITECTURE and str(weights or "").lower() not in ("", "none"):
        raise ValueError(
            f"weights: arch {arch!r} has no pretrained weights, got {weights!r}; use weights=none (random init)"
        )
