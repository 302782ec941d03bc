"""Strength and speed of the type-15 denoiser (our DnCNN stand-in) against the earlier per-channel NL-means.

For each level's noise variance, Gaussian noise is added to a clean photo (as `imnoise`, clipped) and denoised
by: non-local means per channel with a 7x7 search window (the first implementation), NL-means with a joint RGB
patch distance and the same window, the shipped choice (joint, 5x5 window) as scikit-image computes it, and the
shipped compiled kernel (`deepfl.distortions._kernels.nlm.nl_means_fast`, which must give the same values:
checked on every image).
Prints CPU ms per image and PSNR (dB) against the clean image, side by side; higher PSNR = stronger denoising.

    python bench/denoise.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from skimage import data
from skimage.restoration import denoise_nl_means

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deepfl.distortions import DISTORTIONS  # noqa: E402
from deepfl.distortions._ranges import mapmm  # noqa: E402
from deepfl.distortions.noise import nl_means as shipped  # noqa: E402


def per_channel(noisy: np.ndarray, sigma: float, window: int) -> np.ndarray:
    out = np.empty_like(noisy)
    for c in range(3):
        out[..., c] = denoise_nl_means(
            noisy[..., c], h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=window // 2, fast_mode=True
        )
    return out


def joint(noisy: np.ndarray, sigma: float, window: int) -> np.ndarray:
    return denoise_nl_means(
        noisy.astype(np.float32),
        h=0.8 * sigma,
        sigma=sigma,
        patch_size=5,
        patch_distance=window // 2,
        fast_mode=True,
        channel_axis=-1,
    ).astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def main() -> None:
    shipped(np.zeros((16, 16, 3)), 0.1)  # compile (or load) the kernel outside the timings
    variants = {
        "per channel 7x7": lambda n, s: per_channel(n, s, 7),
        "joint 7x7": lambda n, s: joint(n, s, 7),
        "joint 5x5 scikit-image": lambda n, s: joint(n, s, 5),
        "joint 5x5 kernel (shipped)": shipped,
    }
    print("| photo | level (var) | noisy PSNR | " + " | ".join(f"{k} ms / PSNR" for k in variants) + " |")
    print("|---" * (3 + len(variants)) + "|")
    for name in ("astronaut", "coffee"):
        x = mapmm(np.ascontiguousarray(getattr(data, name)()[:384, :512]).astype(np.float64))
        for level, var in enumerate(DISTORTIONS[15].levels, start=1):
            sigma = float(np.sqrt(var))
            noisy = np.clip(x + sigma * np.random.default_rng(level).standard_normal(x.shape), 0.0, 1.0)
            cells, outs = [], []
            for denoiser in variants.values():
                start = time.process_time()
                outs.append(denoiser(noisy, sigma))
                cells.append(f"{(time.process_time() - start) * 1000:.0f} / {psnr(outs[-1], x):.2f}")
            if not np.array_equal(outs[-1], outs[-2]):
                raise AssertionError(f"{name} level {level}: the kernel differs from scikit-image")
            print(f"| {name} | {level} ({var}) | {psnr(noisy, x):.2f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
