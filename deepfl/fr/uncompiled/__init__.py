"""The FR metrics in NumPy/SciPy: what a metric runs on a new input shape.

A metric's TensorFlow graph is specialised to static image sizes and its XLA stages take seconds to compile per
new (batch, height, width), far longer than scoring the batch. NumPy and SciPy compile nothing, so a new shape
costs only its arithmetic: `deepfl.fr.functional.staging.compile_on_repeat` runs the function here on a shape's
calls until they have taken about what compiling would cost, and the compiled graph from then on. Each
`_<name>.py` follows the same original as `deepfl/fr/_<name>.py` (same conventions, float64 arithmetic) and its
scores agree with the compiled graph's within the metrics' tested tolerances; `functional` holds the shared
MATLAB conventions.

Every function here takes the arguments of its graph's entry point as arrays, in the same order: float32 NHWC
RGB in [0, 255] `ref` (R references) and `dist` (N distorted images), any array the graph takes besides (SFF's
basis `w`), and `ref_index` (N integers, or None for R = N, pair i = (ref[i], dist[i])); it returns N float64
scores. `banded` holds the banded-matrix filtering they share.
"""
