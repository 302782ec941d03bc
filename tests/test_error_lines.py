"""Every error a script reports is one line: messages that embed tensor values (hundreds of lines) are reduced
to their first line and capped; unexpected exceptions exit 1 instead of printing a traceback."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from deepfl.errors import MAX_MESSAGE_CHARS, one_line

REPO = Path(__file__).resolve().parents[1]

# What TensorFlow prints for a per-replica value it cannot convert: the whole tensor, over hundreds of lines.
TENSOR_DUMP = (
    "Attempt to convert a value (PerReplica:{\n"
    "  0: <tf.Tensor: shape=(2, 64, 64, 3), dtype=float32, numpy=\n"
    + repr(np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32))
    + "}) with an unsupported type (<class 'tensorflow.python.distribute.values.PerReplica'>) to a Tensor."
)

SCRIPT = """
import sys
import numpy as np
from absl import flags
from deepfl.cli import app
flags.DEFINE_string("kind", "value", "which exception")
MESSAGE = {message!r}

def main(argv):
    if flags.FLAGS.kind == "value":
        raise ValueError(MESSAGE)
    if flags.FLAGS.kind == "runtime":
        raise RuntimeError(MESSAGE)
    raise KeyError("x" * 5000)

app.run_app(main)
"""


def _run(kind, *extra):
    code = SCRIPT.format(message=TENSOR_DUMP)
    return subprocess.run(
        [sys.executable, "-c", code, f"--kind={kind}", *extra], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_one_line_reduces_a_tensor_dump():
    assert TENSOR_DUMP.count("\n") > 100
    line = one_line(ValueError(TENSOR_DUMP))
    assert line == "Attempt to convert a value (PerReplica:{"
    long = one_line(RuntimeError("y" * 1000))
    assert len(long) == MAX_MESSAGE_CHARS and long.endswith("...")
    graph = RuntimeError(
        "Graph execution error:\n\nDetected at node x defined at (most recent call last):\n"
        '  File "a.py", line 1, in f\nInvalid reduction dimension 0\n\t [[{{node x}}]]'
    )
    assert one_line(graph) == "Invalid reduction dimension 0"
    assert one_line(KeyError()) == "KeyError"


def test_scripts_report_every_exception_in_one_line():
    # A bad input (ValueError, exit 2) reads "error: ..." as every job's; an unexpected error names its class.
    for kind, code, prefix in (
        ("value", 2, "error: "),
        ("runtime", 1, "error (RuntimeError): "),
        ("key", 1, "error (KeyError): "),
    ):
        result = _run(kind)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == code, result.stderr[-2000:]
        assert len(lines) == 1 and lines[0].startswith(prefix), result.stderr[-2000:]
        assert "array(" not in lines[0] and len(lines[0]) < 400
    # The traceback stays available on request.
    verbose = _run("runtime", "--verbosity=1")
    assert verbose.returncode == 1 and "Traceback (most recent call last)" in verbose.stderr


def test_one_line_of_a_graph_error_is_its_root_error_not_tensorflows_tally():
    """A failure inside a distributed training step: the header, node references and TensorFlow's closing tally
    ("0 derived errors ignored.", once printed as the whole report) around the root error's text."""
    message = (
        "Graph execution error:\n\nDetected at node replica_1/model/bn/add defined at (most recent call last):\n"
        '  File "trainer.py", line 59, in train_step\n\n2 root error(s) found.\n'
        "  (0) INVALID_ARGUMENT:  Incompatible shapes: [8] vs. [3]\n\t [[{{node replica_1/model/bn/add}}]]\n"
        "  (1) INVALID_ARGUMENT:  Incompatible shapes: [8] vs. [3]\n0 successful operations.\n"
        "0 derived errors ignored. [Op:__inference_multi_step_on_iterator_6896]"
    )
    assert one_line(RuntimeError(message)) == "Incompatible shapes: [8] vs. [3]"
    from deepfl.cli.app import tensorflow_message

    assert tensorflow_message(RuntimeError(message)) == "Incompatible shapes: [8] vs. [3]"
