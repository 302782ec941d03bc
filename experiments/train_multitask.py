"""Runs `deepfl.cli.train_multitask` from a source checkout (`python experiments/train_multitask.py --help`)."""

from deepfl.cli.train_multitask import run

if __name__ == "__main__":
    run()
