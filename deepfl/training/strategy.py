"""`tf.distribute` strategies by name, logical CPU devices to try them without accelerators, and the output
folder of each worker (only the chief writes the shared outputs)."""

from __future__ import annotations

from pathlib import Path

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


def worker_dir(out_dir: Path, strategy) -> Path:
    """`out_dir` for the chief (or a single machine); `out_dir/workers/<type>_<id>` for the other workers of a
    multi-worker strategy, so that only the chief writes the shared outputs and checkpoints."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    task_id = getattr(resolver, "task_id", None) or 0
    if task_type in (None, "chief"):
        return out_dir
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if task_type == "worker" and task_id == 0 and "chief" not in cluster:
        return out_dir  # without a chief, worker 0 plays its part
    return out_dir / "workers" / f"{task_type}_{task_id}"
