"""Random draws of the random types, bit-identical to numpy's and faster."""

from __future__ import annotations

import numpy as np
from numba.np.random import _constants as _zig

from deepfl.distortions._kernels import normals


def standard_normal(rng: np.random.Generator, shape, dtype=np.float64) -> np.ndarray:
    """`rng.standard_normal(shape, dtype=dtype)`: the same values, and `rng` left in the same state, faster.

    For numpy's default bit generator (PCG64) the raw 64-bit words are drawn in bulk (`random_raw`) and a compiled
    copy of numpy's ziggurat turns them into normals; the generator is then set to just after the words used
    (`advance`, plus the buffered upper half-word the float32 path leaves). Other bit generators: numpy itself.
    """
    bits = rng.bit_generator
    dtype = np.dtype(dtype)
    out = np.empty(shape, dtype=dtype)
    flat = out.reshape(-1)
    if type(bits) is not np.random.PCG64 or dtype not in (np.float32, np.float64) or flat.size == 0:
        return rng.standard_normal(shape, dtype=dtype)
    start = bits.state
    extra = 64 + flat.size // 32
    while True:
        if dtype == np.float64:
            raw = bits.random_raw(flat.size + extra)
            used = normals.normals_f64(
                raw, _zig.ki_double, _zig.wi_double, _zig.fi_double, _zig.ziggurat_nor_r, _zig.ziggurat_nor_inv_r, flat
            )
            words = used
        else:
            raw = bits.random_raw(flat.size // 2 + extra)
            half = np.empty(2 * raw.size + 1, dtype=np.uint32)
            half[0] = start["uinteger"]
            half[1:] = raw.view(np.uint32)  # PCG64's next32: the low half of a word, then its high half
            skip = 0 if start["has_uint32"] else 1
            used = normals.normals_f32(
                half[skip:],
                _zig.ki_float,
                _zig.wi_float,
                _zig.fi_float,
                _zig.ziggurat_nor_r_f,
                _zig.ziggurat_nor_inv_r_f,
                flat,
            )
            last = skip + used - 1  # index in `half` of the last half-word used
            words = (last - 1) // 2 + 1 if last >= 1 else 0
            # numpy's next32 keeps the high half of its last 64-bit word (pending when only the low half was used)
            pending = last >= 1 and last % 2 == 1
            high = int(half[last + 1] if pending else half[last]) if last >= 1 else start["uinteger"]
        bits.state = start
        if used >= 0:
            break
        extra *= 4  # rare: more rejections than the margin allowed; draw again with a larger one
    bits.advance(words)
    state = bits.state
    if dtype == np.float64:
        state["has_uint32"], state["uinteger"] = start["has_uint32"], start["uinteger"]
    else:
        state["has_uint32"], state["uinteger"] = int(pending), high
    bits.state = state
    return out
