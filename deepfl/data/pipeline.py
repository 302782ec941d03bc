"""tf.data input pipeline: from a data table to batches of (float32 RGB images in [0, 255], {target: float32}).

Order of work, chosen so the costly step (decoding) runs once per image, in parallel, on already shuffled paths:
paths + targets -> seeded shuffle (paths only, cheap) -> [repeat] -> parallel read + decode (+ resize / crop /
flip) -> skip-and-count corrupt files -> batch (by shape when sizes differ) -> uint8 to float32 per batch ->
prefetch. Training on images of several sizes instead plans its batches per pass over the table (one size per
batch, every row once per pass: `deepfl.data.size_batches`) and decodes each planned batch in parallel.
Random crops and flips are stateless functions of (seed, element index), so a deterministic run gives the same
bytes every time whatever the number of parallel calls.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import tensorflow as tf

from deepfl.cpus import usable_cores
from deepfl.data.normalization import TargetNormalizer
from deepfl.data.size_batches import batch_stream
from deepfl.errors import ImageReadError
from deepfl.images import decode_image, header_sizes_of, jpeg_orientation

log = logging.getLogger("deepfl")

# Fixed parallelism and look-ahead: the pipelines run without tf.data's autotuning (`untuned`).
PARALLEL_CALLS = usable_cores()
PREFETCH_BATCHES = 2

# What starts the APP1 segment that holds a JPEG's EXIF data.
_EXIF_HEADER = b"Exif\x00\x00"
# First bytes of the formats TensorFlow decodes (tf.io.decode_image): PNG, JPEG, BMP, GIF.
_MAGIC = ((b"\x89PNG", 4), (b"\xff\xd8\xff", 3), (b"BM", 2), (b"GIF8", 4))


def untuned(dataset: tf.data.Dataset, deterministic: bool = True) -> tf.data.Dataset:
    """`dataset` with tf.data's autotuning off (and its order kept when `deterministic`). The autotuning model
    thread, asleep for up to its optimisation period (which doubles up to a minute), sometimes misses the iterator's
    cancellation, and deleting the iterator then waits out that sleep, idle for tens of seconds
    (docs/measurements.md): at the end of every training phase and of every label job."""
    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    options.autotune.enabled = False
    return dataset.with_options(options)


def is_known_image(data: tf.Tensor) -> tf.Tensor:
    """True when the encoded bytes start like a PNG, JPEG, BMP or GIF (a cheap check run before decoding)."""
    checks = [tf.equal(tf.strings.substr(data, 0, length), magic) for magic, length in _MAGIC]
    return tf.reduce_any(tf.stack(checks))


def decode_image_tf(data: tf.Tensor, name: tf.Tensor | str = "<bytes>", accurate_jpeg: bool = True) -> tf.Tensor:
    """Decodes PNG/JPEG/BMP/GIF bytes to uint8 [H, W, 3] RGB inside tf.data (gray -> RGB, alpha dropped).

    `accurate_jpeg` decodes JPEG with libjpeg's accurate integer IDCT, the one Pillow and MATLAB's `imread`
    use, so pixels match theirs; TensorFlow's default fast IDCT differs by up to about 3 levels. 16-bit PNGs, PNGs
    that can hold transparency and GIFs go through `deepfl.images.decode_image`, as `read_image` reads them. A file
    that does not start like an image fails with an error that names `name`; a corrupt stream fails with
    TensorFlow's decoder message.
    """
    check = tf.debugging.Assert(is_known_image(data), ["deepfl: not a PNG/JPEG/BMP/GIF image or empty file:", name])
    with tf.control_dependencies([check]):
        # JPEG first, with no other test: the check for the files `read_image` decodes otherwise, run on every
        # file, cost the JPEG stream about a tenth of its rate.
        is_jpeg = tf.equal(tf.strings.substr(data, 0, 3), b"\xff\xd8\xff")
        image = tf.cond(
            is_jpeg,
            lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE" if accurate_jpeg else ""),
            lambda: tf.cond(
                _decoded_by_deepfl(data),
                lambda: _decode_with_pillow(data, tf.convert_to_tensor(name, tf.string)),
                lambda: tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False),
            ),
        )
    image.set_shape([None, None, 3])
    return image


def _orientation_tf(data: tf.Tensor) -> tf.Tensor:
    """The EXIF orientation of JPEG bytes (`deepfl.images.jpeg_orientation`), 1 for other formats. The Python
    parser runs only for a JPEG whose bytes hold "Exif\\0\\0" somewhere (it needs them at the start of an APP1
    segment): a call into Python for every image held the GIL and halved the JPEG stream (1,214 -> 591 images/s
    decoded on 2 cores), and KADIS-style JPEGs (written by deepfl or Pillow) carry no EXIF."""

    def parse(raw) -> np.int32:  # a scalar string tensor arrives as a 0-d object array holding the bytes
        return np.int32(jpeg_orientation(raw.item() if isinstance(raw, np.ndarray) else raw))

    is_jpeg = tf.equal(tf.strings.substr(data, 0, 2), b"\xff\xd8")
    holds_exif = tf.size(tf.strings.split(data, sep=_EXIF_HEADER)) > 1
    return tf.cond(
        tf.logical_and(is_jpeg, holds_exif),
        lambda: tf.reshape(tf.numpy_function(parse, [data], tf.int32, stateful=False), []),
        lambda: tf.constant(1, tf.int32),
    )


# EXIF orientation 1..8 as (transpose, then reverse the rows, then reverse the columns): Pillow's exif_transpose.
_ORIENTATION_TRANSPOSE = (0, 0, 0, 0, 1, 1, 1, 1)
_ORIENTATION_REVERSE_ROWS = (0, 0, 1, 1, 0, 0, 1, 1)
_ORIENTATION_REVERSE_COLUMNS = (0, 1, 1, 0, 0, 1, 1, 0)


def apply_orientation(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """Turns a decoded [H, W, 3] image upright for its EXIF orientation (1..8; others count as 1), as Pillow's
    `exif_transpose`. Without branches: a transpose by a chosen permutation and a reverse over chosen axes, which
    pass the image through untouched for orientation 1 (a `tf.switch_case` of the eight cases cost a third of the
    JPEG stream's rate, as every branch runs as a function call)."""
    index = tf.clip_by_value(tf.cast(orientation, tf.int32) - 1, 0, 7)
    transpose = tf.gather(_ORIENTATION_TRANSPOSE, index) > 0
    upright = tf.transpose(image, tf.where(transpose, [1, 0, 2], [0, 1, 2]))
    reverse = tf.stack([tf.gather(_ORIENTATION_REVERSE_ROWS, index), tf.gather(_ORIENTATION_REVERSE_COLUMNS, index)])
    upright = tf.reverse(upright, tf.boolean_mask([0, 1], reverse > 0))
    upright.set_shape([None, None, 3])
    return upright


def _decode_with_pillow(data: tf.Tensor, name: tf.Tensor) -> tf.Tensor:
    """`deepfl.images.decode_image` (Pillow: TIFF, WebP, PPM and the rest, upright for EXIF orientation) inside
    tf.data, for the files TensorFlow's decoders do not read; an unreadable file fails with its reason."""

    def decode(raw, label) -> np.ndarray:  # scalar string tensors arrive as bytes (or 0-d object arrays)
        raw = raw.item() if isinstance(raw, np.ndarray) else raw
        label = (label.item() if isinstance(label, np.ndarray) else label).decode("utf-8", "replace")
        try:
            return decode_image(raw, name=label)
        except ImageReadError as exc:
            # A TensorFlow error, so eager calls and tf.data report it alike (as the decoders' own errors).
            raise tf.errors.InvalidArgumentError(None, None, f"deepfl: {str(exc).removeprefix(label + ': ')}") from None

    image = tf.numpy_function(decode, [data, name], tf.uint8, stateful=False)
    image.set_shape([None, None, 3])
    return image


def read_image_tf(path: tf.Tensor | str, accurate_jpeg: bool = True) -> tf.Tensor:
    """Reads and decodes an image file to uint8 [H, W, 3] RGB, upright for its EXIF orientation (as
    `deepfl.images.decode_image`); usable inside `Dataset.map` and eagerly. Plain PNGs, JPEG and BMP go through
    TensorFlow's decoders; any other file (TIFF, WebP, GIF, 16-bit or transparent PNGs, ..., or not an image)
    through `deepfl.images.decode_image`, which names the reason when it cannot read it."""
    path = tf.convert_to_tensor(path, tf.string)
    data = tf.io.read_file(path)
    return tf.cond(
        is_known_image(data),
        lambda: apply_orientation(decode_image_tf(data, path, accurate_jpeg), _orientation_tf(data)),
        lambda: _decode_with_pillow(data, path),
    )


def _decoded_by_deepfl(data: tf.Tensor) -> tf.Tensor:
    """True for the files of a TensorFlow format that TensorFlow would read otherwise than `read_image`, from their
    first 26 bytes: a 16-bit PNG (TensorFlow keeps v >> 8; `read_image` rounds v / 257, as MATLAB's im2uint8), and a
    PNG with an alpha channel or a palette, or a GIF, which can hold transparent pixels: `read_image` names them in a
    warning line, TensorFlow's decoder drops them in silence. Rare in training sets; the common files stay on
    TensorFlow's decoders. (Gray or RGB 8-bit PNGs with a tRNS colour key decode to the same pixels either way but
    without the warning: looking for the chunk cost the PNG stream a tenth of its rate.)"""
    header = tf.strings.join([tf.strings.substr(data, 0, 26), b"\0" * 26])  # PNG depth: byte 24, colour type: 25
    is_png = tf.equal(tf.strings.substr(header, 0, 4), b"\x89PNG")
    is_gif = tf.equal(tf.strings.substr(header, 0, 4), b"GIF8")
    colour = tf.strings.substr(header, 25, 1)
    sixteen_bits = tf.equal(tf.strings.substr(header, 24, 1), b"\x10")
    can_be_transparent = tf.reduce_any(tf.equal(colour, [b"\x03", b"\x04", b"\x06"]))  # palette, gray+alpha, RGBA
    return tf.logical_or(is_gif, tf.logical_and(is_png, tf.logical_or(sixteen_bits, can_be_transparent)))


_USABLE_PROBE = 256  # headers read per round by `first_usable_image`


def iter_unreadable_images(paths: Iterable[str], crop_size: Sequence[int] | None = None) -> Iterator[tuple[str, str]]:
    """Yields (path, reason) for each file of `paths` the pipeline cannot decode, or (with `crop_size`, height
    and width) cannot crop because it is smaller, in order, lazily (so the first culprit costs only the decodes
    before it)."""
    for path in paths:
        try:
            image = read_image_tf(tf.constant(str(path)))
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, tf.errors.UnknownError) as exc:
            message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", exc.message or "").strip()
            message = re.sub(r"\s*\[Op:\w+\].*$", "", message.splitlines()[0] if message else "")
            ours = re.search(r"deepfl: ([^'\"]*)", message)
            yield str(path), ours.group(1).rstrip(": ") if ours else message or type(exc).__name__
            continue
        height, width = image.shape[:2]
        if crop_size is not None and (height < crop_size[0] or width < crop_size[1]):
            yield (
                str(path),
                (f"{width}x{height} pixels (width x height), smaller than the crop of {crop_size[1]}x{crop_size[0]}"),
            )


def first_usable_image(paths: Sequence[str], crop_size: Sequence[int] | None = None) -> str | None:
    """The first of `paths` the pipeline can decode (and, with `crop_size`, height and width, crop), or None where
    there is none: a repeated stream of such images (`make_dataset(..., repeat=True)` with skipping) would wait
    forever for its first element. Headers are read first, `_USABLE_PROBE` files at a time on threads; only files
    whose header is readable (and large enough) are decoded, so a usable first image costs one decode, and a set
    of files that are no images, or all too small, costs no decode at all."""
    for start in range(0, len(paths), _USABLE_PROBE):
        chunk = [str(path) for path in paths[start : start + _USABLE_PROBE]]
        for path, size in zip(chunk, header_sizes_of(chunk)):
            if size is None or (crop_size is not None and (size[0] < crop_size[0] or size[1] < crop_size[1])):
                continue
            if next(iter_unreadable_images([path], crop_size), None) is None:
                return path
    return None


def find_unreadable_images(paths: Sequence[str], crop_size: Sequence[int] | None = None) -> list[tuple[str, str]]:
    """Names the files the pipeline cannot decode (or crop to `crop_size`), as (path, reason) pairs; run after an
    epoch reported skips."""
    return list(iter_unreadable_images(paths, crop_size))


class PipelineStats:
    """Counts images entering the decoder and images decoded; the difference is the images skipped: unreadable,
    or (with `crop_size`) smaller than the crop.

    Read `skipped` after an epoch of a dataset that is not repeated has been consumed (while iterating, elements
    still in flight count as skipped). Counts accumulate over epochs until `reset()`.
    """

    def __init__(self, crop_size: tuple[int, int] | None = None):
        self.crop_size = crop_size  # set by make_dataset when it crops: name_skipped also names images too small
        with tf.device("/CPU:0"):
            self._seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="deepfl_images_seen")
            self._decoded = tf.Variable(0, dtype=tf.int64, trainable=False, name="deepfl_images_decoded")

    @property
    def seen(self) -> int:
        return int(self._seen.numpy())

    @property
    def decoded(self) -> int:
        return int(self._decoded.numpy())

    @property
    def skipped(self) -> int:
        return self.seen - self.decoded

    def reset(self) -> None:
        self._seen.assign(0)
        self._decoded.assign(0)

    def name_skipped(self, paths: Sequence[str]) -> list[tuple[str, str]]:
        """After an epoch with skips, finds the unreadable files among `paths` (the table's `image` column), logs
        one warning per file on the "deepfl" logger (TensorFlow's own skip warnings carry no file name and are
        hidden by TF_CPP_MIN_LOG_LEVEL) and returns them as (path, reason); does nothing when none were skipped."""
        if self.skipped <= 0:
            return []
        bad = find_unreadable_images(paths, self.crop_size)
        for path, reason in bad:
            log.warning("%s: image skipped (%s)", path, reason)
        return bad

    def summary(self) -> str:
        why = "unreadable or smaller than the crop" if self.crop_size else "unreadable"
        return f"{self.decoded} of {self.seen} images decoded, {self.skipped} skipped ({why})"

    def __repr__(self) -> str:
        return f"PipelineStats(seen={self.seen}, decoded={self.decoded}, skipped={self.skipped})"


def header_sizes(paths: Sequence[str], workers: int = 8) -> dict[tuple[int, int], int]:
    """How many of `paths` have each (height, width), read from the file headers (no pixel decode), in parallel
    threads (the cost is file opens). Files without a readable header are left out: the pipeline skips or
    names them itself."""
    counts: dict[tuple[int, int], int] = {}
    for size in header_sizes_of(paths, workers):
        if size is not None:
            counts[size] = counts.get(size, 0) + 1
    return counts


def aspect_change(size: Sequence[int], target: Sequence[int]) -> float:
    """Relative change of the width/height ratio when an image of `size` (height, width) is resized to `target`."""
    return abs((target[1] / target[0]) / (size[1] / size[0]) - 1.0)


def _size_pair(value, name: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, (int, np.integer)):
        value = (int(value), int(value))
    try:
        height, width = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected (height, width), got {value!r}") from None
    if height < 1 or width < 1:
        raise ValueError(f"{name}: must be positive, got {value!r}")
    return height, width


def _targets_from_table(
    table: pd.DataFrame, targets: Sequence[str], normalizer: TargetNormalizer | None
) -> dict[str, np.ndarray]:
    missing = [t for t in targets if t not in table.columns]
    if missing:
        raise ValueError(f"targets: column(s) {missing} not in the table (has {list(table.columns)})")
    values = normalizer.transform(table[list(targets)]) if normalizer is not None else table[list(targets)]
    out = {}
    for name in targets:
        column = np.asarray(values[name], dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(column))
        if bad.size:
            raise ValueError(f"table: target {name!r} is NaN/inf for {table['image'].iloc[bad[0]]}")
        out[name] = column.astype(np.float32)
    return out


def _one_size_batches(plan, paths, target_values, longest: int, with_index: bool, decoded_elements):
    """Batches in the order `plan()` yields them ((row indices, first element index) per batch, at most `longest`
    rows each), each batch's images decoded in parallel by `decoded_elements` (a corrupt one is dropped from its
    batch; a batch left empty yields nothing), several batches prepared at once and delivered in plan order."""
    paths = tf.constant(paths)
    values = {name: tf.constant(column) for name, column in target_values.items()}
    batches = tf.data.Dataset.from_generator(
        plan, output_signature=(tf.TensorSpec([None], tf.int64), tf.TensorSpec([], tf.int64))
    )

    @tf.autograph.experimental.do_not_convert
    def element(index, row):
        path_and_values = (tf.gather(paths, row), {name: tf.gather(column, row) for name, column in values.items()})
        return (index, path_and_values) if with_index else path_and_values

    @tf.autograph.experimental.do_not_convert
    def one_batch(rows, first):
        indices = first + tf.range(tf.size(rows, out_type=tf.int64), dtype=tf.int64)
        elements = tf.data.Dataset.from_tensor_slices((indices, rows)).map(element)
        return decoded_elements(elements).batch(longest)

    cycle = 4  # batches prepared at once (tf.data refuses more parallel calls than that)
    return batches.interleave(
        one_batch, cycle_length=cycle, block_length=1, num_parallel_calls=min(PARALLEL_CALLS, cycle), deterministic=True
    )


def make_dataset(
    table: pd.DataFrame,
    targets: Sequence[str] | str,
    batch_size: int,
    training: bool = False,
    image_size: Sequence[int] | int | None = None,
    crop_size: Sequence[int] | int | None = None,
    flip: bool = False,
    normalizer: TargetNormalizer | None = None,
    seed: int = 0,
    deterministic: bool = True,
    on_error: str = "skip",
    repeat: bool = False,
    shuffle: bool | None = None,
    drop_remainder: bool = False,
    stats: PipelineStats | None = None,
    accurate_jpeg: bool = True,
    count_errors: bool = True,
    same_size: bool = False,
    dtype: str = "float32",
    skip: int = 0,
    image_sizes: Sequence[tuple[int, int] | None] | None = None,
    replicas: int = 1,
) -> tf.data.Dataset:
    """Builds the input pipeline of `table` (column `image` + target columns).

    Yields `(images float32 [B, H, W, 3] in [0, 255], {target: float32 [B]})` (uint8 images with `dtype="uint8"`).
    `image_size` resizes (bilinear, antialiased); `crop_size` takes a random crop when `training` (centre crop
    otherwise); `flip` mirrors at random when `training`. Without a fixed output size, images are batched by shape
    (equal-size images share a batch). Paths are shuffled (seeded, new order each epoch) before decoding when
    `shuffle` (default: `training`). `normalizer` (fitted on the training split) maps the targets.
    `on_error="skip"` drops corrupt or missing images and counts them in `stats` (also reachable as
    `dataset.deepfl_stats`); `"stop"` raises.
    `accurate_jpeg=False` trades exact Pillow/MATLAB JPEG pixels for TensorFlow's faster IDCT.
    `count_errors=False` leaves out the two counting steps (they capture tf.Variables, which a tf.distribute
    strategy that serialises the input graph may refuse); corrupt files are then skipped uncounted.
    `same_size=True` promises that all images share one size, so batching skips the by-shape grouping (~7% of
    the CPU time on 2 cores). `dtype="uint8"` yields uint8 images (same values) and skips the float32 conversion,
    ~20% of the CPU time at 512x384: the model casts on the accelerator, and a quarter of the bytes travel to it.
    `skip` drops that many (shuffled, repeated) elements before decoding, at the cost of iterating paths only:
    a job resumed after `n` consumed images passes `skip=n` (with the same seed) and sees exactly the images,
    crops and flips an unbroken run would have seen next.

    Training on images of several sizes (`training` and `repeat`, no `image_size`, `crop_size` or `same_size`)
    batches per pass over the table (`deepfl.data.size_batches`): each pass trains every row once, in
    `batches_per_pass` batches of one size each (the last of a size may be smaller), and `skip` then counts
    *batches*, not images. `image_sizes` gives each row's (height, width) when the caller has read them (else
    they are read from the file headers here; a table of one size keeps the plain shuffled stream). `replicas`
    (a strategy's `num_replicas_in_sync`) tops each size's last batch up to a multiple of it, so that no replica
    gets an empty share.
    """
    if on_error not in ("skip", "stop"):
        raise ValueError(f"on_error: must be 'skip' or 'stop', got {on_error!r}")
    if dtype not in ("float32", "uint8"):
        raise ValueError(f"dtype: must be 'float32' or 'uint8', got {dtype!r}")
    if dtype == "uint8" and image_size is not None:
        raise ValueError("dtype: 'uint8' cannot carry resized (interpolated) images; use 'float32' with image_size")
    if int(skip) != skip or skip < 0:
        raise ValueError(f"skip: must be a non-negative integer, got {skip!r}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size: must be a positive integer, got {batch_size!r}")
    if not isinstance(table, pd.DataFrame) or "image" not in table.columns:
        raise ValueError("table: expected a DataFrame with an 'image' column (a deepfl.data table)")
    if len(table) == 0:
        raise ValueError("table: is empty")
    targets = [targets] if isinstance(targets, str) else list(targets)
    image_size = _size_pair(image_size, "image_size")
    crop_size = _size_pair(crop_size, "crop_size")
    shuffle = training if shuffle is None else bool(shuffle)
    augment_flip = bool(flip) and training
    stats = stats if stats is not None else PipelineStats()
    if crop_size is not None:
        stats.crop_size = crop_size
    seed = int(seed)

    paths = table["image"].astype(str).to_numpy()
    target_values = _targets_from_table(table, targets, normalizer)
    by_size = training and repeat and crop_size is None and image_size is None and not same_size
    # Random crops/flips need the element index (stateless seeds); skip `enumerate` when nothing is random.
    needs_index = training and (crop_size is not None or augment_flip)
    if by_size:
        sizes = header_sizes_of(paths) if image_sizes is None else list(image_sizes)
        if len(sizes) != len(paths):
            raise ValueError(f"image_sizes: {len(sizes)} sizes for a table of {len(paths)} rows")
        by_size = len({size for size in sizes if size is not None}) > 1  # one size: the plain shuffled stream
    if not by_size:
        dataset = tf.data.Dataset.from_tensor_slices((paths, target_values))
        if shuffle:
            dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        if repeat:
            dataset = dataset.repeat()
        if skip:
            dataset = dataset.skip(int(skip))
        if needs_index:
            dataset = dataset.enumerate(start=int(skip))  # indices (crop/flip seeds) continue where a run left

    seen, decoded = stats._seen, stats._decoded

    @tf.autograph.experimental.do_not_convert
    def load(*element):
        # (index, (path, values)) after `enumerate`, else (path, values): no extra per-element stage.
        index, (path, values) = element if needs_index else (None, element)
        if count_errors:  # counted inside the parallel map: a separate counting stage costs ~10% on 2 cores
            with tf.control_dependencies([seen.assign_add(1)]):
                path = tf.identity(path)
        image = read_image_tf(path, accurate_jpeg)
        if image_size is not None:
            image = tf.image.resize(image, image_size, method="bilinear", antialias=True)
        if crop_size is not None:
            shape = tf.shape(image)
            fits = tf.logical_and(shape[0] >= crop_size[0], shape[1] >= crop_size[1])
            check = tf.debugging.Assert(fits, ["deepfl: image smaller than crop_size", crop_size, path])
            with tf.control_dependencies([check]):
                if training:
                    offset_seed = tf.stack([tf.constant(seed, tf.int64), index])
                    max_offsets = tf.cast(
                        tf.stack([shape[0] - crop_size[0] + 1, shape[1] - crop_size[1] + 1]), tf.int32
                    )
                    offsets = (
                        tf.random.stateless_uniform([2], offset_seed, minval=0, maxval=tf.int32.max, dtype=tf.int32)
                        % max_offsets
                    )
                else:
                    offsets = tf.stack([(shape[0] - crop_size[0]) // 2, (shape[1] - crop_size[1]) // 2])
                image = tf.slice(image, tf.stack([offsets[0], offsets[1], 0]), [crop_size[0], crop_size[1], 3])
        if augment_flip:
            flip_seed = tf.stack([tf.constant(seed + 1, tf.int64), index])
            mirror = tf.random.stateless_uniform([], flip_seed) < 0.5
            image = tf.cond(mirror, lambda: tf.reverse(image, axis=[1]), lambda: image)
        return image, values

    def decoded_elements(elements: tf.data.Dataset) -> tf.data.Dataset:
        elements = elements.map(load, num_parallel_calls=PARALLEL_CALLS, deterministic=deterministic)
        return elements.ignore_errors(log_warning=True) if on_error == "skip" else elements

    # Decoded images are counted per batch (cheap), except when a remainder is dropped, which would go uncounted.
    count_per_element = count_errors and drop_remainder and not by_size
    if by_size:
        plan = functools.partial(batch_stream, sizes, int(batch_size), seed, int(skip), shuffle, int(replicas))
        # (a batch topped up for the replicas can exceed batch_size by up to replicas - 1: one batch all the same)
        longest = int(batch_size) + int(replicas) - 1
        dataset = _one_size_batches(plan, paths, target_values, longest, needs_index, decoded_elements)
    else:
        dataset = decoded_elements(dataset)
    if count_per_element:

        @tf.autograph.experimental.do_not_convert
        def count_decoded(image, values):
            decoded.assign_add(1)
            return image, values

        dataset = dataset.map(count_decoded)

    if by_size:
        pass  # batched above, one size per batch
    elif crop_size is not None or image_size is not None or same_size:
        dataset = dataset.batch(int(batch_size), drop_remainder=drop_remainder)
    else:

        @tf.autograph.experimental.do_not_convert
        def shape_key(image, values):
            shape = tf.cast(tf.shape(image), tf.int64)
            return shape[0] * 1_000_003 + shape[1]

        dataset = dataset.group_by_window(
            key_func=shape_key,
            reduce_func=tf.autograph.experimental.do_not_convert(
                lambda key, window: window.batch(int(batch_size), drop_remainder=drop_remainder)
            ),
            window_size=int(batch_size),
        )

    out_dtype = tf.as_dtype(dtype)
    count_per_batch = count_errors and not count_per_element

    @tf.autograph.experimental.do_not_convert
    def finish(images, values):
        if count_per_batch:
            with tf.control_dependencies([decoded.assign_add(tf.cast(tf.shape(images)[0], tf.int64))]):
                images = tf.identity(images)
        return (images if images.dtype == out_dtype else tf.cast(images, out_dtype)), values

    if count_per_batch or out_dtype != tf.uint8:
        dataset = dataset.map(finish, num_parallel_calls=PARALLEL_CALLS, deterministic=deterministic)
    dataset = untuned(dataset.prefetch(PREFETCH_BATCHES), deterministic)
    try:
        dataset.deepfl_stats = stats
    except AttributeError:  # pragma: no cover - a future tf.data may forbid attributes
        pass
    return dataset
