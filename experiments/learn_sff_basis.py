"""Runs `deepfl.cli.learn_sff_basis` from a source checkout (`python experiments/learn_sff_basis.py --help`)."""

from deepfl.cli.learn_sff_basis import run

if __name__ == "__main__":
    run()
