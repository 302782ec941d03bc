"""Shared pieces of the FR metrics: input validation, MATLAB-exact colour conversions, filters.

Every metric module builds on these so that `rgb2gray` rounding, padding and downsampling are written once.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def validate_pair(ref: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Checks dtype/shape of a (reference, distorted) pair; returns both as NxHxWx3 uint8 arrays."""
    ref = np.asarray(ref)
    dist = np.asarray(dist)
    for name, image in (("ref", ref), ("dist", dist)):
        if image.dtype != np.uint8:
            raise ValueError(f"{name}: expected uint8 RGB, got dtype {image.dtype}")
        if image.ndim not in (3, 4) or image.shape[-1] != 3:
            raise ValueError(f"{name}: expected HxWx3 or NxHxWx3, got shape {image.shape}")
    if ref.shape != dist.shape:
        raise ValueError(f"ref/dist: shapes differ, {ref.shape} vs {dist.shape}")
    if ref.ndim == 3:
        ref, dist = ref[None], dist[None]
    return ref, dist


def prepare_pair(ref: np.ndarray, dist: np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
    """Validates a pair and returns float32 NHWC tensors with values in [0, 255]."""
    ref, dist = validate_pair(ref, dist)
    return tf.convert_to_tensor(ref, tf.float32), tf.convert_to_tensor(dist, tf.float32)


def rgb2gray(rgb: tf.Tensor) -> tf.Tensor:
    """MATLAB `rgb2gray` on uint8 data: 0.2989 R + 0.5870 G + 0.1140 B, rounded; NHWC -> NHW1 float32."""
    weights = tf.constant([0.298936021293775, 0.587043074451121, 0.114020904255103], tf.float32)
    gray = tf.reduce_sum(rgb * weights, axis=-1, keepdims=True)
    return tf.round(gray)
