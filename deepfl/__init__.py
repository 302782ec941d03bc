"""deepfl: DeepFL-IQA (Lin, Hosu, Saupe 2020) reimplemented and extended in TensorFlow 2 / Keras 3.

Submodules are imported lazily so that light jobs (distorting images) do not pay TensorFlow's import time.
"""

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY_SUBMODULES = ("distortions", "fr", "data", "models", "features", "evaluation", "images", "jobs", "errors")


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"deepfl.{name}")
    if name == "predict":
        return importlib.import_module("deepfl.prediction").predict
    raise AttributeError(f"module 'deepfl' has no attribute {name!r}")
