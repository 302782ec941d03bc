"""The 25 KADID-10k / KADIS-700k distortions, following the official MATLAB generator `imdist_generator.m`.

`distort(image, dist_type, level, rng)` reproduces the generator's pipeline: the uint8 input is min-max mapped
to [0, 1] (`mapmm`), distorted in double precision with the level's parameter from the official table, min-max
mapped again, and written as uint8 (round(255*x), as `imwrite` does). Random types draw from `rng` (an int
seed or a numpy Generator): the same seed gives the same bytes.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from deepfl.distortions import blur, color, compression, noise, spatial, tone
from deepfl.distortions._ranges import Source, input_levels, mapmm_to_uint8, take_levels


class Distortion(NamedTuple):
    """One KADID distortion: id, snake_case name, function, the 5 level parameters, whether it draws randoms."""

    id: int
    name: str
    function: Callable[[np.ndarray, float, np.random.Generator], np.ndarray]
    levels: tuple
    random: bool
    matlab: str
    # Per-sample form `(levels, counts, parameter) -> values` for types whose output sample depends only on the
    # input sample (and on global statistics of the histogram `counts`): run on the 256 levels, then looked up.
    per_level: Callable[[np.ndarray, np.ndarray, float], np.ndarray] | None = None
    # Whether `function` takes `source=` (the uint8 input and its 256 levels) to run per-sample steps on levels.
    uses_source: bool = False


_TABLE = [
    Distortion(1, "gaussian_blur", blur.gaussian_blur, (0.1, 0.5, 1, 2, 5), False, "imblurgauss"),
    Distortion(2, "lens_blur", blur.lens_blur, (1, 2, 4, 6, 8), False, "imblurlens"),
    Distortion(3, "motion_blur", blur.motion_blur, (1, 2, 4, 6, 10), True, "imblurmotion"),
    Distortion(
        4, "color_diffusion", color.color_diffusion, (1, 3, 6, 8, 12), False, "imcolordiffuse", uses_source=True
    ),
    Distortion(5, "color_shift", color.color_shift, (1, 3, 6, 8, 12), True, "imcolorshift"),
    Distortion(6, "color_quantization", color.color_quantization, (64, 48, 32, 16, 8), False, "imcolorquantize"),
    Distortion(7, "color_saturation_1", color.color_saturation_hsv, (0.4, 0.2, 0.1, 0, -0.4), False, "imcolorsaturate"),
    Distortion(
        8, "color_saturation_2", color.color_saturation_lab, (1, 2, 3, 6, 9), False, "imsaturate", uses_source=True
    ),
    Distortion(9, "jpeg2000", compression.jpeg2000, (16, 32, 45, 120, 400), False, "imcompressjp2k"),
    Distortion(10, "jpeg", compression.jpeg, (43, 36, 24, 7, 4), False, "imcompressjpeg"),
    Distortion(11, "white_noise", noise.white_noise, (0.001, 0.002, 0.003, 0.005, 0.01), True, "imnoisegauss"),
    Distortion(
        12,
        "white_noise_color_component",
        noise.white_noise_color_component,
        (0.0001, 0.0005, 0.001, 0.002, 0.003),
        True,
        "imnoisecolorcomp",
    ),
    Distortion(13, "impulse_noise", noise.impulse_noise, (0.001, 0.005, 0.01, 0.02, 0.03), True, "imnoiseimpulse"),
    Distortion(
        14,
        "multiplicative_noise",
        noise.multiplicative_noise,
        (0.001, 0.005, 0.01, 0.02, 0.05),
        True,
        "imnoisemultiplicative",
    ),
    Distortion(15, "denoise", noise.denoise, (0.01, 0.03, 0.05, 0.1, 0.15), True, "imdenoise"),
    Distortion(16, "brighten", tone.brighten, (0.1, 0.2, 0.4, 0.7, 1.1), False, "imbrighten", uses_source=True),
    Distortion(17, "darken", tone.darken, (0.05, 0.1, 0.2, 0.4, 0.8), False, "imdarken", per_level=tone.darken_levels),
    Distortion(
        18,
        "mean_shift",
        tone.mean_shift,
        (0.15, 0.08, 0, -0.08, -0.15),
        False,
        "immeanshift",
        per_level=tone.mean_shift_levels,
    ),
    Distortion(19, "jitter", spatial.jitter, (0.05, 0.1, 0.2, 0.5, 1), True, "imjitter"),
    Distortion(
        20, "non_eccentricity_patch", spatial.non_eccentricity_patch, (20, 40, 60, 80, 100), True, "imnoneccentricity"
    ),
    Distortion(21, "pixelate", spatial.pixelate, (0.01, 0.05, 0.1, 0.2, 0.5), False, "impixelate"),
    Distortion(
        22,
        "quantization",
        spatial.quantization,
        (20, 16, 13, 10, 7),
        False,
        "imnoisequantize",
        per_level=spatial.quantization_levels,
    ),
    Distortion(23, "color_block", spatial.color_block, (2, 4, 6, 8, 10), True, "imcolorblock"),
    Distortion(24, "high_sharpen", spatial.high_sharpen, (1, 2, 3, 6, 12), False, "imsharpenHi", uses_source=True),
    Distortion(
        25,
        "contrast_change",
        tone.contrast_change,
        (0.3, 0.15, 0, -0.4, -0.6),
        False,
        "imcontrastc",
        per_level=tone.contrast_change_levels,
    ),
]

DISTORTIONS: dict[int, Distortion] = {d.id: d for d in _TABLE}
DISTORTION_NAMES: dict[int, str] = {d.id: d.name for d in _TABLE}
_BY_NAME: dict[str, int] = {d.name: d.id for d in _TABLE}
NUM_TYPES = len(_TABLE)
NUM_LEVELS = 5
# Smallest height/width every type handles (non-eccentricity needs 16 px margins plus a 16 px patch).
MIN_SIZE = 48


def resolve_type(dist_type: int | str) -> int:
    """Returns the KADID id (1..25) of a type given by id or by name (snake_case, or with spaces or hyphens in any
    case: "lens_blur", "Lens Blur", "lens-blur"); ValueError names the argument."""
    if isinstance(dist_type, str):
        key = "_".join(dist_type.strip().lower().replace("-", " ").replace("_", " ").split())
        if key.isdigit():
            return resolve_type(int(key))
        if key not in _BY_NAME:
            close = difflib.get_close_matches(key, _BY_NAME, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"dist_type: unknown distortion name {dist_type!r}; {hint}known: {sorted(_BY_NAME)}")
        return _BY_NAME[key]
    if isinstance(dist_type, (bool, np.bool_)) or not isinstance(dist_type, (int, np.integer)):
        raise ValueError(f"dist_type: must be an int 1..{NUM_TYPES} or a name, got {type(dist_type).__name__}")
    if not 1 <= int(dist_type) <= NUM_TYPES:
        raise ValueError(f"dist_type: must be in 1..{NUM_TYPES}, got {dist_type}")
    return int(dist_type)


def _check_level(level) -> int:
    if isinstance(level, (bool, np.bool_)) or not isinstance(level, (int, np.integer)):
        raise ValueError(f"level: must be an int 1..{NUM_LEVELS}, got {type(level).__name__}")
    if not 1 <= int(level) <= NUM_LEVELS:
        raise ValueError(f"level: must be in 1..{NUM_LEVELS}, got {level}")
    return int(level)


def _check_image(image) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image: must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image: must have dtype uint8, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        alpha = image.ndim == 3 and image.shape[2] == 4
        hint = (
            "drop the alpha channel: image[..., :3]"
            if alpha
            else "one image at a time: distort(images[i], ...)"
            if image.ndim == 4
            else "replicate gray to 3 channels"
        )
        raise ValueError(f"image: must be HxWx3 RGB, got shape {image.shape} ({hint})")
    if image.shape[0] < MIN_SIZE or image.shape[1] < MIN_SIZE:
        raise ValueError(f"image: must be at least {MIN_SIZE}x{MIN_SIZE}, got {image.shape[0]}x{image.shape[1]}")
    return image


def make_rng(rng) -> np.random.Generator:
    """A numpy Generator from None (fresh entropy), an int seed or a Generator; ValueError names `rng` otherwise."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        if rng is not None and rng < 0:
            raise ValueError(f"rng: seed must be >= 0, got {rng}")
        return np.random.default_rng(rng)
    raise ValueError(f"rng: must be None, an int seed or a numpy Generator, got {type(rng).__name__}")


def distort(
    image: np.ndarray, dist_type: int | str, level: int, rng: int | np.random.Generator | None = None
) -> np.ndarray:
    """Applies KADID distortion `dist_type` (1..25 or name) at `level` (1..5) to an HxWx3 uint8 RGB image.

    Follows `imdist_generator.m`: input `mapmm` to [0, 1], the distortion in float64, output `mapmm`, then
    uint8 by rounding. Per-sample steps run on the 256 input levels and are looked up (same values). Returns
    a new HxWx3 uint8 array; images must be at least MIN_SIZE on each side.
    """
    image = _check_image(image)
    type_id = resolve_type(dist_type)
    level = _check_level(level)
    generator = make_rng(rng)
    spec = DISTORTIONS[type_id]
    parameter = spec.levels[level - 1]
    levels = input_levels(image)  # mapmm of the input, per uint8 level (exactly the per-sample values)
    if spec.per_level is not None:  # output sample = f(input sample): compute f on the levels actually present
        counts = np.bincount(image.ravel(), minlength=256)
        values = spec.per_level(levels, counts, parameter)
        present = counts > 0
        table = np.zeros(256, dtype=np.uint8)
        table[present] = mapmm_to_uint8(values[present])
        return take_levels(table, image)
    x = take_levels(levels, image)
    if spec.uses_source:
        out = spec.function(x, parameter, generator, source=Source(image, levels))
    else:
        out = spec.function(x, parameter, generator)
    return mapmm_to_uint8(out)


__all__ = [
    "DISTORTIONS",
    "DISTORTION_NAMES",
    "Distortion",
    "MIN_SIZE",
    "NUM_LEVELS",
    "NUM_TYPES",
    "distort",
    "make_rng",
    "resolve_type",
]
