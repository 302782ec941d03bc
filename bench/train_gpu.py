"""GPU benchmark of the DeepFL-IQA stage-1 model: training images/s (bf16 and fp32) and MLSP extraction images/s.

Backend-agnostic: imports only keras and deepfl.models, so it runs where only JAX is installed:
  KERAS_BACKEND=jax python bench/train_gpu.py                 # 384x512, batch 64, all 11 heads
  KERAS_BACKEND=tensorflow python bench/train_gpu.py
  KERAS_BACKEND=jax python bench/train_gpu.py --height 75 --width 75 --batch 2 --steps 2 --warmup 1  # CPU smoke run
Synthetic batches already on the device (no input pipeline). The peer, run side by side in the same process, is
plain Keras: `keras.applications.InceptionResNetV2(include_top=False, pooling="avg")` + one Dense(1) head for
training, and the same network for extraction (last-block pooling instead of MLSP). Ratios are deepfl / peer.
Reference points quoted by the project (plain Keras, one H200, JAX): ~660 images/s training in bf16, ~340 in
fp32, ~3,200 images/s extraction in bf16.
"""

from __future__ import annotations

import argparse
import gc
import time

import keras
import numpy as np

from deepfl.models import TASKS, build_multitask, compile_multitask, mlsp_extractor
from deepfl.paper import MLSP_DIM, STAGE1_LEARNING_RATE

POLICIES = {"bf16": "mixed_bfloat16", "fp16": "mixed_float16", "fp32": "float32"}


def _timed(step, warmup: int, steps: int) -> float:
    """Seconds per call of `step` after `warmup` calls (each call returns something that forces a device sync)."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def _peer_training_model(shape, policy: str) -> keras.Model:
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        net = keras.applications.InceptionResNetV2(include_top=False, weights=None, input_shape=shape, pooling="avg")
        inputs = keras.Input(shape)
        out = keras.layers.Dense(1, dtype="float32")(net(keras.layers.Rescaling(1 / 255.0)(inputs)))
        model = keras.Model(inputs, out)
    finally:
        keras.config.set_dtype_policy(previous)
    model.compile(keras.optimizers.Adam(STAGE1_LEARNING_RATE), "mean_squared_error", jit_compile=True)
    return model


def _sync(value) -> float:
    if isinstance(value, dict):
        value = next(iter(value.values()))
    if isinstance(value, (list, tuple)):
        value = value[0]
    return float(np.asarray(keras.ops.convert_to_numpy(value)).ravel()[0])


def bench_training(args, precision: str) -> tuple[float, float]:
    policy = POLICIES[precision]
    shape = (args.height, args.width, 3)
    rng = np.random.default_rng(0)
    x = keras.ops.convert_to_tensor(rng.uniform(0, 255, (args.batch, *shape)).astype("float32"))
    targets = {t: keras.ops.convert_to_tensor(rng.normal(size=(args.batch, 1)).astype("float32")) for t in args.tasks}
    ours = build_multitask(
        tasks=args.tasks, weights=None, input_shape=shape, mixed_precision=None if policy == "float32" else policy
    )
    compile_multitask(ours, jit_compile=True)
    t_ours = _timed(lambda: _sync(ours.train_on_batch(x, targets)), args.warmup, args.steps)
    ours = None  # free the device memory before the peer runs
    gc.collect()
    peer = _peer_training_model(shape, policy)
    y = targets[args.tasks[0]]
    t_peer = _timed(lambda: _sync(peer.train_on_batch(x, y)), args.warmup, args.steps)
    peer = None
    gc.collect()
    return args.batch / t_ours, args.batch / t_peer


def bench_extraction(args, precision: str) -> tuple[float, float]:
    policy = POLICIES[precision]
    shape = (args.height, args.width, 3)
    x = keras.ops.convert_to_tensor(
        np.random.default_rng(1).uniform(0, 255, (args.extract_batch, *shape)).astype("float32")
    )
    model = build_multitask(
        tasks=args.tasks[:1], weights=None, input_shape=shape, mixed_precision=None if policy == "float32" else policy
    )
    extractor = mlsp_extractor(model)
    extractor.jit_compile = True
    t_ours = _timed(lambda: _sync(extractor.predict_on_batch(x)), args.warmup, args.steps)
    features = keras.ops.convert_to_numpy(extractor.predict_on_batch(x))
    assert features.shape == (args.extract_batch, MLSP_DIM), features.shape
    model = extractor = None
    gc.collect()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        peer = keras.applications.InceptionResNetV2(include_top=False, weights=None, input_shape=shape, pooling="avg")
    finally:
        keras.config.set_dtype_policy(previous)
    peer.jit_compile = True
    t_peer = _timed(lambda: _sync(peer.predict_on_batch(x)), args.warmup, args.steps)
    return args.extract_batch / t_ours, args.extract_batch / t_peer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64, help="training batch")
    parser.add_argument("--extract_batch", type=int, default=0, help="extraction batch (default: --batch)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation)")
    parser.add_argument("--precisions", default="bf16,fp32", help="training precisions, among bf16,fp16,fp32")
    parser.add_argument("--extract_precision", default="bf16")
    parser.add_argument("--tasks", default=",".join(TASKS), help="heads to train (default: all eleven)")
    args = parser.parse_args()
    args.tasks = [t for t in args.tasks.split(",") if t]
    args.extract_batch = args.extract_batch or args.batch
    print(
        f"backend {keras.backend.backend()}, input {args.height}x{args.width}, batch {args.batch}, "
        f"{len(args.tasks)} heads, {args.steps} timed steps after {args.warmup} warm-up steps"
    )
    print(f"{'measurement':<28}{'deepfl img/s':>14}{'peer img/s':>13}{'ratio':>8}")
    for precision in args.precisions.split(","):
        ours, peer = bench_training(args, precision)
        print(f"{'training ' + precision:<28}{ours:>14.1f}{peer:>13.1f}{ours / peer:>8.2f}", flush=True)
    ours, peer = bench_extraction(args, args.extract_precision)
    print(f"{'MLSP extraction ' + args.extract_precision:<28}{ours:>14.1f}{peer:>13.1f}{ours / peer:>8.2f}")
    print(
        "reference (plain Keras, 1x H200, JAX, 384x512 batch 64): training bf16 ~660, fp32 ~340; "
        "extraction bf16 ~3200 img/s"
    )


if __name__ == "__main__":
    main()
