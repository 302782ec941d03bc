"""Reference sharing (ref_index) of SSIM, MS-SSIM, IW-SSIM, MDSI and GMSD: scoring N distorted images against R
unique references gives the scores of the same pairs with each reference repeated per pair."""

import numpy as np
import pytest

from deepfl.fr.gmsd import gmsd
from deepfl.fr.iwssim import iwssim
from deepfl.fr.mdsi import mdsi
from deepfl.fr.msssim import msssim
from deepfl.fr.ssim import ssim

METRICS = {"ssim": ssim, "msssim": msssim, "iwssim": iwssim, "mdsi": mdsi, "gmsd": gmsd}
PERFECT = {"ssim": 1.0, "msssim": 1.0, "iwssim": 1.0, "mdsi": 0.0, "gmsd": 0.0}


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
def references(photo):
    """Two 176x208 uint8-valued references (MS-SSIM and IW-SSIM need 161 px per side): a crop of the astronaut
    and a different crop, mirrored, with a gamma change."""
    first = photo[100:276, 150:358]
    second = 255.0 * (photo[180:356, 250:458, :][:, ::-1] / 255.0) ** 0.8
    return np.stack([first, second.round()]).astype(np.float32)


@pytest.mark.parametrize("name", sorted(METRICS))
@pytest.mark.parametrize("ref_index", [[0, 0, 0, 0, 0], [1, 0, 1, 1, 0]])
def test_shared_references_equal_repeated_references(name, ref_index, references):
    refs = references[:max(ref_index) + 1]
    dists = _distorted(refs, ref_index, seed=len(refs))
    shared = np.asarray(METRICS[name](refs, dists, ref_index=np.array(ref_index, np.int32)))
    repeated = np.asarray(METRICS[name](refs[ref_index], dists))
    assert shared.shape == (len(ref_index),)
    np.testing.assert_allclose(shared, repeated, rtol=0, atol=1e-6)
    assert np.all(np.abs(repeated - PERFECT[name]) > 1e-3)  # real distortions, not a trivially equal score


@pytest.mark.parametrize("name", sorted(METRICS))
def test_shared_reference_identical_images_score_perfect(name, references):
    dists = references[[1, 0, 0]]
    scores = np.asarray(METRICS[name](references, dists, ref_index=np.array([1, 0, 0])))
    np.testing.assert_allclose(scores, [PERFECT[name]] * 3, atol=1e-6)


@pytest.mark.parametrize("name", sorted(METRICS))
@pytest.mark.parametrize("bad", [[0, 2, 1], [0, -1, 1], [0, 1], [[0, 1, 1]]])
def test_bad_ref_index_is_a_value_error(name, bad, references):
    dists = references[[0, 1, 1]]
    with pytest.raises(ValueError, match="ref_index"):
        METRICS[name](references, dists, ref_index=np.array(bad))


def _numpy_lpyr(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """matlabPyrTools `buildLpyr` written plainly: binom5 with 'reflect1' borders, subsampling from the first
    sample, upsampling by zero insertion (numpy's 'reflect' pad is 'reflect1')."""
    taps = np.sqrt(2.0) * np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0

    def filt(x, axis):
        padded = np.pad(x, [(2, 2) if a == axis else (0, 0) for a in range(2)], mode="reflect")
        n = x.shape[axis]
        return sum(taps[k] * np.take(padded, range(k, k + n), axis=axis) for k in range(5))

    def down(x, axis):
        return np.take(filt(x, axis), range(0, x.shape[axis], 2), axis=axis)

    def up(x, axis, size):
        shape = list(x.shape)
        shape[axis] = size
        z = np.zeros(shape)
        index = [slice(None)] * 2
        index[axis] = slice(0, size, 2)
        z[tuple(index)] = x
        return filt(z, axis)

    bands = []
    for _ in range(levels - 1):
        lo = down(down(image, 0), 1)
        bands.append(image - up(up(lo, 1, image.shape[1]), 0, image.shape[0]))
        image = lo
    return bands + [image]


@pytest.mark.parametrize("shape", [(40, 52), (37, 51), (38, 45)])
def test_iwssim_pyramid_equals_plain_buildlpyr(shape):
    """The polyphase slice form of the pyramid (borders derived per size parity) equals buildLpyr."""
    import tensorflow as tf

    from deepfl.fr.iwssim import laplacian_pyramid

    image = np.random.default_rng(shape[0]).uniform(0, 255, shape)
    ours = laplacian_pyramid(tf.constant(image[None, :, :, None]), 3, tf.float64)
    for band, expected in zip(ours, _numpy_lpyr(image, 3)):
        np.testing.assert_allclose(np.asarray(band)[0, :, :, 0], expected, rtol=0, atol=1e-9)
