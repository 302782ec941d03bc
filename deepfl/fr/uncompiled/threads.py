"""The NumPy forms' one way to use both cores: NumPy's ufuncs, BLAS and SciPy's FFTs and sparse products release
the GIL, so two threads on independent halves of the work (images, strips of rows) run side by side."""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator, Sequence

from deepfl.cpus import usable_cores

WORKERS = min(2, usable_cores())
# False inside `no_split`: the caller keeps the cores busy with threads of its own.
_SPLIT = contextvars.ContextVar("deepfl_fr_split", default=True)


@contextlib.contextmanager
def no_split() -> Iterator[None]:
    """Within the block `in_parallel` starts no thread: for a caller that already runs one metric per core
    (`deepfl.fr.running`), where a third thread would only compete for the two cores."""
    token = _SPLIT.set(False)
    try:
        yield
    finally:
        _SPLIT.reset(token)


def in_parallel(function: Callable, items: Sequence) -> list:
    """[function(item) for item in items], the second half of the items on a thread of its own (when there are
    two cores): the calling thread does the first half, the results keep the items' order. Only the main thread
    starts one, and not inside `no_split`: a caller that runs metrics on threads of its own keeps the cores busy
    already.
    The split is the same either way, so the results do not depend on it."""
    if len(items) < 2 or WORKERS < 2 or not _SPLIT.get() or threading.current_thread() is not threading.main_thread():
        return [function(item) for item in items]
    half = (len(items) + 1) // 2
    outcome: list = []

    def second_half() -> None:
        try:
            outcome.append([function(item) for item in items[half:]])
        except BaseException as error:  # re-raised in the calling thread
            outcome.append(error)

    worker = threading.Thread(target=second_half, daemon=True)
    worker.start()
    try:
        first = [function(item) for item in items[:half]]
    finally:
        worker.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return first + outcome[0]
