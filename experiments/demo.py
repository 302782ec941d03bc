"""Runs `deepfl.cli.demo` from a source checkout (`python experiments/demo.py --help`)."""

from deepfl.cli.demo import run

if __name__ == "__main__":
    run()
