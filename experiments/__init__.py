"""Command-line experiment scripts (absl flags), one per pipeline step; each is also a console script."""

import os

# Quiet TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) before any script imports it; users can still
# set TF_CPP_MIN_LOG_LEVEL=0 to see everything.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
