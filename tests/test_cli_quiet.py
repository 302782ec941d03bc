"""Jobs start quietly: no TensorFlow C++ start-up lines and no retracing warnings unless --verbosity asks; a
script gets the same quiet start from one call of `deepfl.quiet.quiet_tensorflow`. Jobs also import Keras without
the scikit-learn and matplotlib it imports for features they never use (`deepfl.lean_keras`)."""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    from deepfl.cli import app

    def main(argv):
        import tensorflow as tf

        @tf.function
        def double(v):
            return v * 2

        for n in range(1, 9):  # a new shape each call: tf.function retraces and warns from the 5th on
            double(tf.zeros([n]))
        # TensorFlow logs a notice at ERROR level here on CPUs without AVX-512 (oneDNN and uint8)
        tf.transpose(tf.zeros([2, 4, 4, 3], tf.uint8), [0, 2, 1, 3])
        print("finished")

    app.run_app(main)
""")


def _run(*flags: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-c", SCRIPT, *flags], capture_output=True, text=True, env=env, timeout=300)


def test_job_output_has_no_tensorflow_log_lines_by_default():
    quiet = _run()
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.strip() == "finished"
    assert quiet.stderr == ""  # not one line: no absl pre-init notice, oneDNN/CUDA lines, retracing warning


def test_verbosity_lets_the_warnings_through():
    verbose = _run("--verbosity=1")
    assert verbose.returncode == 0, verbose.stderr
    assert "retracing" in verbose.stderr


def test_a_library_that_probes_for_tensorflow_first_does_not_make_the_job_loud():
    """torch (and other libraries) call `importlib.util.find_spec("tensorflow")` at their import without importing
    it; the quiet import must survive such a probe made before TensorFlow is imported."""
    probe = "    import importlib.util\n    assert importlib.util.find_spec('tensorflow') is not None\n"
    script = SCRIPT.replace("    import tensorflow as tf\n", probe + "    import tensorflow as tf\n")
    assert script != SCRIPT
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "finished"
    assert run.stderr == ""


def test_a_script_that_asks_for_quiet_scores_without_tensorflow_lines():
    """The Python API stays as TensorFlow makes it unless asked (its start-up lines twice and a cuInit error on a
    machine without a GPU, whatever TF_CPP_MIN_LOG_LEVEL says); `deepfl.quiet.quiet_tensorflow()` before the first
    TensorFlow import gives a script the jobs' quiet start, later C++ notices included."""
    script = textwrap.dedent("""
        import deepfl
        deepfl.quiet.quiet_tensorflow()
        import numpy as np
        from deepfl.fr import compute
        ref = np.full((1, 180, 180, 3), 120, np.uint8)
        ref[:, 60:120, 60:120] = 30
        print(round(float(compute(ref, ref, ["ssim"])["ssim"][0]), 6))
        import tensorflow as tf
        tf.transpose(tf.zeros([2, 4, 4, 3], tf.uint8), [0, 2, 1, 3])  # an ERROR-level oneDNN notice on some CPUs
        import sys
        print("tensorflow" in sys.modules)
    """)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["1.0", "True"]
    assert run.stderr == ""


JOBS = ("demo", "distort", "export", "extract_features", "label", "learn_sff_basis", "predict", "reproduce")
JOBS += ("train_mlp", "train_multitask")


def test_no_job_module_imports_tensorflow_before_the_job_quiets_it():
    # The quiet import is set up when a job starts (`app.run_app`); a TensorFlow import while the script's module
    # is imported comes before it and prints TensorFlow's start-up lines, even for --help (session 25: a
    # module-level import in deepfl.labeling made deepfl-label loud).
    check = "import importlib, sys\nimportlib.import_module('deepfl.cli.' + sys.argv[1])\n"
    check += "print('tensorflow' in sys.modules)"
    loud = []
    for job in JOBS:
        run = subprocess.run([sys.executable, "-c", check, job], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        if run.stdout.strip() != "False":
            loud.append(job)
    assert not loud, f"importing these job modules imports TensorFlow: {loud}"


LOGGING_SCRIPT = textwrap.dedent("""
    import logging
    from deepfl.cli import app
    from deepfl.jobs import progress

    def main(argv):
        log = logging.getLogger("deepfl")
        log.info("an info line")
        log.warning("a warning line")
        for _ in progress(range(3), total=3, desc="bar"):
            pass
        return 0

    app.run_app(main)
""")


def test_verbosity_minus_one_keeps_warnings_only_and_no_progress_0_keeps_the_bar():
    """A user walk: --verbosity=-1 still printed the jobs' INFO lines, and DEEPFL_NO_PROGRESS=0 silenced the bars
    as DEEPFL_NO_PROGRESS=1 does."""

    def run(flag: str, no_progress: str | None) -> str:
        env = {k: v for k, v in os.environ.items() if k != "DEEPFL_NO_PROGRESS"}
        env.update({} if no_progress is None else {"DEEPFL_NO_PROGRESS": no_progress})
        argv = [sys.executable, "-c", LOGGING_SCRIPT, *([flag] if flag else [])]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stderr

    default, quiet = run("", "0"), run("--verbosity=-1", "1")
    assert "INFO an info line" in default and "WARNING a warning line" in default and "bar: 100%" in default
    assert "an info line" not in quiet and "WARNING a warning line" in quiet and "bar:" not in quiet


def test_held_back_lines_are_replayed_for_a_failed_import_but_not_for_a_ctrl_cs_doing(capfd):
    """A KeyboardInterrupt inside TensorFlow's C++ import code can come up as another error (session 35's CI: a
    Ctrl-C during the import printed TensorFlow's start-up lines before the one line); while the job's Ctrl-C flag
    is set, what the import wrote stays hidden."""
    import os

    import pytest

    from deepfl.quiet import stderr_to_file

    for interrupted, shown in ((lambda: False, True), (lambda: True, False), (None, True)):
        with pytest.raises(RuntimeError):
            with stderr_to_file(interrupted):
                os.write(2, b"a native start-up line\n")
                raise RuntimeError("bad argument to internal function")
        assert ("a native start-up line" in capfd.readouterr().err) == shown


EXTRAS_SCRIPT = textwrap.dedent("""
    import sys

    def main(argv):
        import keras

        print(*[m in sys.modules for m in ("sklearn", "matplotlib")])
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])  # Keras works without them
        print(model(keras.ops.ones((1, 3))).shape)
        from sklearn.datasets import load_sample_image  # and they import normally afterwards
        import matplotlib.pyplot

        print(load_sample_image("china.jpg").shape)
        return 0

    if sys.argv[1:] == ["plain"]:
        main([])
    else:
        from deepfl.cli import app

        app.run_app(main)
""")


def test_jobs_import_keras_without_scikit_learn_and_matplotlib_which_still_import_afterwards():
    """A third of `import keras` goes to scikit-learn and matplotlib, for keras.wrappers and keras.visualization
    (`deepfl.lean_keras`); a job leaves them out of Keras' import. The plain run shows this Keras does import them,
    so the job's run proves the skip."""
    plain = subprocess.run([sys.executable, "-c", EXTRAS_SCRIPT, "plain"], capture_output=True, text=True, timeout=300)
    assert plain.returncode == 0, plain.stderr
    if plain.stdout.split("\n")[0] == "False False":
        pytest.skip("this Keras imports neither scikit-learn nor matplotlib by itself: nothing to leave out")
    job = subprocess.run([sys.executable, "-c", EXTRAS_SCRIPT], capture_output=True, text=True, timeout=300)
    assert job.returncode == 0, job.stderr
    assert job.stdout.split("\n") == ["False False", "(1, 2)", "(427, 640, 3)", ""]
    assert job.stderr == ""
