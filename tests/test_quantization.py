"""Tests of deepfl.distortions.quantization (types 6 and 22) against plain slow references of MATLAB's procedures
(tests/helpers_quantization.py), values worked out by hand and MATLAB's documented fminsearch result; plus the
distortions' determinism, shape, dtype and strength order."""

import itertools
import math

import numpy as np
import pytest

import helpers_quantization as ref
from deepfl import distortions
from deepfl.distortions import color, quantization, spatial
from deepfl.distortions._kernels import quantization as kernels
from deepfl.distortions._nelder_mead import fminsearch


def _rosenbrock(x):
    return 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return 10 * math.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def photo(small_photo):
    return small_photo


@pytest.fixture(scope="module")
def crop(small_photo):
    """A 48x64 piece of the photo: big enough for every type, small enough for the Python references."""
    return np.ascontiguousarray(small_photo[20:68, 30:94])


# ---------------------------------------------------------------------------------------------- fminsearch


def test_fminsearch_reproduces_matlabs_documented_rosenbrock_minimum():
    # MATLAB's fminsearch documentation: from [-1.2, 1] the final function value is 8.17766e-10 at [1.0000 1.0000].
    x, value = fminsearch(_rosenbrock, [-1.2, 1.0])
    assert value == pytest.approx(8.17766e-10, rel=1e-5)
    np.testing.assert_allclose(x, [1.0, 1.0], atol=1e-4)


@pytest.mark.parametrize("case", ["rosenbrock", "zero_start", "otsu"])
def test_fminsearch_equals_the_plain_nelder_mead_reference(case, photo):
    counted = []
    if case == "rosenbrock":
        function, x0, tol_x = _rosenbrock, [-1.2, 1.0], 1e-4
    elif case == "zero_start":  # a zero coordinate takes the 0.00025 step
        function, x0, tol_x = (lambda x: (x[0] - 1) ** 2 + 2 * (x[1] + 0.5) ** 2 + (x[2] - 3) ** 4), [0.0, 1, 2], 1e-4
    else:  # multithresh's objective: +Inf outside the valid region, rounded steps inside
        pdf, _, _ = ref.otsu_pdf(photo.astype(float) / 255)
        function, x0, tol_x = (lambda t: ref.otsu_objective(pdf, t)), list(np.arange(1, 8) * 255 / 8), 1.0

    def tracked(x):
        counted.append(1)
        return function(x)

    x, value = fminsearch(tracked, x0, tol_x=tol_x)
    expected_x, expected_value = ref.nelder_mead(function, x0, tol_x=tol_x)
    assert value == expected_value
    np.testing.assert_array_equal(x, expected_x)
    assert len(counted) > 2 * len(x0)  # it searched


# --------------------------------------------------------------------------------------------- multithresh


def _cluster_image(rng: np.random.Generator, centres, shape=(30, 40, 3)) -> np.ndarray:
    labels = rng.integers(0, len(centres), shape)
    return np.clip(np.asarray(centres)[labels] + rng.normal(0, 0.03, shape), 0, 1)


@pytest.mark.parametrize("n", [3, 7, 10, 13, 16, 20])
def test_multithresh_follows_matlabs_procedure(n, photo):
    """fminsearch (TolX 1) of Otsu's criterion from linspace(0, 255, n + 2)(2:end-1), rounded, mapped back."""
    rng = np.random.default_rng(n)
    finite = []
    for values in (photo.astype(float) / 255 * 0.8 + 0.1, _cluster_image(rng, [0.1, 0.3, 0.35, 0.7, 0.9])):
        pdf, lo, hi = ref.otsu_pdf(values)
        start = [k * 255 / (n + 1) for k in range(1, n + 1)]
        raw, value = ref.nelder_mead(lambda t, pdf=pdf: ref.otsu_objective(pdf, t), start, tol_x=1.0)
        if math.isfinite(value):
            expected = [lo + math.copysign(math.floor(abs(t) + 0.5), t) / 255 * (hi - lo) for t in raw]
        else:  # every vertex had an empty class: MATLAB warns and maps back the last point unrounded
            expected = [lo + t / 255 * (hi - lo) for t in raw]
        finite.append(math.isfinite(value))
        np.testing.assert_array_equal(quantization.multithresh(values, n), expected)
    assert finite[0]  # the photo has a proper optimum at every n


def test_multithresh_reaches_the_exhaustive_optimum_on_separated_clusters():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, (30, 40, 3))
    values = (np.array([10, 80, 150, 240])[labels] + rng.integers(-3, 4, labels.shape)) / 255  # 28 levels
    pdf, lo, hi = ref.otsu_pdf(values)
    best, _ = ref.best_thresholds_brute_force(pdf, 3)
    bins = (quantization.multithresh(values, 3) - lo) / (hi - lo) * 255
    assert -ref.otsu_objective(pdf, bins) == pytest.approx(best, rel=1e-12)


def test_multithresh_two_thresholds_are_the_mean_of_the_exhaustive_maxima():
    # MATLAB evaluates every pair for n = 2 and averages the positions of the maxima (here a flat gap).
    values = _cluster_image(np.random.default_rng(2), [0.2, 0.5, 0.85])
    pdf, lo, hi = ref.otsu_pdf(values)
    _, where = ref.best_thresholds_brute_force(pdf, 2, every_bin=True)
    assert len(where) > 1
    expected = [lo + float(np.mean(column)) / 255 * (hi - lo) for column in zip(*where)]
    np.testing.assert_allclose(quantization.multithresh(values, 2), expected, rtol=0, atol=1e-12)


def test_multithresh_from_level_counts_equals_from_pixels(photo):
    x = photo.astype(float) / 255
    levels = np.arange(256) / 255
    counts = np.bincount(photo.ravel(), minlength=256)
    for n in (7, 20):
        np.testing.assert_array_equal(quantization.multithresh(levels, n, counts), quantization.multithresh(x, n))


def test_multithresh_of_few_distinct_values_returns_matlabs_degenerate_thresholds():
    # Two distinct values, 3 thresholds: the values themselves, then the smallest positive integer not among them.
    values = np.array([0.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(quantization.multithresh(values, 3), [0.0, 1.0, 2.0])
    # A constant input has no histogram: its value, topped up with 1, 2, ...
    np.testing.assert_array_equal(quantization.multithresh(np.full(5, 0.5), 3), [0.5, 1.0, 2.0])


def test_imquantize_by_hand():
    values = np.array([0.1, 0.2, 0.3, 0.5, 0.9])
    np.testing.assert_array_equal(
        quantization.imquantize(values, np.array([0.2, 0.5]), [7.0, 8.0, 9.0]), [7.0, 7.0, 8.0, 8.0, 9.0]
    )


# ------------------------------------------------------------------------------------------ minimum variance


def test_minimum_variance_palette_by_hand():
    # Two colours: one box each, in split order (the cut is along red: ties go to red).
    image = np.zeros((4, 4, 3), np.uint8)
    image[:, 2:] = (200, 40, 90)
    np.testing.assert_array_equal(quantization.minimum_variance_palette(image, 2), [[0, 0, 0], [200, 40, 90]])
    # Colours in one 5-bit cell cannot be split: one entry, their channel means truncated ((10 + 13) // 2 = 11).
    image = np.array([[[10, 10, 10], [13, 13, 13]]] * 2, np.uint8)
    np.testing.assert_array_equal(quantization.minimum_variance_palette(image, 8), [[11, 11, 11]])


@pytest.mark.parametrize("seed", range(6))
def test_minimum_variance_palette_equals_the_plain_reference(seed, crop):
    rng = np.random.default_rng(seed)
    tiny = rng.integers(0, 256, (4, 5, 3)).astype(np.uint8)  # all float32 moments exact
    for colors in (2, 5, 12, 20):
        np.testing.assert_array_equal(quantization.minimum_variance_palette(tiny, colors), ref.wu_palette(tiny, colors))
    for colors in (8, 16, 64):
        piece = np.ascontiguousarray(np.rot90(crop, seed % 4)[: 40 + seed, : 40 + 2 * seed])
        np.testing.assert_array_equal(
            quantization.minimum_variance_palette(piece, colors), ref.wu_palette(piece, colors)
        )


# ------------------------------------------------------------------------------------------------- dither


@pytest.mark.parametrize("seed", range(8))
def test_inverse_colormap_equals_thomas_reference(seed):
    rng = np.random.default_rng(100 + seed)
    k = [2, 3, 8, 16, 32, 48, 64, 64][seed]
    palette = rng.integers(0, 256, (k, 3))
    if seed % 2:
        palette[k // 2] = palette[0]  # a repeated entry never takes a cell
    np.testing.assert_array_equal(kernels.inverse_colormap(palette), ref.thomas_inverse_colormap(palette))


def test_inverse_colormap_is_the_nearest_entry_where_the_scans_reach():
    # Two entries (a plane splits the cube) and the 8 corners: every cell takes its nearest entry, first on ties.
    corners = np.array([[r, g, b] for r in (0, 255) for g in (0, 255) for b in (0, 255)])
    for palette in (np.array([[30, 200, 90], [220, 10, 140]]), corners):
        np.testing.assert_array_equal(kernels.inverse_colormap(palette), ref.nearest_inverse_colormap(palette))


def test_inverse_colormap_keeps_matlabs_unreached_cells():
    # Thomas's scans stop at the first empty row: where a colour's region has a gap along a scan, the cells past
    # it keep an earlier entry. MATLAB's dither has the same table; the nearest-entry table differs there.
    palette = np.random.default_rng(5).integers(0, 256, (48, 3))
    table = kernels.inverse_colormap(palette)
    nearest = ref.nearest_inverse_colormap(palette)
    assert 0 < np.count_nonzero(table != nearest) < 50
    np.testing.assert_array_equal(table, ref.thomas_inverse_colormap(palette))


@pytest.mark.parametrize("seed", range(4))
def test_dither_equals_the_pixel_by_pixel_reference(seed, crop):
    rng = np.random.default_rng(seed)
    image = crop if seed < 2 else rng.integers(0, 256, (17, 23, 3)).astype(np.uint8)
    palette = quantization.minimum_variance_palette(image, [8, 32, 5, 64][seed])
    colormap = palette / 255.0
    levels = (colormap * 255 + 0.5).astype(np.int64)
    np.testing.assert_array_equal(levels, palette)  # double(map)/255 gives back the uint8 palette
    table = ref.thomas_inverse_colormap(levels)
    np.testing.assert_array_equal(quantization.dither(image, colormap), ref.dither(image, levels, table))


def test_dither_by_hand():
    # Grey 100 against black and white, worked out by hand. Down a column (7/16 of each error goes to the next
    # pixel): 100 -> black (cell centre 100), error 100, next 100 + 44 = 144 -> white (centre 148), error -111,
    # next 100 - 49 = 51 -> black, error 51, next 100 + 22 = 122 -> black (centre 124 < 127.5).
    colormap = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    np.testing.assert_array_equal(quantization.dither(np.full((4, 1, 3), 100, np.uint8), colormap)[:, 0], [0, 1, 0, 0])
    # Along a row only the 5/16 share moves right: 100 -> black, 131 -> white (centre 132), 61 -> black, 119 -> black.
    np.testing.assert_array_equal(quantization.dither(np.full((1, 4, 3), 100, np.uint8), colormap)[0], [0, 1, 0, 0])
    # A flat grey keeps its mean level over a large area.
    x = quantization.dither(np.full((64, 64, 3), 100, np.uint8), colormap)
    assert abs(x.mean() * 255 - 100) < 2


# ---------------------------------------------------------------------------------------- types 6 and 22


@pytest.mark.parametrize("colors", [64, 8])
def test_type6_equals_the_reference_pipeline(colors, crop):
    """imcolorquantize: rgb2ind (im2uint8, cq palette, dither) then ind2rgb = double(palette)/255 per pixel."""
    x = crop / 255.0
    palette = ref.wu_palette(crop, colors)
    levels = palette.astype(np.int64)
    indices = ref.dither(crop, levels, ref.thomas_inverse_colormap(levels))
    np.testing.assert_array_equal(
        color.color_quantization(x, colors, np.random.default_rng(0)), palette[indices] / 255.0
    )


def test_type22_on_levels_equals_on_pixels(photo):
    """distort runs type 22 on the 256 input levels with their counts: the same values as on the pixels."""
    x = photo / 255.0
    levels = np.arange(256) / 255.0
    counts = np.bincount(photo.ravel(), minlength=256)
    for n in distortions.DISTORTIONS[22].levels:
        np.testing.assert_array_equal(
            spatial.quantization_levels(levels, counts, n)[photo], spatial.quantization(x, n, np.random.default_rng(0))
        )


@pytest.mark.parametrize("dist_type", [6, 22])
def test_types_6_and_22_are_deterministic_uint8_and_stronger_with_level(dist_type, photo):
    outputs = [distortions.distort(photo, dist_type, level) for level in range(1, 6)]
    for level, out in enumerate(outputs, start=1):
        assert out.dtype == np.uint8 and out.shape == photo.shape
        np.testing.assert_array_equal(distortions.distort(photo, dist_type, level, rng=123), out)
    quality = [_psnr(out, photo) for out in outputs]
    assert all(a > b for a, b in itertools.pairwise(quality)), quality
