"""MLSP feature extraction (whole image, native resolution, batched by size) and its resumable HDF5 cache.

Stage 2 of DeepFL-IQA feeds every image of a benchmark at its native resolution through the (fine-tuned)
backbone and keeps the global-average-pooled activations of its 43 `mixed` blocks (16,928 floats). Images of
different sizes cannot share a batch, so images are grouped by (height, width) first (read from the file headers,
without decoding) and batched within each group.

The cache is one HDF5 file: `keys` (the image paths, UTF-8), `features` (N x dim float32) and the attribute
`count`, the number of committed rows. Each batch is written, then `count` is raised and the file flushed, so a
killed job loses at most the batch in flight; a restarted job skips the keys already committed. A finished run
rewrites the file once in canonical form, so a killed-and-resumed run ends byte-identical to an unbroken one.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable, Sequence

import h5py
import numpy as np
from PIL import Image

from deepfl.errors import DeepflError, ImageReadError
from deepfl.images import atomic_output, read_images_ahead
from deepfl.jobs import ErrorPolicy, iter_batches, progress

log = logging.getLogger("deepfl")

_STR = h5py.string_dtype("utf-8")


class FeatureCache:
    """Append-only, resumable HDF5 store of one feature vector per key (an image path).

    `source` describes what produced the features (e.g. the model file); reopening a cache with another source
    or dimension raises, so features of different models are never mixed silently.
    """

    def __init__(self, path: str | os.PathLike, dim: int | None = None, source: str = "", mode: str = "a"):
        self.path = Path(path)
        if mode not in ("a", "r"):
            raise ValueError(f"mode: must be 'a' or 'r', got {mode!r}")
        if mode == "r" and not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such feature cache")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._file = h5py.File(self.path, mode)
        except OSError as exc:
            raise DeepflError(f"{self.path}: not a readable HDF5 feature cache ({exc})") from None
        file = self._file
        if "features" not in file:
            if mode == "r" or dim is None:
                self._file.close()
                raise DeepflError(f"{self.path}: empty feature cache (no 'features' dataset)")
            file.create_dataset("keys", shape=(0,), maxshape=(None,), dtype=_STR, chunks=(1024,))
            file.create_dataset("features", shape=(0, int(dim)), maxshape=(None, int(dim)), dtype="float32",
                                chunks=(max(1, min(64, (1 << 20) // (4 * int(dim)))), int(dim)))
            file.attrs["count"] = 0
            file.attrs["dim"] = int(dim)
            file.attrs["source"] = source
            file.flush()
        self.dim = int(file.attrs["dim"])
        if dim is not None and int(dim) != self.dim:
            self._file.close()
            raise DeepflError(f"{self.path}: holds {self.dim}-dim features, asked for {dim}; use another cache")
        stored_source = str(file.attrs.get("source", ""))
        if source and stored_source and source != stored_source:
            self._file.close()
            raise DeepflError(f"{self.path}: holds features of {stored_source!r}, not {source!r}; "
                              "use another cache file")
        self.source = stored_source or source
        count = int(file.attrs["count"])
        if mode == "a" and file["features"].shape[0] != count:
            # Rows past `count` come from a batch that was being written when the job was killed: drop them.
            file["features"].resize(count, axis=0)
            file["keys"].resize(count, axis=0)
            file.flush()
        keys = file["keys"][:count]
        self.index: dict[str, int] = {k.decode() if isinstance(k, bytes) else str(k): i for i, k in enumerate(keys)}

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, key: str) -> bool:
        return str(key) in self.index

    def append(self, keys: Sequence[str], features: np.ndarray) -> int:
        """Commits one batch (rows whose key is new); returns how many rows were written."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.dim or features.shape[0] != len(keys):
            raise ValueError(f"features: expected shape ({len(keys)}, {self.dim}), got {features.shape}")
        if not np.all(np.isfinite(features)):
            bad = keys[int(np.flatnonzero(~np.isfinite(features).all(axis=1))[0])]
            raise DeepflError(f"{bad}: non-finite features (is the model broken?)")
        fresh, seen = [], set()
        for i, key in enumerate(keys):
            if str(key) not in self.index and str(key) not in seen:
                seen.add(str(key))
                fresh.append(i)
        if not fresh:
            return 0
        start = len(self.index)
        stop = start + len(fresh)
        file = self._file
        if int(file.attrs.get("compact", 0)):
            file.attrs["compact"] = 0
        file["features"].resize(stop, axis=0)
        file["keys"].resize(stop, axis=0)
        file["features"][start:stop] = features[fresh]
        file["keys"][start:stop] = [str(keys[i]) for i in fresh]
        file.flush()
        file.attrs["count"] = stop  # commit point: only now do the new rows count
        file.flush()
        for offset, i in enumerate(fresh):
            self.index[str(keys[i])] = start + offset
        return len(fresh)

    def get(self, keys: Sequence[str]) -> np.ndarray:
        """Features of `keys` in the given order; raises DeepflError naming the first key not cached."""
        missing = [k for k in keys if str(k) not in self.index]
        if missing:
            raise DeepflError(f"{self.path}: {len(missing)} image(s) have no cached features, first: {missing[0]}")
        rows = np.array([self.index[str(k)] for k in keys], dtype=np.int64)
        if rows.size == 0:
            return np.zeros((0, self.dim), np.float32)
        order = np.argsort(rows)
        out = np.empty((rows.size, self.dim), np.float32)
        # h5py fancy indexing needs increasing unique indices: read the sorted unique rows, then scatter.
        unique, inverse = np.unique(rows[order], return_inverse=True)
        stored = self._file["features"]
        # h5py point selection is slow for many rows: read everything when a large share is asked for.
        block = stored[:len(self.index)][unique] if unique.size > len(self.index) // 4 else stored[unique]
        out[order] = block[inverse]
        return out

    @property
    def is_compact(self) -> bool:
        return bool(int(self._file.attrs.get("compact", 0)))

    def compact(self, block: int = 1024) -> None:
        """Rewrites the cache in canonical form (rows in commit order, no space left by killed batches).

        HDF5 keeps the space of rows dropped after a kill and its layout depends on the write history; the
        rewrite (through a temporary file and an atomic rename) makes a resumed run's file byte-identical to an
        uninterrupted one's. Costs one read and write of the cache.
        """
        count = len(self.index)
        with atomic_output(self.path) as tmp:
            with h5py.File(tmp, "w") as out:
                keys = out.create_dataset("keys", shape=(count,), maxshape=(None,), dtype=_STR, chunks=(1024,))
                feats = out.create_dataset("features", shape=(count, self.dim), maxshape=(None, self.dim),
                                           dtype="float32", chunks=self._file["features"].chunks)
                for start in range(0, count, block):
                    stop = min(count, start + block)
                    keys[start:stop] = self._file["keys"][start:stop]
                    feats[start:stop] = self._file["features"][start:stop]
                out.attrs["count"] = count
                out.attrs["dim"] = self.dim
                out.attrs["source"] = self.source
                out.attrs["compact"] = 1
            self._file.close()  # the rename below replaces the file this handle has open
        self._file = h5py.File(self.path, "a")

    def keys(self) -> list[str]:
        return list(self.index)

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()

    def __enter__(self) -> "FeatureCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_features(cache_path: str | os.PathLike, keys: Sequence[str]) -> np.ndarray:
    """Reads the cached features of `keys` (image paths) in order; raises naming the first missing one."""
    with FeatureCache(cache_path, mode="r") as cache:
        return cache.get([str(k) for k in keys])


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such image file") from None
    except Exception as exc:  # PIL raises many types for bad headers
        raise ImageReadError(f"{path}: not a readable image ({exc})") from None
    return int(height), int(width)


def group_by_size(paths: Iterable[str], policy: ErrorPolicy | None = None) -> dict[tuple[int, int], list[str]]:
    """Groups image paths by (height, width) so each batch holds one size; unreadable headers go to `policy`."""
    policy = policy or ErrorPolicy("skip")
    groups: dict[tuple[int, int], list[str]] = defaultdict(list)
    for path in paths:
        try:
            groups[image_size(path)].append(str(path))
        except ImageReadError as exc:
            policy.handle(str(exc))
    return dict(sorted(groups.items()))


def _as_predict_fn(extractor) -> Callable[[np.ndarray], np.ndarray]:
    """A function float32 NHWC [0, 255] -> (N, dim) from a Keras model or any callable."""
    if hasattr(extractor, "predict_on_batch"):
        return lambda x: np.asarray(extractor.predict_on_batch(x), dtype=np.float32)
    return lambda x: np.asarray(extractor(x), dtype=np.float32)


def predict_by_size(predict: Callable[[np.ndarray], np.ndarray], images: Sequence[np.ndarray],
                    batch_size: int = 8) -> list[np.ndarray]:
    """Runs `predict` (float32 NHWC -> N outputs) on in-memory HxWx3 images batched by size; outputs in input
    order. The one batching routine of feature extraction and scoring."""
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    by_size: dict[tuple, list[int]] = defaultdict(list)
    for i, image in enumerate(images):
        shape = np.shape(image)
        if len(shape) != 3 or shape[2] != 3:
            raise ValueError(f"images: item {i} has shape {shape}, expected HxWx3 RGB")
        by_size[shape].append(i)
    out: list[np.ndarray | None] = [None] * len(images)
    for indices in by_size.values():
        for batch in iter_batches(indices, batch_size):
            outputs = predict(np.stack([np.asarray(images[i], dtype=np.float32) for i in batch]))
            for i, value in zip(batch, np.asarray(outputs).reshape(len(batch), -1)):
                out[i] = value
    return out


def compute_features(extractor, images: Sequence[np.ndarray], batch_size: int = 8) -> np.ndarray:
    """Features of in-memory images (HxWx3 uint8, any mix of sizes), batched by size, in input order."""
    out = predict_by_size(_as_predict_fn(extractor), images, batch_size)
    if not out:
        return np.zeros((0, 0), np.float32)
    return np.stack(out)


def extract_to_cache(extractor, paths: Sequence[str], cache_path: str | os.PathLike, batch_size: int = 8,
                     source: str = "", policy: ErrorPolicy | None = None, dim: int | None = None) -> dict:
    """Extracts features of every image path not yet in the cache at `cache_path`; resumable.

    extractor: Keras model (or callable) mapping float32 NHWC RGB in [0, 255] to (N, dim) features.
    Returns {"done": already cached, "written": new rows, "skipped": unreadable images}.
    """
    policy = policy or ErrorPolicy("skip")
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    policy_count = policy.count
    paths = [p for p in dict.fromkeys(str(p) for p in paths) if _utf8_key(p, policy)]
    after_keys = policy.count
    if dim is None:
        dim = _output_dim(extractor)
    predict = _as_predict_fn(extractor)
    with FeatureCache(cache_path, dim=dim, source=source) as cache:
        todo = [p for p in paths if p not in cache]
        stats = {"done": len(paths) - len(todo), "written": 0, "skipped": 0}
        if stats["done"]:
            log.info("%s: %d of %d images already cached, extracting the other %d",
                     cache_path, stats["done"], len(paths), len(todo))
        groups = group_by_size(todo, policy)
        with progress(total=len(todo), desc="MLSP features", unit="img") as bar:
            bar.update(policy.count - after_keys)
            batches = [b for group in groups.values() for b in iter_batches(group, batch_size)]
            decoded = read_images_ahead(path for b in batches for path in b)   # decodes while the model runs
            for batch_paths in batches:
                images, keys = [], []
                for path, image in itertools.islice(decoded, len(batch_paths)):
                    if isinstance(image, ImageReadError):
                        policy.handle(str(image))
                        continue
                    images.append(image)
                    keys.append(path)
                if images:
                    stats["written"] += cache.append(keys, predict(np.stack(images).astype(np.float32)))
                bar.update(len(batch_paths))
        stats["skipped"] = policy.count - policy_count
        if not cache.is_compact:
            cache.compact()
    return stats


def _utf8_key(path: str, policy: ErrorPolicy) -> bool:
    """Cache keys are UTF-8: a path holding non-UTF-8 bytes (surrogate escapes) is reported and skipped."""
    try:
        path.encode("utf-8")
        return True
    except UnicodeEncodeError:
        policy.handle(f"{ascii(path)}: file name is not valid UTF-8 (cannot be a cache key); rename it")
        return False


def _output_dim(extractor) -> int:
    shape = getattr(extractor, "output_shape", None)
    if isinstance(shape, tuple) and shape and isinstance(shape[-1], int):
        return int(shape[-1])
    raise ValueError("dim: cannot infer the feature size of this extractor; pass dim=")


def load_extractor(model: str | os.PathLike | None = None, weights: str | None = "imagenet"):
    """The MLSP extractor (image -> 16,928 floats) of a trained multi-task `.keras` model, or of the ImageNet
    backbone (the paper's baseline) when `model` is None.

    Wraps `deepfl.models.mlsp_extractor`, so what counts as MLSP is defined in one place.
    """
    import keras

    from deepfl import models

    if model is None:
        return models.build_backbone(weights=weights, input_shape=(None, None, 3))
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    return models.mlsp_extractor(keras.saving.load_model(path, compile=False), input_shape=(None, None, 3))
