"""Reference sharing (`ref_index`) of all eleven FR metrics.

With ref_index, N distorted images are scored against R unique references and each metric does its
reference-only work (filtering, pyramids, phase congruency, saliency, features) once per reference; the scores
must equal those of the same pairs with every reference repeated per pair.
"""

from __future__ import annotations

import numpy as np
import pytest

from deepfl.fr import LOWER_IS_BETTER, METRICS, compute, metric_function


@pytest.fixture(scope="module")
def images(photo) -> tuple[np.ndarray, np.ndarray]:
    """Two 176x208 references (MS-SSIM and IW-SSIM need 161 px per side: a crop of the astronaut and another
    crop, mirrored, with a gamma change) and five distorted images of refs [1, 0, 1, 1, 0] (noise of growing
    strength, a blur-like average, a colour shift)."""
    first = photo[100:276, 150:358].astype(np.float64)
    second = 255.0 * (photo[180:356, 250:458][:, ::-1] / 255.0) ** 0.8
    refs = np.clip(np.round(np.stack([first, second])), 0, 255)
    base = refs[[1, 0, 1, 1, 0]]
    sigma = np.array([3.0, 8.0, 15.0, 25.0, 40.0])[:, None, None, None]
    dists = base + sigma * np.random.default_rng(7).standard_normal(base.shape)
    dists[2] = 0.5 * (base[2] + np.roll(base[2], 1, axis=1))
    dists[3, ..., 0] += 30
    return refs.astype(np.uint8), np.clip(np.round(dists), 0, 255).astype(np.uint8)


def _perfect(name: str) -> float:
    return 0.0 if name in LOWER_IS_BETTER else 1.0


@pytest.mark.parametrize("name", METRICS)
def test_one_reference_for_five_distorted_images(name, images):
    refs, dists = images
    ref, dist = refs[:1], dists[[1, 4, 2, 3, 0]]
    index = np.zeros(5, np.int32)
    shared = compute(ref, dist, [name], ref_index=index)[name]
    repeated = compute(ref[index], dist, [name])[name]
    assert shared.shape == (5,)
    # 1e-5: the two calls may take different paths (a shape's first call runs NumPy in float64, a repeated
    # shape the float32 graph; they differ by up to 5e-6), depending on which shapes this process met before
    np.testing.assert_allclose(shared, repeated, rtol=0, atol=1e-5, err_msg=name)
    assert np.ptp(shared) > 1e-3, f"{name}: the five distorted images should score differently, got {shared}"


@pytest.mark.parametrize("name", METRICS)
def test_two_references_in_mixed_order(name, images):
    refs, dists = images
    index = np.array([1, 0, 1, 1, 0], np.int32)
    shared = compute(refs, dists, [name], ref_index=index)[name]
    repeated = compute(refs[index], dists, [name])[name]
    # 1e-5: the two calls may take different paths (a shape's first call runs NumPy in float64, a repeated
    # shape the float32 graph; they differ by up to 5e-6), depending on which shapes this process met before
    np.testing.assert_allclose(shared, repeated, rtol=0, atol=1e-5, err_msg=name)
    assert np.all(np.abs(repeated - _perfect(name)) > 1e-3), f"{name}: real distortions must not score perfect"
    swapped = compute(refs, dists, [name], ref_index=1 - index)[name]  # the index is really used
    assert np.abs(swapped - shared).max() > 1e-3, name


@pytest.mark.parametrize("name", METRICS)
def test_identical_images_with_an_index_score_perfect(name, images):
    refs, _ = images
    index = np.array([0, 1, 1, 0, 1], np.int32)
    scores = compute(refs, refs[index], [name], ref_index=index)[name]
    np.testing.assert_allclose(scores, _perfect(name), rtol=0, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name", METRICS)
@pytest.mark.parametrize("bad", [[0, 1, 2, 0, 1], [0, -1, 0, 0, 0], [0, 1, 0], [[0, 1, 0, 1, 0]]])
def test_bad_ref_index_is_a_value_error(name, bad, images):
    refs, dists = images
    with pytest.raises(ValueError, match="ref_index"):
        compute(refs, dists, [name], ref_index=np.asarray(bad))
    with pytest.raises(ValueError, match=f"{name}: ref_index"):  # the metric function checks it too
        metric_function(name)(refs.astype(np.float32), dists.astype(np.float32), ref_index=np.asarray(bad))
