"""Benchmark of KADIS-style generation: per-type ms and overall distorted images/s, 512x384 PNG in and out
(`--size` for other sizes: users' own photos, unresized).

Part 1 (one process): for each of the 25 types, ms per distorted image for decode (amortised over 5 levels),
`distort` and PNG encode (the generator's writer, `deepfl.png`), wall and CPU time, beside the official MATLAB
code's ms under GNU Octave on the same image (only where `octave` and --matlab_dir are available; Octave cannot
run types 6, 9, 15, 22, 23); decoding is the generator's (`deepfl.png.decode_png_rgb`). Then the PNG writers
side by side (Pillow compress_level=1 vs deepfl.png levels and back ends: CPU ms and KB per image). Part 2: the
generator's work function (`deepfl.generation.process_reference`) over 25 types x --refs_per_type references
with a pool of --workers processes, as `deepfl-distort` runs it, in distorted images/s. The load average is
printed before and after: on a shared machine CPU ms are the steadier figure.

    python bench/distort.py [--refs_per_type 2] [--workers 2] [--matlab_dir /tmp/imdist/matlab_code_imdistort]
    python bench/distort.py --size 2048x1536 --refs_per_type 1    # a 3-megapixel photo
    python bench/distort.py --size 4000x3000 --refs_per_type 0    # a 12-megapixel photo, part 1 only
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("DEEPFL_NO_PROGRESS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from deepfl.distortions import DISTORTION_NAMES, distort  # noqa: E402
from deepfl.generation import encode_output, init_worker, process_reference  # noqa: E402
from deepfl.images import encode_image  # noqa: E402
from deepfl.png import decode_png_rgb  # noqa: E402


def references(count: int, width: int = 512, height: int = 384) -> list[np.ndarray]:
    """`count` different `width` x `height` photographs from scikit-image's data (crops and flips of a few photos,
    resized to cover the size)."""
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
    out = []
    for i in range(count):
        photo = photos[i % len(photos)]
        pil = Image.fromarray(photo)
        scale = max(width / pil.width, height / pil.height)
        pil = pil.resize(
            (max(width, round(pil.width * scale)), max(height, round(pil.height * scale))), Image.Resampling.LANCZOS
        )
        arr = np.asarray(pil)[:height, :width]
        if (i // len(photos)) % 2:
            arr = arr[:, ::-1]
        out.append(np.ascontiguousarray(arr))
    return out


def per_type(ref_png: bytes, repeats: int) -> dict[int, tuple[float, float, float, float, float]]:
    """type -> (decode ms, distort ms, encode ms, CPU ms of all three, distort CPU ms) per distorted image, one
    process; PNG encoding by the generator's writer (`deepfl.png`).

    CPU time (`time.process_time`) is printed too: on a shared machine it is far steadier than wall time.
    """
    results = {}
    for t in DISTORTION_NAMES:
        dec = dis = enc = dis_cpu = 0.0
        distort(decode_png_rgb(ref_png), t, 1, rng=0)  # warm-up (imports, caches)
        cpu_start = time.process_time()
        for r in range(repeats):
            start = time.perf_counter()
            image = decode_png_rgb(ref_png)  # the generator's reader for PNG references
            dec += time.perf_counter() - start
            for level in range(1, 6):
                start = time.perf_counter()
                start_cpu = time.process_time()
                out = distort(image, t, level, rng=r)
                mid = time.perf_counter()
                dis_cpu += time.process_time() - start_cpu
                encode_output(out, "png")
                dis += mid - start
                enc += time.perf_counter() - mid
        n = 5 * repeats
        cpu = (time.process_time() - cpu_start) / n * 1000
        results[t] = (dec / n * 1000, dis / n * 1000, enc / n * 1000, cpu, dis_cpu / n * 1000)
    return results


def png_writers(images: list[np.ndarray], repeats: int = 3) -> None:
    """CPU ms and KB per image of our PNG writer (both deflate back ends) beside Pillow's compress_level=1."""
    from deepfl.png import deflate_backend, encode_png

    def pillow(image: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()

    encode_png(images[0])  # compile (or load) the kernels outside the timings
    writers = {"Pillow compress_level=1": pillow, "deepfl.png level 1 (huffman, default)": lambda im: encode_png(im)}
    for level in (0, 1, 6):
        writers[f"deepfl.png level {level} ({deflate_backend()})"] = lambda im, lv=level: encode_png(
            im, lv, deflate_backend()
        )
    writers["deepfl.png level 1 (zlib)"] = lambda im: encode_png(im, 1, "zlib")
    base = None
    height, width = images[0].shape[:2]
    print(f"PNG writers, {len(images)} distorted {width}x{height} images x {repeats}: CPU ms and KB per image")
    for name, write in writers.items():
        start = time.process_time()
        size = 0
        for _ in range(repeats):
            size = sum(len(write(im)) for im in images)
        ms = (time.process_time() - start) / (repeats * len(images)) * 1000
        base = base or ms
        print(f"  {name:38s} {ms:6.2f} ms  {size / len(images) / 1024:6.0f} KB  ({base / ms:.1f}x vs Pillow)")


def octave_ms(matlab_dir: str, ref: np.ndarray) -> dict[int, float]:
    """type -> mean ms of imdist_generator under Octave (NaN where Octave cannot run the type)."""
    import octave_compare

    octave_compare.RANDOM_SEEDS = 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        Image.fromarray(ref).save(tmp / "ref.png")
        times = octave_compare.run_octave(Path(matlab_dir).resolve(), tmp / "ref.png", tmp, list(DISTORTION_NAMES))
    return {
        t: float(np.nanmean([times.get((t, lv), np.nan) for lv in range(1, 6)])) * 1000
        if any(np.isfinite(times.get((t, lv), np.nan)) for lv in range(1, 6))
        else float("nan")
        for t in DISTORTION_NAMES
    }


def throughput(refs: list[np.ndarray], workers: int, fmt: str) -> tuple[float, int]:
    """Distorted images/s of the generator's work function with a process pool (25 types round-robin)."""
    with tempfile.TemporaryDirectory() as tmp:
        ref_dir, out_dir = Path(tmp) / "refs", Path(tmp) / "out"
        ref_dir.mkdir()
        tasks = []
        for i, ref in enumerate(refs):
            name = f"ref{i:04d}.png"
            Image.fromarray(ref).save(ref_dir / name)
            tasks.append((str(ref_dir), name, i % 25 + 1, str(out_dir), fmt, 0, False, 1))
        out_dir.mkdir()
        context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with context.Pool(workers, initializer=init_worker) as pool:
            pool.map(process_reference, tasks[:workers])  # warm the workers up (imports)
            shutil.rmtree(out_dir)
            out_dir.mkdir()
            start = time.perf_counter()
            results = pool.map(process_reference, tasks, chunksize=1)
            elapsed = time.perf_counter() - start
        errors = [error for _, error, *_ in results if error]
        if errors:
            raise RuntimeError(errors[0])
        images = sum(len(rows) for rows, *_ in results)
    return images / elapsed, images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refs_per_type", type=int, default=2, help="references per type in part 2 (0: part 1 only)")
    parser.add_argument("--repeats", type=int, default=1, help="references per type in part 1")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="processes in part 2")
    parser.add_argument("--matlab_dir", default=None, help="official matlab_code_imdistort (for the Octave peer)")
    parser.add_argument("--size", default="512x384", help="reference size, width x height (KADIS: 512x384)")
    args = parser.parse_args()
    try:
        width, height = (int(side) for side in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size: expected width x height such as 512x384, got {args.size!r}")
    if min(width, height) < 16:
        parser.error(f"--size: at least 16 pixels per side, got {args.size}")
    if args.refs_per_type < 0 or args.repeats < 1:
        parser.error("--refs_per_type: at least 0; --repeats: at least 1")
    refs = references(max(25 * args.refs_per_type, 1), width, height)
    ref_png = encode_image(refs[0], "png")
    peer = {}
    if args.matlab_dir and shutil.which("octave"):
        peer = octave_ms(args.matlab_dir, refs[0])
    init_worker()  # as in the generator's workers
    print(f"load average before: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    rows = per_type(ref_png, args.repeats)
    print(f"Part 1: ms per distorted {width}x{height} image, one process (cpu count {os.cpu_count()})")
    print(
        "| id | name | decode/5 | distort | PNG encode | total | distort CPU | total CPU | Octave distort | "
        "Octave / ours |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for t, (dec, dis, enc, cpu, dis_cpu) in rows.items():
        o = peer.get(t, float("nan"))
        ratio = f"{o / dis:.1f}x" if np.isfinite(o) else "n/a"
        o_text = f"{o:.0f}" if np.isfinite(o) else "n/a"
        print(
            f"| {t} | {DISTORTION_NAMES[t]} | {dec:.1f} | {dis:.1f} | {enc:.1f} | {dec + dis + enc:.1f} | "
            f"{dis_cpu:.1f} | {cpu:.1f} | {o_text} | {ratio} |"
        )
    mean_total = np.mean([v[0] + v[1] + v[2] for v in rows.values()])
    mean_cpu = np.mean([v[3] for v in rows.values()])
    print(
        f"mean over the 25 types: {mean_total:.1f} ms wall, {mean_cpu:.1f} ms CPU per image -> "
        f"{1000 / mean_total:.1f} images/s per process (wall); CPU-bound estimate on {os.cpu_count()} idle "
        f"cores: {os.cpu_count() * 1000 / mean_cpu:.1f} images/s"
    )
    png_writers([distort(refs[0], t, 3, rng=0) for t in DISTORTION_NAMES])
    if not args.refs_per_type:
        return
    print(f"Part 2: generator work function, {args.workers} worker(s), 25 types x {args.refs_per_type} refs")
    for fmt in ("png", "bmp"):
        rate, count = throughput(refs, args.workers, fmt)
        print(f"  {fmt}: {count} images, {rate:.1f} images/s  (700k images: {700000 / rate / 3600:.1f} h)")
    print(f"load average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
