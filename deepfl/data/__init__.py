"""Benchmark data sets as normalised tables, content-aware splits, target normalisation and tf.data pipelines.

Readers, splits and the normaliser need only numpy/pandas/scipy; the tf.data names (`make_dataset`,
`read_image_tf`, ...) import TensorFlow on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from deepfl.data.normalization import METHODS as NORMALIZATION_METHODS
from deepfl.data.normalization import TargetNormalizer
from deepfl.data.readers import (
    DATASETS,
    READERS,
    DatasetInfo,
    canonical_name,
    read_clive,
    read_csiq,
    read_dataset,
    read_kadid10k,
    read_kadis700k,
    read_koniq10k,
    read_live,
    read_ratings,
    read_tid2013,
    read_weak_labels,
    reader_options,
)
from deepfl.data.splits import (
    check_disjoint,
    content_split,
    min_contents,
    official_split,
    repeated_splits,
    train_val_split,
)
from deepfl.data.tables import TABLE_COLUMNS, make_table, validate_table

_PIPELINE_NAMES = (
    "make_dataset",
    "read_image_tf",
    "decode_image_tf",
    "is_known_image",
    "PipelineStats",
    "find_unreadable_images",
    "iter_unreadable_images",
    "first_usable_image",
)

__all__ = [
    "DATASETS",
    "READERS",
    "DatasetInfo",
    "canonical_name",
    "read_dataset",
    "reader_options",
    "read_kadid10k",
    "read_live",
    "read_csiq",
    "read_tid2013",
    "read_koniq10k",
    "read_clive",
    "read_kadis700k",
    "read_ratings",
    "read_weak_labels",
    "content_split",
    "repeated_splits",
    "min_contents",
    "train_val_split",
    "official_split",
    "check_disjoint",
    "TargetNormalizer",
    "NORMALIZATION_METHODS",
    "TABLE_COLUMNS",
    "make_table",
    "validate_table",
    *_PIPELINE_NAMES,
]


def __getattr__(name: str) -> Any:
    if name in _PIPELINE_NAMES:
        return getattr(importlib.import_module("deepfl.data.pipeline"), name)
    raise AttributeError(f"module 'deepfl.data' has no attribute {name!r}")
