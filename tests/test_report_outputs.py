"""What the result files show: integer counts in the within-data-set table, a scatter plot whose legend says
its figures are pooled over all points and sits outside the axes, over no point, and stage 1's training curves."""

import numpy as np
import pandas as pd

from deepfl import reporting


def test_within_table_counts_are_integers_in_markdown():
    summary = pd.DataFrame(
        {"srocc": [0.9], "plcc": [0.91], "plcc_logistic": [0.92], "krocc": [0.8], "rmse": [0.1]}, index=["median"]
    )
    table = reporting.within_table({"kadid10k": summary}, n_images={"kadid10k": 150}, n_splits={"kadid10k": 10})
    text = reporting.to_markdown(table)
    row = next(line for line in text.splitlines() if line.startswith("| kadid10k"))
    assert "| 150 | 10 |" in row and "150.000" not in text
    skipped = next(line for line in text.splitlines() if line.startswith("| live"))
    assert "<NA>" not in skipped and "nan" not in skipped


def test_scatter_legend_is_pooled_and_covers_no_point():
    rng = np.random.default_rng(0)
    pred = rng.uniform(0, 1, 200)
    target = np.clip(pred + rng.normal(0, 0.1, 200), 0, 1)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = reporting.scatter_figure(pred, target, "test images of 3 splits")
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    axes = figure.axes[0]
    legend = axes.get_legend()
    assert "all 200 points pooled" in legend.get_title().get_text()
    renderer = canvas.get_renderer()
    box, area = legend.get_window_extent(renderer), axes.get_window_extent(renderer)
    assert box.y1 <= area.y0  # below the axes, so over no point
    assert box.y0 >= 0  # and inside the figure


def test_training_curves_show_losses_every_task_and_the_best_epoch(tmp_path):
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "loss": [3.0, 2.0, 1.5],
            "val_loss": [3.2, 2.5, 2.6],
            "val_ssim_srocc": [0.1, 0.5, 0.4],
            "val_gmsd_srocc": [0.2, 0.3, 0.35],
            "val_srocc": [0.15, 0.4, 0.375],
            "backbone_frozen": [1, 0, 0],
        }
    )
    figure = reporting.history_figure(history)
    loss_axes, srocc_axes = figure.axes
    assert [line.get_label() for line in loss_axes.get_lines()] == ["training", "validation"]
    labels = [line.get_label() for line in srocc_axes.get_lines()]
    assert labels[:3] == ["ssim", "gmsd", "mean"]
    assert srocc_axes.get_title() == "best mean 0.400 at epoch 2"
    assert len(loss_axes.patches) == 1  # the frozen-backbone epoch is shaded
    (tmp_path / "history.csv").write_text(history.to_csv(index=False))
    path = reporting.plot_history(tmp_path / "history.csv", tmp_path / "history.png")
    assert path.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.csv", "history.png"]  # no temporary file left


def test_a_table_writes_its_csv_last(tmp_path, monkeypatch):
    """deepfl-train-mlp takes summary.csv for a finished run: a kill after the CSV and before the Markdown left a
    finished run without summary.md for good (the kill test caught it once, seed 0, in session 35's CI)."""
    written = []
    real = reporting.atomic_write_bytes

    def record(path, data):
        written.append(path.name)
        real(path, data)

    monkeypatch.setattr(reporting, "atomic_write_bytes", record)
    csv_path, md_path = reporting.write_table(pd.DataFrame({"srocc": [0.5]}), tmp_path, "summary", "a title")
    assert written == ["summary.md", "summary.csv"]
    assert csv_path.read_text().startswith("srocc") and md_path.read_text().startswith("## a title")
