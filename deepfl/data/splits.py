"""Content-aware train/val/test splits: no reference image (content) is shared between the parts.

The paper's protocol is 60/20/20 by reference content, repeated over several random splits (median SROCC/PLCC
reported); where a data set ships an official split (KonIQ-10k) `official_split` returns it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from deepfl.data.tables import SPLIT_NAMES, validate_table
from deepfl.paper import STAGE1_VAL_FRACTION

log = logging.getLogger("deepfl")


def _check_ratios(ratios: Sequence[float]) -> np.ndarray:
    values = np.asarray(ratios, dtype=np.float64)
    if values.shape != (3,) or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"ratios: expected three non-negative numbers (train, val, test), got {ratios!r}")
    if abs(values.sum() - 1.0) > 1e-6:
        raise ValueError(f"ratios: must sum to 1, got {ratios!r} (sum {values.sum():g})")
    return values


def _contents(table: pd.DataFrame) -> np.ndarray:
    """The distinct contents of `table`, sorted, as the object array the seeded permutations index."""
    return np.array(sorted(set(table["content"].astype(str))), dtype=object)


def _part_sizes(n: int, ratios: np.ndarray) -> np.ndarray:
    """Splits n contents by `ratios` with largest-remainder rounding, so sizes sum to n and follow the ratios."""
    exact = ratios * n
    sizes = np.floor(exact).astype(int)
    order = np.argsort(-(exact - sizes), kind="stable")
    sizes[order[: n - sizes.sum()]] += 1
    return sizes


def min_contents(ratios: Sequence[float] = (0.6, 0.2, 0.2)) -> int:
    """The fewest distinct contents for which every part with a positive ratio gets at least one (4 for
    60/20/20): with fewer, a content split leaves such a part empty."""
    values = _check_ratios(ratios)
    return next(n for n in range(1, 10_000) if np.all(_part_sizes(n, values)[values > 0] > 0))


def _warn_if_a_part_is_empty(num_contents: int, ratios: np.ndarray) -> None:
    """One warning when `num_contents` leave a part with a positive ratio empty (3 contents at 60/20/20: no
    test set), which the splits would otherwise return without a word."""
    empty = [
        name
        for name, size, ratio in zip(SPLIT_NAMES, _part_sizes(num_contents, ratios), ratios)
        if ratio > 0 and size == 0
    ]
    if empty:
        log.warning(
            "splits: %d content(s) leave the %s part empty; ratios %s need at least %d contents",
            num_contents,
            "/".join(empty),
            "/".join(f"{r:g}" for r in ratios),
            min_contents(ratios),
        )


def _split_by_permutation(
    table: pd.DataFrame, contents: np.ndarray, permutation: np.ndarray, ratios: np.ndarray
) -> dict[str, pd.DataFrame]:
    sizes = _part_sizes(len(contents), ratios)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    parts = {}
    content_column = table["content"].astype(str)
    for name, lo, hi in zip(SPLIT_NAMES, bounds[:-1], bounds[1:]):
        chosen = contents[permutation[lo:hi]]
        parts[name] = table[content_column.isin(chosen)]
    return parts


def content_split(
    table: pd.DataFrame, ratios: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0
) -> dict[str, pd.DataFrame]:
    """Splits `table` into "train", "val", "test" by content: each content's images all go to one part.

    The ratios count contents (reference images), as in the paper; each part keeps the table's row order.
    Same table and seed give the same split.
    """
    validate_table(table)
    ratios = _check_ratios(ratios)
    contents = _contents(table)
    if len(contents) == 0:
        raise ValueError("table: is empty, nothing to split")
    _warn_if_a_part_is_empty(len(contents), ratios)
    permutation = np.random.default_rng(seed).permutation(len(contents))
    return _split_by_permutation(table, contents, permutation, ratios)


def train_val_split(
    table: pd.DataFrame, val_fraction: float = STAGE1_VAL_FRACTION, val_images: int = 0, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Splits a weak-label table into (train, val) by content, for stage-1 training (no test part).

    `val_images` > 0 asks for about that many validation images (the paper: 100,000 of KADIS-700k's 700,000),
    otherwise `val_fraction` of the contents go to validation (default 1/7, the paper's ratio). The first
    contents of the seeded permutation are the validation ones; each part keeps the table's row order.
    """
    if "content" not in table.columns:
        raise ValueError("table: needs a 'content' column (a deepfl.data weak-label table)")
    contents = _contents(table)
    if len(contents) < 2:
        raise ValueError(
            f"table: needs at least 2 distinct contents to split, got {len(contents)}"
            + (
                " (no row is left: were all its images missing or skipped? see the warnings above)"
                if len(contents) == 0
                else ""
            )
        )
    if val_images:
        if not 0 < val_images < len(table):
            raise ValueError(f"val_images: must be in (0, {len(table)}), got {val_images}")
        fraction = val_images / len(table)
    else:
        fraction = float(val_fraction)
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"val_fraction: must be in (0, 1), got {val_fraction}")
    n_val = min(len(contents) - 1, max(1, int(round(fraction * len(contents)))))
    permutation = np.random.default_rng(seed).permutation(len(contents))
    is_val = table["content"].astype(str).isin(set(contents[permutation[:n_val]])).to_numpy()
    return table[~is_val], table[is_val]


def repeated_splits(
    table: pd.DataFrame, n: int = 10, ratios: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0
) -> list[dict[str, pd.DataFrame]]:
    """`n` independent content-aware splits (the paper's repeated 60/20/20 protocol), reproducible from `seed`.

    Split i uses the i-th child of `np.random.SeedSequence(seed)`, so the first k splits do not change when n
    grows.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n: must be a positive integer, got {n!r}")
    validate_table(table)
    ratios = _check_ratios(ratios)
    contents = _contents(table)
    if len(contents) == 0:
        raise ValueError("table: is empty, nothing to split")
    children = np.random.SeedSequence(seed).spawn(int(n))
    permutations = [np.random.default_rng(child).permutation(len(contents)) for child in children]
    _warn_if_a_part_is_empty(len(contents), ratios)
    _warn_repeats(contents, permutations, ratios)
    return [_split_by_permutation(table, contents, permutation, ratios) for permutation in permutations]


def _warn_repeats(contents: np.ndarray, permutations: Sequence[np.ndarray], ratios: np.ndarray) -> None:
    """Logs one warning when some of the random splits put the same contents in every part: with few
    references there are only a few distinct splits, and a repeated split repeats its result in the median."""
    bounds = np.concatenate([[0], np.cumsum(_part_sizes(len(contents), ratios))])
    distinct = {
        tuple(frozenset(permutation[lo:hi].tolist()) for lo, hi in zip(bounds[:-1], bounds[1:]))
        for permutation in permutations
    }
    repeated = len(permutations) - len(distinct)
    if repeated:
        log.warning(
            "splits: %d of %d content splits repeat an earlier one (only %d contents); their results "
            "count more than once in the median: use more contents (reference images, scenes) or fewer splits",
            repeated,
            len(permutations),
            len(contents),
        )


def official_split(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The data set's own split from column `split` ("train"/"val"/"test"); raises if it has none."""
    validate_table(table)
    if "split" not in table.columns or not (table["split"].astype(str) != "").any():
        from deepfl.wording import by_caller

        name = table.attrs.get("dataset", "this table")
        source = " (KonIQ-10k's is koniq10k_distributions_sets.csv, from its release, in its folder)"
        instead = by_caller("deepfl-train-mlp --noofficial_split", "content_split or repeated_splits")
        raise ValueError(
            f"table: {name} has no official split (column 'split' is empty){source if name == 'koniq10k' else ''}; "
            f"for random content splits instead: {instead}"
        )
    split = table["split"].astype(str)
    unassigned = int((split == "").sum())
    if unassigned:
        raise ValueError(
            f"table: {unassigned} row(s) have no official split, e.g. {table['image'][split == ''].iloc[0]}"
        )
    return {name: table[split == name] for name in SPLIT_NAMES}


def check_disjoint(parts: dict[str, pd.DataFrame]) -> None:
    """Raises ValueError if any content appears in two parts of a split (a leak between train and test)."""
    seen: dict[str, str] = {}
    for name, part in parts.items():
        for content in set(part["content"].astype(str)):
            if content in seen:
                raise ValueError(f"parts: content {content!r} is in both {seen[content]!r} and {name!r}")
            seen[content] = name
