"""Runs `deepfl.cli.label` from a source checkout (`python experiments/label.py --help`)."""

from deepfl.cli.label import run

if __name__ == "__main__":
    run()
