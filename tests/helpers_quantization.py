"""Plain, slow references of MATLAB's quantisers for tests/test_quantization.py, written from the published
procedures (Wu's quantiser, Graphics Gems II 1991, as MATLAB's `cq` runs it; Thomas's inverse colormap, Graphics
Gems II; MATLAB's `dither` error diffusion; Nelder-Mead with MATLAB's `fminsearch` rules; Otsu's criterion as
`multithresh` evaluates it) with Python loops, dicts and integers. They share no code with deepfl."""

from __future__ import annotations

import itertools
import math

import numpy as np

# ------------------------------------------------------------------------------------------------ Wu / cq


def _cell_moments_float32(rgb: np.ndarray) -> np.ndarray:
    """cq's float32 sum of r^2+g^2+b^2 per 5-bit cell (pixels in column order), then its cumulative table built
    plane by plane, row by row, as cq's M3d does. Indexed [r, g, b] with cells 1..32 and a zero border."""
    per_cell = np.zeros((33, 33, 33), np.float32)
    h, w = rgb.shape[:2]
    for x in range(w):
        for y in range(h):
            r, g, b = (int(v) for v in rgb[y, x])
            per_cell[(r >> 3) + 1, (g >> 3) + 1, (b >> 3) + 1] += np.float32(r * r + g * g + b * b)
    table = np.zeros((33, 33, 33), np.float32)
    for r in range(1, 33):
        area = [np.float32(0)] * 33
        for g in range(1, 33):
            line = np.float32(0)
            for b in range(1, 33):
                line = np.float32(line + per_cell[r, g, b])
                area[b] = np.float32(area[b] + line)
                table[r, g, b] = np.float32(table[r - 1, g, b] + area[b])
    return table


def wu_palette(rgb: np.ndarray, colors: int) -> np.ndarray:
    """Wu's greedy bipartition of the 32^3 cells of the top 5 bits, as `cq`: split the box of largest variance
    at the cut (red, green, blue; lowest position on ties) maximising |S1|^2/n1 + |S2|^2/n2 in float32; colour =
    truncated mean. Integer box statistics are summed over the pixels directly."""
    cells = (rgb.reshape(-1, 3).astype(np.int64) >> 3) + 1
    values = rgb.reshape(-1, 3).astype(np.int64)
    squares = _cell_moments_float32(rgb)

    def stats(box):
        r0, r1, g0, g1, b0, b1 = box
        inside = (
            (cells[:, 0] > r0)
            & (cells[:, 0] <= r1)
            & (cells[:, 1] > g0)
            & (cells[:, 1] <= g1)
            & (cells[:, 2] > b0)
            & (cells[:, 2] <= b1)
        )
        return int(inside.sum()), [int(v) for v in values[inside].sum(axis=0)]

    def variance(box):
        n, sums = stats(box)
        r0, r1, g0, g1, b0, b1 = box
        xx = squares[r1, g1, b1]
        for sign, (r, g, b) in (
            (-1, (r1, g1, b0)),
            (-1, (r1, g0, b1)),
            (1, (r1, g0, b0)),
            (-1, (r0, g1, b1)),
            (1, (r0, g1, b0)),
            (1, (r0, g0, b1)),
            (-1, (r0, g0, b0)),
        ):
            xx = np.float32(xx + squares[r, g, b]) if sign > 0 else np.float32(xx - squares[r, g, b])
        s = [np.float32(v) for v in sums]
        return np.float32(abs(xx - (s[0] * s[0] + s[1] * s[1] + s[2] * s[2]) / np.float32(n)))

    def criterion(sums, n):
        s = [np.float32(v) for v in sums]
        return (s[0] * s[0] + s[1] * s[1] + s[2] * s[2]) / np.float32(n)

    def best_cut(box, axis):
        n, sums = stats(box)
        best, where = np.float32(0), -1
        for position in range(box[2 * axis] + 1, box[2 * axis + 1]):
            low = list(box)
            low[2 * axis + 1] = position
            n_low, sums_low = stats(low)
            if n_low == 0 or n_low == n:
                continue
            score = criterion(sums_low, n_low) + criterion([a - b for a, b in zip(sums, sums_low)], n - n_low)
            if score > best:
                best, where = score, position
        return best, where

    boxes = [[0, 32, 0, 32, 0, 32]]
    spread = [np.float32(0)]
    largest = 0
    while len(boxes) < colors:
        box = boxes[largest]
        cuts = [best_cut(box, axis) for axis in range(3)]
        (mr, cr), (mg, cg), (mb, cb) = cuts
        if mr >= mg and mr >= mb:
            axis, cut = 0, cr
        elif mg >= mr and mg >= mb:
            axis, cut = 1, cg
        else:
            axis, cut = 2, cb
        if cut < 0:
            spread[largest] = np.float32(0)
        else:
            upper = list(box)
            upper[2 * axis] = cut
            box[2 * axis + 1] = cut
            boxes.append(upper)
            spread.append(np.float32(0))
            for k in (largest, len(boxes) - 1):
                b = boxes[k]
                volume = (b[1] - b[0]) * (b[3] - b[2]) * (b[5] - b[4])
                spread[k] = variance(b) if volume > 1 else np.float32(0)
        largest = max(range(len(spread)), key=lambda k: (spread[k], -k))
        if spread[largest] <= 0:
            break
    palette = []
    for box in boxes:
        n, sums = stats(box)
        palette.append([v // n for v in sums] if n else [0, 0, 0])
    return np.array(palette, dtype=np.uint8)


# ----------------------------------------------------------------------------------- inverse colormap, dither


def nearest_inverse_colormap(palette: np.ndarray) -> np.ndarray:
    """For each 5-bit cell (index r*1024 + g*32 + b), the first palette entry nearest to the centre 8*cell+4."""
    table = np.zeros(32**3, np.int64)
    entries = [tuple(int(v) for v in row) for row in palette]
    for index in range(32**3):
        centre = ((index >> 10) * 8 + 4, ((index >> 5) & 31) * 8 + 4, (index & 31) * 8 + 4)
        distances = [sum((c - p) ** 2 for c, p in zip(centre, entry)) for entry in entries]
        table[index] = distances.index(min(distances))
    return table


class _ThomasScans:
    """Thomas's distance-buffer inverse colormap (inv_cmap_2 with min/max tracking) at 5 bits, as MATLAB's
    `dither` computes it: per colour, scans out from its cell along blue rows, green rows and red planes, each
    scan stopping past the region where the colour is strictly closer than the buffer."""

    size, cell = 32, 8
    growth = 2 * cell * cell

    def __init__(self):
        self.buffer = np.full((self.size,) * 3, 2**62, dtype=np.int64)
        self.owner = np.zeros((self.size,) * 3, dtype=np.int64)

    def add(self, colour: int, rgb: tuple) -> None:
        self.colour = colour
        self.centre = [v >> 3 for v in rgb]
        offsets = [v - (c * self.cell + self.cell // 2) for v, c in zip(rgb, self.centre)]
        start_dist = sum(o * o for o in offsets)
        self.start_step = [2 * ((c + 1) * self.cell * self.cell - v * self.cell) for v, c in zip(rgb, self.centre)]
        self.green, self.blue = {}, {}
        for direction in (1, -1):
            found, first = False, True
            if direction == 1:
                r, step = self.centre[0], self.start_step[0]
                self.plane_dist = start_dist
            else:
                r, step = self.centre[0] - 1, self.start_step[0] - self.growth
                self.plane_dist = start_dist - step
            while 0 <= r < self.size:
                if self.scan_plane(r, first):
                    found = True
                elif found:
                    break
                first = False
                if direction == 1:
                    r += 1
                    self.plane_dist += step
                    step += self.growth
                else:
                    r -= 1
                    step -= self.growth
                    self.plane_dist -= step

    def _restart(self, scan: dict, axis: int) -> None:
        scan.update(
            start=self.centre[axis],
            low=0,
            high=self.size - 1,
            step=self.start_step[axis],
            prev_low=self.size,
            prev_high=0,
        )

    @staticmethod
    def _narrow(scan: dict, low: int, high: int) -> None:
        if high < scan["prev_high"]:
            scan["high"] = high
        if low > scan["prev_low"]:
            scan["low"] = low
        scan.update(prev_high=high, prev_low=low)

    def _take(self, r, g, b, d) -> bool:
        if self.buffer[r, g, b] > d:
            self.buffer[r, g, b], self.owner[r, g, b] = d, self.colour
            return True
        return False

    def scan_row(self, r: int, g: int, restart: bool) -> bool:
        scan = self.blue
        if restart:
            self._restart(scan, 2)
        found = False
        low, high = scan["low"], scan["high"]
        b, d, step = scan["start"], self.row_dist, scan["step"]
        while b <= scan["high"]:
            if self.buffer[r, g, b] > d:
                if b > scan["start"]:
                    scan.update(start=b, step=step)
                    self.row_dist = d
                    low = b
                found = True
                break
            b, d, step = b + 1, d + step, step + self.growth
        while b <= scan["high"]:
            if not self._take(r, g, b, d):
                high = b - 1
                break
            b, d, step = b + 1, d + step, step + self.growth
        b, step = scan["start"] - 1, scan["step"] - self.growth
        d = self.row_dist - step
        if not found:
            while b >= scan["low"]:
                if self.buffer[r, g, b] > d:
                    scan.update(start=b, step=step)
                    self.row_dist = d
                    high = b
                    found = True
                    break
                b, step = b - 1, step - self.growth
                d -= step
        while b >= scan["low"]:
            if not self._take(r, g, b, d):
                low = b + 1
                break
            b, step = b - 1, step - self.growth
            d -= step
        if found:
            self._narrow(scan, low, high)
        return found

    def scan_plane(self, r: int, restart: bool) -> bool:
        scan = self.green
        if restart:
            self._restart(scan, 1)
        found = False
        low, high = scan["low"], scan["high"]
        g, step = scan["start"], scan["step"]
        at_centre = self.row_dist = self.plane_dist
        first = True
        while g <= scan["high"]:
            if self.scan_row(r, g, first):
                if not found:
                    if g > scan["start"]:
                        scan.update(start=g, step=step)
                        self.plane_dist = at_centre
                        low = g
                    found = True
            elif found:
                high = g - 1
                break
            g, first = g + 1, False
            self.row_dist += step
            at_centre += step
            step += self.growth
        g, step = scan["start"] - 1, scan["step"] - self.growth
        at_centre = self.row_dist = self.plane_dist - step
        first = True
        while g >= scan["low"]:
            if self.scan_row(r, g, first):
                if not found:
                    scan.update(start=g, step=step)
                    self.plane_dist = at_centre
                    high = g
                    found = True
            elif found:
                low = g + 1
                break
            g, first = g - 1, False
            step -= self.growth
            self.row_dist -= step
            at_centre -= step
        if found:
            self._narrow(scan, low, high)
        return found


def thomas_inverse_colormap(palette: np.ndarray) -> np.ndarray:
    """MATLAB dither's inverse colormap (Thomas's scans, see _ThomasScans) of a (k, 3) integer palette."""
    scans = _ThomasScans()
    for colour, rgb in enumerate(palette.astype(np.int64).tolist()):
        scans.add(colour, tuple(rgb))
    return scans.owner.reshape(-1)


def dither(rgb: np.ndarray, levels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """MATLAB `dither` error diffusion (Qe = 8) written pixel by pixel: columns left to right, each top to bottom;
    a pixel's value plus the errors it received, clamped to 0..255, picks table[top 5 bits]; the error
    (clamped value - palette level) goes 7/16 down, 5/16 right, 3/16 up-right, 1/16 down-right, each share
    rounded half away from zero."""
    h, w = rgb.shape[:2]
    received = np.zeros((h, w, 3), dtype=np.int64)
    out = np.zeros((h, w), dtype=np.int64)

    def share(error, weight):
        return (1 if error >= 0 else -1) * ((8 + weight * abs(error)) // 16)

    for x in range(w):
        for y in range(h):
            value = [min(255, max(0, int(rgb[y, x, c]) + int(received[y, x, c]))) for c in range(3)]
            index = int(table[(value[0] >> 3) * 1024 + (value[1] >> 3) * 32 + (value[2] >> 3)])
            out[y, x] = index
            for c in range(3):
                error = value[c] - int(levels[index, c])
                for dy, dx, weight in ((1, 0, 7), (0, 1, 5), (-1, 1, 3), (1, 1, 1)):
                    if 0 <= y + dy < h and x + dx < w:
                        received[y + dy, x + dx, c] += share(error, weight)
    return out


# ---------------------------------------------------------------------------------------- Nelder-Mead, Otsu


def nelder_mead(f, x0, tol_x=1e-4, tol_fun=1e-4):
    """Nelder-Mead as MATLAB's fminsearch runs it (Lagarias et al. 1998): coefficients 1, 2, 1/2, 1/2; start
    simplex x0 and x0 with one coordinate times 1.05 (0.00025 if zero); vertices sorted stably by value; at most
    200n iterations and evaluations. Lists of floats throughout."""
    n = len(x0)
    points = [list(map(float, x0))]
    for j in range(n):
        y = list(map(float, x0))
        y[j] = 1.05 * y[j] if y[j] != 0 else 0.00025
        points.append(y)
    simplex = sorted(((f(p), i, p) for i, p in enumerate(points)), key=lambda t: (t[0], t[1]))
    simplex = [(v, p) for v, _, p in simplex]
    evaluations, iterations = n + 1, 1

    def spacing(v):
        return float(np.spacing(abs(v))) if math.isfinite(v) else 0.0

    while evaluations < 200 * n and iterations < 200 * n:
        best_value, best = simplex[0]
        value_gap = max(
            (abs(best_value - v) for v, _ in simplex[1:] if not math.isnan(abs(best_value - v))), default=math.nan
        )
        point_gap = max(abs(p[i] - best[i]) for _, p in simplex[1:] for i in range(n))
        if value_gap <= max(tol_fun, 10 * spacing(best_value)) and point_gap <= max(tol_x, 10 * spacing(max(best))):
            break
        total = [0.0] * n
        for _, p in simplex[:n]:
            total = [t + c for t, c in zip(total, p)]
        mean = [t / n for t in total]
        worst_value, worst = simplex[n]

        def towards(a, b, mean=mean, worst=worst):  # a*mean - b*worst
            return [a * m - b * w for m, w in zip(mean, worst)]

        reflected = towards(2.0, 1.0)
        fr = f(reflected)
        evaluations += 1
        new = None
        if fr < simplex[0][0]:
            expanded = towards(3.0, 2.0)
            fe = f(expanded)
            evaluations += 1
            new = (fe, expanded) if fe < fr else (fr, reflected)
        elif fr < simplex[n - 1][0]:
            new = (fr, reflected)
        elif fr < worst_value:
            outside = towards(1.5, 0.5)
            fo = f(outside)
            evaluations += 1
            new = (fo, outside) if fo <= fr else None
        else:
            inside = [0.5 * m + 0.5 * w for m, w in zip(mean, worst)]
            fi = f(inside)
            evaluations += 1
            new = (fi, inside) if fi < worst_value else None
        if new is not None:
            simplex[n] = new
        else:
            shrunk = [simplex[0]]
            for _, p in simplex[1:]:
                q = [b + 0.5 * (c - b) for b, c in zip(best, p)]
                shrunk.append((f(q), q))
            simplex = shrunk
            evaluations += n
        order = sorted(range(n + 1), key=lambda i: (simplex[i][0], i))
        simplex = [simplex[i] for i in order]
        iterations += 1
    return simplex[0][1], simplex[0][0]


def otsu_pdf(values: np.ndarray) -> tuple[list, float, float]:
    """multithresh's histogram: (values - min)/(max - min), scaled to 0..255 and rounded, as a 256-bin pdf."""
    lo, hi = float(values.min()), float(values.max())
    counts = [0] * 256
    for v in values.ravel():
        counts[math.floor((float(v) - lo) / (hi - lo) * 255 + 0.5)] += 1
    total = sum(counts)
    return [c / total for c in counts], lo, hi


def otsu_objective(pdf: list, thresholds) -> float:
    """multithresh's objCriteriaND written out: classes [0, t1], (t1, t2], ..., (tn, 255] of the rounded
    thresholds; minus the between-class variance sum_k w_k (m_k - m)^2, +Inf for invalid or empty classes."""
    cuts = [int(math.copysign(math.floor(abs(t) + 0.5), t)) for t in thresholds]
    if not all(b > a for a, b in zip([0] + cuts, cuts + [255])):
        return math.inf
    omega, mu = [], []
    running_w = running_m = 0.0
    for i, p in enumerate(pdf):
        running_w += p
        running_m += p * (i + 1)
        omega.append(running_w)
        mu.append(running_m)
    mean = mu[-1]
    total, previous_w, previous_m = 0.0, 0.0, 0.0
    for k, cut in enumerate(cuts + [255]):
        w = omega[cut] - previous_w if k else omega[cut]
        if w == 0:
            return math.inf
        m = (mu[cut] - previous_m) / w if k else mu[cut] / w
        total = total + w * ((m - mean) * (m - mean))
        previous_w, previous_m = omega[cut], mu[cut]
    return -total


def best_thresholds_brute_force(pdf: list, n: int, every_bin: bool = False) -> tuple[float, list]:
    """The largest between-class variance over every placement of n increasing thresholds (bins 1..254) and all
    placements reaching it. Unless `every_bin`, only bin 1 and occupied bins are tried: the classes, hence the
    largest value, only change there (the list of placements is then not complete)."""
    candidates = range(1, 255) if every_bin else sorted({1} | {i for i, p in enumerate(pdf) if p > 0 and 0 < i < 255})
    best, where = -math.inf, []
    for cuts in itertools.combinations(candidates, n):
        value = -otsu_objective(pdf, cuts)
        if value > best:
            best, where = value, [list(cuts)]
        elif value == best:
            where.append(list(cuts))
    return best, where
