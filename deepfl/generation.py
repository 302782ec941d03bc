"""The KADIS-style generation job: every pristine reference gets one distortion type at all 5 levels.

`generate` writes `<ref stem>_<TT>_<LL>.<ext>` into the output folder and appends a manifest CSV
`dist_im, ref_im, dist_type, dist_level` (names relative to the output folder and the reference folder); `merge`
joins the manifests of a sharded run. The type per reference comes from an assignment CSV (the
`kadis700k_ref_imgs.csv` layout) or is drawn from the seed. Every random draw is seeded by (seed, reference
name), so results do not depend on sharding, worker count or restarts; images are written atomically and the
manifest is append-only, so a killed run restarted with the same settings finishes the rest. With `resize` the
references are scaled and cropped to KADIS-700k's 512x384 (portrait: 384x512) and written as
`references/<ref stem>.png`, which the manifest names. The script `deepfl-distort` (deepfl/cli/distort.py) parses
flags and calls these functions.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import multiprocessing as mp
import os
import re
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepfl import distortions
from deepfl._numba import said_while_compiling
from deepfl.cpus import usable_cores
from deepfl.errors import ImageReadError, TableError
from deepfl.fileio import atomic_write_bytes
from deepfl.images import encode_image, list_images, read_image
from deepfl.jobs import (
    RECORD_FOLDER,
    AppendOnlyCsv,
    ErrorPolicy,
    SettingsChanged,
    check_settings,
    counted,
    progress,
    read_complete_rows,
    recorded_path,
    same_setting,
)
from deepfl.png import decode_png_rgb, encode_png
from deepfl.sharding import check_one_shard_count, check_shard_finished, mark_shard_finished, shard
from deepfl.wording import by_caller, on_command_line, setting, shown_value, use_command_line_names

log = logging.getLogger("deepfl")

MANIFEST_COLUMNS = ["dist_im", "ref_im", "dist_type", "dist_level"]
KADIS_SIZE = (512, 384)  # width, height of KADIS-700k references (landscape; portrait images get 384x512)
REFERENCES_DIR = "references"  # where `resize` writes the resized references, inside the output folder
SETTINGS_FILE = "distort_settings.json"
# Below this share of its area kept by `resize`'s centre crop, a reference is named in a warning (a 2000x170
# panorama keeps 11%; a 16:9 photo 75%).
MIN_KEPT_FRACTION = 0.5


def recorded_reference_folder(manifest: str | os.PathLike) -> Path | None:
    """The reference folder a manifest's pairs name their `ref_im` in, as deepfl-distort recorded it beside the
    manifest (its `--ref_dir`, for a run without `resize`: the references stay there; it may have moved since);
    None where there is no such record (with `resize` the manifest names `references/...` inside the output
    folder itself)."""
    record = Path(manifest).parent / SETTINGS_FILE
    try:
        settings = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(settings, dict) or settings.get("resize") or not isinstance(settings.get("ref_dir"), str):
        return None
    return Path(recorded_path(record, settings, "ref_dir"))  # followed where the project moved with it


@dataclass
class DistortSummary:
    """What a generation run did: manifest rows written now, references (or, where an assignment CSV gives a
    reference several types, (reference, type) assignments) found done, and bad ones skipped."""

    manifest: Path
    written: int = 0
    already_done: int = 0
    skipped: int = 0
    unit: str = "references"

    def __str__(self) -> str:
        return (
            f"{self.manifest}: {self.written} manifest rows written, {counted(self.already_done, self.unit)} already "
            f"done, {counted(self.skipped, 'bad ' + self.unit)} skipped"
        )


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
            try:  # a name, as distort() takes it ("lens_blur", "Lens Blur")
                type_id = distortions.resolve_type(type_text)
            except ValueError:
                if line_no == 1:  # header row
                    continue
                raise TableError(
                    f"{path}:{line_no}: distortion type {type_text!r} is neither an id 1..{distortions.NUM_TYPES} "
                    "nor a type name (such as gaussian_blur)"
                ) from None
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
    """The seed sequence of one reference: depends only on the seed and the file name."""
    return np.random.SeedSequence([seed, zlib.crc32(ref_name.encode("utf-8"))])


def random_type(seed: int, ref_name: str) -> int:
    """The distortion type drawn for a reference when no assignment CSV is given."""
    return int(np.random.default_rng(image_seed(seed, ref_name).spawn(1)[0]).integers(1, distortions.NUM_TYPES + 1))


def reference_name(ref_name: str, resize: bool) -> str:
    """The manifest's `ref_im` of a reference: its name in the reference folder, or (`resize`) the resized copy's
    path in the output folder."""
    return f"{REFERENCES_DIR}/{Path(ref_name).stem}.png" if resize else ref_name


def kadis_target(height: int, width: int) -> tuple[int, int]:
    """(width, height) that `resize` gives an image: 512x384, or 384x512 for a portrait one."""
    return KADIS_SIZE if width >= height else KADIS_SIZE[::-1]


def kadis_scale(height: int, width: int) -> float:
    """The factor `resize` scales an image by before cropping (> 1: it is enlarged)."""
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
    return np.ascontiguousarray(resized[top : top + th, left : left + tw])


def output_name(ref_name: str, type_id: int, level: int, fmt: str) -> str:
    return f"{Path(ref_name).stem}_{type_id:02d}_{level:02d}.{fmt}"


def encode_output(image: np.ndarray, fmt: str, png_compression: int = 1) -> bytes:
    """The bytes of one distorted image: our fast PNG writer for png, Pillow for bmp."""
    if fmt == "png":
        return encode_png(image, png_compression)
    return encode_image(image, fmt)


def init_worker(command_line_names: bool = False) -> None:
    """Worker initialiser: one BLAS/OpenMP thread per worker process (the pool already uses every core), a
    malloc that keeps freed memory for reuse (see `_keep_freed_memory`), the compiled kernels ready, and messages
    that name settings as the job's caller does (`deepfl.wording`)."""
    use_command_line_names(command_line_names)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # optional: without it the libraries keep their defaults
        pass
    _keep_freed_memory()
    warm_up()


def warm_up() -> None:
    """Runs every distortion and the PNG reader/writer once on a tiny image, so that their Numba kernels are
    compiled (first run on a machine) or loaded from numba's cache before the work starts, not inside it.
    Called in the parent before the pool forks (the workers inherit the kernels) and again in each worker
    (a no-op there after a fork; needed where workers are spawned)."""
    tiny = np.random.default_rng(0).integers(0, 256, (distortions.MIN_SIZE, distortions.MIN_SIZE, 3), dtype=np.uint8)
    for type_id in distortions.DISTORTIONS:
        decode_png_rgb(encode_png(distortions.distort(tiny, type_id, 1, rng=0)))


def _keep_freed_memory() -> None:
    """glibc: serve large arrays from the heap and keep freed memory instead of returning it to the OS.

    Every distortion allocates several multi-megabyte arrays per image. By default glibc maps each one fresh (or
    trims it back after use), so each new array costs page faults and kernel zeroing, paid as system CPU for every
    image. With these two limits the worker reuses its memory instead, and its peak stays bounded.
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


def process_reference(task: tuple) -> tuple[list[dict], str | None, tuple[int, int], bool]:
    """Distorts one reference at all 5 levels and writes the images; returns (manifest rows, error message,
    the reference's original height and width, whether all 5 levels, distorted in this call, equal the reference
    pixel for pixel: a flat, binary or black reference the type cannot change).

    Each file is written (atomically, fsynced) by a writer thread while the next level is computed: the fsync
    waits on the disk, not on the CPU, so it overlaps useful work. The rows are returned only after every write
    has finished.
    With `resize`, the resized reference is written too (before the rows name it).
    """
    ref_dir, ref_name, type_id, out_dir, fmt, seed, resize, png_compression = task
    size = (0, 0)
    unchanged = 0  # levels distorted in this call whose output equals the reference
    try:
        image = read_image(Path(ref_dir) / ref_name)
        size = image.shape[:2]
        ref_im = reference_name(ref_name, resize)
        level_seeds = image_seed(seed, ref_name).spawn(1 + distortions.NUM_LEVELS)[1:]
        rows = []
        # Checked before `resize`, which would blow a 1x1 image up into a flat reference: 5 equal "levels".
        if min(image.shape[:2]) < distortions.MIN_SIZE:
            height, width = image.shape[:2]
            return (
                [],
                f"{Path(ref_dir) / ref_name}: {width}x{height} pixels (width x height), below the distortions' "
                f"minimum of {distortions.MIN_SIZE}x{distortions.MIN_SIZE}, with or without "
                f"{setting('resize', True)} (enlarged that much, it would hold no detail to distort); use a larger "
                "image",
                size,
                False,
            )
        if resize:
            image = kadis_resize(image)
        with ThreadPoolExecutor(max_workers=1) as writer:
            writes = []
            if resize:
                if not (Path(out_dir) / ref_im).exists():
                    writes.append(
                        writer.submit(atomic_write_bytes, Path(out_dir) / ref_im, encode_png(image, png_compression))
                    )
            for level in range(1, distortions.NUM_LEVELS + 1):
                name = output_name(ref_name, type_id, level, fmt)
                target = Path(out_dir) / name
                if not target.exists():  # a finished file (atomic writes) is kept as is
                    out = distortions.distort(image, type_id, level, rng=np.random.default_rng(level_seeds[level - 1]))
                    unchanged += int(np.array_equal(out, image))
                    writes.append(writer.submit(atomic_write_bytes, target, encode_output(out, fmt, png_compression)))
                rows.append({"dist_im": name, "ref_im": ref_im, "dist_type": type_id, "dist_level": level})
            for done in writes:
                done.result()  # re-raises a failed write (OSError)
        return rows, None, size, unchanged == distortions.NUM_LEVELS
    except ImageReadError as exc:  # its message already names the file
        return [], str(exc), size, False
    except ValueError as exc:
        # Not OSError: reading a reference fails as ImageReadError, so an OSError here is a failed write (a full
        # disk): the job stops on it instead of counting the reference as bad and exiting 0 with work missing.
        return [], f"{Path(ref_dir) / ref_name}: {exc}", size, False


def reference_pairs(
    ref_dir: Path, policy: ErrorPolicy, seed: int, assignment_csv: str | os.PathLike | None = None
) -> list[tuple[str, int]]:
    """(reference name, type id) of every reference, in the order of an unsharded run: the assignment CSV's
    rows, or every image of `ref_dir` with a type drawn from `seed`."""
    if assignment_csv:
        return distinct_stems(read_assignment(assignment_csv), ref_dir, policy)
    pairs = []
    for p in list_images(ref_dir, nested_references_hint()):
        if not _utf8_name(p.name):
            policy.handle(f"{ascii(str(p))}: file name is not valid UTF-8 (cannot go into the manifest); rename it")
            continue
        pairs.append((p.name, random_type(seed, p.name)))
    return distinct_stems(pairs, ref_dir, policy)


def nested_references_hint() -> str:
    """How to distort the references in subfolders of the reference folder, which takes no pattern."""
    return f"distort each subfolder as a {setting('ref_dir')} of its own, into an {setting('out_dir')} of its own"


def distinct_stems(pairs: list[tuple[str, int]], ref_dir: Path, policy: ErrorPolicy) -> list[tuple[str, int]]:
    """`pairs` without the references whose name stem an earlier one has (letter case aside, as macOS and Windows
    file systems compare), each handled by `policy` as a bad reference: the outputs are named after the stem
    (`<stem>_<TT>_<LL>`, `references/<stem>.png`), so their images would overwrite each other and the manifest
    would pair them with the wrong reference."""
    first: dict[str, str] = {}
    kept = []
    for name, type_id in pairs:
        other = first.setdefault(Path(name).stem.casefold(), name)
        if other != name:
            policy.handle(
                f"{ref_dir / name}: shares the name stem {Path(name).stem!r} with {other}, after which the "
                "distorted images are named (<stem>_<type>_<level>): rename one of them"
            )
            continue
        kept.append((name, type_id))
    return kept


def shard_manifest(out_dir: Path, num_shards: int, shard_index: int, manifest: str | os.PathLike | None = None) -> Path:
    """Where a run writes its manifest: `manifest` (default `<out_dir>/manifest.csv`) when unsharded; a shard,
    `<stem>-<k>-of-<n>.csv` beside it, which the merge joins into `manifest` (shards given one --manifest each
    appended to the same file, and the merge found none of theirs)."""
    target = Path(manifest) if manifest else out_dir / "manifest.csv"
    if num_shards == 1:
        return target
    return target.with_name(f"{target.stem}-{shard_index}-of-{num_shards}{target.suffix}")


def _missing_shard_message(path: Path, index: int, num_shards: int) -> str:
    """A shard manifest not found where the merge looks: names the shard count the shards beside it were made with
    (a merge given another `num_shards`), or one of that shard's made beside another --manifest (the shards'
    --manifest is the merge's too)."""
    stem = path.name[: -len(f"-{index}-of-{num_shards}.csv")]
    made = re.compile(rf"{re.escape(stem)}-\d+-of-(?P<count>\d+)\.csv")
    found = [made.fullmatch(shard.name) for shard in path.parent.glob("*-of-*.csv")]
    counts = sorted({int(match["count"]) for match in found if match} - {num_shards})
    others = sorted(path.parent.glob(f"*-{index}-of-{num_shards}.csv"))
    hint = ""
    if counts:
        hint = (
            f" (the shards beside it were made with {setting('num_shards', counts[0])}: merge with that "
            f"{setting('num_shards')})"
        )
    elif others:
        merged = others[0].with_name(others[0].name.replace(f"-{index}-of-{num_shards}.csv", ".csv"))
        hint = (
            f" ({others[0]} is one: merge with {setting('manifest', str(merged))}, the {setting('manifest')} the "
            "shards were given)"
        )
    return f"{path}: shard {index} of {num_shards} has no manifest yet{hint}"


def merge_manifests(
    out_dir: Path, pairs: list[tuple[str, int]], num_shards: int, manifest_path: Path, fmt: str = "png"
) -> tuple[int, list[str]]:
    """Joins the shard manifests into `manifest_path` (one header, rows in the order of an unsharded run, each
    `dist_im` once), atomically; returns (rows written, the expected images without a row, in that order: those of
    references a shard skipped as bad). Every shard must have finished its share of `pairs` (no job writing it,
    not stopped part-way, not made from other references: `sharding.check_shard_finished`)."""
    rows: dict[str, dict] = {}
    for index in range(num_shards):
        path = shard_manifest(out_dir, num_shards, index, manifest_path)
        if not path.is_file():
            raise FileNotFoundError(_missing_shard_message(path, index, num_shards))
        check_shard_finished(path, index, num_shards, [name for name, _ in shard(pairs, num_shards, index)])
        for row in read_complete_rows(path, MANIFEST_COLUMNS):
            rows.setdefault(row["dist_im"], row)
    order = [output_name(name, t, level, fmt) for name, t in pairs for level in range(1, distortions.NUM_LEVELS + 1)]
    missing = [name for name in order if name not in rows]
    order += sorted(set(rows) - set(order))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows[name] for name in order if name in rows)
    atomic_write_bytes(manifest_path, buffer.getvalue().encode("utf-8"))
    return len(rows), missing


def discard_outputs(out_dir: Path) -> None:
    """For `overwrite`: removes the manifests of an earlier run, the images they list and the resized references."""
    import shutil

    for manifest in sorted(out_dir.glob("manifest*.csv")):
        for row in read_complete_rows(manifest, MANIFEST_COLUMNS):
            (out_dir / row["dist_im"]).unlink(missing_ok=True)
        manifest.unlink()
    shutil.rmtree(out_dir / REFERENCES_DIR, ignore_errors=True)


def kept_fraction(height: int, width: int) -> float:
    """The share of an image's area that `resize` keeps (its centre crop to 4:3 or 3:4 after scaling)."""
    tw, th = kadis_target(height, width)
    scale = kadis_scale(height, width)
    return (tw * th) / (max(tw, round(width * scale)) * max(th, round(height * scale)))


def warn_about_sizes(sizes: dict[str, tuple[int, int]], resize: bool) -> None:
    """One warning line each for references that `resize` enlarged, references whose aspect ratio made it crop
    most of the picture away (panoramas), and references too small to label."""
    from deepfl.fr.specs import SPECS

    if resize:
        upscaled = [(n, hw) for n, hw in sizes.items() if hw[0] and kadis_scale(*hw) > 1]
        if upscaled:
            name, (h, w) = upscaled[0]
            log.warning(
                "%s enlarged %d reference(s) smaller than %dx%d (e.g. %s, %dx%d, width x height): enlarged "
                "images are blurred, not pristine",
                setting("resize", True),
                len(upscaled),
                *KADIS_SIZE,
                name,
                w,
                h,
            )
        cropped = [(n, hw) for n, hw in sizes.items() if hw[0] and kept_fraction(*hw) < MIN_KEPT_FRACTION]
        if cropped:
            name, (h, w) = min(cropped, key=lambda item: kept_fraction(*item[1]))
            log.warning(
                "%s kept less than %d%% of %d reference(s) (e.g. %s, %dx%d, width x height: its centre "
                "%.0f%%): it crops to 4:3 or 3:4, so crop panoramas and other narrow images yourself to keep what "
                "matters",
                setting("resize", True),
                round(100 * MIN_KEPT_FRACTION),
                len(cropped),
                name,
                w,
                h,
                100 * kept_fraction(h, w),
            )
        return
    need = max(spec.min_size for spec in SPECS)
    small = [(n, hw) for n, hw in sizes.items() if hw[0] and min(hw) < need]
    if small:
        name, (h, w) = small[0]
        metrics = ", ".join(spec.name for spec in SPECS if spec.min_size > min(small[0][1]))
        log.warning(
            "%d reference(s) are below the %d-pixel minimum of deepfl-label's metrics (e.g. %s, %dx%d, width x "
            "height: too small for %s); use larger images or %s",
            len(small),
            need,
            name,
            w,
            h,
            metrics,
            setting("resize", True),
        )


def warn_about_unchanged(unchanged: dict[str, int]) -> None:
    """One warning line for the references {name: type} whose distorted images all equal them pixel for pixel (a
    flat, binary or black image: sharpening, darkening or quantising may change nothing at any level; a grey photo
    under a colour type such as saturation): their FR labels then say "identical" at every level, which teaches
    stage 1 that the distortion is invisible. (A single level-1 image equal to its reference is normal: some
    types' first level is that mild.)"""
    if not unchanged:
        return
    name, type_id = next(iter(unchanged.items()))
    log.warning(
        "%d reference(s) came out unchanged at all %d levels of their type (e.g. %s, type %d %s): some types leave "
        "flat, binary or black images, and colour types grey ones, as they are: the labels of such pairs say 'no "
        "distortion', and deepfl-label skips those of a flat grey reference (SFF has no value there); consider "
        "removing such references",
        len(unchanged),
        distortions.NUM_LEVELS,
        name,
        type_id,
        distortions.DISTORTION_NAMES[type_id],
    )


def check_assigned_types(
    manifest_path: Path, pairs: list[tuple[str, int]], resize: bool, output: str, from_csv: bool = True
) -> None:
    """Raises `SettingsChanged` when the manifest of an earlier run holds a reference of `pairs` with a type the
    pairs no longer give it: the assignment CSV was edited in place (its path, the stored setting, is the same),
    or (`from_csv` False: types drawn from the seed) the run's settings record is gone and the seed differs; resuming
    would put both types of that reference into one manifest. References or types added since are fine (they are
    new work)."""
    if not manifest_path.is_file():
        return
    assigned: dict[str, set[int]] = {}
    for name, type_id in pairs:
        assigned.setdefault(reference_name(name, resize), set()).add(type_id)
    for row in read_complete_rows(manifest_path, MANIFEST_COLUMNS):
        types = assigned.get(row["ref_im"])
        if types is not None and int(row["dist_type"]) not in types:
            raise SettingsChanged(
                f"{output}: {row['ref_im']} was distorted with type {row['dist_type']} by an earlier run, but the "
                f"assignment now gives it type {', '.join(map(str, sorted(types)))} "
                + (
                    f"(was {setting('assignment_csv')} edited?)"
                    if from_csv
                    else f"(drawn with another {setting('seed')}?)"
                )
                + f"; rerun with the earlier assignment, choose another {setting('out_dir')}, or pass "
                f"{setting('overwrite', True)} to discard the earlier run"
            )


def _references(
    ref_dir: Path, policy: ErrorPolicy, seed: int, assignment_csv: str | os.PathLike | None
) -> list[tuple[str, int]]:
    if not ref_dir.is_dir():
        raise FileNotFoundError(f"{setting('ref_dir')} {ref_dir}: no such folder")
    return reference_pairs(ref_dir, policy, seed, assignment_csv)


def _check_merge_settings(
    out_dir: Path, ref_dir: Path, seed: int, assignment_csv: str | os.PathLike | None, fmt: str
) -> None:
    """Raises `SettingsChanged` when the merge's flags that decide the expected images differ from those the
    shards recorded in `out_dir` (a merge with another --seed reported every image missing, exit 0)."""
    try:
        stored = json.loads((out_dir / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # no record (nothing sharded here yet): the shard files are checked one by one
    if not isinstance(stored, dict):
        return
    current = {
        "ref_dir": str(ref_dir.resolve()),
        "seed": seed,
        "format": fmt,
        "assignment_csv": str(Path(assignment_csv).resolve()) if assignment_csv else None,
    }
    changes = [
        f"{key} {shown_value(stored[key])} -> {shown_value(value)}"
        for key, value in current.items()
        if key in stored and not same_setting(stored[key], value, stored.get(RECORD_FOLDER), out_dir)
    ]
    if changes:
        raise SettingsChanged(
            f"{setting('out_dir')} {out_dir} was made with other settings ({'; '.join(changes)}): merge with the "
            f"shards' {by_caller('flags', 'arguments')}"
        )


def merge(
    ref_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    num_shards: int,
    seed: int = 0,
    assignment_csv: str | os.PathLike | None = None,
    fmt: str = "png",
    manifest: str | os.PathLike | None = None,
    on_error: str = "skip",
) -> tuple[Path, int, list[str]]:
    """Joins the `num_shards` shard manifests in `out_dir` into `manifest` (default `<out_dir>/manifest.csv`);
    returns (that path, rows written, the expected images without a row)."""
    ref_dir, out_dir = Path(ref_dir), Path(out_dir)
    pairs = _references(ref_dir, ErrorPolicy(on_error), seed, assignment_csv)
    if num_shards < 2:
        raise ValueError(
            f"num_shards: {by_caller('--merge', 'the merge')} needs the {setting('num_shards')} the shards were made "
            "with (>= 2)"
        )
    _check_merge_settings(out_dir, ref_dir, seed, assignment_csv, fmt)
    target = Path(manifest) if manifest else out_dir / "manifest.csv"
    rows, missing = merge_manifests(out_dir, pairs, num_shards, target, fmt)
    return target, rows, missing


def generate(
    ref_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    seed: int = 0,
    assignment_csv: str | os.PathLike | None = None,
    resize: bool = False,
    fmt: str = "png",
    png_compression: int = 1,
    manifest: str | os.PathLike | None = None,
    workers: int | None = None,
    num_shards: int = 1,
    shard_index: int = 0,
    on_error: str = "skip",
    overwrite: bool = False,
) -> DistortSummary:
    """Distorts the references of shard `shard_index` of `ref_dir` into `out_dir` (resumable); returns what it did
    (rows written, references already done, bad references skipped). `workers` processes (default:
    `cpus.usable_cores()`); `on_error` "skip" logs and counts a bad reference, "stop" raises
    `deepfl.jobs.JobStopped`. Settings differing from an earlier run's in `out_dir` are refused unless `overwrite`,
    which discards that run's outputs first."""
    ref_dir, out_dir = Path(ref_dir), Path(out_dir)
    if out_dir.resolve() == ref_dir.resolve():
        raise ValueError(
            f"{setting('out_dir')} {out_dir}: is {setting('ref_dir')}; the next run would take its distorted images "
            f"for references: choose another folder (a subfolder of {setting('ref_dir')} is fine, only the images "
            "directly inside are read)"
        )
    policy = ErrorPolicy(on_error)
    pairs = _references(ref_dir, policy, seed, assignment_csv)
    settings = {
        "ref_dir": str(ref_dir.resolve()),
        "seed": seed,
        "resize": resize,
        "format": fmt,
        "png_compression": png_compression,
        "assignment_csv": str(Path(assignment_csv).resolve()) if assignment_csv else None,
    }
    pairs = shard(pairs, num_shards, shard_index)  # bad shard flags fail before the settings are stored
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = shard_manifest(out_dir, num_shards, shard_index, manifest)
    recorded = (out_dir / SETTINGS_FILE).exists()
    output = f"{setting('out_dir')} {out_dir}"
    if num_shards > 1 and not overwrite:
        target = shard_manifest(out_dir, 1, 0, manifest)
        check_one_shard_count(
            sorted(target.parent.glob(f"{target.stem}-*-of-*{target.suffix}")),
            rf"{re.escape(target.stem)}-\d+-of-(?P<count>\d+){re.escape(target.suffix)}",
            num_shards,
            output,
        )
    if not overwrite and not recorded:  # a lost record: checked before this run's settings become the record
        check_assigned_types(manifest_path, pairs, resize, output, from_csv=bool(assignment_csv))
    if not check_settings(out_dir / SETTINGS_FILE, settings, overwrite, output=output) and overwrite:
        discard_outputs(out_dir)
    elif recorded:  # the same settings: an assignment CSV edited in place is caught here
        check_assigned_types(manifest_path, pairs, resize, output, from_csv=bool(assignment_csv))
    manifest_csv = AppendOnlyCsv(manifest_path, MANIFEST_COLUMNS, key="dist_im", lock=True)

    def finished(name: str, type_id: int) -> bool:  # listed in the manifest and present on disk
        outputs = [output_name(name, type_id, lv, fmt) for lv in range(1, distortions.NUM_LEVELS + 1)]
        if resize:
            outputs.append(reference_name(name, True))
        return all(
            (o in manifest_csv.done or o.startswith(REFERENCES_DIR + "/")) and (out_dir / o).exists() for o in outputs
        )

    todo = [(name, t) for name, t in pairs if not finished(name, t)]
    references = len({name for name, _ in pairs})
    several_types = references < len(pairs)  # an assignment CSV gave a reference more than one type
    unit = "assignments" if several_types else "references"
    counted = f"{references} references" + (f" in {len(pairs)} (reference, type) assignments" if several_types else "")
    done = len(pairs) - len(todo)
    log.info("%s (%d already done), %d distorted images to write -> %s", counted, done, 5 * len(todo), out_dir)
    tasks = [(str(ref_dir), name, t, str(out_dir), fmt, seed, resize, png_compression) for name, t in todo]
    workers = min(workers or usable_cores(), max(1, len(tasks)))
    if tasks:
        with said_while_compiling("the distortion and PNG kernels"):
            warm_up()
    written = 0
    sizes: dict[str, tuple[int, int]] = {}
    unchanged: dict[str, int] = {}
    with progress(total=5 * len(tasks), desc="distort", unit="img") as bar:
        if workers == 1:
            _keep_freed_memory()
            results = map(process_reference, tasks)
            pool = None
        else:
            context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            pool = context.Pool(workers, initializer=init_worker, initargs=(on_command_line(),))
            # Ordered, so the manifest rows come in the same order on every run (and after a restart).
            results = pool.imap(process_reference, tasks, chunksize=1)
        try:
            for (name, type_id), (rows, error, size, unchanged_at_all_levels) in zip(todo, results):
                if error:
                    policy.handle(error)
                    bar.update(5)
                    continue
                sizes[name] = size  # the size warnings are about references that were distorted
                if unchanged_at_all_levels:
                    unchanged[name] = type_id
                written += manifest_csv.append(rows)
                bar.update(len(rows))
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    if num_shards > 1:  # every reference of its share distorted or reported: what the merge checks for
        mark_shard_finished(manifest_path, [name for name, _ in pairs])
    warn_about_sizes(sizes, resize)
    warn_about_unchanged(unchanged)
    return DistortSummary(manifest_path, written, done, policy.count, unit)
