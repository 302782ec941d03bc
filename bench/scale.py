"""KADIS scale, simulated: the data path (distort, label, stage-1 training, MLSP extraction) at N and 10N images.

Each step runs as its command-line job in a fresh process, exactly as a user runs it, first on a small set (default
2,000 distorted images) and then on a large one (default 20,000). Per step and scale it prints throughput (images
or pairs per second, wall clock), the peak resident memory of the job's whole process tree (workers included,
sampled from /proc every 0.2 s), and the disk its outputs take; then the growth from the small to the large scale.
The steady rate is read between 10% and 90% of each job's progress (for training, between the first and the
last of 4 epochs that together make one pass), so start-up (imports, XLA compilation) does not hide how the rate
behaves with scale; the overall rate per CPU-second of the tree, start-up included, is printed beside it.
At the large scale each step is also run a second time into a fresh folder, SIGKILLed part-way and restarted, and
its outputs are compared with the uninterrupted run's.

The images are small (default 192x192: MS-SSIM needs >= 161 pixels), so that 20,000 fit a 2-core machine in
minutes; the question here is how memory, disk and rate behave as the NUMBER of images grows. A short probe at
512x384 (the KADIS size) gives the per-image disk and generation rate used for the KADIS-700k projection printed
at the end.

    python bench/scale.py [--scales 2000,20000] [--size 192] [--workdir /tmp/deepfl_scale] [--no_kill]

The peer of this bench is the bench itself at the smaller scale: the growth ratios are the result.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

KADIS_IMAGES = 700_000  # distorted images of KADIS-700k (140,000 references x 5 levels)
LEVELS = 5  # every KADIS reference is distorted at the five levels of one type
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def job_command(step: str, *flags: str) -> list[str]:
    """A deepfl job as a user runs it (the console script's module), in this interpreter."""
    return [sys.executable, "-m", f"deepfl.cli.{step}", *flags]


def job_env() -> dict:
    env = dict(os.environ)
    env.update({"TF_CPP_MIN_LOG_LEVEL": "3", "DEEPFL_NO_PROGRESS": "1", "CUDA_VISIBLE_DEVICES": "",
                "PYTHONPATH": str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")})
    return env


# ------------------------------------------------------------------------------------------------ measurement

def _children(pid: int, table: dict[int, list[int]]) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(table.get(p, ()))
    return out


def tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and all its descendants, from /proc (no psutil needed)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            parents.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    total = 0
    for p in _children(pid, parents):
        try:
            with open(f"/proc/{p}/statm", "rb") as handle:
                total += int(handle.read().split()[1]) * PAGE_SIZE
        except (OSError, IndexError, ValueError):
            continue
    return total


@dataclass
class Run:
    returncode: int
    wall: float
    peak_rss: int
    cpu: float = 0.0
    killed: bool = False
    stderr: str = ""
    samples: list[tuple[float, float]] | None = None

    def steady_seconds(self, lo: float, hi: float) -> float:
        """Seconds between the progress reaching fraction `lo` and `hi` of its final value: the rate without
        start-up (imports, compilation) and wind-up, which a small run would otherwise be dominated by."""
        final = self.samples[-1][1]
        t_lo = next(t for t, v in self.samples if v >= lo * final)
        t_hi = next(t for t, v in self.samples if v >= hi * final)
        return t_hi - t_lo


def children_cpu() -> float:
    """User + system CPU seconds of every waited-for descendant so far (pool workers included)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_measured(cmd: list[str], kill_after: float | None = None, progress=None) -> Run:
    """Runs `cmd` in its own process group, sampling the tree's RSS (and `progress()`, a number that grows with
    the work done, into `Run.samples`); optionally SIGKILLs it after `kill_after` s."""
    start, cpu_start = time.perf_counter(), children_cpu()
    proc = subprocess.Popen(cmd, env=job_env(), cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    peak = 0
    stop = threading.Event()
    err_chunks: list[bytes] = []

    def drain() -> None:
        err_chunks.append(proc.stderr.read())

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    killed = False
    samples: list[tuple[float, float]] = []
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        if progress is not None:
            samples.append((time.perf_counter() - start, progress()))
        if kill_after is not None and time.perf_counter() - start > kill_after:
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
            proc.wait()
            break
        stop.wait(0.2)
    reader.join(timeout=10)
    wall = time.perf_counter() - start
    if progress is not None:
        samples.append((wall, progress()))
    return Run(proc.returncode, wall, peak, children_cpu() - cpu_start, killed,
               b"".join(err_chunks).decode("utf-8", "replace")[-2000:], samples)


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def tree_digest(path: Path, pattern: str = "*") -> str:
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob(pattern) if p.is_file() and not p.name.startswith(".")):
        digest.update(str(f.relative_to(path)).encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()


def leftover_temp_files(path: Path) -> list[Path]:
    return [p for p in path.rglob(".*.tmp*") if p.is_file()]


# ------------------------------------------------------------------------------------------------- the data

def write_references(folder: Path, count: int, size: int, seed: int = 0) -> None:
    """`count` distinct `size`x`size` PNG references: random crops, flips and rotations of bundled photos."""
    from deepfl.images import write_image
    from skimage import data
    from skimage.transform import resize

    folder.mkdir(parents=True, exist_ok=True)
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
    rng = np.random.default_rng(seed)
    for i in range(count):
        target = folder / f"ref{i:06d}.png"
        if target.exists():
            continue
        photo = photos[i % len(photos)]
        crop = int(rng.integers(size, min(photo.shape[:2]) + 1))
        top = int(rng.integers(0, photo.shape[0] - crop + 1))
        left = int(rng.integers(0, photo.shape[1] - crop + 1))
        patch = photo[top:top + crop, left:left + crop]
        if crop != size:
            patch = (resize(patch, (size, size), anti_aliasing=True, preserve_range=True) + 0.5).astype(np.uint8)
        patch = np.rot90(patch, int(rng.integers(0, 4)))
        if rng.integers(0, 2):
            patch = patch[:, ::-1]
        write_image(target, np.ascontiguousarray(patch))


def count_rows(path: Path) -> int:
    with open(path, newline="", encoding="utf-8") as handle:
        return max(0, sum(1 for _ in csv.reader(handle)) - 1)


# ------------------------------------------------------------------------------------------------- the steps

@dataclass
class StepResult:
    step: str
    scale: int
    items: int
    wall: float
    cpu: float
    peak_rss: int
    disk: int
    steady_rate: float

    @property
    def rate(self) -> float:
        return self.items / self.wall if self.wall > 0 else float("nan")

    @property
    def cpu_rate(self) -> float:
        """Items per CPU-second: steadier than the wall rate when other work shares the machine."""
        return self.items / self.cpu if self.cpu > 0 else float("nan")


TRAIN_EPOCHS = 4  # one pass over the data, cut into 4 epochs so that history.csv marks the progress
TRAIN_BATCH = 32


def file_size(path: Path) -> float:
    try:
        return float(path.stat().st_size)
    except OSError:
        return 0.0


def line_count(path: Path) -> float:
    try:
        return float(path.read_bytes().count(b"\n"))
    except OSError:
        return 0.0


def progress_probe(step: str, out: Path):
    """A number that grows with `step`'s work done, and the (lo, hi) fractions between which its rate is read."""
    if step == "distort":
        return (lambda: line_count(out / "manifest.csv")), (0.1, 0.9)
    if step == "label":
        return (lambda: file_size(out / "labels.csv")), (0.1, 0.9)
    if step == "train":
        return (lambda: max(line_count(out / "history.csv") - 1, 0.0)), (1 / TRAIN_EPOCHS, 1.0)
    return (lambda: sum(file_size(p) for p in out.glob("*.h5*"))), (0.1, 0.9)


def step_commands(root: Path, size: int, workers: int, images: int) -> dict[str, tuple[list[str], Path]]:
    """step -> (command, its output folder) for one scale's folder `root`."""
    kadis, labels, runs, feats = root / "kadis", root / "labels", root / "stage1", root / "features"
    train_images = images - images // 7  # the default validation fraction holds out 1/7 of the contents
    steps_per_epoch = max(1, -(-train_images // (TRAIN_BATCH * TRAIN_EPOCHS)))
    return {
        "distort": (job_command("distort", "--ref_dir", str(root / "pristine"), "--out_dir", str(kadis),
                                "--workers", str(workers)), kadis),
        "label": (job_command("label", "--manifest", str(kadis / "manifest.csv"), "--image_root", str(kadis),
                              "--ref_root", str(root / "pristine"), "--out_dir", str(labels)), labels),
        "train": (job_command("train_multitask", "--weak_labels", str(labels / "labels.csv"), "--image_root",
                              str(kadis), "--out_dir", str(runs), "--arch", "tiny", "--weights", "none",
                              "--image_size", f"{size},{size}" if size <= 96 else "96,96", "--batch_size",
                              str(TRAIN_BATCH), "--epochs", str(TRAIN_EPOCHS), "--steps_per_epoch",
                              str(steps_per_epoch)), runs),
        "extract": (job_command("extract_features", "--model", str(runs / "model.keras"), "--images", str(kadis),
                                "--out_dir", str(feats), "--batch_size", "32"), feats),
    }


def output_digest(step: str, out: Path) -> str:
    """What must be identical between an uninterrupted and a killed-and-restarted run of `step`."""
    if step == "distort":
        return tree_digest(out, "*.png") + tree_digest(out, "manifest.csv")
    if step == "label":
        return tree_digest(out, "labels.csv")
    if step == "extract":
        import h5py

        digest = hashlib.sha256()
        for f in sorted(out.glob("*.h5")):
            with h5py.File(f, "r") as h5:
                for name in sorted(h5):
                    digest.update(name.encode())
                    digest.update(np.asarray(h5[name]).tobytes())
        return digest.hexdigest()
    return ""  # training: completion and the saved model are checked instead


def run_scale(root: Path, images: int, size: int, workers: int, kill: bool) -> list[StepResult]:
    refs = images // LEVELS
    print(f"\n== {images} distorted images ({refs} references of {size}x{size}) under {root}", flush=True)
    write_references(root / "pristine", refs, size)
    results = []
    for step, (cmd, out) in step_commands(root, size, workers, images).items():
        if out.exists():
            shutil.rmtree(out)
        probe, (lo, hi) = progress_probe(step, out)
        run = run_measured(cmd, progress=probe)
        if run.returncode != 0:
            raise SystemExit(f"{step} failed (exit {run.returncode}): {run.stderr.strip().splitlines()[-1:]}")
        items = images
        result = StepResult(step, images, items, run.wall, run.cpu, run.peak_rss, disk_bytes(out),
                            (hi - lo) * items / max(run.steady_seconds(lo, hi), 1e-9))
        results.append(result)
        print(f"{step:8s} {images:7d} images  steady {result.steady_rate:7.1f} /s  overall {result.rate:7.1f} /s  "
              f"{result.cpu_rate:7.1f} /CPU-s  wall "
              f"{run.wall:7.1f} s  peak RSS {run.peak_rss / 2**20:7.0f} MiB  disk {result.disk / 2**20:8.1f} MiB", flush=True)
        if kill:
            check_kill_restart(step, cmd, out, run.wall)
    return results


def check_kill_restart(step: str, cmd: list[str], out: Path, clean_wall: float) -> None:
    """Reruns `step` into a sibling folder, SIGKILLs it at 60% of the clean wall time, restarts, compares."""
    killed_out = out.with_name(out.name + "_killed")
    if killed_out.exists():
        shutil.rmtree(killed_out)
    killed_cmd = [str(killed_out) if part == str(out) else part for part in cmd]
    first = run_measured(killed_cmd, kill_after=0.6 * clean_wall)
    litter = leftover_temp_files(killed_out)
    second = run_measured(killed_cmd)
    left = leftover_temp_files(killed_out)
    same = output_digest(step, out) == output_digest(step, killed_out)
    ok = second.returncode == 0 and same and not left
    print(f"         SIGKILL at {0.6 * clean_wall:.0f} s ({'landed' if first.killed else 'job had finished'}); "
          f"{len(litter)} temp files left by the kill, {len(left)} after the restart; restart exit "
          f"{second.returncode} in {second.wall:.1f} s; outputs {'identical' if same else 'DIFFER'}"
          f"{'' if ok else '  <-- FAILED'}", flush=True)
    shutil.rmtree(killed_out, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ projection

def kadis_probe(root: Path, workers: int) -> tuple[float, float]:
    """(distorted images/s, bytes per distorted PNG) of deepfl-distort on 512x384 references."""
    from deepfl.images import write_image
    from skimage import data
    from skimage.transform import resize

    pristine = root / "probe_pristine"
    pristine.mkdir(parents=True, exist_ok=True)
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
    for i in range(50):
        image = resize(photos[i % 5], (384, 512), anti_aliasing=True, preserve_range=True)
        image = image[:, ::-1] if (i // 5) % 2 else image
        write_image(pristine / f"p{i:03d}.png", np.ascontiguousarray((image + 0.5).astype(np.uint8)))
    out = root / "probe_kadis"
    shutil.rmtree(out, ignore_errors=True)
    run = run_measured(job_command("distort", "--ref_dir", str(pristine), "--out_dir", str(out),
                                   "--workers", str(workers)))
    files = list(out.rglob("*.png"))
    return len(files) / run.wall, disk_bytes(out) / max(len(files), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="2000,20000", help="Distorted-image counts, small first.")
    parser.add_argument("--size", type=int, default=192, help="Side of the square references (>= 161).")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workdir", default="/tmp/deepfl_scale")
    parser.add_argument("--no_kill", action="store_true", help="Skip the SIGKILL/restart checks.")
    args = parser.parse_args()
    scales = [int(s) for s in args.scales.split(",")]
    workdir = Path(args.workdir)
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at start", flush=True)

    results: dict[int, list[StepResult]] = {}
    for scale in scales:
        results[scale] = run_scale(workdir / f"n{scale}", scale, args.size, args.workers,
                                   kill=not args.no_kill and scale == scales[-1])

    small, large = scales[0], scales[-1]
    print(f"\n== growth from {small} to {large} images (load average {os.getloadavg()[0]:.1f} now)")
    print(f"{'step':8s} {'steady rate /s':>19s} {'ratio':>6s} {'overall /CPU-s':>19s} {'ratio':>6s} "
          f"{'peak RSS':>15s} {'growth':>7s} {'disk/image':>10s}")
    for a, b in zip(results[small], results[large]):
        print(f"{a.step:8s} {a.steady_rate:9.1f} {b.steady_rate:9.1f} {b.steady_rate / a.steady_rate:6.2f} "
              f"{a.cpu_rate:9.1f} {b.cpu_rate:9.1f} {b.cpu_rate / a.cpu_rate:6.2f} "
              f"{a.peak_rss / 2**20:6.0f}M {b.peak_rss / 2**20:6.0f}M "
              f"{b.peak_rss / a.peak_rss - 1:+7.1%} {b.disk / b.items / 1024:8.1f}KB")

    rate, png_bytes = kadis_probe(workdir, args.workers)
    label_rate = next(r.steady_rate for r in results[large] if r.step == "label")
    print(f"\n== KADIS-700k projection ({os.cpu_count()} cores here; N cores assumes the sharded jobs scale "
          f"linearly, which the per-core rates above do not prove beyond this machine)")
    print(f"distort at 512x384: {rate:.1f} images/s here -> {KADIS_IMAGES / rate / 3600:.1f} h; "
          f"{png_bytes / 1024:.0f} KB per PNG -> {KADIS_IMAGES * png_bytes / 2**30:.0f} GiB of distorted images")
    print(f"label: {label_rate:.1f} pairs/s at {args.size}x{args.size} here; at 512x384 use bench/label.py's rate "
          f"(pixels per pair {512 * 384 / args.size ** 2:.1f}x larger)")


if __name__ == "__main__":
    main()
