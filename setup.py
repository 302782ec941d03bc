"""Packaging for deepfl: DeepFL-IQA (Lin, Hosu, Saupe 2020) in TensorFlow 2 / Keras 3."""

import re

from setuptools import find_packages, setup

# The version is defined once, as deepfl.__version__ (read as text: importing deepfl needs its dependencies).
VERSION = re.search(r'^__version__ = "([^"]+)"', open("deepfl/__init__.py", encoding="utf-8").read(), re.M).group(1)

# One entry per script in deepfl/cli/; each module exposes `run()` (absl app entry point). experiments/ holds
# runnable shims of the same scripts for a source checkout and is not installed.
CONSOLE_SCRIPTS = {
    "deepfl-demo": "deepfl.cli.demo:run",
    "deepfl-distort": "deepfl.cli.distort:run",
    "deepfl-label": "deepfl.cli.label:run",
    "deepfl-train-multitask": "deepfl.cli.train_multitask:run",
    "deepfl-extract-features": "deepfl.cli.extract_features:run",
    "deepfl-train-mlp": "deepfl.cli.train_mlp:run",
    "deepfl-reproduce": "deepfl.cli.reproduce:run",
    "deepfl-predict": "deepfl.cli.predict:run",
    "deepfl-export": "deepfl.cli.export:run",
}

setup(
    name="deepfl",
    version=VERSION,
    description="DeepFL-IQA: weakly supervised deep IQA features (KADIS-style data, 11 FR metrics, MLSP, MLP)",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",  # an SPDX expression (PEP 639); the text is in LICENSE
    license_files=["LICENSE"],
    python_requires=">=3.10",
    # deepfl/fr/data holds data files only; listed as a package so that setuptools ships it without warning that
    # it "would be ignored" (a folder without __init__.py is still an importable namespace package).
    packages=find_packages(include=["deepfl", "deepfl.*"]) + ["deepfl.fr.data"],
    package_data={"deepfl.fr.data": ["*.npy", "*.npz", "*.json"]},
    include_package_data=True,
    install_requires=[
        "tensorflow>=2.16,<2.22",
        "keras>=3.8,<4",  # 3.3-3.4: no per-task losses logged, 3.5-3.6: logged weighted, 3.7: MirroredStrategy fails
        "numpy>=1.26,<3",
        "pandas>=2.0,<4",
        "scipy>=1.11,<2",
        "imageio>=2.31,<3",
        "scikit-learn>=1.3,<2",
        "scikit-image>=0.22,<0.28",
        "absl-py>=2.0,<3",
        "Pillow>=11.0,<14",  # 10.x reads a TIFF with EXIF orientation 6 or 8 unturned (docs/reliability.md, session 30)
        "h5py>=3.10,<4",  # tensorflow 2.16 needs 3.10
        "matplotlib>=3.7,<4",
        "tqdm>=4.65,<5",
        "openpyxl>=3.1,<4",  # CSIQ ships its scores as csiq.DMOS.xlsx (deepfl.data.read_csiq)
        "numba>=0.60,<0.70",  # compiled per-pixel kernels of the distortions (jitter, non-local means)
        "threadpoolctl>=3.7,<4",  # one BLAS thread in the FR NumPy forms; 3.1: their docs examples ran past 600 s
        "tensorboard>=2.16,<2.22",  # TensorBoard logs of deepfl-train-multitask (tensorflow 2.21 does not pull it)
        # Pulled in by tensorflow and keras; 0.7.0 adds 1.1 s of CPU to every `import tensorflow` (its ufunc loops
        # are registered one by one, each a linear search): every job starts that much slower (docs/measurements.md).
        "ml_dtypes>=0.3.2,<0.7",
    ],
    extras_require={
        "test": [
            "pytest>=7.4,<10",
            "pytest-xdist>=3.8,<4",  # parallel test processes; pytest.ini's --no-loadscope-reorder came in 3.8
            "hypothesis>=6.80,<7",
            "piq>=0.8,<0.9",
            "torch>=2.9,<2.15",
            "torchvision>=0.24,<0.30",
            "ruff>=0.6,<1",
        ],
        # TensorFlow with its CUDA libraries from pip (Linux, NVIDIA driver installed): `pip install -e ".[gpu]"`.
        "gpu": ["tensorflow[and-cuda]>=2.16,<2.22"],
    },
    entry_points={"console_scripts": [f"{name}={target}" for name, target in CONSOLE_SCRIPTS.items()]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Processing",
    ],
)
