"""numpy's ziggurat normal draws from raw PCG64 words (types 11, 12, 15, 19)."""

from __future__ import annotations

import numpy as np

from deepfl._numba import njit as _njit

_U8 = np.uint64(0xFF)
_U52 = np.uint64(0x000FFFFFFFFFFFFF)
_ONE = np.uint64(1)
# numpy's uniform draws from raw words: float64 u = (word >> 11) * 2^-53, float32 u = (word >> 8) * 2^-24.
_TWO_POW_MINUS_53 = 2.0**-53
_TWO_POW_MINUS_24 = np.float32(2.0**-24)


@_njit
def normals_f64(raw, ki, wi, fi, r, inv_r, out):
    """numpy's float64 `standard_normal` (Marsaglia-Tsang ziggurat, 256 layers) from its stream of 64-bit words
    `raw` (one word per draw, plus two per tail try, xx = -log1p(-u) / r, and one per wedge test;
    u = (word >> 11) * 2^-53);
    fills `out` and returns the number of words used, or -1 if `raw` ran out."""
    pos = 0
    n = raw.size
    for i in range(out.size):
        while True:
            if pos >= n:
                return -1
            bits = raw[pos]
            pos += 1
            idx = np.int64(bits & _U8)
            bits = bits >> np.uint64(8)
            rabs = (bits >> _ONE) & _U52
            x = np.float64(rabs) * wi[idx]
            if bits & _ONE:
                x = -x
            if rabs < ki[idx]:
                out[i] = x
                break
            if idx == 0:  # the tail beyond r
                done = False
                while not done:
                    if pos + 2 > n:
                        return -1
                    xx = -inv_r * np.log1p(-(np.float64(raw[pos] >> np.uint64(11)) * _TWO_POW_MINUS_53))
                    yy = -np.log1p(-(np.float64(raw[pos + 1] >> np.uint64(11)) * _TWO_POW_MINUS_53))
                    pos += 2
                    if yy + yy > xx * xx:
                        out[i] = -(r + xx) if (rabs >> np.uint64(8)) & _ONE else r + xx
                        done = True
                break
            if pos >= n:
                return -1
            u = np.float64(raw[pos] >> np.uint64(11)) * _TWO_POW_MINUS_53
            pos += 1
            if (fi[idx - 1] - fi[idx]) * u + fi[idx] < np.exp(-0.5 * x * x):
                out[i] = x
                break
    return pos


@_njit
def normals_f32(words, ki, wi, fi, r, inv_r, out):
    """numpy's float32 `standard_normal` (ziggurat with 23-bit float tables) from its stream of 32-bit words
    `words` (PCG64 gives the low then the high half of each 64-bit output; u = (word >> 8) * 2^-24, tail tries
    xx = -log1pf(-u) / r, wedge test against exp(-x^2 / 2) in double); fills
    `out` and returns the number of words used, or -1 if `words` ran out."""
    pos = 0
    n = words.size
    for i in range(out.size):
        while True:
            if pos >= n:
                return -1
            bits = words[pos]
            pos += 1
            idx = np.int64(bits & np.uint32(0xFF))
            rabs = (bits >> np.uint32(9)) & np.uint32(0x007FFFFF)
            x = np.float32(rabs) * wi[idx]
            if (bits >> np.uint32(8)) & np.uint32(1):
                x = -x
            if rabs < ki[idx]:
                out[i] = x
                break
            if idx == 0:
                done = False
                while not done:
                    if pos + 2 > n:
                        return -1
                    u1 = np.float32(words[pos] >> np.uint32(8)) * _TWO_POW_MINUS_24
                    u2 = np.float32(words[pos + 1] >> np.uint32(8)) * _TWO_POW_MINUS_24
                    pos += 2
                    xx = -inv_r * np.log1p(-u1)
                    yy = -np.log1p(-u2)
                    if yy + yy > xx * xx:
                        out[i] = -(r + xx) if (rabs >> np.uint32(8)) & np.uint32(1) else r + xx
                        done = True
                break
            if pos >= n:
                return -1
            u = np.float32(words[pos] >> np.uint32(8)) * _TWO_POW_MINUS_24
            pos += 1
            if np.float64((fi[idx - 1] - fi[idx]) * u + fi[idx]) < np.exp(-0.5 * np.float64(x) * np.float64(x)):
                out[i] = x
                break
    return pos
