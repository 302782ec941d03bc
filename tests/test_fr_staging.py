"""Compile on repeat (`deepfl.fr.functional.staging`): calls with an input shape run each metric uncompiled (its
NumPy form in `deepfl.fr.uncompiled`, or its stages eagerly) and trace nothing until they have taken the compile
budget; the next call with that shape builds the compiled graph (one trace), later calls reuse it. Both forms give
the same scores
within 1e-5, the tolerance of the official-values test: the NumPy forms compute in float64, the graphs in
float32 (SSIM's float32 window moments differ from float64 by up to 5e-6 on these noisy pairs)."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

from deepfl.fr import METRICS

SIZE = (171, 203)  # a size no other test uses: the shapes met so far are remembered per process


@pytest.fixture(scope="module")
def images(photo) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two references, five distorted images (noise of growing strength) and their reference index."""
    h, w = SIZE
    refs = np.stack([photo[100 : 100 + h, 150 : 150 + w], photo[180 : 180 + h, 250 : 250 + w][:, ::-1]])
    index = np.array([1, 0, 1, 1, 0], np.int32)
    sigma = np.array([3.0, 8.0, 15.0, 25.0, 40.0])[:, None, None, None]
    noisy = refs[index] + sigma * np.random.default_rng(3).standard_normal((5, h, w, 3))
    return refs, np.clip(np.round(noisy), 0, 255).astype(np.uint8), index


def _stages(module) -> list:
    """The compiled functions a metric may trace: its entry graph and every XLA stage it or the helpers hold."""
    from deepfl.fr.functional import colour, resize

    holders = [module, colour, resize]
    return [value.compiled for holder in holders for value in vars(holder).values() if hasattr(value, "compiled")]


@pytest.mark.parametrize("name", METRICS)
def test_a_shape_runs_uncompiled_until_its_budget_is_spent_then_compiles_once(name, images, monkeypatch):
    import tensorflow as tf

    from deepfl.fr import metric_function
    from deepfl.fr.functional import staging
    from deepfl.fr.functional.staging import compile_after

    refs, dists, index = images
    module = importlib.import_module(f"deepfl.fr._{name}")
    entry = getattr(module, f"_{name}")
    fn = metric_function(name)
    ref_t, dist_t = tf.constant(refs, tf.float32), tf.constant(dists, tf.float32)
    counts = [f.experimental_get_tracing_count() for f in _stages(module)]
    graph_traces = entry.compiled.experimental_get_tracing_count()

    with compile_after(math.inf):
        first = np.asarray(fn(ref_t, dist_t, ref_index=index))
        (key,) = [k for k in entry.spent if k not in entry.compiled_shapes and entry.spent[k] > 0 and _is_ours(k)]
        spent_once = entry.spent[key]
        again = np.asarray(fn(ref_t, dist_t, ref_index=index))
    assert [f.experimental_get_tracing_count() for f in _stages(module)] == counts  # nothing traced
    assert entry.spent[key] > spent_once  # the second uncompiled call is counted too
    np.testing.assert_allclose(again, first, rtol=0, atol=1e-12, err_msg=name)

    with compile_after(entry.spent[key] + 1e3):  # budget not yet spent: still uncompiled
        np.asarray(fn(ref_t, dist_t, ref_index=index))
    assert entry.compiled.experimental_get_tracing_count() == graph_traces
    with compile_after(entry.spent[key]):  # budget spent: this call builds the graph
        compiled = np.asarray(fn(ref_t, dist_t, ref_index=index))
    assert entry.compiled.experimental_get_tracing_count() == graph_traces + 1
    assert key in entry.compiled_shapes
    monkeypatch.setattr(staging, "_clock", _ticks(0.0, 0.0))  # the timed call after compiling: the graph is faster
    reused = np.asarray(fn(ref_t, dist_t, ref_index=index))
    monkeypatch.undo()
    with compile_after(math.inf):  # a compiled shape stays compiled, and the graph is reused
        assert np.array_equal(np.asarray(fn(ref_t, dist_t, ref_index=index)), reused)
    assert entry.compiled.experimental_get_tracing_count() == graph_traces + 1
    assert key in entry.compiled_shapes and key not in entry.uncompiled_shapes

    np.testing.assert_allclose(first, compiled, rtol=0, atol=1e-5, err_msg=name)
    np.testing.assert_array_equal(compiled, reused)
    assert np.all(np.isfinite(first))


def _is_ours(key: tuple) -> bool:
    """Whether a shape key holds an image tensor of this module's SIZE."""
    return any(isinstance(item, tuple) and len(item) == 2 and tuple(item[0][1:3]) == SIZE for item in key)


def _ticks(*values: float):
    """A clock that reads the given values in turn."""
    readings = iter(values)
    return lambda: next(readings)


def test_compile_after_zero_compiles_on_the_second_call_and_a_slower_graph_goes_back(images, monkeypatch):
    import tensorflow as tf

    from deepfl.fr import metric_function
    from deepfl.fr._gmsd import _gmsd
    from deepfl.fr.functional import staging
    from deepfl.fr.functional.staging import compile_after

    refs, dists, _ = images
    ref_t, dist_t = tf.constant(refs[:1, :40, :50], tf.float32), tf.constant(dists[:1, :40, :50], tf.float32)
    gmsd = metric_function("gmsd")
    traces = _gmsd.compiled.experimental_get_tracing_count()
    with compile_after(0):
        monkeypatch.setattr(staging, "_clock", _ticks(0.0, 1.0))  # the uncompiled call "takes" 1 s
        numpy_score = np.asarray(gmsd(ref_t, dist_t))
        assert _gmsd.compiled.experimental_get_tracing_count() == traces
        gmsd(ref_t, dist_t)  # budget 0 spent: compiles
        assert _gmsd.compiled.experimental_get_tracing_count() == traces + 1
        monkeypatch.setattr(staging, "_clock", _ticks(0.0, 5.0))  # the timed compiled call: slower than 1 s
        gmsd(ref_t, dist_t)
        monkeypatch.setattr(staging, "_clock", _ticks(0.0, 1.0))
        again = np.asarray(gmsd(ref_t, dist_t))  # back to uncompiled for good
    (key,) = [k for k in _gmsd.calls if k[0][0] == (1, 40, 50, 3)]
    assert _gmsd.calls[key] == 2 and key in _gmsd.uncompiled_shapes and key not in _gmsd.compiled_shapes
    assert _gmsd.compiled.experimental_get_tracing_count() == traces + 1
    np.testing.assert_array_equal(again, numpy_score)


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_compile_after_rejects_a_negative_budget(bad):
    from deepfl.fr.functional.staging import compile_after

    with pytest.raises(ValueError, match="seconds"), compile_after(bad):
        pass
