"""The DeepFL-IQA stage-1 model: MLSP backbone + one regression head per FR metric (weak label).

Each head is FC512 (ReLU) - Dropout .25 - FC256 (ReLU) - Dropout .5 - FC1 (linear), He-initialised, as in the
paper; outputs are a dict keyed by task name, so losses and targets are dicts too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras

from deepfl.fr import METRICS
from deepfl.models.backbone import BACKBONE_NAME, backbone_settings, build_backbone, dtype_policy, set_trainable
from deepfl.paper import STAGE1_LEARNING_RATE

TASKS: tuple[str, ...] = METRICS  # one head per FR metric, in the order of the KADIS-700k label columns

# Seeds of the heads: the t-th task draws from its own block, seed + SEEDS_PER_TASK * t + offset, so no two heads
# share a seed. Hidden layer i uses offset i (kernel and dropout mask); the output layer uses OUTPUT_SEED_OFFSET,
# past any hidden layer.
SEEDS_PER_TASK = 100
OUTPUT_SEED_OFFSET = 99


def _check_tasks(tasks: Sequence[str] | str) -> list[str]:
    tasks = [tasks] if isinstance(tasks, str) else list(tasks)
    if not tasks:
        raise ValueError("tasks: name at least one task")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks: must be distinct names among {TASKS}, got {tasks}")
    return tasks


def build_multitask(
    tasks: Sequence[str] | str = TASKS,
    weights: str | None = "imagenet",
    input_shape: Sequence[int | None] | None = None,
    pixel_scaling: str = "unit",
    hidden: Sequence[int] = (512, 256),
    dropout: Sequence[float] = (0.25, 0.5),
    mixed_precision: str | None = None,
    freeze_backbone: bool = False,
    arch: str = "inception_resnet_v2",
    seed: int = 0,
) -> keras.Model:
    """Builds the multi-task model: images float32 [N, H, W, 3] in [0, 255] -> {task: [N, 1] float32}.

    `tasks`: any subset of the eleven metric names (order kept). `weights`/`input_shape`/`pixel_scaling`/`arch`
    go to `build_backbone`. `mixed_precision`: None (the global policy), "float32", "mixed_bfloat16" or
    "mixed_float16" (outputs stay float32). `freeze_backbone` builds it non-trainable (warm-up of the heads;
    `set_backbone_trainable` undoes it). `seed` fixes He initialisation and dropout masks. Uncompiled; see
    `compile_multitask`.
    """
    tasks = _check_tasks(tasks)
    hidden = [int(h) for h in hidden]
    dropout = [float(d) for d in dropout]
    if len(hidden) != len(dropout) or any(h < 1 for h in hidden):
        raise ValueError(f"hidden/dropout: need equal lengths and sizes >= 1, got {hidden} / {dropout}")
    if any(not 0.0 <= d < 1.0 for d in dropout):
        raise ValueError(f"dropout: rates must be in [0, 1), got {dropout}")
    backbone = build_backbone(
        weights=weights,
        input_shape=input_shape,
        pixel_scaling=pixel_scaling,
        arch=arch,
        mixed_precision=mixed_precision,
        trainable=not freeze_backbone,
        seed=seed,
    )
    with dtype_policy(mixed_precision):
        inputs = keras.Input(backbone.input.shape[1:], name="image")
        features = backbone(inputs)
        outputs = {}
        for t, task in enumerate(tasks):
            x = features
            for i, (units, rate) in enumerate(zip(hidden, dropout)):
                layer_seed = seed + SEEDS_PER_TASK * t + i
                x = keras.layers.Dense(
                    units,
                    activation="relu",
                    name=f"{task}_fc{units}",
                    kernel_initializer=keras.initializers.HeNormal(seed=layer_seed),
                )(x)
                x = keras.layers.Dropout(rate, seed=layer_seed, name=f"{task}_dropout{i + 1}")(x)
            outputs[task] = keras.layers.Dense(
                1,
                name=task,
                dtype="float32",
                kernel_initializer=keras.initializers.HeNormal(seed=seed + SEEDS_PER_TASK * t + OUTPUT_SEED_OFFSET),
            )(x)
        model = keras.Model(inputs, outputs, name="deepfl_multitask")
    return model


def model_tasks(model: keras.Model) -> list[str]:
    """The task names of a multi-task model, in the order of the eleven metrics (Keras sorts dict outputs)."""
    return sorted(model.output_names, key=lambda name: TASKS.index(name) if name in TASKS else len(TASKS))


def get_backbone(model: keras.Model) -> keras.Model:
    """The MLSP backbone (a nested keras.Model) inside a multi-task model."""
    try:
        return model.get_layer(BACKBONE_NAME)
    except ValueError:
        raise ValueError(
            f"model: {model.name!r} has no '{BACKBONE_NAME}' layer; not a deepfl multi-task model"
        ) from None


def set_backbone_trainable(model: keras.Model, trainable: bool) -> None:
    """Freezes or unfreezes the backbone (frozen BatchNorm runs in inference mode); recompile afterwards."""
    set_trainable(get_backbone(model), trainable)


def mlsp_extractor(
    model: keras.Model, input_shape: Sequence[int | None] | None = None, mixed_precision: str | None = None
) -> keras.Model:
    """The MLSP feature extractor of a (trained) multi-task model: images [0, 255] -> [N, 16,928] features.

    Without `input_shape` and `mixed_precision` it is the model's own backbone (shares its weights). With an
    `input_shape` (e.g. (None, None, 3) for native resolution) or a dtype policy (e.g. "float32" to extract in
    full precision from a model trained in mixed_bfloat16) that differ from the model's, the backbone is rebuilt
    that way and given a copy of the trained weights.
    """
    backbone = get_backbone(model) if model.name != BACKBONE_NAME else model
    shape = tuple(backbone.input.shape[1:]) if input_shape is None else tuple(input_shape)
    policy = mixed_precision or backbone.dtype_policy.name
    if shape == tuple(backbone.input.shape[1:]) and policy == backbone.dtype_policy.name:
        return backbone
    settings = backbone_settings(backbone)
    rebuilt = build_backbone(
        weights=None,
        input_shape=shape,
        pixel_scaling=settings["pixel_scaling"],
        arch=settings["arch"],
        mixed_precision=policy,
    )
    rebuilt.set_weights(backbone.get_weights())
    return rebuilt


def compile_multitask(
    model: keras.Model,
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule = STAGE1_LEARNING_RATE,
    loss_weights: Mapping[str, float] | None = None,
    jit_compile: bool | str = "auto",
    run_eagerly: bool = False,
) -> keras.Model:
    """Compiles with the paper's recipe: Adam(lr, 0.9, 0.999), MSE per task, per-task loss weights (default 1).
    `learning_rate` may be a Keras schedule (`deepfl.training.job.learning_rate_schedule`).

    Keras logs each task's unweighted MSE as `<task>_loss`; `loss` is the weighted sum.
    """
    tasks = model_tasks(model)
    loss_weights = dict(loss_weights or {})
    unknown = [t for t in loss_weights if t not in tasks]
    if unknown:
        raise ValueError(f"loss_weights: tasks {unknown} are not outputs of the model ({tasks})")
    if any(not float(w) >= 0 for w in loss_weights.values()):
        raise ValueError(f"loss_weights: weights must be >= 0, got {loss_weights}")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate, beta_1=0.9, beta_2=0.999),
        loss={t: "mean_squared_error" for t in tasks},
        loss_weights={t: float(loss_weights.get(t, 1.0)) for t in tasks},
        jit_compile=jit_compile,
        run_eagerly=run_eagerly,
    )
    return model
