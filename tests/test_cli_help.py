"""Every console script explains itself: `--help` prints the script's docstring and its own flags."""

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
    assert len(scripts) == 8
    code = "import sys; sys.argv[0] = {name!r}; import {module} as m; m.run()"
    procs = {
        name: subprocess.Popen([sys.executable, "-c", code.format(name=name, module=module), "--help"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for name, module in scripts.items()
    }
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        assert "Traceback" not in out, f"{name} --help failed:\n{out[-2000:]}"  # absl exits 1 after help
        assert "--out_dir" in out or "--model" in out, f"{name} --help lists none of its flags:\n{out[:2000]}"
        assert len(out.splitlines()) > 10, f"{name} --help is too short:\n{out}"
