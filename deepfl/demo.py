"""The whole DeepFL-IQA chain on images that ship with scikit-image, small enough for 2 CPU cores.

Steps (each resumable: a rerun skips finished work; every file goes under `out_dir`):
  1. pristine: bundled scikit-image photos, resized (shorter side) and centre-cropped to `size`;
  2. distort: stage-1 references get every chosen type x level (KADID-10k style), stage-2 references too;
  3. label: stage-1 pairs scored with the FR metrics (the weak labels, KADIS CSV layout);
  4. train: the multi-task model for a few steps at a small input size (weights=None here: no downloads);
  5. features: MLSP features of the held-out stage-2 images, whole image at native resolution (HDF5 cache);
  6. MLP: the paper's head on content-aware splits of the held-out images, with a STAND-IN target
     (no human opinion scores ship with any package): `standin_level` = 1 - (level - 1) / 4;
  7. table + scatter plot, one-file export, and one image scored through the `deepfl-predict` code path.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from deepfl import paper
from deepfl.fileio import atomic_write_bytes
from deepfl.images import write_image
from deepfl.jobs import progress

log = logging.getLogger("deepfl")

# Colour (or gray) photographs bundled inside scikit-image, in the order the demo uses them.
REFERENCE_NAMES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
                   "colorwheel", "camera", "coins", "clock", "moon", "brick", "grass", "gravel")
STANDIN_TARGET = "standin_level"
STANDIN_NOTE = ("No human opinion scores ship with any package, so the MLP is trained on a STAND-IN target: "
                "standin_level = 1 - (distortion level - 1) / 4 (1 = mildest, 0 = strongest). The figures "
                "below measure agreement with that stand-in, not with human perception.")


@dataclass
class DemoConfig:
    """What the demo does; defaults fit 2 CPU cores. `arch="tiny"` swaps in a small CNN (for tests only)."""

    size: tuple[int, int] = (176, 176)          # MS-SSIM needs >= 161 pixels per side
    stage1_refs: int = 2                         # labelled with the FR metrics, train the multi-task model
    stage2_refs: int = 5                         # held out: MLSP features + MLP with the stand-in target
    types: Sequence[int] = tuple(range(1, 26))
    levels: Sequence[int] = (1, 2, 3, 4, 5)
    stage2_types: Sequence[int] | None = None    # default: same as `types`
    metrics: Sequence[str] | None = None         # default: all eleven
    arch: str = "inception_resnet_v2"
    train_size: tuple[int, int] = (96, 96)
    train_steps: int = 6
    train_batch: int = 16
    mlp_hidden: Sequence[int] = (2048, 1024, 256)
    mlp_dropout: Sequence[float] = (0.25, 0.25, 0.5)
    mlp_epochs: int = 5
    mlp_learning_rates: Sequence[float] = (1e-3, 1e-4)
    mlp_batch: int = 64
    num_splits: int = 2
    seed: int = 0
    run_eagerly: bool = True                     # tracing IRV2's training graph costs minutes on a CPU

    def __post_init__(self):
        if self.stage1_refs < 2:
            raise ValueError(f"stage1_refs: need >= 2 (one for training, one for validation), got {self.stage1_refs}")
        if self.stage2_refs < 5:
            raise ValueError(f"stage2_refs: need >= 5 for 60/20/20 content splits, got {self.stage2_refs}")


@dataclass
class DemoResult:
    out_dir: Path
    summary: pd.DataFrame
    per_split: pd.DataFrame
    exported: Path
    scored: list[tuple[str, float]]
    timings: dict[str, float] = field(default_factory=dict)


def load_references(count: int, size: tuple[int, int], names: Sequence[str] = REFERENCE_NAMES
                    ) -> list[tuple[str, np.ndarray]]:
    """`count` bundled scikit-image photos as HxWx3 uint8 of `size` (gray ones repeated to RGB).

    Images that need a download (not bundled in this installation) are passed over.
    """
    from PIL import Image
    from skimage import data

    height, width = size
    out = []
    for name in names:
        if len(out) == count:
            break
        try:
            image = np.asarray(getattr(data, name)())
        except Exception:  # a data file that would need a download: skip it
            continue
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        image = np.ascontiguousarray(image[..., :3]).astype(np.uint8)
        h, w = image.shape[:2]
        scale = max(height / h, width / w)
        nh, nw = max(height, round(h * scale)), max(width, round(w * scale))
        image = np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.LANCZOS))
        top, left = (nh - height) // 2, (nw - width) // 2
        out.append((name, np.ascontiguousarray(image[top:top + height, left:left + width])))
    if len(out) < count:
        raise ValueError(f"count: only {len(out)} bundled scikit-image photos are available, asked for {count}")
    return out


def distort_references(references: Sequence[tuple[str, np.ndarray]], types: Sequence[int], levels: Sequence[int],
                       out_dir: Path, seed: int) -> pd.DataFrame:
    """Writes `<ref>_<TT>_<LL>.png` for every type x level (existing files are kept); returns the manifest."""
    from deepfl.distortions import distort

    rows = []
    todo = [(name, img, t, lv) for name, img in references for t in types for lv in levels]
    for name, image, dist_type, level in progress(todo, total=len(todo), desc="distort", unit="img"):
        file_name = f"{name}_{dist_type:02d}_{level:02d}.png"
        target = out_dir / file_name
        if not target.exists():
            rng = np.random.default_rng([seed, dist_type, level, sum(map(ord, name))])
            write_image(target, distort(image, dist_type, level, rng=rng))
        rows.append({"dist_im": file_name, "ref_im": f"{name}.png", "dist_type": dist_type, "dist_level": level})
    return pd.DataFrame(rows)


def _write_manifest(frame: pd.DataFrame, path: Path) -> None:
    atomic_write_bytes(path, frame.to_csv(index=False, quoting=csv.QUOTE_MINIMAL).encode("utf-8"))


def stage1_config(weak_labels: Path, image_root: Path, config: DemoConfig):
    """The demo's stage-1 run: a few multi-task steps at a small input size, random init, half of the contents
    for validation (there are only a few)."""
    from deepfl.training import MultitaskConfig

    return MultitaskConfig(weak_labels=str(weak_labels), image_root=str(image_root), val_fraction=0.5,
                           image_size=config.train_size, batch_size=config.train_batch, epochs=1,
                           steps_per_epoch=config.train_steps, val_steps=2, learning_rate=paper.STAGE1_LEARNING_RATE,
                           weights="none", arch=config.arch, jit_compile=False, run_eagerly=config.run_eagerly,
                           seed=config.seed, tensorboard=False, progress=False)


def run_demo(out_dir: str | os.PathLike = "demo_out", config: DemoConfig = DemoConfig(),
             echo: Callable[[str], None] = print) -> DemoResult:
    """Runs the whole chain into `out_dir` (see the module docstring); returns the results."""
    import keras

    from deepfl import features, labeling, protocol, reporting
    from deepfl.export import export_model
    from deepfl.fileio import load_model_file
    from deepfl.models import mlsp_extractor
    from deepfl.prediction import format_scores, load_scorer, score_files
    from deepfl.training import run_multitask

    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[step] = now - clock
        clock = now
        echo(f"[{step}] done in {timings[step]:.1f} s")

    # 1-2. Pristine references and their distorted versions.
    refs = load_references(config.stage1_refs + config.stage2_refs, config.size)
    pristine, distorted = out / "pristine", out / "distorted"
    for name, image in refs:
        if not (pristine / f"{name}.png").exists():
            write_image(pristine / f"{name}.png", image)
    stage1, stage2 = refs[:config.stage1_refs], refs[config.stage1_refs:]
    echo(f"references: stage 1 (weak labels) {[n for n, _ in stage1]}, stage 2 (held out) {[n for n, _ in stage2]}")
    manifest1 = distort_references(stage1, config.types, config.levels, distorted, config.seed)
    manifest2 = distort_references(stage2, config.stage2_types or config.types, config.levels, distorted,
                                   config.seed)
    _write_manifest(manifest1, out / "manifest_stage1.csv")
    _write_manifest(manifest2, out / "manifest_stage2.csv")
    lap("distort")

    # 3. Weak labels of the stage-1 pairs.
    summary = labeling.label_pairs(manifest1[["dist_im", "ref_im"]], distorted, out / "weak_labels.csv",
                                   metrics=config.metrics, ref_root=pristine)
    echo(str(summary))
    lap("label")

    # 4. Multi-task training (a few steps).
    multitask_dir = out / "multitask"
    if (multitask_dir / "model.keras").exists():
        model = load_model_file(multitask_dir / "model.keras")
    else:
        model = run_multitask(stage1_config(out / "weak_labels.csv", distorted, config), multitask_dir).model
    lap("train")

    # 5. MLSP features of the held-out stage-2 images.
    table = pd.DataFrame({
        "image": [str(distorted / n) for n in manifest2["dist_im"]],
        "ref": [str(pristine / n) for n in manifest2["ref_im"]],
        "content": [Path(n).stem for n in manifest2["ref_im"]],
        "raw_score": manifest2["dist_level"].to_numpy(dtype=np.float64),
        "split": "",
    })
    table["score"] = 1.0 - (table["raw_score"] - 1.0) / 4.0
    table.attrs.update(dataset=STANDIN_TARGET, score_range=(1.0, 5.0), lower_better=True)
    extractor = mlsp_extractor(model, input_shape=(None, None, 3))
    stats = features.extract_to_cache(extractor, table["image"].tolist(), out / "features.h5", batch_size=16,
                                      source=str(multitask_dir / "model.keras"))
    feats = features.load_features(out / "features.h5", table["image"].tolist())
    echo(f"features: {stats['written']} extracted, {stats['done']} cached, dim {feats.shape[1]}")
    lap("features")

    # 6. MLP head over content-aware splits, with the stand-in target.
    echo(STANDIN_NOTE)
    head_config = protocol.HeadConfig(hidden=config.mlp_hidden, dropout=config.mlp_dropout, epochs=config.mlp_epochs,
                                      batch_size=config.mlp_batch, learning_rates=config.mlp_learning_rates,
                                      seed=config.seed)
    mlp_dir = out / "mlp"
    if (mlp_dir / "summary.csv").exists() and (mlp_dir / "per_split.csv").exists():
        per_split = pd.read_csv(mlp_dir / "per_split.csv")
        summary_table = pd.read_csv(mlp_dir / "summary.csv").set_index("statistic")
        echo(f"{mlp_dir}: finished earlier, reusing its results")
    else:
        splits = protocol.table_splits(table, config.num_splits, config.seed)
        result = protocol.run_and_report(table, feats, splits, head_config, mlp_dir, name="head",
                                         title=f"held-out images, target {STANDIN_TARGET}",
                                         score_label=f"{STANDIN_TARGET} (stand-in target)")
        per_split, summary_table = result.per_split, result.summary
    crit = ["srocc", "plcc", "plcc_logistic", "krocc", "rmse"]
    echo("per split (test sets):\n" + per_split[["split", "learning_rate", "best_epoch", *crit]].to_string(
        index=False, float_format=lambda v: f"{v:.4f}"))
    echo("summary over splits:\n" + summary_table[crit].to_string(float_format=lambda v: f"{v:.4f}"))
    lap("mlp")

    # 7. One-file export and the predict entry point on one image.
    exported = out / "deepfl_iqa.keras"
    if not exported.exists():
        export_model(model, mlp_dir / "head_split0.keras", exported)
    image = table["image"].iloc[0]
    rows, failed = score_files([image], load_scorer(exported))
    if failed:
        raise ValueError(f"image: {failed[0]} could not be scored")
    atomic_write_bytes(out / "prediction.csv", format_scores(rows, "csv").encode("utf-8"))
    echo(f"deepfl-predict --model {exported} {image}\n" + format_scores(rows))
    lap("export+predict")
    total = sum(timings.values())
    echo(f"total {total:.1f} s; every output is under {out}")
    report = reporting.to_markdown(pd.DataFrame([{"step": k, "seconds": v} for k, v in timings.items()]))
    atomic_write_bytes(out / "timings.md", report.encode("utf-8"))
    return DemoResult(out, summary_table, per_split, exported, rows, timings)
