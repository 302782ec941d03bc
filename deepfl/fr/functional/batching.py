"""Reference sharing: maps of R unique references turned into the per-pair maps of N distorted images."""

from __future__ import annotations

import tensorflow as tf


def split_batch(x: tf.Tensor, num_refs, ref_index: tf.Tensor | None) -> tuple[tf.Tensor, tf.Tensor]:
    """Splits per-image maps computed on concat([ref, dist]) into (reference maps per pair, distorted maps).

    The first `num_refs` rows belong to the references; with `ref_index` they are gathered so that row i of
    the first result is the reference of distorted image i (a plain slice when ref_index is None).
    """
    return take_refs(x[:num_refs], ref_index), x[num_refs:]


def take_refs(x: tf.Tensor, ref_index: tf.Tensor | None) -> tf.Tensor:
    """Per-reference maps -> per-pair maps (`tf.gather` by ref_index; unchanged when ref_index is None)."""
    return x if ref_index is None else tf.gather(x, ref_index)
