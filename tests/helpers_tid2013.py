"""The five TID2013 calibration pairs shipped in tests/data/tid2013 with the original MATLAB scores (see the
README there), for the exactness tests of the FR metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TID2013 = Path(__file__).resolve().parent / "data" / "tid2013"


def load_tid2013():
    """(official scores as a DataFrame, references NxHxWx3 uint8, distorted images NxHxWx3 uint8)."""
    import pandas as pd

    from deepfl.images import read_image

    table = pd.read_csv(TID2013 / "official.csv")
    ref = np.stack([read_image(TID2013 / "ref" / name) for name in table["image"]])
    dist = np.stack([read_image(TID2013 / "dist" / name) for name in table["image"]])
    return table, ref, dist
