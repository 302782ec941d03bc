"""One row per FR metric: its name, direction, the smallest image it scores and the original it follows.

The metric functions check their inputs against `min_size`, `deepfl.fr.LOWER_IS_BETTER` is derived from
`lower_is_better`, and jobs that pick image sizes (labeling, the demo) read `min_size` here. This module imports
no TensorFlow.
"""

from __future__ import annotations

from typing import NamedTuple


class MetricSpec(NamedTuple):
    """A full-reference metric: `name` (column of the KADIS-700k labels), whether lower scores mean better
    quality, the smallest height/width (pixels) it accepts, the original it reproduces, and where it has no
    value (NaN in the original too), for the label job's line on a skipped pair."""

    name: str
    lower_is_better: bool
    min_size: int
    source: str
    undefined_where: str = ""


# In the column order of the KADIS-700k release (`kadis700k_friqa.csv`).
SPECS: tuple[MetricSpec, ...] = (
    # 11x11 Gaussian window ('valid'); the automatic downsampling keeps >= 11 pixels for every size >= 11.
    MetricSpec("ssim", False, 11, "Wang, Bovik, Sheikh, Simoncelli 2004; Wang's ssim.m (2009)"),
    # Five scales of 2x downsampling must leave one 11x11 window: (11 - 1) * 2^4 + 1.
    MetricSpec("msssim", False, 161, "Wang, Simoncelli, Bovik 2003; Wang's msssim.m"),
    # A five-level Laplacian pyramid with the 11x11 window at its coarsest level: (11 - 1) * 2^4 + 1.
    MetricSpec("iwssim", False, 161, "Wang, Li 2011; Wang & Li's iwssim.m with matlabPyrTools"),
    # 3x3 Prewitt gradients.
    MetricSpec("mdsi", True, 3, "Nafchi, Shahkolaei, Hedjam, Cheriet 2016; Nafchi's MDSI.m"),
    # 3x3 Scharr gradients.
    MetricSpec("vsi", False, 3, "Zhang, Shen, Li 2014; Zhang's VSI.m with SDSP"),
    # 3x3 Scharr gradients.
    MetricSpec("fsim", False, 3, "Zhang, Zhang, Mou, Zhang 2011; Zhang's FeatureSIM.m (FSIMc output)"),
    # 3x3 Prewitt gradients.
    MetricSpec("gmsd", True, 3, "Xue, Zhang, Mou, Bovik 2014; Xue's GMSD.m"),
    # One 8x8 block of the shipped ICA basis on the original's grid 1:8:size-8 (a basis of p x p patches: p + 1).
    MetricSpec(
        "sff",
        False,
        9,
        "Chang, Yang, Gan, Wang 2013; Chang's SFF.m v2.0 with our own ICA basis",
        "SFF has no value where the reference is flat and colourless (grey, black or white) wherever the "
        "distortion changes it, as in the original",
    ),
    # One 4x4 DCT window.
    MetricSpec("scqi", False, 4, "Bae, Kim 2016 (reconstructed from the paper; no public original)"),
    # Three scales of 2x halving must leave a 4-pixel map: 4 * 2^2.
    MetricSpec("add_gsim", False, 16, "Liu, Lin, Narwaria 2012 + Gu et al. 2016 (reconstructed; no public original)"),
    # The quarter-size saliency image must hold the 10x10 Gaussian: 4 * 10 (downsampling keeps it for every size).
    MetricSpec("sr_sim", False, 40, "Zhang, Li 2012; Zhang's SR_SIM.m"),
)

SPEC_BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in SPECS}
