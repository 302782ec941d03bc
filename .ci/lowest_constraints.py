"""Prints pip constraints that hold every dependency in setup.py at the low end of its range.

`install_requires` and the `test` extra are read from setup.py as text (running it would run setuptools), and
each `name>=X,<Y` becomes `name==X.*`: the lowest release line setup.py admits, at its newest patch. CI installs
the newest releases; `.ci/run_lowest` installs these, so both ends of every range get tested.

Usage: python .ci/lowest_constraints.py [setup.py] > constraints.txt
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

LOWER_BOUND = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*>=\s*([0-9][0-9.]*)")


def setup_keyword(tree: ast.Module, name: str) -> ast.expr:
    """The value given for keyword `name` in the module's `setup(...)` call."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            for keyword in node.keywords:
                if keyword.arg == name:
                    return keyword.value
    raise SystemExit(f"setup.py: no setup({name}=...) found")


def lowest_constraints(setup_text: str) -> list[str]:
    """`name==X.*` for each requirement `name>=X,...` of install_requires and extras_require['test']."""
    tree = ast.parse(setup_text)
    requirements = list(ast.literal_eval(setup_keyword(tree, "install_requires")))
    extras = setup_keyword(tree, "extras_require")
    if not isinstance(extras, ast.Dict):
        raise SystemExit("setup.py: extras_require is not a literal dict")
    for key, value in zip(extras.keys, extras.values):
        if isinstance(key, ast.Constant) and key.value == "test":
            requirements += ast.literal_eval(value)
    constraints = []
    for requirement in requirements:
        match = LOWER_BOUND.match(requirement)
        if match is None:
            raise SystemExit(f"setup.py: {requirement!r} has no lower bound (name>=version)")
        name, _, version = match.groups()
        constraints.append(f"{name}=={version}.*")
    return constraints


def main(argv: list[str]) -> int:
    setup_path = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1] / "setup.py"
    print("\n".join(lowest_constraints(setup_path.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
