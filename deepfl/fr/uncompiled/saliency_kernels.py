"""VSI's and SR-SIM's pooling of a block of rows as Numba kernels: colour, Scharr gradients, the similarities, the
powers and the weighted sums in one pass over the pixels, where NumPy needs a dozen full-block temporaries.

Same arithmetic as the NumPy forms they replace: float64 colour, gradients and similarities; VSI's powers as
exp(lambda log |S_C| + alpha log S_G) in float32 (as the compiled form takes them), SR-SIM's in float64.
Compiled once per machine (`deepfl._numba`), never per image size; `nogil`, so two threads run side by side.
"""

from __future__ import annotations

import math

import numpy as np

from deepfl._numba import njit as _njit


@_njit
def _similarity(a, b, constant):
    return (2.0 * a * b + constant) / (a * a + b * b + constant)


@_njit
def _bordered_luma(planes, item, plane_top, start, height, weights, out):
    """Rows start - 1 .. start + rows of weights . RGB of image `item` of colour planes (3, n, P, w) that hold image
    rows plane_top .. into out (rows + 2, w + 2): zero outside the image and in the border columns."""
    width = planes.shape[3]
    for k in range(out.shape[0]):
        i = start - 1 + k
        if 0 <= i < height:
            q = i - plane_top
            for j in range(width):
                out[k, j + 1] = planes[0, item, q, j] * weights[0] + planes[1, item, q, j] * weights[1]
                out[k, j + 1] += planes[2, item, q, j] * weights[2]
        else:
            out[k, :] = 0.0


@_njit
def pool_block_sr_sim(ref_planes, dist_planes, ref_slot, plane_top, start, stop, height, s_ref, s_dist, luma, consts):
    """SR-SIM's `pool_block_vsi`: per pair, the sums (weighted similarity, weights, similarity) over image rows
    start..stop-1 of S_G^alpha S_SR with weights max(SR1, SR2); the arguments as `pool_block_vsi`'s, luma (3,) the Y
    weights and consts: C1 (saliency), C2 (gradient), alpha, outer and centre Scharr taps."""
    c1, c2, alpha, outer, centre = consts
    width = ref_planes.shape[3]
    rows = stop - start
    n_pairs = dist_planes.shape[1]
    sums = np.zeros((n_pairs, 3))
    lum1 = np.zeros((rows + 2, width + 2))
    lum2 = np.zeros((rows + 2, width + 2))
    for p in range(n_pairs):
        r = ref_slot[p]
        _bordered_luma(ref_planes, r, plane_top, start, height, luma, lum1)
        _bordered_luma(dist_planes, p, plane_top, start, height, luma, lum2)
        weighted, weights, values = 0.0, 0.0, 0.0
        for k in range(rows):
            for j in range(width):
                g1 = _scharr_squared(lum1, k, j, outer, centre)
                g2 = _scharr_squared(lum2, k, j, outer, centre)
                gradient = (2.0 * math.sqrt(g1 * g2) + c2) / (g1 + g2 + c2)
                a, b = s_ref[r, k, j], s_dist[p, k, j]
                value = gradient**alpha * _similarity(a, b, c1)
                weight = max(a, b)
                weighted += value * weight
                weights += weight
                values += value
        sums[p, 0], sums[p, 1], sums[p, 2] = weighted, weights, values
    return sums


@_njit
def pool_block_vsi(ref_planes, dist_planes, ref_slot, plane_top, start, stop, height, vs_ref, vs_dist, lmn, consts):
    """VSI: per pair, the sums (weighted similarity, weights, similarity) over image rows start..stop-1.

    ref_planes (3, R, P, w), dist_planes (3, N, P, w): box-downsampled RGB of image rows plane_top ..
    plane_top + P - 1 (those of start - 1 .. stop that lie inside the image). ref_slot (N,): each pair's reference
    among ref_planes' R. vs_ref (R, stop - start, w), vs_dist (N, ...): the normalised saliency rows. lmn (3, 3):
    the L, M, N weights. consts: C_VS, C_GM, C_CHROM, alpha, lambda, outer and centre Scharr taps.
    The L channel is zero outside the image (conv2 'same')."""
    c_vs, c_gm, c_chrom, alpha, lam, outer, centre = consts
    width = ref_planes.shape[3]
    rows = stop - start
    n_pairs = dist_planes.shape[1]
    sums = np.zeros((n_pairs, 3))
    lum1 = np.zeros((rows + 2, width + 2))
    lum2 = np.zeros((rows + 2, width + 2))
    alpha32, lam32 = np.float32(alpha), np.float32(lam)
    negative = np.float32(math.cos(lam * math.pi))
    for p in range(n_pairs):
        r = ref_slot[p]
        _bordered_luma(ref_planes, r, plane_top, start, height, lmn[0], lum1)
        _bordered_luma(dist_planes, p, plane_top, start, height, lmn[0], lum2)
        weighted, weights, values = 0.0, 0.0, 0.0
        for k in range(rows):
            q = start + k - plane_top
            for j in range(width):
                g1 = _scharr_squared(lum1, k, j, outer, centre)
                g2 = _scharr_squared(lum2, k, j, outer, centre)
                gradient = (2.0 * math.sqrt(g1 * g2) + c_gm) / (g1 + g2 + c_gm)
                m1 = ref_planes[0, r, q, j] * lmn[1, 0] + ref_planes[1, r, q, j] * lmn[1, 1]
                m1 += ref_planes[2, r, q, j] * lmn[1, 2]
                n1 = ref_planes[0, r, q, j] * lmn[2, 0] + ref_planes[1, r, q, j] * lmn[2, 1]
                n1 += ref_planes[2, r, q, j] * lmn[2, 2]
                m2 = dist_planes[0, p, q, j] * lmn[1, 0] + dist_planes[1, p, q, j] * lmn[1, 1]
                m2 += dist_planes[2, p, q, j] * lmn[1, 2]
                n2 = dist_planes[0, p, q, j] * lmn[2, 0] + dist_planes[1, p, q, j] * lmn[2, 1]
                n2 += dist_planes[2, p, q, j] * lmn[2, 2]
                chroma = _similarity(m1, m2, c_chrom) * _similarity(n1, n2, c_chrom)
                # |S_C|^lambda S_G^alpha as exp(lambda log |S_C| + alpha log S_G) in float32; 0 where S_C = 0.
                magnitude = np.float32(abs(chroma))
                power = np.float32(0.0)
                if magnitude > 0:
                    exponent = lam32 * np.float32(math.log(magnitude))
                    exponent += alpha32 * np.float32(math.log(np.float32(gradient)))
                    power = np.float32(math.exp(exponent))
                if chroma < 0:
                    power = power * negative
                a, b = vs_ref[r, k, j], vs_dist[p, k, j]
                value = _similarity(a, b, c_vs) * np.float64(power)
                weight = max(a, b)
                weighted += value * weight
                weights += weight
                values += value
        sums[p, 0], sums[p, 1], sums[p, 2] = weighted, weights, values
    return sums


@_njit
def _scharr_squared(lum, k, j, outer, centre):
    """Squared Scharr gradient magnitude at row k + 1, column j + 1 of a zero-bordered map."""
    gx = ((lum[k, j + 2] - lum[k, j]) + (lum[k + 2, j + 2] - lum[k + 2, j])) * outer
    gx += centre * (lum[k + 1, j + 2] - lum[k + 1, j])
    gy = ((lum[k + 2, j] - lum[k, j]) + (lum[k + 2, j + 2] - lum[k, j + 2])) * outer
    gy += centre * (lum[k + 2, j + 1] - lum[k, j + 1])
    return gx * gx + gy * gy
