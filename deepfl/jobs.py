"""Shared machinery of long batch jobs: progress bars, append-only resumable CSVs, error policy.

Every command-line job (distort, label, extract, ...) uses these so that all of them resume the same way,
report bad inputs the same way, and never lose or duplicate finished rows.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import io
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from tqdm.auto import tqdm

from deepfl.errors import DeepflError, TableError
from deepfl.wording import by_caller, setting, shown_value

T = TypeVar("T")
log = logging.getLogger("deepfl")

ON_ERROR_CHOICES = ("skip", "stop")
SEED_MAX = 2**32 - 1  # the largest seed NumPy's and Keras' generators both take (every job's --seed)


# Seconds between progress lines when stderr is not a terminal (a log file gets one line per interval).
LOG_PROGRESS_INTERVAL_S = 15.0


_STOP_REQUESTED = threading.Event()


def request_stop() -> None:
    """Asks the running job to stop at its next progress update (Ctrl-C, see `deepfl.cli.app`): a KeyboardInterrupt
    raised inside a TensorFlow call can be swallowed there, so the job loop checks too."""
    _STOP_REQUESTED.set()


class _StoppableProgress(tqdm):
    """A tqdm bar whose `update` raises KeyboardInterrupt once a stop was requested."""

    def update(self, n=1):
        if _STOP_REQUESTED.is_set():
            raise KeyboardInterrupt
        return super().update(n)


def progress(
    iterable: Iterable[T] | None = None, total: int | None = None, desc: str = "", unit: str = "it", **kwargs
) -> tqdm:
    """A tqdm progress bar with rate and ETA on stderr; silent when DEEPFL_NO_PROGRESS is set or there is nothing to
    do (`total` 0: a rerun whose work is all done prints its summary line only).

    On a terminal the bar redraws in place. Elsewhere (a log file, a pipe) it writes one plain ASCII line every
    LOG_PROGRESS_INTERVAL_S seconds and a last one at the end, instead of carriage-return redraws.
    """
    disable = progress_disabled() or total == 0
    if _is_terminal(sys.stderr):
        return _StoppableProgress(
            iterable,
            total=total,
            desc=desc,
            unit=unit,
            dynamic_ncols=True,
            disable=disable,
            file=sys.stderr,
            smoothing=0.1,
            **kwargs,
        )
    kwargs.setdefault("mininterval", LOG_PROGRESS_INTERVAL_S)
    # Every update checks the clock: tqdm's default (updates skipped in between, then a monitor thread forcing a
    # redraw after 10 s) wrote a line with a stale rate followed at once by the real one.
    kwargs.setdefault("miniters", 1)
    return _StoppableProgress(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        ncols=100,
        ascii=True,
        disable=disable,
        file=_ProgressLines(sys.stderr),
        smoothing=0.1,
        **kwargs,
    )


def keras_verbose() -> int | str:
    """The `verbose` argument for Keras `fit`/`predict` in a job: the redrawing progress bar on a terminal;
    nothing when stdout goes to a file or pipe (Keras's bar would write thousands of characters per line there,
    and its per-epoch line, every task's loss in one line of 600 characters, repeats what the job's own
    `epoch N done` line and history.csv hold) or when DEEPFL_NO_PROGRESS is set."""
    if progress_disabled():
        return 0
    return "auto" if _is_terminal(sys.stdout) else 0


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class _ProgressLines:
    """A file for tqdm on a non-terminal stream: every redraw (`\r` + bar + padding) becomes one whole line, and a
    redraw at the count of the last line (tqdm's `close` after a last update already shown: the same bar with
    a rate a hair different) is left out."""

    def __init__(self, stream):
        self.stream = stream
        self._last_count = None

    def write(self, text: str) -> None:
        for line in text.replace("\r", "\n").split("\n"):
            line = line.rstrip()
            count = line.split(" [", 1)[0]  # description, bar and n/total, without times and rate
            if line and count != self._last_count:
                self.stream.write(line + "\n")
                self._last_count = count

    def flush(self) -> None:
        self.stream.flush()


class ErrorPolicy:
    """Skip-and-count or stop on a bad input; every problem is logged as one line naming the culprit."""

    def __init__(self, on_error: str = "skip"):
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error: must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
        self.on_error = on_error
        self.problems: list[str] = []

    def handle(self, message: str) -> None:
        """Records one problem: logs it, or raises `JobStopped` with it when the policy is to stop (the caller
        reports that: the scripts print it as their one `error:` line, so it is not logged twice)."""
        self.problems.append(message)
        if self.on_error == "stop":
            raise JobStopped(message)
        log.warning("%s", message)

    @property
    def count(self) -> int:
        return len(self.problems)

    def summary(self, what: str = "inputs") -> str:
        return f"{counted(self.count, 'bad ' + what)} skipped" if self.count else f"no bad {what}"


def counted(count: int, things: str) -> str:
    """ "1 bad image", "2 bad images": `things` is the plural (ending in s), the count's own word decides."""
    return f"{count} {things[:-1] if count == 1 and things.endswith('s') else things}"


class JobStopped(RuntimeError):
    """Raised when a job stops on the first bad input (`--on_error=stop`)."""


def _repair_tail(path: Path) -> None:
    """Cuts a partly written last line (a kill mid-write) so that only whole rows remain. A whole file is only
    read (it may sit on a read-only disk)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        if size == 0:
            return
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        cut = handle.read().rfind(b"\n") + 1
    with open(path, "rb+") as handle:
        handle.truncate(cut)


def read_complete_rows(path: str | os.PathLike, columns: Sequence[str], errors: str = "strict") -> list[dict]:
    """The whole rows of an append-only CSV, read without touching the file (a torn last line is ignored, not
    cut), so another process may still be appending to it. Raises TableError if the header is not `columns`.
    errors: how undecodable bytes are read ("surrogateescape" keeps non-UTF-8 file names as written)."""
    path = Path(path)
    with open(path, "rb") as handle:
        content = handle.read()
    content = content[: content.rfind(b"\n") + 1]
    # utf-8-sig: a spreadsheet that saved the file ("CSV UTF-8") put a byte-order mark before the header
    reader = csv.DictReader(io.StringIO(content.decode("utf-8-sig", errors), newline=""))
    if reader.fieldnames != list(columns):
        semicolons = any(";" in name for name in reader.fieldnames or ())
        raise TableError(
            f"{path}: existing output has columns {reader.fieldnames}, expected {list(columns)}"
            + (
                " (saved by a spreadsheet with ';' as separator? save it again with ',' as separator and '.' as "
                "decimal point to resume it)"
                if semicolons
                else f" (restore the header line {','.join(columns)} to resume it)"
            )
            + "; or move it away, or use another output path"
        )
    rows = list(reader)
    for line, row in enumerate(rows, start=2):
        if None in row:  # more fields than the header: DictReader keeps them under None
            raise TableError(
                f"{path}, line {line}: {len(columns) + len(row[None])} fields for {len(columns)} columns (decimal "
                "commas written by a spreadsheet?); save it again with ',' as separator and '.' as decimal point to "
                "resume it, or move it away, or use another output path"
            )
    return rows


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Holds an exclusive lock on `folder` while the block runs (on its directory handle: nothing is written into
    it), so that the same job started twice into one output folder is refused in one line instead of both doing
    all the work and interleaving their records. Where the file system cannot lock a folder (some network
    file systems), the block runs unlocked."""
    handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DeepflError(f"{folder}: being written by another job (the same command twice?)") from None
        except OSError as exc:
            log.debug("%s: not locked (%s)", folder, exc)
        yield
    finally:
        os.close(handle)


def _open_for_lock(path: Path):
    """The handle an `AppendOnlyCsv` holds its lock on: opened for appending (which creates the file), or for
    reading where a finished output sits on a read-only or forbidden file system, so that a rerun with nothing
    left to do still finds it done (flock works on either); a rerun that has rows to add then fails on its first
    write, naming the file."""
    try:
        return open(path, "ab")  # noqa: SIM115  (held, and so locked, while the object lives)
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES) or not path.is_file():
            raise
        return open(path, "rb")  # noqa: SIM115


class AppendOnlyCsv:
    """A CSV that jobs only ever append to, one flushed and fsynced write per batch of rows.

    On open it checks the header, cuts a torn last line left by a kill, and loads the values of `key` already
    written so a restarted job computes only the rest and never duplicates a row. errors="surrogateescape" writes
    and reads back values holding non-UTF-8 bytes (file names) as their original bytes.

    With `lock`, the file stays locked (an exclusive `flock`) while the object lives: a second job writing the
    same file at the same time (a command started twice) is refused with `DeepflError` instead of appending
    every row again.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        columns: Sequence[str],
        key: str | Sequence[str],
        errors: str = "strict",
        lock: bool = False,
    ):
        self.path = Path(path)
        self.errors = errors
        self.columns = list(columns)
        self.key = [key] if isinstance(key, str) else list(key)
        self.done: set = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if lock:
            self._lock = _open_for_lock(self.path)
            try:
                fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._lock.close()
                raise DeepflError(f"{self.path}: being written by another job (the same command twice?)") from None
        if self.path.exists() and self.path.stat().st_size > 0:
            _repair_tail(self.path)
            if self.path.stat().st_size > 0:  # a kill while the header was written leaves nothing whole
                self._load_existing()
        if not self.path.exists() or self.path.stat().st_size == 0:
            with open(self.path, "w", newline="", encoding="utf-8", errors=errors) as handle:
                csv.writer(handle, lineterminator="\n").writerow(self.columns)  # "\n" like the rows
                handle.flush()
                os.fsync(handle.fileno())

    def _key_of(self, row: dict) -> tuple | str:
        values = tuple(str(row[k]) for k in self.key)
        return values[0] if len(values) == 1 else values

    def _load_existing(self) -> None:
        for row in read_complete_rows(self.path, self.columns, self.errors):
            self.done.add(self._key_of(row))

    def __contains__(self, key) -> bool:
        return key in self.done

    def append(self, rows: Iterable[dict]) -> int:
        """Appends rows whose key is new; returns how many were written."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n", extrasaction="raise")
        written = 0
        for row in rows:
            key = self._key_of(row)
            if key in self.done:
                continue
            writer.writerow(row)
            self.done.add(key)
            written += 1
        if written:
            with open(self.path, "a", newline="", encoding="utf-8", errors=self.errors) as handle:
                handle.write(buffer.getvalue())
                handle.flush()
                os.fsync(handle.fileno())
        return written


def iter_batches(items: Sequence[T], batch_size: int) -> Iterator[list[T]]:
    """Yields consecutive lists of at most `batch_size` items."""
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    for start in range(0, len(items), batch_size):
        yield list(items[start : start + batch_size])


def setup_logging(verbosity: int = 0) -> None:
    """One-line log records on stderr for command-line jobs, each on its own line also while a progress bar is
    drawn on the terminal (written through `tqdm.write`, which lifts the bar and redraws it below). `verbosity`
    as absl's flag: 1 or more shows DEBUG records, 0 INFO, -1 WARNING, -2 or less ERROR only."""
    handler = _ProgressAwareHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    level = {1: logging.DEBUG, 0: logging.INFO, -1: logging.WARNING}.get(max(min(verbosity, 1), -2), logging.ERROR)
    logging.basicConfig(level=level, handlers=[handler], force=True)


def progress_disabled() -> bool:
    """DEEPFL_NO_PROGRESS set to anything but an empty string, 0, false or no (1 silenced the bars, and so did 0)."""
    return os.environ.get("DEEPFL_NO_PROGRESS", "").strip().lower() not in ("", "0", "false", "no")


class _ProgressAwareHandler(logging.Handler):
    """Writes records to the current sys.stderr through `tqdm.write`, so they never share a line with a bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # logging must never raise into the job
            self.handleError(record)


class SettingsChanged(DeepflError):
    """A job was rerun into an output that was made with other settings."""


# The key under which a settings record keeps the folder it was written in (absolute). A record found in another
# folder later belongs to a project that was moved or copied as a whole: the paths it names are followed there.
RECORD_FOLDER = "record_folder"


def relocated(path, written_in: str | None, now_in: str | os.PathLike):
    """`path`, named by a record written in the folder `written_in` that now lies in `now_in`, at the same place
    relative to the record (where it is if the project moved or was copied as a whole); `path` unchanged when the
    record has not moved or names no folder, or `path` is not an absolute path."""
    now = str(Path(now_in).resolve())
    if not written_in or written_in == now or not isinstance(path, str) or not os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(now, os.path.relpath(path, written_in)))


def recorded_path(record_file: str | os.PathLike, stored: dict, key: str):
    """The path `stored[key]` of the record at `record_file`, followed to where it lies now when the record's
    folder has moved since it was written (and something is there); as stored otherwise, e.g. a data folder
    outside the moved project that stayed where it was."""
    value = stored.get(key)
    moved = relocated(value, stored.get(RECORD_FOLDER), Path(record_file).parent)
    return moved if moved != value and os.path.exists(moved) else value


def settings_beside(output: str | os.PathLike) -> Path:
    """Where the settings of a job whose output is one file are stored: `<output>.settings.json` beside it."""
    output = Path(output)
    return output.with_name(output.name + ".settings.json")


def same_setting(stored, current, written_in: str | None, now_in: str | os.PathLike) -> bool:
    """Whether a stored setting and the current one name the same thing: equal; a path at the same place relative
    to the record (a project moved or copied whole, `relocated`); or a model file recorded with its fingerprint
    (`fileio.describe_file`) whose content is the same, wherever it lies now (`fileio.by_content`)."""
    from deepfl.fileio import by_content

    if stored == current or relocated(stored, written_in, now_in) == current:
        return True
    fingerprinted = isinstance(stored, str) and isinstance(current, str) and "(sha256:" in stored
    return fingerprinted and by_content(stored) == by_content(current)


def _shown(value) -> str:
    """A stored setting as a change names it (`shown_value`), and "(gone)" after a recorded path that no longer
    exists."""
    gone = isinstance(value, str) and os.path.isabs(value) and not os.path.exists(value)
    return shown_value(value) + (" (gone)" if gone else "")


def _content_only(stored, current) -> bool:
    """Whether two settings differ only in the file fingerprints they hold (`sha256:...`): the same file,
    changed since the record was written."""
    if not (isinstance(stored, str) and isinstance(current, str)) or "sha256:" not in stored:
        return False
    return _FINGERPRINT.sub("", stored) == _FINGERPRINT.sub("", current)


_FINGERPRINT = re.compile(r"sha256:[0-9a-f]+")


def _changes(key: str, then: object, now: object) -> list[str]:
    """A changed setting as a message names it: "epochs 20 -> 10"; a setting that is a group of values (deepfl-
    reproduce's `head`) by the values that changed, "head.epochs 20 -> 10", not the whole group twice (walk 42c)."""
    if isinstance(then, dict) and isinstance(now, dict) and then and now:
        inner = [name for name in sorted(set(then) | set(now)) if then.get(name) != now.get(name)]
        if inner:
            return [change for name in inner for change in _changes(f"{key}.{name}", then.get(name), now.get(name))]
    return [f"{key} {_shown(then)} -> {shown_value(now)}"]


def check_settings(
    path: str | os.PathLike,
    settings: dict,
    overwrite: bool = False,
    output: str | os.PathLike | None = None,
    holds_work: bool = True,
    defaults: dict | None = None,
) -> bool:
    """Compares a job's resolved `settings` (JSON values; paths made absolute by the caller) with those stored at
    `path` by an earlier run, so that a rerun resumes only what the same settings started.

    First run (no file): stores them and returns False. Same settings: returns True (resume). Different ones:
    raises `SettingsChanged` naming every difference and the ways on (the old flags, a new output, or
    `--overwrite`; where only files' contents changed, not the old flags, which are the same); with
    `overwrite=True`, or `holds_work=False` (the caller found nothing the earlier run finished, e.g. it was
    interrupted before its first result: there is nothing to protect), it stores the new settings and returns
    False, and the caller discards the old outputs. `output` names the output in the message (default: the folder
    of `path`). `defaults`: the values of settings a caller leaves out of `settings` when they have them (so that
    records of earlier versions, made before the setting existed, stay valid), compared and named as such
    ("hidden 2048,1024,256 -> 256", not "hidden unset -> 256").
    """
    from deepfl.fileio import atomic_write_bytes

    path = Path(path)
    settings = json.loads(json.dumps(settings))  # the form they take once stored (tuples -> lists)
    defaults = json.loads(json.dumps(defaults or {}))
    record = {**settings, RECORD_FOLDER: str(path.parent.resolve())}
    text = (json.dumps(record, indent=1, sort_keys=True) + "\n").encode("utf-8")
    where = output if output is not None else path.parent
    if path.exists() and not overwrite:
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            written_in = stored.pop(RECORD_FOLDER, None)  # (absent in records of earlier versions)
        except (OSError, UnicodeDecodeError, ValueError, AttributeError) as exc:
            raise SettingsChanged(
                f"{path}: unreadable stored settings ({exc}); pass {setting('overwrite', True)} to start again"
            ) from None
        then, now = {**defaults, **stored}, {**defaults, **settings}
        changed_keys = [
            key
            for key in sorted(set(then) | set(now))
            if not same_setting(then.get(key), now.get(key), written_in, path.parent)
        ]
        changes = [change for key in changed_keys for change in _changes(key, then.get(key), now.get(key))]
        if not changes:
            if then != now:  # the record is not rewritten: a rerun on a read-only disk must still find it
                log.info("%s: moved or copied from %s: its recorded paths are followed here", where, written_in)
            return True
        if not holds_work:
            log.info(
                "%s: the earlier run with other settings finished nothing (%s); starting with these",
                where,
                "; ".join(changes),
            )
        elif all(_content_only(then.get(key), now.get(key)) for key in changed_keys):
            raise SettingsChanged(
                f"{where} was made from files that have changed since ({'; '.join(changes)}): write to a new "
                f"output, or pass {setting('overwrite', True)} to discard it and start again with the files as they "
                "are now"
            )
        else:
            raise SettingsChanged(
                f"{where} was made with other settings ({'; '.join(changes)}): rerun with the earlier "
                f"{by_caller('flags', 'arguments')} to resume, write to a new output, or pass "
                f"{setting('overwrite', True)} to discard it"
            )
    atomic_write_bytes(path, text)
    return False
