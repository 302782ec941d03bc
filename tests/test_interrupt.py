"""Ctrl-C (SIGINT) ends a job with one line and exit code 130, leaves no worker behind, and the same command run
again finishes with the outputs of a run that was never interrupted."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from badinputs import textured_image
from deepfl.cli.app import EXIT_INTERRUPTED, EXIT_TERMINATED, INTERRUPT_GRACE_S, INTERRUPTED_MESSAGE
from deepfl.images import write_image
from killrestart import REPO_ROOT, assert_same_tree, count_files, job_command, job_env, run_batch, run_job

TIMEOUT_S = 300
# TensorFlow's C++ start-up lines (absl log format, or its note before absl logging starts): not ours.
NATIVE_LOG = re.compile(r"^([IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\] |WARNING: All log messages before absl::InitializeLog)")


def interrupt_when(cmd: list[str], ready, delay_s: float = 0.0, sig: int = signal.SIGINT) -> tuple[int, str, float]:
    """Starts `cmd` in its own process group, sends `sig` (Ctrl-C's SIGINT) to the job's process (not the group)
    once `ready()` is true plus `delay_s`; returns (exit code, stderr, seconds from the signal to the exit), after
    checking that no process of the group (pool workers) outlives the job."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=job_env(), cwd=REPO_ROOT, start_new_session=True
    )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not ready():
            assert proc.poll() is None, f"finished before it could be interrupted: {proc.stderr.read()!r}"
            assert time.monotonic() < deadline, "never became ready"
            time.sleep(0.02)
        time.sleep(delay_s)
        assert proc.poll() is None, "finished before it could be interrupted"
        proc.send_signal(sig)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=TIMEOUT_S)
        took = time.monotonic() - sent
        time.sleep(0.5)
        try:
            os.killpg(proc.pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        assert not alive, "a process of the job (a worker) outlived it"
        return proc.returncode, err.decode("utf-8", "replace"), took
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def assert_one_line(code: int, stderr: str, expected=(EXIT_INTERRUPTED, INTERRUPTED_MESSAGE)) -> None:
    assert code == expected[0], stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    others = [line for line in stderr.splitlines() if not line.startswith("INFO ") and not NATIVE_LOG.match(line)]
    assert others == [expected[1]], stderr[-3000:]


def make_refs(folder: Path, count: int, size: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        write_image(folder / f"ref{i}.png", textured_image(size, size, seed=i))
    return folder


def test_ctrl_c_in_distort_then_rerun_gives_the_uninterrupted_outputs(tmp_path):
    refs = make_refs(tmp_path / "refs", 6, 176)

    def distort(out: Path) -> list[str]:
        return job_command("distort", "--ref_dir", str(refs), "--out_dir", str(out), "--workers", "2")

    code, err, took = interrupt_when(distort(tmp_path / "cut"), lambda: count_files(tmp_path / "cut")() >= 2)
    assert_one_line(code, err)
    assert took < INTERRUPT_GRACE_S + 10
    assert count_files(tmp_path / "cut")() < 30, "the job ran on after the signal"
    # SIGTERM (kill, timeout, a scheduler's time limit) killed the job without a word, its pool workers left to
    # finish on their own (user walk, session 27): now the same stop, its own line and 143.
    # (sent once this run has written files of its own: before its handler is installed, SIGTERM's default ends it)
    before = count_files(tmp_path / "cut")()
    code, err, took = interrupt_when(
        distort(tmp_path / "cut"), lambda: count_files(tmp_path / "cut")() >= before + 2, sig=signal.SIGTERM
    )
    assert_one_line(code, err, (EXIT_TERMINATED, "terminated (SIGTERM); rerun the same command to resume"))
    assert took < INTERRUPT_GRACE_S + 10
    rerun = run_job(distort(tmp_path / "cut"), timeout=TIMEOUT_S)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    whole = run_job(distort(tmp_path / "whole"), timeout=TIMEOUT_S)
    assert whole.returncode == 0, whole.stderr[-2000:]
    assert assert_same_tree(tmp_path / "whole", tmp_path / "cut") == 32  # 30 images, manifest, settings


def test_ctrl_c_in_label_during_compilation_then_rerun_gives_the_uninterrupted_outputs(tmp_path):
    refs = make_refs(tmp_path / "refs", 8, 176)  # 40 pairs, 8 batches: the signal lands mid-job
    made = run_job(
        job_command("distort", "--ref_dir", str(refs), "--out_dir", str(tmp_path / "kadis"), "--workers", "1"),
        timeout=TIMEOUT_S,
    )
    assert made.returncode == 0, made.stderr[-2000:]

    def label(out: Path) -> list[str]:
        return job_command(
            "label",
            "--manifest",
            str(tmp_path / "kadis" / "manifest.csv"),
            "--image_root",
            str(tmp_path / "kadis"),
            "--ref_root",
            str(refs),
            "--out_dir",
            str(out),
            "--metrics",
            "ssim,gmsd",
            "--batch_size",
            "5",
            "--compile_from_pixel_pairs=0",  # 40 small pairs would run the NumPy forms; a large job compiles
        )

    # The header is written just before the first batch is scored, which compiles the metrics (XLA).
    code, err, took = interrupt_when(
        label(tmp_path / "cut"), lambda: (tmp_path / "cut" / "labels.csv").exists(), delay_s=0.3
    )
    assert_one_line(code, err)
    print(f"label: exit {code} {took:.1f} s after SIGINT")
    assert took < INTERRUPT_GRACE_S + 10
    cut = tmp_path / "cut" / "labels.csv"
    # Stopped before its first rows: the run made the CSV and scored nothing, so it keeps neither it nor the folder.
    rows = cut.read_text().count("\n") - 1 if cut.exists() else 0
    assert rows < 40, "the job ran to the end after the signal"
    assert rows > 0 or not (tmp_path / "cut").exists()
    # The rerun and an uninterrupted run, one after the other in one new process (one TensorFlow import).
    rerun, whole = run_batch("label", [label(tmp_path / "cut")[3:], label(tmp_path / "whole")[3:]], timeout=TIMEOUT_S)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert whole.returncode == 0, whole.stderr[-2000:]
    assert assert_same_tree(tmp_path / "whole", tmp_path / "cut") == 3  # labels.csv, its settings, labels.png


def test_ctrl_c_during_the_tensorflow_import_prints_only_the_line(tmp_path):
    """The quiet import holds TensorFlow's start-up lines back; Ctrl-C there must not replay them."""
    refs = make_refs(tmp_path / "refs", 2, 176)
    cmd = job_command("extract_features", "--images", str(refs), "--weights", "none", "--out_dir", str(tmp_path / "f"))
    code, err, _ = interrupt_when(cmd, lambda: True, delay_s=1.0)  # the import takes several seconds
    assert code == EXIT_INTERRUPTED, err[-3000:]
    assert [line for line in err.splitlines() if not line.startswith("INFO ")] == [INTERRUPTED_MESSAGE], err[-3000:]


def run_module(folder: Path, module: str) -> tuple[int, str]:
    """(exit code, stderr) of `python -m module` run from `folder`, where the module's file lies."""
    env = job_env()
    env["PYTHONPATH"] = f"{folder}{os.pathsep}{env['PYTHONPATH']}"
    proc = subprocess.run(
        [sys.executable, "-m", module], cwd=folder, env=env, capture_output=True, text=True, timeout=120
    )
    return proc.returncode, proc.stderr


def test_ctrl_c_caught_after_native_evaluated_code_still_exits_130_under_python_m(tmp_path):
    """A KeyboardInterrupt that escapes code a C extension ran with PyRun_String (as pybind11 does during the
    TensorFlow import) is caught by the job's handler; `python -m` must still end with 130, not by SIGINT."""
    (tmp_path / "native_ctrl_c.py").write_text(
        "import ctypes\n"
        "from deepfl.cli import app\n"
        "run = ctypes.pythonapi.PyRun_String\n"
        "run.restype = ctypes.py_object\n"
        "run.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.py_object, ctypes.py_object]\n"
        "def main(argv):\n"
        "    run(b'raise KeyboardInterrupt', 257, {}, {})\n"
        "app.run_app(main)\n"
    )
    assert_one_line(*run_module(tmp_path, "native_ctrl_c"))


def test_an_error_a_ctrl_c_caused_still_exits_130_with_the_line(tmp_path):
    """A KeyboardInterrupt raised inside a C call can come up as another error: a Ctrl-C of extract-features once
    ended with exit 1 and "error (SystemError): ... bad argument to internal function (unexpected ...)"."""
    (tmp_path / "ctrl_c_as_error.py").write_text(
        "import os, signal, time\n"
        "from deepfl.cli import app\n"
        "def main(argv):\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        time.sleep(30)\n"
        "    except KeyboardInterrupt:\n"
        "        raise SystemError('bad argument to internal function') from None\n"
        "app.run_app(main)\n"
    )
    assert_one_line(*run_module(tmp_path, "ctrl_c_as_error"))


def ctrl_c_after_the_done_line(folder: Path, module: str) -> tuple[int, str]:
    """Runs `python -m module` from `folder`, sends SIGINT 0.5 s after it prints "done"; (exit code, stderr)."""
    env = job_env()
    env["PYTHONPATH"] = f"{folder}{os.pathsep}{env['PYTHONPATH']}"
    proc = subprocess.Popen(
        [sys.executable, "-m", module], cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline() == "done\n"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def test_ctrl_c_after_the_job_finished_changes_nothing(tmp_path):
    """A Ctrl-C that lands while a finished job's process exits (its work done, its last line printed, the
    interpreter tearing down, here a slow exit handler) changed nothing: exit 0 and nothing on stderr. Before, the
    handler still raised KeyboardInterrupt there (a traceback under "Exception ignored in atexit callback"; in
    session 17 a stage-1 run ended with 130 and no line)."""
    (tmp_path / "late_ctrl_c.py").write_text(
        "import atexit, time\n"
        "from deepfl.cli import app\n"
        "def main(argv):\n"
        "    atexit.register(time.sleep, 3)\n"
        "    print('done', flush=True)\n"
        "app.run_app(main)\n"
    )
    assert ctrl_c_after_the_done_line(tmp_path, "late_ctrl_c") == (0, "")


def test_ctrl_c_during_the_cleanup_after_the_summary_line_changes_nothing(tmp_path):
    """After a job's main returns (its summary printed), the job still sweeps its output folder for dead runs'
    temporary files (0.3 s after deepfl-distort's summary). A Ctrl-C there was reported as an interruption, exit
    130 (session 35's walk: 4 of 4 distort runs signalled on the summary line). Here the sweep is made slow."""
    (tmp_path / "ctrl_c_in_sweep.py").write_text(
        "import time\n"
        "from deepfl.cli import app\n"
        "sweeps = []\n"
        "def slow_sweep():\n"
        "    sweeps.append(1)\n"
        "    if len(sweeps) == 2:\n"
        "        time.sleep(3)\n"
        "app._remove_dead_runs_temp_files = slow_sweep\n"
        "def main(argv):\n"
        "    print('done', flush=True)\n"
        "app.run_app(main)\n"
    )
    assert ctrl_c_after_the_done_line(tmp_path, "ctrl_c_in_sweep") == (0, "")


def test_ctrl_c_while_the_interpreter_unloads_modules_after_the_job_finished_changes_nothing(tmp_path):
    """Later still than the exit handlers: Python puts SIGINT's default action back before it unloads modules
    (TensorFlow's take a second or more), and a Ctrl-C there killed the finished job by the signal (session 34:
    `deepfl-train-multitask` printed its summary, removed its checkpoints, and exited 130 with no line). Here an
    object that ends its life in that teardown sends the Ctrl-C."""
    (tmp_path / "teardown_ctrl_c.py").write_text(
        "import os, signal, time\n"
        "from deepfl.cli import app\n"
        "class EndsInTeardown:\n"
        "    def __del__(self, kill=os.kill, pid=os.getpid(), sleep=time.sleep):\n"
        "        kill(pid, signal.SIGINT)\n"
        "        sleep(0.5)\n"
        "def main(argv):\n"
        "    print('done', flush=True)\n"
        "kept_until_teardown = EndsInTeardown()\n"
        "app.run_app(main)\n"
    )
    code, err = run_module(tmp_path, "teardown_ctrl_c")
    assert code == 0 and err == "", (code, err[-2000:])


def test_ctrl_c_while_a_console_script_imports_its_modules_prints_one_line():
    """`deepfl-distort` took half a second to import Numba and Pillow before its Ctrl-C handling began: a Ctrl-C
    there printed a KeyboardInterrupt traceback. Importing deepfl.cli in a process named deepfl-* now ends it
    with one line and 130; any other program (pytest, a bench script) keeps its own Ctrl-C handling."""
    program = (
        "import sys; sys.argv[0] = {name!r}\n"
        "import os, signal, time, deepfl.cli\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "time.sleep(30)\n"
    )
    starting = [sys.executable, "-c", program.format(name="/venv/bin/deepfl-distort")]
    proc = subprocess.run(starting, env=job_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED and proc.stderr.splitlines() == [
        "interrupted while starting; nothing was done"
    ], proc.stderr[-2000:]
    other = [sys.executable, "-c", program.format(name="bench.py")]
    proc = subprocess.run(other, env=job_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr, proc.stderr[-2000:]


def test_a_run_with_nothing_to_resume_says_so_when_interrupted(monkeypatch, capsys):
    """deepfl-predict printing its table (no CSV --output) keeps nothing a rerun could resume from: its Ctrl-C line
    must not tell the user to rerun to resume."""
    from deepfl.cli import app

    monkeypatch.setattr(app, "_interrupted_message", app.INTERRUPTED_MESSAGE)
    app._InterruptHandler().report()
    assert capsys.readouterr().err.strip() == INTERRUPTED_MESSAGE
    app.nothing_to_resume()
    app._InterruptHandler().report()
    assert capsys.readouterr().err.strip() == app.INTERRUPTED_WITHOUT_RESUME_MESSAGE
