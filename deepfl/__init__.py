"""deepfl: DeepFL-IQA (Lin, Hosu, Saupe 2020) reimplemented and extended in TensorFlow 2 / Keras 3.

Every public submodule is reachable as an attribute (`deepfl.protocol`, `deepfl.fr`, ...) and imported on first
use, so light jobs (distorting images) do not pay TensorFlow's import time. `deepfl.predict` is
`deepfl.prediction.predict`.
"""

import importlib
import importlib.util
import os
import pkgutil
from typing import Any

__version__ = "0.1.0"

# TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX-512 features (most recent Intel Xeons).
# Elsewhere (AMD EPYC, other AVX2-only CPUs: common on clusters) it falls back to Eigen kernels, whose depthwise
# convolutions (the separable filters of every FR metric) are up to 18x slower. TensorFlow reads the variable at its
# import, so this works when deepfl is imported first; a value the user has set is kept ("0" turns oneDNN off).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def __getattr__(name: str) -> Any:
    if name == "predict":
        return importlib.import_module("deepfl.prediction").predict
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'deepfl' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public submodules, `predict` and `__version__` once each (a submodule already imported is also a
    global; the helpers this file imports are not deepfl's API)."""
    public = {info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")}
    return sorted(public | {"predict", "__version__"})
