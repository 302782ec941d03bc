"""`tf.distribute` strategies by name, logical CPU devices to try them without accelerators, and which process
of a multi-worker run writes the outputs (the chief)."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading

from deepfl.errors import WorkerLost
from deepfl.wording import setting

log = logging.getLogger("deepfl")

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
        return _multi_worker_strategy(tf)
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"strategy: must be one of {STRATEGIES}, got {name!r}")


def _multi_worker_strategy(tf):
    """`MultiWorkerMirroredStrategy`, announced first: its constructor waits, silently and holding Python's lock
    (so no Python signal handler runs), until every task of the cluster has started. Ctrl-C has the system's
    default action meanwhile, which ends the process at once (exit status 130 in a shell; a worker whose peer was
    refused would otherwise wait for ever, deaf to it). TensorFlow takes SIGTERM in that constructor for its
    preemption notice, so that a scheduler's SIGTERM went unanswered until the run's end: the process's own
    handler is put back."""
    tf_config = cluster_config()
    own = _address_of(tf_config, tf_config.get("task") or {})
    others = [address for address in _cluster_tasks(tf_config) if address != own]
    if others:
        log.info(
            "waiting for the cluster's other %s (%s) to start the same command; until all have, Ctrl-C ends this "
            "worker without a further line and TensorFlow does not answer SIGTERM (kill -KILL ends it)",
            "task" if len(others) == 1 else f"{len(others)} tasks",
            ", ".join(others),
        )
    in_main_thread = threading.current_thread() is threading.main_thread()
    handler = signal.getsignal(signal.SIGTERM) if in_main_thread else None
    interrupt = signal.signal(signal.SIGINT, signal.SIG_DFL) if in_main_thread else None
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    finally:
        if interrupt is not None:
            signal.signal(signal.SIGINT, interrupt)
    if handler is not None:
        signal.signal(signal.SIGTERM, handler)  # re-installs Python's C-level handler over TensorFlow's
    return strategy


def _address_of(tf_config: dict, task: dict) -> str | None:
    try:
        return str(tf_config["cluster"][task.get("type")][int(task.get("index") or 0)])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _cluster_tasks(tf_config: dict) -> list[str]:
    """The addresses of the chief and worker tasks of a parsed TF_CONFIG."""
    cluster = tf_config.get("cluster")
    if not isinstance(cluster, dict):
        return []
    return [str(address) for job in ("chief", "worker") for address in cluster.get(job) or []]


def cluster_config() -> dict:
    """Env TF_CONFIG, parsed; raises ValueError naming what is wrong when it is absent (TensorFlow then trains one
    local worker), not a JSON object, or names no chief or worker task."""
    text = os.environ.get("TF_CONFIG")
    one_process = f"for one process use {setting('strategy', 'mirrored')} or {setting('strategy', 'default')}"
    if not text:
        raise ValueError(
            "TF_CONFIG: multi_worker_mirrored needs the environment variable TF_CONFIG, naming the cluster and this "
            f"worker's place in it (docs/multitask.md, 'Launching on a cluster'); {one_process}"
        )
    try:
        tf_config = json.loads(text)
    except json.JSONDecodeError:
        tf_config = None
    if not isinstance(tf_config, dict):
        raise ValueError("TF_CONFIG: not valid JSON (see docs/multitask.md for its layout)")
    cluster = tf_config.get("cluster")
    for job, addresses in cluster.items() if isinstance(cluster, dict) else ():
        if not isinstance(addresses, list) or not all(_is_address(address) for address in addresses):
            raise ValueError(
                f'TF_CONFIG: the cluster\'s "{job}" must be a list of "host:port" addresses, got '
                f"{json.dumps(addresses)[:80]}"
            )
    if not _cluster_tasks(tf_config):
        raise ValueError(f"TF_CONFIG: its cluster names no chief or worker task; {one_process}")
    _check_task(tf_config.get("task"), cluster)
    return tf_config


def _is_address(address) -> bool:
    """Whether `address` reads "host:port" (TensorFlow failed on "node0" with "Could not parse port")."""
    if not isinstance(address, str):
        return False
    host, _, port = address.rpartition(":")
    return bool(host) and port.isdigit()


def _check_task(task, cluster: dict) -> None:
    """Refuses a TF_CONFIG "task" that does not name one of `cluster`'s tasks (TensorFlow's own messages, seconds
    later, named neither TF_CONFIG nor the cluster: "The `task_id` 2 exceeds the maximum id of worker.")."""
    if not isinstance(task, dict) or "type" not in task:
        raise ValueError(
            'TF_CONFIG: no "task" ({"type": "worker", "index": N}) says which of the cluster\'s tasks this process is'
        )
    task_type, index = task["type"], task.get("index", 0)
    if task_type not in cluster:
        raise ValueError(f"TF_CONFIG: task type {task_type!r} is not in its cluster ({', '.join(cluster)})")
    count = len(cluster[task_type])
    if isinstance(index, str) and index.isdigit():
        index = int(index)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
        raise ValueError(
            f"TF_CONFIG: task index {task.get('index')!r} is out of range: its cluster lists {count} {task_type} "
            f"task(s), indices 0 to {count - 1}"
        )


def warn_if_cluster_unused(strategy_name: str) -> None:
    """Warns when env TF_CONFIG names a cluster that this strategy ignores: the process trains alone, and a second
    worker started the same way was refused as "the same command twice" (a cluster walk, session 40)."""
    if strategy_name not in ("multi_worker_mirrored", "tpu") and os.environ.get("TF_CONFIG"):
        log.warning(
            "TF_CONFIG is set, but the strategy is %s: this process trains alone (%s joins the cluster)",
            strategy_name,
            setting("strategy", "multi_worker_mirrored"),
        )


def is_chief(strategy_name: str) -> bool:
    """Whether this process writes the run's outputs: always, except on a multi-worker strategy, where only the
    chief does (the task of type "chief" in env TF_CONFIG, or worker 0 when the cluster has no chief).

    Reads TF_CONFIG itself, as the strategy's cluster resolver does, so it is known before TensorFlow starts.
    """
    if strategy_name != "multi_worker_mirrored":
        return True
    tf_config = cluster_config()  # a missing or empty cluster is refused before anything is written
    task = tf_config.get("task") or {}
    task_type, index = task.get("type"), int(task.get("index") or 0)
    if task_type in (None, "chief"):
        return True
    return task_type == "worker" and index == 0 and "chief" not in (tf_config.get("cluster") or {})


# The settings every worker of a multi-worker run must share travel as one fixed-length vector of digests (a
# collective needs the same shape on every worker, whatever deepfl version each runs): slot 0 digests the names
# of the settings, the next slots one setting each.
_AGREEMENT_SLOTS = 64
# Paths may differ between machines that mount the same files at other places.
_PER_MACHINE_SETTINGS = ("weak_labels", "image_root", "kadis_root")


def check_workers_agree(strategy, settings: dict) -> None:
    """Raises ValueError naming the settings in which the workers of a multi-worker run differ.

    Workers started with other flags (a typo in one node's command) otherwise failed at the first step with
    TensorFlow's "Collective instance ... expected type ..." or trained a different number of epochs, naming no
    flag (a cluster walk, session 40). Each worker shares a digest of each setting with all others before
    anything is trained; every worker then names the same settings, with its own value. A no-op on other
    strategies and on a one-worker cluster.
    """
    names = sorted(k for k in settings if k not in _PER_MACHINE_SETTINGS)
    differ = _differing(strategy, {name: settings[name] for name in names})
    if differ:
        raise ValueError(
            f"the workers of this cluster were started with different {' and '.join(setting(n) for n in differ)}: "
            f"this worker has {' '.join(_as_flag(n, settings[n]) for n in differ)}; start every worker "
            "with the same command (only TF_CONFIG's task differs between them)"
        )


def check_same_checkpoint(strategy, state: dict | None, out_dir) -> None:
    """Raises ValueError when the workers of a multi-worker run found different checkpoints in `out_dir`: each
    reads the chief's, so a folder that is not shared (each worker's own disk) let the first run train and made
    every restart fail in TensorFlow's collectives, the chief resuming and the others starting afresh (a
    cluster walk, session 41)."""
    if _differing(strategy, {"checkpoint": state}):
        found = f"epoch {state['epoch']} done" if state else "no checkpoint"
        raise ValueError(
            f"{setting('out_dir')}={out_dir}: the workers of this cluster found different checkpoints in it (this "
            f"worker: {found}): {setting('out_dir')} must be one folder that every worker sees (shared storage)"
        )


def check_batch_splits(strategy, batch_size: int) -> None:
    """Raises ValueError when a global batch of `batch_size` would leave a replica without images: TensorFlow
    gives each replica ceil(batch / replicas) of them in turn, and a replica given none failed with
    "Incompatible shapes: [8] vs. [3]" (3 workers, --batch_size=4; a cluster walk, session 41)."""
    replicas = strategy.num_replicas_in_sync
    share = -(-batch_size // replicas)
    if replicas > 1 and share * (replicas - 1) >= batch_size:
        raise ValueError(
            f"{setting('batch_size', batch_size)} cannot be split over the {replicas} replicas of this run "
            f"(TensorFlow gives each {share} images in turn, and the last none): use a multiple of {replicas}, "
            f"such as {setting('batch_size', replicas * share)}"
        )


def wait_for_workers(strategy) -> None:
    """Returns once every worker of a multi-worker run has reached this call (at once elsewhere)."""
    _differing(strategy, {})


def _differing(strategy, values: dict) -> list[str]:
    """The names in `values` whose value differs between the workers of a multi-worker run (none elsewhere): a
    digest of each value is shared with one all_gather. Raises ValueError when the workers' names differ
    (different deepfl versions), `WorkerLost` when a worker went away meanwhile."""
    import tensorflow as tf

    from deepfl.training.keras_compat import is_multi_worker

    if not is_multi_worker(strategy):
        return []
    names = list(values)
    if len(names) >= _AGREEMENT_SLOTS:
        raise RuntimeError(f"_differing: {len(names)} values do not fit {_AGREEMENT_SLOTS - 1} slots")
    digests = [_digest(names)] + [_digest(values[name]) for name in names]
    local = tf.constant([digests + [0] * (_AGREEMENT_SLOTS - len(digests))], dtype=tf.int64)

    def gather(values: tf.Tensor):
        return strategy.experimental_local_results(
            tf.function(
                lambda: strategy.run(lambda: tf.distribute.get_replica_context().all_gather(values, axis=0)),
                autograph=False,
            )()
        )[0].numpy()

    try:
        table = gather(local)
    except Exception as exc:
        if is_lost_worker(exc):
            raise lost_worker(exc) from exc
        raise
    differ = [name for slot, name in enumerate(names, start=1) if (table[:, slot] != digests[slot]).any()]
    if differ or (table[:, 0] != digests[0]).any():
        # Every worker is about to refuse and exit. One more exchange first, whose loss is ignored: a worker that
        # exited as soon as its own gather was done cut its peers' short (exit 1, "lost contact": a clean-clone suite).
        try:
            gather(tf.zeros_like(local))
        except Exception as exc:
            if not is_lost_worker(exc):
                raise
    if (table[:, 0] != digests[0]).any():
        raise ValueError(
            "the workers of this cluster run different deepfl versions (their settings differ in kind): install "
            "the same version on every machine"
        )
    return differ


def is_lost_worker(exc: Exception) -> bool:
    """Whether a multi-worker collective failed because a peer went away: TensorFlow then reports an
    UnavailableError ("The error could be from a previous operation. Restart your program to reset.") or aborts
    the collective ("Collective ops is aborted by: Socket closed")."""
    import tensorflow as tf

    return isinstance(exc, tf.errors.UnavailableError) or (
        isinstance(exc, tf.errors.OpError) and "Collective ops is aborted" in str(exc)
    )


def lost_worker(exc: Exception) -> WorkerLost:
    """The one-line error for a collective that `is_lost_worker`."""
    return WorkerLost(
        "lost contact with another worker of the cluster (it stopped, was killed, or the network cut it off: "
        f"TensorFlow's {type(exc).__name__}): start every worker again with the same command to resume"
    )


def _digest(value) -> int:
    import zlib

    return zlib.crc32(json.dumps(value, sort_keys=True).encode())


def _as_flag(name: str, value) -> str:
    """A recorded setting as its flag (sizes and lists are recorded as lists); "no --name" when unset."""
    return f"no {setting(name)}" if value in (None, "", [], ()) else setting(name, value)
