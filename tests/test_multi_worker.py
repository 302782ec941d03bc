"""deepfl-train-multitask with --strategy=multi_worker_mirrored: two worker processes on 127.0.0.1 (TF_CONFIG).

Both workers finish, only the chief writes the outputs (the other worker's temporary folder is removed), and the
result equals the single-worker run with the same global batch split the same way (MirroredStrategy on two
logical CPUs: dropout masks and batch-norm statistics are drawn per replica, so the replica layout is part of
the result). A run whose non-chief worker is killed mid-epoch, restarted on both workers, ends with the same
weights as an unbroken one.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers_datasets import train_multitask_command, write_weak_label_set

REPO = Path(__file__).resolve().parents[1]
FLAGS = [
    "--arch=tiny",
    "--weights=none",
    "--image_size=32,32",
    "--batch_size=4",
    "--steps_per_epoch=3",
    "--val_fraction=0.34",
    "--notensorboard",
    "--seed=1",
]


@pytest.fixture(scope="module")
def weak_labels(tmp_path_factory, small_photo):
    return write_weak_label_set(tmp_path_factory.mktemp("weak"), small_photo)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _args(weak_labels, out_dir, *extra):
    return train_multitask_command(weak_labels, out_dir, *FLAGS, *extra)


def _env(**extra):
    return dict(os.environ, DEEPFL_NO_PROGRESS="1", TF_CPP_MIN_LOG_LEVEL="3", **extra)


def start_workers(weak_labels, out_dir, temp_dirs, *extra, worker_flags=((), ())):
    """Two worker processes of one multi-worker run (worker 0 is the chief); each gets its own TMPDIR, the flags
    `extra` and its own `worker_flags`."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    jobs = []
    for index, (temp, own) in enumerate(zip(temp_dirs, worker_flags, strict=True)):
        temp.mkdir(parents=True, exist_ok=True)
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        jobs.append(
            subprocess.Popen(
                _args(weak_labels, out_dir, "--strategy=multi_worker_mirrored", *extra, *own),
                cwd=REPO,
                env=_env(TF_CONFIG=tf_config, TMPDIR=str(temp)),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return jobs


def finish(jobs, timeout=300):
    results = []
    for job in jobs:
        out, err = job.communicate(timeout=timeout)
        results.append((job.returncode, out, err))
    return results


def run_workers(weak_labels, out_dir, temp_dirs, *extra):
    results = finish(start_workers(weak_labels, out_dir, temp_dirs, *extra))
    for code, _, err in results:
        assert code == 0, err[-3000:]
    return results


def run_one_process(weak_labels, out_dir, *extra, **env):
    """One training process (with `env` added to its environment) that must succeed; returns its result."""
    result = subprocess.run(
        _args(weak_labels, out_dir, *extra), cwd=REPO, env=_env(**env), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def run_mirrored(weak_labels, out_dir, *extra):
    run_one_process(weak_labels, out_dir, "--strategy=mirrored", "--virtual_cpu_devices=2", *extra)


def weights(path):
    import keras

    import deepfl.models  # noqa: F401  (registers deepfl's layers)

    return keras.saving.load_model(path, compile=False).get_weights()


def assert_same_weights(a, b):
    for x, y in zip(weights(a), weights(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_ctrl_c_ends_a_worker_waiting_for_a_peer_that_never_starts(weak_labels, tmp_path):
    """A worker whose peer stopped before they met (a refused flag) waits inside TensorFlow, where no Python
    handler runs: Ctrl-C ends it at once (killed by SIGINT: 130 in a shell) instead of never."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})
    log = tmp_path / "worker0.err"
    with open(log, "w") as err:
        job = subprocess.Popen(
            _args(weak_labels, tmp_path / "run", "--strategy=multi_worker_mirrored"),
            cwd=REPO,
            env=_env(TF_CONFIG=tf_config, TMPDIR=str(tmp_path)),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 120
        while "waiting for the cluster's other task" not in log.read_text() and job.poll() is None:
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        time.sleep(2)  # inside the constructor by now
        job.send_signal(signal.SIGINT)
        assert job.wait(timeout=30) == -signal.SIGINT, log.read_text()[-2000:]
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()


def test_a_one_worker_cluster_trains_and_two_workers_overwrite_its_run(weak_labels, tmp_path):
    """The default suite's guard for the slow tests below: TensorFlow configures a multi-worker strategy's
    collective ops only before its runtime starts, and from session 18 to 35 the job decoded an image (its
    usable-image check) before making the strategy, so every multi-worker run stopped with "Collective ops must
    be configured at program startup" and nothing in the default suite noticed. With TensorBoard on (the
    default), a one-worker cluster stopped at its first step with "Expected scalar shape, saw shape: (1,)"
    until session 41: its step logs were reshaped for a cross-worker reduction that Keras skips there.

    Then two workers with --overwrite and another learning rate train again in that folder. Before session 41 the
    chief removed the old run, worker 1 refused the old run's settings (exit 2), and the chief waited for it for
    ever; and an --overwrite start refused for workers' different flags had removed the old run (a walk)."""
    out = tmp_path / "one"
    cluster = {"worker": [f"127.0.0.1:{_free_ports(1)[0]}"]}
    tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})
    result = run_one_process(
        weak_labels, out, "--strategy=multi_worker_mirrored", "--epochs=1", "--tensorboard", TF_CONFIG=tf_config
    )
    assert "with 1 replica(s)" in result.stderr and (out / "model.keras").is_file()
    assert any((out / "tensorboard").rglob("*.tfevents.*"))

    temps = [tmp_path / "tmp0", tmp_path / "tmp1"]
    refused = start_workers(weak_labels, out, temps, "--epochs=1", "--overwrite", worker_flags=([], ["--batch_size=2"]))
    for code, _, err in finish(refused, timeout=120):
        assert code == 2 and "started with different --batch_size" in err, err[-3000:]
    assert (out / "model.keras").is_file() and (out / "run_config.json").is_file()

    jobs = start_workers(weak_labels, out, temps, "--epochs=1", "--overwrite", "--learning_rate=2e-4")
    try:
        results = finish(jobs, timeout=120)
    finally:
        for job in jobs:
            job.kill()
    for code, _, err in results:
        assert code == 0, err[-3000:]
    assert "with 2 replica(s)" in results[0][2]
    assert json.loads((out / "run_config.json").read_text())["learning_rate"] == 2e-4
    # Each worker's last line says what it did: the chief names its model, the other worker the chief's folder
    # (it named a model.keras it had not written until session 42).
    chief_line, other_line = (stdout.strip().splitlines()[-1] for _, stdout, _ in results)
    assert chief_line.startswith("trained 1 epoch of ") and f"model: {out / 'model.keras'}" in chief_line
    assert other_line.endswith(f"with the cluster; the chief writes {out}") and "model:" not in other_line


def test_a_cluster_worker_answers_sigterm_and_says_what_it_waits_for(monkeypatch, caplog):
    """TensorFlow's multi-worker strategy takes SIGTERM for its preemption notice: a scheduler's time limit or
    `kill` went unanswered until the run's end (the job's handler now takes it back). Its constructor waits for the
    other tasks holding Python's lock, so the job says so first (a cluster walk, session 40)."""
    ports = _free_ports(2)
    script = (
        "import json, logging, os, signal, sys, time\n"
        "logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
        f"os.environ['TF_CONFIG'] = json.dumps({{'cluster': {{'worker': ['127.0.0.1:{ports[0]}']}}, "
        "'task': {'type': 'worker', 'index': 0}})\n"
        "got = []\n"
        "signal.signal(signal.SIGTERM, lambda *args: got.append(1))\n"
        "from deepfl.training.strategy import get_strategy\n"
        "get_strategy('multi_worker_mirrored')\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(0.5)\n"
        "print('handled' if got else 'swallowed')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert result.stdout.strip().splitlines()[-1:] == ["handled"], result.stdout + result.stderr[-2000:]
    # The line a worker prints before it waits (TensorFlow's constructor stood in for: it would wait here).
    import logging
    from types import SimpleNamespace

    from deepfl.training import strategy

    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    fake_tf = SimpleNamespace(distribute=SimpleNamespace(MultiWorkerMirroredStrategy=lambda: "built"))
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    with caplog.at_level(logging.INFO, logger="deepfl"):
        assert strategy._multi_worker_strategy(fake_tf) == "built"
    waiting = f"waiting for the cluster's other task (127.0.0.1:{ports[0]}) to start the same command; "
    assert caplog.records[-1].getMessage().startswith(waiting + "until all have, Ctrl-C ends this worker")


def test_cluster_settings_a_job_cannot_use_are_named(weak_labels, tmp_path, monkeypatch, caplog):
    """--strategy=multi_worker_mirrored without TF_CONFIG stopped after 10 s with TensorFlow's "Expected scalar
    shape, saw shape: (1,)" and left half a run's files; TF_CONFIG with the default strategy trained alone without
    a word, and the second worker was then refused as "the same command twice" (a cluster walk, session 40)."""
    import logging

    from deepfl.training import strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match=r"^TF_CONFIG: multi_worker_mirrored needs the environment variable TF_CONFIG"):
        strategy.is_chief("multi_worker_mirrored")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"ps": ["a:1"]}, "task": {"type": "worker", "index": 0}}')
    with pytest.raises(ValueError, match="names no chief or worker task"):
        strategy.is_chief("multi_worker_mirrored")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}')
    assert not strategy.is_chief("multi_worker_mirrored")
    with caplog.at_level(logging.WARNING, logger="deepfl"):
        strategy.warn_if_cluster_unused("default")
        strategy.warn_if_cluster_unused("multi_worker_mirrored")
    assert [r.getMessage() for r in caplog.records] == [
        "TF_CONFIG is set, but the strategy is default: this process trains alone (strategy='multi_worker_mirrored' "
        "joins the cluster)"
    ]
    # The job: one line and exit 2, nothing left in --out_dir.
    result = subprocess.run(
        _args(weak_labels, tmp_path / "run", "--strategy=multi_worker_mirrored"),
        cwd=REPO,
        env={k: v for k, v in _env().items() if k != "TF_CONFIG"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith("error: TF_CONFIG: multi_worker_mirrored needs")
    assert "--strategy=mirrored" in result.stderr and not (tmp_path / "run").exists()


TWO = {"worker": ["a:1", "b:2"]}


@pytest.mark.parametrize(
    ("tf_config", "message"),
    [
        (
            {"cluster": {"worker": "a:1,b:2"}, "task": {"type": "worker", "index": 0}},
            'the cluster\'s "worker" must be a list of "host:port" addresses, got "a:1,b:2"',
        ),
        (
            {"cluster": {"worker": ["node0", "b:2"]}, "task": {"type": "worker", "index": 0}},
            'the cluster\'s "worker" must be a list of "host:port" addresses, got ["node0", "b:2"]',
        ),
        ({"cluster": TWO}, 'no "task" ({"type": "worker", "index": N}) says which'),
        ({"cluster": TWO, "task": {"type": "chief", "index": 0}}, "task type 'chief' is not in its cluster (worker)"),
        (
            {"cluster": TWO, "task": {"type": "workers", "index": 0}},
            "task type 'workers' is not in its cluster (worker)",
        ),
        (
            {"cluster": TWO, "task": {"type": "worker", "index": 2}},
            "task index 2 is out of range: its cluster lists 2 worker task(s), indices 0 to 1",
        ),
        ({"cluster": TWO, "task": {"type": "worker", "index": -1}}, "task index -1 is out of range"),
    ],
)
def test_a_task_outside_the_cluster_is_named(tf_config, message, monkeypatch):
    """TensorFlow said these seconds later, naming neither TF_CONFIG nor the cluster ("The `task_id` 2 exceeds the
    maximum id of worker.", "Invalid device filter: /job:worker/task:-1", "Could not parse port"), and a worker
    list written as one string was waited for as 7 tasks, one per character (a cluster walk, session 41)."""
    from deepfl.training import strategy

    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    with pytest.raises(ValueError) as error:
        strategy.cluster_config()
    assert str(error.value).startswith("TF_CONFIG: " + message), str(error.value)


@pytest.mark.parametrize(
    ("replicas", "fails", "works"),
    [(2, [1], [2, 3, 5]), (3, [2, 4], [3, 5, 6, 7, 8, 9, 10]), (4, [6], [4, 8]), (5, [16], [17]), (6, [8], [6, 12])],
)
def test_a_batch_that_leaves_a_replica_without_images_is_refused(replicas, fails, works):
    """3 workers with --batch_size=4 stopped with "Incompatible shapes: [8] vs. [3]" (exit 2, as if a flag were
    wrong, and "lost contact" on the others); the cases are those a cluster walk measured (session 41)."""
    from types import SimpleNamespace

    from deepfl.training import strategy

    for batch_size in fails:
        with pytest.raises(ValueError, match=rf"^batch_size={batch_size} cannot be split over the {replicas} replicas"):
            strategy.check_batch_splits(SimpleNamespace(num_replicas_in_sync=replicas), batch_size)
    for batch_size in works:
        strategy.check_batch_splits(SimpleNamespace(num_replicas_in_sync=replicas), batch_size)


def test_workers_that_see_different_checkpoints_are_told_to_share_the_out_dir(weak_labels, tmp_path):
    """A --out_dir on each worker's own disk: the first run trained, and every restart failed in TensorFlow's
    collectives (the chief resumed, the other started afresh), and "start every worker again" repeated it."""
    kept = tmp_path / "kept"
    run_one_process(weak_labels, kept, "--epochs=1", "--keep_checkpoints")
    jobs = start_workers(
        weak_labels,
        kept,
        [tmp_path / "tmp0", tmp_path / "tmp1"],
        "--epochs=2",
        "--keep_checkpoints",
        worker_flags=([], [f"--out_dir={tmp_path / 'own_disk'}"]),
    )
    results = finish(jobs, timeout=120)
    for (code, _, err), found in zip(results, ["epoch 1 done", "no checkpoint"], strict=True):
        assert code == 2, err[-3000:]
        last = err.strip().splitlines()[-1]
        assert last.startswith("error: --out_dir=") and f"(this worker: {found}): --out_dir must be one folder" in last


def test_workers_started_with_other_flags_are_refused_naming_them(weak_labels, tmp_path):
    """Before session 41, a worker with another --batch_size failed at the first step with TensorFlow's
    "Collective instance ... expected type 0 and data_type 1" (and its peer with an InternalError), and one with
    other --epochs stopped when the chief finished: neither named a flag. Paths may differ between machines (the
    same files mounted elsewhere): worker 1 reads a copy of the weak labels."""
    copy = shutil.copytree(weak_labels, tmp_path / "elsewhere")
    out = tmp_path / "differ"
    jobs = start_workers(
        weak_labels,
        out,
        [tmp_path / "tmp0", tmp_path / "tmp1"],
        "--epochs=1",
        worker_flags=(
            ["--crop_size=24,24"],
            ["--batch_size=2", f"--weak_labels={copy / 'labels.csv'}", f"--image_root={copy}"],
        ),
    )
    results = finish(jobs, timeout=120)
    for (code, _, err), own in zip(results, ["--batch_size=4 --crop_size=24,24", "--batch_size=2 no --crop_size"]):
        assert code == 2, err[-3000:]
        assert err.strip().splitlines()[-1] == (
            "error: the workers of this cluster were started with different --batch_size and --crop_size: this "
            f"worker has {own}; start every worker with the same command (only TF_CONFIG's task differs between "
            "them)"
        )
    assert not out.exists()


@pytest.mark.slow  # about 150 s on 2 shared cores: three TensorFlow processes
def test_two_workers_train_like_one_worker_with_two_replicas(weak_labels, tmp_path):
    out = tmp_path / "multi"
    temps = [tmp_path / "tmp0", tmp_path / "tmp1"]
    results = run_workers(weak_labels, out, temps, "--epochs=2", "--keep_checkpoints")
    assert all("with 2 replica(s)" in err for _, _, err in results)
    for name in (
        "model.keras",
        "best.keras",
        "history.csv",
        "split.csv",
        "normalizer.json",
        "run_config.json",
        "checkpoints/state.json",
    ):
        assert (out / name).is_file(), name
    # The chief alone writes: nothing else under out_dir, and the other worker's temporary folder is gone.
    assert sorted(p.name for p in out.iterdir()) == [
        "best.keras",
        "checkpoints",
        "history.csv",
        "history.png",
        "model.keras",
        "normalizer.json",
        "run_config.json",
        "split.csv",
    ]
    assert list(temps[1].iterdir()) == []
    reference = tmp_path / "mirrored"
    run_mirrored(weak_labels, reference, "--epochs=2")
    assert_same_weights(out / "model.keras", reference / "model.keras")
    assert (out / "split.csv").read_bytes() == (reference / "split.csv").read_bytes()
    ours, theirs = pd.read_csv(out / "history.csv"), pd.read_csv(reference / "history.csv")
    assert list(ours.columns) == list(theirs.columns) and len(ours) == 2
    np.testing.assert_allclose(ours.to_numpy(float), theirs.to_numpy(float), rtol=1e-4, atol=1e-6)
    assert json.loads((out / "checkpoints/state.json").read_text())["position"] == 2 * 3 * 4


@pytest.mark.slow
def test_killed_worker_then_restart_resumes_to_the_same_weights(weak_labels, tmp_path):
    out = tmp_path / "killed"
    temps = [tmp_path / "tmp0", tmp_path / "tmp1"]
    jobs = start_workers(weak_labels, out, temps, "--epochs=4")
    state_file = out / "checkpoints" / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline and all(job.poll() is None for job in jobs):
        if state_file.exists() and json.loads(state_file.read_text())["epoch"] >= 1:
            break
        time.sleep(0.05)
    assert all(job.poll() is None for job in jobs), "a worker ended before the kill; raise --epochs"
    jobs[1].send_signal(signal.SIGKILL)
    (code, _, err), _ = finish(jobs, timeout=120)  # the chief fails once its peer is gone
    assert code == 1, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("error: lost contact with another worker of the cluster")
    assert "a rerun resumes after epoch" in err
    killed_at = json.loads(state_file.read_text())["epoch"]
    assert 1 <= killed_at < 4 and not (out / "model.keras").exists()
    results = run_workers(weak_labels, out, temps, "--epochs=4")
    assert f"resuming after epoch {killed_at} of 4" in results[0][2] and "of 4" in results[1][2]
    assert [int(r) for r in pd.read_csv(out / "history.csv")["epoch"]] == [1, 2, 3, 4]
    unbroken = tmp_path / "unbroken"
    run_workers(weak_labels, unbroken, [tmp_path / "tmp2", tmp_path / "tmp3"], "--epochs=4")
    assert_same_weights(out / "model.keras", unbroken / "model.keras")
