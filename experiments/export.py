"""Runs `deepfl.cli.export` from a source checkout (`python experiments/export.py --help`)."""

from deepfl.cli.export import run

if __name__ == "__main__":
    run()
