"""Miniature datasets and readers of job outputs that several test modules share."""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np

import badinputs


def write_mini_kadid(root: Path, contents: int = 6, per_ref: int = 3) -> list[list[str]]:
    """A miniature KADID-10k layout in `root`: `contents` references with `per_ref` distorted images each
    (textured 48x64 PNGs in images/) and dmos.csv; returns the CSV rows."""
    images = root / "images"
    images.mkdir(parents=True)
    rows = []
    rng = np.random.default_rng(0)
    for i in range(contents):
        ref = f"I{i + 1:02d}.png"
        (images / ref).write_bytes(badinputs.png_bytes(badinputs.textured_image(48, 64, i)))
        for j in range(per_ref):
            name = f"I{i + 1:02d}_{j + 1:02d}_01.png"
            (images / name).write_bytes(badinputs.png_bytes(badinputs.textured_image(48, 64, 100 + 10 * i + j)))
            rows.append([name, ref, f"{rng.uniform(1, 5):.3f}", "0.5"])
    badinputs.write_csv(root / "dmos.csv", ["dist_img", "ref_img", "dmos", "var"], rows)
    return rows


def write_ratings_study(root: Path, contents: int = 6, per_content: int = 3) -> list[list[str]]:
    """A folder of one's own rated images, as `deepfl.data.read_ratings` reads it: textured 48x64 PNGs in
    photos/, ratings.csv (image, score, content; scores 1..5) and ratings.json (score_range [1, 5]); returns the
    CSV rows."""
    photos = root / "photos"
    photos.mkdir(parents=True)
    rows = []
    rng = np.random.default_rng(1)
    for i in range(contents):
        for j in range(per_content):
            name = f"photos/scene{i + 1}_{j + 1}.png"
            (root / name).write_bytes(badinputs.png_bytes(badinputs.textured_image(48, 64, 200 + 10 * i + j)))
            rows.append([name, f"{rng.uniform(1, 5):.3f}", f"scene{i + 1}"])
    badinputs.write_csv(root / "ratings.csv", ["image", "score", "content"], rows)
    (root / "ratings.json").write_text('{"score_range": [1, 5], "lower_better": false}\n')
    return rows


LIVE_REFERENCE_ENTRIES = (0, 300, 700)  # entries of write_mini_live flagged in `orgs` (a reference, DMOS 0)


def write_mini_koniq(root: Path, with_sets: bool = True) -> Path:
    """A KonIQ-10k layout of 10 tiny images (official split 6/2/2 from `koniq10k_distributions_sets.csv`, left out
    when not `with_sets`)."""
    from deepfl.images import write_image

    names = [f"{1000 + i}.jpg" for i in range(10)]
    sets = ["training"] * 6 + ["validation"] * 2 + ["test"] * 2
    header = "image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,MOS_zscore"
    rows = [f"{n},1,2,3,4,5,15,{1.5 + i * 0.3:.4f},0.7,{20 + i}" for i, n in enumerate(names)]
    root.mkdir(parents=True, exist_ok=True)
    (root / "koniq10k_scores_and_distributions.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    if with_sets:
        rows = [f"{n},1,2,3,4,5,15,{1.5 + i * 0.3:.4f},0.7,{s}" for i, (n, s) in enumerate(zip(names, sets))]
        (root / "koniq10k_distributions_sets.csv").write_text(
            "image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,set\n" + "\n".join(rows) + "\n"
        )
    (root / "1024x768").mkdir(exist_ok=True)
    for i, n in enumerate(names):
        write_image(root / "1024x768" / n, np.full((4, 6, 3), 100 + 10 * i, dtype=np.uint8))
    return root


def write_mini_live(root: Path, image=None) -> Path:
    """LIVE Release 2's layout and file formats in `root`, every one of its 982 entries (the reader insists):
    dmos.mat (`dmos`, `orgs`: three reference entries, `LIVE_REFERENCE_ENTRIES`), dmos_realigned.mat (`dmos_new`,
    other values, so the two files rank the images differently), refnames_all.mat (29 references), the five
    distortion folders of `img<k>.bmp` and refimgs/. Every image is `image` (a tiny gray one by default) written
    as BMP: the readers need files, a feature cache needs decodable ones. Returns `root`."""
    import scipy.io

    from deepfl.data.readers import LIVE_FOLDERS
    from deepfl.images import write_image

    pixels = np.full((4, 6, 3), 128, np.uint8) if image is None else image
    total = sum(count for _, count in LIVE_FOLDERS)
    rng = np.random.default_rng(0)
    orgs = np.zeros(total)
    orgs[list(LIVE_REFERENCE_ENTRIES)] = 1
    dmos, realigned = rng.uniform(0, 100, total), rng.uniform(0, 100, total)
    dmos[orgs == 1] = realigned[orgs == 1] = 0
    root.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(root / "dmos.mat", {"dmos": dmos[None, :], "orgs": orgs[None, :]})
    scipy.io.savemat(root / "dmos_realigned.mat", {"dmos_new": realigned[None, :], "orgs": orgs[None, :]})
    names = np.empty((1, total), dtype=object)
    names[0, :] = [f"ref{i % 29}.bmp" for i in range(total)]
    scipy.io.savemat(root / "refnames_all.mat", {"refnames_all": names})
    for folder, count in LIVE_FOLDERS:
        (root / folder).mkdir()
        for k in range(1, count + 1):
            write_image(root / folder / f"img{k}.bmp", pixels)
    (root / "refimgs").mkdir()
    for i in range(29):
        write_image(root / "refimgs" / f"ref{i}.bmp", pixels)
    return root


def read_feature_cache(path: Path) -> tuple[list[str], np.ndarray]:
    """The keys and feature rows of an HDF5 feature cache (its first `count` rows)."""
    with h5py.File(path, "r") as file:
        count = int(file.attrs.get("count", len(file["keys"])))
        keys = [k.decode() if isinstance(k, bytes) else str(k) for k in file["keys"][:count]]
        return keys, np.asarray(file["features"][:count])


def write_weak_label_set(folder: Path, photo: np.ndarray) -> Path:
    """18 noisy crops of 6 contents of `photo` with two weak labels that fall (ssim) / rise (gmsd) with the noise,
    as `folder/labels.csv` in the KADIS layout; returns `folder`."""
    import pandas as pd

    from deepfl.images import write_image

    rng = np.random.default_rng(0)
    rows = []
    for r in range(6):
        ref = photo[(r % 2) * 40 : (r % 2) * 40 + 48, r * 12 : r * 12 + 48].astype(float)
        for level in range(1, 4):
            noisy = np.clip(ref + rng.normal(0, 12 * level, ref.shape), 0, 255).astype(np.uint8)
            name = f"c{r}_{level:02d}.png"
            write_image(folder / name, noisy)
            rows.append((name, f"c{r}.png", 1 - 0.1 * level + rng.normal(0, 0.01), 0.05 * level))
    pd.DataFrame(rows, columns=["dist_im", "ref_im", "ssim", "gmsd"]).to_csv(folder / "labels.csv", index=False)
    return folder


def train_multitask_flags(weak_labels: Path, out_dir: Path, *flags: str) -> list[str]:
    """`deepfl-train-multitask`'s flags on a `write_weak_label_set` folder (for `killrestart.run_batch`)."""
    labels = weak_labels / "labels.csv"
    return [f"--weak_labels={labels}", f"--image_root={weak_labels}", f"--out_dir={out_dir}", *flags]


def train_multitask_command(weak_labels: Path, out_dir: Path, *flags: str) -> list[str]:
    """`deepfl-train-multitask` (as a module of this interpreter) on a `write_weak_label_set` folder."""
    return [sys.executable, "-m", "deepfl.cli.train_multitask", *train_multitask_flags(weak_labels, out_dir, *flags)]
