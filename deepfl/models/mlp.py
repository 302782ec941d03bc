"""The paper's quality-prediction head on MLSP features (stage 2 of DeepFL-IQA).

Dense 2048 (ReLU) - BN - Dropout .25 - Dense 1024 (ReLU) - BN - Dropout .25 - Dense 256 (ReLU) - BN - Dropout .5
- Dense 1 (linear), trained with MSE and Adam. Pure Keras 3, so it runs on any backend.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from deepfl.paper import MLSP_DIM, STAGE2_DROPOUT, STAGE2_HIDDEN

# Layer i's initialiser uses seed + i; its dropout mask uses seed + DROPOUT_SEED_OFFSET + i, so the two streams
# never share a seed.
DROPOUT_SEED_OFFSET = 100


def build_mlp(
    input_dim: int = MLSP_DIM,
    hidden: Sequence[int] = STAGE2_HIDDEN,
    dropout: Sequence[float] = STAGE2_DROPOUT,
    batch_norm: bool = True,
    seed: int | None = 0,
    name: str = "mlp_head",
    standardize: tuple[np.ndarray, np.ndarray] | None = None,
) -> keras.Model:
    """Builds the MLP head: features (input_dim floats) -> one linear quality score.

    `hidden`/`dropout` default to the paper's sizes; smaller ones are for tests and the demo. `seed` makes the
    (He-uniform) initialisation and dropout masks reproducible. `standardize` = (mean, variance) per feature puts a
    fixed z-scoring layer in front (the head then carries it: saved heads and exports take raw features); the paper's
    head has none. The model is returned uncompiled.
    """
    if int(input_dim) < 1:
        raise ValueError(f"input_dim: must be >= 1, got {input_dim}")
    hidden = [int(h) for h in hidden]
    dropout = [float(d) for d in dropout]
    if len(hidden) != len(dropout):
        raise ValueError(f"dropout: needs one rate per hidden layer ({len(hidden)}), got {len(dropout)}")
    if any(h < 1 for h in hidden):
        raise ValueError(f"hidden: layer sizes must be >= 1, got {hidden}")
    if any(not 0.0 <= d < 1.0 for d in dropout):
        raise ValueError(f"dropout: rates must be in [0, 1), got {dropout}")

    def init(i: int):
        return keras.initializers.HeUniform(seed=None if seed is None else seed + i)

    inputs = keras.Input(shape=(int(input_dim),), name="mlsp_features")
    x = inputs
    if standardize is not None:
        mean, variance = (np.asarray(v, np.float64).reshape(-1) for v in standardize)
        if mean.shape != (int(input_dim),) or variance.shape != mean.shape or np.any(~(variance > 0)):
            raise ValueError(f"standardize: needs {int(input_dim)} means and positive variances")
        x = keras.layers.Normalization(mean=mean, variance=variance, name="standardize")(x)
    for i, (units, rate) in enumerate(zip(hidden, dropout)):
        x = keras.layers.Dense(units, activation="relu", kernel_initializer=init(i), name=f"fc{units}_{i}")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"bn_{i}")(x)
        if rate > 0:
            mask_seed = None if seed is None else seed + DROPOUT_SEED_OFFSET + i
            x = keras.layers.Dropout(rate, seed=mask_seed, name=f"dropout_{i}")(x)
    outputs = keras.layers.Dense(1, activation="linear", kernel_initializer=init(len(hidden)), name="score")(x)
    return keras.Model(inputs, outputs, name=name)


def compile_mlp(
    model: keras.Model, learning_rate: float, jit_compile: bool = False, steps_per_execution: int = 1
) -> keras.Model:
    """Compiles the head as in the paper: MSE loss, Adam (beta 0.9/0.999) at `learning_rate`.

    XLA is off by default: on CPU its compile time per head outweighs its gain for a head trained in minutes;
    pass `jit_compile=True` on accelerators. `steps_per_execution` > 1 runs that many training steps per call
    (same updates in the same order; less Python overhead per step for a small head).
    """
    if not learning_rate > 0:
        raise ValueError(f"learning_rate: must be > 0, got {learning_rate}")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate, beta_1=0.9, beta_2=0.999),
        loss="mse",
        jit_compile=jit_compile,
        steps_per_execution=int(steps_per_execution),
    )
    return model
