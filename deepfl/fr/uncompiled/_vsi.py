"""VSI in NumPy (first call with a shape); the original's conventions are in `deepfl/fr/_vsi.py`.

Organised for cold calls as SR-SIM's form is, with the same row-block operations (`deepfl.fr.uncompiled.blocks`):
SDSP runs per image on two threads; the full-size maps are never stored: the resize back of the saliency
is evaluated row block by row block, once for its `mat2gray` range and once for pooling, together with the
box-downsampled colour planes of the same rows, and each block's colour, gradients and similarities are pooled at
once into per-pair sums by one Numba kernel (`saliency_kernels.pool_block_vsi`), on two threads (halves of the
rows).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import scipy.fft
import scipy.sparse

from deepfl.fr._vsi import ALPHA, C_CHROM, C_GM, C_VS, LAMBDA, SDSP_SIZE, SIGMA_C, _sdsp_constants
from deepfl.fr.functional.colour import LMN
from deepfl.fr.functional.filters import SCHARR_X, auto_downsample_factor
from deepfl.fr.uncompiled import saliency_kernels
from deepfl.fr.uncompiled.blocks import (
    item_groups,
    mat2gray,
    operator_rows,
    pair_references,
    pooled,
    resize_operators,
    rgb_planes,
    row_blocks,
    spans,
)
from deepfl.fr.uncompiled.threads import in_parallel

# VSI.m's RGB2Lab: sRGB primaries to XYZ, the D50 white it divides by, and CIELab's epsilon and kappa.
_SRGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375), (0.2126729, 0.7151522, 0.0721750), (0.0193339, 0.1191920, 0.9503041))
_WHITE = (0.9642, 1.0, 0.8251)
_EPSILON, _KAPPA = 0.008856, 903.3


def _rgb2lab(rgb: np.ndarray, out: np.ndarray) -> None:
    """sRGB in [0, 255] as planes (3, ...) -> CIELab planes written to out (3, ...), as VSI.m's `RGB2Lab`.

    In float32 with the powers as exp(p log x), as the compiled form (`colour.rgb2lab_vsi`) computes them: NumPy's
    float64 log, exp and cbrt are scalar loops on CPUs without AVX-512, and there this conversion of the two
    256x256 images was the largest part of a cold VSI call.
    """
    linear = []
    for channel in np.asarray(rgb, np.float32):  # no copy of float32 input (`_resized_rgb`'s)
        x = channel / np.float32(255.0)
        value = np.maximum(x, np.float32(0.04045))
        value += np.float32(0.055)
        value /= np.float32(1.055)
        np.log(value, out=value)
        value *= np.float32(2.4)
        np.exp(value, out=value)  # ((x + 0.055) / 1.055) ^ 2.4
        np.divide(x, np.float32(12.92), out=value, where=x <= np.float32(0.04045))
        linear.append(value)
    f = []
    for row, white in zip(_SRGB_TO_XYZ, _WHITE):
        xyz = linear[0] * np.float32(row[0])
        xyz += linear[1] * np.float32(row[1])
        xyz += linear[2] * np.float32(row[2])
        xyz /= np.float32(white)
        cube_root = np.maximum(xyz, np.float32(_EPSILON))
        np.log(cube_root, out=cube_root)
        cube_root /= np.float32(3.0)
        np.exp(cube_root, out=cube_root)
        low = xyz <= np.float32(_EPSILON)
        xyz *= np.float32(_KAPPA)
        xyz += np.float32(16.0)
        xyz /= np.float32(116.0)
        np.copyto(cube_root, xyz, where=low)
        f.append(cube_root)
    fx, fy, fz = f
    np.multiply(fy, np.float32(116.0), out=out[0])
    out[0] -= np.float32(16.0)
    np.subtract(fx, fy, out=out[1])
    out[1] *= np.float32(500.0)
    np.subtract(fy, fz, out=out[2])
    out[2] *= np.float32(200.0)


@functools.lru_cache(maxsize=64)
def _shrink_operators(height: int, width: int) -> tuple[scipy.sparse.csr_array, scipy.sparse.csr_array]:
    """The row and column operators of `imresize(image, [256 256])` (bilinear, antialiased), in float32."""
    return tuple(op.astype(np.float32) for op in resize_operators((height, width), (SDSP_SIZE, SDSP_SIZE), "bilinear"))


@functools.lru_cache(maxsize=1)
def _half_log_gabor() -> np.ndarray:
    """The columns of SDSP's log-Gabor transfer function that multiply a real FFT's half spectrum, float32."""
    return np.ascontiguousarray(_sdsp_constants(SDSP_SIZE)[0][:, : SDSP_SIZE // 2 + 1], np.float32)


def _resized_rgb(image: np.ndarray) -> np.ndarray:
    """`imresize(image, [256 256])` of an H,W,3 image, as (256 columns, 3, 256 rows), float32."""
    height, width = image.shape[:2]
    along_h, along_w = _shrink_operators(height, width)
    tall = along_h @ image.reshape(height, -1).astype(np.float32, copy=False)
    across = np.ascontiguousarray(tall.reshape(SDSP_SIZE, width, 3).transpose(1, 2, 0)).reshape(width, -1)
    return (along_w @ across).reshape(SDSP_SIZE, 3, SDSP_SIZE)


def _small_saliency(image: np.ndarray) -> np.ndarray:
    """SDSP of an H,W,3 image before the resize back, 256x256, transposed (axis 0 runs along the image's columns).

    The log-Gabor transfer function and the centre prior are symmetric in the two axes of their square grid, so
    the transposed Lab planes give the transposed saliency. The band-pass is real: real FFTs, and the product with
    the half transfer function. Single precision throughout, as in the compiled form: the resize, the Lab
    conversion and the FFTs of the two 256x256 images are a fixed cost of every call, whatever the image size.
    """
    centre = _sdsp_constants(SDSP_SIZE)[1]
    lab = np.empty((3, SDSP_SIZE, SDSP_SIZE), np.float32)
    _rgb2lab(_resized_rgb(image).transpose(1, 0, 2), lab)
    spectrum = scipy.fft.rfft2(lab)
    spectrum *= _half_log_gabor()
    filtered = scipy.fft.irfft2(spectrum, s=(SDSP_SIZE, SDSP_SIZE))
    filtered *= filtered
    energy = filtered[0]
    energy += filtered[1]
    energy += filtered[2]
    a_norm, b_norm = mat2gray(lab[1:])
    colour = a_norm * a_norm
    colour += b_norm * b_norm
    colour *= np.float32(-1.0 / SIGMA_C**2)
    np.exp(colour, out=colour)
    small = np.subtract(np.float32(1.0), colour, out=colour)
    small *= centre
    small *= np.sqrt(energy, out=energy)
    return small


def _box_operator(length: int, factor: int) -> scipy.sparse.csr_array:
    """The box average of `rgb_planes` along one axis as a sparse (ceil(length/f) x length) operator."""
    out_len = -(-length // factor)
    cols = (np.arange(out_len) * factor - (factor - 1) // 2)[:, None] + np.arange(factor)
    inside = (cols >= 0) & (cols < length)
    rows = np.broadcast_to(np.arange(out_len)[:, None], cols.shape)
    return scipy.sparse.csr_array(
        (np.full(inside.sum(), 1.0 / factor), (rows[inside], cols[inside])), shape=(out_len, length)
    )


class _Saliency:
    """The SDSP maps of a batch after the resize back, `mat2gray` and the box-downsampling, row block by row block.

    full = mat2gray(along_h @ small @ along_w.T), and its box average B_h full B_w.T is
    (P_h small P_w.T - lo (B_h 1)(B_w 1).T) / span with P = B @ along: the box of the constant lo is the part of
    each box inside the image. The column pass is applied per group of images (`wide`), the rows per block.
    """

    def __init__(self, small_t: np.ndarray, size: tuple[int, int], factor: int):
        self.small_t = small_t  # transposed maps: along_w @ small_t[i] = (small[i] @ along_w.T).T
        self.along_h, self.along_w = resize_operators((SDSP_SIZE, SDSP_SIZE), size, "bilinear")
        self.shared: np.ndarray | None = None  # the wide maps of all images, when one group holds them all
        groups = item_groups(len(small_t), size[1])
        self.lo, hi = np.full(len(small_t), np.inf), np.full(len(small_t), -np.inf)
        for images, (lo, group_hi) in zip(groups, in_parallel(lambda images: self._extremes(images, groups), groups)):
            self.lo[images], hi[images] = lo, group_hi
        span = hi - self.lo
        self.scale = np.divide(1.0, span, out=np.zeros_like(span), where=span > 0)
        self.inside = None
        if factor > 1:
            box_h, box_w = _box_operator(size[0], factor), _box_operator(size[1], factor)
            self.along_h, self.along_w = box_h @ self.along_h, box_w @ self.along_w
            self.inside = (box_h.sum(axis=1), box_w.sum(axis=1))
            self.shared = None

    def _wide(self, images: np.ndarray | slice) -> np.ndarray:
        """small @ along_w.T of the given images, side by side: 256 x (n * columns), C-ordered: the stack of
        transposed products keeps their column order (NumPy's concatenate follows its inputs' layout), and SciPy's
        sparse product then copies the whole of it for every row block (1 of 1.3 s at 4000x3000)."""
        stacked = np.stack([(self.along_w @ image).T for image in self.small_t[images]], axis=1)
        return np.ascontiguousarray(stacked).reshape(SDSP_SIZE, -1)

    def _extremes(self, images: slice, groups: list[slice]) -> tuple[np.ndarray, np.ndarray]:
        """(min, max) of each full-size map of a group of images."""
        wide = self._wide(images)
        if len(groups) == 1:
            self.shared = wide
        count = images.stop - images.start

        def extremes(rows: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
            lo, hi = np.full(count, np.inf), np.full(count, -np.inf)
            for start, stop in row_blocks(*rows, wide.shape[1]):
                block = (operator_rows(self.along_h, start, stop) @ wide).reshape(stop - start, count, -1)
                lo, hi = np.minimum(lo, block.min(axis=(0, 2))), np.maximum(hi, block.max(axis=(0, 2)))
            return lo, hi

        parts = in_parallel(extremes, spans(groups, self.along_h.shape[0]))
        return np.minimum.reduce([lo for lo, _ in parts]), np.maximum.reduce([hi for _, hi in parts])

    def rows(self, images: np.ndarray) -> Callable[[int, int], np.ndarray]:
        """For the given images: rows start..stop-1 of their normalised, box-downsampled maps (n,rows,w)."""
        every = self.shared is not None and np.array_equal(images, np.arange(len(self.small_t)))
        wide = self.shared if every else self._wide(images)
        lo, scale = self.lo[images][:, None, None], self.scale[images][:, None, None]

        def block(start: int, stop: int) -> np.ndarray:
            values = (operator_rows(self.along_h, start, stop) @ wide).reshape(stop - start, len(images), -1)
            offset = lo if self.inside is None else lo * np.multiply.outer(self.inside[0][start:stop], self.inside[1])
            values = np.subtract(values.transpose(1, 0, 2), offset, order="C")  # C order: one kernel signature
            values *= scale
            return values

        return block


def vsi(ref: np.ndarray, dist: np.ndarray, ref_index: np.ndarray | None = None) -> np.ndarray:
    """VSI of each pair (1 = identical): saliency, gradient and chroma similarity weighted by the saliency."""
    factor = auto_downsample_factor(ref.shape[1], ref.shape[2])
    height, width = -(-ref.shape[1] // factor), -(-ref.shape[2] // factor)
    saliency = _Saliency(np.stack(in_parallel(_small_saliency, [*ref, *dist])), ref.shape[1:3], factor)
    num_refs, num_pairs = len(ref), len(dist)
    lmn = np.array(LMN)
    constants = (C_VS, C_GM, C_CHROM, ALPHA, LAMBDA, SCHARR_X[0, 0], SCHARR_X[1, 0])
    groups = item_groups(num_pairs, 2 * width)

    def pool(pairs: slice) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        refs, index = pair_references(pairs, ref_index)
        used = np.arange(num_refs)[refs]
        slots = np.arange(pairs.stop - pairs.start) if index is None else np.asarray(index, np.int64)
        saliency_rows = saliency.rows(np.concatenate([used, num_refs + np.arange(num_pairs)[pairs]]))

        def pool_rows(rows: tuple[int, int]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
            sums = []
            for start, stop in row_blocks(*rows, (len(used) + pairs.stop - pairs.start) * width):
                vs = saliency_rows(start, stop)
                lo, hi = max(start - 1, 0), min(stop + 1, height)
                block = saliency_kernels.pool_block_vsi(
                    rgb_planes(ref, factor, lo, hi, refs),
                    rgb_planes(dist, factor, lo, hi, pairs),
                    slots,
                    lo,
                    start,
                    stop,
                    height,
                    vs[: len(used)],
                    vs[len(used) :],
                    lmn,
                    constants,
                )
                sums.append((block[:, 0], block[:, 1], block[:, 2]))
            return sums

        return [block for part in in_parallel(pool_rows, spans(groups, height)) for block in part]

    return pooled(num_pairs, groups, in_parallel(pool, groups), height * width)
