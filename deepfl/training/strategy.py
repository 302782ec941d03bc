"""`tf.distribute` strategies by name, logical CPU devices to try them without accelerators, and which process
of a multi-worker run writes the outputs (the chief)."""

from __future__ import annotations

import json
import os

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored", "tpu")


def configure_virtual_cpus(count: int) -> None:
    """Splits the host CPU into `count` logical devices (to try distribution strategies without GPUs).

    Must run before TensorFlow initialises its devices (before any op runs).
    """
    import tensorflow as tf

    if count < 2:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * int(count))


def get_strategy(name: str = "default", tpu: str = ""):
    """A `tf.distribute` strategy by name: default (one device), mirrored (all local GPUs/devices),
    multi_worker_mirrored (several machines; each reads the cluster from env TF_CONFIG), tpu (`tpu` = address
    or name, "" for the local TPU)."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"strategy: must be one of {STRATEGIES}, got {name!r}")


def is_chief(strategy_name: str) -> bool:
    """Whether this process writes the run's outputs: always, except on a multi-worker strategy, where only the
    chief does (the task of type "chief" in env TF_CONFIG, or worker 0 when the cluster has no chief).

    Reads TF_CONFIG itself, as the strategy's cluster resolver does, so it is known before TensorFlow starts.
    """
    if strategy_name != "multi_worker_mirrored":
        return True
    try:
        tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    except json.JSONDecodeError:
        raise ValueError("TF_CONFIG: not valid JSON (see docs/multitask.md for its layout)") from None
    task = tf_config.get("task") or {}
    task_type, index = task.get("type"), int(task.get("index") or 0)
    if task_type in (None, "chief"):
        return True
    return task_type == "worker" and index == 0 and "chief" not in (tf_config.get("cluster") or {})
