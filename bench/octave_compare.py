"""Compares deepfl.distortions with the official MATLAB generator run under GNU Octave (development check).

Needs `octave` with the image package and a local copy of the official `matlab_code_imdistort` folder (from
the public repository CaptainEven/SelfSuperviseAidedBlindIQA; never commit it). Octave lacks a few MATLAB
functions the code calls; small shims with MATLAB's documented definitions are written to a temporary folder:
`imgaussfilt` (Gaussian of size 2*ceil(2*sigma)+1, replicate padding, per plane), `normr`, `istable`, and
`imwarpmap` with interp2's 'bicubic' renamed 'cubic' (Octave's name; padding as the original, padme=true).
Octave's own `fspecial('motion')` rotates a line bilinearly, unlike MATLAB's, so type 3 differs there.

For deterministic types it prints the PSNR of our output against Octave's; for random types (motion blur is
compared with a fixed angle) it prints the mean absolute change from the reference, ours vs Octave, over
several seeds, and per-type milliseconds of both. Run:

    python bench/octave_compare.py --matlab_dir /tmp/imdist/matlab_code_imdistort [--size 384x512]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepfl.distortions import DISTORTIONS, _filters, _ranges, distort  # noqa: E402  # noqa: E402

SHIMS = {
    "imgaussfilt.m": "function b = imgaussfilt(a, sigma)\n"
    "  n = 2*ceil(2*sigma)+1;\n"
    "  k = fspecial('gaussian', [n n], sigma); b = a;\n"
    "  for c = 1:size(a, 3), b(:,:,c) = imfilter(a(:,:,c), k, 'replicate'); end\n"
    "end\n",
    "normr.m": "function y = normr(x)\n  y = x ./ sqrt(sum(x.^2, 2));\nend\n",
    "istable.m": "function r = istable(x)\n  r = false;\nend\n",
    # Octave's interp2 knows 'cubic' but not MATLAB's alias 'bicubic': same warp, method name translated.
    "imwarpmap.m": "function z = imwarpmap(im, shiftmap, interpType, padme)\n"
    "  if strcmp(interpType, 'bicubic'), interpType = 'cubic'; end\n"
    "  sy = shiftmap(:,:,1); sx = shiftmap(:,:,2);\n"
    "  m = ceil([max(abs(sx(:))) max(abs(sy(:)))]);\n"
    "  im = padarray(im, m, 'replicate', 'both');\n"
    "  sy = padarray(sy, m, 'replicate', 'both'); sx = padarray(sx, m, 'replicate', 'both');\n"
    "  [xx, yy] = meshgrid(1:size(im,2), 1:size(im,1));\n"
    "  z = im * 0;\n"
    "  for c = 1:size(im,3), z(:,:,c) = interp2(im(:,:,c), xx-sx, yy-sy, interpType); end\n"
    "  z = z(m(1)+1:end-m(1), m(2)+1:end-m(2), :);\n"
    "end\n",
}

RANDOM_SEEDS = 3


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def run_octave(matlab_dir: Path, ref_png: Path, out_dir: Path, types: list[int]) -> dict:
    """Runs imdist_generator for every (type, level) under Octave; returns {(t, l): seconds}."""
    shim_dir = out_dir / "shims"
    shim_dir.mkdir()
    for name, text in SHIMS.items():
        (shim_dir / name).write_text(text)
    script = out_dir / "run.m"
    reps = RANDOM_SEEDS
    lines = [
        "pkg load image;",
        f"addpath(genpath('{matlab_dir}')); addpath('{shim_dir}');",  # addpath prepends: shims win
        f"im = imread('{ref_png}');",
        f"fid = fopen('{out_dir}/times.csv', 'w');",
        f"types = [{' '.join(str(t) for t in types)}];",
        "for t = types",
        "  for l = 1:5",
        f"    for r = 1:{reps}",
        "      if r > 1 && ~any(t == [3 5 11 12 13 14 15 19 20 23]), break; end",
        "      rand('seed', r); randn('seed', r);",
        "      try",
        "        tic;",
        "        if t == 3",
        "          lv = [1 2 4 6 10];",
        "          d = mapmm(imblurmotion(mapmm(im), lv(l), 30));",
        "        else",
        "          d = imdist_generator(im, t, l);",
        "        end",
        "        s = toc;",
        "        imwrite(im2uint8(d), sprintf('%s/o_%02d_%02d_%d.png', '" + str(out_dir) + "', t, l, r));",
        "        fprintf(fid, '%d,%d,%d,%f\\n', t, l, r, s);",
        "      catch err",
        "        fprintf(fid, '%d,%d,%d,nan\\n', t, l, r);",
        "        disp(sprintf('type %d level %d: %s', t, l, err.message));",
        "      end",
        "    end",
        "  end",
        "end",
        "fclose(fid);",
    ]
    script.write_text("\n".join(lines) + "\n")
    proc = subprocess.run(["octave", "--no-gui", "--quiet", str(script)], capture_output=True, text=True)
    for line in proc.stdout.splitlines() + proc.stderr.splitlines():
        if "level" in line or "error" in line.lower():
            print("octave:", line)
    times = {}
    for row in (out_dir / "times.csv").read_text().splitlines():
        t, l, r, s = row.split(",")
        times.setdefault((int(t), int(l)), []).append(float(s))
    return {k: float(np.nanmean(v)) if not np.all(np.isnan(v)) else float("nan") for k, v in times.items()}


def ours(ref: np.ndarray, t: int, l: int, seed: int) -> np.ndarray:
    if t == 3:  # fixed angle so the deterministic kernel can be compared
        x = _ranges.mapmm(ref.astype(np.float64))
        kernel = _filters.motion_kernel(DISTORTIONS[3].levels[l - 1], 30)
        return _ranges.to_double_uint8_roundtrip(_ranges.mapmm(_filters.filter2d_replicate(x, kernel)))
    return distort(ref, t, l, rng=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matlab_dir", required=True, help="folder matlab_code_imdistort of the official code")
    parser.add_argument("--size", default="384x512", help="HxW crop of the test photograph")
    parser.add_argument("--types", default="1-25", help="types to compare, e.g. 1-25 or 1,2,7")
    args = parser.parse_args()
    if shutil.which("octave") is None:
        sys.exit("octave not found: this comparison only runs where GNU Octave + image package are installed")
    if "-" in args.types:
        a, b = args.types.split("-")
        types = list(range(int(a), int(b) + 1))
    else:
        types = [int(t) for t in args.types.split(",")]
    h, w = (int(v) for v in args.size.split("x"))
    from skimage import data

    ref = np.ascontiguousarray(data.astronaut()[:h, :w])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ref_png = tmp / "ref.png"
        Image.fromarray(ref).save(ref_png)
        t0 = time.perf_counter()
        octave_times = run_octave(Path(args.matlab_dir).resolve(), ref_png, tmp, types)
        print(f"octave total {time.perf_counter() - t0:.1f} s")
        print("| id | name | kind | level PSNR (dB) or mean abs change ours/octave | ours ms | octave ms | ratio |")
        print("|---|---|---|---|---|---|---|")
        for t in types:
            spec = DISTORTIONS[t]
            cells, our_ms, oct_ms = [], [], []
            for l in range(1, 6):
                seeds = range(1, RANDOM_SEEDS + 1) if spec.random and t != 3 else [1]
                octs = [tmp / f"o_{t:02d}_{l:02d}_{r}.png" for r in seeds]
                if not all(p.exists() for p in octs):
                    cells.append("n/a")
                    continue
                start = time.perf_counter()
                mine = [ours(ref, t, l, seed) for seed in seeds]
                our_ms.append((time.perf_counter() - start) / len(mine) * 1000)
                oct_ms.append(octave_times.get((t, l), float("nan")) * 1000)
                theirs = [np.asarray(Image.open(p).convert("RGB")) for p in octs]
                if spec.random and t != 3:
                    m = np.mean([np.abs(x.astype(float) - ref).mean() for x in mine])
                    o = np.mean([np.abs(x.astype(float) - ref).mean() for x in theirs])
                    cells.append(f"{m:.2f}/{o:.2f}")
                else:
                    cells.append(f"{psnr(mine[0], theirs[0]):.1f}")
            kind = "random" if spec.random and t != 3 else "deterministic"
            om, oo = np.mean(our_ms) if our_ms else float("nan"), np.nanmean(oct_ms) if oct_ms else float("nan")
            print(f"| {t} | {spec.name} | {kind} | {' '.join(cells)} | {om:.0f} | {oo:.0f} | {oo / om:.1f}x |")


if __name__ == "__main__":
    main()
