"""The FR metric table (`deepfl.fr.specs`) and the package surface: the eleven functions through `__all__`, no
TensorFlow on import, each metric's minimum size enforced and derived from its own constants."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from deepfl.fr import LOWER_IS_BETTER, METRICS, SPEC_BY_NAME, SPECS


def test_metrics_order_and_direction_come_from_the_table():
    assert METRICS == (
        "ssim",
        "msssim",
        "iwssim",
        "mdsi",
        "vsi",
        "fsim",
        "gmsd",
        "sff",
        "scqi",
        "add_gsim",
        "sr_sim",
    )  # the KADIS-700k column order: a contract
    assert tuple(spec.name for spec in SPECS) == METRICS
    assert LOWER_IS_BETTER == {"mdsi", "gmsd"}
    assert all(spec.min_size >= 1 and spec.source for spec in SPECS)


def test_import_loads_no_tensorflow_and_exports_the_functions():
    code = (
        "import sys, deepfl.fr as fr; assert 'tensorflow' not in sys.modules, 'tf loaded'; "
        "assert set(fr.METRICS) <= set(fr.__all__); "
        "import deepfl.fr._ssim; from deepfl.fr import ssim, sff; "
        "assert callable(ssim) and ssim.__name__ == 'ssim' and sff.__name__ == 'sff'; "
        "assert fr.ssim is ssim and fr.metric_function('ssim') is ssim; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_min_sizes_follow_from_each_metric_s_constants():
    from deepfl.fr import _add_gsim, _iwssim, _msssim, _scqi, _sff, _sr_sim, _ssim

    coarsest = (_ssim.WINDOW_SIZE - 1) * 2 ** (_msssim.LEVELS - 1) + 1  # one window at the fifth scale
    assert SPEC_BY_NAME["msssim"].min_size == coarsest
    assert SPEC_BY_NAME["iwssim"].min_size == (_ssim.WINDOW_SIZE - 1) * 2 ** (_iwssim.LEVELS - 1) + 1
    assert SPEC_BY_NAME["ssim"].min_size == _ssim.WINDOW_SIZE
    assert SPEC_BY_NAME["sr_sim"].min_size == round(_sr_sim.GAUSS_SIZE / _sr_sim.SCALE)
    assert SPEC_BY_NAME["scqi"].min_size == _scqi.BLOCK
    assert SPEC_BY_NAME["add_gsim"].min_size == 4 * 2 ** (_add_gsim.NUM_SCALES - 1)
    patch = int(round((_sff._default_basis().shape[1] // 3) ** 0.5))
    assert SPEC_BY_NAME["sff"].min_size == patch + 1


@pytest.mark.parametrize("name", METRICS)
def test_each_metric_refuses_one_pixel_below_its_minimum(name):
    from deepfl.fr import compute

    side = SPEC_BY_NAME[name].min_size - 1
    if side < 1:
        pytest.skip("no image is smaller")
    image = np.zeros((side, side + 20, 3), np.uint8)
    with pytest.raises(ValueError, match=f"{name}: .*too small.*{side + 1}"):
        compute(image, image, [name])


def test_float_input_scaled_to_unit_range_warns_once_per_metric(caplog, monkeypatch):
    # The walk of session 18: ssim on images scaled to [0, 1] gave 0.9998 for a pair at 0.9155, silently.
    import tensorflow as tf

    from deepfl.fr import compute, metric_function
    from deepfl.fr.functional import validation

    monkeypatch.setattr(validation, "_WARNED_UNIT_RANGE", set())
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (1, 48, 64, 3)).astype(np.uint8)
    dist = np.clip(ref + rng.integers(-30, 31, ref.shape), 0, 255).astype(np.uint8)
    gmsd = metric_function("gmsd")
    with caplog.at_level("WARNING", logger="deepfl"):
        gmsd(tf.constant(ref, tf.float32), tf.constant(dist, tf.float32))  # [0, 255]: fine
        compute(np.minimum(ref, 1), np.minimum(dist, 1), ["gmsd"])  # uint8 near-black: integers, fine
        assert not caplog.records
        for _ in range(2):
            gmsd(tf.constant(ref / 255, tf.float32), tf.constant(dist / 255, tf.float32))
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "gmsd: the images' values lie within [0, 1]; the metric functions take RGB in [0, 255] (multiply by 255)"
    ]


@pytest.mark.parametrize("name", METRICS)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_each_metric_names_nan_or_infinite_input(name, bad):
    # Left since session 21: NaN gave NaN without a word (ADD-GSIM failed in NumPy's bincount), and an infinite
    # pixel a plausible score (SSIM 0.99, GMSD, ADD-GSIM).
    from deepfl.fr import metric_function

    side = max(SPEC_BY_NAME[name].min_size, 32)
    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 255, (3, side, side + 8, 3)).astype(np.float32)
    dist = ref.copy()
    dist[2, 5, 7, 1] = bad
    kind = "NaN" if np.isnan(bad) else "infinite"
    with pytest.raises(ValueError, match=f"^{name}: dist image 2 holds {kind} values"):
        metric_function(name)(ref, dist)
    # with one reference shared by the three images: the reference checked whole, not only its first image
    with pytest.raises(ValueError, match=f"^{name}: ref image 1 holds {kind} values"):
        metric_function(name)(np.stack([ref[0], dist[2]]), ref, ref_index=[0, 1, 0])


def test_the_finiteness_check_is_skipped_only_for_images_converted_from_integers():
    import tensorflow as tf

    from deepfl.fr.functional import validation

    image = tf.constant(np.full((1, 8, 8, 3), np.nan, np.float32))
    with validation.converted_from_integers(np.zeros(3, np.uint8), np.zeros(3, np.int16)):
        validation._check_finite("ssim", image, image)  # taken as converted from integers: not looked at
    with validation.converted_from_integers(np.zeros(3, np.uint8), np.zeros(3, np.float32)):
        with pytest.raises(ValueError, match="ssim: ref image 0 holds NaN"):
            validation._check_finite("ssim", image, image)
    with pytest.raises(ValueError, match="ssim: ref image 0 holds NaN"):
        validation._check_finite("ssim", image, image)


def test_compute_and_the_label_job_skip_the_finiteness_check_for_their_uint8_images(monkeypatch):
    # a pass over every pixel for each metric would cost the label job about 3% of its pairs/s
    from deepfl import fr, labeling
    from deepfl.fr import running
    from deepfl.fr.functional import validation

    seen = []

    def spy(functions, ref, dist, ref_index=None):
        seen.append(validation._FROM_INTEGERS.get())
        return {name: np.zeros(len(dist)) for name in functions}

    monkeypatch.setattr(running, "score_metrics", spy)
    monkeypatch.setattr(labeling, "score_metrics", spy)
    image = np.zeros((2, 32, 32, 3), np.uint8)
    fr.compute(image, image, ["ssim"])
    labeling.score_batch({"ssim": None}, image[0], image)
    labeling.score_batch({"ssim": None}, image[0].astype(np.float32), image)
    assert seen == [True, True, False]
