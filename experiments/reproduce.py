"""Runs `deepfl.cli.reproduce` from a source checkout (`python experiments/reproduce.py --help`)."""

from deepfl.cli.reproduce import run

if __name__ == "__main__":
    run()
