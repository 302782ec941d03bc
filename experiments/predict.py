"""Runs `deepfl.cli.predict` from a source checkout (`python experiments/predict.py --help`)."""

from deepfl.cli.predict import run

if __name__ == "__main__":
    run()
