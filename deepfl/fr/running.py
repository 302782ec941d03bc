"""Several metrics on the same batch, side by side: what `deepfl.fr.compute` and `deepfl-label` run.

Each metric on two threads of its own (`threads.in_parallel`) leaves a core idle in its serial parts; two threads
that each take whole metrics from a queue, the costliest first, keep both cores busy. Inside a worker thread a
metric's NumPy form runs on that one thread (`in_parallel` starts none off the main thread, nor in the main
thread while the two share the metrics: a third thread would only compete for the two cores), and the results
do not depend on which thread ran it. The worker runs in a copy of the caller's context, so the compile settings
of `deepfl.fr.functional.staging` (context variables) hold there too.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Mapping

import numpy as np

from deepfl.fr.uncompiled.threads import WORKERS, no_split

# The metrics from the costliest to the cheapest, cold on photos of 300x400 to 384x512 (`bench/fr_mixed.py
# --per_metric`): the queue hands out the long ones first, so the two threads finish close together.
COSTLIEST_FIRST = ("fsim", "iwssim", "scqi", "vsi", "sr_sim", "msssim", "ssim", "add_gsim", "mdsi", "gmsd", "sff")


def _drain(todo: queue.SimpleQueue) -> None:
    """Empties the queue (another thread may be taking from it too)."""
    try:
        while True:
            todo.get_nowait()
    except queue.Empty:
        pass


def score_metrics(functions: Mapping[str, Callable], ref, dist, ref_index=None) -> dict[str, np.ndarray]:
    """{name: float64 scores} of `function(ref, dist, ref_index=ref_index)` for each metric, on two threads where
    there are two cores and several metrics (only from the main thread, as `in_parallel`). A metric's error is
    raised here once both threads have stopped (the first in the order of `functions`)."""

    def score(name: str) -> np.ndarray:
        return np.asarray(functions[name](ref, dist, ref_index=ref_index), np.float64).reshape(-1)

    names = list(functions)
    if len(names) < 2 or WORKERS < 2 or threading.current_thread() is not threading.main_thread():
        return {name: score(name) for name in names}
    rank = {name: k for k, name in enumerate(COSTLIEST_FIRST)}
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for name in sorted(names, key=lambda n: rank.get(n, -1)):  # unknown (new) metrics first: cost not measured
        todo.put(name)
    results: dict[str, np.ndarray | BaseException] = {}

    def work() -> None:
        while True:
            try:
                name = todo.get_nowait()
            except queue.Empty:
                return
            try:
                results[name] = score(name)
            except BaseException as error:  # re-raised in the calling thread; the other stops after its metric
                results[name] = error
                _drain(todo)
                return

    worker = threading.Thread(target=contextvars.copy_context().run, args=(work,), daemon=True)
    worker.start()
    try:
        with no_split():
            work()
    finally:
        worker.join()
    for name in names:
        if isinstance(results.get(name), BaseException):
            raise results[name]
    return {name: results[name] for name in names}
