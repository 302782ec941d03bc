"""Tests of the eight TensorFlow FR metrics (SSIM, MS-SSIM, IW-SSIM, MDSI, VSI, FSIMc, GMSD, SR-SIM).

- Exactness: the official MATLAB values on five TID2013 pairs (tests/data/tid2013/official.csv).
- Agreement with piq (configured to the originals' preprocessing; run in a subprocess because importing
  piq/torchvision after TensorFlow crashes this interpreter) on a real photograph distorted by all 25 KADID
  types: SROCC >= 0.999 and median relative difference <= 1e-3 per metric (default: one level per type,
  levels cycling 1..5; `slow`: all 125 type x level pairs on two photographs).
- Identity, constant and extreme images, batch consistency, bad inputs, and the MATLAB helpers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EIGHT = ("ssim", "msssim", "iwssim", "mdsi", "vsi", "fsim", "gmsd", "sr_sim")


def _perfect(name: str) -> float:
    from deepfl.fr import LOWER_IS_BETTER

    return 0.0 if name in LOWER_IS_BETTER else 1.0


# --------------------------------------------------------------------------------------------------------------
# Official MATLAB values
# --------------------------------------------------------------------------------------------------------------


def test_official_matlab_values_on_tid2013():
    """Both forms of each metric: the NumPy form (`deepfl.fr.uncompiled`, called directly, as whatever shapes
    this process met before decide which form `compute` takes) and the compiled graph."""
    from deepfl.fr import compute
    from deepfl.fr.functional.staging import compiled_from_first_call
    from helpers_tid2013 import load_tid2013

    table, ref, dist = load_tid2013()
    as_float = ref.astype(np.float32), dist.astype(np.float32)
    forms = {"numpy": {name: _numpy_form(name)(*as_float, None) for name in EIGHT}}
    with compiled_from_first_call():
        forms["compiled"] = compute(ref, dist, EIGHT)
    for form, scores in forms.items():
        for name in EIGHT:
            # Required: 1e-3. Measured: <= 7.5e-7 for every metric and pair; 1e-5 catches any real regression.
            np.testing.assert_allclose(
                scores[name], table[name].to_numpy(), rtol=0, atol=1e-5, err_msg=f"{name} ({form})"
            )


def _numpy_form(name: str):
    """The NumPy form of metric `name` (float32 NHWC RGB ref, dist, ref_index -> float64 scores)."""
    return getattr(importlib.import_module(f"deepfl.fr.uncompiled._{name}"), name)


# --------------------------------------------------------------------------------------------------------------
# Agreement with piq over the 25 KADID distortions
# --------------------------------------------------------------------------------------------------------------

_PIQ_WORKER = r"""
import sys, numpy as np, torch, piq
torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
data = np.load(sys.argv[1]); ref, dist = data["ref"], data["dist"]; names = sys.argv[3].split(",")
w = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
gray = lambda a: torch.from_numpy(np.clip(np.floor(a.astype(np.float64) @ w + 0.5), 0, 255).astype(np.float32))[:, None]
rgb = lambda a: torch.from_numpy(a.astype(np.float32)).permute(0, 3, 1, 2)
gr, gd, cr, cd = gray(ref), gray(dist), rgb(ref), rgb(dist)
calls = {
    "ssim": lambda: piq.ssim(gr / 255, gd / 255, data_range=1.0, downsample=True, reduction="none"),
    "msssim": lambda: piq.multi_scale_ssim(gr / 255, gd / 255, data_range=1.0, reduction="none"),
    "iwssim": lambda: piq.information_weighted_ssim(gd, gr, data_range=255.0, reduction="none"),
    "mdsi": lambda: piq.mdsi(cd, cr, data_range=255.0, reduction="none"),
    "vsi": lambda: piq.vsi(cr, cd, data_range=255.0, reduction="none"),
    "fsim": lambda: piq.fsim(cr, cd, data_range=255.0, chromatic=True, reduction="none"),
    "gmsd": lambda: piq.gmsd(gr, gd, data_range=255.0, reduction="none"),
    "sr_sim": lambda: torch.cat([piq.srsim(cr[i:i + 1], cd[i:i + 1], data_range=255.0, chromatic=False,
                                           reduction="none") for i in range(len(cr))]),
}
with torch.no_grad():
    out = {n: calls[n]().numpy().astype(np.float64).reshape(-1) for n in names}
np.savez(sys.argv[2], **out)
"""


def _piq_scores(ref: np.ndarray, dist: np.ndarray, names, tmp_path: Path) -> dict[str, np.ndarray]:
    """piq's scores in a fresh interpreter (piq is imported before anything else there)."""
    if importlib.util.find_spec("piq") is None:  # never import it here: piq after TensorFlow segfaults
        pytest.skip("piq is not installed")
    src, out = tmp_path / "pairs.npz", tmp_path / "piq.npz"
    np.savez(src, ref=ref, dist=dist)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, "-c", _PIQ_WORKER, str(src), str(out), ",".join(names)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    with np.load(out) as data:
        return {name: data[name] for name in names}


def _sweep_pairs(photos, levels_for_type) -> tuple[np.ndarray, np.ndarray]:
    from deepfl.distortions import distort

    refs, dists = [], []
    for p, photo in enumerate(photos):
        for dist_type in range(1, 26):
            for level in levels_for_type(dist_type):
                refs.append(photo)
                dists.append(distort(photo, dist_type, level, rng=1000 * p + 10 * dist_type + level))
    return np.stack(refs), np.stack(dists)


def _assert_agrees_with_piq(ref, dist, tmp_path):
    from scipy.stats import spearmanr

    from deepfl.fr import compute

    ours = compute(ref, dist, EIGHT)
    theirs = _piq_scores(ref, dist, EIGHT, tmp_path)
    report = {}
    for name in EIGHT:
        a, b = ours[name], theirs[name]
        assert np.all(np.isfinite(a)), name
        srocc = spearmanr(a, b)[0]
        rel = np.median(np.abs(a - b) / np.maximum(np.abs(b), 1e-12))
        report[name] = (round(float(srocc), 6), float(rel))
    bad = {k: v for k, v in report.items() if not (v[0] >= 0.999 and v[1] <= 1e-3)}
    assert not bad, f"disagreement with piq (srocc, median rel diff): {json.dumps(bad)}"


def _crop(image: np.ndarray, top: int, left: int) -> np.ndarray:
    return np.ascontiguousarray(image[top : top + 192, left : left + 256])


def test_agrees_with_piq_on_all_25_distortion_types(tmp_path):
    pytest.importorskip("deepfl.distortions")
    from skimage import data

    photo = _crop(data.astronaut(), 100, 150)
    ref, dist = _sweep_pairs([photo], lambda t: [1 + (t - 1) % 5])  # every type once, every level 5 times
    _assert_agrees_with_piq(ref, dist, tmp_path)


@pytest.mark.slow
def test_agrees_with_piq_on_all_types_and_levels(tmp_path):
    pytest.importorskip("deepfl.distortions")
    from skimage import data

    photos = [_crop(data.astronaut(), 100, 150), _crop(data.chelsea(), 60, 120)]
    ref, dist = _sweep_pairs(photos, lambda t: range(1, 6))
    _assert_agrees_with_piq(ref, dist, tmp_path)


# --------------------------------------------------------------------------------------------------------------
# Identity, degenerate images, batches
# --------------------------------------------------------------------------------------------------------------


def _photo_192(photo: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(photo[:192, :256])


def test_identical_images_score_perfect(photo):
    from deepfl.fr import compute

    image = _photo_192(photo)
    flat = np.full_like(image, 77)
    batch = np.stack([image, flat, np.zeros_like(image)])
    scores = compute(batch, batch.copy(), EIGHT)
    for name in EIGHT:
        np.testing.assert_allclose(scores[name], _perfect(name), rtol=0, atol=1e-6, err_msg=name)


def test_constant_and_extreme_pairs_are_finite(photo):
    from deepfl.fr import compute

    image = _photo_192(photo)
    black, white = np.zeros_like(image), np.full_like(image, 255)
    # same batch size and image size as the other tests here, so the traced graphs are reused
    ref = np.stack([black, image, np.full_like(image, 128)])
    dist = np.stack([white, black, np.full_like(image, 129)])
    scores = compute(ref, dist, EIGHT)
    for name in EIGHT:
        assert np.all(np.isfinite(scores[name])), f"{name}: {scores[name]}"
        # black vs white is far from perfect for every metric
        assert abs(scores[name][0] - _perfect(name)) > 0.01, f"{name}: black vs white scored {scores[name][0]}"


def test_batch_equals_single_pairs_and_distortion_lowers_quality(small_photo, photo):
    from deepfl.fr import compute

    image = _photo_192(photo)
    rng = np.random.default_rng(0)
    noisy = [np.clip(image + rng.normal(0, s, image.shape), 0, 255).astype(np.uint8) for s in (3, 12, 40)]
    ref = np.stack([image] * 3)
    batch = compute(ref, np.stack(noisy), EIGHT)
    single = compute(image, noisy[2], EIGHT)
    for name in EIGHT:
        # 1e-5: the calls may take different paths (NumPy float64 on a shape's first call, the float32 graph on
        # a repeated one; up to 5e-6 apart), depending on the shapes this process met before
        np.testing.assert_allclose(single[name], batch[name][2:3], rtol=0, atol=1e-5, err_msg=name)
    for name in EIGHT:  # more noise, worse score (monotone in the right direction)
        order = np.argsort(batch[name])
        expected = [2, 1, 0] if _perfect(name) == 1.0 else [0, 1, 2]
        assert list(order) == expected, f"{name}: {batch[name]}"


def test_iwssim_is_asymmetric_and_mdsi_order_matters(photo):
    """IW-SSIM fits its statistics on the reference; swapping arguments must change the score."""
    from deepfl.fr import compute

    a = _photo_192(photo)
    b = np.clip(a * 0.6 + np.random.default_rng(1).normal(0, 25, a.shape), 0, 255).astype(np.uint8)
    forward = compute(a, b, ["iwssim", "mdsi"])
    backward = compute(b, a, ["iwssim", "mdsi"])
    assert abs(forward["iwssim"][0] - backward["iwssim"][0]) > 1e-3
    assert abs(forward["mdsi"][0] - backward["mdsi"][0]) > 1e-6


# --------------------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------------------


def test_bad_inputs_raise_value_error_with_reason(small_photo):
    from deepfl.fr import compute, metric_function

    with pytest.raises(ValueError, match="shapes differ"):
        compute(small_photo, small_photo[:-1], ["ssim"])
    with pytest.raises(ValueError, match="uint8"):
        compute(small_photo.astype(np.float32), small_photo.astype(np.float32), ["ssim"])
    with pytest.raises(ValueError, match="HxWx3"):
        compute(small_photo[..., 0], small_photo[..., 0], ["ssim"])
    # A user walk: float, gray and RGBA images were refused without saying what to pass instead.
    unit = small_photo / 255.0
    with pytest.raises(ValueError, match=r"^ref: .*float64 \(values in 0\.\.1: pass \(x \* 255\)\.round\(\)\.astype"):
        compute(unit, unit, ["ssim"])
    with pytest.raises(ValueError, match=r"^dist: .*float32 \(values in 0\.\.255: pass x\.round\(\)\.astype"):
        compute(small_photo, small_photo.astype(np.float32), ["ssim"])
    gray = small_photo[..., 1]
    with pytest.raises(ValueError, match=r"shape \(96, 128\) \(a gray image: .*np\.dstack\(\[x, x, x\]\)"):
        compute(gray, gray, ["ssim"])
    stacked = np.dstack([gray, gray, gray])  # the remedy the message names is accepted
    assert compute(stacked, np.clip(stacked.astype(int) + 9, 0, 255).astype(np.uint8), ["ssim"])["ssim"][0] < 1
    rgba = np.dstack([small_photo, np.full(gray.shape, 255, np.uint8)])
    with pytest.raises(ValueError, match=r"shape \(96, 128, 4\) \(RGBA: drop the alpha channel, x\[\.\.\., :3\]\)"):
        compute(rgba, rgba, ["ssim"])
    for name in ("msssim", "iwssim"):  # 96x128 < 161, the size five scales of an 11x11 window need
        with pytest.raises(ValueError, match=f"{name}: images of 128x96 pixels \\(width x height\\) are too small"):
            compute(small_photo, small_photo, [name])
    both = r"^msssim, iwssim: images of 128x96 .* they need at least 161 pixels per side \(leave them out of metrics "
    with pytest.raises(ValueError, match=both):
        compute(small_photo, small_photo)  # every metric too small named at once, not only the first to fail
    with pytest.raises(ValueError, match="sr_sim: .*too small"):
        compute(small_photo[:32, :32], small_photo[:32, :32], ["sr_sim"])
    with pytest.raises(ValueError, match="ssim: .*too small"):
        compute(small_photo[:8, :8], small_photo[:8, :8], ["ssim"])
    for name in ("fsim", "vsi", "mdsi", "gmsd"):
        with pytest.raises(ValueError, match=f"{name}: .*too small"):
            compute(small_photo[:2, :2], small_photo[:2, :2], [name])
    empty = small_photo[None][:0]  # a user walk got "cannot reshape array of size 0 into shape (0,newaxis)"
    for ref_index in (None, []):
        with pytest.raises(ValueError, match=r"^ref: an empty batch \(shape \(0, 96, 128, 3\)\); give at least one"):
            compute(empty, empty, ["ssim"], ref_index=ref_index)
    fn = metric_function("gmsd")
    with pytest.raises(ValueError, match="gmsd: ref must be NxHxWx3"):
        fn(np.zeros((1, 8, 8, 1), np.float32), np.zeros((1, 8, 8, 1), np.float32))


# --------------------------------------------------------------------------------------------------------------
# MATLAB helpers
# --------------------------------------------------------------------------------------------------------------


def test_rgb2gray_equals_matlab_double_rounding_for_all_colours():
    import tensorflow as tf

    from deepfl.fr.functional.colour import rgb2gray

    v = np.arange(256**3, dtype=np.int64)
    rgb = np.stack([v >> 16, (v >> 8) & 255, v & 255], axis=-1).astype(np.float64)
    expected = np.floor(rgb @ np.array([0.298936021293775, 0.587043074451121, 0.114020904255103]) + 0.5)
    ours = rgb2gray(tf.constant(rgb.reshape(1, 4096, 4096, 3), tf.float32)).numpy().reshape(-1)
    assert np.count_nonzero(ours != expected) == 0


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_numpy_rgb2gray_equals_matlab_double_rounding_for_all_colours(dtype):
    from deepfl.fr.uncompiled import functional

    v = np.arange(256**3, dtype=np.int64)
    rgb = np.stack([v >> 16, (v >> 8) & 255, v & 255], axis=-1)
    expected = np.floor(rgb @ np.array([0.298936021293775, 0.587043074451121, 0.114020904255103]) + 0.5)
    ours = functional.rgb2gray(rgb.astype(dtype).reshape(2, 2048, 4096, 3)).reshape(-1)
    assert ours.dtype == np.float64
    assert np.count_nonzero(ours != expected) == 0


def test_numpy_rgb2gray_keeps_nan_and_clips_out_of_range_values():
    from deepfl.fr.uncompiled import functional

    rgb = np.array([[[[np.nan, 1, 2], [np.inf, 0, 0], [-np.inf, 0, 0], [300, 300, 300], [-5, -5, -5]]]], np.float32)
    gray = functional.rgb2gray(rgb[:, :, ::2])  # a strided view, as the strips of ADD-GSIM are views
    np.testing.assert_array_equal(gray, [[[np.nan, 0.0, 0.0]]])
    np.testing.assert_array_equal(functional.rgb2gray(rgb), [[[np.nan, 255.0, 0.0, 255.0, 0.0]]])


@pytest.mark.parametrize("factor", [2, 3, 4])
@pytest.mark.parametrize("padding", ["zeros", "symmetric"])
@pytest.mark.parametrize("shape", [(13, 17), (12, 16), (24, 36)])  # multiples of the factor too (1080x1920, f = 4)
def test_box_downsample_matches_conv2_and_imfilter_conventions(factor, padding, shape):
    import tensorflow as tf

    from deepfl.fr.functional.filters import box_downsample
    from deepfl.fr.uncompiled import functional

    rng = np.random.default_rng(factor)
    x = rng.random(shape)
    # MATLAB: centre of an f x f kernel at floor((f+1)/2), zero ('conv2 same') or symmetric ('imfilter') border.
    before = (factor - 1) // 2
    mode = "constant" if padding == "zeros" else "symmetric"
    padded = np.pad(x, ((before, factor), (before, factor)), mode=mode)
    filtered = np.array(
        [[padded[i : i + factor, j : j + factor].mean() for j in range(x.shape[1])] for i in range(x.shape[0])]
    )
    expected = filtered[::factor, ::factor]
    ours = box_downsample(tf.constant(x[None, :, :, None]), factor, padding).numpy()[0, :, :, 0]
    np.testing.assert_allclose(ours, expected, atol=1e-12)
    np.testing.assert_allclose(functional.box_downsample(x[None], factor, padding)[0], expected, atol=1e-12)


def test_imresize_matrix_properties_and_known_values():
    from deepfl.fr.functional.resize import imresize_matrix

    m = imresize_matrix(8, 4, "bilinear")  # halving with antialiasing: taps 1/8, 3/8, 3/8, 1/8
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    np.testing.assert_allclose(m[1, 1:5], [0.125, 0.375, 0.375, 0.125])
    np.testing.assert_allclose(m[0, :3], [0.5, 0.375, 0.125])  # mirrored tap folded onto the first pixel
    up = imresize_matrix(4, 8, "bicubic")
    np.testing.assert_allclose(up.sum(axis=1), 1.0)
    np.testing.assert_allclose(up @ np.ones(4), np.ones(8))


@pytest.mark.parametrize("shape", [(48, 64, 96, 128), (49, 63, 97, 125), (50, 60, 99, 119)])
def test_iwssim_enlarged_parent_matrices_equal_imenlarge2(shape):
    import tensorflow as tf

    from deepfl.fr._iwssim import enlarged_parent, imenlarge2

    h, w, rows, cols = shape
    parent = tf.constant(np.random.default_rng(h).normal(0, 20, (2, h, w, 1)), tf.float32)
    expected = imenlarge2(parent)[:, :rows, :cols, 0][:, 1 : rows - 1, 1 : cols - 1]
    np.testing.assert_allclose(enlarged_parent(parent, rows, cols), expected, rtol=0, atol=1e-4)


def test_pow_nonneg_matches_numpy_power_including_zero():
    import tensorflow as tf

    from deepfl.fr.functional.arithmetic import pow_nonneg

    x = np.concatenate([[0.0, 1e-30, 1.0], np.random.default_rng(0).uniform(0, 500, 1000)]).astype(np.float32)
    for p in (0.02, 0.25, 0.4, 1 / 3, 2.4):
        np.testing.assert_allclose(
            pow_nonneg(tf.constant(x), p).numpy(), np.power(x.astype(np.float64), p), rtol=1e-5, atol=1e-37
        )  # float32 underflow of 1e-30 ** 2.4


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

    from deepfl.fr._iwssim import laplacian_pyramid

    image = np.random.default_rng(shape[0]).uniform(0, 255, shape)
    ours = laplacian_pyramid(tf.constant(image[None, :, :, None]), 3, tf.float64)
    for band, expected in zip(ours, _numpy_lpyr(image, 3)):
        np.testing.assert_allclose(np.asarray(band)[0, :, :, 0], expected, rtol=0, atol=1e-9)


def test_a_list_of_images_of_different_sizes_is_refused_naming_ref():
    """NumPy's "inhomogeneous shape" named neither argument."""
    from deepfl.fr import compute

    images = [np.zeros((64, 64, 3), np.uint8), np.zeros((48, 64, 3), np.uint8)]
    with pytest.raises(ValueError, match=r"ref: images of different sizes \(48x64x3, 64x64x3\) cannot form one batch"):
        compute(images, images, "ssim")
