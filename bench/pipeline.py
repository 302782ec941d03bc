"""Images/s of deepfl's tf.data training pipeline beside the raw tf.io decode rate of the same files, same run.

Writes `--num_images` distinct 512x384 photographs (crops of scikit-image's photos) as PNG and as JPEG, then, per
format, alternates `--repeats` times between:
  raw-1      a plain Python loop of tf.io.read_file + tf.io.decode_image (one core: the per-core decode rate),
  raw-par    tf.data of the same two ops, parallel map (AUTOTUNE), batch, prefetch (all cores),
  deepfl     deepfl.data.make_dataset(training=True: seeded shuffle, counters, skip-on-error, float32 batches),
  deepfl-fast  the same with accurate_jpeg=False (TensorFlow's fast IDCT, as raw-par uses),
  deepfl-u8    deepfl-fast with dtype="uint8" and same_size=True (the setting for feeding a GPU: the model casts),
  deepfl-rep   the repeated training stream deepfl-train-multitask reads (uint8, fast IDCT), its second pass
               timed (the others time a fresh epoch, start-up included),
and with `--sizes K` (images in K sizes near 512x384, a third portrait) the job's case of many native sizes:
raw-par then yields single images (no batch can hold two sizes), deepfl-u8 is left out (it needs one size),
deepfl batches by shape over one epoch, and deepfl-rep is the per-size batch plan (`deepfl.data.size_batches`).
and prints the best images/s of each and the ratio to raw-par, both per wall-clock second and per CPU-second used by
this process (all threads; the steadier figure on a shared machine, and what sets the rate of dedicated cores).
The last lines say how many cores feed one GPU training at `--gpu_rate` images/s (660: the multi-task model,
H200, bf16, 384x512), from the one-core decode rate.

    python bench/pipeline.py [--num_images 256] [--batch 32] [--repeats 3] [--sizes 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from deepfl.quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow()  # TensorFlow's C++ start-up lines (oneDNN, CUDA probes) stay off the bench's output
import deepfl  # noqa: E402,F401  (before TensorFlow: deepfl sets its oneDNN default)

# isort: split

import numpy as np
import pandas as pd
import tensorflow as tf
from PIL import Image

from deepfl import data as dd


def image_size(index: int, sizes: int) -> tuple[int, int]:
    """(height, width) of image `index` among `sizes` sizes: 384x512 for one size; else 384x512 shrunk by 8-pixel
    steps, every third size portrait."""
    k = index % sizes
    if sizes == 1:
        return 384, 512
    height, width = 384 - 8 * k, 512 - 8 * k
    return (width - 128, height - 128) if k % 3 == 2 else (height, width)


def make_images(folder: Path, count: int, fmt: str, sizes: int = 1) -> list[str]:
    """Distinct natural-image files: random native-resolution crops (flipped at random) of scikit-image's
    astronaut, coffee and rocket photos, in `sizes` sizes (`image_size`), saved as PNG (zlib level 6) or JPEG
    (quality 90)."""
    from skimage import data as skdata

    rng = np.random.default_rng(0)
    sources = [skdata.astronaut(), skdata.coffee(), skdata.rocket()]
    paths = []
    for i in range(count):
        height, width = image_size(i, sizes)
        source = sources[i % len(sources)]
        y = rng.integers(0, source.shape[0] - height + 1)
        x = rng.integers(0, source.shape[1] - width + 1)
        crop = source[y : y + height, x : x + width]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        path = folder / f"im{i:05d}.{fmt}"
        options = {"quality": 90} if fmt == "jpg" else {"compress_level": 6}
        Image.fromarray(np.ascontiguousarray(crop)).save(path, **options)
        paths.append(str(path))
    return paths


def rate_raw_sequential(paths: list[str]) -> tuple[float, float]:
    """(images per wall second, images per CPU second of this process) of a plain decode loop."""
    start, cpu = time.perf_counter(), time.process_time()
    for path in paths:
        tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return len(paths) / (time.perf_counter() - start), len(paths) / (time.process_time() - cpu)


def rate_of(dataset: tf.data.Dataset, count: int) -> tuple[float, float]:
    """(images per wall second, images per CPU second, all threads of this process) over one epoch."""
    start, cpu = time.perf_counter(), time.process_time()
    seen = 0
    for images, _ in dataset:
        seen += int(images.shape[0])
    elapsed, cpu_used = time.perf_counter() - start, time.process_time() - cpu
    if seen != count:
        raise RuntimeError(f"pipeline delivered {seen} images, expected {count}")
    return count / elapsed, count / cpu_used


def rate_of_pass(dataset: tf.data.Dataset, per_pass: int, count: int) -> tuple[float, float]:
    """`rate_of` for a repeated stream: the second pass (`per_pass` batches) of a fresh iterator, the steady state
    a training run is in (a kept iterator would decode ahead while the other variants are timed)."""
    batches = iter(dataset)
    for _ in range(per_pass):
        next(batches)
    start, cpu = time.perf_counter(), time.process_time()
    seen = sum(int(next(batches)[0].shape[0]) for _ in range(per_pass))
    del batches
    elapsed, cpu_used = time.perf_counter() - start, time.process_time() - cpu
    if seen != count:
        raise RuntimeError(f"one pass delivered {seen} images, expected {count}")
    return count / elapsed, count / cpu_used


def raw_parallel(paths: list[str], batch: int) -> tf.data.Dataset:
    """Parallel read + decode, batched (`batch` 0: single images as batches of one, for mixed sizes)."""

    def load(path):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return (image, 0) if batch else (image[None], 0)

    dataset = tf.data.Dataset.from_tensor_slices(paths).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return (dataset.batch(batch) if batch else dataset).prefetch(tf.data.AUTOTUNE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_images", type=int, default=256, help="distinct files per format")
    parser.add_argument("--batch", type=int, default=32, help="batch size of the tf.data pipelines")
    parser.add_argument("--repeats", type=int, default=3, help="alternating timed passes per variant (best kept)")
    parser.add_argument("--formats", default="png,jpg", help="comma-separated: png, jpg")
    parser.add_argument("--gpu_rate", type=float, default=660.0, help="GPU training images/s to feed")
    parser.add_argument("--sizes", type=int, default=1, help="number of image sizes (1: all 512x384)")
    args = parser.parse_args()
    from deepfl.data.size_batches import batches_per_pass

    listed = ", ".join(f"{w}x{h}" for h, w in (image_size(k, args.sizes) for k in range(min(args.sizes, 4))))
    print(
        f"tensorflow {tf.__version__}, {os.cpu_count()} CPU cores visible, {args.num_images} images per format in "
        f"{args.sizes} size(s) ({listed}{', ...' if args.sizes > 4 else ''}), batch {args.batch}, "
        f"best of {args.repeats}"
    )
    mixed = args.sizes > 1
    per_core = {}
    with tempfile.TemporaryDirectory(prefix="deepfl_bench_pipeline_") as tmp:
        for fmt in args.formats.split(","):
            paths = make_images(Path(tmp), args.num_images, fmt, args.sizes)
            mib = sum(os.path.getsize(p) for p in paths) / len(paths) / 2**20
            table = pd.DataFrame(
                {"image": paths, "content": [str(i) for i in range(len(paths))], "score": np.linspace(0, 1, len(paths))}
            )
            # Each pipeline is built (and its functions traced) once; a timed pass is one epoch over it, as in
            # training, so construction cost is not counted.
            raw_ds = raw_parallel(paths, 0 if mixed else args.batch)
            deepfl_ds = dd.make_dataset(table, "score", args.batch, training=True, seed=0)
            fast_ds = dd.make_dataset(table, "score", args.batch, training=True, seed=0, accurate_jpeg=False)
            lean_ds = dd.make_dataset(
                table, "score", args.batch, training=True, seed=0, accurate_jpeg=False, dtype="uint8", same_size=True
            )
            repeated = dd.make_dataset(
                table, "score", args.batch, training=True, repeat=True, seed=0, accurate_jpeg=False, dtype="uint8"
            )
            per_pass = batches_per_pass([image_size(i, args.sizes) for i in range(len(paths))], args.batch)
            variants = {
                "raw-1": lambda: rate_raw_sequential(paths),
                "raw-par": lambda: rate_of(raw_ds, len(paths)),
                "deepfl": lambda: rate_of(deepfl_ds, len(paths)),
                "deepfl-fast": lambda: rate_of(fast_ds, len(paths)),
                "deepfl-u8": lambda: rate_of(lean_ds, len(paths)),
                "deepfl-rep": lambda: rate_of_pass(
                    repeated, per_pass if mixed else -(-len(paths) // args.batch), len(paths)
                ),
            }
            if mixed:
                del variants["deepfl-u8"]
            for run in variants.values():  # warm-up: page cache, tracing
                run()
            best = {name: 0.0 for name in variants}
            best_cpu = {name: 0.0 for name in variants}
            for _ in range(args.repeats):
                for name, run in variants.items():
                    wall, cpu = run()
                    best[name], best_cpu[name] = max(best[name], wall), max(best_cpu[name], cpu)
            per_core[fmt] = best_cpu["raw-1"]
            print(f"\n{fmt.upper()} ({mib:.2f} MiB/file)")
            print(f"  {'variant':<12} {'images/s':>9} {'vs raw-par':>10}   {'images/CPU-s':>12} {'vs raw-par':>10}")
            for name in variants:
                print(
                    f"  {name:<12} {best[name]:9.1f} {best[name] / best['raw-par']:10.1%}   "
                    f"{best_cpu[name]:12.1f} {best_cpu[name] / best_cpu['raw-par']:10.1%}"
                )
    for fmt, rate in per_core.items():
        print(
            f"\n{fmt.upper()}: one core decodes {rate:.0f} images per CPU-second (raw-1); feeding "
            f"{args.gpu_rate:.0f} images/s needs about {int(np.ceil(args.gpu_rate / rate))} such cores"
        )


if __name__ == "__main__":
    main()
