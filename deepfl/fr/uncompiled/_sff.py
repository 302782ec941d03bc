"""SFF in NumPy (first call with a shape); the original's conventions are in `deepfl/fr/_sff.py`.

The entry takes the compiled form's arguments, (ref, dist, w, ref_index), w in row-major patch order
(`deepfl.fr._sff._natural_order`), because `staging.compile_on_repeat` hands the uncompiled form every
argument of `_sff`.
"""

from __future__ import annotations

import numpy as np

from deepfl.fr._sff import C_FEATURE, C_LUMINANCE, LAMBDA, T_VISUAL
from deepfl.fr.uncompiled import functional


def _block_vectors(images: np.ndarray, patch: int) -> np.ndarray:
    """NHWC -> (N, blocks, 3*patch*patch) float64 in row-major (row, column, channel) order, on the grid
    `1:patch:size-patch` of the original (the last block row/column is dropped when the size is a multiple
    of patch)."""
    n, height, width = images.shape[:3]
    rows, cols = (height - 1) // patch, (width - 1) // patch
    x = images[:, : rows * patch, : cols * patch, :].reshape(n, rows, patch, cols, patch * 3)
    out = np.empty((n, rows, cols, patch, patch * 3), np.float64)
    out[...] = x.transpose(0, 1, 3, 2, 4)  # one copy: the float64 cast and the reordering together
    return out.reshape(n, rows * cols, 3 * patch * patch)


def _features(images: np.ndarray, w: np.ndarray, patch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean-removed block vectors (N, B, D), block means (N, B) and ICA responses W @ x (N, B, k)."""
    x = _block_vectors(images, patch)
    mean = x.mean(-1)
    x -= mean[..., None]
    return x, mean, x @ w.T


def _median(values: np.ndarray) -> np.ndarray:
    """MATLAB `median` along the last axis (mean of the two middle values for even counts)."""
    return np.median(values, axis=-1)


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of values where mask, along the last axis; 0 where nothing is selected."""
    count = mask.sum(-1)
    total = np.where(mask, values, 0.0).sum(-1)
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def sff(ref: np.ndarray, dist: np.ndarray, w: np.ndarray, ref_index: np.ndarray | None = None) -> np.ndarray:
    """SFF of each pair (1 = identical): 0.8 x luminance correlation + 0.2 x feature similarity."""
    w = np.asarray(w, np.float64)
    patch = int(round((w.shape[1] // 3) ** 0.5))
    xr, mr, a = _features(ref, w, patch)
    xd, md, b = _features(dist, w, patch)
    energy = np.einsum("nbk,nbk->nb", a, a)
    mr, a, energy = (functional.take_refs(t, ref_index) for t in (mr, a, energy))

    # Feature similarity on the blocks that changed at least as much as the median block.
    xd -= functional.take_refs(xr, ref_index)
    err = np.abs(xd, out=xd).mean(-1)
    chosen = err >= _median(err)[:, None]
    threshold = T_VISUAL * _masked_mean(energy, chosen)
    visible = chosen & (energy > threshold[:, None])
    similarity = ((2 * a * b + C_FEATURE) / (a * a + b * b + C_FEATURE)).mean(-1)
    feature = np.where(visible.any(-1), _masked_mean(similarity, visible), np.nan)  # the original's empty mean

    # Luminance correlation of the block means whose change reaches the median change.
    merr = np.abs(mr - md)
    mchosen = merr >= _median(merr)[:, None]
    cr = np.where(mchosen, mr - _masked_mean(mr, mchosen)[:, None], 0.0)
    cd = np.where(mchosen, md - _masked_mean(md, mchosen)[:, None], 0.0)
    luminance = ((cr * cd).sum(-1) + C_LUMINANCE) / (np.sqrt((cr * cr).sum(-1) * (cd * cd).sum(-1)) + C_LUMINANCE)
    return LAMBDA * luminance + (1 - LAMBDA) * feature
