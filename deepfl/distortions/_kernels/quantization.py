"""Compiled (Numba) kernels of MATLAB's colour quantisation `rgb2ind(rgb, n)`: the minimum-variance palette
(`cq`, Wu's greedy orthogonal bipartition), the inverse colormap and the error-diffusion dither (`dither`).

Each kernel follows the arithmetic of MATLAB's compiled routines: integer moments where they are integers, IEEE
single precision where `cq` works in C `float` (the squared-colour moments, the variances and the split
criterion, in the same order of operations), truncating integer division for the palette entries, and integer
error diffusion in `dither`. Images are walked in MATLAB's memory order (down each column, columns left to
right), which fixes both the single-precision sums of `cq` and the path of the dither.
"""

from __future__ import annotations

import numpy as np

from deepfl._numba import njit as _njit

# Histogram cells per axis in `cq`: 32 levels (the top 5 bits of each channel) plus a zero border at index 0.
_SIDE = 33
_F32_ZERO = np.float32(0.0)


# ------------------------------------------------------------------------------ minimum-variance palette (cq)


@_njit
def _moments(rgb):
    """Cumulative moments over the 32x32x32 histogram of the top 5 bits: pixel count, channel sums (int64) and
    the sum of r^2 + g^2 + b^2 (float32, accumulated pixel by pixel in column order, then summed along b, g and
    r in `cq`'s order). Entry [r, g, b] holds the totals over the cells [1..r] x [1..g] x [1..b]."""
    h, w = rgb.shape[0], rgb.shape[1]
    weight = np.zeros((_SIDE, _SIDE, _SIDE), np.int64)
    sum_r = np.zeros((_SIDE, _SIDE, _SIDE), np.int64)
    sum_g = np.zeros((_SIDE, _SIDE, _SIDE), np.int64)
    sum_b = np.zeros((_SIDE, _SIDE, _SIDE), np.int64)
    square = np.zeros((_SIDE, _SIDE, _SIDE), np.float32)
    for x in range(w):
        for y in range(h):
            r = np.int64(rgb[y, x, 0])
            g = np.int64(rgb[y, x, 1])
            b = np.int64(rgb[y, x, 2])
            i, j, k = (r >> 3) + 1, (g >> 3) + 1, (b >> 3) + 1
            weight[i, j, k] += 1
            sum_r[i, j, k] += r
            sum_g[i, j, k] += g
            sum_b[i, j, k] += b
            square[i, j, k] += np.float32(r * r + g * g + b * b)
    plane_w = np.zeros(_SIDE, np.int64)
    plane_r = np.zeros(_SIDE, np.int64)
    plane_g = np.zeros(_SIDE, np.int64)
    plane_b = np.zeros(_SIDE, np.int64)
    plane_s = np.zeros(_SIDE, np.float32)
    for i in range(1, _SIDE):
        for k in range(_SIDE):  # element by element: Numba compiles slice assignments slowly
            plane_w[k] = 0
            plane_r[k] = 0
            plane_g[k] = 0
            plane_b[k] = 0
            plane_s[k] = _F32_ZERO
        for j in range(1, _SIDE):
            row_w = np.int64(0)
            row_r = np.int64(0)
            row_g = np.int64(0)
            row_b = np.int64(0)
            row_s = _F32_ZERO
            for k in range(1, _SIDE):
                row_w += weight[i, j, k]
                row_r += sum_r[i, j, k]
                row_g += sum_g[i, j, k]
                row_b += sum_b[i, j, k]
                row_s = row_s + square[i, j, k]
                plane_w[k] += row_w
                plane_r[k] += row_r
                plane_g[k] += row_g
                plane_b[k] += row_b
                plane_s[k] = plane_s[k] + row_s
                weight[i, j, k] = weight[i - 1, j, k] + plane_w[k]
                sum_r[i, j, k] = sum_r[i - 1, j, k] + plane_r[k]
                sum_g[i, j, k] = sum_g[i - 1, j, k] + plane_g[k]
                sum_b[i, j, k] = sum_b[i - 1, j, k] + plane_b[k]
                square[i, j, k] = square[i - 1, j, k] + plane_s[k]
    return weight, sum_r, sum_g, sum_b, square


@_njit
def _box_sum(m, box):
    """Sum of an int64 moment over the box (r0, r1] x (g0, g1] x (b0, b1] by inclusion-exclusion (cq's order)."""
    r0, r1, g0, g1, b0, b1 = box[0], box[1], box[2], box[3], box[4], box[5]
    return (
        m[r1, g1, b1]
        - m[r1, g1, b0]
        - m[r1, g0, b1]
        + m[r1, g0, b0]
        - m[r0, g1, b1]
        + m[r0, g1, b0]
        + m[r0, g0, b1]
        - m[r0, g0, b0]
    )


@_njit
def _box_variance(box, weight, sum_r, sum_g, sum_b, square):
    """Pixel count times the colour variance of a box, in single precision as `cq` computes it."""
    dr = np.float32(_box_sum(sum_r, box))
    dg = np.float32(_box_sum(sum_g, box))
    db = np.float32(_box_sum(sum_b, box))
    r0, r1, g0, g1, b0, b1 = box[0], box[1], box[2], box[3], box[4], box[5]
    xx = square[r1, g1, b1]
    xx = xx - square[r1, g1, b0]
    xx = xx - square[r1, g0, b1]
    xx = xx + square[r1, g0, b0]
    xx = xx - square[r0, g1, b1]
    xx = xx + square[r0, g1, b0]
    xx = xx + square[r0, g0, b1]
    xx = xx - square[r0, g0, b0]
    spread = dr * dr + dg * dg + db * db
    return np.float32(abs(xx - spread / np.float32(_box_sum(weight, box))))


@_njit
def _partial_sum(m, box, axis, position):
    """Sum of a moment over the part of `box` whose coordinate along `axis` (0 r, 1 g, 2 b) is <= `position`:
    cq's Bottom (the terms at the lower bound) plus Top (the terms at `position`)."""
    r0, r1, g0, g1, b0, b1 = box[0], box[1], box[2], box[3], box[4], box[5]
    if axis == 0:
        bottom = -m[r0, g1, b1] + m[r0, g1, b0] + m[r0, g0, b1] - m[r0, g0, b0]
        top = m[position, g1, b1] - m[position, g1, b0] - m[position, g0, b1] + m[position, g0, b0]
    elif axis == 1:
        bottom = -m[r1, g0, b1] + m[r1, g0, b0] + m[r0, g0, b1] - m[r0, g0, b0]
        top = m[r1, position, b1] - m[r1, position, b0] - m[r0, position, b1] + m[r0, position, b0]
    else:
        bottom = -m[r1, g1, b0] + m[r1, g0, b0] + m[r0, g1, b0] - m[r0, g0, b0]
        top = m[r1, g1, position] - m[r1, g0, position] - m[r0, g1, position] + m[r0, g0, position]
    return bottom + top


@_njit
def _best_cut(box, axis, weight, sum_r, sum_g, sum_b):
    """cq's Maximize: over the cut positions inside `box` along `axis`, the largest single-precision
    |S_low|^2/n_low + |S_high|^2/n_high (both parts non-empty; the first position wins ties). Returns the
    criterion (0 if none) and the position (-1 if none)."""
    whole_w = _box_sum(weight, box)
    whole_r = _box_sum(sum_r, box)
    whole_g = _box_sum(sum_g, box)
    whole_b = _box_sum(sum_b, box)
    best = _F32_ZERO
    cut = -1
    for position in range(box[2 * axis] + 1, box[2 * axis + 1]):
        low_w = _partial_sum(weight, box, axis, position)
        if low_w == 0:
            continue
        high_w = whole_w - low_w
        if high_w == 0:
            continue
        part_r = _partial_sum(sum_r, box, axis, position)
        part_g = _partial_sum(sum_g, box, axis, position)
        part_b = _partial_sum(sum_b, box, axis, position)
        low_r = np.float32(part_r)
        low_g = np.float32(part_g)
        low_b = np.float32(part_b)
        score = (low_r * low_r + low_g * low_g + low_b * low_b) / np.float32(low_w)
        high_r = np.float32(whole_r - part_r)
        high_g = np.float32(whole_g - part_g)
        high_b = np.float32(whole_b - part_b)
        score = score + (high_r * high_r + high_g * high_g + high_b * high_b) / np.float32(high_w)
        if score > best:
            best = score
            cut = position
    return best, cut


@_njit
def _split(boxes, source, target, weight, sum_r, sum_g, sum_b):
    """cq's Cut: splits box `source` along the axis with the best criterion (red, then green, then blue on
    ties) into itself (lower part) and box `target` (upper part). Returns False if the box cannot be split."""
    box = boxes[source]
    best = np.zeros(3, np.float32)
    cuts = np.zeros(3, np.int64)
    for axis in range(3):  # one call in a loop compiles in half the time of three calls
        best[axis], cuts[axis] = _best_cut(box, axis, weight, sum_r, sum_g, sum_b)
    if best[0] >= best[1] and best[0] >= best[2]:
        if cuts[0] < 0:
            return False
        axis = 0
    elif best[1] >= best[0] and best[1] >= best[2]:
        axis = 1
    else:
        axis = 2
    cut = cuts[axis]
    for k in range(6):  # element by element: a slice assignment costs Numba seconds to compile
        boxes[target, k] = boxes[source, k]
    boxes[target, 2 * axis] = cut
    boxes[source, 2 * axis + 1] = cut
    return True


@_njit
def _volume(box):
    return (box[1] - box[0]) * (box[3] - box[2]) * (box[5] - box[4])


@_njit
def minimum_variance_palette(rgb, colors):
    """MATLAB `cq(rgb, colors)` on an HxWx3 uint8 image: at most `colors` boxes of the 5-bit colour cube, each
    time splitting the box of largest variance at the cut that minimises the summed variance of its halves;
    every box's colour is its pixels' channel sums divided by their count, truncated. Returns a (k, 3) uint8
    palette in box order, k <= colors (fewer when no box can be split further)."""
    weight, sum_r, sum_g, sum_b, square = _moments(rgb)
    boxes = np.zeros((max(colors, 1), 6), np.int64)
    boxes[0, 1] = 32
    boxes[0, 3] = 32
    boxes[0, 5] = 32
    variance = np.zeros(max(colors, 1), np.float32)
    count = colors
    largest = 0
    i = 1
    while i < colors:
        if _split(boxes, largest, i, weight, sum_r, sum_g, sum_b):
            variance[largest] = (
                _box_variance(boxes[largest], weight, sum_r, sum_g, sum_b, square)
                if _volume(boxes[largest]) > 1
                else _F32_ZERO
            )
            variance[i] = (
                _box_variance(boxes[i], weight, sum_r, sum_g, sum_b, square) if _volume(boxes[i]) > 1 else _F32_ZERO
            )
        else:
            variance[largest] = _F32_ZERO  # never try this box again
            i -= 1  # box i was not made
        largest = 0
        top = variance[0]
        for k in range(1, i + 1):
            if variance[k] > top:
                top = variance[k]
                largest = k
        if top <= _F32_ZERO:
            count = i + 1
            break
        i += 1
    palette = np.zeros((count, 3), np.uint8)
    for k in range(count):
        n = _box_sum(weight, boxes[k])
        if n != 0:
            palette[k, 0] = _box_sum(sum_r, boxes[k]) // n
            palette[k, 1] = _box_sum(sum_g, boxes[k]) // n
            palette[k, 2] = _box_sum(sum_b, boxes[k]) // n
    return palette


# ------------------------------------------------------------------------------------- dither (Qm 5, Qe 8)


# The inverse colormap of `dither` is Spencer Thomas's distance-buffer method ("Efficient inverse color map
# computation", Graphics Gems II) as MATLAB runs it: colour by colour, cells are scanned outwards from the colour's
# own cell, along blue within a green row, green rows within a red plane, red planes up then down; a cell takes the
# colour when it is strictly closer than the distance stored so far, and each scan stops at the first row (plane)
# past the region where nothing was taken. The region's lattice cells are not always contiguous along a scan (thin
# tips of Voronoi cells), so some cells keep an earlier colour that is not their nearest one: MATLAB's maps have
# those cells too. The scans also narrow their green and blue ranges as the region shrinks ("min/max tracking").
# State of the scans (one int64 array): distances at the current starting cells, the green and blue scan ranges.
_PLANE_DIST, _ROW_DIST = 0, 1
_G_START, _G_LOW, _G_HIGH, _G_STEP, _G_PREV_HIGH, _G_PREV_LOW = 2, 3, 4, 5, 6, 7
_B_START, _B_LOW, _B_HIGH, _B_STEP, _B_PREV_HIGH, _B_PREV_LOW = 8, 9, 10, 11, 12, 13
_G_CENTRE, _G_CENTRE_STEP, _B_CENTRE, _B_CENTRE_STEP, _COLOUR = 14, 15, 16, 17, 18
_CELLS = 32  # cells per axis (Qm = 5 bits)
_CELL = 8  # channel values per cell (8 - Qm = 3 bits)
_STEP_GROWTH = 2 * _CELL * _CELL  # the second difference of the squared distance between neighbouring cells


@_njit
def _scan_row(s, dist, owner, r, g, restart):
    """Thomas's blue scan of row (r, g): from the blue start cell upwards, find the first closer cell (moving the
    start there), give the run of closer cells the colour, then the same downwards. Returns whether any cell of
    the row was closer."""
    if restart:
        s[_B_START] = s[_B_CENTRE]
        s[_B_LOW] = 0
        s[_B_HIGH] = _CELLS - 1
        s[_B_STEP] = s[_B_CENTRE_STEP]
        s[_B_PREV_LOW] = _CELLS
        s[_B_PREV_HIGH] = 0
    colour = s[_COLOUR]
    found = False
    this_low = s[_B_LOW]
    this_high = s[_B_HIGH]
    b = s[_B_START]
    d = s[_ROW_DIST]
    step = s[_B_STEP]
    limit = s[_B_HIGH]
    while b <= limit:  # find the first closer cell at or above the start
        if dist[r, g, b] > d:
            if b > s[_B_START]:
                s[_B_START] = b
                s[_ROW_DIST] = d
                s[_B_STEP] = step
                this_low = b
            found = True
            break
        b += 1
        d += step
        step += _STEP_GROWTH
    while b <= limit:  # fill the run of closer cells
        if dist[r, g, b] > d:
            dist[r, g, b] = d
            owner[r, g, b] = colour
        else:
            this_high = b - 1
            break
        b += 1
        d += step
        step += _STEP_GROWTH
    limit = s[_B_LOW]
    b = s[_B_START] - 1
    step = s[_B_STEP] - _STEP_GROWTH
    d = s[_ROW_DIST] - step
    if not found:  # find the first closer cell below the start
        while b >= limit:
            if dist[r, g, b] > d:
                s[_B_START] = b
                s[_ROW_DIST] = d
                s[_B_STEP] = step
                this_high = b
                found = True
                break
            b -= 1
            step -= _STEP_GROWTH
            d -= step
    while b >= limit:  # fill the run of closer cells downwards
        if dist[r, g, b] > d:
            dist[r, g, b] = d
            owner[r, g, b] = colour
        else:
            this_low = b + 1
            break
        b -= 1
        step -= _STEP_GROWTH
        d -= step
    if found:  # the blue range only ever narrows
        if this_high < s[_B_PREV_HIGH]:
            s[_B_HIGH] = this_high
        if this_low > s[_B_PREV_LOW]:
            s[_B_LOW] = this_low
        s[_B_PREV_HIGH] = this_high
        s[_B_PREV_LOW] = this_low
    return found


@_njit
def _scan_plane(s, dist, owner, r, restart):
    """Thomas's green scan of plane r: rows from the green start upwards until a row past the region, then
    downwards; the start moves to the first row where something was closer. Returns whether any row was."""
    if restart:
        s[_G_START] = s[_G_CENTRE]
        s[_G_LOW] = 0
        s[_G_HIGH] = _CELLS - 1
        s[_G_STEP] = s[_G_CENTRE_STEP]
        s[_G_PREV_HIGH] = 0
        s[_G_PREV_LOW] = _CELLS
    this_low = s[_G_LOW]
    this_high = s[_G_HIGH]
    found = False
    g = s[_G_START]
    centre_dist = s[_PLANE_DIST]  # distance at (r, g, blue centre)
    s[_ROW_DIST] = centre_dist
    step = s[_G_STEP]
    first = True
    while g <= s[_G_HIGH]:
        if _scan_row(s, dist, owner, r, g, first):
            if not found:
                if g > s[_G_START]:
                    s[_G_START] = g
                    s[_PLANE_DIST] = centre_dist
                    s[_G_STEP] = step
                    this_low = g
                found = True
        elif found:
            this_high = g - 1
            break
        g += 1
        s[_ROW_DIST] += step
        centre_dist += step
        step += _STEP_GROWTH
        first = False
    g = s[_G_START] - 1
    step = s[_G_STEP] - _STEP_GROWTH
    centre_dist = s[_PLANE_DIST] - step
    s[_ROW_DIST] = centre_dist
    first = True
    while g >= s[_G_LOW]:
        if _scan_row(s, dist, owner, r, g, first):
            if not found:
                s[_G_START] = g
                s[_PLANE_DIST] = centre_dist
                s[_G_STEP] = step
                this_high = g
                found = True
        elif found:
            this_low = g + 1
            break
        g -= 1
        step -= _STEP_GROWTH
        s[_ROW_DIST] -= step
        centre_dist -= step
        first = False
    if found:  # the green range only ever narrows
        if this_high < s[_G_PREV_HIGH]:
            s[_G_HIGH] = this_high
        s[_G_PREV_HIGH] = this_high
        if this_low > s[_G_PREV_LOW]:
            s[_G_LOW] = this_low
        s[_G_PREV_LOW] = this_low
    return found


@_njit
def inverse_colormap(palette):
    """MATLAB `dither`'s inverse colormap at Qm = 5 bits for a (k, 3) palette of 0..255 integer channels: for
    each of the 32^3 cells (index r*1024 + g*32 + b of the top 5 bits), the palette entry Thomas's scans assign
    (see above): the nearest entry to the cell centre 8*cell + 4 in squared distance, first entry on ties, except
    in the cells the scans do not reach."""
    dist = np.full((_CELLS, _CELLS, _CELLS), np.int64(1) << 62, np.int64)
    owner = np.zeros((_CELLS, _CELLS, _CELLS), np.int64)
    s = np.zeros(19, np.int64)
    half = _CELL // 2
    for colour in range(palette.shape[0]):
        red, green, blue = np.int64(palette[colour, 0]), np.int64(palette[colour, 1]), np.int64(palette[colour, 2])
        r_centre, g_centre, b_centre = red >> 3, green >> 3, blue >> 3
        dr = red - (r_centre * _CELL + half)
        dg = green - (g_centre * _CELL + half)
        db = blue - (b_centre * _CELL + half)
        centre_dist = dr * dr + dg * dg + db * db
        # Change of the squared distance from a cell to the next one up, at the centre cell, per axis.
        r_step = 2 * ((r_centre + 1) * _CELL * _CELL - red * _CELL)
        s[_G_CENTRE] = g_centre
        s[_G_CENTRE_STEP] = 2 * ((g_centre + 1) * _CELL * _CELL - green * _CELL)
        s[_B_CENTRE] = b_centre
        s[_B_CENTRE_STEP] = 2 * ((b_centre + 1) * _CELL * _CELL - blue * _CELL)
        s[_COLOUR] = colour
        found = False
        r = r_centre
        s[_PLANE_DIST] = centre_dist
        step = r_step
        first = True
        while r < _CELLS:
            if _scan_plane(s, dist, owner, r, first):
                found = True
            elif found:
                break
            r += 1
            s[_PLANE_DIST] += step
            step += _STEP_GROWTH
            first = False
        r = r_centre - 1
        step = r_step - _STEP_GROWTH
        s[_PLANE_DIST] = centre_dist - step
        first = True
        while r >= 0:
            if _scan_plane(s, dist, owner, r, first):
                found = True
            elif found:
                break
            r -= 1
            step -= _STEP_GROWTH
            s[_PLANE_DIST] -= step
            first = False
    return owner.reshape(-1)


@_njit
def _share(error, weight):
    """The part weight/16 of an integer error, rounded to nearest with halves away from zero in magnitude (the
    table `dither` builds: (8 + weight*|e|) // 16 with the sign of e)."""
    if error >= 0:
        return (8 + weight * error) // 16
    return -((8 - weight * error) // 16)


@_njit
def error_diffusion(rgb, palette, table):
    """MATLAB `dither(rgb, map)` with Qm = 5, Qe = 8 on an HxWx3 uint8 image: walks down each column, columns
    left to right; each pixel (its running value clamped to 0..255) takes the palette entry the inverse colormap
    `table` gives for its top 5 bits, and its integer error is passed on in sixteenths: 7 to the pixel below,
    5 to the right, 3 to the upper right and 1 to the lower right. Returns the HxW int64 palette indices."""
    h, w = rgb.shape[0], rgb.shape[1]
    out = np.zeros((h, w), np.int64)
    current = np.zeros((h, 3), np.int64)
    following = np.zeros((h, 3), np.int64)
    for y in range(h):
        for c in range(3):
            following[y, c] = rgb[y, 0, c]
    for x in range(w):
        for y in range(h):  # element by element: Numba compiles slice assignments slowly
            for c in range(3):
                current[y, c] = following[y, c]
        if x < w - 1:
            for y in range(h):
                for c in range(3):
                    following[y, c] = rgb[y, x + 1, c]
        for y in range(h):
            for c in range(3):
                v = current[y, c]
                current[y, c] = max(0, min(v, 255))
            index = table[((current[y, 0] >> 3) << 10) + ((current[y, 1] >> 3) << 5) + (current[y, 2] >> 3)]
            out[y, x] = index
            for c in range(3):
                error = current[y, c] - palette[index, c]
                current[y, c] = error
                if y != h - 1:
                    current[y + 1, c] += _share(error, 7)
                if x != w - 1:
                    following[y, c] += _share(error, 5)
                    if y != 0:
                        following[y - 1, c] += _share(error, 3)
                    if y != h - 1:
                        following[y + 1, c] += _share(error, 1)
    return out
