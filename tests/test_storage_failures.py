"""Jobs whose outputs cannot be written (a full disk, a quota, a file size limit, a read-only folder) stop with one
`error:` line naming the file and what happened, exit code 1, and resume when rerun.

Found by session 24's walk on a filled tmpfs: `deepfl-distort` counted every reference it could not write as a bad
input and exited 0 with half the data set missing; `deepfl-train-multitask` and `deepfl-extract-features` crashed
(exit 139, "Fatal Python error: Segmentation fault") after their error line, when HDF5 flushed into the full disk
once more; every other job printed "error (OSError): [Errno 28] No space left on device (unexpected)". A full disk
needs root to mount; a file size limit (RLIMIT_FSIZE, `ulimit -f`) fails writes the same way (EFBIG) for anyone,
so these tests use it. Each job runs in its own process: after a storage failure a job ends its process at once.
"""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

import numpy as np

import badinputs
import killrestart as kr

TIMEOUT_S = 300


def _run(step: str, *flags: str, file_limit: int | None = None) -> kr.JobResult:
    """Runs a job in a new process, its file sizes limited to `file_limit` bytes when given."""

    def limit() -> None:
        if file_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    proc = subprocess.run(
        kr.job_command(step, *flags),
        capture_output=True,
        timeout=TIMEOUT_S,
        env=kr.job_env(),
        cwd=kr.REPO_ROOT,
        preexec_fn=limit,
    )
    return kr.JobResult(proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))


def _assert_storage_line(result: kr.JobResult, names: str) -> None:
    """Exit code 1, one `error:` line naming `names` and the file size limit, no crash and no traceback."""
    assert result.returncode == 1, (result.returncode, result.stderr[-3000:])
    lines = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1, result.stderr[-3000:]
    assert names in lines[0] and "file too large for this process's file size limit" in lines[0], lines[0]
    assert "rerun the same command" in lines[0], lines[0]
    for crash in ("Traceback", "Fatal Python error", "Segmentation fault", "Exception ignored"):
        assert crash not in result.stderr, result.stderr[-3000:]


def _images(folder: Path, count: int) -> list[str]:
    folder.mkdir(parents=True)
    names = []
    for i in range(count):
        name = f"r{i % 4}_{i // 4 + 1:02d}_01.png"
        (folder / name).write_bytes(badinputs.png_bytes(badinputs.textured_image(48, 64, i)))
        names.append(name)
    return names


def test_distort_stops_on_an_unwritable_output_instead_of_skipping_its_references(tmp_path):
    refs = tmp_path / "refs"
    _images(refs, 2)
    argv = ["--ref_dir", str(refs), "--out_dir", str(tmp_path / "kadis"), "--workers", "1"]
    full = _run("distort", *argv, file_limit=4000)  # a 48x64 PNG is about 9 KB: no image can be written
    _assert_storage_line(full, str(tmp_path / "kadis" / "r0_"))  # the image it could not write (".png")
    assert "bad references skipped" not in full.stdout  # it said "0 rows written, ..., 2 bad references skipped"
    again = _run("distort", *argv)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "10 manifest rows written" in again.stdout, again.stdout


def test_extract_features_ends_with_one_line_and_resumes_when_its_cache_cannot_be_written(tmp_path):
    from deepfl.models import build_multitask

    images = tmp_path / "images"
    _images(images, 3)
    model = tmp_path / "tiny.keras"
    build_multitask(tasks=("ssim",), weights=None, arch="tiny").save(model)
    argv = [f"--images={images}", f"--model={model}", f"--out_dir={tmp_path / 'feats'}"]
    # The empty cache (8 KB) and the journal (under 1 KB) are written; the compacted cache, larger, is not.
    full = _run("extract_features", *argv, file_limit=12000)
    _assert_storage_line(full, str(tmp_path / "feats" / "images.h5"))
    again = _run("extract_features", *argv)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "0 extracted, 3 already cached" in again.stdout, again.stdout


def test_train_multitask_ends_with_one_line_when_a_checkpoint_cannot_be_written(tmp_path):
    names = _images(tmp_path / "images", 12)
    rng = np.random.default_rng(0)
    rows = [
        [n, f"r{i % 4}.png", f"{rng.uniform(0.5, 1):.6f}", f"{rng.uniform(0, 0.3):.6f}"] for i, n in enumerate(names)
    ]
    labels = badinputs.write_csv(tmp_path / "labels.csv", ["dist_im", "ref_im", "ssim", "gmsd"], rows)
    argv = [f"--weak_labels={labels}", f"--image_root={tmp_path / 'images'}", f"--out_dir={tmp_path / 'run'}"]
    argv += ["--arch=tiny", "--weights=none", "--image_size=32,32", "--batch_size=4", "--steps_per_epoch=2"]
    argv += ["--epochs=2", "--tensorboard=false", "--val_fraction=0.25"]
    # best.keras (1.4 MB) is written; the first checkpoint, Keras' HDF5 weights with the optimizer's (4 MB), is not.
    full = _run("train_multitask", *argv, file_limit=2_000_000)
    _assert_storage_line(full, str(tmp_path / "run" / "checkpoints" / "epoch_0001.weights.h5"))
    again = _run("train_multitask", *argv)
    assert again.returncode == 0 and "trained 2 epochs" in again.stdout, again.stderr[-2000:]
