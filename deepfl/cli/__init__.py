"""The command-line scripts (absl flags), one module per pipeline step; each is a console script `deepfl-<step>`.

A script only parses its flags and calls the library; `app` holds what every script shares (common flags and the
one-line error handling of `run_app`).
"""

import os

# Quiet TensorFlow's C++ log lines before any script imports it: level 3 also hides the notices TensorFlow logs at
# ERROR level while working normally (e.g. "oneDNN supports DT_UINT8 only on platforms with AVX-512", written at
# the first uint8 transpose). `--verbosity=1` (see `app.run_app`) or TF_CPP_MIN_LOG_LEVEL set by the user shows them.
TF_LOG_LEVEL_SET_BY_USER = "TF_CPP_MIN_LOG_LEVEL" in os.environ
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
