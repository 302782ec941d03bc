"""KADID-10k's human opinion per distortion type and level: the mean DMOS over its 81 reference contents.

Source: the KADID-10k `dmos.csv` (10,125 rows; `I<ref>_<type>_<level>.png`, DMOS on 1..5, higher = better), as
reconstructed in the project's shared metadata (`data/meta/kadid10k/reconstructed/dmos.csv`, see its README for
provenance). Each entry is the plain mean of the 81 DMOS values of one (type, level), rounded to 4 decimals.
Types follow KADID-10k's numbering, which `deepfl.distortions` shares (1 gaussian_blur ... 25 contrast_change).

These are aggregates of published human scores, not a model: they say how bad a type at a level looked to
KADID-10k's raters on average, not how any particular image looks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LEVELS = 5
# Row t-1 holds distortion type t, columns levels 1..5.
TYPE_LEVEL_DMOS = np.array(
    [
        (4.6122, 4.3817, 2.9111, 1.8730, 1.3027),  # 1
        (3.8625, 2.6536, 1.7558, 1.4419, 1.2991),  # 2
        (4.6041, 4.0952, 2.8479, 2.1751, 1.6679),  # 3
        (4.4951, 2.6020, 1.7559, 1.6052, 1.3938),  # 4
        (4.2267, 2.5454, 1.9163, 1.8537, 1.8638),  # 5
        (4.1081, 3.9733, 3.7186, 3.2028, 2.4249),  # 6
        (2.7463, 2.3346, 2.2620, 2.2435, 2.0274),  # 7
        (4.5798, 3.3305, 2.6484, 1.8156, 1.5249),  # 8
        (4.5531, 4.2047, 3.8733, 2.4448, 1.3938),  # 9
        (4.3380, 4.2456, 3.8658, 1.9454, 1.3502),  # 10
        (3.8932, 3.3904, 3.0451, 2.7096, 2.3007),  # 11
        (4.4684, 3.6825, 3.1700, 2.6872, 2.3799),  # 12
        (3.5838, 2.9304, 2.6126, 2.3123, 2.1319),  # 13
        (4.4044, 3.5815, 3.0842, 2.6394, 2.1173),  # 14
        (3.6677, 2.7272, 2.2027, 1.6549, 1.4665),  # 15
        (4.5057, 4.2875, 3.6323, 2.7009, 1.8093),  # 16
        (4.6004, 4.5275, 4.2309, 3.5349, 2.2210),  # 17
        (4.2180, 4.5188, 4.6030, 4.3695, 3.9033),  # 18
        (4.4194, 4.0864, 3.2352, 1.8485, 1.3386),  # 19
        (4.3333, 3.9379, 3.7726, 3.4644, 3.2612),  # 20
        (3.8891, 3.0983, 2.8998, 2.7943, 1.4957),  # 21
        (4.1685, 3.9335, 3.6859, 3.3728, 2.7990),  # 22
        (2.6870, 2.3590, 2.2995, 2.1262, 2.0352),  # 23
        (3.5790, 2.6359, 2.1364, 1.6133, 1.3359),  # 24
        (3.4194, 3.8584, 4.2901, 4.1415, 3.3238),  # 25
    ]
)


def type_level_dmos(types: Sequence[int] | np.ndarray, levels: Sequence[int] | np.ndarray) -> np.ndarray:
    """KADID-10k's mean DMOS (1..5, higher = better) of each (type, level) pair; ValueError naming a bad pair."""
    types, levels = np.asarray(types, dtype=np.int64), np.asarray(levels, dtype=np.int64)
    bad = (types < 1) | (types > len(TYPE_LEVEL_DMOS)) | (levels < 1) | (levels > LEVELS)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"type/level: ({types[i]}, {levels[i]}) is not a KADID-10k distortion "
            f"(types 1..{len(TYPE_LEVEL_DMOS)}, levels 1..{LEVELS})"
        )
    return TYPE_LEVEL_DMOS[types - 1, levels - 1]
