"""KADIS scale, simulated: the data path (distort, label, stage-1 training, MLSP extraction) at N and 10N images.

Each step runs as its command-line job in a fresh process, exactly as a user runs it, first on a small set (default
2,000 distorted images) and then on a large one (default 20,000). Per step and scale it prints throughput (images
or pairs per second, wall clock), the peak resident memory of the job's whole process tree (workers included,
sampled from /proc every 0.2 s), and the disk its outputs take; then the growth from the small to the large scale.
The steady rate is read between 10% and 90% of each job's progress (for training, between the first and the
last of 4 epochs that together make one pass), so start-up (imports, XLA compilation) does not hide how the rate
behaves with scale; the overall rate per CPU-second of the tree, start-up included, is printed beside it.
At the large scale each step is SIGKILLed once its progress reaches 60% and restarted (its rate is read before the
kill); the restarted outputs are checked for completeness, duplicates and temporary files left behind, and against an
uninterrupted run of the same job on a random sample of the inputs (each output depends only on its input).

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

PROBE_REFERENCES = 120  # 512x384 references of the KADIS projection probe (600 distorted images)
KADIS_IMAGES = 700_000  # distorted images of KADIS-700k (140,000 references x 5 levels)
LEVELS = 5  # every KADIS reference is distorted at the five levels of one type
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def job_command(step: str, *flags: str) -> list[str]:
    """A deepfl job as a user runs it (the console script's module), in this interpreter."""
    return [sys.executable, "-m", f"deepfl.cli.{step}", *flags]


def job_env() -> dict:
    env = dict(os.environ)
    env.update(
        {
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "DEEPFL_NO_PROGRESS": "1",
            "CUDA_VISIBLE_DEVICES": "",
            "PYTHONPATH": str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        }
    )
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
        final = self.peak_progress
        return self.seconds_between(lo * final, hi * final)

    @property
    def peak_progress(self) -> float:
        return max(v for _, v in self.samples)

    def seconds_between(self, low: float, high: float) -> float:
        t_lo = next(t for t, v in self.samples if v >= low)
        t_hi = next(t for t, v in self.samples if v >= high)
        return t_hi - t_lo


def children_cpu() -> float:
    """User + system CPU seconds of every waited-for descendant so far (pool workers included)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_measured(cmd: list[str], kill_after: float | None = None, progress=None, kill_at: float | None = None) -> Run:
    """Runs `cmd` in its own process group, sampling the tree's RSS (and `progress()`, a number that grows with
    the work done, into `Run.samples`); optionally SIGKILLs it after `kill_after` s or once the progress
    reaches `kill_at`."""
    start, cpu_start = time.perf_counter(), children_cpu()
    proc = subprocess.Popen(
        cmd, env=job_env(), cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
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
        reached = kill_at is not None and samples and samples[-1][1] >= kill_at
        if reached or (kill_after is not None and time.perf_counter() - start > kill_after):
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
            proc.wait()
            break
        stop.wait(0.2)
    reader.join(timeout=10)
    wall = time.perf_counter() - start
    if progress is not None:
        samples.append((wall, progress()))
    return Run(
        proc.returncode,
        wall,
        peak,
        children_cpu() - cpu_start,
        killed,
        b"".join(err_chunks).decode("utf-8", "replace")[-2000:],
        samples,
    )


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def leftover_temp_files(path: Path) -> list[Path]:
    return [p for p in path.rglob(".*.tmp*") if p.is_file()]


# ------------------------------------------------------------------------------------------------- the data


def write_references(folder: Path, count: int, size: int, seed: int = 0) -> None:
    """`count` distinct `size`x`size` PNG references: random crops, flips and rotations of bundled photos."""
    from skimage import data
    from skimage.transform import resize

    from deepfl.images import write_image

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
        patch = photo[top : top + crop, left : left + crop]
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
    final_progress: float

    @property
    def rate(self) -> float:
        return self.items / self.wall if self.wall > 0 else float("nan")

    @property
    def cpu_rate(self) -> float:
        """Items per CPU-second: steadier than the wall rate when other work shares the machine."""
        return self.items / self.cpu if self.cpu > 0 else float("nan")


MIN_STEADY_SECONDS = 2.0  # a shorter window (a job that wrote its output in one or two bursts) gives no rate
STEPS = ("distort", "label", "train", "extract")
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
        return (lambda: line_count(out / "labels.csv")), (0.1, 0.9)
    if step == "train":
        return (lambda: max(line_count(out / "history.csv") - 1, 0.0)), (1 / TRAIN_EPOCHS, 1.0)
    # The feature cache's journal grows by one record per image and is merged into the HDF5 file at the end.
    return (lambda: sum(file_size(p) for p in out.glob("*.journal"))), (0.1, 0.9)


def step_commands(root: Path, size: int, workers: int, images: int) -> dict[str, tuple[list[str], Path]]:
    """step -> (command, its output folder) for one scale's folder `root`."""
    kadis, labels, runs, feats = root / "kadis", root / "labels", root / "stage1", root / "features"
    train_images = images - images // 7  # the default validation fraction holds out 1/7 of the contents
    steps_per_epoch = max(1, -(-train_images // (TRAIN_BATCH * TRAIN_EPOCHS)))
    return {
        "distort": (
            job_command(
                "distort", "--ref_dir", str(root / "pristine"), "--out_dir", str(kadis), "--workers", str(workers)
            ),
            kadis,
        ),
        "label": (
            job_command(
                "label",
                "--manifest",
                str(kadis / "manifest.csv"),
                "--image_root",
                str(kadis),
                "--ref_root",
                str(root / "pristine"),
                "--out_dir",
                str(labels),
            ),
            labels,
        ),
        "train": (
            job_command(
                "train_multitask",
                "--weak_labels",
                str(labels / "labels.csv"),
                "--image_root",
                str(kadis),
                "--out_dir",
                str(runs),
                "--arch",
                "tiny",
                "--weights",
                "none",
                "--image_size",
                f"{size},{size}" if size <= 96 else "96,96",
                "--batch_size",
                str(TRAIN_BATCH),
                "--epochs",
                str(TRAIN_EPOCHS),
                "--steps_per_epoch",
                str(steps_per_epoch),
            ),
            runs,
        ),
        "extract": (
            job_command(
                "extract_features",
                "--model",
                str(runs / "model.keras"),
                "--images",
                str(kadis),
                "--out_dir",
                str(feats),
                "--batch_size",
                "32",
            ),
            feats,
        ),
    }


def run_step(
    step: str, cmd: list[str], out: Path, images: int, expected_final: float | None, kill: bool
) -> tuple[StepResult, Run | None]:
    """Runs one step; with `kill`, SIGKILLs it once its progress reaches 60% of `expected_final` and restarts it.

    The rate is read before the kill (between 10% and 55% of the expected progress), the peak RSS over both runs,
    the disk at the end. Returns the result and the restart's run (None without a kill).
    """
    if out.exists():
        shutil.rmtree(out)
    probe, (lo, hi) = progress_probe(step, out)
    if not kill:
        run = run_measured(cmd, progress=probe)
        restart = None
        seconds = run.steady_seconds(lo, hi)
    else:
        lo, hi = max(lo, 0.1), 0.55
        run = run_measured(cmd, progress=probe, kill_at=0.6 * expected_final)
        restart = run_measured(cmd, progress=probe)
        final = expected_final
        seconds = run.seconds_between(lo * final, hi * final)
    last = restart or run
    if last.returncode != 0:
        raise SystemExit(f"{step} failed (exit {last.returncode}): {last.stderr.strip().splitlines()[-1:]}")
    peak = max(run.peak_rss, restart.peak_rss if restart else 0)
    wall = run.wall + (restart.wall if restart else 0.0)
    cpu = run.cpu + (restart.cpu if restart else 0.0)
    result = StepResult(
        step,
        images,
        images,
        wall,
        cpu,
        peak,
        disk_bytes(out),
        (hi - lo) * images / seconds if seconds >= MIN_STEADY_SECONDS else float("nan"),
        run.peak_progress if not kill else expected_final,
    )
    return result, restart


# ------------------------------------------------------------------------------- checks after a kill and restart


def rows_by_key(path: Path, key: str) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    keyed = {row[key]: row for row in rows}
    if len(keyed) != len(rows):
        raise SystemExit(f"{path}: {len(rows) - len(keyed)} duplicated rows after the restart")
    return keyed


def check_restarted(step: str, root: Path, out: Path, images: int, size: int, workers: int) -> str:
    """Checks a killed-and-restarted step's outputs: complete, no duplicates, no temporary files left, and equal
    to an uninterrupted run of the same job on a random sample of its inputs (outputs depend only on each input)."""
    rng = np.random.default_rng(1)
    sample_dir = root / f"sample_{step}"
    shutil.rmtree(sample_dir, ignore_errors=True)
    sample_dir.mkdir(parents=True)
    left = leftover_temp_files(out)
    if left:
        return f"FAILED: {len(left)} temporary files left: {left[:3]}"
    kadis = root / "kadis"
    if step == "distort":
        rows = rows_by_key(out / "manifest.csv", "dist_im")
        if len(rows) != images:
            return f"FAILED: {len(rows)} manifest rows for {images} images"
        refs = sorted({row["ref_im"] for row in rows.values()})
        pristine = sample_dir / "pristine"
        pristine.mkdir()
        for name in rng.choice(refs, size=min(20, len(refs)), replace=False):
            shutil.copy(root / "pristine" / name, pristine / name)
        run = run_measured(
            job_command(
                "distort", "--ref_dir", str(pristine), "--out_dir", str(sample_dir / "k"), "--workers", str(workers)
            )
        )
        sample = rows_by_key(sample_dir / "k" / "manifest.csv", "dist_im")
        same = run.returncode == 0 and all(
            (sample_dir / "k" / name).read_bytes() == (out / name).read_bytes() for name in sample
        )
        return (
            f"{len(rows)} rows, no duplicates; {len(sample)} images of 20 references byte-identical to an "
            f"uninterrupted run: {'yes' if same else 'NO  <-- FAILED'}"
        )
    if step == "label":
        rows = rows_by_key(out / "labels.csv", "dist_im")
        if len(rows) != images:
            return f"FAILED: {len(rows)} label rows for {images} pairs"
        manifest = kadis / "manifest.csv"
        with open(manifest, newline="", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        picked = sorted(rng.choice(np.arange(1, len(lines)), size=min(50, len(lines) - 1), replace=False))
        (sample_dir / "manifest.csv").write_text("\n".join([lines[0]] + [lines[i] for i in picked]) + "\n")
        run = run_measured(
            job_command(
                "label",
                "--manifest",
                str(sample_dir / "manifest.csv"),
                "--image_root",
                str(kadis),
                "--ref_root",
                str(root / "pristine"),
                "--out_dir",
                str(sample_dir / "labels"),
            )
        )
        sample = rows_by_key(sample_dir / "labels" / "labels.csv", "dist_im")
        worst = max(
            abs(float(row[m]) - float(rows[name][m]))
            for name, row in sample.items()
            for m in row
            if m not in ("dist_im", "ref_im")
        )
        ok = run.returncode == 0 and worst <= 1e-6
        return (
            f"{len(rows)} rows, no duplicates; {len(sample)} random pairs rescored uninterrupted (other batch "
            f"packing): max |difference| {worst:.1e}{'' if ok else '  <-- FAILED'}"
        )
    if step == "train":
        history = rows_by_key(out / "history.csv", "epoch")
        done = len(history) == TRAIN_EPOCHS and (out / "model.keras").is_file()
        return (
            f"resumed from its checkpoint to {len(history)} of {TRAIN_EPOCHS} epochs, model saved: "
            f"{'yes' if done else 'NO  <-- FAILED'} (equality with an unbroken run is checked by "
            f"tests/test_reliability_train_multitask.py, not at this scale)"
        )
    import h5py

    with h5py.File(next(out.glob("*.h5")), "r") as h5:
        keys = [k.decode() if isinstance(k, bytes) else str(k) for k in h5["keys"][()]]
        features = np.asarray(h5["features"])
    if len(set(keys)) != len(keys) or len(keys) != images:
        return f"FAILED: {len(keys)} keys ({len(set(keys))} distinct) for {images} images"
    images_dir = sample_dir / "images"
    images_dir.mkdir()
    index = {Path(k).name: i for i, k in enumerate(keys)}
    chosen = rng.choice(sorted(index), size=min(50, len(index)), replace=False)
    for name in chosen:
        shutil.copy(kadis / name, images_dir / name)
    run = run_measured(
        job_command(
            "extract_features",
            "--model",
            str(root / "stage1" / "model.keras"),
            "--images",
            str(images_dir),
            "--out_dir",
            str(sample_dir / "features"),
            "--batch_size",
            "32",
        )
    )
    with h5py.File(next((sample_dir / "features").glob("*.h5")), "r") as h5:
        sample_keys = [k.decode() if isinstance(k, bytes) else str(k) for k in h5["keys"][()]]
        sample_features = np.asarray(h5["features"])
    worst = max(
        float(np.max(np.abs(sample_features[i] - features[index[Path(k).name]]))) for i, k in enumerate(sample_keys)
    )
    ok = run.returncode == 0 and worst <= 1e-5
    return (
        f"{len(keys)} rows, no duplicates; {len(sample_keys)} random images re-extracted uninterrupted: "
        f"max |difference| {worst:.1e}{'' if ok else '  <-- FAILED'}"
    )


def run_scale(
    root: Path,
    images: int,
    size: int,
    workers: int,
    kill: bool,
    progress_per_image: dict[str, float] | None = None,
    steps: tuple[str, ...] = (),
) -> list[StepResult]:
    refs = images // LEVELS
    print(
        f"\n== {images} distorted images ({refs} references of {size}x{size}) under {root}"
        f"{' (each step SIGKILLed at 60% and restarted)' if kill else ''}",
        flush=True,
    )
    write_references(root / "pristine", refs, size)
    results = []
    for step, (cmd, out) in step_commands(root, size, workers, images).items():
        if steps and step not in steps:
            continue
        expected = None
        if progress_per_image:  # the training's progress counts epochs, which do not grow with the images
            expected = TRAIN_EPOCHS if step == "train" else progress_per_image[step] * images
        result, restart = run_step(step, cmd, out, images, expected, kill)
        results.append(result)
        print(
            f"{step:8s} {images:7d} images  steady {result.steady_rate:7.1f} /s  overall {result.rate:7.1f} /s  "
            f"{result.cpu_rate:7.1f} /CPU-s  wall {result.wall:7.1f} s  peak RSS {result.peak_rss / 2**20:7.0f} MiB"
            f"  disk {result.disk / 2**20:8.1f} MiB",
            flush=True,
        )
        if restart is not None:
            print(
                f"         restart after SIGKILL: exit {restart.returncode} in {restart.wall:.1f} s; "
                f"{check_restarted(step, root, out, images, size, workers)}",
                flush=True,
            )
    return results


# ------------------------------------------------------------------------------------------------ projection


def kadis_probe(root: Path, workers: int) -> tuple[float, float]:
    """(distorted images/s, bytes per distorted PNG) of deepfl-distort on 512x384 references."""
    from skimage import data
    from skimage.transform import resize

    from deepfl.images import write_image

    pristine = root / "probe_pristine"
    pristine.mkdir(parents=True, exist_ok=True)
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
    for i in range(PROBE_REFERENCES):
        image = resize(photos[i % 5], (384, 512), anti_aliasing=True, preserve_range=True)
        image = np.roll(image[:, ::-1] if (i // 5) % 2 else image, 7 * (i // 10), axis=1)
        write_image(pristine / f"p{i:03d}.png", np.ascontiguousarray((image + 0.5).astype(np.uint8)))
    out = root / "probe_kadis"
    shutil.rmtree(out, ignore_errors=True)
    run = run_measured(
        job_command("distort", "--ref_dir", str(pristine), "--out_dir", str(out), "--workers", str(workers)),
        progress=lambda: line_count(out / "manifest.csv"),
    )
    files = list(out.rglob("*.png"))
    steady = 0.8 * len(files) / run.steady_seconds(0.1, 0.9)
    return steady, disk_bytes(out) / max(len(files), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="2000,20000", help="Distorted-image counts, small first.")
    parser.add_argument("--size", type=int, default=192, help="Side of the square references (>= 161).")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workdir", default="/tmp/deepfl_scale")
    parser.add_argument("--no_kill", action="store_true", help="Skip the SIGKILL/restart checks.")
    parser.add_argument(
        "--steps", default=",".join(STEPS), help="Steps to run; each needs the outputs of those before it."
    )
    args = parser.parse_args()
    scales = [int(s) for s in args.scales.split(",")]
    workdir = Path(args.workdir)
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at start", flush=True)

    results: dict[int, list[StepResult]] = {}
    per_image = None
    for scale in scales:
        kill = not args.no_kill and scale == scales[-1] and per_image is not None
        results[scale] = run_scale(
            workdir / f"n{scale}", scale, args.size, args.workers, kill, per_image, tuple(args.steps.split(","))
        )
        per_image = {r.step: r.final_progress / r.items for r in results[scale]}

    small, large = scales[0], scales[-1]
    print(f"\n== growth from {small} to {large} images (load average {os.getloadavg()[0]:.1f} now)")
    print(
        f"{'step':8s} {'steady rate /s':>19s} {'ratio':>6s} {'overall /CPU-s':>19s} {'ratio':>6s} "
        f"{'peak RSS':>15s} {'growth':>7s} {'disk/image':>10s}"
    )
    for a, b in zip(results[small], results[large]):
        print(
            f"{a.step:8s} {a.steady_rate:9.1f} {b.steady_rate:9.1f} {b.steady_rate / a.steady_rate:6.2f} "
            f"{a.cpu_rate:9.1f} {b.cpu_rate:9.1f} {b.cpu_rate / a.cpu_rate:6.2f} "
            f"{a.peak_rss / 2**20:6.0f}M {b.peak_rss / 2**20:6.0f}M "
            f"{b.peak_rss / a.peak_rss - 1:+7.1%} {b.disk / b.items / 1024:8.1f}KB"
        )

    rate, png_bytes = kadis_probe(workdir, args.workers)
    label_rate = next((r.steady_rate for r in results[large] if r.step == "label"), float("nan"))
    print(
        f"\n== KADIS-700k projection ({os.cpu_count()} cores here; N cores assumes the sharded jobs scale "
        f"linearly, which the per-core rates above do not prove beyond this machine)"
    )
    hours = KADIS_IMAGES / rate / 3600
    cores = os.cpu_count() or 1
    print(
        f"distort at 512x384 (steady, {PROBE_REFERENCES * LEVELS} images): {rate:.1f} images/s here -> {hours:.1f} h "
        f"on {cores} cores, about {hours * cores / 32:.1f} h on 32 (linear); {png_bytes / 1024:.0f} KB per PNG -> "
        f"{KADIS_IMAGES * png_bytes / 2**30:.0f} GiB of distorted images"
    )
    print(
        f"label: {label_rate:.1f} pairs/s at {args.size}x{args.size} here; at 512x384 bench/label.py's warm rate "
        f"applies (pixels per pair {512 * 384 / args.size**2:.1f}x larger)"
    )


if __name__ == "__main__":
    main()
