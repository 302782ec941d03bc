"""Readers of the IQA benchmarks in their published on-disk layouts, each returning one normalised table.

Every reader takes the folder the user unpacked the release into and reads the release's own metadata files
(no conversion step): KADID-10k `dmos.csv`, LIVE Release 2 `dmos.mat` + `refnames_all.mat`, CSIQ
`csiq.DMOS.xlsx` (sheet `all_by_image`), TID2013 `mos_with_names.txt`, KonIQ-10k
`koniq10k_scores_and_distributions.csv` (+ `koniq10k_distributions_sets.csv` for the official split) and
LIVE in the Wild `Data/AllImages_release.mat` + `Data/AllMOS_release.mat`. Any problem (missing or malformed
file, header that does not match, bad score, image listed but absent) raises one `TableError` naming the
dataset, the file and the row.
"""

from __future__ import annotations

import csv
import inspect
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deepfl.data.tables import (
    FolderIndex,
    absent_message,
    extra_fields_message,
    find_header,
    header_key,
    make_table,
    parse_scores,
    read_csv_checked,
    require_file,
    resolve_image,
    separator_hint,
    table_error,
)
from deepfl.errors import NoUsableInput, TableError
from deepfl.paper import WITHIN_SROCC_PLCC

log = logging.getLogger("deepfl")


@dataclass(frozen=True)
class DatasetInfo:
    """What deepfl knows of one benchmark: score scale and direction, and the paper's reported results."""

    name: str
    title: str
    score_range: tuple[float, float]
    lower_better: bool
    paper_srocc: float | None
    paper_plcc: float | None
    has_reference: bool
    has_official_split: bool
    release_images: int | None = None  # rows its reader returns from the whole release, with default options


DATASETS: dict[str, DatasetInfo] = {
    "kadid10k": DatasetInfo(
        "kadid10k", "KADID-10k", (1.0, 5.0), False, *WITHIN_SROCC_PLCC["kadid10k"], True, False, 10125
    ),
    "live": DatasetInfo("live", "LIVE Release 2", (0.0, 100.0), True, *WITHIN_SROCC_PLCC["live"], True, False, 779),
    "csiq": DatasetInfo("csiq", "CSIQ", (0.0, 1.0), True, *WITHIN_SROCC_PLCC["csiq"], True, False, 866),
    "tid2013": DatasetInfo("tid2013", "TID2013", (0.0, 9.0), False, *WITHIN_SROCC_PLCC["tid2013"], True, False, 3000),
    "koniq10k": DatasetInfo(
        "koniq10k", "KonIQ-10k", (1.0, 5.0), False, *WITHIN_SROCC_PLCC["koniq10k"], False, True, 10073
    ),
    "clive": DatasetInfo(
        "clive", "LIVE in the Wild (CLIVE)", (0.0, 100.0), False, *WITHIN_SROCC_PLCC["clive"], False, False, 1162
    ),
    "kadis700k": DatasetInfo("kadis700k", "KADIS-700k (weak labels)", (0.0, 1.0), False, None, None, True, False),
}


def _table(name: str, image, ref, content, raw, split=None) -> pd.DataFrame:
    info = DATASETS[name]
    return make_table(name, image, ref, content, raw, split, info.score_range, info.lower_better)


def _root(dataset: str, root) -> Path:
    path = Path(root).expanduser()
    if not path.is_dir():
        raise TableError(f"{dataset}: {path}: dataset root folder not found")
    return path.resolve()


def _loadmat(dataset: str, path: Path, variable: str) -> np.ndarray:
    """Loads one variable of a MATLAB v5 .mat file; errors name the dataset, file and variable."""
    from scipy.io import loadmat

    require_file(dataset, path)
    try:
        content = loadmat(str(path))
    except NotImplementedError:
        raise table_error(dataset, path, None, "MATLAB v7.3 (HDF5) .mat files are not supported; save as -v7") from None
    except Exception as exc:  # scipy raises ValueError, IndexError, MatReadError... on garbage
        raise table_error(dataset, path, None, f"cannot read as a .mat file ({type(exc).__name__}: {exc})") from None
    if variable not in content:
        found = sorted(k for k in content if not k.startswith("__"))
        raise table_error(dataset, path, None, f"variable {variable!r} missing (found {found})")
    return content[variable]


def _mat_strings(dataset: str, path: Path, cell: np.ndarray) -> list[str]:
    """Flattens a MATLAB cell array of strings (as scipy.io loads it) to a list of str."""
    names = []
    for i, item in enumerate(np.asarray(cell, dtype=object).ravel(order="F")):
        flat = np.asarray(item).ravel()
        if flat.size != 1 or not isinstance(flat[0], str):
            raise table_error(dataset, path, i + 1, f"expected a file name string, got {item!r}", "entry")
        names.append(flat[0].strip())
    return names


def read_kadid10k(root) -> pd.DataFrame:
    """KADID-10k: `dmos.csv` (dist_img, ref_img, dmos, var) and `images/`; DMOS 1..5, higher is better."""
    root = _root("kadid10k", root)
    source = root / "dmos.csv"
    frame = read_csv_checked(
        "kadid10k", source, ["dist_img", "ref_img", "dmos"], dtype={"dist_img": str, "ref_img": str}
    )
    lines = [i + 2 for i in range(len(frame))]
    raw = parse_scores("kadid10k", source, frame["dmos"], lines)
    index = FolderIndex(root / "images")
    image = [resolve_image("kadid10k", source, n, index, str(name)) for n, name in zip(lines, frame["dist_img"])]
    ref = [resolve_image("kadid10k", source, n, index, str(name)) for n, name in zip(lines, frame["ref_img"])]
    content = [Path(str(r)).stem for r in frame["ref_img"]]
    return _table("kadid10k", image, ref, content, raw)


# LIVE Release 2 stores the 982 DMOS values in this folder order, `img<k>.bmp` numbered from 1 in each folder.
LIVE_FOLDERS: tuple[tuple[str, int], ...] = (
    ("jp2k", 227),
    ("jpeg", 233),
    ("wn", 174),
    ("gblur", 174),
    ("fastfading", 174),
)


def read_live(root, realigned: bool = False, include_references: bool = False) -> pd.DataFrame:
    """LIVE Release 2: `dmos.mat` (`dmos`, `orgs`), `refnames_all.mat`, `refimgs/` and the five distortion folders.

    DMOS is lower-is-better, nominally 0..100. The 779 distorted images are kept and the 203 entries flagged
    in `orgs` (the references themselves, DMOS 0) dropped unless `include_references`. `realigned=True` reads
    `dmos_realigned.mat` (`dmos_new`) instead, the realigned scale some later works use.
    """
    root = _root("live", root)
    if realigned:
        dmos_file = root / "dmos_realigned.mat"
        dmos = np.asarray(_loadmat("live", dmos_file, "dmos_new"), dtype=np.float64).ravel()
    else:
        dmos_file = root / "dmos.mat"
        dmos = np.asarray(_loadmat("live", dmos_file, "dmos"), dtype=np.float64).ravel()
    orgs = np.asarray(_loadmat("live", dmos_file, "orgs")).ravel()
    names_file = root / "refnames_all.mat"
    refnames = _mat_strings("live", names_file, _loadmat("live", names_file, "refnames_all"))
    expected = sum(n for _, n in LIVE_FOLDERS)
    for path, values in ((dmos_file, dmos), (dmos_file, orgs), (names_file, refnames)):
        if len(values) != expected:
            raise table_error("live", path, None, f"holds {len(values)} entries, Release 2 has {expected}")
    raw = parse_scores("live", dmos_file, dmos, list(range(1, expected + 1)), "entry")
    ref_index = FolderIndex(root / "refimgs")
    image, ref, content, keep = [], [], [], []
    entry = 0
    for folder, count in LIVE_FOLDERS:
        index = FolderIndex(root / folder)
        for k in range(1, count + 1):
            entry += 1
            if orgs[entry - 1] == 1 and not include_references:
                continue
            image.append(resolve_image("live", dmos_file, entry, index, f"img{k}.bmp", "entry"))
            ref.append(resolve_image("live", names_file, entry, ref_index, refnames[entry - 1], "entry"))
            content.append(Path(refnames[entry - 1]).stem)
            keep.append(entry - 1)
    return _table("live", image, ref, content, raw[keep])


# CSIQ `dst_type` (spreadsheet) -> (folder under dst_imgs/, type token in the file name `<image>.<TOKEN>.<lev>.png`).
CSIQ_TYPES: dict[str, tuple[str, str]] = {
    "noise": ("awgn", "AWGN"),
    "jpeg": ("jpeg", "JPEG"),
    "jpeg 2000": ("jpeg2000", "jpeg2000"),
    "fnoise": ("fnoise", "fnoise"),
    "blur": ("blur", "BLUR"),
    "contrast": ("contrast", "contrast"),
}
CSIQ_COLUMNS = ("image", "dst_type", "dst_lev", "dmos")


CSIQ_SHEET = "all_by_image"


def _csiq_grid(root: Path) -> tuple[list[tuple], Path, str]:
    """The cells of sheet `all_by_image` (workbook) or of its CSV export, row by row from row/line 1."""
    xlsx = root / "csiq.DMOS.xlsx"
    if xlsx.is_file():
        try:
            import openpyxl
        except ImportError:
            raise table_error(
                "csiq",
                xlsx,
                None,
                f"reading .xlsx needs openpyxl (pip install openpyxl), or export sheet {CSIQ_SHEET!r} to csiq.DMOS.csv",
            ) from None
        try:
            book = openpyxl.load_workbook(xlsx, read_only=True, data_only=True)
        except Exception as exc:  # zipfile.BadZipFile, KeyError, InvalidFileException... on garbage
            raise table_error("csiq", xlsx, None, f"cannot read as a workbook ({type(exc).__name__}: {exc})") from None
        try:
            if CSIQ_SHEET not in book.sheetnames:
                raise table_error("csiq", xlsx, None, f"sheet {CSIQ_SHEET!r} missing (found {book.sheetnames})")
            grid = list(book[CSIQ_SHEET].iter_rows(min_row=1, min_col=1, values_only=True))
        finally:
            book.close()
        return grid, xlsx, "row"
    csv_file = root / "csiq.DMOS.csv"
    if csv_file.is_file():
        try:
            with open(csv_file, newline="", encoding="utf-8-sig") as handle:
                return [tuple(row) for row in csv.reader(handle)], csv_file, "line"
        except (UnicodeDecodeError, csv.Error) as exc:
            raise table_error("csiq", csv_file, None, f"cannot parse as CSV ({exc})") from None
    raise table_error("csiq", xlsx, None, "metadata file not found (nor a CSV export csiq.DMOS.csv)")


def _blank(cell) -> bool:
    return cell is None or (isinstance(cell, float) and np.isnan(cell)) or not str(cell).strip()


def _read_csiq_sheet(root: Path) -> tuple[pd.DataFrame, list[int], Path, str]:
    """Sheet `all_by_image` as a frame of CSIQ_COLUMNS, with each row's 1-based row (workbook) or line (CSV).

    The header is found wherever it sits (the release puts it at D4, its rows at D5:I870); the table ends at
    the first row whose CSIQ_COLUMNS cells are all empty.
    """
    grid, source, unit = _csiq_grid(root)
    located = find_header(grid, CSIQ_COLUMNS)
    if located is None:
        raise table_error(
            "csiq",
            source,
            None,
            f"no {unit} holds the header {list(CSIQ_COLUMNS)} (sheet {CSIQ_SHEET!r}, any cell position)",
        )
    header_at, columns = located
    cells: dict[str, list] = {c: [] for c in CSIQ_COLUMNS}
    rows: list[int] = []
    for offset, row in enumerate(grid[header_at + 1 :], start=header_at + 2):
        values = [row[columns[c]] if columns[c] < len(row) else None for c in CSIQ_COLUMNS]
        if all(_blank(v) for v in values):
            break
        for column, value in zip(CSIQ_COLUMNS, values):
            cells[column].append(value)
        rows.append(offset)
    if not rows:
        raise table_error("csiq", source, header_at + 1, "header but no rows below it", unit)
    return pd.DataFrame(cells), rows, source, unit


def _csiq_image_name(value) -> str:
    """Image id as text; numeric ids (1600) come back from a spreadsheet as int or float."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    name = str(value).strip()
    return name[:-2] if name.endswith(".0") and name[:-2].isdigit() else name


def read_csiq(root) -> pd.DataFrame:
    """CSIQ: `csiq.DMOS.xlsx` sheet `all_by_image` (image, dst_idx, dst_type, dst_lev, dmos_std, dmos).

    Images are `src_imgs/<image>.png` and `dst_imgs/<folder>/<image>.<TOKEN>.<lev>.png`; DMOS 0..1, lower is
    better. A CSV export of the same sheet named `csiq.DMOS.csv` is accepted where openpyxl is not installed.
    Only the columns image, dst_type, dst_lev and dmos are read, found by name wherever the header row is.
    """
    root = _root("csiq", root)
    frame, rows, source, unit = _read_csiq_sheet(root)
    raw = parse_scores("csiq", source, frame["dmos"], rows, unit)
    src_index = FolderIndex(root / "src_imgs")
    indexes: dict[str, FolderIndex] = {}
    image, ref, content = [], [], []
    for row, value, dst_type, level in zip(rows, frame["image"], frame["dst_type"], frame["dst_lev"]):
        name = _csiq_image_name(value)
        kind = str(dst_type).strip().lower()
        if kind not in CSIQ_TYPES:
            raise table_error(
                "csiq", source, row, f"unknown dst_type {dst_type!r}; expected one of {sorted(CSIQ_TYPES)}", unit
            )
        try:
            level = int(float(level))
        except (TypeError, ValueError):
            raise table_error("csiq", source, row, f"dst_lev {level!r} is not an integer", unit) from None
        folder, token = CSIQ_TYPES[kind]
        index = indexes.setdefault(folder, FolderIndex(root / "dst_imgs" / folder))
        image.append(resolve_image("csiq", source, row, index, f"{name}.{token}.{level}.png", unit))
        ref.append(resolve_image("csiq", source, row, src_index, f"{name}.png", unit))
        content.append(name)
    return _table("csiq", image, ref, content, raw)


def read_tid2013(root) -> pd.DataFrame:
    """TID2013: `mos_with_names.txt` ("<MOS> <name>" per line), `distorted_images/`, `reference_images/`.

    MOS 0..9, higher is better; the reference of `i01_05_3.bmp` is `I01.BMP` (case differs between files, so
    names are matched ignoring case).
    """
    root = _root("tid2013", root)
    source = require_file("tid2013", root / "mos_with_names.txt")
    try:
        lines = source.read_text(encoding="utf-8", errors="strict").splitlines()
    except UnicodeDecodeError as exc:
        raise table_error("tid2013", source, None, f"not a text file ({exc})") from None
    dist_index = FolderIndex(root / "distorted_images")
    ref_index = FolderIndex(root / "reference_images")
    image, ref, content, values, rows = [], [], [], [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise table_error("tid2013", source, number, f"expected '<MOS> <image name>', got {line.strip()!r}")
        value, name = parts
        stem = Path(name).stem
        if len(stem) < 3 or not stem[1:3].isdigit():
            raise table_error("tid2013", source, number, f"image name {name!r} is not of the form i01_01_1.bmp")
        ref_id = "I" + stem[1:3]
        image.append(resolve_image("tid2013", source, number, dist_index, name))
        ref_name = ref_index.find(ref_id + ".BMP") or ref_index.find(ref_id + ".bmp")
        if ref_name is None:
            raise table_error("tid2013", source, number, f"reference {ref_id}.BMP absent from {ref_index.folder}")
        ref.append(str(ref_name.resolve()))
        content.append(ref_id)
        values.append(value)
        rows.append(number)
    if not image:
        raise table_error("tid2013", source, None, "file lists no images")
    raw = parse_scores("tid2013", source, values, rows)
    return _table("tid2013", image, ref, content, raw)


KONIQ_SPLITS = {"training": "train", "validation": "val", "test": "test"}


KONIQ_RESOLUTIONS = ("1024x768", "512x384")  # the release's image folders, the default's order


def koniq_resolution(text: str) -> str:
    """`text` as one of KonIQ-10k's image folders (case and spaces ignored: " 512X384" is "512x384"); anything
    else raises ValueError naming the two (`800x600` read an absent folder and named each image missing)."""
    folder = str(text).strip().lower().replace(" ", "")
    if folder not in KONIQ_RESOLUTIONS:
        raise ValueError(f"resolution: koniq10k has the folders {', '.join(KONIQ_RESOLUTIONS)}, got {text!r}")
    return folder


def read_koniq10k(root, resolution: str | None = None) -> pd.DataFrame:
    """KonIQ-10k: `koniq10k_scores_and_distributions.csv` (image_name, ..., MOS, ...) + official split.

    MOS 1..5, higher is better. The official split comes from `koniq10k_distributions_sets.csv` (column `set`:
    training/validation/test) when that file is present. Images are read from `resolution` (`"1024x768"` or
    `"512x384"`); by default the first of the two folders that exists, full resolution first.
    """
    root = _root("koniq10k", root)
    if resolution is not None:
        resolution = koniq_resolution(resolution)
        if not (root / resolution).is_dir():
            raise FileNotFoundError(f"resolution={resolution}: {root / resolution}: no such folder")
    source = root / "koniq10k_scores_and_distributions.csv"
    frame = read_csv_checked("koniq10k", source, ["image_name", "MOS"], dtype={"image_name": str})
    lines = [i + 2 for i in range(len(frame))]
    raw = parse_scores("koniq10k", source, frame["MOS"], lines)
    folders = [resolution] if resolution else list(KONIQ_RESOLUTIONS)
    folder = next((root / f for f in folders if (root / f).is_dir()), root / folders[0])
    index = FolderIndex(folder)
    names = [str(n).strip() for n in frame["image_name"]]
    image = [resolve_image("koniq10k", source, n, index, name) for n, name in zip(lines, names)]
    split = [""] * len(names)
    sets_file = root / "koniq10k_distributions_sets.csv"
    if sets_file.is_file():
        sets = read_csv_checked("koniq10k", sets_file, ["image_name", "set"], dtype={"image_name": str})
        by_name = {}
        for line, name, value in zip(range(2, len(sets) + 2), sets["image_name"], sets["set"]):
            value = str(value).strip().lower()
            if value not in KONIQ_SPLITS:
                raise table_error("koniq10k", sets_file, line, f"set {value!r} is not one of {sorted(KONIQ_SPLITS)}")
            by_name[str(name).strip()] = KONIQ_SPLITS[value]
        for i, (line, name) in enumerate(zip(lines, names)):
            if name not in by_name:
                raise table_error("koniq10k", source, line, f"image {name!r} has no set in {sets_file.name}")
            split[i] = by_name[name]
    return _table("koniq10k", image, [""] * len(names), [Path(n).stem for n in names], raw, split)


CLIVE_TRAINING_IMAGES = 7


def read_clive(root, include_training_images: bool = False) -> pd.DataFrame:
    """LIVE in the Wild: `Data/AllImages_release.mat`, `Data/AllMOS_release.mat`, images in `Images/`.

    MOS 0..100, higher is better. The first 7 entries (t1.bmp..t7.bmp, the release's training images, kept in
    `Images/trainingImages/`) are dropped by default, as in the paper's protocol and most later works, leaving
    1162 images; `include_training_images=True` keeps them.
    """
    root = _root("clive", root)
    names_file = root / "Data" / "AllImages_release.mat"
    mos_file = root / "Data" / "AllMOS_release.mat"
    names = _mat_strings("clive", names_file, _loadmat("clive", names_file, "AllImages_release"))
    mos = np.asarray(_loadmat("clive", mos_file, "AllMOS_release"), dtype=np.float64).ravel()
    if len(mos) != len(names):
        raise table_error(
            "clive", mos_file, None, f"holds {len(mos)} scores but {names_file.name} lists {len(names)} images"
        )
    raw = parse_scores("clive", mos_file, mos, list(range(1, len(mos) + 1)), "entry")
    start = 0 if include_training_images else CLIVE_TRAINING_IMAGES
    index = FolderIndex(root / "Images")
    train_index = FolderIndex(root / "Images" / "trainingImages")
    image = []
    for entry in range(start + 1, len(names) + 1):
        name = names[entry - 1]
        found = index.find(name) or (train_index.find(name) if entry <= CLIVE_TRAINING_IMAGES else None)
        if found is None:
            raise table_error("clive", names_file, entry, absent_message("image", name, index.folder), "entry")
        image.append(str(found.resolve()))
    kept = names[start:]
    return _table("clive", image, [""] * len(kept), [Path(n).stem for n in kept], raw[start:])


RATINGS_FILE = "ratings.csv"
RATINGS_SCALE_FILE = "ratings.json"


def _ratings_scale(root: Path, raw: np.ndarray, source: Path, lines: list[int]) -> tuple[tuple[float, float], bool]:
    """The score scale of a ratings folder: `ratings.json` {"score_range": [lo, hi], "lower_better": bool}, each
    key optional; the scores' own (min, max) and higher-is-better where absent. Scores outside a given range
    raise an error naming the first such line."""
    scale_file = root / RATINGS_SCALE_FILE
    given: dict = {}
    if scale_file.is_file():
        try:
            given = json.loads(scale_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise table_error("ratings", scale_file, None, f"not valid JSON ({exc})") from None
        if not isinstance(given, dict) or set(given) - {"score_range", "lower_better"}:
            raise table_error(
                "ratings", scale_file, None, f"expected an object with score_range and/or lower_better, got {given!r}"
            )
    span = given.get("score_range", [float(raw.min()), float(raw.max())])
    if (
        not isinstance(span, list)
        or len(span) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in span)
        or not span[1] > span[0]
    ):
        what = "the scores are all equal" if "score_range" not in given else f"score_range {span!r} is not [lo, hi]"
        raise table_error("ratings", scale_file if "score_range" in given else source, None, f"{what}; need lo < hi")
    lower_better = given.get("lower_better", False)
    if not isinstance(lower_better, bool):
        raise table_error("ratings", scale_file, None, f"lower_better must be true or false, got {lower_better!r}")
    outside = np.flatnonzero((raw < span[0]) | (raw > span[1]))
    if len(outside):
        i = int(outside[0])
        message = f"score {raw[i]:g} is outside score_range {span} of {scale_file}"
        raise table_error("ratings", source, lines[i], message)
    return (float(span[0]), float(span[1])), lower_better


def read_ratings(root) -> pd.DataFrame:
    """Your own rated images: `ratings.csv` in `root`, one row per image, columns `image` (a path relative to
    `root`, or absolute) and `score`, optionally `content` and `ref`.

    `content` keeps images together in the content-aware splits (the distorted versions of one photo must not
    be split between training and test); without it, `ref`'s file name serves, and without either every image
    is its own content. The scale comes from `ratings.json` beside it when present ({"score_range": [lo, hi],
    "lower_better": false}), else from the scores' own range, higher is better. Errors name the file and line.
    """
    root = _root("ratings", root)
    source = root / RATINGS_FILE
    frame = read_csv_checked("ratings", source, [], dtype=str, keep_default_na=False)
    hint = separator_hint(frame.columns)  # (before the keys fold a tab into a space)
    frame.columns = [header_key(c) for c in frame.columns]  # 'Image', ' Score ' as a spreadsheet writes them
    missing = [c for c in ("image", "score") if c not in frame.columns]
    if missing:
        raise table_error(
            "ratings",
            source,
            1,
            f"header {list(frame.columns)} lacks column(s) {missing} (optional: content, ref){hint}",
        )
    frame = frame.apply(lambda column: column.str.strip())  # cells compared below are stripped once, here
    lines = [i + 2 for i in range(len(frame))]
    raw = parse_scores("ratings", source, frame["score"], lines)
    index = FolderIndex(root)
    image, seen = [], {}
    for line, name in zip(lines, frame["image"]):
        if not name:
            raise table_error("ratings", source, line, "empty image name")
        path = resolve_image("ratings", source, line, index, name)
        if path in seen:
            first_line, first_name = seen[path]
            also = "" if first_name == name else f", as {first_name!r}: a link or another spelling of the same file"
            raise table_error(
                "ratings", source, line, f"image {name!r} is listed again (first on line {first_line}{also})"
            )
        seen[path] = (line, name)
        image.append(path)
    ref = (
        [
            resolve_image("ratings", source, n, index, r, role="reference") if r else ""
            for n, r in zip(lines, frame["ref"])
        ]
        if "ref" in frame.columns
        else [""] * len(image)
    )
    if "content" in frame.columns:
        content = list(frame["content"])
        empty = [n for n, c in zip(lines, content) if not c]
        if empty:
            raise table_error("ratings", source, empty[0], "empty content (give every row one, or drop the column)")
    else:
        content = [Path(r).stem if r else Path(i).with_suffix("").as_posix() for i, r in zip(image, ref)]
    score_range, lower_better = _ratings_scale(root, raw, source, lines)
    return make_table("ratings", image, ref, content, raw, None, score_range, lower_better)


def _compact(name: str) -> str:
    """A column name as matched: case, spaces, hyphens and underscores ignored (`' MS-SSIM'` is `msssim`)."""
    return "".join(ch for ch in header_key(name) if ch not in " _-")


def _is_index_column(name: str) -> bool:
    """An unnamed or index column, as pandas and spreadsheets write one before the data (`Unnamed: 0`, `index`)."""
    key = _compact(name)
    return key in ("", "index", "id", "#") or key.startswith("unnamed:")


def _weak_label_columns(source: Path, header: list[str], known_metrics) -> dict[str, str]:
    """{canonical name: the file's name} of dist_im, ref_im and each metric column (file order); index columns ignored.

    A column that is none of these, two columns for one name, or a missing image column raise one TableError naming
    the column.
    """
    layout = f"is not the KADIS layout 'dist_im, ref_im, <metrics>' with metrics among {list(known_metrics)}"
    canonical = {_compact(k): k for k in ("dist_im", "ref_im", *known_metrics)}
    found: dict[str, str] = {}
    for name in header:
        if _is_index_column(name):
            continue
        key = canonical.get(_compact(name))
        if key is None:
            raise table_error("weak_labels", source, 1, f"header {header} {layout}: column {name!r} cannot be mapped")
        if key in found:
            raise table_error(
                "weak_labels",
                source,
                1,
                f"header {header} {layout}: columns {found[key]!r} and {name!r} both map to {key!r}",
            )
        found[key] = name
    missing = [k for k in ("dist_im", "ref_im") if k not in found]
    if missing or len(found) == 2:
        lacking = missing or ["any metric"]
        raise table_error("weak_labels", source, 1, f"header {header} {layout}: no column for {', '.join(lacking)}")
    return {"dist_im": found.pop("dist_im"), "ref_im": found.pop("ref_im"), **found}


def read_weak_labels(
    csv_path, image_root, ref_root=None, on_error: str = "stop", check_files: bool = True
) -> pd.DataFrame:
    """Reads a KADIS-style weak-label CSV (`dist_im, ref_im, <metrics...>`) as a table.

    Columns are matched by name ignoring case, spaces, hyphens and underscores, in any order; an index column
    (unnamed, or `index`/`id`) is ignored; any other column raises a TableError naming it.

    Columns of the result: `image` (under `image_root`), `ref` (under `ref_root`, or `ref_im` as written when
    no `ref_root` is given), `content` (the reference's stem) and one float64 column per metric present, in
    file order. The metric columns must be names of `deepfl.fr.METRICS`. A row with a NaN/inf score or an
    image absent from `image_root` raises (`on_error="stop"`) or is dropped, counted and logged
    (`on_error="skip"`; the count is in `table.attrs["skipped_rows"]`).
    """
    from deepfl.fr import METRICS

    if on_error not in ("skip", "stop"):
        raise ValueError(f"on_error: must be 'skip' or 'stop', got {on_error!r}")
    source = Path(csv_path).expanduser()
    require_file("weak_labels", source, "weak-label CSV")
    try:
        header = [str(c) for c in pd.read_csv(source, nrows=0).columns]
        columns = _weak_label_columns(source, header, METRICS)
        # every column read (no `usecols`, which drops the fields a row holds beyond the header without a word)
        frame = pd.read_csv(source, dtype={columns["dist_im"]: str, columns["ref_im"]: str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise table_error("weak_labels", source, None, f"cannot parse as CSV ({str(exc).splitlines()[0]})") from None
    extra = extra_fields_message(frame)
    if extra:
        raise table_error("weak_labels", source, None, extra)
    if frame.empty:
        raise table_error("weak_labels", source, None, f"header {header} but no rows")
    frame = frame[list(columns.values())].set_axis(list(columns), axis=1)
    metrics = list(columns)[2:]
    values = frame[metrics].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values).all(axis=1) | frame["dist_im"].isna().to_numpy() | frame["ref_im"].isna().to_numpy()
    image_root = Path(image_root).expanduser().resolve()
    dist_names = frame["dist_im"].fillna("").astype(str).str.strip().to_list()
    if check_files:
        index = FolderIndex(image_root)
        found = np.array([bool(name) and index.find(name) is not None for name in dist_names], dtype=bool)
        absent = ~found & ~bad
    else:
        absent = np.zeros(len(frame), dtype=bool)
    problems = np.flatnonzero(bad | absent)
    if problems.size:
        first = int(problems[0])
        if bad[first]:
            column = next((m for j, m in enumerate(metrics) if not np.isfinite(values[first, j])), "dist_im/ref_im")
            message = f"{column} is missing, NaN or inf for {dist_names[first]!r}"
        else:
            message = absent_message("image", dist_names[first], image_root)
        if on_error == "stop":
            raise table_error("weak_labels", source, first + 2, message)
        if problems.size == len(frame):  # nothing left to train on: exit 3, one line, not a split error after it
            raise NoUsableInput(
                f"weak_labels: {source}: none of its {len(frame)} rows can be used ({int(absent.sum())} images "
                f"absent from {image_root}, {int(bad.sum())} NaN/inf or empty); first: line {first + 2}: {message}"
            )
        log.warning(
            "weak_labels: %s: skipping %d bad row(s) (%d NaN/inf or empty, %d absent images); first: line %d: %s",
            source,
            problems.size,
            int(bad.sum()),
            int(absent.sum()),
            first + 2,
            message,
        )
    keep = np.flatnonzero(~(bad | absent))
    ref_names = frame["ref_im"].astype(str).str.strip().to_numpy()[keep]
    ref_base = str(Path(ref_root).expanduser().resolve()) + os.sep if ref_root is not None else ""
    image_base = str(image_root) + os.sep
    table = pd.DataFrame(
        {  # string joins: Path objects cost seconds on KADIS-700k's 700,000 rows
            "image": [image_base + dist_names[i] for i in keep],
            "ref": [ref_base + r for r in ref_names],
            "content": [os.path.splitext(os.path.basename(r))[0] for r in ref_names],
        }
    )
    for j, metric in enumerate(metrics):
        table[metric] = values[keep, j]
    table.attrs.update(
        dataset="weak_labels", metrics=tuple(metrics), skipped_rows=int(problems.size), source=str(source)
    )
    return table


def read_kadis700k(
    root,
    csv_name: str = "kadis700k_friqa.csv",
    image_dir: str = "dist_imgs",
    ref_dir: str = "ref_imgs",
    on_error: str = "stop",
) -> pd.DataFrame:
    """KADIS-700k as released: weak labels `kadis700k_friqa.csv`, images in `dist_imgs/`, references `ref_imgs/`."""
    root = _root("kadis700k", root)
    table = read_weak_labels(root / csv_name, root / image_dir, root / ref_dir, on_error=on_error)
    table.attrs["dataset"] = "kadis700k"
    return table


READERS: dict[str, Callable[..., pd.DataFrame]] = {
    "kadid10k": read_kadid10k,
    "live": read_live,
    "csiq": read_csiq,
    "tid2013": read_tid2013,
    "koniq10k": read_koniq10k,
    "clive": read_clive,
    "kadis700k": read_kadis700k,
    "ratings": read_ratings,  # your own rated images (not a benchmark: no entry in DATASETS)
}

_ALIASES = {
    "kadid-10k": "kadid10k",
    "koniq-10k": "koniq10k",
    "koniq": "koniq10k",
    "kadid": "kadid10k",
    "livec": "clive",
    "live_challenge": "clive",
    "livechallenge": "clive",
    "kadis-700k": "kadis700k",
    "kadis": "kadis700k",
    "tid": "tid2013",
}


def canonical_name(name: str) -> str:
    """Maps a data set name (any case, common aliases such as 'KonIQ-10k' or 'LIVEC') to its key in DATASETS."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in READERS:
        raise ValueError(f"dataset: unknown dataset {name!r}; choose from {', '.join(READERS)}")
    return key


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
# A text option's one spelling, checked when the option is read (before a job stores it with its settings, so
# that `512X384` and `512x384` are one setting, and a bad value is refused before any work).
_OPTION_FORMS: dict[tuple[str, str], Callable[[str], str]] = {("koniq10k", "resolution"): koniq_resolution}


def reader_options(name: str, pairs: Sequence[str]) -> dict[str, bool | str]:
    """The keyword arguments of data set `name`'s reader from `key=value` texts (a command line's), typed as the
    reader's defaults: `true`/`false` (also 1/0, yes/no, on/off) for a yes-or-no option, the text as given for
    the others. E.g. `reader_options("live", ["realigned=true"])` gives `{"realigned": True}` for `read_live`.
    An unknown key, a repeated one or a value that is not yes or no where one is needed raises one ValueError
    naming it and what the reader takes. An option given its default value is left out: it changes nothing, so a
    run given `realigned=false` is the paper's setting, as one given no option."""
    key = canonical_name(name)
    parameters = {
        parameter.name: parameter.default
        for parameter in list(inspect.signature(READERS[key]).parameters.values())[1:]  # after `root`
        if parameter.default is not inspect.Parameter.empty
    }
    takes = ", ".join(parameters) if parameters else "no options"
    options: dict[str, bool | str] = {}
    for pair in pairs:
        option, equals, text = str(pair).partition("=")
        option, text = option.strip(), text.strip()
        if not equals or not option:
            raise ValueError(f"dataset option {pair!r}: write it as key=value; {key}'s reader takes {takes}")
        if option not in parameters:
            raise ValueError(f"dataset option {option!r}: {key}'s reader takes {takes}")
        if option in options:
            raise ValueError(f"dataset option {option!r}: given twice")
        if isinstance(parameters[option], bool):
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError(f"dataset option {option}={text!r}: give true or false")
            options[option] = text.lower() in _TRUE
        elif (key, option) in _OPTION_FORMS:
            options[option] = _OPTION_FORMS[key, option](text)
        else:
            options[option] = text
    return {option: value for option, value in options.items() if value != parameters[option]}


def read_dataset(name: str, root, **kwargs) -> pd.DataFrame:
    """Reads data set `name` (a key of DATASETS) from folder `root`; `kwargs` go to its reader.

    A benchmark read with its reader's defaults whose metadata lists another number of images than the release
    (a truncated download, an edited file) is read as it is, with one warning: results on part of a benchmark are
    not comparable with the paper's, and nothing else would say so."""
    key = canonical_name(name)
    table = READERS[key](root, **kwargs)
    expected = DATASETS[key].release_images if key in DATASETS else None
    if expected is not None and not kwargs and len(table) != expected:
        log.warning(
            "%s: %s lists %d images, the release %s: results on it are not comparable with the paper's (a truncated "
            "or edited metadata file?)",
            key,
            root,
            len(table),
            f"{expected:,}",
        )
    return table
