"""Every command and Python example in README.md and docs/*.md runs as written, on small generated data.

The test reads every ```bash and ```python block of every page (a new page is picked up without editing this
file) and runs them page by page (README.md first) in one workspace folder, so a page may use what an earlier one
made: a page's bash blocks in order with `bash -e`, then its Python blocks one after another in one interpreter
(a later block may use an earlier one's names).
Blocks without a language (printed output, tables) are not run. The workspace holds what the examples expect to
find: `pristine/` (three small photos), `photo.jpg`, `a.png`, `b.jpg`, `folder/`, `shots/*.png`, and a miniature
KADID-10k layout at `~/data/kadid10k` (HOME points into the workspace).

Marking a block that cannot run here: an HTML comment on the line before it,
`<!-- docs-test: skip (needs the KADID-10k download) -->`, or a `# needs: <what>` comment inside it. The test
prints the list of skipped blocks; keep it short.

Small and fast: every `deepfl-*` command runs with the flags of `FAST_FLAGS` appended (absl: a later flag wins),
through wrapper scripts put first on PATH, so the documented commands stay literal while the test trains tiny
models for a step or two.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from helpers_datasets import write_mini_kadid, write_ratings_study

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK_TIMEOUT_S = 600

# Appended to every invocation of the command (see the module docstring).
FAST_FLAGS = {
    "deepfl-demo": [
        "--arch=tiny",
        "--train_epochs=1",
        "--crops=2",
        "--mlp_epochs=1",
        "--num_splits=1",
        "--types=1,16",
        "--metrics=ssim,gmsd",
    ],
    "deepfl-train-multitask": [
        "--arch=tiny",
        "--weights=none",
        "--image_size=32,32",
        "--batch_size=4",
        "--steps_per_epoch=1",
        "--epochs=1",
        "--val_steps=1",
        "--warmup_epochs=0",
        "--tensorboard=false",
    ],
    "deepfl-label": ["--metrics=ssim,msssim,vsi,gmsd"],
    "deepfl-train-mlp": ["--epochs=2", "--num_splits=2", "--learning_rates=1e-3"],
}
CONSOLE_SCRIPTS = dict(re.findall(r'"(deepfl-[a-z-]+)": "(deepfl\.cli\.[a-z_]+):run"', (REPO / "setup.py").read_text()))

SKIP_COMMENT = re.compile(r"<!--\s*docs-test:\s*skip\s*\((.+?)\)\s*-->")
NEEDS_COMMENT = re.compile(r"#\s*needs:\s*(.+)$", re.MULTILINE)
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class Block:
    page: str
    line: int
    lang: str
    code: str
    skip: str | None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def read_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, with the skip reason each carries (or None)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        start, lang = i, match.group(1)
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            i += 1
        code = "\n".join(lines[start + 1 : i]) + "\n"
        before = next((lines[k] for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        skip = SKIP_COMMENT.search(before)
        needs = NEEDS_COMMENT.search(code)
        reason = skip.group(1) if skip else (f"needs {needs.group(1).strip()}" if needs else None)
        blocks.append(Block(str(path.relative_to(REPO)), start + 1, lang, code, reason))
        i += 1
    return blocks


def test_every_page_is_read_and_skips_are_few(capsys):
    blocks = [b for page in PAGES for b in read_blocks(page) if b.lang in ("bash", "python")]
    assert {b.page for b in blocks} >= {"README.md", "docs/stage2.md", "docs/labels.md"}
    skipped = [b for b in blocks if b.skip]
    with capsys.disabled():
        print(f"\ndocs-test: {len(blocks)} blocks, {len(skipped)} marked skip:")
        for block in skipped:
            print(f"  {block.where}: {block.skip}")
    assert all(len(b.skip.strip()) >= 5 for b in skipped), "every skip says why"
    assert len(skipped) <= len(blocks) // 2, "more than half of the examples are skipped"


def _photo(name: str, size: int) -> np.ndarray:
    from PIL import Image
    from skimage import data

    image = Image.fromarray(getattr(data, name)())
    side = min(image.size)
    left, top = (image.size[0] - side) // 2, (image.size[1] - side) // 2
    return np.asarray(image.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict:
    """The folder the examples run in, its HOME, and a PATH whose deepfl-* commands append FAST_FLAGS."""
    from deepfl.images import write_image

    ws = tmp_path_factory.mktemp("docs workspace")
    for folder in ("pristine", "folder", "shots"):
        (ws / folder).mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        write_image(ws / "pristine" / f"{name}.png", _photo(name, 176))
    write_image(ws / "photo.jpg", _photo("rocket", 128))
    write_image(ws / "a.png", _photo("astronaut", 96))
    write_image(ws / "b.jpg", _photo("coffee", 96))
    write_image(ws / "folder" / "f1.png", _photo("chelsea", 96))
    write_image(ws / "shots" / "s1.png", _photo("coffee", 112))
    home = ws / "home"
    write_mini_kadid(home / "data" / "kadid10k")
    write_ratings_study(ws / "my_study")
    fastbin = ws / ".fastbin"
    fastbin.mkdir()
    for name, module in CONSOLE_SCRIPTS.items():
        script = fastbin / name
        extra = " ".join(FAST_FLAGS.get(name, []))
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {module} "$@" {extra}\n')
        script.chmod(0o755)
    env = dict(os.environ)
    env.update(
        {
            "HOME": str(home),
            "PATH": f"{fastbin}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "DEEPFL_NO_PROGRESS": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "CUDA_VISIBLE_DEVICES": "",
            "PYTHONPATH": str(REPO),
        }
    )
    return {"dir": ws, "env": env, "skipped": [], "seconds": []}


_PY_DRIVER = r"""
import json, sys, traceback
blocks = json.load(open(sys.argv[1]))
namespace = {"__name__": "__main__"}
for where, code in blocks:
    try:
        exec(compile(code, where, "exec"), namespace)
    except BaseException:
        print(f"DOCS-TEST FAILED {where}", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
"""


def _run(cmd: list[str], ws: dict, what: str) -> None:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ws["dir"], env=ws["env"], capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
    ws["seconds"].append((what, time.perf_counter() - start))
    assert proc.returncode == 0, (
        f"{what} failed (exit {proc.returncode}):\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-5000:]}"
    )


def _run_page(page: Path, workspace: dict, capsys) -> None:
    """Runs a page's bash blocks one by one and its python blocks in one interpreter; prints the skipped ones."""
    blocks = [b for b in read_blocks(page) if b.lang in ("bash", "python")]
    skipped = [b for b in blocks if b.skip]
    python = []
    for block in blocks:
        if block.skip:
            continue
        if block.lang == "bash":
            _run(["bash", "-e", "-o", "pipefail", "-c", block.code], workspace, f"bash block {block.where}")
        else:
            python.append((block.where, block.code))
    if python:
        request = workspace["dir"] / f".python_blocks_{page.stem}.json"
        request.write_text(json.dumps(python))
        _run([sys.executable, "-c", _PY_DRIVER, str(request)], workspace, f"python blocks of {page.name}")
    with capsys.disabled():
        for block in skipped:
            print(f"\ndocs-test skipped {block.where}: {block.skip}")


def test_every_page_runs_in_order(workspace, capsys):
    """README, then docs/*.md, in one test: the pages share one workspace (README's walk-through makes the data
    the later pages use), so under pytest-xdist they must not be spread over processes. Every page runs; the
    failures of all of them are reported together."""
    failures = []
    for page in PAGES:
        try:
            _run_page(page, workspace, capsys)
        except AssertionError as exc:
            failures.append(f"{page.relative_to(REPO)}: {exc}")
    with capsys.disabled():
        slowest = sorted(workspace["seconds"], key=lambda item: -item[1])[:8]
        print("\ndocs-test, slowest blocks: " + "; ".join(f"{what} {seconds:.0f} s" for what, seconds in slowest))
    assert not failures, "\n\n".join(failures)
