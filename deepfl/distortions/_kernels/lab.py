"""Per-pixel passes of MATLAB `rgb2lab`/`lab2rgb` (types 4, 8, 16, 24)."""

from __future__ import annotations

from deepfl._numba import njit as _njit


@_njit
def mix_levels(table, pixels, matrix, out):
    """out[k, y, x] = ((t[p0] * m[k, 0]) + (t[p1] * m[k, 1])) + (t[p2] * m[k, 2]) with t = `table` (a per-level
    function such as sRGB linearisation) and p = pixels[y, x] (HxWx3 uint8): the 3x3 colour mix on
    looked-up values, written as 3 planes."""
    h, w, _ = pixels.shape
    for y in range(h):
        for x in range(w):
            r = table[pixels[y, x, 0]]
            g = table[pixels[y, x, 1]]
            b = table[pixels[y, x, 2]]
            for k in range(3):
                out[k, y, x] = r * matrix[k, 0] + g * matrix[k, 1] + b * matrix[k, 2]


@_njit
def mix_pixels(rgb, matrix, out):
    """out[k, y, x] = ((rgb[y, x, 0] * m[k, 0]) + (rgb[y, x, 1] * m[k, 1])) + (rgb[y, x, 2] * m[k, 2])."""
    h, w, _ = rgb.shape
    for y in range(h):
        for x in range(w):
            for k in range(3):
                out[k, y, x] = rgb[y, x, 0] * matrix[k, 0] + rgb[y, x, 1] * matrix[k, 1] + rgb[y, x, 2] * matrix[k, 2]


@_njit
def lab_from_cbrt(xyz, f, eps, kappa, lab):
    """CIE Lab from normalised XYZ planes and their cube roots `f`: f_k = (kappa * xyz_k + 16) / 116 where
    xyz_k <= eps, then L = 116 f_y - 16, a = 500 (f_x - f_y), b = 200 (f_y - f_z) into HxWx3 `lab`."""
    _, h, w = xyz.shape
    for y in range(h):
        for x in range(w):
            fx = f[0, y, x]
            fy = f[1, y, x]
            fz = f[2, y, x]
            if xyz[0, y, x] <= eps:
                fx = (kappa * xyz[0, y, x] + 16.0) / 116.0
            if xyz[1, y, x] <= eps:
                fy = (kappa * xyz[1, y, x] + 16.0) / 116.0
            if xyz[2, y, x] <= eps:
                fz = (kappa * xyz[2, y, x] + 16.0) / 116.0
            lab[y, x, 0] = 116.0 * fy - 16.0
            lab[y, x, 1] = 500.0 * (fx - fy)
            lab[y, x, 2] = 200.0 * (fy - fz)


@_njit
def _inverse_f(t, eps, kappa):
    cube = t * t * t
    if cube <= eps:
        cube = (116.0 * t - 16.0) / kappa
    return cube


@_njit
def linear_from_lab(lab, matrix, eps, kappa, clip, out):
    """Linear RGB planes from HxWx3 Lab (MATLAB `lab2rgb` before companding): f_y = (L + 16) / 116,
    f_x = f_y + a / 500, f_z = f_y - b / 200; X, Z = f^3, or (116 f - 16) / kappa where f^3 <= eps; Y = f_y^3, or
    L / kappa where L <= kappa * eps; then the 3x3 mix `matrix` and, with `clip`, clipping to [0, 1]."""
    h, w, _ = lab.shape
    for y in range(h):
        for x in range(w):
            lum = lab[y, x, 0]
            fy = (lum + 16.0) / 116.0
            cx = _inverse_f(fy + lab[y, x, 1] / 500.0, eps, kappa)
            cz = _inverse_f(fy - lab[y, x, 2] / 200.0, eps, kappa)
            cy = fy * fy * fy
            if lum <= kappa * eps:
                cy = lum / kappa
            for k in range(3):
                v = cx * matrix[k, 0] + cy * matrix[k, 1] + cz * matrix[k, 2]
                if clip:
                    v = min(max(v, 0.0), 1.0)
                out[k, y, x] = v


@_njit
def compand(lin, powered, out):
    """sRGB companding from linear planes and their powers lin^(1/2.4) (or |lin|^(1/2.4)): 12.92 lin where
    lin <= 0.0031308, else 1.055 p - 0.055; written interleaved into HxWx3 `out`."""
    _, h, w = lin.shape
    for y in range(h):
        for x in range(w):
            for k in range(3):
                v = lin[k, y, x]
                out[y, x, k] = 12.92 * v if v <= 0.0031308 else powered[k, y, x] * 1.055 - 0.055
