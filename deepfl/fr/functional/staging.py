"""When the metrics compile: per input shape, and only once a shape repeats.

A metric's graph and its XLA stages are specialised to static image sizes, and compiling them for a new
(batch, height, width) costs far more than scoring one batch. So the first call with a shape runs uncompiled:
the metric's NumPy/SciPy form (`deepfl.fr.uncompiled`) where it has one, else the same Python stage functions
eagerly (no tracing, no XLA). The compiled graph is built on the second call with that shape and used from then
on: mixed sizes never pay a compilation, and a job that scores many batches of one size pays it once.
`compile_on_repeat` marks a metric's entry point, `xla_stage` its XLA-compiled stages. The forms follow the same
original; they differ only in rounding (float64 NumPy, float32 TensorFlow, XLA's fused products), within the
metrics' tested tolerances.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf

_EAGER = contextvars.ContextVar("deepfl_fr_eager", default=False)
_COMPILE_FIRST_CALL = contextvars.ContextVar("deepfl_fr_compile_first_call", default=False)


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


def xla_stage(fn: Callable | None = None, *, jit_compile: bool = True, reduce_retracing: bool = False) -> Callable:
    """`tf.function(fn, jit_compile=True)` that runs `fn` eagerly inside the first call of a shape."""
    if fn is None:
        return functools.partial(xla_stage, jit_compile=jit_compile, reduce_retracing=reduce_retracing)
    compiled = tf.function(fn, jit_compile=jit_compile, reduce_retracing=reduce_retracing)

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
    """A metric's entry point: uncompiled on the first call with an input shape (the metric `uncompiled` of
    `deepfl.fr.uncompiled`, NumPy, where named; else `fn` eagerly), a traced graph (whose XLA stages compile)
    from the second call with that shape on. `call.compiled` is the graph function, `call.seen` the input shapes
    met so far."""
    if fn is None:
        return functools.partial(compile_on_repeat, reduce_retracing=reduce_retracing, uncompiled=uncompiled)
    compiled = tf.function(fn, jit_compile=False, reduce_retracing=reduce_retracing)
    seen: set[tuple] = set()

    @functools.wraps(fn)
    def call(*args):
        if _EAGER.get():
            return fn(*args)
        key = _shape_key(args)
        if key in seen or _COMPILE_FIRST_CALL.get():
            seen.add(key)
            return compiled(*args)
        seen.add(key)
        if uncompiled is not None:
            return _run_uncompiled(uncompiled, args)
        token = _EAGER.set(True)
        try:
            return fn(*args)
        finally:
            _EAGER.reset(token)

    call.compiled = compiled
    call.seen = seen
    return call
