"""Writing files so that a killed process never leaves a half-written one, and reading and saving `.keras` files.

Every job writes its outputs through `atomic_output` / `atomic_write_bytes`, so a restart after a kill finds
each file either complete or absent. Keras is imported only by the model-file helpers, so the atomic writers
stay light (no TensorFlow) for the image and label jobs.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import keras

# The process umask, read once at import (reading it means setting it, which is not thread-safe later on).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yields a hidden temporary path beside `path`; on success it is fsynced and renamed onto `path`.

    For writers that need a file name (Keras, h5py, pandas): a kill or an exception leaves `path` untouched and
    at most a hidden `.<name>.<random><suffix>` file (removed on exceptions). `suffix` must keep whatever
    extension the writer insists on (e.g. ".tmp.keras", ".tmp.weights.h5").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp_name)
        with open(tmp_name, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` so that a killed process never leaves a truncated file behind."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def load_model_file(path: str | os.PathLike, what: str = "model") -> keras.Model:
    """Loads a `.keras` file without its optimiser; one-line errors naming the file."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what} file")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # keras raises many types for bad archives
        raise ValueError(f"{path}: not a loadable .keras {what} ({str(exc).splitlines()[0]})") from None


def save_model_atomic(model: keras.Model, path: str | os.PathLike) -> Path:
    """Saves a model as `.keras` through a temporary file in the same folder, so a kill leaves no half file."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"path: must end with .keras, got {path}")
    with atomic_output(path, suffix=".tmp.keras") as tmp:
        model.save(tmp)
    return path


def normalizer_path(head_path: str | os.PathLike) -> Path:
    """Where the target normalisation of a head is saved: `head.keras` -> `head.normalizer.json`."""
    return Path(head_path).with_suffix(".normalizer.json")
