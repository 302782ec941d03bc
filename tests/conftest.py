"""Shared test fixtures: quiet TensorFlow, no progress bars, small real photographs from scikit-image."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("DEEPFL_NO_PROGRESS", "1")

# Importing TensorFlow before PyTorch segfaults with tensorflow 2.21 + torch 2.14 wheels (seen here: exit 139);
# the piq comparisons need both in one process, so torch (when installed) goes first.
try:
    import torch  # noqa: F401
except ImportError:
    pass

import numpy as np
import pytest

import deepfl  # noqa: E402,F401  (before any test imports TensorFlow: deepfl sets its oneDNN default)


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: one test process more than the cores this process may use (pytest.ini caps it at 4). Many tests
    wait on the job subprocesses they start (each imports TensorFlow), so a third process on 2 cores keeps them
    busy (docs/measurements.md has the suite's time with 2 and 3 processes on 2 cores)."""
    from deepfl.cpus import usable_cores

    return usable_cores() + 1


# The modules whose tests take minutes in all start first (pytest.ini: `--dist loadscope` gives each module to
# one test process, so its module-scoped fixtures, often batches of job runs, are built once; with
# `--no-loadscope-reorder` modules are handed out in collection order, not by their count of tests, which put the
# one-test documentation module last), so that none of them is left running alone at the end. Others keep
# their order.
LONGEST_MODULES = (
    "test_docs.py",
    "test_train_multitask.py",
    "test_bench_scripts.py",
    "test_reliability_train_multitask.py",
    "test_exit_codes.py",
    "test_weights_file.py",
)


def pytest_collection_modifyitems(config, items) -> None:
    rank = {name: k for k, name in enumerate(LONGEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A real 512x512 RGB photograph shipped with scikit-image (the astronaut), cropped to 384x512."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:384, :512])


@pytest.fixture(scope="session")
def small_photo() -> np.ndarray:
    """A 96x128 real photograph (scikit-image's cat), for fast tests."""
    from skimage import data

    return np.ascontiguousarray(data.chelsea()[100:196, 150:278])
