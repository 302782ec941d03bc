"""How long a fresh process takes to import Keras (and TensorFlow with it), as the command-line jobs do it and as
Keras does it by itself.

The jobs import Keras without the scikit-learn and matplotlib imports it makes for `keras.wrappers` and
`keras.visualization` (`deepfl.lean_keras`); the peer is a plain `import keras`. Each way runs in its own fresh
process, alternating, the same number of times; the table gives the median wall and CPU seconds of the import
(measured inside the process, interpreter start-up excluded) and the ratio plain / jobs'.

    python bench/keras_import.py --repeats 5
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from absl import app, flags

flags.DEFINE_integer("repeats", 5, "Fresh processes for each way.", lower_bound=1)
FLAGS = flags.FLAGS

REPO_ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys, time
if sys.argv[1] == "jobs":
    from deepfl.lean_keras import keras_without_extras
    keras_without_extras()
wall, cpu = time.perf_counter(), time.process_time()
import keras
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
extras = [m for m in ("sklearn", "matplotlib") if m in sys.modules]
print(json.dumps({"wall": wall, "cpu": cpu, "extras": extras}))
"""

WAYS = {"jobs": "deepfl jobs (keras_without_extras)", "plain": "plain import keras"}


def one_import(way: str) -> dict:
    env = dict(
        os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=f"{REPO_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    )
    run = subprocess.run([sys.executable, "-c", CHILD, way], capture_output=True, text=True, env=env, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    found: dict[str, list[dict]] = {way: [] for way in WAYS}
    for _ in range(FLAGS.repeats):
        for way in WAYS:
            found[way].append(one_import(way))
    print(f"{'way':<40} {'wall s':>8} {'CPU s':>8}  imported extras")
    medians = {}
    for way, label in WAYS.items():
        wall = statistics.median(r["wall"] for r in found[way])
        cpu = statistics.median(r["cpu"] for r in found[way])
        medians[way] = (wall, cpu)
        extras = ", ".join(found[way][-1]["extras"]) or "none"
        print(f"{label:<40} {wall:>8.2f} {cpu:>8.2f}  {extras}")
    (jobs_wall, jobs_cpu), (plain_wall, plain_cpu) = medians["jobs"], medians["plain"]
    print(
        f"ratio plain / jobs: wall {plain_wall / jobs_wall:.2f}x, CPU {plain_cpu / jobs_cpu:.2f}x "
        f"(saved {plain_wall - jobs_wall:.2f} s wall per process; median of {FLAGS.repeats})"
    )


if __name__ == "__main__":
    app.run(main)
