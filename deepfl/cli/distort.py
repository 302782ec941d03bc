"""Generates a KADIS-style distorted set: every pristine image gets one distortion type at all 5 levels.

Output: `<ref stem>_<TT>_<LL>.<ext>` in --out_dir and a manifest CSV `dist_im, ref_im, dist_type, dist_level`
(names relative to --out_dir and --ref_dir). The type per image comes from --assignment_csv (the
`kadis700k_ref_imgs.csv` layout: first column reference file name, second column type id) or, without one,
is drawn per image from --seed. Every random draw is seeded by (--seed, reference name), so results do not
depend on sharding, worker count or restarts. A killed run restarted with the same flags finishes the rest:
images are written atomically and the manifest is append-only, keyed by `dist_im`. A rerun with other settings
(seed, resize, format, ...) into the same --out_dir is refused (exit 2) unless --overwrite.

With --resize the resized references are written too, as `references/<ref stem>.png` in --out_dir, and the
manifest names them (relative to --out_dir), so `deepfl-label --image_root <out_dir>` finds them without
--ref_root.

Examples:
  deepfl-distort --ref_dir pristine/ --out_dir kadis/ --seed 0 --resize   # PNG, all cores
  deepfl-distort --ref_dir pristine/ --out_dir kadis/ --num_shards 4 --shard_index 2   # one machine's share
  deepfl-distort --ref_dir pristine/ --out_dir kadis/ --num_shards 4 --merge   # joins the 4 shard manifests
"""

from __future__ import annotations

import csv
import io
import logging
import multiprocessing as mp
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from absl import flags

from deepfl import distortions
from deepfl.errors import ImageReadError, TableError
from deepfl.fileio import atomic_write_bytes
from deepfl.images import encode_image, list_images, read_image
from deepfl.png import decode_png_rgb, encode_png
from deepfl.jobs import AppendOnlyCsv, ErrorPolicy, check_settings, progress, read_complete_rows, shard
from deepfl.cli import app

log = logging.getLogger("deepfl")

MANIFEST_COLUMNS = ["dist_im", "ref_im", "dist_type", "dist_level"]
KADIS_SIZE = (512, 384)  # width, height of KADIS-700k references (landscape; portrait images get 384x512)
REFERENCES_DIR = "references"  # where --resize writes the resized references, inside --out_dir
SETTINGS_FILE = "distort_settings.json"

FLAGS = flags.FLAGS
flags.DEFINE_string("ref_dir", None, "Folder of pristine reference images.", required=True)
flags.DEFINE_string("assignment_csv", None,
                    "Optional CSV in the kadis700k_ref_imgs.csv layout: column 1 reference file name (in "
                    "--ref_dir), column 2 distortion type 1..25 (a header row is allowed). Without it every "
                    "image in --ref_dir gets a random type drawn from --seed.")
flags.DEFINE_integer("seed", 0, "Seed of every random draw (type choice and random distortions).", lower_bound=0)
flags.DEFINE_bool("resize", False, "Resize (covering, Lanczos) and centre-crop references to 512x384 as KADIS "
                  "did (384x512 for portrait images) before distorting.")
flags.DEFINE_enum("format", "png", ["png", "bmp"], "Output image format (the KADIS release used bmp).")
flags.DEFINE_integer("png_compression", 1, "Deflate level of PNG output: 1 (default) is the fastest compression "
                     "(Paeth filter + Huffman-only deflate, about 2.5 ms and 315 KB per 512x384 image); 0 stores "
                     "raw (590 KB); 2-9 use libdeflate (zlib without it) with the up filter: a few percent smaller at "
                     "2-5x the time.", lower_bound=0, upper_bound=9)
flags.DEFINE_string("manifest", None, "Manifest CSV path (default: <out_dir>/manifest.csv, or "
                    "<out_dir>/manifest-<shard_index>-of-<num_shards>.csv when sharded).")
flags.DEFINE_integer("workers", None, "Worker processes (default: all cores).", lower_bound=1)
flags.DEFINE_bool("merge", False, "Join the --num_shards shard manifests in --out_dir into manifest.csv (one "
                  "header, the order of an unsharded run) and stop.")
flags.DEFINE_bool("overwrite", False, "Discard what an earlier run with other settings wrote to --out_dir (its "
                  "manifests, the images they list, references/) and start again.")
app.define_out_dir()
app.define_sharding()
app.define_on_error()


def read_assignment(path: str | os.PathLike) -> list[tuple[str, int]]:
    """Reads (reference name, type id) pairs from a kadis700k_ref_imgs.csv-style file; TableError names the row."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such assignment CSV")
    pairs = []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TableError(f"{path}: not a readable UTF-8 CSV ({exc})") from None
    for line_no, row in enumerate(rows, start=1):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 2:
            raise TableError(f"{path}:{line_no}: expected 'reference name, distortion type', got {row}")
        name, type_text = row[0].strip(), row[1].strip()
        try:
            type_id = int(float(type_text))
        except (ValueError, OverflowError):  # OverflowError: 'inf'
            if line_no == 1:  # header row
                continue
            raise TableError(f"{path}:{line_no}: distortion type {type_text!r} is not an integer") from None
        if not 1 <= type_id <= distortions.NUM_TYPES:
            raise TableError(f"{path}:{line_no}: distortion type {type_id} outside 1..{distortions.NUM_TYPES}")
        pairs.append((name, type_id))
    if not pairs:
        raise TableError(f"{path}: no (reference, type) rows")
    return pairs


def _utf8_name(name: str) -> bool:
    """False for a file name holding bytes that are not UTF-8 (Python keeps them as surrogate escapes)."""
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def image_seed(seed: int, ref_name: str) -> np.random.SeedSequence:
    """The seed sequence of one reference: depends only on --seed and the file name."""
    return np.random.SeedSequence([seed, zlib.crc32(ref_name.encode("utf-8"))])


def random_type(seed: int, ref_name: str) -> int:
    """The distortion type drawn for a reference when no assignment CSV is given."""
    return int(np.random.default_rng(image_seed(seed, ref_name).spawn(1)[0]).integers(1, distortions.NUM_TYPES + 1))


def reference_name(ref_name: str, resize: bool) -> str:
    """The manifest's `ref_im` of a reference: its name in --ref_dir, or the resized copy's path in --out_dir."""
    return f"{REFERENCES_DIR}/{Path(ref_name).stem}.png" if resize else ref_name


def kadis_target(height: int, width: int) -> tuple[int, int]:
    """(width, height) that --resize gives an image: 512x384, or 384x512 for a portrait one."""
    return KADIS_SIZE if width >= height else KADIS_SIZE[::-1]


def kadis_scale(height: int, width: int) -> float:
    """The factor --resize scales an image by before cropping (> 1: it is enlarged)."""
    tw, th = kadis_target(height, width)
    return max(tw / width, th / height)


def kadis_resize(image: np.ndarray) -> np.ndarray:
    """Scales the image to cover 512x384 (384x512 if portrait) with Lanczos, then crops the centre."""
    from PIL import Image

    h, w = image.shape[:2]
    tw, th = kadis_target(h, w)
    if (h, w) == (th, tw):
        return image
    scale = kadis_scale(h, w)
    nw, nh = max(tw, int(round(w * scale))), max(th, int(round(h * scale)))
    resized = np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.LANCZOS))
    top, left = (nh - th) // 2, (nw - tw) // 2
    return np.ascontiguousarray(resized[top:top + th, left:left + tw])


def output_name(ref_name: str, type_id: int, level: int, fmt: str) -> str:
    return f"{Path(ref_name).stem}_{type_id:02d}_{level:02d}.{fmt}"


def encode_output(image: np.ndarray, fmt: str, png_compression: int = 1) -> bytes:
    """The bytes of one distorted image: our fast PNG writer for png, Pillow for bmp."""
    if fmt == "png":
        return encode_png(image, png_compression)
    return encode_image(image, fmt)


def _init_worker() -> None:
    """Worker initialiser: one BLAS/OpenMP thread per worker process (the pool already uses every core), a
    malloc that keeps freed memory for reuse (see `_keep_freed_memory`) and the compiled kernels ready."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # optional: without it the libraries keep their defaults
        pass
    _keep_freed_memory()
    _warm_up()


def _warm_up() -> None:
    """Runs every distortion and the PNG reader/writer once on a tiny image, so that their Numba kernels are
    compiled (first run on a machine, ~15 s CPU) or loaded from numba's cache (~1 s) before the work starts.
    Called in the parent before the pool forks (the workers inherit the kernels) and again in each worker
    (a no-op there after a fork; needed where workers are spawned)."""
    tiny = np.random.default_rng(0).integers(0, 256, (distortions.MIN_SIZE, distortions.MIN_SIZE, 3), dtype=np.uint8)
    for type_id in distortions.DISTORTIONS:
        decode_png_rgb(encode_png(distortions.distort(tiny, type_id, 1, rng=0)))


def _keep_freed_memory() -> None:
    """glibc: serve large arrays from the heap and keep freed memory instead of returning it to the OS.

    Every distortion allocates several 1.5-5 MB arrays per image. By default glibc maps each one fresh (or trims
    it back after use), so each new array costs page faults and kernel zeroing: 2-9 ms of system CPU per image
    (measured: type 11 9.4 ms, type 8 3.5 ms). With these two limits the worker reuses its memory (peak ~100 MB).
    No-op where the C library is not glibc.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 512 << 20)
    mallopt(m_trim_threshold, 1 << 30)


def process_reference(task: tuple) -> tuple[list[dict], str | None, tuple[int, int]]:
    """Distorts one reference at all 5 levels and writes the images; returns (manifest rows, error message,
    the reference's original height and width).

    Each file is written (atomically, fsynced) by a writer thread while the next level is computed: the fsync
    waits ~4 ms per file on disk, not on the CPU. The rows are returned only after every write has finished.
    With `resize`, the resized reference is written too (before the rows name it).
    """
    ref_dir, ref_name, type_id, out_dir, fmt, seed, resize, png_compression = task
    size = (0, 0)
    try:
        image = read_image(Path(ref_dir) / ref_name)
        size = image.shape[:2]
        ref_im = reference_name(ref_name, resize)
        level_seeds = image_seed(seed, ref_name).spawn(1 + distortions.NUM_LEVELS)[1:]
        rows = []
        with ThreadPoolExecutor(max_workers=1) as writer:
            writes = []
            if resize:
                image = kadis_resize(image)
                if not (Path(out_dir) / ref_im).exists():
                    writes.append(writer.submit(atomic_write_bytes, Path(out_dir) / ref_im,
                                                encode_png(image, png_compression)))
            for level in range(1, distortions.NUM_LEVELS + 1):
                name = output_name(ref_name, type_id, level, fmt)
                target = Path(out_dir) / name
                if not target.exists():  # a finished file (atomic writes) is kept as is
                    out = distortions.distort(image, type_id, level,
                                              rng=np.random.default_rng(level_seeds[level - 1]))
                    writes.append(writer.submit(atomic_write_bytes, target, encode_output(out, fmt,
                                                                                          png_compression)))
                rows.append({"dist_im": name, "ref_im": ref_im, "dist_type": type_id, "dist_level": level})
            for done in writes:
                done.result()  # re-raises a failed write (OSError)
        return rows, None, size
    except ImageReadError as exc:  # its message already names the file
        return [], str(exc), size
    except (ValueError, OSError) as exc:
        return [], f"{ref_name}: {exc}", size


def reference_pairs(ref_dir: Path, policy: ErrorPolicy) -> list[tuple[str, int]]:
    """(reference name, type id) of every reference, in the order of an unsharded run."""
    if FLAGS.assignment_csv:
        return read_assignment(FLAGS.assignment_csv)
    pairs = []
    for p in list_images(ref_dir):
        if not _utf8_name(p.name):
            policy.handle(f"{ascii(str(p))}: file name is not valid UTF-8 (cannot go into the manifest); rename it")
            continue
        pairs.append((p.name, random_type(FLAGS.seed, p.name)))
    return pairs


def shard_manifest(out_dir: Path, num_shards: int, shard_index: int) -> Path:
    if num_shards == 1:
        return out_dir / "manifest.csv"
    return out_dir / f"manifest-{shard_index}-of-{num_shards}.csv"


def merge_manifests(out_dir: Path, pairs: list[tuple[str, int]], num_shards: int, manifest_path: Path
                    ) -> tuple[int, int]:
    """Joins the shard manifests into `manifest_path` (one header, rows in the order of an unsharded run, each
    `dist_im` once), atomically; returns (rows written, expected images without a row)."""
    rows: dict[str, dict] = {}
    for index in range(num_shards):
        path = shard_manifest(out_dir, num_shards, index)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: shard {index} of {num_shards} has no manifest yet")
        for row in read_complete_rows(path, MANIFEST_COLUMNS):
            rows.setdefault(row["dist_im"], row)
    order = [output_name(name, t, level, FLAGS.format) for name, t in pairs
             for level in range(1, distortions.NUM_LEVELS + 1)]
    missing = sum(1 for name in order if name not in rows)
    order += sorted(set(rows) - set(order))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows[name] for name in order if name in rows)
    atomic_write_bytes(manifest_path, buffer.getvalue().encode("utf-8"))
    return len(rows), missing


def discard_outputs(out_dir: Path) -> None:
    """--overwrite: removes the manifests of an earlier run, the images they list and the resized references."""
    import shutil

    for manifest in sorted(out_dir.glob("manifest*.csv")):
        for row in read_complete_rows(manifest, MANIFEST_COLUMNS):
            (out_dir / row["dist_im"]).unlink(missing_ok=True)
        manifest.unlink()
    shutil.rmtree(out_dir / REFERENCES_DIR, ignore_errors=True)


def warn_about_sizes(sizes: dict[str, tuple[int, int]], resize: bool) -> None:
    """One warning line each for references that --resize enlarged and for references too small to label."""
    from deepfl.fr.specs import SPECS

    if resize:
        upscaled = [(n, hw) for n, hw in sizes.items() if hw[0] and kadis_scale(*hw) > 1]
        if upscaled:
            name, (h, w) = upscaled[0]
            log.warning("--resize enlarged %d reference(s) smaller than %dx%d (e.g. %s, %dx%d): enlarged images are "
                        "blurred, not pristine", len(upscaled), *KADIS_SIZE, name, w, h)
        return
    need = max(spec.min_size for spec in SPECS)
    small = [(n, hw) for n, hw in sizes.items() if hw[0] and min(hw) < need]
    if small:
        name, (h, w) = small[0]
        metrics = ", ".join(spec.name for spec in SPECS if spec.min_size > min(small[0][1]))
        log.warning("%d reference(s) are below the %d-pixel minimum of deepfl-label's metrics (e.g. %s, %dx%d: "
                    "too small for %s); use larger images or --resize", len(small), need, name, w, h, metrics)


def main(argv: list[str]) -> int | None:
    del argv
    ref_dir = Path(FLAGS.ref_dir)
    if not ref_dir.is_dir():
        raise FileNotFoundError(f"--ref_dir {ref_dir}: no such folder")
    out_dir = Path(FLAGS.out_dir)
    policy = ErrorPolicy(FLAGS.on_error)
    pairs = reference_pairs(ref_dir, policy)
    if FLAGS.merge:
        if FLAGS.num_shards < 2:
            raise ValueError("num_shards: --merge needs the --num_shards the shards were made with (>= 2)")
        target = Path(FLAGS.manifest) if FLAGS.manifest else out_dir / "manifest.csv"
        rows, missing = merge_manifests(out_dir, pairs, FLAGS.num_shards, target)
        print(f"merged {FLAGS.num_shards} shard manifests into {target}: {rows} rows, {missing} expected images "
              "without a row")
        return 0
    settings = {"ref_dir": str(ref_dir.resolve()), "seed": FLAGS.seed, "resize": FLAGS.resize,
                "format": FLAGS.format, "png_compression": FLAGS.png_compression,
                "assignment_csv": str(Path(FLAGS.assignment_csv).resolve()) if FLAGS.assignment_csv else None}
    out_dir.mkdir(parents=True, exist_ok=True)
    if not check_settings(out_dir / SETTINGS_FILE, settings, FLAGS.overwrite, output=f"--out_dir {out_dir}") \
            and FLAGS.overwrite:
        discard_outputs(out_dir)
    pairs = shard(pairs, FLAGS.num_shards, FLAGS.shard_index)
    manifest_path = Path(FLAGS.manifest) if FLAGS.manifest else shard_manifest(out_dir, FLAGS.num_shards,
                                                                                FLAGS.shard_index)
    manifest = AppendOnlyCsv(manifest_path, MANIFEST_COLUMNS, key="dist_im")

    def finished(name: str, type_id: int) -> bool:  # listed in the manifest and present on disk
        outputs = [output_name(name, type_id, lv, FLAGS.format) for lv in range(1, distortions.NUM_LEVELS + 1)]
        if FLAGS.resize:
            outputs.append(reference_name(name, True))
        return all((o in manifest.done or o.startswith(REFERENCES_DIR + "/")) and (out_dir / o).exists()
                   for o in outputs)

    todo = [(name, t) for name, t in pairs if not finished(name, t)]
    log.info("%d references (%d already done), %d distorted images to write -> %s", len(pairs),
             len(pairs) - len(todo), 5 * len(todo), out_dir)
    tasks = [(str(ref_dir), name, t, str(out_dir), FLAGS.format, FLAGS.seed, FLAGS.resize, FLAGS.png_compression)
             for name, t in todo]
    workers = min(FLAGS.workers or os.cpu_count() or 1, max(1, len(tasks)))
    if tasks:
        _warm_up()
    written = 0
    sizes: dict[str, tuple[int, int]] = {}
    with progress(total=5 * len(tasks), desc="distort", unit="img") as bar:
        if workers == 1:
            _keep_freed_memory()
            results = map(process_reference, tasks)
            pool = None
        else:
            context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            pool = context.Pool(workers, initializer=_init_worker)
            # Ordered, so the manifest rows come in the same order on every run (and after a restart).
            results = pool.imap(process_reference, tasks, chunksize=1)
        try:
            for (name, _), (rows, error, size) in zip(todo, results):
                sizes[name] = size
                if error:
                    policy.handle(error)
                    bar.update(5)
                    continue
                written += manifest.append(rows)
                bar.update(len(rows))
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    warn_about_sizes(sizes, FLAGS.resize)
    log.info("%d manifest rows written to %s; %s", written, manifest_path, policy.summary("references"))
    return 0


def run() -> None:
    app.run_app(main)


if __name__ == "__main__":
    run()
