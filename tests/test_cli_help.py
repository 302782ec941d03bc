"""Every console script explains itself: `--help` (and `-h`) prints the script's docstring and its own flags and
exits 0; `--version` prints deepfl's version and exits 0."""

import re
import subprocess
import sys
from pathlib import Path

SETUP = Path(__file__).resolve().parents[1] / "setup.py"


def console_scripts() -> dict[str, str]:
    """name -> module, read from setup.py so a new script is covered without editing this test."""
    text = SETUP.read_text()
    return dict(re.findall(r'"(deepfl-[a-z-]+)": "(deepfl\.cli\.[a-z_]+):run"', text))


def test_every_script_help_lists_its_flags():
    scripts = console_scripts()
    assert len(scripts) >= 8
    code = "import sys; sys.argv[0] = {name!r}; import {module} as m; m.run()"
    procs = {
        (name, option): subprocess.Popen(
            [sys.executable, "-c", code.format(name=name, module=module), option],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, module in scripts.items()
        for option in ("--help", "-h", "--version")
    }
    import deepfl

    for (name, option), proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        assert "Traceback" not in out, f"{name} {option} failed:\n{out[-2000:]}"
        assert proc.returncode == 0, f"{name} {option} exited {proc.returncode}:\n{out[-2000:]}"
        if option == "--version":  # also where the job has required flags
            assert out == f"deepfl {deepfl.__version__}\n", (name, out)
            continue
        assert "--version prints deepfl's version." in out, f"{name} --help does not mention --version"
        assert "--out_dir" in out or "--model" in out, f"{name} --help lists none of its flags:\n{out[:2000]}"
        assert len(out.splitlines()) > 10, f"{name} --help is too short:\n{out}"
        assert "Exit codes: 0 the job did its work; 2 a bad input" in out, f"{name} --help gives no exit codes"


def test_help_lists_the_flags_of_shared_flag_modules():
    """--weights and --model come from deepfl.cli.extraction_flags, --protocol from protocol_flags: the docs'
    examples use them, so --help (not only --helpfull) lists them."""
    scripts = console_scripts()
    expected = {"deepfl-extract-features": ("--weights", "--model"), "deepfl-train-mlp": ("--protocol",)}
    code = "import sys; sys.argv[0] = {name!r}; import {module} as m; m.run()"
    for name, wanted in expected.items():
        out = subprocess.run(
            [sys.executable, "-c", code.format(name=name, module=scripts[name]), "--help"],
            capture_output=True,
            text=True,
            timeout=300,
        ).stdout
        for option in wanted:
            assert f"  {option}:" in out, f"{name} --help does not list {option}:\n{out[:2000]}"
