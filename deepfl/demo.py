"""The DeepFL-IQA story in miniature, on photos that ship inside installed packages, on 2 CPU cores in minutes.

Weak supervision: a backbone trained only to predict full-reference (FR) metric scores of distorted images (the
weak labels, no human scores) learns features that tell distortion severity apart on images it has never seen.
Steps (each resumable: a rerun with the same settings reuses finished work; every file goes under `out_dir`):
  1. pristine: crops of the photos bundled with scikit-image, scikit-learn and matplotlib (`bundled_photos`);
     the held-out photos never reach stage 1. Stage 1 gets many crops of each photo at random scales and
     positions (`random_crops`): more content for the weak labels to generalise from;
  2. distort: as in KADIS-700k, each stage-1 crop gets a few of the types (every type equally often) at every
     level; each held-out crop gets every type x level (KADID-10k style), so the comparison covers all types;
  3. label: stage-1 pairs scored with the FR metrics (the weak labels, KADIS CSV layout);
  4. train: the multi-task model on the weak labels, from random weights (nothing is downloaded), on small
     crops, the learning rate decayed to 0 over the run;
  5. features: MLSP features of the held-out images from the trained backbone and from the same backbone
     untrained (random init);
  6. MLP: the paper's head on content-aware splits of the held-out images (crops of one photo stay together)
     for both feature sets and for the FR metric that best follows the target on the stage-1 images (a ceiling
     that needs the reference). The target is a STAND-IN, as no human opinion scores of these images exist:
     `standin_dmos`, the KADID-10k mean opinion (DMOS, 1..5) of the image's distortion type at its level, averaged
     over KADID-10k's 81 contents (`deepfl.kadid_opinion`), not this image's own opinion score
     (`target="standin_level"`, 1 - (level - 1) / 4, is the cruder alternative);
  7. comparison.csv/.png, the one-file export, and one image scored through the `deepfl-predict` code path.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from deepfl.architectures import PAPER_ARCHITECTURE, check_architecture
from deepfl.fileio import atomic_write_bytes, remove_outputs
from deepfl.images import write_image
from deepfl.jobs import SEED_MAX, check_settings

log = logging.getLogger("deepfl")

# Photographs bundled inside scikit-image (gray ones become RGB), scikit-learn and matplotlib. Names that need a
# download in an installation are passed over.
SKIMAGE_PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "camera",
    "coins",
    "clock",
    "moon",
    "brick",
    "grass",
    "gravel",
    "colorwheel",
    "page",
    "text",
    "stereo_motorcycle",
)
SKLEARN_PHOTOS = ("china", "flower")
MATPLOTLIB_PHOTOS = ("grace_hopper",)
# Photos kept out of stage 1: the MLP comparison runs on their crops only.
HELD_OUT_PHOTOS = ("astronaut", "coffee", "chelsea", "china", "grace_hopper", "camera", "immunohistochemistry", "moon")
# The stand-in targets (no human opinion scores of the demo's images exist) and what each one is.
STANDIN_TARGETS = {
    "standin_dmos": "standin_dmos = the KADID-10k mean opinion (DMOS, 1..5, higher = better) of the image's "
    "distortion type at its level, averaged over KADID-10k's 81 contents: human scores of the "
    "same distortions on other images, not this image's own opinion score",
    "standin_level": "standin_level = 1 - (distortion level - 1) / 4 (1 = mildest, 0 = strongest), whatever the type",
}
FEATURE_SETS = ("weak_supervised", "random_init", "fr_oracle")
SETTINGS_FILE = "demo_settings.json"
ASSIGNMENT_FILE = "distort_assignment.csv"  # (reference, type) rows for the deepfl-distort job
# What the demo writes under out_dir (removed by `overwrite`).
OUTPUTS = (
    "pristine",
    "distorted",
    ASSIGNMENT_FILE,
    "manifest_stage1.csv",
    "manifest_stage2.csv",
    "weak_labels.csv",
    "weak_labels.png",
    "held_out_fr.csv",
    "multitask",
    "features",
    "mlp",
    "comparison.csv",
    "comparison.md",
    "comparison.png",
    "deepfl_iqa.keras",
    "prediction.csv",
    "timings.md",
    SETTINGS_FILE,
)


@dataclass(frozen=True)
class DemoConfig:
    """What the demo does; the defaults fit 2 CPU cores in minutes.

    `arch="small"` (default) is a 5-stage CNN with the MLSP interface, because the paper's InceptionResNetV2
    cannot learn the weak labels on 2 CPU cores in minutes; `arch="inception_resnet_v2"` tells the same story
    with the paper's network (much slower). `arch="tiny"` is for smoke tests only.
    """

    size: tuple[int, int] = (176, 176)  # labels need >= 161 pixels per side (MS-SSIM)
    stage1_photos: tuple[str, ...] | None = None  # None: every bundled photo that is not held out
    held_out_photos: tuple[str, ...] = HELD_OUT_PHOTOS
    crops: int = 10  # crops per stage-1 photo, random scales and positions
    types_per_crop: int = 5  # distortion types per stage-1 crop, each at every level (KADIS-700k: one)
    held_out_crops: int = 2  # non-overlapping crops per held-out photo, each with every type x level
    types: tuple[int, ...] = tuple(range(1, 26))
    levels: tuple[int, ...] = (1, 2, 3, 4, 5)
    metrics: tuple[str, ...] | None = None  # weak labels; None: all eleven
    arch: str = "small"
    # Random crops of the labelled images (labels are per image): small crops buy more steps per second, and
    # more steps help the held-out comparison more than larger crops do.
    train_crop: tuple[int, int] = (64, 64)
    train_epochs: int = 12
    train_batch: int = 32
    learning_rate: float = 1e-3
    # Decayed to 0 over the run: at a constant rate the final model of so short a run is one noisy point of its
    # trajectory, and its features' quality varies with it (see docs/multitask.md, --lr_schedule).
    lr_schedule: str = "cosine"
    val_fraction: float = 1 / 7
    # The head: one hidden layer on features z-scored on each split's training rows. The paper's head (2048, 1024,
    # 256) overfits the demo's ~1,250 training images of 5 photos; this one is the same protocol otherwise.
    mlp_hidden: tuple[int, ...] = (256,)
    mlp_dropout: tuple[float, ...] = (0.5,)
    mlp_standardize: bool = True
    mlp_epochs: int = 30
    mlp_learning_rates: tuple[float, ...] = (1e-3, 1e-4)
    mlp_batch: int = 64
    num_splits: int = 10  # the paper's count: each split tests on one or two photos, so few splits give a noisy median
    seed: int = 0
    target: str = "standin_dmos"  # one of STANDIN_TARGETS

    def __post_init__(self):
        if self.target not in STANDIN_TARGETS:
            raise ValueError(f"target: must be one of {sorted(STANDIN_TARGETS)}, got {self.target!r}")
        if len(self.held_out_photos) < 5:
            raise ValueError(f"held_out_photos: need >= 5 for 60/20/20 content splits, got {len(self.held_out_photos)}")
        overlap = set(self.stage1_photos or ()) & set(self.held_out_photos)
        if overlap:
            raise ValueError(f"stage1_photos: {sorted(overlap)} are also held out")
        from deepfl.distortions import DISTORTION_NAMES, NUM_LEVELS

        if not self.types or any(t not in DISTORTION_NAMES for t in self.types):
            raise ValueError(f"types: need KADID-10k types in 1..{len(DISTORTION_NAMES)}, got {list(self.types)}")
        if not self.levels or any(not 1 <= lv <= NUM_LEVELS for lv in self.levels):
            raise ValueError(f"levels: need levels in 1..{NUM_LEVELS}, got {list(self.levels)}")
        if not 0 <= self.seed <= SEED_MAX:
            raise ValueError(f"seed: need 0 .. {SEED_MAX}, got {self.seed}")
        if self.crops < 1 or self.held_out_crops < 1 or self.types_per_crop < 1:
            raise ValueError(
                f"crops/held_out_crops/types_per_crop: need >= 1, got "
                f"{self.crops}/{self.held_out_crops}/{self.types_per_crop}"
            )
        from deepfl.training.job import check_lr_schedule

        check_lr_schedule(self.lr_schedule)
        check_architecture(self.arch, None)
        if self.train_epochs < 1:
            raise ValueError(f"train_epochs: need >= 1, got {self.train_epochs}")
        if self.metrics is not None:
            from deepfl.fr.specs import SPEC_BY_NAME

            unknown = [m for m in self.metrics if m not in SPEC_BY_NAME]
            if unknown or not self.metrics:
                raise ValueError(f"metrics: need names among {', '.join(SPEC_BY_NAME)}, got {list(self.metrics)}")


@dataclass
class DemoResult:
    out_dir: Path
    comparison: pd.DataFrame
    exported: Path
    scored: list[tuple[str, float]]
    timings: dict[str, float] = field(default_factory=dict)


def _load_photo(name: str) -> np.ndarray:
    """One bundled photo as HxWx3 uint8; raises when it is not bundled in this installation."""
    if name in SKLEARN_PHOTOS:
        from sklearn.datasets import load_sample_image

        return np.asarray(load_sample_image(f"{name}.jpg"))
    if name in MATPLOTLIB_PHOTOS:
        from matplotlib import cbook
        from PIL import Image

        with Image.open(cbook.get_sample_data(f"{name}.jpg")) as image:
            return np.asarray(image.convert("RGB"))
    from skimage import data

    image = getattr(data, name)()
    if name == "stereo_motorcycle":  # (left view, right view, disparity): the left photo
        image = image[0]
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def bundled_photos(names: Sequence[str]) -> dict[str, np.ndarray]:
    """The photos of `names` that this installation holds (those needing a download are passed over)."""
    out = {}
    for name in names:
        try:
            out[name] = _load_photo(name)
        except Exception:  # e.g. a scikit-image file fetched by pooch on first use: not bundled
            log.info("photo %s is not bundled in this installation; passed over", name)
    return out


def photo_crops(image: np.ndarray, size: tuple[int, int], count: int) -> list[np.ndarray]:
    """`count` non-overlapping crops of `size`, spread over the photo resized so that it holds two crops across
    its shorter side (one when `count` is 1)."""
    from PIL import Image

    height, width = size
    h, w = image.shape[:2]
    across = 1 if count == 1 else 2
    scale = max(across * height / h, across * width / w) if h <= w else max(across * height / h, width / w)
    scale = max(scale, height / h, width / w)
    nh, nw = max(height, round(h * scale)), max(width, round(w * scale))
    resized = np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.LANCZOS))
    rows, cols = nh // height, nw // width
    top, left = (nh - rows * height) // 2, (nw - cols * width) // 2
    grid = [(top + r * height, left + c * width) for r in range(rows) for c in range(cols)]
    chosen = np.unique(np.linspace(0, len(grid) - 1, min(count, len(grid))).round().astype(int))
    return [np.ascontiguousarray(resized[y : y + height, x : x + width]) for y, x in (grid[i] for i in chosen)]


def random_crops(image: np.ndarray, size: tuple[int, int], count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`count` crops of `size` at random positions of the photo resized by a random factor between the one that
    fits the crop to its shorter side and its own size (crops may overlap; a photo smaller than `size` is
    enlarged)."""
    from PIL import Image

    height, width = size
    h, w = image.shape[:2]
    smallest = max(height / h, width / w)  # the whole photo's shorter side becomes one crop
    crops = []
    for _ in range(count):
        scale = rng.uniform(smallest, max(smallest, 1.0))
        nh, nw = max(height, round(h * scale)), max(width, round(w * scale))
        resized = np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.LANCZOS))
        y, x = int(rng.integers(0, nh - height + 1)), int(rng.integers(0, nw - width + 1))
        crops.append(np.ascontiguousarray(resized[y : y + height, x : x + width]))
    return crops


def rotating_types(count: int, types: Sequence[int], per_reference: int) -> list[tuple[int, ...]]:
    """For `count` references, `per_reference` of `types` each, in turn, so that every type is used equally often
    (within one) and no reference gets a type twice."""
    per_reference = min(per_reference, len(types))
    return [tuple(types[(per_reference * k + m) % len(types)] for m in range(per_reference)) for k in range(count)]


def distort_references(
    references: Sequence[tuple[str, Sequence[int]]],
    levels: Sequence[int],
    pristine_dir: Path,
    out_dir: Path,
    assignment_csv: Path,
    seed: int,
) -> pd.DataFrame:
    """Distorts each reference (`<name>.png` in `pristine_dir`) with its types into `out_dir` through the
    `deepfl-distort` job (`deepfl.generation.generate`: one process per core, resumable, names
    `<name>_<TT>_<LL>.png`), each (reference, type) row of `assignment_csv`, which this writes; returns the manifest
    rows of `levels` (the job makes all five)."""
    from deepfl.generation import generate, output_name

    rows = [(f"{name}.png", t) for name, types in references for t in types]
    text = "ref_im,dist_type\n" + "".join(f"{name},{t}\n" for name, t in rows)
    if not assignment_csv.is_file() or assignment_csv.read_text(encoding="utf-8") != text:
        atomic_write_bytes(assignment_csv, text.encode("utf-8"))
    generate(pristine_dir, out_dir, seed=seed, assignment_csv=assignment_csv, on_error="stop")
    return pd.DataFrame(
        [
            {"dist_im": output_name(name, t, lv, "png"), "ref_im": name, "dist_type": t, "dist_level": lv}
            for name, t in rows
            for lv in levels
        ]
    )


def standin_note(target: str) -> str:
    """The line the demo prints before its comparison: what the stand-in target is and what it is not."""
    return (
        f"No human opinion scores of these images exist, so the MLP is trained on a STAND-IN target: "
        f"{STANDIN_TARGETS[target]}. The figures below measure agreement with that stand-in, not with human "
        "opinion of these images."
    )


def standin_scores(target: str, types: Sequence[int] | np.ndarray, levels: Sequence[int] | np.ndarray) -> np.ndarray:
    """The stand-in target `target` (see STANDIN_TARGETS) of images of the given distortion types and levels."""
    if target == "standin_dmos":
        from deepfl.kadid_opinion import type_level_dmos

        return type_level_dmos(types, levels)
    if target == "standin_level":
        return 1.0 - (np.asarray(levels, dtype=np.float64) - 1.0) / 4.0
    raise ValueError(f"target: must be one of {sorted(STANDIN_TARGETS)}, got {target!r}")


def best_fr_metric(weak_labels: pd.DataFrame, target: np.ndarray) -> tuple[str, float]:
    """The FR metric whose scores follow `target` best (SROCC, sign-corrected), on stage-1 images."""
    from deepfl.evaluation import srocc
    from deepfl.fr import LOWER_IS_BETTER, METRICS

    found = {
        m: srocc(-weak_labels[m] if m in LOWER_IS_BETTER else weak_labels[m], target)
        for m in METRICS
        if m in weak_labels.columns
    }
    best = max(found, key=lambda m: found[m])
    return best, found[best]


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    atomic_write_bytes(path, frame.to_csv(index=False, quoting=csv.QUOTE_MINIMAL).encode("utf-8"))


def _comparison_plot(
    comparison: pd.DataFrame, per_split: dict[str, pd.DataFrame], path: Path, title: str, target: str
) -> None:
    """Bars: median test SROCC of each feature set; dots: its per-split values."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4.2), dpi=100)
    axes = figure.add_subplot(1, 1, 1)
    names = list(comparison["features"])
    axes.bar(
        range(len(names)),
        comparison["srocc"],
        color=["C0", "C7", "C2"][: len(names)],
        alpha=0.8,
        label="median over splits",
    )
    for i, name in enumerate(names):
        values = per_split[name]["srocc"].to_numpy()
        axes.scatter(
            np.full(values.size, i), values, color="k", s=14, zorder=3, label="one split's test set" if i == 0 else None
        )
    axes.set_xticks(range(len(names)), names)
    axes.set_ylabel(f"SROCC with {target} (held-out photos)")
    axes.set_ylim(min(0.0, float(np.nanmin([per_split[n]["srocc"].min() for n in names])) - 0.05), 1.0)
    axes.axhline(0.0, color="k", lw=0.6)
    axes.set_title(title, fontsize=10)
    axes.legend(loc="upper left", fontsize=8)
    axes.grid(True, axis="y", alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())


def demo_settings(config: DemoConfig) -> dict:
    """The settings a rerun into the same out_dir must share (all of DemoConfig)."""
    return json.loads(json.dumps(asdict(config)))


def _stage1_config(weak_labels: Path, image_root: Path, config: DemoConfig):
    from deepfl.training import MultitaskConfig

    return MultitaskConfig(
        weak_labels=str(weak_labels),
        image_root=str(image_root),
        val_fraction=config.val_fraction,
        image_size=None,
        crop_size=config.train_crop,
        batch_size=config.train_batch,
        epochs=config.train_epochs,
        learning_rate=config.learning_rate,
        lr_schedule=config.lr_schedule,
        weights="none",
        arch=config.arch,
        jit_compile=False,
        run_eagerly=config.arch == PAPER_ARCHITECTURE,
        seed=config.seed,
        tensorboard=False,
        progress=False,
    )


def run_demo(
    out_dir: str | os.PathLike = "demo_out",
    config: DemoConfig = DemoConfig(),
    echo: Callable[[str], None] = print,
    keep_checkpoints: bool = False,
    overwrite: bool = False,
) -> DemoResult:
    """Runs the whole story into `out_dir` (see the module docstring); returns the comparison and the rest.

    A rerun with the same settings reuses every finished step; other settings raise `SettingsChanged` (naming
    the differences) unless `overwrite`, which first removes the earlier run's outputs. The stage-1 resume state
    (`multitask/checkpoints`) is deleted once the model is written, unless `keep_checkpoints`.
    """
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        remove_outputs(out, OUTPUTS)
    check_settings(out / SETTINGS_FILE, demo_settings(config), output=out)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[step] = now - clock
        clock = now
        echo(f"[{step}] done in {timings[step]:.1f} s")

    if config.arch != PAPER_ARCHITECTURE:
        echo(
            f"backbone: '{config.arch}', a small CNN with the MLSP interface, NOT the paper's InceptionResNetV2 "
            "(which cannot learn the weak labels on 2 CPU cores in minutes); "
            f"--arch={PAPER_ARCHITECTURE} tells the same story with the paper's network, much more slowly."
        )

    # 1-2. Crops of the bundled photos and their distorted versions.
    held = bundled_photos(config.held_out_photos)
    stage1_names = config.stage1_photos or tuple(
        n for n in SKIMAGE_PHOTOS + SKLEARN_PHOTOS + MATPLOTLIB_PHOTOS if n not in config.held_out_photos
    )
    stage1_photos = bundled_photos(stage1_names)
    if len(held) < 5 or len(stage1_photos) < 2:
        raise ValueError(
            f"photos: need >= 5 held-out and >= 2 stage-1 photos, this installation bundles "
            f"{len(held)} and {len(stage1_photos)}"
        )
    pristine, distorted = out / "pristine", out / "distorted"

    stage1 = [
        (f"{name}_{k}", name, crop)
        for i, (name, photo) in enumerate(stage1_photos.items())
        for k, crop in enumerate(
            random_crops(photo, config.size, config.crops, np.random.default_rng([config.seed, i]))
        )
    ]
    stage2 = [
        (f"{name}_{k}", name, crop)
        for name, photo in held.items()
        for k, crop in enumerate(photo_crops(photo, config.size, config.held_out_crops))
    ]
    for ref, _, image in stage1 + stage2:
        if not (pristine / f"{ref}.png").exists():
            write_image(pristine / f"{ref}.png", image)
    echo(
        f"stage 1 (weak labels): {len(stage1)} crops of {len(stage1_photos)} photos; held out: {len(stage2)} crops "
        f"of {len(held)} photos ({', '.join(held)})"
    )
    stage1_types = rotating_types(len(stage1), config.types, config.types_per_crop)
    references = [(r, types) for (r, _, _), types in zip(stage1, stage1_types)]
    references += [(r, config.types) for r, _, _ in stage2]
    manifest = distort_references(references, config.levels, pristine, distorted, out / ASSIGNMENT_FILE, config.seed)
    is_stage1 = manifest["ref_im"].isin([f"{r}.png" for r, _, _ in stage1])
    manifest1, manifest2 = manifest[is_stage1].reset_index(drop=True), manifest[~is_stage1].reset_index(drop=True)
    for manifest in (manifest1, manifest2):  # both stand-ins of every image, for whoever wants to compare them
        for name in STANDIN_TARGETS:
            manifest[name] = standin_scores(name, manifest["dist_type"], manifest["dist_level"])
    _write_csv(manifest1, out / "manifest_stage1.csv")
    _write_csv(manifest2, out / "manifest_stage2.csv")
    lap("distort")

    # TensorFlow only from here: the distort job's worker processes are forked from a process without its threads.
    import keras

    from deepfl import features, labeling, protocol, reporting
    from deepfl.export import export_model
    from deepfl.fileio import load_model_file
    from deepfl.models import build_backbone, mlsp_extractor
    from deepfl.prediction import format_scores, load_scorer, score_files
    from deepfl.training import run_multitask

    # 3. Weak labels of the stage-1 pairs; the FR metric that follows the stand-in best, on the held-out pairs.
    summary = labeling.label_pairs(
        manifest1[["dist_im", "ref_im"]], distorted, out / "weak_labels.csv", metrics=config.metrics, ref_root=pristine
    )
    echo(str(summary))
    if not (out / "weak_labels.png").exists():
        labels_plot = reporting.plot_labels_by_level(
            out / "weak_labels.csv", out / "manifest_stage1.csv", out / "weak_labels.png"
        )
        echo(f"weak labels by distortion level, per metric and type: {labels_plot}")
    weak = pd.read_csv(out / "weak_labels.csv").merge(manifest1, on=["dist_im", "ref_im"])
    target = config.target
    oracle, oracle_srocc = best_fr_metric(weak, weak[target].to_numpy())
    echo(
        f"fr_oracle: {oracle} follows {target} best on the stage-1 images (SROCC {oracle_srocc:.3f}); "
        "scoring the held-out images with it (it needs their references)"
    )
    labeling.label_pairs(
        manifest2[["dist_im", "ref_im"]], distorted, out / "held_out_fr.csv", metrics=[oracle], ref_root=pristine
    )
    lap("label")

    # 4. Stage 1: the multi-task model on the weak labels (the job saves its final and best models without
    # optimizer state, deletes its resume state at the end unless kept, and returns at once when finished).
    multitask_dir = out / "multitask"
    run_multitask(
        _stage1_config(out / "weak_labels.csv", distorted, config), multitask_dir, keep_checkpoints=keep_checkpoints
    )
    model = load_model_file(multitask_dir / "model.keras")
    history = pd.read_csv(multitask_dir / "history.csv")
    echo(
        "stage 1, per epoch (validation = held-back stage-1 crops): "
        + ", ".join(f"{int(r.epoch)}: loss {r.loss:.3f}, val_srocc {r.val_srocc:.3f}" for r in history.itertuples())
    )
    lap("train")

    # 5. MLSP features of the held-out images: trained backbone, and the same backbone untrained.
    table = pd.DataFrame(
        {
            "image": [str(distorted / n) for n in manifest2["dist_im"]],
            "ref": [str(pristine / n) for n in manifest2["ref_im"]],
            "content": [Path(n).stem.rsplit("_", 1)[0] for n in manifest2["ref_im"]],  # the photo: crops stay together
            "raw_score": manifest2[target].to_numpy(dtype=np.float64),
            "split": "",
        }
    )
    table["score"] = table["raw_score"]
    low, high = (1.0, 5.0) if target == "standin_dmos" else (0.0, 1.0)
    table.attrs.update(dataset=target, score_range=(low, high), lower_better=False)
    paths = table["image"].tolist()
    keras.utils.set_random_seed(config.seed)  # the initialisation stage 1 started from (run_multitask's seed)
    untrained = build_backbone(weights=None, input_shape=(None, None, 3), arch=config.arch, seed=config.seed)
    extractors = {
        "weak_supervised": (mlsp_extractor(model, input_shape=(None, None, 3)), str(multitask_dir / "model.keras")),
        "random_init": (untrained, f"{config.arch} random init, seed {config.seed}"),
    }
    feature_sets = {}
    for name, (extractor, source) in extractors.items():
        cache = out / "features" / f"{name}.h5"
        features.extract_to_cache(extractor, paths, cache, batch_size=25, source=source)
        feature_sets[name] = features.load_features(cache, paths)
    fr_scores = pd.read_csv(out / "held_out_fr.csv").set_index("dist_im")[oracle]
    column = fr_scores.loc[manifest2["dist_im"]].to_numpy(np.float64)
    feature_sets["fr_oracle"] = ((column - column.mean()) / (column.std() or 1.0))[:, None].astype(np.float32)
    echo(
        "features: "
        + ", ".join(f"{k} {v.shape[1]}-dim" for k, v in feature_sets.items())
        + f" for {len(paths)} held-out images"
    )
    lap("features")

    # 6. The same MLP protocol on each feature set, same content-aware splits, stand-in target.
    echo(standin_note(target))
    head_config = protocol.HeadConfig(
        hidden=config.mlp_hidden,
        dropout=config.mlp_dropout,
        epochs=config.mlp_epochs,
        batch_size=config.mlp_batch,
        learning_rates=config.mlp_learning_rates,
        standardize_features=config.mlp_standardize,
        seed=config.seed,
    )
    splits = protocol.table_splits(table, config.num_splits, config.seed)
    per_split, rows = {}, []
    for name in FEATURE_SETS:
        mlp_dir = out / "mlp" / name
        if (mlp_dir / "summary.csv").exists() and (mlp_dir / "per_split.csv").exists():
            per_split[name] = pd.read_csv(mlp_dir / "per_split.csv")
            summary_table = pd.read_csv(mlp_dir / "summary.csv").set_index("statistic")
        else:
            result = protocol.run_and_report(
                table,
                feature_sets[name],
                splits,
                head_config,
                mlp_dir,
                name="head",
                title=f"{name} features, held-out photos, target {target}",
                score_label=f"{target} (stand-in target)",
            )
            per_split[name], summary_table = result.per_split, result.summary
        median = summary_table.loc["median"]
        rows.append(
            {
                "features": name,
                "srocc": median["srocc"],
                "plcc": median["plcc"],
                "plcc_logistic": median["plcc_logistic"],
                "krocc": median["krocc"],
                "rmse": median["rmse"],
                "srocc_min": per_split[name]["srocc"].min(),
                "srocc_max": per_split[name]["srocc"].max(),
                "splits": len(per_split[name]),
                "dim": feature_sets[name].shape[1],
                "source": {
                    "weak_supervised": f"{config.arch} trained on the weak labels",
                    "random_init": f"{config.arch}, random weights",
                    "fr_oracle": f"FR metric {oracle} (needs the reference)",
                }[name],
            }
        )
    comparison = pd.DataFrame(rows)
    reporting.write_table(
        comparison, out, "comparison", f"Held-out photos, target {target}: median over {config.num_splits} splits"
    )
    _comparison_plot(
        comparison,
        per_split,
        out / "comparison.png",
        f"MLSP of '{config.arch}': weak-label training vs random init, {len(held)} held-out photos",
        target,
    )
    echo(
        "comparison (test sets of content-aware splits; SROCC etc. are medians over splits):\n"
        + comparison[["features", "srocc", "plcc", "krocc", "rmse", "srocc_min", "srocc_max", "dim"]].to_string(
            index=False, float_format=lambda v: f"{v:.3f}"
        )
    )
    lap("mlp")

    # 7. One-file export (weak-supervised backbone + its first head) and the predict entry point on one image.
    exported = out / "deepfl_iqa.keras"
    if not exported.exists():
        export_model(model, out / "mlp" / "weak_supervised" / "head_split0.keras", exported)
    image = table["image"].iloc[0]
    scored, failed = score_files([image], load_scorer(exported))
    if failed:
        raise ValueError(f"image: {failed[0]} could not be scored")
    atomic_write_bytes(out / "prediction.csv", format_scores(scored, "csv").encode("utf-8"))
    echo(f"deepfl-predict --model {exported} {image}\n" + format_scores(scored))
    lap("export+predict")
    total = sum(timings.values())
    echo(f"total {total:.1f} s; every output is under {out}")
    report = reporting.to_markdown(pd.DataFrame([{"step": k, "seconds": v} for k, v in timings.items()]))
    atomic_write_bytes(out / "timings.md", report.encode("utf-8"))
    return DemoResult(out, comparison, exported, scored, timings)
