"""The resumable state of a stage-1 run in `out_dir/checkpoints`: a weights file (with the optimizer state) and
`state.json` (epoch, phase, best score, position in the training stream, dropout RNG states, skip count).

Keras does not save the random seed generators' states (dropout masks) with the weights, so a resumed run would
replay the masks of its first steps; `state.json` stores them beside the weights.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from deepfl.fileio import atomic_output, atomic_write_bytes

if TYPE_CHECKING:
    import keras

STATE_FILE = "state.json"
_WEIGHTS_GLOB = "epoch_*.weights.h5"


def read_state(checkpoint_dir: str | os.PathLike) -> dict | None:
    """The last checkpoint's state (epoch done, weights file, best score), or None when there is none."""
    path = Path(checkpoint_dir) / STATE_FILE
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    if not (Path(checkpoint_dir) / state["weights"]).exists():
        raise ValueError(f"checkpoint: {path} names {state['weights']}, which is missing")
    return state


def write_checkpoint(
    model: keras.Model,
    checkpoint_dir: Path,
    epochs_done: int,
    backbone_frozen: bool,
    best: float | None,
    best_epoch: int | None,
    position: int,
    train_skipped: int,
    keep: int = 1,
) -> None:
    """Saves the weights (with the optimizer state) after `epochs_done` epochs, then `state.json` naming them,
    each atomically; keeps the newest `keep` weights files.

    `position` is the number of training-stream elements consumed (where a resumed input pipeline starts),
    `train_skipped` the corrupt training images skipped so far, `best`/`best_epoch` the best validation score.
    """
    name = f"epoch_{epochs_done:04d}.weights.h5"
    with atomic_output(checkpoint_dir / name, suffix=".tmp.weights.h5") as tmp:
        model.save_weights(str(tmp))  # holds the optimizer state too
    state = {
        "epoch": epochs_done,
        "weights": name,
        "backbone_frozen": backbone_frozen,
        "best": best,
        "best_epoch": best_epoch,
        "position": position,
        "seed_states": seed_states(model),
        "train_skipped": train_skipped,
    }
    atomic_write_bytes(checkpoint_dir / STATE_FILE, json.dumps(state, indent=1).encode())
    # The state now names the new file: older checkpoints can go.
    for old in sorted(checkpoint_dir.glob(_WEIGHTS_GLOB))[:-keep]:
        if old.name != name:
            old.unlink(missing_ok=True)


def restore_checkpoint(model: keras.Model, checkpoint_dir: str | os.PathLike, with_optimizer: bool = True) -> dict:
    """Loads the last checkpoint into a compiled `model` (weights, and the optimizer state when
    `with_optimizer`); returns its state. Call inside the strategy scope."""
    state = read_state(checkpoint_dir)
    if state is None:
        raise ValueError(f"checkpoint_dir: no {STATE_FILE} in {checkpoint_dir}")
    if with_optimizer:
        model.optimizer.build(model.trainable_variables)  # the optimizer's slots must exist to be loaded
        model.load_weights(str(Path(checkpoint_dir) / state["weights"]))
    else:
        with warnings.catch_warnings():  # "Skipping variable loading for optimizer": intended here
            warnings.simplefilter("ignore", UserWarning)
            model.load_weights(str(Path(checkpoint_dir) / state["weights"]))
    if state.get("seed_states") is not None:
        set_seed_states(model, state["seed_states"])
    return state


def seed_states(model: keras.Model) -> list[list[int]]:
    """The states of the model's random seed generators (dropout masks), in layer order."""
    return [
        [int(x) for x in np.asarray(v.numpy()).ravel()]
        for v in model.variables
        if v.path.endswith("seed_generator_state")
    ]


def set_seed_states(model: keras.Model, states: Sequence[Sequence[int]]) -> None:
    """Restores what `seed_states` returned (same architecture)."""
    variables = [v for v in model.variables if v.path.endswith("seed_generator_state")]
    if len(variables) != len(states):
        raise ValueError(f"states: {len(states)} seed generator states for a model with {len(variables)}")
    for variable, value in zip(variables, states):
        variable.assign(np.asarray(value, dtype=variable.dtype).reshape(variable.shape))
