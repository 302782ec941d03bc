"""The command-line scripts (absl flags), one module per pipeline step; each is a console script `deepfl-<step>`.

A script only parses its flags and calls the library; `app` holds what every script shares (common flags and the
one-line error handling of `run_app`).
"""

import os

# Quiet TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) before any script imports it; users can still
# set TF_CPP_MIN_LOG_LEVEL=0 to see everything.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
