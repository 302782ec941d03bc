"""Input checks of `deepfl.fr.compute` and of every metric function: dtype, rank, channels, shapes, minimum
size, NaN or infinite values and `ref_index`, each failing with a one-line ValueError that names the culprit.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from deepfl.fr.specs import SPEC_BY_NAME
from deepfl.wording import setting

log = logging.getLogger("deepfl")
_WARNED_UNIT_RANGE: set[str] = set()  # metrics that have warned about [0, 1] input in this process
# True where the float tensors a metric gets were converted from integer images (`compute`, the label job):
# they cannot hold NaN or infinity, so the metrics skip that check (a pass over every pixel of every call).
_FROM_INTEGERS = contextvars.ContextVar("deepfl_fr_from_integers", default=False)


@contextlib.contextmanager
def converted_from_integers(*images: np.ndarray) -> Iterator[None]:
    """Within the block (and threads started with a copy of its context), the metric functions do not look for
    NaN or infinite values in their float input when every one of `images` (the arrays it was converted from)
    has an integer dtype."""
    token = _FROM_INTEGERS.set(all(np.issubdtype(np.asarray(image).dtype, np.integer) for image in images))
    try:
        yield
    finally:
        _FROM_INTEGERS.reset(token)


def _as_array(images, name: str) -> np.ndarray:
    """`images` as one array; a list of images of different sizes is refused naming `name` (NumPy said only
    "inhomogeneous shape")."""
    try:
        return np.asarray(images)
    except ValueError:
        sizes = sorted({np.shape(image) for image in images})
        raise ValueError(
            f"{name}: images of different sizes ({', '.join('x'.join(map(str, s)) for s in sizes[:3])}"
            f"{', ...' if len(sizes) > 3 else ''}) cannot form one batch; score each size in its own call"
        ) from None


def _dtype_hint(image: np.ndarray) -> str:
    """How to turn a non-uint8 image into what the metrics read (the originals read 8-bit image files)."""
    if not np.issubdtype(image.dtype, np.floating) or image.size == 0 or not np.isfinite(image).all():
        return ""
    if image.min() >= 0 and image.max() <= 1:
        return " (values in 0..1: pass (x * 255).round().astype(np.uint8))"
    if image.min() >= 0 and image.max() <= 255:
        return " (values in 0..255: pass x.round().astype(np.uint8))"
    return ""


def _shape_hint(image: np.ndarray) -> str:
    """How to turn a gray or RGBA image into RGB."""
    if image.ndim == 2 or (image.ndim in (3, 4) and image.shape[-1] == 1):
        return " (a gray image: repeat it into three channels, np.dstack([x, x, x]) for HxW)"
    if image.ndim in (3, 4) and image.shape[-1] == 4:
        return " (RGBA: drop the alpha channel, x[..., :3])"
    return ""


def validate_pair(ref: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Checks dtype/shape of a (reference, distorted) pair; returns both as NxHxWx3 uint8 arrays."""
    ref = _as_array(ref, "ref")
    dist = _as_array(dist, "dist")
    for name, image in (("ref", ref), ("dist", dist)):
        if image.dtype != np.uint8:
            raise ValueError(f"{name}: expected uint8 RGB, got dtype {image.dtype}{_dtype_hint(image)}")
        if image.ndim not in (3, 4) or image.shape[-1] != 3:
            raise ValueError(f"{name}: expected HxWx3 or NxHxWx3, got shape {image.shape}{_shape_hint(image)}")
        if image.ndim == 4 and image.shape[0] == 0:
            raise ValueError(f"{name}: an empty batch (shape {image.shape}); give at least one image")
    if ref.shape != dist.shape:
        raise ValueError(f"ref/dist: shapes differ, {ref.shape} vs {dist.shape}")
    if ref.ndim == 3:
        ref, dist = ref[None], dist[None]
    return ref, dist


def prepare_pair(ref: np.ndarray, dist: np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
    """Validates a pair and returns float32 NHWC tensors with values in [0, 255]."""
    ref, dist = validate_pair(ref, dist)
    return tf.convert_to_tensor(ref, tf.float32), tf.convert_to_tensor(dist, tf.float32)


def validate_images(
    ref: np.ndarray, dist: np.ndarray, ref_index=None
) -> tuple[tf.Tensor, tf.Tensor, np.ndarray | None]:
    """`prepare_pair` for `compute`, also for R unique references and N distorted images with `ref_index`.

    Returns float32 NHWC tensors in [0, 255] and the index as an int32 array (None when not given).
    """
    if ref_index is None:
        ref_t, dist_t = prepare_pair(ref, dist)
        return ref_t, dist_t, None
    ref, dist = _as_array(ref, "ref"), _as_array(dist, "dist")
    if ref.ndim == 3:
        ref = ref[None]
    if dist.ndim == 3:
        dist = dist[None]
    validate_pair(ref[:1], dist[:1])  # dtype, rank, channels and H x W
    index = check_ref_index("", ref_index, dist.shape[0], ref.shape[0])
    return tf.convert_to_tensor(ref, tf.float32), tf.convert_to_tensor(dist, tf.float32), index


def check_ref_index(prefix: str, ref_index, num_dist: int, num_refs: int) -> np.ndarray:
    """`ref_index` as an int32 array after checking it: 1-D, integer, one entry per distorted image, values in
    [0, num_refs). Errors start with `prefix` (e.g. "ssim: ") and name `ref_index`."""
    index = np.asarray(ref_index)
    if index.ndim != 1 or not (index.dtype.kind in "iu" or index.size == 0):
        raise ValueError(f"{prefix}ref_index must be a 1-D integer array, got shape {index.shape} dtype {index.dtype}")
    if index.shape[0] != num_dist:
        raise ValueError(f"{prefix}ref_index has {index.shape[0]} entries for {num_dist} distorted images")
    if index.size and (index.min() < 0 or index.max() >= num_refs):
        raise ValueError(
            f"{prefix}ref_index values must lie in [0, {num_refs}) for {num_refs} references, got "
            f"{index.min()}..{index.max()}"
        )
    return index.astype(np.int32)


def check_tensors(metric: str, ref, dist, min_size: int = 1) -> tuple[tf.Tensor, tf.Tensor]:
    """Validates the float NHWC RGB inputs of a metric function (static shapes) and returns float32 tensors.

    Raises ValueError naming `metric` for a wrong rank, channel count, shape mismatch, or a side < min_size.
    """
    ref = tf.convert_to_tensor(ref)
    dist = tf.convert_to_tensor(dist)
    for name, image in (("ref", ref), ("dist", dist)):
        if image.shape.rank == 3:
            raise ValueError(f"{metric}: {name} must be a batch NxHxWx3 (use deepfl.fr.compute for one image)")
        if image.shape.rank != 4 or image.shape[-1] != 3:
            raise ValueError(f"{metric}: {name} must be NxHxWx3 RGB, got shape {tuple(image.shape)}")
        if not (image.dtype.is_floating or image.dtype.is_integer):
            raise ValueError(f"{metric}: {name} must be numeric, got {image.dtype.name}")
    if ref.shape != dist.shape:
        raise ValueError(f"{metric}: ref/dist shapes differ, {tuple(ref.shape)} vs {tuple(dist.shape)}")
    _check_finite(metric, ref, dist)
    _warn_if_unit_range(metric, ref, dist)
    height, width = ref.shape[1], ref.shape[2]
    if height is not None and width is not None:
        check_min_sizes({metric: min_size}, height, width)
    return tf.cast(ref, tf.float32), tf.cast(dist, tf.float32)


def check_min_sizes(min_sizes: dict[str, int], height: int, width: int) -> None:
    """Raises one ValueError naming every metric of `min_sizes` ({metric: smallest side}) that images of
    height x width are too small for."""
    too_small = [name for name, size in min_sizes.items() if min(height, width) < size]
    if too_small:
        sizes = {min_sizes[name] for name in too_small}
        if len(too_small) == 1 or len(sizes) == 1:  # "they need at least 161, 161 pixels" read oddly (a walk)
            needs = f"{'it needs' if len(too_small) == 1 else 'they need'} at least {sizes.pop()} pixels per side"
        else:
            needs = "they need at least " + ", ".join(f"{min_sizes[n]} ({n})" for n in too_small) + " pixels per side"
        raise ValueError(
            f"{', '.join(too_small)}: images of {width}x{height} pixels (width x height) are too small, {needs} "
            f"(leave {'it' if len(too_small) == 1 else 'them'} out of {setting('metrics')} to score the others)"
        )


def _check_finite(metric: str, ref: tf.Tensor, dist: tf.Tensor) -> None:
    """Refuses float input holding NaN or infinity, naming the tensor and the first such image: the metrics would
    return NaN, or for an infinite pixel a plausible score (SSIM 0.99, GMSD, ADD-GSIM), without a word. Eager
    calls only; skipped for tensors converted from integers (`converted_from_integers`)."""
    if _FROM_INTEGERS.get() or not tf.executing_eagerly():
        return
    for name, image in (("ref", ref), ("dist", dist)):
        if not image.dtype.is_floating:
            continue
        values = np.asarray(image)
        if not np.isfinite(values).all():
            first = int(np.argmin(np.isfinite(values).reshape(len(values), -1).all(axis=1)))
            kind = "NaN" if np.isnan(values[first]).any() else "infinite"
            raise ValueError(
                f"{metric}: {name} image {first} holds {kind} values; the metrics take finite RGB in [0, 255]"
            )


def _warn_if_unit_range(metric: str, ref: tf.Tensor, dist: tf.Tensor) -> None:
    """One warning per metric and process when float input looks scaled to [0, 1] (a sample of the first pair has
    fractional values and none above 1): the metrics take [0, 255] and score such images as nearly identical
    (SSIM 0.9998 for a pair at 0.9155). Eager calls only; uint8 images converted to float (`compute`) have no
    fractions and never warn, so their calls skip the sample (taken in NumPy: TensorFlow's eager slices of it cost
    more than some metrics' whole NumPy form)."""
    if (
        metric in _WARNED_UNIT_RANGE
        or _FROM_INTEGERS.get()
        or not tf.executing_eagerly()
        or not ref.dtype.is_floating
        or ref.shape[0] == 0
    ):
        return
    sample = np.concatenate([np.asarray(image)[:1, ::16, ::16].ravel() for image in (ref, dist)])
    if sample.max() <= 1.0 and np.any(sample != np.round(sample)):
        _WARNED_UNIT_RANGE.add(metric)
        log.warning(
            "%s: the images' values lie within [0, 1]; the metric functions take RGB in [0, 255] (multiply by 255)",
            metric,
        )


def check_indexed(
    metric: str, ref, dist, ref_index=None, min_size: int | None = None
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor | None]:
    """Validates the inputs of a metric that scores N distorted images against R (<= N) unique references.

    ref: RxHxWx3, dist: NxHxWx3 (float or integer), ref_index: None (then R must equal N: pair i is
    (ref[i], dist[i])) or N integers in [0, R): pair i is (ref[ref_index[i]], dist[i]). This lets a metric do
    its reference-only work (filtering, pyramids, phase congruency, saliency) once per unique reference, e.g.
    once for the 5 levels of a KADIS reference. min_size: the smallest side accepted, by default the metric's
    `deepfl.fr.specs` entry. Returns float32 tensors and ref_index as int32 (or None).
    """
    if min_size is None:
        min_size = SPEC_BY_NAME[metric].min_size
    if ref_index is None:
        ref, dist = check_tensors(metric, ref, dist, min_size)
        return ref, dist, None
    ref = tf.convert_to_tensor(ref)
    dist = tf.convert_to_tensor(dist)
    if ref.shape.rank != 4 or dist.shape.rank != 4:
        check_tensors(metric, ref, dist, min_size)  # raises the rank/channel error
    index = check_ref_index(f"{metric}: ", ref_index, dist.shape[0], ref.shape[0])
    # Shapes are compared without the batch axis: check_tensors sees one reference per distorted image.
    check_tensors(metric, ref[:1], dist[:1], min_size)
    _check_finite(metric, ref, dist)
    return tf.cast(ref, tf.float32), tf.cast(dist, tf.float32), tf.constant(index, tf.int32)
