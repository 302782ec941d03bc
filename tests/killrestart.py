"""Kill-and-restart harness: SIGKILL a command-line job at seeded random points, restart it, compare outputs.

`run_with_kills` starts a job as a subprocess (in its own process group), waits until it has made progress
(the caller's `progress()` count grows, e.g. output rows or image files), waits a further seeded random delay,
and kills the whole group with SIGKILL; it restarts the job with the same flags, `kills` times, then lets the
last run finish. `tree_digest` / `assert_same_tree` compare the final output folder byte for byte with an
uninterrupted run, and `check_csv` / `check_images` look for missing, duplicated or truncated rows and images.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# Temporary files of `deepfl.fileio.atomic_write_bytes` (".<name>.<random>.tmp") that a kill can leave behind.
TEMP_SUFFIXES = (".tmp",)


def job_command(step: str, *flags: str) -> list[str]:
    """The command line of a script (`deepfl/cli/<step>.py`), run with this interpreter."""
    return [sys.executable, "-m", f"deepfl.cli.{step}", *flags]


def job_env(**extra: str) -> dict:
    """Environment for a job subprocess: quiet TF, no progress bars, the repository importable."""
    env = dict(os.environ)
    env.update(
        {
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "DEEPFL_NO_PROGRESS": "1",
            "PYTHONHASHSEED": "0",
            "CUDA_VISIBLE_DEVICES": "",
            "PYTHONPATH": str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        }
    )
    env.update(extra)
    return env


@dataclass
class JobResult:
    returncode: int
    stdout: str
    stderr: str


def run_job(
    cmd: Sequence[str], timeout: float = 300, env: dict | None = None, cwd: str | os.PathLike | None = None
) -> JobResult:
    """Runs a job to completion and returns its exit code and output (decoded with replacement)."""
    proc = subprocess.run(list(cmd), capture_output=True, timeout=timeout, env=env or job_env(), cwd=cwd or REPO_ROOT)
    return JobResult(proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))


# Runs one script as `python -m deepfl.cli.<step>` would, then reports on its last stdout line whether TensorFlow
# was imported: a rerun that finds its work done should answer without it (5-10 s).
_IMPORTS_DRIVER = r"""
import sys
step = sys.argv[1]
sys.argv = [step] + sys.argv[2:]
module = __import__("deepfl.cli." + step, fromlist=["run"])
try:
    module.run()
except SystemExit as exc:
    print("tensorflow imported:", "tensorflow" in sys.modules)
    raise
"""


def run_noting_tensorflow(step: str, argv: Sequence[str], timeout: float = 300) -> tuple[JobResult, bool]:
    """Runs a script in a new process; (its result without the report line, whether it imported TensorFlow)."""
    result = run_job([sys.executable, "-c", _IMPORTS_DRIVER, step, *argv], timeout=timeout)
    lines = result.stdout.rstrip("\n").splitlines()
    if not lines or not lines[-1].startswith("tensorflow imported: "):
        raise AssertionError(f"{step} ended without the report line (exit {result.returncode}):\n{result.stderr}")
    stdout = "\n".join(lines[:-1])
    return JobResult(result.returncode, stdout, result.stderr), lines[-1].endswith("True")


# Runs several invocations of one experiment script in ONE interpreter (TensorFlow imported once), each as
# `cli.run_app(main)` would run it from the shell: flags reset to defaults, fresh argv, stdout/stderr captured,
# the exit code taken from SystemExit. An exception escaping run_app is printed as the traceback a user would see.
_BATCH_DRIVER = r"""
import importlib, io, json, sys, traceback
from absl import flags
step, request, answer = sys.argv[1], sys.argv[2], sys.argv[3]
module = importlib.import_module("deepfl.cli." + step)
results = []
for argv in json.load(open(request, encoding="utf-8", errors="surrogateescape")):
    flags.FLAGS.unparse_flags()
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr, sys.argv
    sys.stdout, sys.stderr, sys.argv = out, err, [step] + argv
    code = 0
    try:
        module.run()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc(file=err)
        code = 1
    finally:
        sys.stdout, sys.stderr, sys.argv = saved
    results.append([code, out.getvalue(), err.getvalue()])
json.dump(results, open(answer, "w", encoding="utf-8", errors="surrogateescape"))
"""


def run_batch(
    step: str, argvs: Sequence[Sequence[str]], timeout: float = 600, env: dict | None = None
) -> list[JobResult]:
    """Runs `deepfl/cli/<step>` once per argv in a single subprocess (one TensorFlow import for all).

    Each invocation goes through the script's own `run()` (absl flag parsing, `cli.run_app` error handling),
    so exit codes and stderr are what a user gets from the shell; only the process is shared.
    """
    import json
    import tempfile

    with tempfile.TemporaryDirectory(prefix="deepfl_batch_") as folder:
        request, answer = Path(folder) / "argv.json", Path(folder) / "results.json"
        with open(request, "w", encoding="utf-8", errors="surrogateescape") as handle:
            json.dump([[str(a) for a in argv] for argv in argvs], handle)
        proc = subprocess.run(
            [sys.executable, "-c", _BATCH_DRIVER, step, str(request), str(answer)],
            capture_output=True,
            timeout=timeout,
            env=env or job_env(),
            cwd=REPO_ROOT,
        )
        if not answer.exists():
            raise AssertionError(
                f"batch driver for {step} died (exit {proc.returncode}):\n"
                f"{proc.stderr.decode('utf-8', 'replace')[-3000:]}"
            )
        with open(answer, encoding="utf-8", errors="surrogateescape") as handle:
            return [JobResult(code, out, err) for code, out, err in json.load(handle)]


@dataclass
class KillReport:
    """What happened during a killed-and-restarted run."""

    kills: int = 0  # SIGKILLs delivered while the job was running
    starts: int = 0  # processes started (kills + 1 when all goes well)
    progress_at_kill: list = field(default_factory=list)
    final: JobResult | None = None


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_with_kills(
    cmd: Sequence[str],
    progress: Callable[[], int],
    kills: int = 3,
    seed: int = 0,
    max_delay: float = 1.0,
    timeout: float = 300,
    env: dict | None = None,
    cwd: str | os.PathLike | None = None,
    poll: float = 0.02,
) -> KillReport:
    """Runs `cmd`, SIGKILLing it `kills` times after progress, restarting each time; returns a `KillReport`.

    A kill happens once `progress()` exceeds its value at the start of that attempt, after a further delay
    drawn from U(0, max_delay) with `random.Random(seed)`. If an attempt finishes before it can be killed,
    the loop stops early (the report says how many kills actually landed). The last attempt runs to the end.
    """
    rng = random.Random(seed)
    report = KillReport()
    deadline = time.monotonic() + timeout
    env = env or job_env()
    err_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"killrestart_{os.getpid()}_{id(report)}.err"
    while True:
        report.starts += 1
        with open(err_path, "wb") as err:
            proc = subprocess.Popen(
                list(cmd), stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=cwd or REPO_ROOT, start_new_session=True
            )
            try:
                if report.kills < kills:
                    baseline = progress()
                    while proc.poll() is None and progress() <= baseline:
                        if time.monotonic() > deadline:
                            raise TimeoutError(f"{cmd}: no progress within {timeout} s")
                        time.sleep(poll)
                    delay_end = time.monotonic() + rng.uniform(0.0, max_delay)
                    while proc.poll() is None and time.monotonic() < delay_end:
                        time.sleep(poll)
                    if proc.poll() is None:
                        _kill_group(proc)
                        report.kills += 1
                        report.progress_at_kill.append(progress())
                        continue
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except (subprocess.TimeoutExpired, TimeoutError):
                _kill_group(proc)
                raise TimeoutError(f"{cmd}: did not finish within {timeout} s") from None
        stderr = err_path.read_bytes().decode("utf-8", "replace")
        err_path.unlink(missing_ok=True)
        report.final = JobResult(proc.returncode, "", stderr)
        return report


def run_killed_to_completion(
    cmd: Sequence[str], progress: Callable[[], int], kills: int, seed: int, max_delay: float, timeout: float = 600
) -> KillReport:
    """`run_with_kills` plus the checks every kill test makes: the last start exits 0, at least one and at most
    `kills` kills landed (a resumed job skips finished work, so it may finish before every planned kill), and the
    killed runs left no code of TensorFlow's autograph in the temporary folder ($TMPDIR, a fresh one for these
    runs): autograph writes the code it generates there and removes it only at a normal exit, so deepfl's traced
    functions do without it. (Keras' `.keras` saving makes a `tmp*` folder there too, which a kill during a save
    leaves behind: not deepfl's to remove.)"""
    import shutil
    import tempfile

    temp_dir = Path(tempfile.mkdtemp(prefix="deepfl_killed_tmp_"))
    try:
        report = run_with_kills(
            cmd,
            progress,
            kills=kills,
            seed=seed,
            max_delay=max_delay,
            timeout=timeout,
            env=job_env(TMPDIR=str(temp_dir)),
        )
        left = sorted(p.name for p in temp_dir.glob("__autograph_generated_file*"))
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert report.final.returncode == 0, report.final.stderr[-2000:]
    assert 1 <= report.kills <= kills, f"{report.kills} of {kills} planned kills landed"
    assert not left, f"the killed runs left {len(left)} autograph files in $TMPDIR: {left[:5]}"
    return report


# ---------------------------------------------------------------------------------------------------------
# Progress probes
# ---------------------------------------------------------------------------------------------------------


def count_files(folder: str | os.PathLike, suffixes: Iterable[str] = (".png", ".bmp", ".jpg")) -> Callable[[], int]:
    """Progress probe: number of finished (non-hidden) files with these suffixes under `folder`."""
    folder = Path(folder)
    suffixes = tuple(suffixes)

    def probe() -> int:
        if not folder.exists():
            return 0
        return sum(1 for p in folder.rglob("*") if p.suffix.lower() in suffixes and not p.name.startswith("."))

    return probe


def elapsed(step: float = 1.0) -> Callable[[], int]:
    """Progress probe for jobs that show nothing until the end: counts `step`-second ticks since it was made."""
    start = time.monotonic()

    def probe() -> int:
        return int((time.monotonic() - start) / step)

    return probe


def count_lines(path: str | os.PathLike) -> Callable[[], int]:
    """Progress probe: number of complete lines in a file (0 when it does not exist yet)."""
    path = Path(path)

    def probe() -> int:
        try:
            return path.read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0

    return probe


def count_paths(folder: str | os.PathLike, pattern: str = "*") -> Callable[[], int]:
    """Progress probe: number of non-hidden paths under `folder` matching a glob pattern."""
    folder = Path(folder)

    def probe() -> int:
        if not folder.exists():
            return 0
        return sum(1 for p in folder.rglob(pattern) if not p.name.startswith("."))

    return probe


# ---------------------------------------------------------------------------------------------------------
# Comparing outputs
# ---------------------------------------------------------------------------------------------------------


def is_temp(path: Path) -> bool:
    """A hidden temporary file of an atomic write (`.<name>.<random>.tmp`, `.<stem>.<random>.tmp.keras`)."""
    return path.name.startswith(".") and any(f"{s}" in path.name for s in TEMP_SUFFIXES)


def tree_digest(folder: str | os.PathLike, ignore: Callable[[Path], bool] | None = None) -> dict[str, str]:
    """relative path -> sha256 of every file under `folder` (`ignore(relpath)` drops files, e.g. logs)."""
    folder = Path(folder)
    digest = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(folder)
        if ignore is not None and ignore(rel):
            continue
        digest[str(rel)] = hashlib.sha256(_without_record_folder(path)).hexdigest()
    return digest


def _without_record_folder(path: Path) -> bytes:
    """The file's bytes; for a settings record (JSON naming the folder it was written in, which differs between
    two runs' output folders), those of the record without that folder."""
    data = path.read_bytes()
    if path.suffix != ".json":
        return data
    from deepfl.jobs import RECORD_FOLDER

    try:
        record = json.loads(data)
    except ValueError:
        return data
    if not isinstance(record, dict) or RECORD_FOLDER not in record:
        return data
    return json.dumps({k: v for k, v in record.items() if k != RECORD_FOLDER}, sort_keys=True).encode("utf-8")


def assert_same_tree(
    reference: str | os.PathLike, candidate: str | os.PathLike, ignore: Callable[[Path], bool] | None = None
) -> int:
    """Asserts both folders hold the same files with the same bytes; returns the number of files compared."""
    a, b = tree_digest(reference, ignore), tree_digest(candidate, ignore)
    missing = sorted(set(a) - set(b))
    extra = sorted(set(b) - set(a))
    differ = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    assert not (missing or extra or differ), (
        f"outputs differ from the uninterrupted run: missing {missing[:10]}, extra {extra[:10]}, "
        f"different bytes {differ[:10]}"
    )
    return len(a)


def leftover_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Temporary files a kill left behind (harmless for readers, but litter)."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_temp(p))


def check_csv(
    path: str | os.PathLike, key: str | Sequence[str] | None = None, expected_rows: int | None = None
) -> list[dict]:
    """Asserts a CSV is whole: newline-terminated, every row as wide as the header, no duplicate keys."""
    path = Path(path)
    data = path.read_bytes()
    assert data.endswith(b"\n"), f"{path}: last line is truncated (no newline)"
    # surrogateescape: a non-UTF-8 file name written back as its original bytes is still a whole row
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    for number, row in enumerate(rows, start=2):
        assert len(row) == len(header), f"{path}:{number}: {len(row)} fields, header has {len(header)}"
    records = [dict(zip(header, row)) for row in rows]
    if key is not None:
        keys = [key] if isinstance(key, str) else list(key)
        seen = [tuple(r[k] for k in keys) for r in records]
        dupes = {k for k in seen if seen.count(k) > 1}
        assert not dupes, f"{path}: duplicated keys {sorted(dupes)[:5]}"
    if expected_rows is not None:
        assert len(records) == expected_rows, f"{path}: {len(records)} rows, expected {expected_rows}"
    return records


def check_images(folder: str | os.PathLike, suffixes: Iterable[str] = (".png", ".bmp", ".jpg")) -> int:
    """Asserts every image under `folder` decodes fully; returns how many were checked."""
    from deepfl.images import read_image

    suffixes = tuple(suffixes)
    count = 0
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.suffix.lower() in suffixes and not path.name.startswith("."):
            read_image(path)
            count += 1
    return count


def record(job: str, **counts) -> None:
    """Appends counts to $DEEPFL_RELIABILITY_LOG (if set) so docs/reliability.md quotes what actually ran."""
    path = os.environ.get("DEEPFL_RELIABILITY_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"{job} " + " ".join(f"{k}={v}" for k, v in counts.items()) + "\n")
