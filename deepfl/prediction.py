"""Quality prediction: images (paths or arrays) -> scores, with an exported model or backbone + head.

`predict(images, model)` is also available as `deepfl.predict`. Images are fed at native resolution, grouped by
size so that equal sizes share a batch, and returned in input order.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import keras
import numpy as np

from deepfl.architectures import too_small_reason
from deepfl.data.normalization import TargetNormalizer
from deepfl.export import IMAGENET_BACKBONE, load_scorer
from deepfl.features import predict_by_size
from deepfl.fileio import normalizer_path
from deepfl.images import expand_inputs, model_input, read_image, read_images_ahead  # noqa: F401 (offered here)
from deepfl.jobs import iter_batches
from deepfl.models.banded_conv import batch_predictor

ImageLike = str | os.PathLike | np.ndarray


def score_arrays(scorer: keras.Model, images: Sequence[np.ndarray], batch_size: int = 8) -> np.ndarray:
    """Scores in-memory HxWx3 images (uint8 or float in [0, 255]) batched by size; returns float64 scores."""
    return _scores(batch_predictor(scorer, np.float64), images, batch_size)


def _scores(predict_batch, images: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
    scores = predict_by_size(predict_batch, images, batch_size)
    return np.asarray([float(value[0]) for value in scores], dtype=np.float64)


def predict(
    images: ImageLike | Iterable[ImageLike],
    model: str | os.PathLike | keras.Model,
    head: str | os.PathLike | keras.Model | None = None,
    batch_size: int = 8,
    normalizer: TargetNormalizer | None = None,
) -> np.ndarray:
    """Quality scores (higher is better) of `images`: a path, an HxWx3 array, or a list of them.

    `model` is an exported one-file scorer (`deepfl.export`), or a trained multi-task model when `head` (an
    MLP head file, or the head loaded as a Keras model) is given. `normalizer` maps the head's outputs back to
    scores: by default the one saved beside a head file; a head given as a loaded model needs it passed
    (`deepfl.export.head_normalizer(head_file)`), or its scores stay on the head's normalised scale (warned).
    An unreadable file raises `ImageReadError` naming it. Called in a loop with the same files, it loads them
    once (`_scorer_from_files`).
    """
    if isinstance(images, (str, os.PathLike)) or (isinstance(images, np.ndarray) and images.ndim in (2, 3)):
        images = [images]  # (a 2-D array is one gray image, refused as such, not a list of rows)
    arrays = [_image_of(item, k) for k, item in enumerate(images)]
    return score_arrays(_scorer_from_files(model, head, normalizer), arrays, batch_size)


# The scorer `predict` last loaded from files, under the files' identities. A loop calling `predict` on one image
# at a time with the same paths would otherwise load the model on every call (seconds each) and trace a new
# function each time, which TensorFlow warns about from the fifth call.
_last_loaded: tuple[tuple, keras.Model] | None = None


def _file_identity(item: str | os.PathLike | None) -> tuple | None:
    """What tells a model or head argument's file apart from a changed one: path, size, modification and change
    times (a file rewritten in place changes them)."""
    if item is None or item == IMAGENET_BACKBONE:
        return (item,)
    path = Path(item).resolve()
    status = path.stat()  # OSError for a missing file: load_scorer names it
    return (str(path), status.st_size, status.st_mtime_ns, status.st_ctime_ns)


def _scorer_from_files(model, head, normalizer) -> keras.Model:
    """`load_scorer(model, head, normalizer)`, reusing the last scorer loaded from the same unchanged files (a
    head's `.normalizer.json` included); models given as objects are used as they are."""
    global _last_loaded
    if normalizer is not None or isinstance(model, keras.Model) or isinstance(head, keras.Model):
        return load_scorer(model, head, normalizer)
    beside = normalizer_path(head) if head is not None else None
    try:
        key = (
            _file_identity(model),
            _file_identity(head),
            _file_identity(beside) if beside is not None and beside.exists() else None,
        )
    except OSError:
        return load_scorer(model, head, normalizer)
    if _last_loaded is None or _last_loaded[0] != key:
        _last_loaded = None  # the previous scorer may go before the next one loads
        _last_loaded = (key, load_scorer(model, head, normalizer))
    return _last_loaded[1]


def _image_of(item: ImageLike, index: int) -> np.ndarray:
    """`predict`'s image `index`: a file read as the jobs read it, or an HxWx3 array checked to be uint8, or float
    in 0..255 (not 0..1), as the models were trained on (a uint16 or 0..1 float array was scored without a word,
    up to 1.0077 on a [0, 1] scale).
    A folder or a glob pattern is refused by name: the scores follow the inputs one to one."""
    if isinstance(item, (str, os.PathLike)):
        import glob

        if Path(item).is_dir() or (not Path(item).exists() and glob.has_magic(str(item))):
            raise ValueError(
                f"images[{index}]: {item} is a folder or a pattern; deepfl.predict scores image files and arrays "
                "one to one (deepfl.prediction.expand_inputs lists a folder's or pattern's files, as deepfl-predict "
                "does)"
            )
        return read_image(item)
    return model_input(item, f"images[{index}]")


def score_files(
    paths: Sequence[str], scorer: keras.Model, batch_size: int = 8, chunk: int = 256, on_unreadable=None, on_rows=None
) -> tuple[list[tuple[str, float]], list[str]]:
    """Scores image files `chunk` at a time (batched by size); returns ([(path, score)], [failed paths]).

    A file that cannot be read, or a size the model cannot take (e.g. 1x1, below its receptive field), fails
    only its own images: each is passed to `on_unreadable(message)` (if given) and listed; the others are scored.
    Rows keep the input order. `on_rows(rows)`, if given, receives each chunk's rows as soon as they are scored
    (a job writes them at once, so a kill loses at most one chunk).
    """
    import tensorflow as tf

    from deepfl.errors import ImageReadError, failure_reason
    from deepfl.jobs import progress

    report = on_unreadable or (lambda message: None)
    rows: list[tuple[str, float]] = []
    failed: list[str] = []
    predict_batch = batch_predictor(scorer, np.float64)  # one for the job: it keeps its traced large-image shapes
    decoded = read_images_ahead(paths)  # one stream: the next chunk's first images decode while the model scores
    with progress(total=len(paths), desc="scoring", unit="img") as bar:
        for part in iter_batches(list(paths), chunk):
            images, names = [], []
            for path, image in itertools.islice(decoded, len(part)):
                if isinstance(image, ImageReadError):
                    failed.append(path)
                    report(str(image))
                    continue
                images.append(image)
                names.append(path)
            scores: dict[int, float] = {}
            for shape in dict.fromkeys(image.shape for image in images):
                group = [i for i, image in enumerate(images) if image.shape == shape]
                try:
                    values = _scores(predict_batch, [images[i] for i in group], batch_size)
                except (ValueError, tf.errors.OpError) as exc:
                    reason = too_small_reason(*shape[:2]) or failure_reason(exc)
                    for i in group:
                        failed.append(names[i])
                        report(
                            f"{names[i]}: cannot be scored at {shape[1]}x{shape[0]} pixels (width x height): {reason}"
                        )
                    continue
                scores.update(zip(group, values.tolist()))
            done = [(names[i], scores[i]) for i in sorted(scores)]
            rows.extend(done)
            if on_rows is not None and done:
                on_rows(done)
            bar.update(len(part))
    return rows, failed


def format_scores(rows: Sequence[tuple[str, float]], fmt: str = "table") -> str:
    """Renders (image, score) rows as an aligned text table, CSV or JSON."""
    if fmt == "json":
        import json

        return json.dumps([{"image": image, "score": score} for image, score in rows], indent=1) + "\n"
    if fmt == "csv":
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["image", "score"])
        writer.writerows((image, f"{score:.6f}") for image, score in rows)
        return buffer.getvalue()
    if fmt != "table":
        raise ValueError(f"fmt: must be 'table', 'csv' or 'json', got {fmt!r}")
    width = max([len("image")] + [len(image) for image, _ in rows])
    lines = [f"{'image':<{width}}  score", f"{'-' * width}  --------"]
    lines += [f"{image:<{width}}  {score:.4f}" for image, score in rows]
    return "\n".join(lines) + "\n"
