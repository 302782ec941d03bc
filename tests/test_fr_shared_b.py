"""Reference sharing (`ref_index`) of VSI, FSIMc and SR-SIM.

With ref_index the reference-only work (saliency, phase congruency, gradients, colour channels) runs once per
unique reference; the scores must equal those with the reference repeated for every pair.
"""

from __future__ import annotations

import numpy as np
import pytest

SHARED_B = ("vsi", "fsim", "sr_sim")
SIZE = (64, 80)  # one size for every test here, so each metric traces its graphs once


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    """Two reference crops and five distorted images (noise, blur-like averaging, a colour shift)."""
    from skimage import data

    photo = data.astronaut()
    refs = np.stack([photo[100:164, 150:230], photo[250:314, 300:380]])
    rng = np.random.default_rng(7)
    base = refs[[1, 0, 1, 1, 0]].astype(np.float64)
    sigma = np.array([3.0, 8.0, 15.0, 25.0, 40.0])[:, None, None, None]
    dists = base + sigma * rng.standard_normal(base.shape)
    dists[2] = 0.5 * (base[2] + np.roll(base[2], 1, axis=1))
    dists[3, ..., 0] += 30
    return refs, np.clip(np.round(dists), 0, 255).astype(np.uint8)


def _scores(name: str, ref: np.ndarray, dist: np.ndarray, ref_index=None) -> np.ndarray:
    from deepfl.fr import compute

    return compute(ref, dist, [name], ref_index=ref_index)[name]


@pytest.mark.parametrize("name", SHARED_B)
def test_one_reference_for_five_distorted_images(name, images):
    refs, dists = images
    ref, dist = refs[:1], dists[[1, 4, 2, 3, 0]]
    index = np.zeros(5, np.int32)
    shared = _scores(name, ref, dist, index)
    repeated = _scores(name, ref[index], dist)
    assert shared.shape == (5,)
    np.testing.assert_allclose(shared, repeated, rtol=0, atol=1e-6, err_msg=name)
    assert np.ptp(shared) > 1e-3, f"{name}: the five levels should score differently, got {shared}"


@pytest.mark.parametrize("name", SHARED_B)
def test_two_references_in_mixed_order(name, images):
    refs, dists = images
    index = np.array([1, 0, 1, 1, 0], np.int32)
    shared = _scores(name, refs, dists, index)
    repeated = _scores(name, refs[index], dists)
    np.testing.assert_allclose(shared, repeated, rtol=0, atol=1e-6, err_msg=name)
    # swapping the references must change the scores: the index is really used
    swapped = _scores(name, refs, dists, 1 - index)
    assert np.abs(swapped - shared).max() > 1e-3, name


@pytest.mark.parametrize("name", SHARED_B)
def test_identical_images_with_index_score_perfect(name, images):
    refs, _ = images
    index = np.array([0, 1, 1, 0, 1], np.int32)
    scores = _scores(name, refs, refs[index], index)
    np.testing.assert_allclose(scores, 1.0, rtol=0, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name", SHARED_B)
@pytest.mark.parametrize("bad", [[0, 1, 2, 0, 1], [0, -1, 0, 0, 0], [0, 1, 0], [[0, 1, 0, 1, 0]]])
def test_bad_ref_index_raises_value_error(name, bad, images):
    from deepfl.fr import metric_function

    refs, dists = images
    with pytest.raises(ValueError, match="ref_index"):
        _scores(name, refs, dists, np.asarray(bad))
    with pytest.raises(ValueError, match=f"{name}: ref_index"):  # the metric function checks it too
        metric_function(name)(refs.astype(np.float32), dists.astype(np.float32), ref_index=np.asarray(bad))
