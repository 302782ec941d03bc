"""The normalised data table every reader returns, and the checks that make its errors name dataset, file and row.

One row per image; columns `image` (absolute path), `ref` (absolute path or ""), `content` (reference/content id),
`score` (higher is better, mapped linearly to [0, 1] from the dataset's published score range), `raw_score`
(as published) and `split` ("train"/"val"/"test" or ""). `df.attrs` holds `dataset`, `score_range` and
`lower_better`. The linear map is not clipped, so the few published scores that fall outside the nominal range
(LIVE's DMOS goes slightly below 0 and above 100) keep their order and land just outside [0, 1].
"""

from __future__ import annotations

import csv
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from deepfl.errors import TableError

TABLE_COLUMNS: tuple[str, ...] = ("image", "ref", "content", "score", "raw_score", "split")
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")


def table_error(dataset: str, file: str | os.PathLike, row: int | None, message: str, unit: str = "line") -> TableError:
    """Builds the one-line error every reader raises: `<dataset>: <file>, line <n>: <message>`.

    `unit` says what `row` counts: "line" (1-based line of a text/CSV file, header = line 1), "row" (spreadsheet
    row) or "entry" (1-based index into a MATLAB vector).
    """
    where = f"{file}" if row is None else f"{file}, {unit} {row}"
    return TableError(f"{dataset}: {where}: {message}")


def require_file(dataset: str, path: Path, what: str = "metadata file") -> Path:
    """Returns `path` if it is a file, else raises a TableError naming the dataset and the missing file."""
    if not path.is_file():
        # A release unpacked one level deeper than --data_dir (live/databaserelease2/dmos.mat) is named.
        deeper = sorted(path.parent.glob(f"*/{path.name}")) if path.parent.is_dir() else []
        hint = f"; it is in {deeper[0].parent}: give that folder" if len(deeper) == 1 else ""
        raise table_error(dataset, path, None, f"{what} not found (check the path, or the data set folder){hint}")
    return path


def read_csv_checked(dataset: str, path: Path, required: Sequence[str], **kwargs) -> pd.DataFrame:
    """Reads a CSV and checks that its header holds `required` columns; errors name the dataset and file."""
    require_file(dataset, path)
    try:
        frame = pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError:
        raise table_error(dataset, path, None, "the file is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as exc:
        raise table_error(dataset, path, None, f"cannot parse as CSV ({str(exc).splitlines()[0]})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    extra = extra_fields_message(frame) if "index_col" not in kwargs else None
    if extra:
        raise table_error(dataset, path, None, extra)
    if frame.empty:
        raise table_error(dataset, path, None, f"header {list(frame.columns)} but no rows")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise table_error(
            dataset,
            path,
            1,
            f"header {list(frame.columns)} lacks column(s) {missing}; "
            f"expected the release layout with {list(required)}{separator_hint(frame.columns)}",
        )
    return frame


def separator_hint(columns: Sequence[object]) -> str:
    """A hint for a header that pandas read as one column because its fields are separated by ';' or tabs (a
    spreadsheet's export in some locales), else ""."""
    if len(columns) != 1:
        return ""
    for separator, name in ((";", "';'"), ("\t", "tabs")):
        if separator in str(columns[0]):
            return f"; its fields look separated by {name}: save it again with ',' as separator"
    return ""


def extra_fields_message(frame: pd.DataFrame) -> str | None:
    """Why a CSV read by pandas cannot be taken as it is: rows with more fields than the header, which pandas
    silently turns into an index and so shifts every column by one (a spreadsheet that wrote decimal commas into a
    comma-separated file does this); None when the rows fit the header."""
    if isinstance(frame.index, pd.RangeIndex):
        return None
    return (
        "rows hold more fields than the header, so every column would be shifted (decimal commas written by a "
        "spreadsheet?); save it again with ',' as separator and '.' as decimal point"
    )


def header_key(name: object) -> str:
    """A column name as compared across releases and exports: case, outer spaces and inner runs of space ignored."""
    return " ".join(str(name).split()).lower() if name is not None else ""


def find_header(rows: Sequence[Sequence[object]], required: Sequence[str]) -> tuple[int, dict[str, int]] | None:
    """Finds the first row that names every `required` column; returns (row index, {column: cell index}) or None.

    Spreadsheets place their tables anywhere (CSIQ's `all_by_image` header sits at D4), and a CSV export keeps
    the leading empty rows and columns, so the header is searched for instead of assumed at A1.
    """
    wanted = {header_key(c): c for c in required}
    for i, row in enumerate(rows):
        keys = [header_key(cell) for cell in row]
        found = {wanted[k]: j for j, k in reversed(list(enumerate(keys))) if k in wanted}
        if len(found) == len(wanted):
            return i, found
    return None


def parse_scores(dataset: str, path: Path, values: Iterable, rows: Sequence[int], unit: str = "line") -> np.ndarray:
    """Converts published scores to float64; a non-number, NaN or inf raises an error naming its row."""
    values = list(values)
    out = np.empty(len(values), dtype=np.float64)
    for i, value in enumerate(values):
        try:
            out[i] = float(value)
        except (TypeError, ValueError):
            comma = re.fullmatch(r"\s*(-?\d+),(\d+)\s*", str(value))
            hint = f" (a decimal comma? write {comma.group(1)}.{comma.group(2)})" if comma else ""
            raise table_error(dataset, path, rows[i], f"score {value!r} is not a number{hint}", unit) from None
        if not np.isfinite(out[i]):
            raise table_error(dataset, path, rows[i], f"score is {value!r} (NaN/inf)", unit)
    return out


def _lookup_key(name: str) -> str:
    """A file name compared ignoring case and Unicode normalisation (macOS stores 'é' decomposed, NFD, while a
    CSV typed elsewhere holds it composed, NFC)."""
    return unicodedata.normalize("NFC", name).lower()


class FolderIndex:
    """Case- and normalisation-insensitive file lookup inside one folder (releases mix `I01.BMP` and
    `i01_01_1.bmp`; macOS writes NFD names), listed once."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._names: dict[str, str] | None = None
        self._exact: set[str] = set()
        self._children: dict[Path, FolderIndex] = {}

    def find(self, name: str) -> Path | None:
        """Returns the path of `name` in the folder (exact name first, then ignoring case), or None."""
        if "/" in name or os.sep in name:
            nested = self.folder / name
            if nested.is_file():
                return nested
            if not nested.parent.is_dir():
                return None
            return self._children.setdefault(nested.parent, FolderIndex(nested.parent)).find(nested.name)
        if self._names is None:
            self._names = {}
            if self.folder.is_dir():
                for entry in os.scandir(self.folder):
                    if entry.is_file():
                        self._exact.add(entry.name)
                        self._names.setdefault(_lookup_key(entry.name), entry.name)
        if name in self._exact:
            return self.folder / name
        actual = self._names.get(_lookup_key(name))
        return self.folder / actual if actual is not None else None


def resolve_image(
    dataset: str, source: Path, row: int, index: FolderIndex, name: str, unit: str = "line", role: str = "image"
) -> str:
    """Absolute path of image `name` listed in `source` at `row`; a missing image raises a TableError naming it by
    its `role` ("image", or "reference" for a `ref` column)."""
    found = index.find(name)
    if found is None:
        raise table_error(dataset, source, row, absent_message(role, name, index.folder), unit)
    return str(found.resolve())


def absent_message(role: str, name: str, folder: str | os.PathLike) -> str:
    """What a table error says of a listed image that is not there: absent from the folder names are looked up
    in, or, for an absolute path (which that folder plays no part in), that no such file exists."""
    # A table written on Windows separates folders with backslashes, which name no folder here (shown as written,
    # not doubled as repr would).
    windows = "\\" in name and os.sep == "/"
    hint = " (folders in a listed path are separated by '/', not '\\')" if windows else ""
    shown = f"'{name}'" if windows else repr(name)
    if os.path.isabs(name):
        return f"{role} {shown} is listed but no such file exists{hint}"
    return f"{role} {shown} is listed but absent from {folder}{hint}"


def make_table(
    dataset: str,
    image: Sequence[str],
    ref: Sequence[str],
    content: Sequence[str],
    raw_score: np.ndarray,
    split: Sequence[str] | None,
    score_range: tuple[float, float],
    lower_better: bool,
) -> pd.DataFrame:
    """Assembles the normalised table: maps raw scores linearly to [0, 1], flipping lower-is-better scales."""
    lo, hi = float(score_range[0]), float(score_range[1])
    if not hi > lo:
        raise ValueError(f"score_range: must be (lo, hi) with hi > lo, got {score_range}")
    raw = np.asarray(raw_score, dtype=np.float64)
    score = (hi - raw) / (hi - lo) if lower_better else (raw - lo) / (hi - lo)
    n = len(image)
    table = pd.DataFrame(
        {
            "image": [str(p) for p in image],
            "ref": [str(p) for p in ref],
            "content": [str(c) for c in content],
            "score": score,
            "raw_score": raw,
            "split": list(split) if split is not None else [""] * n,
        },
        columns=list(TABLE_COLUMNS),
    )
    table.attrs.update(dataset=dataset, score_range=(lo, hi), lower_better=bool(lower_better))
    return table


def validate_table(table: pd.DataFrame) -> pd.DataFrame:
    """Checks a table against the shared contract (columns, finite scores, known split names); returns it."""
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"table: expected a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in ("image", "content") if c not in table.columns]
    if missing:
        raise ValueError(f"table: missing column(s) {missing}; has {list(table.columns)}")
    if "split" in table.columns:
        bad = set(table["split"].astype(str)) - set(SPLIT_NAMES) - {""}
        if bad:
            raise ValueError(f"table: unknown split name(s) {sorted(bad)}; use {SPLIT_NAMES} or ''")
    if "score" in table.columns:
        scores = table["score"].to_numpy(dtype=np.float64)
        bad_rows = np.flatnonzero(~np.isfinite(scores))
        if bad_rows.size:
            raise ValueError(f"table: score is NaN/inf at row {int(bad_rows[0])} ({table['image'].iloc[bad_rows[0]]})")
    return table
