"""The package's shape: no import cycle among deepfl's modules, no test module importing another, and
`import deepfl` reaching every public module lazily.

Imports are read with `ast` from the source (module-level and function-level alike; only `if TYPE_CHECKING:`
blocks are left out, since they never run), so the test needs no import of TensorFlow.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "deepfl"
TESTS = REPO / "tests"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def deepfl_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _runtime_imports(tree: ast.AST):
    """Every Import/ImportFrom node that can run: the whole tree but the bodies of `if TYPE_CHECKING:`."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imported_modules(path: Path, name: str, known: set[str]) -> set[str]:
    """The modules of `known` that the file at `path` (module `name`) imports.

    `from a.b import c` counts as importing a.b.c when that is a module, else a.b (c is then one of its
    attributes, so a.b's __init__ runs). A parent package reached only on the way to a submodule is not counted:
    Python runs it first, but a cycle through it alone cannot leave a name undefined.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        found.update(t for t in targets if t in known and t != name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = deepfl_modules()
    known = set(modules)
    return {name: imported_modules(path, name, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search with colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_import_graph_reads_function_level_imports():
    graph = import_graph()
    assert "deepfl.fileio" in graph["deepfl.images"]  # module level
    assert "deepfl.models" in graph["deepfl.features"]  # inside load_extractor only


def test_find_cycle_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_deepfl_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


# Rule: tests share code through helper modules in tests/ (any module whose name does not start with "test_",
# e.g. helpers_*.py, killrestart.py, badinputs.py); no module in tests/ imports a test module or conftest.
def _is_test_module(name: str) -> bool:
    return name.startswith("test_") or name == "conftest"


def test_no_test_module_imports_another_test_module():
    local = {path.stem for path in TESTS.glob("*.py")}
    offenders = []
    for path in sorted(TESTS.glob("*.py")):
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                if top == "tests" or (top in local and _is_test_module(top)):
                    offenders.append(f"{path.name}:{node.lineno} imports {name}")
    assert not offenders, "move shared code into a helper module (tests/helpers_*.py):\n" + "\n".join(offenders)


def public_modules() -> list[str]:
    """deepfl's public top-level modules and subpackages (names without a leading underscore)."""
    names = {p.stem for p in PACKAGE.glob("*.py")} | {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    return sorted(n for n in names if not n.startswith("_"))


def readme_modules() -> list[str]:
    """The `deepfl.<name>` modules the README names."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return sorted({m for m in re.findall(r"\bdeepfl\.([a-z_]+)\b", text) if m != "predict"})


def test_import_deepfl_reaches_every_public_module_lazily():
    names = public_modules()
    assert set(readme_modules()) <= set(names), set(readme_modules()) - set(names)
    code = (
        "import sys, deepfl; assert 'deepfl.protocol' not in sys.modules; "
        f"names = {names!r}; "
        "bad = [n for n in names if getattr(deepfl, n) is not sys.modules['deepfl.' + n]]; "
        "assert not bad, bad; assert callable(deepfl.predict); print(len(names))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.split()[-1]) == len(names)


def test_dir_of_the_package_lists_its_api_once():
    """dir(deepfl) listed `fr` twice once it was imported, and the helpers its __init__ imports (os, Any)."""
    import deepfl
    import deepfl.fr  # noqa: F401  (imported: now also a global of the package)

    listed = dir(deepfl)
    assert len(listed) == len(set(listed)) and {"fr", "predict", "distortions", "__version__"} <= set(listed)
    assert not {"os", "Any", "importlib", "pkgutil"} & set(listed)
