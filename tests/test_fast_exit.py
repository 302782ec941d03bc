"""A job's process ends without unloading its modules (about a second of CPU per job for TensorFlow's and Keras'),
but otherwise as Python ends it: exit handlers run, buffered output arrives, the exit code is the job's. Only
when the process was started for the job: a program that runs a job inside its own process goes on after it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from killrestart import job_env

# What the tests observe: a file written by an exit handler, and one written by an object freed when the
# interpreter unloads the module holding it.
OBSERVERS = """\
import atexit, os

class FreedAtTeardown:
    def __del__(self, open=open, path=os.environ["TEARDOWN_MARK"]):
        open(path, "w").close()

kept_until_teardown = FreedAtTeardown()
atexit.register(lambda: open(os.environ["ATEXIT_MARK"], "w").close())
"""
# A console script's wrapper as pip writes it (its name starts with deepfl-), with the observers in its main
# module, output left in stdout's buffer (a pipe), and, when asked, a thread Python waits for at exit.
WRAPPER = (
    OBSERVERS
    + """\
import sys, threading, time
from deepfl.cli.train_mlp import run

print("written before the job, still buffered")
if os.environ.get("WAITED_FOR_THREAD"):
    threading.Thread(target=time.sleep, args=(2,)).start()
if __name__ == "__main__":
    sys.exit(run())
"""
)
# train-mlp refuses a missing feature cache inside the job (not while parsing flags): exit code 2.
JOB_FLAGS = ["--features", "nosuch.h5", "--dataset", "kadid10k", "--data_dir", ".", "--out_dir", "mlp"]


def run_wrapper(tmp_path: Path, *launch: str, **extra_env: str) -> tuple[subprocess.CompletedProcess, bool, bool]:
    """Runs the wrapper (as `python <launch...> deepfl-probe <flags>`); returns the process, whether the exit
    handler ran and whether the main module was unloaded."""
    (tmp_path / "deepfl-probe").write_text(WRAPPER)
    marks = {"ATEXIT_MARK": tmp_path / "atexit.mark", "TEARDOWN_MARK": tmp_path / "teardown.mark"}
    for mark in marks.values():
        mark.unlink(missing_ok=True)
    env = job_env(**{name: str(path) for name, path in marks.items()}, **extra_env)
    proc = subprocess.run(
        [sys.executable, *launch, str(tmp_path / "deepfl-probe"), *JOB_FLAGS],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc, marks["ATEXIT_MARK"].exists(), marks["TEARDOWN_MARK"].exists()


def test_a_console_script_ends_after_its_exit_handlers_without_unloading_modules(tmp_path):
    proc, exit_handler_ran, unloaded = run_wrapper(tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
    assert proc.stdout == "written before the job, still buffered\n"
    assert exit_handler_ran
    assert not unloaded


def test_a_thread_python_waits_for_gets_the_usual_exit(tmp_path):
    proc, exit_handler_ran, unloaded = run_wrapper(tmp_path, WAITED_FOR_THREAD="1")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert exit_handler_ran and unloaded


def test_a_profiler_running_the_script_gets_the_usual_exit_and_its_output(tmp_path):
    profile = tmp_path / "job.prof"
    proc, exit_handler_ran, unloaded = run_wrapper(tmp_path, "-m", "cProfile", "-o", str(profile))
    assert proc.returncode == 0, proc.stderr[-2000:]  # cProfile takes the job's SystemExit and goes on
    assert exit_handler_ran and unloaded
    assert profile.stat().st_size > 0


# For a process whose main module is not ours, the observers go in through sitecustomize.
CALLER = """\
import sys
sys.argv = ["train_mlp", *sys.argv[1:]]
from deepfl.cli.train_mlp import run
try:
    run()
except SystemExit as exc:
    print("went on after exit code", exc.code)
"""


def run_observed(tmp_path: Path, *command: str) -> tuple[subprocess.CompletedProcess, bool, bool]:
    (tmp_path / "sitecustomize.py").write_text(OBSERVERS)
    marks = {"ATEXIT_MARK": tmp_path / "atexit.mark", "TEARDOWN_MARK": tmp_path / "teardown.mark"}
    for mark in marks.values():
        mark.unlink(missing_ok=True)
    env = job_env(**{name: str(path) for name, path in marks.items()})
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env['PYTHONPATH']}"
    proc = subprocess.run(
        [sys.executable, *command, *JOB_FLAGS], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    return proc, marks["ATEXIT_MARK"].exists(), marks["TEARDOWN_MARK"].exists()


def test_python_m_of_a_script_ends_without_unloading_modules(tmp_path):
    proc, exit_handler_ran, unloaded = run_observed(tmp_path, "-m", "deepfl.cli.train_mlp")
    assert proc.returncode == 2 and proc.stderr.startswith("error: "), proc.stderr[-2000:]
    assert exit_handler_ran and not unloaded


def test_a_program_that_runs_a_job_in_its_own_process_goes_on_after_it(tmp_path):
    proc, exit_handler_ran, unloaded = run_observed(tmp_path, "-c", CALLER)
    assert proc.returncode == 0 and proc.stdout == "went on after exit code 2\n", proc.stderr[-2000:]
    assert exit_handler_ran and unloaded
