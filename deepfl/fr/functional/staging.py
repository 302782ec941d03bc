"""When the metrics compile: per input shape, and only once a shape repeats.

A metric's graph and its XLA stages are specialised to static image sizes, and compiling them for a new
(batch, height, width) costs far more than scoring one batch. So the first call with a shape runs the same
Python stage functions eagerly (no tracing, no XLA), and the compiled graph is built on the second call with
that shape and used from then on: mixed sizes never pay a compilation, and a job that scores many batches of
one size pays it once. `compile_on_repeat` marks a metric's entry point, `xla_stage` its XLA-compiled stages.
The eager and compiled forms run the same maths; they differ only in float32 rounding (XLA fuses and contracts
products), within the metrics' tested tolerances.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator

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


def compile_on_repeat(fn: Callable | None = None, *, reduce_retracing: bool = False) -> Callable:
    """A metric's entry point: eager on the first call with an input shape, a traced graph (whose XLA stages
    compile) from the second call with that shape on. `call.compiled` is the graph function, `call.seen` the
    input shapes met so far."""
    if fn is None:
        return functools.partial(compile_on_repeat, reduce_retracing=reduce_retracing)
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
        token = _EAGER.set(True)
        try:
            return fn(*args)
        finally:
            _EAGER.reset(token)

    call.compiled = compiled
    call.seen = seen
    return call
