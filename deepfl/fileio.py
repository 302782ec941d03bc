"""Writing files so that a killed process never leaves a half-written one, and reading and saving `.keras` files.

Every job writes its outputs through `atomic_output` / `atomic_write_bytes`, so a restart after a kill finds
each file either complete or absent. Keras is imported only by the model-file helpers, so the atomic writers
stay light (no TensorFlow) for the image and label jobs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import weakref
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

# The process umask, read once at import (reading it means setting it, which is not thread-safe later on).
_UMASK = os.umask(0o022)
os.umask(_UMASK)

# Temporary files carry the writer's host and process id, `.<name>.<host>-<pid>.<random><suffix>`, so that a
# restarted job can tell the leftovers of its own dead runs from the files a concurrent live shard is writing.
_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[^.]+\.tmp(\.[A-Za-z0-9.]+)?$")


def output_path_of(path: str | os.PathLike) -> str:
    """The output a temporary file of `atomic_output` stands for (`.scores.csv.<host>-<pid>.<random>.tmp` ->
    `scores.csv`, in the same folder), so that an error names the file the user asked for; other paths as they
    are."""
    path = os.fsdecode(path)
    match = _TEMP_NAME.match(os.path.basename(path))
    return os.path.join(os.path.dirname(path), match["name"]) if match else path


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{_HOST}-{os.getpid()}."


def _process_alive(pid: int) -> bool:
    """True while `pid` runs; a killed process waiting to be reaped (a zombie) counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):  # no /proc (not Linux) or the process just ended
        return True


def _left_by_a_dead_process(match: re.Match | None) -> bool:
    """Whether a temporary name (its `host` and `pid` groups) was written on this host by a process now gone."""
    return match is not None and match["host"] == _HOST and not _process_alive(int(match["pid"]))


# A non-chief worker's folder of a multi-worker run (its checkpoints: gigabytes at the paper's size), named like
# the temporary files so that a restart on the same host can remove the folders of its killed runs.
WORKER_FOLDER_PREFIX = "deepfl-worker-"
_WORKER_FOLDER = re.compile(rf"^{WORKER_FOLDER_PREFIX}(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)-[A-Za-z0-9_]+$")


def worker_folder_prefix() -> str:
    """The name prefix of this process's worker folder: `deepfl-worker-<host>-<pid>-`."""
    return f"{WORKER_FOLDER_PREFIX}{_HOST}-{os.getpid()}-"


def remove_stale_worker_folders(parent: str | os.PathLike) -> int:
    """Removes the worker folders in `parent` that dead processes of this host left (a SIGKILLed worker cannot
    remove its own); returns how many. Folders of live processes, of other hosts and of other names stay."""
    removed = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(parent):
            if not _left_by_a_dead_process(_WORKER_FOLDER.match(entry.name)) or not entry.is_dir(follow_symlinks=False):
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
    return removed


def remove_stale_temp_files(folder: str | os.PathLike) -> int:
    """Removes the temporary files under `folder` that dead processes of this host left; returns how many.

    A file is stale when its name says it was written on this host by a process that no longer runs (a kill
    cannot run the cleanup of `atomic_output`). Files of live processes (another shard writing into the same
    folder) and of other hosts (a shared file system) are left alone.
    """
    removed = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            if not name.startswith(".") or ".tmp" not in name:
                continue
            if not _left_by_a_dead_process(_TEMP_NAME.match(name)):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(root, name))
                removed += 1
    return removed


def remove_outputs(folder: str | os.PathLike, names: Iterable[str]) -> None:
    """Removes the files and folders `names` under `folder` (those that exist) and nothing else: what `overwrite`
    clears of a job's earlier run."""
    for name in names:
        path = Path(folder) / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yields a hidden temporary path beside `path`; on success it is fsynced and renamed onto `path`.

    For writers that need a file name (Keras, h5py, pandas): a kill or an exception leaves `path` untouched and
    at most a hidden `.<name>.<host>-<pid>.<random><suffix>` file (removed on exceptions; after a kill, by
    `remove_stale_temp_files` when the job restarts). `suffix` must keep whatever
    extension the writer insists on (e.g. ".tmp.keras", ".tmp.weights.h5").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp_name)
        with open(tmp_name, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp_name, path)
    except BaseException as exc:
        empty_file(tmp_name)  # a writer may still hold it open (see empty_file)
        if isinstance(exc, OSError) and exc.errno and exc.filename is None:
            # A failed write says only "[Errno 28] No space left on device": name the output it was for.
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def empty_file(path: str | os.PathLike) -> None:
    """Truncates `path`, a failed output about to be deleted, where possible: frees its space at once, also while
    a writer still holds it open.

    Keras' `save_weights` and h5py leave their HDF5 file open when a write fails on a full disk; HDF5 then flushed
    into the full disk again at close or at exit, failed, and crashed the process (exit 139) after the job's error
    line. With the file's space freed that last flush succeeds. (Closing the handles instead was tried: walking
    h5py's open ids after such a failure crashed in h5py itself.)"""
    with contextlib.suppress(OSError):
        os.truncate(path, 0)


def storage_error_of_hdf5(exc: BaseException, path: str | os.PathLike) -> OSError | None:
    """The OSError (errno, naming `path`) behind an HDF5 write failure, which h5py raises as a RuntimeError or an
    OSError without the file ("Can't decrement id ref count (file write failed: ... errno = 28 ..."); None for
    other errors."""
    match = re.search(r"errno = (\d+)", str(exc))
    if match is None:
        return None
    number = int(match[1])
    return OSError(number, os.strerror(number), os.fspath(path))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` so that a killed process never leaves a truncated file behind."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


_FINGERPRINTS: dict[tuple[int, int, int, int], str] = {}  # file_fingerprint's per-process memory


def file_fingerprint(path: str | os.PathLike) -> str:
    """ "sha256:<first 16 hex digits>" of the file's bytes: what jobs store beside a model's path, so that a model
    retrained or re-exported under the same name is told apart from the one an earlier run used. Remembered for
    the process by the file's device, inode, size and modification time (a rewrite changes one of them; deepfl
    writes files by renaming new ones into place), so a job that checks one 590 MB model twice reads it once."""
    stat = os.stat(path)
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _FINGERPRINTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        _FINGERPRINTS[key] = f"sha256:{digest.hexdigest()[:16]}"
    return _FINGERPRINTS[key]


def describe_file(path: str | os.PathLike) -> str:
    """ "<absolute path> (sha256:...)": how jobs record a model or weights file they used (`file_fingerprint`)."""
    return f"{Path(path).resolve()} ({file_fingerprint(path)})"


def described_path(description: object) -> str | None:
    """The path of a file recorded by `describe_file` (None for anything else)."""
    return description.rsplit(" (sha256:", 1)[0] if isinstance(description, str) else None


def by_content(description: str) -> str:
    """`description` with a file recorded by `describe_file` (at its start, or after "weights=") named by its
    fingerprint alone: the same file copied or moved elsewhere is the same input."""
    return re.sub(r"^(backbone\(weights=)?.*? \((sha256:[0-9a-f]+)\)", r"\1(\2)", description, count=1)


def load_model_file(
    path: str | os.PathLike, what: str = "model", weights_files_go_to: str | None = None
) -> keras.Model:
    """Loads a `.keras` file without its optimiser; one-line errors naming the file. `weights_files_go_to`: where
    the caller takes a weights file instead (e.g. "--weights"), said when `path` is one (.h5, .hdf5).

    deepfl's own layers are registered first (`deepfl.models.layers`), so a stage-1 model saved by one process
    loads in another that has imported nothing else of deepfl. Where oneDNN's slow fallback threatens, its
    convolutions run in bands on very large images (`deepfl.models.banded_conv`).
    """
    import keras

    import deepfl.models.layers  # noqa: F401  (registers PixelScaling, MultiLevelPooling with Keras)

    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, not a {what} file (.keras)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what} file")
    if not zipfile.is_zipfile(path):
        # Keras' own message ("File format not supported ... use keras.layers.TFSMLayer") is about SavedModels.
        hint = (
            f"; weights files (.h5, .hdf5) go to {weights_files_go_to}"
            if weights_files_go_to and path.suffix.lower() in (".h5", ".hdf5")
            else ""
        )
        raise ValueError(f"{path}: not a .keras {what} file (a .keras file is a zip archive, as Keras saves it){hint}")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:  # keras raises many types for bad archives
        raise ValueError(f"{path}: not a loadable .keras {what} ({str(exc).splitlines()[0]})") from None
    from deepfl.models.banded_conv import band_large_convolutions, onednn_fallback_possible

    if onednn_fallback_possible():
        band_large_convolutions(model)
    return model


def save_model_atomic(model: keras.Model, path: str | os.PathLike) -> Path:
    """Saves a model as `.keras` without its optimiser state, through a temporary file in the same folder, so a
    kill leaves no half file.

    deepfl's `.keras` files are for scoring and features (they are loaded with `compile=False`); the state a run
    resumes from is in its checkpoints. A compiled model is therefore saved as an uncompiled copy with the same
    weights: Adam's two moment slots would triple the file (InceptionResNetV2: about 650 MB instead of 220 MB).
    The copy is built once per model and configuration and kept while the model lives (`_bare_copy`), so a run
    that saves `best.keras` after many epochs pays for the weights, not for building the network each time.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"path: must end with .keras, got {path}")
    if getattr(model, "optimizer", None) is not None:
        model = _bare_copy(model)
    with atomic_output(path, suffix=".tmp.keras") as tmp:
        model.save(tmp)
    return path


# compiled model -> (its configuration as text, an uncompiled copy of it), for `save_model_atomic`
_bare_copies: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _bare_copy(model: keras.Model) -> keras.Model:
    """An uncompiled model with `model`'s configuration and current weights, on the host: built at the first call
    (for the paper's multi-task model, building it is most of a save) and reused while the configuration is
    the same (a phase that freezes or unfreezes the backbone changes it, and gets a new copy). It holds a second
    copy of the weights in host memory for as long as the model lives, as a save did before while it ran.
    Uncompiled, as clone_model would copy the compile state; on the host, as a second copy of a large model on a
    training GPU could exhaust its memory."""
    import keras

    config = model.get_config()
    # (compared as text: the configuration holds objects such as dtype policies that compare by identity; one
    # whose text shows an address would only cost a rebuild)
    signature = json.dumps(config, sort_keys=True, default=repr)
    cached = _bare_copies.get(model)
    with keras.device("cpu:0"):
        if cached is None or cached[0] != signature:
            cached = (signature, keras.Model.from_config(config))
            _bare_copies[model] = cached
        cached[1].set_weights(model.get_weights())
    return cached[1]


def normalizer_path(head_path: str | os.PathLike) -> Path:
    """Where the target normalisation of a head is saved: `head.keras` -> `head.normalizer.json`."""
    return Path(head_path).with_suffix(".normalizer.json")
