"""Runs `deepfl.cli.train_mlp` from a source checkout (`python experiments/train_mlp.py --help`)."""

from deepfl.cli.train_mlp import run

if __name__ == "__main__":
    run()
