"""Reference sharing (ref_index) of SFF, SCQI and ADD-GSIM: scoring N distorted images against R unique
references gives the scores of the same pairs with each reference repeated per pair."""

import numpy as np
import pytest

from deepfl.fr.add_gsim import add_gsim
from deepfl.fr.scqi import scqi
from deepfl.fr.sff import sff

METRICS = {"sff": sff, "scqi": scqi, "add_gsim": add_gsim}


def _distorted(refs: np.ndarray, ref_index, seed: int) -> np.ndarray:
    """One distorted image per entry of ref_index: noise, blur-like averaging and a mean shift, all different."""
    rng = np.random.default_rng(seed)
    out = []
    for i, r in enumerate(ref_index):
        image = refs[r].astype(np.float64)
        if i % 3 == 1:
            image = 0.5 * (image + np.roll(image, 1, axis=1))
        image = image + rng.normal(0, 3 + 4 * i, image.shape) + 5 * (i % 2)
        out.append(np.clip(image, 0, 255).round())
    return np.stack(out).astype(np.float32)


@pytest.fixture(scope="module")
def references(small_photo):
    """Two 96x128 uint8-valued references (the fur crop and its horizontal mirror with a gamma change)."""
    second = 255.0 * (small_photo[:, ::-1] / 255.0) ** 0.8
    return np.stack([small_photo, second.round()]).astype(np.float32)


@pytest.mark.parametrize("name", sorted(METRICS))
@pytest.mark.parametrize("ref_index", [[0, 0, 0, 0, 0], [1, 0, 1, 1, 0]])
def test_shared_references_equal_repeated_references(name, ref_index, references):
    refs = references[:max(ref_index) + 1]
    dists = _distorted(refs, ref_index, seed=len(refs))
    shared = np.asarray(METRICS[name](refs, dists, ref_index=np.array(ref_index, np.int32)))
    repeated = np.asarray(METRICS[name](refs[ref_index], dists))
    assert shared.shape == (len(ref_index),)
    np.testing.assert_allclose(shared, repeated, rtol=0, atol=1e-6)
    assert np.all(repeated < 1.0)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_shared_reference_identical_images_score_one(name, references):
    dists = references[[1, 0, 0]]
    scores = np.asarray(METRICS[name](references, dists, ref_index=np.array([1, 0, 0])))
    np.testing.assert_allclose(scores, [1.0, 1.0, 1.0], atol=1e-9)


@pytest.mark.parametrize("name", sorted(METRICS))
@pytest.mark.parametrize("bad", [[0, 2, 1], [0, -1, 1], [0, 1], [[0, 1, 1]]])
def test_bad_ref_index_is_a_value_error(name, bad, references):
    dists = references[[0, 1, 1]]
    with pytest.raises(ValueError, match="ref_index"):
        METRICS[name](references, dists, ref_index=np.array(bad))


def test_add_gsim_gray_under_xla_equals_matlab_for_all_colours():
    """ADD-GSIM computes MATLAB's rgb2gray inside an XLA function (which may contract multiply-adds): it must
    still round every one of the 2^24 colours as MATLAB's double arithmetic does."""
    from deepfl.fr import add_gsim as module

    v = np.arange(256 ** 3, dtype=np.int64)
    rgb = np.stack([v >> 16, (v >> 8) & 255, v & 255], axis=-1).astype(np.float64)
    expected = np.floor(rgb @ np.array([0.298936021293775, 0.587043074451121, 0.114020904255103]) + 0.5)
    ours = module._gray(rgb.reshape(1, 4096, 4096, 3).astype(np.float32)).numpy().reshape(-1)
    assert np.count_nonzero(ours != expected) == 0
