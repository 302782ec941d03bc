"""How long a job's process takes to end once its work is done: from its last line to its exit.

A process started for the job (`python -m deepfl.cli.<step>`, or the console script `deepfl-<step>`) runs its
exit handlers and ends without unloading its modules (`deepfl.cli.app`); the peer is the same job run by a
program that imports the script and calls its `run()` (`python -c ...`), which gets Python's usual exit, with
TensorFlow's and Keras' modules unloaded one by one. Both run in turn, the same number of times, in this process'
loop; the table gives the median seconds from the last line to the exit and the median wall time.

    python bench/job_exit.py --repeats 4
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags

flags.DEFINE_integer("repeats", 3, "Runs of each job in each way.", lower_bound=1)
flags.DEFINE_integer("images", 2, "Photos (of two sizes) for deepfl-extract-features.", lower_bound=1)
flags.DEFINE_list(
    "jobs",
    ["extract", "predict"],
    "Which jobs: extract (deepfl-extract-features with a random "
    "InceptionResNetV2), predict (deepfl-predict refusing a file that is not a model).",
)
FLAGS = flags.FLAGS

REPO_ROOT = Path(__file__).resolve().parent.parent


def write_photos(folder: Path, count: int) -> None:
    from skimage import data

    from deepfl.images import write_image

    photos = (data.astronaut()[:200, :180], data.chelsea()[:190, :230])
    for k in range(count):
        write_image(folder / f"photo{k}.png", photos[k % 2])


def timed_run(command: list[str], cwd: Path) -> tuple[float, float, int]:
    """(seconds from the last output line to the exit, wall seconds, exit code)."""
    env = dict(
        os.environ, DEEPFL_NO_PROGRESS="1", PYTHONPATH=f"{REPO_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    )
    start = time.monotonic()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = start
    for _ in proc.stdout:
        last = time.monotonic()
    proc.wait()
    end = time.monotonic()
    return end - last, end - start, proc.returncode


def main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="deepfl_job_exit_") as tmp:
        work = Path(tmp)
        (work / "photos").mkdir()
        write_photos(work / "photos", FLAGS.images)
        (work / "bad.keras").write_text("not a model")
        every_job = {
            "extract": (
                "extract-features (IRV2, random)",
                "extract_features",
                ["--images", "photos", "--weights", "none", "--out_dir", "features"],
                0,
            ),
            "predict": ("predict, bad model (refused)", "predict", ["--model", "bad.keras", "photos"], 2),
        }
        jobs = {label: job for name, (label, *job) in every_job.items() if name in FLAGS.jobs}
        if not jobs:
            raise SystemExit(f"--jobs: none of {FLAGS.jobs} is extract or predict")
        ways = {
            "quick exit (python -m)": lambda step, args: [sys.executable, "-m", f"deepfl.cli.{step}", *args],
            "usual exit (peer)": lambda step, args: [
                sys.executable,
                "-c",
                f"import sys; sys.argv[0] = {step!r}; from deepfl.cli.{step} import run; run()",
                *args,
            ],
        }
        results: dict[tuple[str, str], list[tuple[float, float]]] = {(j, w): [] for j in jobs for w in ways}
        for _ in range(FLAGS.repeats):
            for job, (step, args, expected_code) in jobs.items():
                for way, command in ways.items():
                    subprocess.run(["rm", "-rf", str(work / "features")], check=True)
                    tail, wall, code = timed_run(command(step, args), work)
                    if code != expected_code:
                        raise SystemExit(f"{job} ({way}): exit code {code}, expected {expected_code}")
                    results[(job, way)].append((tail, wall))
    print(f"{'job':34s} {'exit':24s} {'last line -> exit':>18s} {'wall':>8s}")
    for job in jobs:
        medians = {}
        for way in ways:
            tails, walls = zip(*results[(job, way)])
            medians[way] = statistics.median(tails), statistics.median(walls)
            print(f"{job:34s} {way:24s} {medians[way][0]:16.2f} s {medians[way][1]:6.2f} s")
        quick, usual = medians.values()
        print(f"{job:34s} {'saved (peer - quick)':24s} {usual[0] - quick[0]:16.2f} s {usual[1] - quick[1]:6.2f} s")


if __name__ == "__main__":
    app.run(main)
