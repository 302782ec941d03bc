"""Result tables (CSV + Markdown, with the paper's reported numbers side by side) and scatter plots.

Plots use matplotlib's Agg backend (no display needed). Nothing here invents numbers: a data set the user did
not provide is listed with status "skipped" and empty cells, and paper cells we have not transcribed stay empty.
"""

from __future__ import annotations

import io
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from deepfl.fileio import atomic_write_bytes

WITHIN_COLUMNS = (
    "dataset",
    "title",
    "protocol",
    "status",
    "n_images",
    "n_splits",
    "srocc",
    "plcc",
    "plcc_logistic",
    "krocc",
    "rmse",
    "paper_srocc",
    "paper_plcc",
    "delta_srocc",
    "delta_plcc",
    "authors_demo_srocc",
    "authors_demo_splits",
    "delta_authors_demo_srocc",
)


def authors_demo_anchor() -> dict[str, tuple[float, str]]:
    """The authors' demo notebook's printed SROCC per data set: (median over its splits, the splits as text)."""
    from deepfl.paper import AUTHORS_DEMO_KADID10K_SROCC

    splits = AUTHORS_DEMO_KADID10K_SROCC
    return {"kadid10k": (float(np.median(splits)), " ".join(f"{v:.3f}" for v in splits))}


def within_table(
    summaries: Mapping[str, pd.DataFrame | None],
    n_images: Mapping[str, int] | None = None,
    n_splits: Mapping[str, int] | None = None,
    skipped_reason: Mapping[str, str] | None = None,
    datasets: Sequence[str] | None = None,
    protocol: str = "paper",
    reader_options: Mapping[str, Mapping[str, object]] | None = None,
) -> pd.DataFrame:
    """The within-data-set table: median criteria over splits next to both anchors, the paper's SROCC/PLCC and
    (KADID-10k) the SROCC the authors' demo notebook printed, median and per split. `reader_options`: dataset
    key -> the options its reader was given; when any was, a last column `reader_options` names them per row
    ("realigned=True"), as such a row is not measured in the paper's setting beside it.

    summaries: dataset key -> `evaluation.summarize` output (or None when the data set was not run). Every key of
    `datasets` (default: the paper's six benchmarks) gets a row, so skipped data sets stay visible. `protocol`
    (the name of the stage-2 protocol that produced the summaries) is written in each row.
    """
    from deepfl.data import DATASETS

    demo = authors_demo_anchor()

    datasets = list(datasets) if datasets is not None else [k for k, v in DATASETS.items() if v.paper_srocc]
    rows = []
    for key in list(dict.fromkeys([*datasets, *summaries])):
        info = DATASETS.get(key)
        summary = summaries.get(key)
        row = {
            "dataset": key,
            "title": info.title if info else key,
            "protocol": protocol,
            "paper_srocc": info.paper_srocc if info else None,
            "paper_plcc": info.paper_plcc if info else None,
        }
        if key in demo:
            row["authors_demo_srocc"], row["authors_demo_splits"] = demo[key]
        if summary is None:
            row["status"] = "skipped: " + (skipped_reason or {}).get(key, "no data folder given")
        else:
            median = summary.loc["median"]
            row.update(
                status="ok",
                **{c: float(median[c]) for c in ("srocc", "plcc", "plcc_logistic", "krocc", "rmse") if c in median},
            )
            row["n_images"] = (n_images or {}).get(key)
            row["n_splits"] = (n_splits or {}).get(key)
            whole = info.release_images if info and not (reader_options or {}).get(key) else None
            if whole and row["n_images"] is not None and row["n_images"] != whole:  # a part: not the paper's set
                row["status"] = f"ok ({row['n_images']:,} of the release's {whole:,} images)"
            if row["paper_srocc"] is not None:
                row["delta_srocc"] = row["srocc"] - row["paper_srocc"]
            if row["paper_plcc"] is not None:
                row["delta_plcc"] = row.get("plcc_logistic", row["plcc"]) - row["paper_plcc"]
            if key in demo:
                row["delta_authors_demo_srocc"] = row["srocc"] - demo[key][0]
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(WITHIN_COLUMNS))
    used = {key: chosen for key, chosen in (reader_options or {}).items() if chosen}
    if used:
        table["reader_options"] = [
            ", ".join(f"{option}={value}" for option, value in used.get(key, {}).items()) for key in table["dataset"]
        ]
    # Counts stay integers (pandas makes a column with a missing value float: "150.000" in the Markdown).
    return table.astype({"n_images": "Int64", "n_splits": "Int64"})


CROSS_COLUMNS = (
    "train",
    "test",
    "status",
    "srocc",
    "plcc",
    "plcc_logistic",
    "krocc",
    "rmse",
    "paper_srocc",
    "paper_plcc",
)


def cross_table(
    results: Mapping[tuple[str, str], Mapping[str, float] | str],
    paper: Mapping[tuple[str, str], tuple[float, float]] | None = None,
) -> pd.DataFrame:
    """The cross-data-set table: one row per (train, test) pair; a str value is a skip reason."""
    rows = []
    for (train, test), value in results.items():
        row = {"train": train, "test": test}
        if isinstance(value, str):
            row["status"] = "skipped: " + value
        else:
            row.update(status="ok", **{c: float(value[c]) for c in CROSS_COLUMNS[3:8] if c in value})
        if paper and (train, test) in paper:
            row["paper_srocc"], row["paper_plcc"] = paper[(train, test)]
        rows.append(row)
    return pd.DataFrame(rows, columns=list(CROSS_COLUMNS))


def _cell(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.3f}"
    return str(value).replace("|", "\\|")


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub Markdown table (numbers to 3 decimals, empty cells for missing values)."""
    header = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def write_table(table: pd.DataFrame, out_dir: str | os.PathLike, stem: str, title: str = "") -> tuple[Path, Path]:
    """Writes `<stem>.md` and then `<stem>.csv`, each atomically; returns (csv, md). The CSV last: jobs take it
    for their finished result (`deepfl-train-mlp`'s summary.csv), so a kill between the two writes leaves no CSV
    and the rerun writes both, where the other order left a finished run without its Markdown table."""
    out = Path(out_dir)
    csv_path, md_path = out / f"{stem}.csv", out / f"{stem}.md"
    text = (f"## {title}\n\n" if title else "") + to_markdown(table)
    atomic_write_bytes(md_path, text.encode("utf-8"))
    atomic_write_bytes(csv_path, table.to_csv(index=False).encode("utf-8"))
    return csv_path, md_path


def scatter_figure(
    pred: Sequence[float],
    target: Sequence[float],
    title: str = "",
    xlabel: str = "predicted score",
    ylabel: str = "subjective score",
):
    """The matplotlib Figure of `scatter_plot`: points, the fitted 4-parameter logistic, and below the axes (never
    over a point) a legend with SROCC and PLCC of all the points pooled, which differ from a table's median over
    splits."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    from deepfl.evaluation import evaluate, fit_logistic, logistic4

    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    figure = Figure(figsize=(5, 5), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    axes.scatter(pred, target, s=8, alpha=0.6, edgecolors="none")
    if pred.size >= 4:
        grid = np.linspace(pred.min(), pred.max(), 200)
        axes.plot(grid, logistic4(grid, *fit_logistic(pred, target)), color="C3", lw=1.5, label="logistic fit")
        crit = evaluate(pred, target)
        axes.legend(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.14),
            frameon=False,
            fontsize=9,
            title_fontsize=9,
            title=f"all {pred.size} points pooled: SROCC {crit['srocc']:.3f}, "
            f"PLCC (logistic) {crit['plcc_logistic']:.3f}",
        )
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(textwrap.fill(title, width=48), fontsize=10)  # long titles wrap instead of being cut off
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    return figure


def scatter_plot(
    pred: Sequence[float],
    target: Sequence[float],
    path: str | os.PathLike,
    title: str = "",
    xlabel: str = "predicted score",
    ylabel: str = "subjective score",
) -> Path:
    """Scatter of predicted vs subjective scores with the fitted 4-parameter logistic, saved as PNG."""
    figure = scatter_figure(pred, target, title, xlabel, ylabel)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def history_figure(history: pd.DataFrame):
    """The matplotlib Figure of `plot_history`: total training and validation loss by epoch (left), validation
    SROCC per task and their mean (right), the best epoch by mean SROCC marked, epochs with a frozen backbone
    shaded. Columns as stage 1's `history.csv` (`epoch`, `loss`, `val_loss`, `val_<task>_srocc`, `val_srocc`,
    `backbone_frozen`); absent ones are left out."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    epochs = history["epoch"].to_numpy()
    figure = Figure(figsize=(10, 4), dpi=100)
    loss_axes, srocc_axes = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    for column, label in (("loss", "training"), ("val_loss", "validation")):
        if column in history and history[column].notna().any():
            loss_axes.plot(epochs, history[column], marker="o", ms=3, label=label)
    loss_axes.set_ylabel("loss (weighted sum over tasks)")
    tasks = [c for c in history.columns if c.startswith("val_") and c.endswith("_srocc") and c != "val_srocc"]
    for column in tasks:
        srocc_axes.plot(epochs, history[column], lw=0.8, alpha=0.6, label=column[4:-6])
    if "val_srocc" in history and history["val_srocc"].notna().any():
        srocc_axes.plot(epochs, history["val_srocc"], color="black", lw=2.2, label="mean")
        best = int(history["val_srocc"].idxmax())
        srocc_axes.axvline(epochs[best], color="gray", ls=":", lw=1)
        srocc_axes.set_title(f"best mean {history['val_srocc'].iloc[best]:.3f} at epoch {epochs[best]}", fontsize=10)
    srocc_axes.set_ylabel("validation SROCC with the weak labels")
    for axes in (loss_axes, srocc_axes):
        if "backbone_frozen" in history:
            for epoch in epochs[history["backbone_frozen"].to_numpy() == 1]:
                axes.axvspan(epoch - 0.5, epoch + 0.5, color="C0", alpha=0.08, lw=0)
        axes.set_xlabel("epoch")
        axes.grid(True, alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=7, ncol=2 if axes is srocc_axes else 1)
    figure.tight_layout()
    return figure


def plot_history(history_csv: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Stage 1's training curves (`history_figure`) from its `history.csv`, saved as PNG (atomically)."""
    figure = history_figure(pd.read_csv(history_csv))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def labels_by_level_figure(labels: pd.DataFrame, metrics: Sequence[str], lower_is_better: Sequence[str] = ()):
    """The matplotlib Figure of `plot_labels_by_level`: one panel per metric, its median score over the
    references at each distortion level, one thin line per distortion type and the median over all pairs in
    black. A weak label that does not move with the level, or moves the wrong way, shows at a glance. `labels`
    has the metric columns and `dist_type`, `dist_level`; the last panel names the types."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    from deepfl.distortions import DISTORTION_NAMES

    types = sorted(labels["dist_type"].unique())
    spectral = colormaps["nipy_spectral"]

    def colour(n: int):
        """Type n's colour: the spectrum without its black end (the all-pairs median's colour) and its pale top."""
        return spectral(0.08 + 0.86 * n / max(len(types) - 1, 1))

    columns = 4
    rows = -(-(len(metrics) + 1) // columns)
    figure = Figure(figsize=(3.2 * columns, 2.6 * rows), dpi=100)
    for k, metric in enumerate(metrics):
        axes = figure.add_subplot(rows, columns, k + 1)
        by_type = labels.groupby(["dist_type", "dist_level"])[metric].median()
        for n, dist_type in enumerate(types):
            curve = by_type.loc[dist_type]
            axes.plot(curve.index, curve.to_numpy(), lw=0.8, alpha=0.7, color=colour(n))
        overall = labels.groupby("dist_level")[metric].median()
        axes.plot(overall.index, overall.to_numpy(), color="black", lw=2.2)
        axes.set_title(metric + (" (lower is better)" if metric in lower_is_better else ""), fontsize=9)
        axes.set_xticks(sorted(labels["dist_level"].unique()))
        axes.tick_params(labelsize=7)
        axes.grid(True, alpha=0.3)
        if k % columns == 0:
            axes.set_ylabel("median score", fontsize=8)
        if k >= len(metrics) - columns:
            axes.set_xlabel("distortion level", fontsize=8)
    key = figure.add_subplot(rows, columns, len(metrics) + 1)
    key.axis("off")
    handles = [key.plot([], [], color=colour(n), lw=1.5)[0] for n in range(len(types))] + [
        key.plot([], [], color="black", lw=2.2)[0]
    ]
    names = [f"{t} {DISTORTION_NAMES.get(int(t), '')}" for t in types] + ["all pairs"]
    key.legend(handles, names, loc="center", fontsize=6, ncol=2, frameon=False)
    figure.tight_layout()
    return figure


def plot_labels_by_level(
    labels_csv: str | os.PathLike, manifest_csv: str | os.PathLike, path: str | os.PathLike
) -> Path | None:
    """`labels_by_level_figure` of a label CSV (its FR metric columns, in `deepfl.fr.METRICS` order), with the
    types and levels taken from the manifest (`dist_type`, `dist_level`, as deepfl-distort writes them), saved as
    PNG (atomically). Returns None, and draws nothing, when the manifest has no such columns (a benchmark's own
    list of pairs) or no row is labelled."""
    from deepfl.fr import LOWER_IS_BETTER, METRICS

    manifest = pd.read_csv(manifest_csv)
    if not {"dist_im", "dist_type", "dist_level"} <= set(manifest.columns):
        return None
    labels = pd.read_csv(labels_csv).merge(manifest[["dist_im", "dist_type", "dist_level"]], on="dist_im")
    if labels.empty:
        return None
    figure = labels_by_level_figure(labels, [m for m in METRICS if m in labels.columns], sorted(LOWER_IS_BETTER))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
