"""What a user gets from `pip install` (a wheel, not this editable checkout) holds every file of the package.

The suite otherwise runs against the editable install, which reads deepfl/ in place: a data file the packaging
leaves out (the SFF basis, `deepfl/fr/data/sff_ica.npz`) would pass every other test and fail in users' hands.
The wheel is built offline from a copy of the sources (no build isolation: setuptools comes from this
environment), so the checkout gets no build/ folder.
"""

import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("setuptools") is None, reason="needs setuptools to build")


def package_files(root: Path) -> set[str]:
    """Paths (relative to `root`, POSIX) of deepfl's sources and data, caches and compiled files left out."""
    return {
        path.relative_to(root).as_posix()
        for path in (root / "deepfl").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".nbi", ".nbc")
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """(path of the wheel built from a copy of the sources, the build's output)."""
    source = tmp_path_factory.mktemp("source")
    shutil.copy(ROOT / "setup.py", source)
    shutil.copy(ROOT / "README.md", source)
    shutil.copy(ROOT / "LICENSE", source)
    shutil.copytree(ROOT / "deepfl", source / "deepfl", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-v", "-w", out, "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (built,) = out.glob("deepfl-*.whl")
    return built, build.stdout + build.stderr


def test_the_wheel_holds_every_source_and_data_file_of_the_package(wheel):
    built, _ = wheel
    with zipfile.ZipFile(built) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("deepfl/")}
    missing = package_files(ROOT) - shipped
    assert not missing, f"left out of the wheel: {sorted(missing)}"
    assert "deepfl/fr/data/sff_ica.npz" in shipped


def test_setuptools_has_no_package_it_would_ignore(wheel):
    _, output = wheel
    assert "would be ignored" not in output, output[output.find("would be ignored") - 300 :][:1500]


def test_the_wheel_carries_the_licence_without_a_deprecated_declaration(wheel):
    built, output = wheel
    with zipfile.ZipFile(built) as archive:
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        licences = [n for n in archive.namelist() if n.endswith("/LICENSE")]
    assert "License-Expression: MIT" in metadata or "License: MIT" in metadata, metadata[:1000]
    assert licences, "LICENSE left out of the wheel"
    assert "License classifiers are deprecated" not in output


def canonical_name(name: str) -> str:
    """A distribution name as pip compares them (PEP 503): lower case, each run of "-", "_" and "." one "-". The
    wheel's metadata spells `ml_dtypes` either way, by the build backend's release."""
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_lowest_pins_script_pins_every_requirement_the_wheel_declares_at_its_lower_bound(wheel):
    """.ci/run_lowest installs what .ci/lowest_constraints.py prints; it must cover every dependency pip sees in the
    wheel's metadata (the package's and the test extra's), each at the version its `>=` names."""
    built, _ = wheel
    with zipfile.ZipFile(built) as archive:
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    declared = {}
    for line in metadata.splitlines():
        if line.startswith("Requires-Dist:") and ("extra ==" not in line or "'test'" in line or '"test"' in line):
            requirement = line.split(":", 1)[1].split(";")[0]
            name = re.match(r"\s*([A-Za-z0-9_.\-]+)", requirement).group(1)
            declared[canonical_name(name)] = re.search(r">=\s*([0-9][0-9.]*)", requirement).group(1)
    spec = importlib.util.spec_from_file_location("lowest_constraints", ROOT / ".ci" / "lowest_constraints.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pinned = {}
    for constraint in module.lowest_constraints((ROOT / "setup.py").read_text(encoding="utf-8")):
        name, version = constraint.split("==")
        pinned[canonical_name(name)] = version.removesuffix(".*")
    assert pinned == declared
    assert pinned["tensorflow"] and pinned["keras"]
    with pytest.raises(SystemExit, match="'numpy' has no lower bound"):
        module.lowest_constraints("setup(install_requires=['numpy'], extras_require={'test': []})")


def test_the_installed_wheel_runs_from_its_own_files_with_every_console_script(wheel, tmp_path):
    built, _ = wheel
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", target, built],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    probe = (
        "import importlib.metadata as md, importlib.util, deepfl\n"
        "from deepfl.fr import sff_basis\n"
        "print(deepfl.__file__)\n"
        "print(sff_basis.DEFAULT_PATH.is_file(), sff_basis.DEFAULT_PATH)\n"
        "scripts = [e for e in md.distribution('deepfl').entry_points if e.group == 'console_scripts']\n"
        "print(','.join(sorted(e.name for e in scripts)))\n"
        "for entry in scripts:\n"
        "    origin = importlib.util.find_spec(entry.value.partition(':')[0]).origin\n"
        "    assert origin.startswith(deepfl.__path__[0]), (entry, origin)\n"
    )
    # the target folder first on the path, and a working directory outside the checkout
    run = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    module_file, basis, names = run.stdout.split("\n")[:3]
    assert Path(module_file).is_relative_to(target), module_file
    assert basis.startswith("True") and str(target) in basis, basis
    editable = importlib.metadata.distribution("deepfl").entry_points
    assert names.split(",") == sorted(e.name for e in editable if e.group == "console_scripts")
