"""deepfl models, pure Keras 3 (no TensorFlow import here, so they also run under JAX and PyTorch).

`build_backbone` (InceptionResNetV2 + MLSP), `build_multitask` (stage 1: eleven FR-metric heads),
`mlsp_extractor` (features of a trained model), `build_mlp` (stage 2 head, from `deepfl.models.mlp`).
"""

from __future__ import annotations

import importlib
from typing import Any

from deepfl.architectures import default_pixel_scaling
from deepfl.models.backbone import (
    ARCHITECTURES,
    IMAGENET_WEIGHTS_FILE,
    MIN_INPUT_SIZE,
    MIXED_PRECISION_POLICIES,
    MLSP_LAYER_NAMES,
    PIXEL_SCALINGS,
    build_backbone,
    mlsp_backbone,
)
from deepfl.models.layers import MultiLevelPooling, PixelScaling
from deepfl.models.multitask import (
    TASKS,
    build_multitask,
    compile_multitask,
    get_backbone,
    mlsp_extractor,
    model_tasks,
    set_backbone_trainable,
)
from deepfl.paper import MLSP_DIM

__all__ = [
    "ARCHITECTURES",
    "IMAGENET_WEIGHTS_FILE",
    "MIN_INPUT_SIZE",
    "MIXED_PRECISION_POLICIES",
    "MLSP_DIM",
    "MLSP_LAYER_NAMES",
    "PIXEL_SCALINGS",
    "TASKS",
    "MultiLevelPooling",
    "PixelScaling",
    "build_backbone",
    "build_mlp",
    "build_multitask",
    "compile_multitask",
    "default_pixel_scaling",
    "get_backbone",
    "mlsp_backbone",
    "mlsp_extractor",
    "model_tasks",
    "set_backbone_trainable",
]


def __getattr__(name: str) -> Any:
    # build_mlp lives in deepfl.models.mlp (another module, written separately): imported on first use.
    if name == "build_mlp":
        return importlib.import_module("deepfl.models.mlp").build_mlp
    raise AttributeError(f"module 'deepfl.models' has no attribute {name!r}")
