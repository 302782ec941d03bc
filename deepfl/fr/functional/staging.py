"""When the metrics compile: per input shape, and only once a shape has repeated enough to pay for it.

A metric's graph and its XLA stages are specialised to static image sizes, and compiling them for a new
(batch, height, width) costs one to a few seconds per metric, far more than scoring one batch. So a shape's calls
run uncompiled (the metric's NumPy/SciPy form in `deepfl.fr.uncompiled` where it has one, else the same Python
stage functions eagerly: no tracing, no XLA) until they have taken `COMPILE_AFTER_S` seconds in all, about what
its compilation costs; the next call with that shape builds the compiled graph, and later calls reuse it. This is
the ski-rental rule: sizes met a few times never pay a compilation, a job that scores many batches of one size
pays it once, and neither spends more than about twice what the better choice in hindsight would have cost. Where
the compiled graph turns out slower than the uncompiled form (small images), the shape goes back to uncompiled.
`compile_on_repeat` marks a metric's entry point, `xla_stage` its XLA-compiled stages. The forms follow the same
original; they differ only in rounding (float64 NumPy, float32 TensorFlow, XLA's fused products), within the
metrics' tested tolerances.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import time
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf

_EAGER = contextvars.ContextVar("deepfl_fr_eager", default=False)
_COMPILE_FIRST_CALL = contextvars.ContextVar("deepfl_fr_compile_first_call", default=False)
COMPILE_AFTER_S = 2.0  # seconds of uncompiled calls on one shape, per metric, after which that shape compiles
_COMPILE_AFTER = contextvars.ContextVar("deepfl_fr_compile_after", default=COMPILE_AFTER_S)
_clock = time.perf_counter  # what the budget and the trial call are timed with


@contextlib.contextmanager
def compiled_from_first_call() -> Iterator[None]:
    """Within this block every metric call takes the compiled path, a new shape's first call included.

    For resumable jobs (`deepfl-label`): which path a batch takes would otherwise depend on what the process met
    before it, and the two paths differ in float rounding, so a restarted job would not write the same bytes as an
    uninterrupted one.
    """
    token = _COMPILE_FIRST_CALL.set(True)
    try:
        yield
    finally:
        _COMPILE_FIRST_CALL.reset(token)


@contextlib.contextmanager
def compile_after(seconds: float) -> Iterator[None]:
    """Within this block a shape compiles once its uncompiled calls have taken `seconds` in all (per metric):
    0 compiles it on its second call, `math.inf` never. For callers that know how often their sizes repeat."""
    if not seconds >= 0:
        raise ValueError(f"seconds: must be >= 0, got {seconds}")
    token = _COMPILE_AFTER.set(float(seconds))
    try:
        yield
    finally:
        _COMPILE_AFTER.reset(token)


def xla_stage(fn: Callable | None = None, *, jit_compile: bool = True, reduce_retracing: bool = False) -> Callable:
    """`tf.function(fn, jit_compile=True)` that runs `fn` eagerly inside the first call of a shape."""
    if fn is None:
        return functools.partial(xla_stage, jit_compile=jit_compile, reduce_retracing=reduce_retracing)
    compiled = tf.function(fn, jit_compile=jit_compile, reduce_retracing=reduce_retracing, autograph=False)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        return fn(*args, **kwargs) if _EAGER.get() else compiled(*args, **kwargs)

    call.compiled = compiled
    return call


def _shape_key(values) -> tuple:
    """What the compiled graph is specialised to: shape and dtype of each tensor, the value of anything else."""
    return tuple((tuple(v.shape), str(v.dtype)) if hasattr(v, "shape") and hasattr(v, "dtype") else v for v in values)


def _run_uncompiled(name: str, args: tuple) -> tf.Tensor:
    """`deepfl.fr.uncompiled._<name>.<name>` on the NumPy values of a metric's (ref, dist, ref_index) tensors;
    N float64 scores. Imported on first use: those modules read their constants from the metric modules."""
    function = getattr(importlib.import_module(f"deepfl.fr.uncompiled._{name}"), name)
    arrays = [None if value is None else np.asarray(value) for value in args]
    with _blas_pools().limit(limits=1, user_api="blas"):
        return tf.constant(np.asarray(function(*arrays), np.float64))


@functools.cache
def _blas_pools():
    """The process's BLAS thread pools (threadpoolctl; found once, the search scans every loaded library). The
    NumPy forms run BLAS on one thread: their products are small and many, and splitting them across threads
    costs more in hand-offs than it saves."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def compile_on_repeat(
    fn: Callable | None = None, *, reduce_retracing: bool = False, uncompiled: str | None = None
) -> Callable:
    """A metric's entry point: uncompiled calls on an input shape (the metric `uncompiled` of `deepfl.fr.uncompiled`,
    NumPy, where named; else `fn` eagerly) until they have taken the compile budget (`compile_after`), then a
    traced graph (whose XLA stages compile) for that shape. The call after the compiling one is timed: where the
    graph is slower than the shape's average uncompiled call (small images, where NumPy's few passes beat the
    graph's overheads), the shape goes back to uncompiled for good. `call.compiled` is the graph function,
    `call.spent` the seconds and `call.calls` the number of uncompiled calls per shape, `call.compiled_shapes`
    the shapes that run compiled and `call.uncompiled_shapes` those found faster uncompiled."""
    if fn is None:
        return functools.partial(compile_on_repeat, reduce_retracing=reduce_retracing, uncompiled=uncompiled)
    compiled = tf.function(fn, jit_compile=False, reduce_retracing=reduce_retracing, autograph=False)
    spent: dict[tuple, float] = {}
    calls: dict[tuple, int] = {}
    compiled_shapes: set[tuple] = set()
    uncompiled_shapes: set[tuple] = set()
    on_trial: set[tuple] = set()  # compiled shapes whose next call is timed against their uncompiled calls

    def run_uncompiled(key: tuple, args: tuple):
        start = _clock()
        try:
            if uncompiled is not None:
                return _run_uncompiled(uncompiled, args)
            token = _EAGER.set(True)
            try:
                return fn(*args)
            finally:
                _EAGER.reset(token)
        finally:
            spent[key] = spent.get(key, 0.0) + _clock() - start
            calls[key] = calls.get(key, 0) + 1

    @functools.wraps(fn)
    def call(*args):
        if _EAGER.get():
            return fn(*args)
        key = _shape_key(args)
        if _COMPILE_FIRST_CALL.get():
            return compiled(*args)
        if key in uncompiled_shapes:
            return run_uncompiled(key, args)
        if key in on_trial:
            on_trial.discard(key)
            start = _clock()
            result = compiled(*args)
            if _clock() - start > spent[key] / calls[key]:
                compiled_shapes.discard(key)
                uncompiled_shapes.add(key)
            return result
        if key in compiled_shapes:
            return compiled(*args)
        if spent.get(key, -1.0) >= _COMPILE_AFTER.get():
            compiled_shapes.add(key)
            on_trial.add(key)
            return compiled(*args)
        return run_uncompiled(key, args)

    call.compiled = compiled
    call.spent = spent
    call.calls = calls
    call.compiled_shapes = compiled_shapes
    call.uncompiled_shapes = uncompiled_shapes
    return call
