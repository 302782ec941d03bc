"""How a message names a setting: as the command's flag while a command-line job runs (`--epochs=5`), as the
keyword argument when a program calls the library (`epochs=5`).

The same refusal reaches both callers: `deepfl.jobs.check_settings` refuses a `deepfl-train-mlp` run and a
notebook's `deepfl.protocol.run_protocol` alike, and each should be told what to type. The command-line jobs run
their work inside `command_line_names()` (`deepfl.cli.app.run_app`); everything else gets the Python names.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Iterator

_COMMAND_LINE = contextvars.ContextVar("deepfl_command_line", default=False)
_NO_VALUE = object()


@contextlib.contextmanager
def command_line_names() -> Iterator[None]:
    """Messages raised inside this block name flags (`--overwrite`) instead of arguments (`overwrite=True`)."""
    token = _COMMAND_LINE.set(True)
    try:
        yield
    finally:
        _COMMAND_LINE.reset(token)


def use_command_line_names(on: bool) -> None:
    """Sets, for the rest of this thread, whether messages name flags: for a worker process of a command-line job,
    which a spawned start does not hand the job's setting (`deepfl.generation.init_worker`)."""
    _COMMAND_LINE.set(on)


def on_command_line() -> bool:
    """Whether messages are being written for a command-line job's user."""
    return _COMMAND_LINE.get()


def setting(name: str, value: object = _NO_VALUE) -> str:
    """`name` (and `value`) as the caller writes them: `--name`, `--name=value`, `--noname` on the command line;
    `name`, `name=value!r` from Python. A boolean flag set to True reads `--name`, as a user types it."""
    if not on_command_line():
        return name if value is _NO_VALUE else f"{name}={value!r}"
    if value is _NO_VALUE or value is True:
        return f"--{name}"
    if value is False:
        return f"--no{name}"
    if isinstance(value, (list, tuple)):
        value = ",".join(str(item) for item in value)
    return f"--{name}={value}"


def by_caller(command_line: str, library: str) -> str:
    """`command_line` for a command-line job's user, `library` for a program's: for the words around settings
    that differ between the two ("the earlier flags" / "the earlier arguments")."""
    return command_line if on_command_line() else library


def shown_value(value: object) -> str:
    """A recorded setting's value as a message shows it: as its flag takes it (`96,96`, `cosine`, `true`), and
    "unset" for none. Records keep JSON (sizes as lists of strings), which read `["96", "96"]` in a message."""
    if value is None or value == "" or value == [] or value == ():
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(shown_value(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)
