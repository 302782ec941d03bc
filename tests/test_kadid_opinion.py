"""KADID-10k's mean opinion per (type, level): the shipped table against the real scores, and bad pairs."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepfl.distortions import NUM_LEVELS, NUM_TYPES
from deepfl.kadid_opinion import TYPE_LEVEL_DMOS, type_level_dmos

KADID_DMOS = next(
    (
        p / "data/meta/kadid10k/reconstructed/dmos.csv"
        for p in (Path(__file__).resolve().parents[2] / "shared", Path("/work/shared"))
        if (p / "data/meta/kadid10k/reconstructed/dmos.csv").is_file()
    ),
    None,
)


def test_table_covers_every_distortion_on_the_dmos_scale():
    assert TYPE_LEVEL_DMOS.shape == (NUM_TYPES, NUM_LEVELS)
    assert np.all((TYPE_LEVEL_DMOS >= 1) & (TYPE_LEVEL_DMOS <= 5))
    np.testing.assert_array_equal(type_level_dmos([1, 25, 7], [1, 5, 3]), TYPE_LEVEL_DMOS[[0, 24, 6], [0, 4, 2]])


@pytest.mark.skipif(KADID_DMOS is None, reason="../shared/data/meta (the real KADID-10k scores) is absent")
def test_table_is_the_mean_over_the_81_contents_of_the_real_scores():
    scores = pd.read_csv(KADID_DMOS)
    parts = scores["dist_img"].str.extract(r"^I(\d\d)_(\d\d)_(\d\d)\.png$").astype(int)
    grouped = scores["dmos"].groupby([parts[1], parts[2]])
    assert grouped.size().eq(81).all() and len(grouped) == NUM_TYPES * NUM_LEVELS
    means = grouped.mean().unstack().to_numpy()
    np.testing.assert_allclose(TYPE_LEVEL_DMOS, means, atol=5e-5, rtol=0)


@pytest.mark.parametrize("dist_type, level", [(0, 1), (26, 1), (3, 0), (3, 6)])
def test_a_pair_outside_kadid_is_named(dist_type, level):
    with pytest.raises(ValueError, match=rf"\({dist_type}, {level}\) is not a KADID-10k distortion"):
        type_level_dmos([1, dist_type], [1, level])
