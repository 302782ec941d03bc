"""The NumPy forms' one way to use both cores: NumPy's ufuncs, BLAS and SciPy's FFTs and sparse products release
the GIL, so two threads on independent halves of the work (images, strips of rows) run side by side."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

WORKERS = min(2, os.cpu_count() or 1)


def in_parallel(function: Callable, items: Sequence) -> list:
    """[function(item) for item in items], the second half of the items on a thread of its own (when there are
    two cores): the calling thread does the first half, the results keep the items' order. Only the main thread
    starts one: a caller that runs metrics on threads of its own keeps the cores busy already.
    The split is the same either way, so the results do not depend on it."""
    if len(items) < 2 or WORKERS < 2 or threading.current_thread() is not threading.main_thread():
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
