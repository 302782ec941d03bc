"""Weak labels for a whole data set: every (reference, distorted) pair scored by the FR metrics.

The job reads a manifest of pairs (`dist_im, ref_im`, as `deepfl-distort` writes, or KADID-10k's `dmos.csv`
with `dist_img, ref_img`), groups the pairs by reference so that each reference is decoded once per batch of its
distorted versions, decodes ahead of the scoring in a tf.data pipeline with prefetch, scores each batch with the chosen
metrics and appends the rows to a CSV in the KADIS-700k release layout
(`dist_im, ref_im, ssim, msssim, iwssim, mdsi, vsi, fsim, gmsd, sff, scqi, add_gsim, sr_sim`).

The output is append-only and resumable (`deepfl.jobs.AppendOnlyCsv`, key `dist_im`): a restarted job skips the
pairs already written and never loses or duplicates a row. Sharding splits the references round-robin; each
shard writes its own file and `merge_shards` joins them in manifest order. A pair whose image is missing,
unreadable, of another size than its reference, or whose score is not finite is reported by name and skipped
(or stops the job, `on_error="stop"`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from deepfl.data.tables import extra_fields_message
from deepfl.errors import DeepflError, ImageReadError, NoUsableInput, TableError
from deepfl.fileio import atomic_write_bytes
from deepfl.fr import METRICS, metric_function, metric_meant
from deepfl.fr.running import score_metrics
from deepfl.images import header_sizes_of, read_image, turned_by_orientation_tag
from deepfl.jobs import (
    AppendOnlyCsv,
    ErrorPolicy,
    SettingsChanged,
    check_settings,
    counted,
    progress,
    read_complete_rows,
    settings_beside,
)
from deepfl.sharding import being_written, check_one_shard_count, check_shard_finished, mark_shard_finished, shard
from deepfl.wording import by_caller, setting

log = logging.getLogger("deepfl")

KEY_COLUMNS = ("dist_im", "ref_im")
# Pairs per metric call by default: KADIS gives each reference 5 distorted images (one type at 5 levels), so a
# call scores 5 references x 5 levels, each reference decoded once and its reference-only work done once.
PAIRS_PER_BATCH = 5 * 5
# The pairs of an image size run the metrics' compiled graphs when the manifest holds enough of them to repay the
# compilation (pixels x pairs of that size >= this), else the metrics' NumPy forms, which compile nothing (see
# `deepfl.fr.functional.staging`). Compiling all eleven metrics for one batch shape takes about 40 s on 2 cores
# and then saves about 0.6 us per pixel-pair (docs/labels.md), so the two break even near 7e7: a size met in 357
# or more pairs of 384x512 compiles, one photo's 125 distortions score uncompiled.
COMPILE_FROM_PIXEL_PAIRS = 7e7
# The most distorted-image pixels one metric call holds: a KADIS batch (25 pairs of 512x384). Larger images go fewer
# pairs to a call, down to one, and a size whose single pair exceeds it is never compiled (a compiled graph keeps
# every full-size intermediate: about 460 bytes per pixel, 11 GB for one 24-megapixel pair, where the NumPy forms
# work on strips). Without it, the 5 levels of three 12-24 megapixel photos took 19-24 GB in one call.
PIXELS_PER_CALL = PAIRS_PER_BATCH * 512 * 384
# Column names accepted for the two key columns (ours/KADIS first, then KADID-10k's dmos.csv).
_ALIASES = {"dist_im": ("dist_im", "dist_img"), "ref_im": ("ref_im", "ref_img")}


def output_columns(metrics: Sequence[str] = METRICS) -> list[str]:
    """`dist_im, ref_im` + the metrics in KADIS column order (all eleven = the release layout)."""
    return list(KEY_COLUMNS) + [m for m in METRICS if m in set(metrics)]


def check_metrics(metrics: Iterable[str] | str | None) -> list[str]:
    """Validates a metric subset (list or comma-separated string; None = all eleven), in KADIS order."""
    if metrics is None:
        return list(METRICS)
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    metrics = list(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        meant = [f"{close!r} for {m!r}" for m in unknown if (close := metric_meant(m))]
        hint = f" (did you mean {', '.join(meant)}?)" if meant else ""
        raise ValueError(f"metrics: unknown metric(s) {', '.join(unknown)}{hint}; choose from {', '.join(METRICS)}")
    if not metrics:
        raise ValueError("metrics: at least one metric is needed")
    return [m for m in METRICS if m in set(metrics)]


def load_metric_functions(metrics: Sequence[str]) -> dict:
    """Imports each metric's TF function; a metric that cannot be imported fails with one line naming it."""
    functions = {}
    for name in metrics:
        try:
            functions[name] = metric_function(name)
        except ImportError as exc:
            raise ValueError(
                f"metrics: metric {name!r} is not available ({exc}); choose a subset with {setting('metrics')}"
            ) from None
    return functions


def _key_renames(columns, error: Callable[[str], Exception]) -> dict[str, str]:
    """{column: key} for each of `KEY_COLUMNS` under the first of its spellings (`_ALIASES`) found in `columns`;
    raises `error(text)` naming a key none of whose spellings is there."""
    rename = {}
    for key, aliases in _ALIASES.items():
        found = [a for a in aliases if a in columns]
        if not found:
            raise error(f"no column {' or '.join(aliases)} (columns: {', '.join(map(str, columns))})")
        rename[found[0]] = key
    return rename


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Reads a pair manifest -> DataFrame with string columns `dist_im, ref_im` (other columns dropped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        detail = str(exc).strip().replace("Error tokenizing data. C error: ", "")  # (its newline cut the line)
        raise TableError(f"{path}: not a readable CSV ({detail})") from None
    extra = extra_fields_message(table)
    if extra:
        raise TableError(f"{path}: {extra}")
    rename = _key_renames(table.columns, lambda missing: TableError(f"{path}: {missing}"))
    table = table.rename(columns=rename)[list(KEY_COLUMNS)]
    empty = table[(table.dist_im.str.strip() == "") | (table.ref_im.str.strip() == "")]
    if len(empty):
        raise TableError(f"{path}: row {int(empty.index[0]) + 2} has an empty dist_im or ref_im")
    duplicated = table.dist_im[table.dist_im.duplicated()]
    if len(duplicated):
        again, name = int(duplicated.index[0]), duplicated.iloc[0]
        first = int(table.index[table.dist_im == name][0])
        column = next(original for original, key in rename.items() if key == "dist_im")
        raise TableError(
            f"{path}: line {again + 2} repeats {column} {name!r} of line {first + 2}; each distorted image once"
        )
    return table.reset_index(drop=True)


def _pair_table(pairs) -> pd.DataFrame:
    """`pairs` as a DataFrame with string columns `dist_im, ref_im`: also from KADID's spellings (`dist_img`,
    `ref_img`, as `read_manifest` takes them) or a list of (dist, ref) tuples; anything else is refused by name
    (it failed with "'list' object has no attribute 'dist_im'")."""
    if not isinstance(pairs, pd.DataFrame):
        try:
            pairs = pd.DataFrame(list(pairs), columns=list(KEY_COLUMNS), dtype=str)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"pairs: need a DataFrame with dist_im, ref_im or (dist, ref) tuples ({exc})") from None

    def missing(text: str) -> ValueError:
        return ValueError(f"pairs: {text}; read_manifest(path) reads a manifest file")

    return pairs.rename(columns=_key_renames(pairs.columns, missing))


def group_pairs(pairs: pd.DataFrame, batch_size: int = PAIRS_PER_BATCH) -> list[tuple[str, list[str]]]:
    """Groups pairs by reference (first-seen order) in chunks of <= batch_size: [(ref_im, [dist_im, ...])]."""
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    groups: dict[str, list[str]] = {}
    for dist_im, ref_im in zip(pairs.dist_im, pairs.ref_im):
        groups.setdefault(ref_im, []).append(dist_im)
    return [(ref, dists[i : i + batch_size]) for ref, dists in groups.items() for i in range(0, len(dists), batch_size)]


def shard_groups(
    groups: Sequence[tuple[str, Sequence[str]]], num_shards: int, shard_index: int
) -> list[tuple[str, Sequence[str]]]:
    """The groups (`group_pairs`) shard `shard_index` labels: those of its references, dealt round-robin in the
    manifest's order, so that a reference is decoded by one shard only."""
    references = list(dict.fromkeys(ref for ref, _ in groups))
    mine = set(shard(references, num_shards, shard_index))
    return [(ref, dists) for ref, dists in groups if ref in mine]


def shard_share(groups: Sequence[tuple[str, Sequence[str]]], num_shards: int, shard_index: int) -> list[str]:
    """The dist_im names shard `shard_index` labels, in the manifest's order (`shard_groups`)."""
    return [dist for _, dists in shard_groups(groups, num_shards, shard_index) for dist in dists]


def compiled_sizes(
    groups: Sequence[tuple[str, Sequence[str]]], ref_root: str | os.PathLike, threshold: float
) -> frozenset[tuple[int, int]] | None:
    """The reference sizes (height, width) whose pairs are scored by the compiled graphs: those with at least
    `threshold` pixels x pairs in `groups` and at most `PIXELS_PER_CALL` pixels, sizes read from the references'
    headers. None means every size
    (`threshold` <= 0, nothing read). Decided before any scoring and from the whole manifest, so a restarted job
    and every shard take the same path for a pair and write the same bytes (the two paths differ in the last
    digits)."""
    if threshold <= 0:
        return None
    if math.isinf(threshold):
        return frozenset()
    references = list(dict.fromkeys(ref for ref, _ in groups))
    sizes = dict(zip(references, header_sizes_of(Path(ref_root) / ref for ref in references)))
    pairs: dict[tuple[int, int], int] = {}
    for ref, dists in groups:
        if sizes[ref] is not None:
            pairs[sizes[ref]] = pairs.get(sizes[ref], 0) + len(dists)
    return frozenset(
        size
        for size, count in pairs.items()
        if count * size[0] * size[1] >= threshold and size[0] * size[1] <= PIXELS_PER_CALL
    )


def pairs_per_call(height: int, width: int, batch_size: int = PAIRS_PER_BATCH) -> int:
    """How many pairs of height x width one metric call scores: `batch_size`, fewer where they would hold more than
    `PIXELS_PER_CALL` pixels, and at least one."""
    return max(1, min(batch_size, PIXELS_PER_CALL // max(1, height * width)))


def _check_inputs_found(
    groups: Sequence[tuple[str, Sequence[str]]], ref_root: Path, image_root: Path, fresh: bool
) -> None:
    """Raises `NoUsableInput` before any scoring when not one reference of `groups` exists under `ref_root`, or (in
    a `fresh` run: a resumed one may have only its known-bad pairs left) not one distorted image under
    `image_root` (a wrong folder): otherwise each pair would be warned about in turn, 700,000 lines for KADIS-700k,
    before the job found that it had scored nothing. Stops looking at the first file found."""
    pairs = sum(len(dists) for _, dists in groups)
    pairs_text = f"{pairs} pair{'s' * (pairs != 1)} to do"
    if fresh and groups and not any((image_root / dist).is_file() for _, dists in groups for dist in dists):
        # (named as --ref_root's fault, or warned pair by pair when the references were found: walks 42b, 42c)
        raise NoUsableInput(
            f"no distorted image found: none of the {pairs_text} is in {image_root} (first: {groups[0][1][0]}); "
            "give the folder the manifest's paths start from as "
            + by_caller("--image_root (the --out_dir of deepfl-distort)", "image_root")
        )
    references = list(dict.fromkeys(ref for ref, _ in groups))
    if not references or any((ref_root / ref).is_file() for ref in references):
        return
    found = (
        f"none of the {len(references)} references of the {pairs_text} is in {ref_root} (first: {references[0]})"
        if len(references) > 1
        else f"the reference of the {pairs_text}, {references[0]}, is not in {ref_root}"
    )
    raise NoUsableInput(
        f"no reference found: {found}; give their folder as "
        + by_caller(
            "--ref_root (without it the command takes the --ref_dir deepfl-distort recorded beside the manifest, "
            "else --image_root)",
            "ref_root (without it, image_root)",
        )
    )


def shard_file(out_csv: str | os.PathLike, num_shards: int, shard_index: int) -> Path:
    """The output file of one shard: `<stem>.shard-00003-of-00008.csv` (or `out_csv` itself if unsharded)."""
    out_csv = Path(out_csv)
    if num_shards == 1:
        return out_csv
    return out_csv.with_name(f"{out_csv.stem}.shard-{shard_index:05d}-of-{num_shards:05d}{out_csv.suffix}")


def _listed(names: Sequence[str]) -> str:
    """The first two names, and how many more."""
    return ", ".join(names[:2]) + (f" and {len(names) - 2} more" if len(names) > 2 else "")


def _reference_lines(reference_error: str, dist_paths: Sequence[str]) -> tuple[list[str], str]:
    """For the pairs of an unreadable reference: one skip entry per pair (the summary counts pairs) and the one
    line to log for all of them (a wrong --ref_root would otherwise print a line per distorted image)."""
    plural = "s" if len(dist_paths) > 1 else ""
    line = f"reference {reference_error}: {len(dist_paths)} distorted image{plural} not scored ({_listed(dist_paths)})"
    return [f"{path}: skipped, reference {reference_error}" for path in dist_paths], line


def _undefined_line(group: _Group, undefined: dict[str, str]) -> str:
    """One line for a reference all of whose pairs scored NaN in the same metrics (a flat grey one: SFF at every
    level), instead of a line per pair; "" where the pairs differ or others were bad already."""
    names = list(undefined)
    bad = set(undefined.values())
    if len(names) < 2 or len(names) != len(group.good) or len(bad) > 1 or group.bad_pairs:
        return ""
    metrics = bad.pop()
    return (
        f"{group.ref_im}: its {len(names)} distorted images scored non-finite {metrics}"
        f"{_undefined_reasons(metrics.split(', '))}; rows skipped ({_listed(names)})"
    )


def _undefined_reasons(metrics: Sequence[str]) -> str:
    """Where the metrics that scored NaN have no value, as a parenthesis ("" when none is known)."""
    from deepfl.fr.specs import SPEC_BY_NAME

    reasons = [SPEC_BY_NAME[m].undefined_where for m in metrics if SPEC_BY_NAME[m].undefined_where]
    return f" ({'; '.join(reasons)})" if reasons else ""


def _load_group(ref_path: str, dist_paths: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], str]:
    """Decodes one reference and its distorted images -> (ref, stack of good ones, their indices, problems with
    distorted images, the reference's read error or "")."""
    problems: list[str] = []
    try:
        ref = read_image(ref_path)
    except ImageReadError as exc:
        return np.zeros((1, 1, 3), np.uint8), np.zeros((0, 1, 1, 3), np.uint8), np.zeros(0, np.int32), [], str(exc)
    good, index = [], []
    for i, dist_path in enumerate(dist_paths):
        try:
            dist = read_image(dist_path)
        except ImageReadError as exc:
            problems.append(str(exc))
            continue
        if dist.shape != ref.shape:
            swapped = dist.shape[:2] == ref.shape[1::-1]
            tagged = [p for p in (ref_path, dist_path) if swapped and turned_by_orientation_tag(p)]
            problems.append(
                f"{dist_path}: size {dist.shape[1]}x{dist.shape[0]} differs from its reference "
                f"{ref_path} ({ref.shape[1]}x{ref.shape[0]}, width x height)"
                + (
                    f": width and height swapped; {tagged[0]} is stored sideways with an EXIF orientation tag, "
                    "which deepfl applies (as viewers do): save both upright"
                    if tagged
                    else ": width and height swapped (one of them turned a quarter turn?)"
                    if swapped
                    else ""
                )
            )
            continue
        good.append(dist)
        index.append(i)
    stack = np.stack(good) if good else np.zeros((0,) + ref.shape, np.uint8)
    return ref, stack, np.asarray(index, np.int32), problems, ""


def pair_dataset(
    groups: Sequence[tuple[str, Sequence[str]]],
    image_root: str | os.PathLike,
    ref_root: str | os.PathLike | None = None,
    prefetch: int = 2,
    parallel: int = 1,
):
    """tf.data pipeline over `groups`: decode (one reference per group; `parallel` at once), ordered, prefetched.

    Yields (group index, ref HxWx3 uint8, dists KxHxWx3 uint8, indices of the good dists in the group,
    problem messages of distorted images, the reference's read error or b""). Decoding uses
    `deepfl.images.read_image` (any format, one-line errors).
    """
    import tensorflow as tf

    from deepfl.data.pipeline import untuned

    image_root = Path(image_root)
    ref_root = Path(ref_root) if ref_root is not None else image_root
    paths = [(str(ref_root / ref), [str(image_root / d) for d in dists]) for ref, dists in groups]

    def load(index):
        ref_path, dist_paths = paths[int(index)]
        ref, dists, good, problems, reference_error = _load_group(ref_path, dist_paths)
        encoded = np.array([p.encode("utf-8") for p in problems], dtype=object)
        return ref, dists, good, encoded, np.array(reference_error.encode("utf-8"), dtype=object)

    @tf.autograph.experimental.do_not_convert
    def tf_load(index):
        ref, dists, good, problems, reference_error = tf.numpy_function(
            load, [index], [tf.uint8, tf.uint8, tf.int32, tf.string, tf.string], stateful=False
        )
        return index, ref, dists, good, problems, reference_error

    dataset = tf.data.Dataset.range(len(paths))
    dataset = dataset.map(tf_load, num_parallel_calls=parallel, deterministic=True)
    # One decode at a time, ahead of the metrics (the slow side), without autotuning (`untuned`).
    return untuned(dataset.prefetch(prefetch))


def _label_header(path: Path) -> list[str] | None:
    """The header of a label CSV at `path` (it starts with `KEY_COLUMNS`); None where there is none."""
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        header = next(csv.reader(handle), None)
    return header if header and header[:2] == list(KEY_COLUMNS) else None


def _check_metric_columns(out_path: Path, metrics: Sequence[str], merging: bool = False) -> None:
    """Raises `SettingsChanged` when an earlier run's CSV at `out_path` holds other metric columns than these
    (`merging`: a shard file read by the merge, whose --metrics must be the shards')."""
    header = _label_header(out_path)
    if header and header != output_columns(metrics):
        written, asked = ",".join(header[2:]), ",".join(output_columns(metrics)[2:])
        if merging:
            raise SettingsChanged(
                f"{out_path}: the shards were made with the metrics {written}; this merge asks for {asked}: merge "
                f"with {setting('metrics', header[2:])}"
            )
        raise SettingsChanged(
            f"{out_path}: an earlier run wrote the metrics {written}; this one asks for {asked}: rerun with "
            f"{setting('metrics', header[2:])}, choose another "
            f"{by_caller('--out_dir or --output_name', 'out_csv')}, or pass {setting('overwrite', True)} to delete "
            "the CSV and score again"
        )


@dataclass
class LabelSummary:
    """What a labelling run did: rows written now, rows found done, pairs skipped (with messages)."""

    output: Path
    written: int = 0
    already_done: int = 0
    skipped: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.already_done and not self.written and not self.skipped:
            return f"{self.output}: nothing to do, all {self.already_done} pairs were labelled by an earlier run"
        return (
            f"{self.output}: {counted(self.written, 'rows')} written, {self.already_done} already done, "
            f"{counted(len(self.skipped), 'bad pairs')} skipped"
        )


def score_batch(
    functions: dict, refs: np.ndarray, dists: np.ndarray, ref_index: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Scores N distorted images with every metric -> {metric: float64[N]}.

    refs: one reference (HxWx3) for all of `dists`, or R references (RxHxWx3) with `ref_index` (N ints) naming
    each distorted image's reference. Every metric does its reference-only work once per reference.
    """
    import tensorflow as tf

    from deepfl.fr.functional.validation import converted_from_integers  # TensorFlow: imported when scoring

    refs = np.asarray(refs)
    if refs.ndim == 3:
        refs = refs[None]
    if ref_index is None:
        if len(refs) != 1:
            raise ValueError(f"ref_index: needed for {len(refs)} references")
        ref_index = np.zeros(len(dists), np.int32)
    dist_t = tf.convert_to_tensor(dists, tf.float32)
    ref_t = tf.convert_to_tensor(refs, tf.float32)
    index = tf.constant(np.asarray(ref_index, np.int32))
    with converted_from_integers(refs, dists):
        return score_metrics(functions, ref_t, dist_t, index)


@dataclass
class _Group:
    """One decoded reference with its distorted images, as the tf.data pipeline yields it."""

    ref_im: str
    dist_names: list[str]
    ref: np.ndarray
    dists: np.ndarray
    good: np.ndarray  # indices into dist_names of the decoded, same-size distorted images
    bad_pairs: list[str]
    # the one line logged for all its bad_pairs where they share a reason (an unreadable reference, too small)
    group_line: str = ""


_WARM_METRICS: set[str] = set()  # the metrics whose kernels this process has compiled or loaded


def warm_up_kernels(functions: dict) -> None:
    """Scores one small pair with the NumPy forms of the metrics not yet warm in this process, so that their Numba
    kernels are compiled (the first use on a machine: seconds) or loaded from Numba's cache before a batch is
    scored. One pair covers every image size: each kernel is called with one signature (one dtype and memory
    layout per argument)."""
    from deepfl.fr.functional.staging import compile_after
    from deepfl.fr.specs import SPEC_BY_NAME

    cold = {name: function for name, function in functions.items() if name not in _WARM_METRICS}
    if not cold:
        return
    side = max(SPEC_BY_NAME[name].min_size for name in cold)
    ref, dist = np.random.default_rng(0).integers(0, 256, (2, 1, side, side, 3), dtype=np.uint8)
    with compile_after(math.inf):
        score_batch(cold, ref, dist)
    _WARM_METRICS.update(cold)


def _scoring_path(groups: list[_Group], compiled: frozenset[tuple[int, int]] | None):
    """The staging context for one batch (its groups share a size): compiled graphs from the first call for a size
    in `compiled` (None: every size), the NumPy forms for any other."""
    from deepfl.fr.functional.staging import compile_after, compiled_from_first_call

    size = next((tuple(g.ref.shape[:2]) for g in groups if len(g.good)), None)
    if compiled is None or size in compiled:
        return compiled_from_first_call()
    return compile_after(math.inf)


def _score_groups(functions: dict, groups: list[_Group], per_call: int) -> list[dict[str, np.ndarray]]:
    """Scores several references' groups (same image size) -> scores per group, in metric calls of at most
    `per_call` pairs: groups are packed together (each reference's own work done once per call) and a group
    larger than that is split across calls (its reference then goes with each part)."""
    busy = [k for k, g in enumerate(groups) if len(g.good)]
    calls: list[list[tuple[int, int, int]]] = [[]]  # per call: (group, first, stop) slices of its distorted images
    room = per_call
    for k in busy:
        start = 0
        while start < len(groups[k].good):
            if room == 0:
                calls.append([])
                room = per_call
            take = min(room, len(groups[k].good) - start)
            calls[-1].append((k, start, start + take))
            start, room = start + take, room - take
    parts: dict[int, list[dict[str, np.ndarray]]] = {k: [] for k in busy}
    for call in calls if busy else []:
        members = list(dict.fromkeys(k for k, _, _ in call))
        slot = {k: position for position, k in enumerate(members)}
        index = np.concatenate([np.full(stop - first, slot[k], np.int32) for k, first, stop in call])
        dists = np.concatenate([groups[k].dists[first:stop] for k, first, stop in call])
        scores = score_batch(functions, np.stack([groups[k].ref for k in members]), dists, index)
        offset = 0
        for k, first, stop in call:
            parts[k].append({name: values[offset : offset + stop - first] for name, values in scores.items()})
            offset += stop - first
    return [
        {name: np.concatenate([part[name] for part in parts[k]]) for name in parts[k][0]} if k in parts else {}
        for k in range(len(groups))
    ]


def label_pairs(
    pairs: pd.DataFrame,
    image_root: str | os.PathLike,
    out_csv: str | os.PathLike,
    metrics: Sequence[str] | str | None = None,
    ref_root: str | os.PathLike | None = None,
    batch_size: int = PAIRS_PER_BATCH,
    num_shards: int = 1,
    shard_index: int = 0,
    on_error: str = "skip",
    compile_from_pixel_pairs: float = COMPILE_FROM_PIXEL_PAIRS,
    overwrite: bool = False,
) -> LabelSummary:
    """Scores the pairs of shard `shard_index` and appends them to the shard's output CSV (resumable).

    pairs: DataFrame with `dist_im, ref_im` (file names relative to `image_root` / `ref_root`, default the
    same folder). Returns a `LabelSummary`; `on_error="stop"` raises `deepfl.jobs.JobStopped` at the first bad
    pair (rows already written stay). An image size with at least `compile_from_pixel_pairs` pixels x pairs in
    the manifest is scored by the metrics' compiled graphs (compiled on its first batch), any other size by their
    NumPy forms (`compiled_sizes`): 0 compiles every size, `math.inf` none.

    `batch_size` and `compile_from_pixel_pairs` change scores in their last digits (float32 reduction order,
    NumPy form or compiled graph), so they are stored beside the CSV (`<csv>.settings.json`): resuming with
    other values is refused (`deepfl.jobs.SettingsChanged`) unless `overwrite`, which first deletes the CSV.
    """
    pairs = _pair_table(pairs)
    metrics = check_metrics(metrics)
    policy = ErrorPolicy(on_error)
    for name, folder in (("image_root", image_root), ("ref_root", ref_root)):
        if folder is not None and not Path(folder).is_dir():  # else a line per pair, "no such image file" (walk 39b)
            raise FileNotFoundError(f"{name}: {folder}: no such folder")
    shard([], num_shards, shard_index)  # bad shard flags fail before anything is stored
    out_path = shard_file(out_csv, num_shards, shard_index)
    if num_shards > 1 and not overwrite:
        whole = Path(out_csv)
        check_one_shard_count(
            sorted(whole.parent.glob(f"{whole.stem}.shard-*-of-*{whole.suffix}")),
            rf"{re.escape(whole.stem)}\.shard-\d+-of-(?P<count>\d+){re.escape(whole.suffix)}",
            num_shards,
            str(whole),
        )
        _check_sibling_shards(out_csv, num_shards, shard_index, metrics)
    if overwrite and out_path.is_file():
        with open(out_path, "rb") as earlier:
            rows = max(0, sum(1 for _ in earlier) - 1)
        out_path.unlink()
        log.info("%s: removed the earlier labels (%d rows; %s)", out_path, rows, setting("overwrite", True))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    check_settings(
        settings_beside(out_path),
        {"batch_size": batch_size, "compile_from_pixel_pairs": compile_from_pixel_pairs},
        overwrite,
        output=out_path,
    )
    _check_metric_columns(out_path, metrics)
    fresh = not out_path.exists()
    table = AppendOnlyCsv(out_path, output_columns(metrics), key="dist_im", lock=True)
    summary = LabelSummary(out_path)
    finished = False
    try:
        groups = group_pairs(pairs, batch_size)
        mine = shard_groups(groups, num_shards, shard_index)
        todo = []
        for ref, dists in mine:
            remaining = [d for d in dists if d not in table]
            summary.already_done += len(dists) - len(remaining)
            if remaining:
                todo.append((ref, remaining))
        _check_inputs_found(
            todo,
            Path(ref_root if ref_root is not None else image_root),
            Path(image_root),
            fresh=not summary.already_done,
        )
        # The census of the whole manifest (every shard decides alike), read only when something is left to score.
        compiled = (
            compiled_sizes(groups, ref_root if ref_root is not None else image_root, compile_from_pixel_pairs)
            if todo
            else frozenset()
        )
        if not todo:  # a finished shard: returns without loading TensorFlow
            finished = True
            if num_shards > 1:
                mark_shard_finished(out_path, [d for _, dists in mine for d in dists])
            return summary
        total = sum(len(d) for _, d in todo)
        if summary.already_done:  # a resumed run says so before its bar starts (walk 39: it showed 0/40)
            log.info(
                "%s: %d of %d pairs already labelled, labelling the other %d",
                out_path,
                summary.already_done,
                summary.already_done + total,
                total,
            )
        functions = load_metric_functions(metrics)
        from deepfl._numba import said_while_compiling  # Numba: loaded only when something is left to score
        from deepfl.fr.functional.validation import check_min_sizes  # TensorFlow, loaded with the metrics
        from deepfl.fr.specs import SPEC_BY_NAME

        bar = progress(total=total, desc=f"label {out_path.name}", unit="pair")
        pending: list[_Group] = []
        kernels_ready = False

        def flush() -> None:
            """Scores the pending groups together, appends their good rows, then reports their bad pairs."""
            nonlocal kernels_ready
            size = next((g.ref.shape[:2] for g in pending if len(g.good)), (1, 1))
            if not kernels_ready and compiled is not None and tuple(size) not in compiled:  # the NumPy forms
                with said_while_compiling("the FR metrics' kernels"):  # else silent inside the first batch
                    warm_up_kernels(functions)
                kernels_ready = True
            try:
                # every metric the pairs are too small for in one line (each metric's own check names only itself)
                check_min_sizes({name: SPEC_BY_NAME[name].min_size for name in functions}, *size)
                with _scoring_path(pending, compiled):
                    scored = _score_groups(functions, pending, pairs_per_call(*size, batch_size))
            except ValueError as exc:  # e.g. images too small for a metric: the pairs are bad
                for g in pending:
                    if len(g.good) > 1 and not g.bad_pairs:  # one line for the reference, not one per level
                        names = [g.dist_names[i] for i in g.good]
                        g.group_line = (
                            f"{g.ref_im}: its {len(names)} distorted images not scored ({exc}): {_listed(names)}"
                        )
                    g.bad_pairs += [f"{g.dist_names[i]}: not scored ({exc})" for i in g.good]
                    g.good = np.zeros(0, np.int32)
                scored = [{} for _ in pending]
            rows = []
            for g, scores in zip(pending, scored):
                undefined: dict[str, str] = {}  # distorted image -> the metrics without a finite score
                for k, i in enumerate(g.good):
                    row = {"dist_im": g.dist_names[i], "ref_im": g.ref_im}
                    bad = [m for m in metrics if not np.isfinite(scores[m][k])]
                    if bad:
                        undefined[g.dist_names[i]] = ", ".join(bad)
                        continue
                    row.update({m: f"{scores[m][k]:.10g}" for m in metrics})
                    rows.append(row)
                if undefined:
                    g.group_line = _undefined_line(g, undefined)
                    g.bad_pairs += [
                        f"{name}: non-finite {bad} score{_undefined_reasons(bad.split(', '))}; row skipped"
                        for name, bad in undefined.items()
                    ]
            summary.written += table.append(rows)  # good rows first: a stop keeps them
            bar.update(sum(len(g.dist_names) for g in pending))
            groups_done = list(pending)
            pending.clear()
            for g in groups_done:
                summary.skipped.extend(g.bad_pairs)
                for line in [g.group_line] if g.group_line else g.bad_pairs:
                    policy.handle(line)

        try:
            # References are packed into one metric call until `batch_size` pairs (same image size; fewer of large
            # images: `pairs_per_call`) are pending, so short groups (KADIS: 5 levels per reference) still give the
            # metrics large batches.
            batches = pair_dataset(todo, image_root, ref_root).as_numpy_iterator()
            for index, ref, dists, good, problems, reference_error in batches:
                ref_im, dist_names = todo[int(index)]
                group = _Group(ref_im, list(dist_names), ref, dists, good, [m.decode() for m in problems])
                if reference_error:
                    dist_paths = [str(Path(image_root) / name) for name in dist_names]
                    group.bad_pairs, group.group_line = _reference_lines(reference_error.decode(), dist_paths)
                busy = [g for g in pending if len(g.good)]
                pending_pairs = sum(len(g.good) for g in busy)
                limit = pairs_per_call(*ref.shape[:2], batch_size)
                if busy and len(good) and (ref.shape != busy[0].ref.shape or pending_pairs + len(good) > limit):
                    flush()
                pending.append(group)
            if pending:
                flush()
        finally:
            bar.close()
        finished = True
        if num_shards > 1:  # every pair of its share scored or reported: what the merge checks for
            mark_shard_finished(out_path, [d for _, dists in mine for d in dists])
    finally:
        if fresh and num_shards == 1 and not table.done and (summary.skipped or not finished):
            # This run made the CSV and scored nothing into it (every pair bad, a wrong folder, a stop at the
            # first pair): a header-only file and its settings would only make the next run look like a resume.
            # A shard's file stays: the merge counts it as that shard's (empty) share.
            settings_beside(out_path).unlink(missing_ok=True)
            out_path.unlink(missing_ok=True)
    return summary


_SCORING_SETTINGS = ("batch_size", "compile_from_pixel_pairs")  # what label_pairs stores beside its CSV


def _scoring_settings(output: Path) -> dict:
    """The scoring settings `label_pairs` stored beside `output` ({} where there is no readable record: a file of
    an older deepfl)."""
    try:
        stored = json.loads(settings_beside(output).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {key: stored[key] for key in _SCORING_SETTINGS if isinstance(stored, dict) and key in stored}


def _merged_settings(made_with: dict[str, dict]) -> dict:
    """The record of a merged CSV from the settings each of its sources was scored with ({source: settings}): a
    setting they share as it is, one they differ on as the sorted list of their values (warned about: the scores
    differ in their last digits), so that a later unsharded run into the merged CSV resumes only with the same."""
    merged = {}
    for key in _SCORING_SETTINGS:
        values: dict = {}
        for source, settings in made_with.items():
            if key in settings:
                values.setdefault(json.dumps(settings[key]), []).append(source)
        if len(values) == 1:
            merged[key] = json.loads(next(iter(values)))
        elif values:
            merged[key] = sorted(json.loads(value) for value in values)
            log.warning(
                "the merged sources were scored with other --%s: %s; their scores may differ in the last digits "
                "(float32 reduction order or the compiled path)",
                key,
                "; ".join(f"{value} ({', '.join(sources)})" for value, sources in values.items()),
            )
    return merged


def _check_sibling_shards(out_csv, num_shards: int, shard_index: int, metrics: Sequence[str]) -> None:
    """Raises `SettingsChanged` when another shard's file holds other metric columns than this shard would write:
    the merge refuses such shards, so the odd one is named at its start, not after a cluster's hours of scoring
    (distort shards compare their settings at start too)."""
    for index in range(num_shards):
        path = shard_file(out_csv, num_shards, index)
        header = _label_header(path) if index != shard_index else None
        if header and header != output_columns(metrics):
            written, asked = ",".join(header[2:]), ",".join(output_columns(metrics)[2:])
            raise SettingsChanged(
                f"{path}: shard {index} of {num_shards} scores the metrics {written}; this shard asks for {asked}, "
                f"and the merge takes shards of one set of metrics only: run it with {setting('metrics', header[2:])} "
                f"(or rerun shard {index} with these and {setting('overwrite', True)})"
            )


def _check_shards_agree(paths: Sequence[Path]) -> None:
    """Raises `SettingsChanged` when the shard files were written with different metrics: merged with either
    shard's --metrics, the other's file was refused, each refusal pointing to the other (a user walk's circle)."""
    written = {index: ",".join(header[2:]) for index, path in enumerate(paths) if (header := _label_header(path))}
    if len(set(written.values())) > 1:
        listed = "; ".join(f"shard {index} {columns}" for index, columns in written.items())
        raise SettingsChanged(
            f"the shards of {paths[0].parent} were made with different metrics ({listed}): rerun the odd ones "
            f"with the others' {setting('metrics')} and {setting('overwrite', True)}, then merge with those "
            f"{setting('metrics')}"
        )


def merge_shards(
    out_csv: str | os.PathLike,
    num_shards: int,
    pairs: pd.DataFrame | None = None,
    metrics: Sequence[str] | str | None = None,
    overwrite: bool = False,
) -> tuple[Path, list[str]]:
    """Joins the shard files of `out_csv` into `out_csv` (atomically), in manifest order when `pairs` is given.

    Returns (path, missing dist_im names: pairs a shard skipped as bad). Rows are deduplicated on `dist_im`; every
    shard file must exist, carry the same columns and have finished its share of these pairs (no job writing it,
    not stopped part-way, not made from another manifest: `sharding.check_shard_finished`). The shard files are
    left in place. Rows of an existing `out_csv` (an unsharded run's, an earlier merge's) that no shard holds are
    kept, unless `overwrite`. The shards' scoring settings are stored beside the result (`_merged_settings`), as
    an unsharded run stores its own, so that a later run into it resumes only with the same settings.
    """
    if num_shards < 2:
        raise ValueError(f"num_shards: merging needs >= 2 shards, got {num_shards}")
    metrics = check_metrics(metrics)
    columns = output_columns(metrics)
    groups = group_pairs(_pair_table(pairs)) if pairs is not None else None
    out_path = Path(out_csv)
    rows: dict[str, dict] = {}
    made_with: dict[str, dict] = {}
    _check_shards_agree([shard_file(out_csv, num_shards, index) for index in range(num_shards)])
    for index in range(num_shards):
        path = shard_file(out_csv, num_shards, index)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: shard {index} of {num_shards} has no output yet")
        _check_metric_columns(path, metrics, merging=True)
        share = shard_share(groups, num_shards, index) if groups is not None else None
        check_shard_finished(path, index, num_shards, share)
        made_with[f"shard {index}"] = _scoring_settings(path)
        # Read-only: a shard still being written keeps its partly written last line (ignored here).
        for row in read_complete_rows(path, columns):
            rows.setdefault(row["dist_im"], row)
    if out_path.is_file() and not overwrite:
        if being_written(out_path):
            raise DeepflError(f"{out_path} is being written by a running job; merge once it has finished")
        _check_metric_columns(out_path, metrics)
        kept = [row for row in read_complete_rows(out_path, columns) if row["dist_im"] not in rows]
        for row in kept:
            rows[row["dist_im"]] = row
        if kept:
            made_with[out_path.name] = _scoring_settings(out_path)
            dropped_by = setting("overwrite", True)
            log.info("%s: %d rows that no shard holds are kept (%s drops them)", out_path, len(kept), dropped_by)
    order = list(pairs.dist_im) if pairs is not None else sorted(rows)
    missing = [name for name in order if name not in rows]
    extra = sorted(set(rows) - set(order))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for name in order + extra:
        if name in rows:
            writer.writerow(rows[name])
    atomic_write_bytes(out_path, buffer.getvalue().encode("utf-8"))
    merged = _merged_settings(made_with)
    if merged:
        check_settings(settings_beside(out_path), merged, overwrite=True)
    else:
        settings_beside(out_path).unlink(missing_ok=True)
    return out_path, missing
