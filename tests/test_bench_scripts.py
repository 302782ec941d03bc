"""Every script in bench/ runs to the end on the smallest inputs it takes, and prints the comparison it exists
for. The figures themselves are not checked (the brief: no wall-clock assertions in tests); what is checked is
that a script the README tells users to run has not rotted: `bench/distort.py` unpacked the generator's
results in a shape they had lost many commits before anyone noticed. The slow ones (stage-1 training on IRV2,
the 20,000-image scale run) are only asked for `--help` here."""

import sys

import pytest

import killrestart as kr

BENCH = kr.REPO_ROOT / "bench"

# (script and its smallest flags, text its last lines must hold)
RUNS = [
    ("distort.py --refs_per_type 1 --workers 1 --size 128x96", "images/s"),
    ("fr.py --pairs 1 --batch 1 --repeats 1 --metrics ssim,gmsd --via_compute", "compute"),
    ("fr_mixed.py --pairs 2 --rounds 1 --processes 1 --metrics ssim,gmsd", "median over processes"),
    ("label.py --pairs 5 --batch 5 --repeats 1 --metrics ssim,gmsd", "pairs/s"),
    ("label_mixed.py --refs 2 --levels 1 --metrics ssim,gmsd", "piq/ours"),
    ("features.py --arch tiny --n 2 --size 96 96 --repeats 1 --batch 2", "ratio deepfl/peer"),
    ("features_mixed.py --arch tiny --n 2", "ratio mixed / one size"),
    ("large_images.py --arch tiny --size 160x120", "whole / banded"),
    ("pipeline.py --num_images 4 --batch 2 --repeats 1", "images per CPU-second"),
    ("pipeline.py --num_images 6 --batch 2 --repeats 1 --sizes 3 --formats png", "deepfl-rep"),
    ("denoise.py", "coffee"),
    ("job_exit.py --repeats 1 --jobs predict", "saved (peer - quick)"),
    ("keras_import.py --repeats 1", "ratio plain / jobs"),
    ("train_gpu.py --help", "--precisions"),
    ("scale.py --help", "--scales"),
    ("octave_compare.py --help", "--matlab_dir"),
]


def test_every_bench_script_is_listed_here():
    listed = {command.split()[0] for command, _ in RUNS}
    assert listed == {path.name for path in BENCH.glob("*.py")} - {"__init__.py"}


@pytest.mark.parametrize("command, expected", RUNS, ids=[command.split()[0] for command, _ in RUNS])
def test_bench_script_runs_on_the_smallest_inputs(command, expected):
    result = kr.run_job([sys.executable, *command.split()], timeout=600, cwd=BENCH)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert expected in result.stdout, result.stdout[-2000:]
