"""MLSP feature extraction (whole image, native resolution, batched by size) and its resumable HDF5 cache.

Stage 2 of DeepFL-IQA feeds every image of a benchmark at its native resolution through the (fine-tuned)
backbone and keeps the global-average-pooled activations of its 43 `mixed` blocks (16,928 floats). Images of
different sizes cannot share a batch, so images are grouped by (height, width) first (read from the file headers,
without decoding) and batched within each group.

The cache is an HDF5 file (`keys`: the image paths, UTF-8; `features`: N x dim float32; attributes `count`,
`dim`, `source`, `compact`) plus, while a job runs, an append-only journal `<name>.h5.journal` beside it. HDF5 is
not crash-safe when written in place (a SIGKILL during a write left `bad heap index` errors), so the HDF5 file is
only ever written whole, through a temporary file and a rename. Each batch is one fsynced journal write of
checksummed records; reopening replays the journal and drops a torn or corrupt tail, so a killed job loses at
most the batch in flight and a restarted one skips the keys already committed. A finished job merges the journal
into a fresh HDF5 file in canonical form and removes the journal, so a killed-and-resumed run ends byte-identical
to an unbroken one.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import itertools
import logging
import os
import struct
import sys
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import h5py
import numpy as np

from deepfl.architectures import default_pixel_scaling, too_small_reason
from deepfl.errors import DeepflError, ImageReadError, failure_reason, first_few
from deepfl.fileio import (
    atomic_output,
    by_content,
    describe_file,
    empty_file,
    load_model_file,
    storage_error_of_hdf5,
)
from deepfl.images import header_size, is_broken_link, model_input, read_images_ahead
from deepfl.jobs import ErrorPolicy, iter_batches, progress
from deepfl.wording import by_caller

log = logging.getLogger("deepfl")

_STR = h5py.string_dtype("utf-8")


_JOURNAL_MAGIC = b"DEEPFLJ1"
_JOURNAL_HEAD = struct.Struct("<8sII")  # magic, dim, length of the UTF-8 source
_U32 = struct.Struct("<I")
_MAX_KEY_BYTES = 1 << 16  # a longer key length in a record can only be garbage


class FeatureCache:
    """Resumable store of one feature vector per key (an image path): an HDF5 file plus an append-only journal.

    The HDF5 file is never modified in place: it is only (re)written whole through `atomic_output`. New rows go
    to the journal `<name>.h5.journal` beside it, one checksummed record per row and one fsynced write per
    `append` call; reopening replays the journal and truncates a torn or corrupt tail (a kill mid-write), so a
    kill loses at most the batch in flight. `compact()` merges both into a fresh HDF5 and removes the journal.
    `source` describes what produced the features (e.g. the model file); reopening a cache with another source
    or dimension raises, so features of different models are never mixed silently.
    """

    def __init__(self, path: str | os.PathLike, dim: int | None = None, source: str = "", mode: str = "a"):
        self.path = Path(path)
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        if mode not in ("a", "r"):
            raise ValueError(f"mode: must be 'a' or 'r', got {mode!r}")
        if mode == "r" and not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such feature cache")
        self.mode = mode
        self._jfd: int | None = None
        self._jsize: int | None = None  # set once the journal is open for appending
        self._file: h5py.File | None = None
        try:
            self._open(dim, source)
        except BaseException:
            self.close()
            raise

    def _open(self, dim: int | None, source: str) -> None:
        if not self.path.exists():
            if dim is None:
                raise DeepflError(f"{self.path}: empty feature cache (no 'features' dataset)")
            _write_hdf5(self.path, int(dim), source, 0, [], lambda start, stop: None, compact=False)
        self._file = _open_hdf5(self.path)
        self.dim, self.source = _check_origin(
            self.path, int(self._file.attrs["dim"]), str(self._file.attrs.get("source", "")), dim, source
        )
        count = int(self._file.attrs["count"])  # rows past `count` were cut by a kill (caches of deepfl < 0.2)
        keys = self._file["keys"][:count]
        self.index: dict[str, int] = {k.decode() if isinstance(k, bytes) else str(k): i for i, k in enumerate(keys)}
        self._stored = len(self.index)
        self._offsets: list[int] = []  # journal byte offset of each journal row's features
        self._records = 0  # valid journal records, duplicates of stored keys included
        if self.mode == "a":
            try:
                self._open_journal()
            except OSError as exc:
                # A finished cache on a read-only disk: a rerun has nothing to add and finds it done; a row to
                # add opens the journal again (`append`), and fails there, naming the disk.
                if exc.errno not in (errno.EROFS, errno.EACCES) or self.journal_path.exists():
                    raise
        elif self.journal_path.exists():
            self._jfd = os.open(self.journal_path, os.O_RDONLY)
            self._replay()

    def _open_journal(self) -> None:
        """Opens (creating if absent) and locks the journal for appending, replays it, drops a bad tail."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.journal_path.exists()
        self._jfd = os.open(self.journal_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            fcntl.flock(self._jfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DeepflError(f"{self.path}: feature cache in use by another process") from None
        for stale in self.path.parent.glob(f".{glob.escape(self.path.name)}.*.tmp"):
            stale.unlink(missing_ok=True)  # a compact() cut by a kill (the lock says no other one is running)
        end = self._replay()
        if end < os.fstat(self._jfd).st_size:
            os.ftruncate(self._jfd, end)
            os.fsync(self._jfd)
        if end == 0:  # a new journal, or one whose header a kill cut short: no record can follow it
            _write_all(self._jfd, _journal_header(self.dim, self.source))
            os.fsync(self._jfd)
            if created:
                _fsync_dir(self.path.parent)
        self._jsize = os.fstat(self._jfd).st_size

    def _replay(self) -> int:
        """Indexes the journal's complete, checksummed records; returns the byte length of that good prefix."""
        size = os.fstat(self._jfd).st_size
        with open(self._jfd, "rb", closefd=False, buffering=1 << 20) as handle:
            handle.seek(0)
            head = handle.read(_JOURNAL_HEAD.size)
            if len(head) < _JOURNAL_HEAD.size:
                if head and not _JOURNAL_MAGIC.startswith(head[: len(_JOURNAL_MAGIC)]):
                    raise DeepflError(f"{self.journal_path}: not a deepfl feature journal")
                return 0
            magic, dim, source_len = _JOURNAL_HEAD.unpack(head)
            if magic != _JOURNAL_MAGIC:
                raise DeepflError(f"{self.journal_path}: not a deepfl feature journal")
            rest = handle.read(source_len + _U32.size)
            if len(rest) < source_len + _U32.size:
                return 0
            if zlib.crc32(head + rest[:source_len]) != _U32.unpack(rest[source_len:])[0]:
                raise DeepflError(f"{self.journal_path}: corrupt journal header")
            _check_origin(self.journal_path, dim, rest[:source_len].decode("utf-8"), self.dim, self.source)
            end = pos = _JOURNAL_HEAD.size + len(rest)
            nbytes = 4 * self.dim
            while pos < size:
                raw_len = handle.read(_U32.size)
                if len(raw_len) < _U32.size:
                    break
                key_len = _U32.unpack(raw_len)[0]
                if key_len > _MAX_KEY_BYTES:
                    break
                body = handle.read(key_len + nbytes + _U32.size)
                if len(body) != key_len + nbytes + _U32.size:
                    break
                if zlib.crc32(raw_len + body[: -_U32.size]) != _U32.unpack(body[-_U32.size :])[0]:
                    break
                key = body[:key_len].decode("utf-8")
                self._records += 1
                if key not in self.index:  # a duplicate comes from a kill between compact's rename and unlink
                    self.index[key] = len(self.index)
                    self._offsets.append(pos + _U32.size + key_len)
                pos += _U32.size + len(body)
                end = pos
        if end < size:
            log.warning(
                "%s: dropped %d bytes of an unfinished or corrupt tail (a killed write)", self.journal_path, size - end
            )
        return end

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, key: str) -> bool:
        return str(key) in self.index

    def append(self, keys: Sequence[str], features: np.ndarray) -> int:
        """Commits one batch (rows whose key is new) with one fsynced journal write; returns rows written."""
        if self.mode != "a":
            raise DeepflError(f"{self.path}: opened read-only")
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.dim or features.shape[0] != len(keys):
            raise ValueError(f"features: expected shape ({len(keys)}, {self.dim}), got {features.shape}")
        if not np.all(np.isfinite(features)):
            bad = keys[int(np.flatnonzero(~np.isfinite(features).all(axis=1))[0])]
            raise DeepflError(f"{bad}: non-finite features (is the model broken?)")
        fresh: dict[str, int] = {}
        for i, key in enumerate(keys):
            if str(key) not in self.index and str(key) not in fresh:
                fresh[str(key)] = i
        if not fresh:
            return 0
        if self._jfd is None:
            self._open_journal()
        parts, offsets, pos = [], [], self._jsize
        rows = features.astype("<f4", copy=False)
        for key, i in fresh.items():
            raw = key.encode("utf-8")
            record = _U32.pack(len(raw)) + raw + rows[i].tobytes()
            parts += [record, _U32.pack(zlib.crc32(record))]
            offsets.append(pos + _U32.size + len(raw))
            pos += len(record) + _U32.size
        try:
            _write_all(self._jfd, b"".join(parts))
            os.fsync(self._jfd)  # commit point: the batch counts once it is on disk
        except BaseException:
            os.ftruncate(self._jfd, self._jsize)  # no partial batch may sit before the next one
            raise
        self._jsize = pos
        self._records += len(fresh)
        for key in fresh:
            self.index[key] = len(self.index)
        self._offsets += offsets
        return len(fresh)

    def get(self, keys: Sequence[str]) -> np.ndarray:
        """Features of `keys` in the given order; raises DeepflError naming the keys not cached (up to three)."""
        missing = [str(k) for k in keys if str(k) not in self.index]
        if missing:
            shown = first_few(missing)
            moved = self.cached_elsewhere(missing)
            if len(missing) == len(keys) and not moved:  # (it said to skip the uncached, which left none: walk 42)
                raise DeepflError(
                    f"{self.path}: holds none of the {len(keys)} image(s) asked for (e.g. {shown}) but "
                    f"{len(self.index)} others: features of another data set or folder? Use the cache "
                    "deepfl-extract-features wrote for these images, or run it on them"
                )
            raise DeepflError(
                f"{self.path}: {len(missing)} image(s) have no cached features: {shown} "
                + (
                    f"({len(moved)} of them are cached under another folder, e.g. {moved[0][1]}: the cache is keyed "
                    "by absolute path, so images moved or renamed since are new to it; rerun deepfl-extract-features "
                    "on them where they are now)"
                    if moved
                    else "(images that deepfl-extract-features skipped or was not given, its table read with other "
                    "--dataset_option values, say: make them readable, or rerun it on this table, which extracts "
                    "only those; or leave them out of the table: deepfl-train-mlp --skip_uncached)"
                )
            )
        rows = np.array([self.index[str(k)] for k in keys], dtype=np.int64)
        out = np.empty((rows.size, self.dim), np.float32)
        stored = rows < self._stored
        if stored.any():
            out[stored] = self._read_stored(rows[stored])
        if not stored.all():
            out[~stored] = self._read_journal(rows[~stored] - self._stored)
        return out

    def cached_elsewhere(self, paths: Iterable[str]) -> list[tuple[str, str]]:
        """(path, cached key) for each of `paths` not cached whose file name and folder name a cached key shares:
        the same image under another folder (a project moved or renamed since its features were extracted)."""
        new = [path for path in map(str, paths) if path not in self.index]
        if not new or not self.index:
            return []
        tails = {_tail(key): key for key in self.index}
        return [(path, tails[_tail(path)]) for path in new if _tail(path) in tails]

    def _read_stored(self, rows: np.ndarray) -> np.ndarray:
        """HDF5 rows, in the order asked."""
        # h5py fancy indexing needs increasing unique indices: read the sorted unique rows, then scatter.
        unique, inverse = np.unique(rows, return_inverse=True)
        stored = self._file["features"]
        # h5py point selection is slow for many rows: read everything when a large share is asked for.
        block = stored[: self._stored][unique] if unique.size > self._stored // 4 else stored[unique]
        return block[inverse]

    def _read_journal(self, rows: np.ndarray) -> np.ndarray:
        """Journal rows, in the order asked: one positioned read per distinct row, in file order."""
        unique, inverse = np.unique(rows, return_inverse=True)
        block = np.empty((unique.size, self.dim), np.float32)
        nbytes = 4 * self.dim
        for j, row in enumerate(unique):
            block[j] = np.frombuffer(os.pread(self._jfd, nbytes, self._offsets[row]), "<f4")
        return block[inverse]

    def _rows(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop-1 in commit order (HDF5 rows by slice, then journal rows)."""
        split = min(max(start, self._stored), stop)
        head = self._file["features"][start:split] if start < split else np.zeros((0, self.dim), np.float32)
        tail = self._read_journal(np.arange(split, stop) - self._stored)
        return np.concatenate([head, tail])

    @property
    def is_compact(self) -> bool:
        return bool(int(self._file.attrs.get("compact", 0))) and self._records == 0

    def compact(self, block: int = 1024) -> None:
        """Rewrites the cache as one canonical HDF5 (rows in commit order) and removes the journal.

        The new file is written beside the old one and renamed onto it (`atomic_output`), and the journal is
        removed only after that rename is on disk, so a kill at any point loses nothing. The layout depends only
        on the rows, so a killed-and-resumed run's file is byte-identical to an uninterrupted one's. Costs one
        read and write of the cache.
        """
        if self.mode != "a":
            raise DeepflError(f"{self.path}: opened read-only")
        keys = list(self.index)
        _write_hdf5(
            self.path,
            self.dim,
            self.source,
            len(keys),
            keys,
            self._rows,
            compact=True,
            block=block,
            before=self._file.close,
        )
        _fsync_dir(self.path.parent)
        self._file = _open_hdf5(self.path)
        self._stored, self._offsets, self._records = len(keys), [], 0
        if self._jfd is not None:
            os.unlink(self.journal_path)
            os.close(self._jfd)
            self._jfd, self._jsize = None, None

    def keys(self) -> list[str]:
        return list(self.index)

    def close(self) -> None:
        if self._file is not None and self._file.id.valid:
            self._file.close()
        if self._jfd is not None:
            if self._jsize is not None and self._records == 0:
                os.unlink(self.journal_path)  # nothing in it: leave no litter beside a finished cache
            os.close(self._jfd)
            self._jfd, self._jsize = None, None

    def __enter__(self) -> FeatureCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _tail(path: str) -> tuple[str, str]:
    """A path's folder name and file name: what an image keeps when its project is moved or renamed."""
    folder, name = os.path.split(path)
    return os.path.basename(folder), name


def _open_hdf5(path: Path) -> h5py.File:
    """The cache's HDF5 file, read-only; DeepflError naming the file when it is not a feature cache."""
    try:
        file = h5py.File(path, "r")
    except OSError as exc:
        raise DeepflError(f"{path}: not a readable HDF5 feature cache ({exc})") from None
    if "features" not in file or "keys" not in file or "dim" not in file.attrs or "count" not in file.attrs:
        file.close()
        raise DeepflError(f"{path}: empty feature cache (no 'features' dataset)")
    return file


def _check_origin(where: Path, stored_dim: int, stored_source: str, dim: int | None, source: str) -> tuple[int, str]:
    """(dim, source) of a store holding `stored_*`; raises when the caller asks for another dim or source."""
    if dim is not None and int(dim) != stored_dim:
        raise DeepflError(f"{where}: holds {stored_dim}-dim features, asked for {dim}; use another cache")
    # By content: a model copied or moved elsewhere is the same model, so its cache stays usable.
    if source and stored_source and by_content(source) != by_content(stored_source):
        raise DeepflError(
            f"{where}: holds features of {stored_source!r}, not {source!r} (a model file retrained or re-exported "
            f"under the same name counts as another model); delete or rename it, or keep these features in another "
            + by_caller(
                "cache (deepfl-extract-features: another --out_dir or --name; deepfl-reproduce: another "
                "--features_dir)",
                "cache_path",
            )
        )
    return stored_dim, stored_source or source


def _write_hdf5(
    path: Path,
    dim: int,
    source: str,
    count: int,
    keys: Sequence[str],
    rows: Callable[[int, int], np.ndarray | None],
    compact: bool,
    block: int = 1024,
    before: Callable[[], None] = lambda: None,
) -> None:
    """Writes a whole cache file through `atomic_output`; `rows(start, stop)` gives features block by block.

    `before` runs just before the rename (to close a handle on the file being replaced)."""
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as out:
            try:
                out_keys = out.create_dataset("keys", shape=(count,), maxshape=(None,), dtype=_STR, chunks=(1024,))
                feats = out.create_dataset(
                    "features",
                    shape=(count, dim),
                    maxshape=(None, dim),
                    dtype="float32",
                    chunks=(max(1, min(64, (1 << 20) // (4 * dim))), dim),
                )
                for start in range(0, count, block):
                    stop = min(count, start + block)
                    out_keys[start:stop] = list(keys[start:stop])
                    feats[start:stop] = rows(start, stop)
                out.attrs["count"] = count
                out.attrs["dim"] = dim
                out.attrs["source"] = source
                out.attrs["compact"] = int(compact)
                out.flush()  # a full disk fails here, where it can be handled, rather than in close()
            except BaseException as exc:
                # Free the file's space before h5py closes it, or HDF5's flush on close fails again and the
                # process crashed (exit 139) after the error line. The file is deleted anyway.
                empty_file(tmp)
                storage = storage_error_of_hdf5(exc, path)
                if storage is None:
                    raise
                raise storage from exc
        before()


def _journal_header(dim: int, source: str) -> bytes:
    raw = source.encode("utf-8")
    head = _JOURNAL_HEAD.pack(_JOURNAL_MAGIC, dim, len(raw)) + raw
    return head + _U32.pack(zlib.crc32(head))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(folder: Path) -> None:
    """Makes renames and removals in `folder` durable (their order matters: rename first, then unlink)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rows_with_features(cache_path: str | os.PathLike, table):
    """(the rows of a data set table whose `image` the cache holds, the images of the others): for a benchmark
    with images deepfl-extract-features skipped as unreadable, whose table the user cannot edit."""
    with FeatureCache(cache_path, mode="r") as cache:
        held = np.array([key in cache for key in _cache_keys(table["image"].astype(str))], dtype=bool)
    return table[held].reset_index(drop=True), table["image"][~held].astype(str).tolist()


def load_features(cache_path: str | os.PathLike, keys: Sequence[str]) -> np.ndarray:
    """Reads the cached features of `keys` (image paths, relative ones from the current folder) in order; raises
    naming the first missing one."""
    with FeatureCache(cache_path, mode="r") as cache:
        return cache.get(_cache_keys(keys))


def _cache_keys(paths: Iterable[str | os.PathLike]) -> list[str]:
    """The cache's keys of image paths: absolute (a relative path from the current folder), as the docs promise,
    so a cache written from one folder is read from another."""
    if isinstance(paths, (str, os.PathLike)):
        raise ValueError(
            f"paths: a list of image paths, not one path ({os.fspath(paths)!r}; a folder's images: "
            "deepfl.images.list_images(folder))"
        )
    return [os.path.abspath(os.path.expanduser(os.fspath(p))) for p in paths]


def listed_cache_paths(listed: Iterable[str | os.PathLike]) -> list[str]:
    """The files of a folder or pattern (`deepfl-extract-features --images`) as the cache keys them: resolved, links
    to their targets, as the data set readers resolve the images that deepfl-train-mlp and deepfl-reproduce look up
    (a broken link keeps its own name, for the extraction to name it as unreadable). A link to a file that is listed
    too is extracted once, and a line says so (a folder of 20 files gave 19 rows, unexplained: walk 44)."""
    listed = [Path(p) for p in listed]
    keys = [str(p.parent.resolve() / p.name) if is_broken_link(p) else str(p.resolve()) for p in listed]
    counts = Counter(keys)
    twice = [(p, key) for p, key in zip(listed, keys) if counts[key] > 1 and p.is_symlink()]
    if twice:
        link, target = twice[0]
        log.info(
            "%d listed file(s) are links to files listed too; each file is extracted once (e.g. %s -> %s)",
            len(twice),
            link.name,
            Path(target).name,
        )
    return keys


def group_by_size(paths: Iterable[str], policy: ErrorPolicy | None = None) -> dict[tuple[int, int], list[str]]:
    """Groups image paths by (height, width) so each batch holds one size; unreadable headers go to `policy`."""
    policy = policy or ErrorPolicy("skip")
    groups: dict[tuple[int, int], list[str]] = defaultdict(list)
    for path in paths:
        try:
            groups[header_size(path)].append(str(path))
        except ImageReadError as exc:
            policy.handle(str(exc))
    return dict(sorted(groups.items()))


def _as_predict_fn(extractor) -> Callable[[np.ndarray], np.ndarray]:
    """A function float32 NHWC [0, 255] -> (N, dim) from a Keras model or any callable; a model file's path or a
    multi-task model (a dict of task outputs) is refused with the way to its extractor (TypeErrors before)."""
    if isinstance(extractor, (str, os.PathLike)):
        raise ValueError(
            f"extractor: a loaded extractor, not a path ({os.fspath(extractor)!r}): "
            "deepfl.features.load_extractor(model=path) loads a trained model's"
        )
    if isinstance(getattr(extractor, "output", None), dict):
        raise ValueError(
            f"extractor: {getattr(extractor, 'name', 'the model')} is a multi-task model (its outputs are the tasks); "
            "deepfl.features.load_extractor(model=its .keras file) gives its MLSP extractor"
        )
    if hasattr(extractor, "predict_on_batch"):
        from deepfl.models.banded_conv import batch_predictor

        return batch_predictor(extractor)
    return lambda x: np.asarray(extractor(x), dtype=np.float32)


def predict_by_size(
    predict: Callable[[np.ndarray], np.ndarray], images: Sequence[np.ndarray], batch_size: int = 8
) -> list[np.ndarray]:
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
    for (height, width, _), indices in by_size.items():
        for batch in iter_batches(indices, batch_size):
            try:
                outputs = predict(np.stack([np.asarray(images[i], dtype=np.float32) for i in batch]))
            except Exception as exc:  # Keras' "negative dimension" or TF's graph errors: say what the size means
                reason = too_small_reason(height, width)
                if reason is None:
                    raise
                raise ValueError(f"images[{batch[0]}]: {width}x{height} {reason}") from exc
            for i, value in zip(batch, np.asarray(outputs).reshape(len(batch), -1)):
                out[i] = value
    return out


def compute_features(extractor, images: Sequence[np.ndarray] | np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Features of in-memory images (HxWx3 uint8 or floats in 0..255, any mix of sizes; one image, a list or an
    NxHxWx3 batch), batched by size, in input order. Other dtypes and ranges are refused by name
    (`images.model_input`), as `deepfl.predict` refuses them."""
    if isinstance(images, (str, os.PathLike)):
        raise ValueError(
            f"images: arrays, not a path ({os.fspath(images)!r}): read files with deepfl.images.read_image, or "
            "extract a list of files with extract_to_cache"
        )
    if isinstance(images, np.ndarray) and images.ndim in (2, 3):
        images = [images]  # (a 2-D array is one gray image, refused as such, not a list of rows)
    images = [model_input(image, f"images[{k}]") for k, image in enumerate(images)]
    out = predict_by_size(_as_predict_fn(extractor), images, batch_size)
    if not out:
        return np.zeros((0, 0), np.float32)
    return np.stack(out)


def holds_every_image(cache_path: str | os.PathLike, paths: Iterable[str], source: str) -> bool:
    """Whether the cache at `cache_path` is finished (no journal beside it) and holds every one of `paths`: then
    `extract_to_cache` has nothing to do, and a rerun need not load the model (TensorFlow and the network take
    5-10 s). Raises, as extraction into it would, when the cache holds features of another `source`."""
    path = Path(cache_path)
    if not path.is_file() or path.with_name(path.name + ".journal").exists():
        return False
    with FeatureCache(path, source=source, mode="r") as cache:
        return all(key in cache for key in _cache_keys(paths))


def extract_to_cache(
    extractor,
    paths: Sequence[str],
    cache_path: str | os.PathLike,
    batch_size: int = 8,
    source: str = "",
    policy: ErrorPolicy | None = None,
    dim: int | None = None,
) -> dict:
    """Extracts features of every image path not yet in the cache at `cache_path`; resumable.

    extractor: Keras model (or callable) mapping float32 NHWC RGB in [0, 255] to (N, dim) features.
    Returns {"done": already cached, "written": new rows, "skipped": unreadable images}.
    """
    policy = policy or ErrorPolicy("skip")
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    policy_count = policy.count
    paths = [p for p in dict.fromkeys(_cache_keys(paths)) if _utf8_key(p, policy)]
    after_keys = policy.count
    predict = _as_predict_fn(extractor)  # first: a path or a multi-task model is named as such
    if dim is None:
        dim = _output_dim(extractor)
    made_here = not Path(cache_path).exists()
    with FeatureCache(cache_path, dim=dim, source=source) as cache:
        todo = [p for p in paths if p not in cache]
        stats = {"done": len(paths) - len(todo), "written": 0, "skipped": 0}
        moved = cache.cached_elsewhere(todo)
        if moved:
            log.warning(
                "%s: %d of the images to extract are cached under another folder (e.g. %s as %s): the cache is keyed "
                "by absolute path, so images moved or renamed since are extracted again",
                cache_path,
                len(moved),
                moved[0][0],
                moved[0][1],
            )
        if stats["done"]:
            log.info(
                "%s: %d of %d images already cached, extracting the other %d",
                cache_path,
                stats["done"],
                len(paths),
                len(todo),
            )
        groups = group_by_size(todo, policy)
        with progress(total=len(todo), desc=f"MLSP features {Path(cache_path).stem}", unit="img") as bar:
            bar.update(policy.count - after_keys)
            batches = [b for group in groups.values() for b in iter_batches(group, batch_size)]
            decoded = read_images_ahead(path for b in batches for path in b)  # decodes while the model runs
            for batch_paths in batches:
                images, keys = [], []
                for path, image in itertools.islice(decoded, len(batch_paths)):
                    if isinstance(image, ImageReadError):
                        policy.handle(str(image))
                        continue
                    images.append(image)
                    keys.append(path)
                if images:
                    try:
                        values = predict(np.stack(images).astype(np.float32))
                    except (ValueError, *_tf_errors()) as exc:  # e.g. smaller than the network's receptive field
                        height, width = images[0].shape[:2]
                        reason = too_small_reason(height, width) or failure_reason(exc)
                        for path in keys:
                            policy.handle(
                                f"{path}: cannot be extracted at {width}x{height} pixels (width x height): {reason}"
                            )
                    else:
                        stats["written"] += cache.append(keys, values)
                bar.update(len(batch_paths))
        stats["skipped"] = policy.count - policy_count
        if not cache.is_compact:
            cache.compact()
    if made_here and not stats["written"] and not stats["done"]:  # every image skipped: leave no empty cache behind
        Path(cache_path).unlink(missing_ok=True)
    return stats


def _tf_errors() -> tuple[type, ...]:
    """TensorFlow's op errors (a model refusing an input size), when TensorFlow is loaded."""
    tf = sys.modules.get("tensorflow")
    return (tf.errors.OpError,) if tf is not None else ()


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


def cache_source(path: str | os.PathLike) -> str:
    """What produced the features of the cache at `path` (its recorded `source`, see `extractor_source`)."""
    cache = FeatureCache(path, mode="r")
    try:
        return cache.source
    finally:
        cache.close()


def source_fingerprint(source: str) -> str | None:
    """The content fingerprint of the model or weights file an `extractor_source` names (None when it names none:
    random or ImageNet weights)."""
    import re

    found = re.search(r"\((sha256:[0-9a-f]+)\)", source)
    return found.group(1) if found else None


def source_pixel_scaling(source: str) -> str | None:
    """The pixel scaling of the backbone an `extractor_source` names (None for a trained model file, which keeps
    its own)."""
    import re

    found = re.match(r"backbone\(weights=.*, pixel_scaling=(\w+)\)", source)
    return found.group(1) if found else None


# The seed of the random backbone (`load_extractor(weights=None)`): the same network in every run. (Unseeded, two
# runs' features differed by up to 0.12, and a cache resumed after a kill mixed rows of two random networks.)
RANDOM_WEIGHTS_SEED = 0


def _existing_file(path: str | os.PathLike, flag: str, what: str) -> str | os.PathLike:
    """`path` when it is a file; else the one-line error naming the flag (the fingerprint's `open` said only
    "[Errno 2] No such file or directory")."""
    if Path(path).is_dir():
        raise IsADirectoryError(f"{flag}: {path}: is a folder, not a {what} file")
    if not Path(path).is_file():
        raise FileNotFoundError(f"{flag}: {path}: no such {what} file")
    return path


def extractor_source(
    model: str | os.PathLike | None, weights: str | None, pixel_scaling: str | None, dtype: str = "float32"
) -> str:
    """The origin recorded in a feature cache for `load_extractor(model, weights, pixel_scaling, dtype)`, so a
    cache is never extended with features of another model, scaling or precision. A model or weights file is
    named by its absolute path and its content's fingerprint (`fileio.file_fingerprint`): a model retrained or
    re-exported under the same name is another model, whose features must not be mixed with the old ones."""
    suffix = "" if dtype == "float32" else f" [{dtype}]"
    if model is not None:
        return f"{describe_file(_existing_file(model, 'model', 'model'))}{suffix}"
    scaling = pixel_scaling or default_pixel_scaling(weights)
    if weights is None:
        origin = f"random seed {RANDOM_WEIGHTS_SEED}"
    else:
        origin = weights if weights == "imagenet" else describe_file(_existing_file(weights, "weights", "weights"))
    return f"backbone(weights={origin}, pixel_scaling={scaling}){suffix}"


def load_extractor(
    model: str | os.PathLike | None = None,
    weights: str | None = "imagenet",
    pixel_scaling: str | None = None,
    dtype: str = "float32",
):
    """The MLSP extractor (image -> 16,928 floats) at native resolution: of a trained multi-task `.keras` model,
    or, when `model` is None, of the backbone with `weights` ("imagenet": the paper's baseline; a local weights
    file such as the authors' `quality-mlsp-mtl-mse-loss.hdf5`; None: random, for tests and offline trials, drawn
    with seed `RANDOM_WEIGHTS_SEED` so that every run, and a resumed feature cache, gets the same network; this
    seeds the global generators as `keras.utils.set_random_seed` does).

    `pixel_scaling` (backbone only; a trained model keeps its own): "unit" (x / 255) or "symmetric" ([-1, 1]);
    by default the one the weights were trained with (`models.default_pixel_scaling`). `dtype` is the dtype
    policy the features are computed in: "float32" whatever the model was trained with, "mixed_bfloat16" only
    on request. Wraps `deepfl.models.mlsp_extractor`, so what counts as MLSP is defined in one place.
    """
    import keras

    from deepfl import models

    if model is None:
        scaling = pixel_scaling or models.default_pixel_scaling(weights)
        if weights is None:
            keras.utils.set_random_seed(RANDOM_WEIGHTS_SEED)
        return models.build_backbone(
            weights=weights, input_shape=(None, None, 3), pixel_scaling=scaling, mixed_precision=dtype
        )
    if pixel_scaling is not None:
        raise ValueError(
            f"pixel_scaling: a trained model keeps the scaling it was trained with; got "
            f"{pixel_scaling!r} with model {model}"
        )
    trained = load_model_file(model, weights_files_go_to=by_caller("--weights", "weights="))
    return models.mlsp_extractor(trained, input_shape=(None, None, 3), mixed_precision=dtype)
