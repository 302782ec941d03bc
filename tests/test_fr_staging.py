"""Compile on repeat (`deepfl.fr.functional.staging`): the first call with an input shape runs each metric
uncompiled (its NumPy form in `deepfl.fr.uncompiled`, or its stages eagerly) and traces nothing; the second call
with that shape builds the compiled graph (one trace), later calls reuse it. Both forms give the same scores
within 1e-5, the tolerance of the official-values test: the NumPy forms compute in float64, the graphs in
float32 (SSIM's float32 window moments differ from float64 by up to 5e-6 on these noisy pairs)."""

from __future__ import annotations

import importlib

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
def test_first_seen_shape_runs_eagerly_and_a_repeated_shape_compiles_once(name, images):
    import tensorflow as tf

    from deepfl.fr import metric_function

    refs, dists, index = images
    module = importlib.import_module(f"deepfl.fr._{name}")
    entry = getattr(module, f"_{name}").compiled
    fn = metric_function(name)
    ref_t, dist_t = tf.constant(refs, tf.float32), tf.constant(dists, tf.float32)
    counts = [f.experimental_get_tracing_count() for f in _stages(module)]

    first = np.asarray(fn(ref_t, dist_t, ref_index=index))
    assert [f.experimental_get_tracing_count() for f in _stages(module)] == counts  # nothing traced
    assert entry.experimental_get_tracing_count() == counts[_stages(module).index(entry)]

    second = np.asarray(fn(ref_t, dist_t, ref_index=index))
    traces = entry.experimental_get_tracing_count()
    assert traces == counts[_stages(module).index(entry)] + 1  # the graph is built for the repeated shape
    third = np.asarray(fn(ref_t, dist_t, ref_index=index))
    assert entry.experimental_get_tracing_count() == traces  # and reused

    np.testing.assert_allclose(first, second, rtol=0, atol=1e-5, err_msg=name)
    np.testing.assert_array_equal(second, third)
    assert np.all(np.isfinite(first))
