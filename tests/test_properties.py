"""Property-based invariants (hypothesis) of the two libraries every job rests on.

FR metrics (`deepfl.fr`): each gives its perfect value (1, or 0 for the distance-like MDSI and GMSD) on
identical images and a finite value on any pair of valid uint8 images, including flat, noisy and
saturated ones; SFF gives NaN where the reference is flat grey, as `SFF.m` does. Distortions
(`deepfl.distortions.distort`): every type and level keeps the shape and dtype, and the same seed gives the same
bytes. Examples are few and images small (fixed size per metric: the first example
runs the metric's NumPy form, the later ones its compiled graph); `derandomize=True` makes every run draw the
same examples.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepfl.fr import LOWER_IS_BETTER, METRICS

pytestmark = pytest.mark.filterwarnings("ignore:The recursion limit will not be reset")

PROFILE = dict(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Metrics are traced per image size, so each metric uses one fixed size. Multi-scale metrics (five dyadic
# scales of an 11x11 window in the MATLAB originals) need larger images.
METRIC_SIZE = {"msssim": (192, 192), "iwssim": (192, 192)}
DEFAULT_METRIC_SIZE = (64, 80)


def _photo() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@st.composite
def images(draw, height: int, width: int) -> np.ndarray:
    """Any valid uint8 RGB image of the given size: photo crops, flat colours, noise, ramps, or mixtures."""
    kind = draw(st.sampled_from(["photo", "flat", "noise", "ramp", "photo_noise", "binary"]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if kind == "flat":
        colour = draw(st.tuples(*[st.integers(0, 255)] * 3))
        return np.broadcast_to(np.array(colour, np.uint8), (height, width, 3)).copy()
    if kind == "noise":
        return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if kind == "ramp":
        ramp = np.linspace(0, 255, width)[None, :, None] * np.ones((height, 1, 3))
        return np.round(ramp).astype(np.uint8)
    if kind == "binary":
        return (rng.integers(0, 2, (height, width, 1)) * 255).repeat(3, axis=2).astype(np.uint8)
    photo = _photo()
    top = draw(st.integers(0, photo.shape[0] - height))
    left = draw(st.integers(0, photo.shape[1] - width))
    crop = photo[top : top + height, left : left + width].astype(np.int16)
    if kind == "photo_noise":
        crop = crop + rng.integers(-40, 41, crop.shape)
    return np.clip(crop, 0, 255).astype(np.uint8)


def _perfect(name: str) -> float:
    return 0.0 if name in LOWER_IS_BETTER else 1.0


@pytest.mark.parametrize("name", METRICS)
def test_metric_perfect_on_identical_and_finite_on_any_pair(name):
    from deepfl.fr import compute

    height, width = METRIC_SIZE.get(name, DEFAULT_METRIC_SIZE)

    @settings(max_examples=6, **PROFILE)
    @given(ref=images(height, width), dist=images(height, width))
    def check(ref, dist):
        scores = compute(np.stack([ref, ref]), np.stack([ref, dist]), [name])[name]
        assert scores.shape == (2,)
        if name == "sff" and np.ptp(ref) == 0:  # flat grey: SFF.m's empty selection (a flat colour responds)
            assert np.all(np.isnan(scores)), f"sff: flat reference scored {scores}, SFF.m gives NaN"
            return
        assert np.all(np.isfinite(scores)), f"{name}: non-finite score {scores}"
        assert scores[0] == pytest.approx(_perfect(name), abs=1e-4), f"{name}: identical images scored {scores[0]}"

    check()


# ---------------------------------------------------------------------------------------------------------
# Distortions
# ---------------------------------------------------------------------------------------------------------


DIST_IDS = list(range(1, 26))


@pytest.mark.parametrize("dist_type", DIST_IDS)
def test_distortion_keeps_shape_dtype_and_is_seeded(dist_type):
    from deepfl import distortions

    @settings(max_examples=4, **PROFILE)
    @given(
        level=st.integers(1, 5),
        height=st.integers(48, 70),
        width=st.integers(48, 70),
        seed=st.integers(0, 2**31 - 1),
        data=st.data(),
    )
    def check(level, height, width, seed, data):
        image = data.draw(images(height, width))
        before = image.copy()
        out = distortions.distort(image, dist_type, level, rng=seed)
        assert isinstance(out, np.ndarray) and out.dtype == np.uint8, (dist_type, level, out.dtype)
        assert out.shape == image.shape, (dist_type, level, out.shape, image.shape)
        assert np.array_equal(image, before), f"distortion {dist_type} modified its input in place"
        again = distortions.distort(image, dist_type, level, rng=seed)
        assert np.array_equal(out, again), f"distortion {dist_type} level {level}: same seed, different output"
        with_generator = distortions.distort(image, dist_type, level, rng=np.random.default_rng(seed))
        assert with_generator.shape == image.shape and with_generator.dtype == np.uint8
        again_generator = distortions.distort(image, dist_type, level, rng=np.random.default_rng(seed))
        assert np.array_equal(with_generator, again_generator)

    check()


def test_distortion_names_address_the_same_function():
    from deepfl import distortions

    image = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    for dist_id, name in distortions.DISTORTION_NAMES.items():
        assert np.array_equal(distortions.distort(image, dist_id, 3, rng=5), distortions.distort(image, name, 3, rng=5))


@pytest.mark.parametrize(
    "bad", [dict(dist_type=0), dict(dist_type=26), dict(dist_type="no_such"), dict(level=0), dict(level=6)]
)
def test_distortion_rejects_bad_arguments_naming_them(bad):
    from deepfl import distortions

    args = dict(image=np.zeros((48, 48, 3), np.uint8), dist_type=1, level=1)
    args.update(bad)
    argument = next(iter(bad))
    with pytest.raises(ValueError, match=argument):
        distortions.distort(args["image"], args["dist_type"], args["level"], rng=0)
