"""Runs `deepfl.cli.distort` from a source checkout (`python experiments/distort.py --help`)."""

from deepfl.cli.distort import run

if __name__ == "__main__":
    run()
