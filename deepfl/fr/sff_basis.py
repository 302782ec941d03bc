"""Learns the SFF feature detector: an ICA basis of 8x8 colour patches from natural photographs.

SFF (Chang et al. 2013) compares images through the responses of a small ICA "simple cell" matrix W learned
from natural image patches (the authors' `TrainW(18000, 8, 8)`: 18,000 random 8x8 RGB patches, per-patch DC
removed, PCA whitening to 8 dimensions, FastICA with tanh, W = W_ica @ V). The authors' training photographs
cannot be shipped, so we learn W the same way, with scikit-learn's FastICA, on colour photographs that ship
inside installed packages (scikit-image, scikit-learn, matplotlib). Every random step is seeded.

Patch vectors use MATLAB's column-major order (row index fastest, then column, then channel), so that a W learned
here and the authors' `W.mat` are interchangeable in `deepfl.fr.sff`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

DEFAULT_PATH = Path(__file__).with_name("data") / "sff_ica.npz"


def embedded_training_images() -> list[tuple[str, np.ndarray]]:
    """The natural colour photographs shipped with scikit-image, scikit-learn and matplotlib (name, HxWx3 uint8)."""
    import matplotlib
    from PIL import Image
    from skimage import data
    from sklearn.datasets import load_sample_images

    images = [
        (f"skimage.data.{name}", np.asarray(getattr(data, name)()))
        for name in ("astronaut", "chelsea", "coffee", "rocket")
    ]
    samples = load_sample_images()
    for filename, image in zip(samples.filenames, samples.images):
        images.append((f"sklearn.datasets/{os.path.basename(filename)}", np.asarray(image)))
    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    with Image.open(hopper) as pil_image:
        images.append(("matplotlib/sample_data/grace_hopper.jpg", np.asarray(pil_image.convert("RGB"))))
    return images


def patches_to_vectors(patches: np.ndarray) -> np.ndarray:
    """(..., p, p, 3) patches -> (..., 3*p*p) vectors in MATLAB column-major order (rows fastest)."""
    p = patches.shape[-2]
    moved = np.swapaxes(patches, -3, -2)  # (..., col, row, ch)
    moved = np.moveaxis(moved, -1, -3)  # (..., ch, col, row)
    return moved.reshape(*patches.shape[:-3], 3 * p * p)


def sample_patches(
    images: Sequence[np.ndarray], num_patches: int = 18000, patch_size: int = 8, rng: int | np.random.Generator = 0
) -> np.ndarray:
    """Draws `num_patches` random patches spread evenly over `images` (as the original `sampleimages.m`).

    Returns float64 (num_patches, 3*patch_size**2) vectors, MATLAB column-major order.
    """
    if num_patches < len(images):
        raise ValueError(f"num_patches: need at least one per image ({len(images)}), got {num_patches}")
    if patch_size < 2:
        raise ValueError(f"patch_size: must be >= 2, got {patch_size}")
    rng = np.random.default_rng(rng)
    per_image = num_patches // len(images)
    out = []
    for index, image in enumerate(images):
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"images[{index}]: expected HxWx3, got shape {image.shape}")
        count = num_patches - per_image * (len(images) - 1) if index == len(images) - 1 else per_image
        height, width = image.shape[:2]
        ys = rng.integers(0, height - patch_size + 1, size=count)
        xs = rng.integers(0, width - patch_size + 1, size=count)
        offsets = np.arange(patch_size)
        rows = ys[:, None, None] + offsets[None, :, None]
        cols = xs[:, None, None] + offsets[None, None, :]
        out.append(image[rows, cols].astype(np.float64))  # (count, p, p, 3)
    return patches_to_vectors(np.concatenate(out))


def learn_sff_basis(
    images: Sequence[np.ndarray],
    num_patches: int = 18000,
    patch_size: int = 8,
    num_components: int = 8,
    seed: int = 0,
    max_iter: int = 2000,
) -> np.ndarray:
    """Learns the SFF detector W (num_components x 3*patch_size**2) by PCA whitening + symmetric FastICA (tanh).

    Mirrors `TrainW.m`: random patches, per-patch DC removal, whitening to `num_components` dimensions,
    FastICA with the tanh (logcosh) contrast, W mapping raw (DC-free) patches to unit-variance sources.
    """
    from sklearn.decomposition import FastICA

    if num_components < 1 or num_components > 3 * patch_size**2:
        raise ValueError(f"num_components: must be in [1, {3 * patch_size**2}], got {num_components}")
    vectors = sample_patches(images, num_patches, patch_size, rng=seed)
    vectors -= vectors.mean(axis=1, keepdims=True)  # removeDC.m: per-patch mean
    ica = FastICA(
        n_components=num_components,
        algorithm="parallel",
        whiten="unit-variance",
        fun="logcosh",
        max_iter=max_iter,
        tol=1e-6,
        random_state=seed,
        whiten_solver="svd",
    )
    ica.fit(vectors)
    w = np.asarray(ica.components_, dtype=np.float64)
    # Fix the sign/order ambiguity of ICA so the saved matrix is canonical (SFF is invariant to both).
    w *= np.sign(w[np.arange(len(w)), np.argmax(np.abs(w), axis=1)])[:, None]
    order = np.argsort(-np.abs(w).max(axis=1), kind="stable")
    return w[order]


def save_basis(path: str | os.PathLike, w: np.ndarray, **metadata) -> None:
    """Saves W (key `W`) and string metadata (how it was made) to an .npz file."""
    np.savez_compressed(path, W=np.asarray(w, np.float64), **{k: np.asarray(str(v)) for k, v in metadata.items()})


def load_basis(path: str | os.PathLike | None = None) -> np.ndarray:
    """Loads W from an .npz (key `W`) or a MATLAB .mat (variable `W`); default: the shipped `sff_ica.npz`."""
    path = Path(path) if path is not None else DEFAULT_PATH
    if not path.is_file():
        raise FileNotFoundError(f"{path}: SFF basis not found (make it with python -m deepfl.cli.learn_sff_basis)")
    if path.suffix.lower() == ".mat":
        from scipy.io import loadmat

        w = loadmat(str(path))["W"]
    else:
        with np.load(path) as data:
            w = data["W"]
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] % 3 or int(round((w.shape[1] // 3) ** 0.5)) ** 2 != w.shape[1] // 3:
        raise ValueError(f"{path}: W must be k x 3*p*p, got shape {w.shape}")
    return w
