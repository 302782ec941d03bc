"""Runs `deepfl.cli.extract_features` from a source checkout (`python experiments/extract_features.py --help`)."""

from deepfl.cli.extract_features import run

if __name__ == "__main__":
    run()
