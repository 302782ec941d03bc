"""deepfl turns TensorFlow's oneDNN kernels on where TensorFlow would not (no AVX-512), keeping a user's choice.

Each case runs in a fresh interpreter: TensorFlow reads TF_ENABLE_ONEDNN_OPTS once, at its import.
"""

import os
import subprocess
import sys

import pytest

PROBE = """
import os
import deepfl, tensorflow
from tensorflow.python.util import _pywrap_util_port
print(os.environ["TF_ENABLE_ONEDNN_OPTS"], _pywrap_util_port.IsMklEnabled())
"""


def onednn_state(setting: str | None) -> tuple[str, bool]:
    """(the variable as TensorFlow saw it, whether TensorFlow runs oneDNN kernels) after `import deepfl, tensorflow`."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    variable, enabled = out.stdout.strip().splitlines()[-1].split()
    return variable, enabled == "True"


@pytest.mark.parametrize("setting, expected", [(None, "1"), ("0", "0")])
def test_importing_deepfl_first_turns_onednn_on_unless_the_user_said_no(setting, expected):
    # On CPUs without AVX-512 TensorFlow's own default is off, so there the second check also fails without deepfl.
    assert onednn_state(setting) == (expected, expected == "1")
