"""MLSP feature extraction batched by size and its resumable HDF5 cache (tiny stand-in extractor)."""

import signal
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from deepfl import features
from deepfl.errors import DeepflError
from deepfl.images import write_image
from deepfl.jobs import ErrorPolicy, JobStopped
from helpers_models import tiny_extractor


@pytest.fixture(scope="module")
def extractor():
    return tiny_extractor()


def _images(folder: Path, small_photo):
    paths = []
    for i, (h, w) in enumerate([(40, 56), (32, 32), (40, 56), (32, 32), (40, 56)]):
        img = np.roll(small_photo, 7 * i, axis=1)[:h, :w]
        path = folder / f"im{i}.png"
        write_image(path, img)
        paths.append(str(path))
    bad = folder / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return paths, str(bad)


def test_batched_by_size_matches_one_at_a_time_and_resumes(tmp_path, small_photo, extractor):
    from deepfl.images import read_image

    paths, bad = _images(tmp_path, small_photo)
    cache = tmp_path / "f.h5"
    policy = ErrorPolicy("skip")
    stats = features.extract_to_cache(extractor, paths[:3] + [bad], cache, batch_size=2, source="tiny", policy=policy)
    assert stats == {"done": 0, "written": 3, "skipped": 1}
    assert "broken.png" in policy.problems[0]
    stats = features.extract_to_cache(extractor, paths, cache, batch_size=2, source="tiny")
    assert stats == {"done": 3, "written": 2, "skipped": 0}
    got = features.load_features(cache, paths[::-1])
    single = np.stack([extractor.predict_on_batch(read_image(p)[None].astype(np.float32))[0] for p in paths[::-1]])
    np.testing.assert_allclose(got, single, rtol=1e-5, atol=1e-6)
    with pytest.raises(DeepflError, match="broken.png"):
        features.load_features(cache, [bad])
    with pytest.raises(DeepflError, match="tiny"):
        features.FeatureCache(cache, source="another model")


def test_in_memory_compute_keeps_order(small_photo, extractor):
    imgs = [small_photo[:40, :40], small_photo[:32, :48], small_photo[8:48, :40]]
    got = features.compute_features(extractor, imgs, batch_size=4)
    for img, row in zip(imgs, got):
        np.testing.assert_allclose(
            row, extractor.predict_on_batch(img[None].astype(np.float32))[0], rtol=1e-5, atol=1e-6
        )


def test_in_memory_compute_takes_one_image_or_a_batch_and_refuses_what_the_models_were_not_trained_on(
    small_photo, extractor
):
    """uint16, 0..1 floats and NaN were turned into features without a word (deepfl.predict refused them)."""
    image = small_photo[:40, :40]
    one = features.compute_features(extractor, image)
    np.testing.assert_array_equal(one, features.compute_features(extractor, [image]))
    assert features.compute_features(extractor, np.stack([image, image])).shape == (2, one.shape[1])
    np.testing.assert_allclose(features.compute_features(extractor, [image.astype(np.float32)]), one, rtol=1e-6)
    with_nan = image.astype(np.float32)
    with_nan[3, 4, 1] = np.nan
    for bad, message in [
        (image / 255.0, r"images\[1\]: float values 0\.\.[0-9.]+; .*multiply images scaled to 0\.\.1 by 255"),
        (image.astype(np.uint16) * 257, r"images\[1\]: expected an HxWx3 RGB array of uint8 .* got uint16"),
        (with_nan, r"images\[1\]: holds 1 NaN or infinite value"),
        (image[..., :2], r"images\[1\]: expected an HxWx3 RGB array"),
    ]:
        with pytest.raises(ValueError, match=message):
            features.compute_features(extractor, [image, bad])
    # A gray array alone is one image, named with its shape and the way to RGB (a walk got "got uint8 40": its rows
    # were taken for images); a path string is refused as such (it was read letter by letter).
    with pytest.raises(ValueError, match=r"images\[0\]: .* got uint8 40x30 \(convert to 0\.\.255 RGB; a gray image: "):
        features.compute_features(extractor, image[:, :30, 0])
    with pytest.raises(ValueError, match=r"^images: arrays, not a path \('x.png'\)"):
        features.compute_features(extractor, "x.png")


def test_a_model_file_or_a_multitask_model_given_as_extractor_is_named_with_the_way_on(tmp_path, small_photo):
    """A walk got "'str' object is not callable" and "float() argument must be ... not 'dict'"."""
    from deepfl import models

    multitask = models.build_multitask(tasks=("ssim",), weights=None, arch="tiny")
    image = small_photo[:40, :40]
    with pytest.raises(ValueError, match=r"^extractor: a loaded extractor, not a path \('m.keras'\): .*load_extractor"):
        features.compute_features("m.keras", image)
    with pytest.raises(ValueError, match=r"^extractor: .* is a multi-task model .*load_extractor\(model="):
        features.compute_features(multitask, image)
    with pytest.raises(ValueError, match=r"^extractor: .* is a multi-task model"):
        features.extract_to_cache(multitask, [tmp_path / "a.png"], tmp_path / "f.h5")
    assert not (tmp_path / "f.h5").exists()


def test_an_image_too_small_for_the_paper_network_is_named_in_memory(small_photo):
    """The library calls gave Keras' "negative dimension size" (or pages of graph errors), not the size."""
    from deepfl.models import build_backbone

    backbone = build_backbone(weights=None, input_shape=(None, None, 3))
    with pytest.raises(ValueError, match=r"images\[1\]: 60x50 too small for the network: .* 75x75"):
        features.compute_features(backbone, [small_photo[:80, :80], small_photo[:50, :60]])


def test_uncommitted_rows_are_dropped_on_reopen(tmp_path):
    path = tmp_path / "c.h5"
    with features.FeatureCache(path, dim=3, source="s") as cache:
        cache.append(["a", "b"], np.ones((2, 3)))
    with h5py.File(path, "a") as f:  # a batch written but not committed (as if killed before `count`)
        f["features"].resize(4, axis=0)
        f["keys"].resize(4, axis=0)
        f["keys"][2:4] = ["c", "d"]
    with features.FeatureCache(path) as cache:
        assert cache.keys() == ["a", "b"] and "c" not in cache
        assert cache.append(["c", "a"], np.full((2, 3), 2.0)) == 1
        np.testing.assert_array_equal(cache.get(["c", "b"]), [[2, 2, 2], [1, 1, 1]])


def test_a_finished_cache_on_a_read_only_disk_is_found_done(tmp_path, monkeypatch):
    """A rerun of a finished extraction on a read-only disk failed at once: opening the cache created its journal."""
    import errno
    import os

    path = tmp_path / "c.h5"
    with features.FeatureCache(path, dim=3, source="s") as cache:
        cache.append(["a", "b"], np.ones((2, 3)))
        cache.compact()
    real_open = os.open

    def read_only(file, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    with features.FeatureCache(path, dim=3, source="s") as cache:
        assert "a" in cache and cache.is_compact and cache.append(["a"], np.ones((1, 3))) == 0
        with pytest.raises(OSError, match="Read-only file system"):  # a row to add needs the journal
            cache.append(["c"], np.ones((1, 3)))


def _journal_with_three_rows(path: Path) -> Path:
    with features.FeatureCache(path, dim=3, source="s") as cache:
        for k in range(3):
            cache.append([f"k{k}"], np.full((1, 3), float(k)))
    return path.with_name(path.name + ".journal")


def _reopen_keeps_two_rows_and_appends(path: Path) -> None:
    with features.FeatureCache(path, mode="r") as cache:  # a reader sees the good rows and changes nothing
        assert cache.keys() == ["k0", "k1"]
    with features.FeatureCache(path, dim=3, source="s") as cache:
        assert cache.keys() == ["k0", "k1"] and "k2" not in cache
        assert cache.append(["k2", "k3"], np.array([[2.0] * 3, [3.0] * 3])) == 2
    with features.FeatureCache(path, mode="r") as cache:
        np.testing.assert_array_equal(cache.get(["k3", "k0", "k2"]), [[3] * 3, [0] * 3, [2] * 3])


def test_torn_journal_tail_is_dropped(tmp_path):
    journal = _journal_with_three_rows(tmp_path / "t.h5")
    data = journal.read_bytes()
    journal.write_bytes(data[:-7])  # the last record cut short, as by a kill inside write()
    _reopen_keeps_two_rows_and_appends(tmp_path / "t.h5")


def test_journal_record_with_bad_checksum_is_dropped(tmp_path):
    journal = _journal_with_three_rows(tmp_path / "c.h5")
    data = bytearray(journal.read_bytes())
    data[-10] ^= 0x40  # one bit of the last record's features flipped
    journal.write_bytes(bytes(data))
    _reopen_keeps_two_rows_and_appends(tmp_path / "c.h5")


def test_journal_rows_are_read_and_compacted_in_commit_order(tmp_path):
    path = tmp_path / "j.h5"
    with features.FeatureCache(path, dim=2, source="s") as cache:
        cache.append(["a", "b"], [[1, 1], [2, 2]])
        cache.compact()
        cache.append(["c", "a"], [[3, 3], [9, 9]])
        assert not cache.is_compact and cache.journal_path.is_file()
    with pytest.raises(DeepflError, match="holds 2-dim"):
        features.FeatureCache(path, dim=5)
    with pytest.raises(DeepflError, match="'s'"):
        features.FeatureCache(path, source="other")
    with features.FeatureCache(path) as cache:
        np.testing.assert_array_equal(cache.get(["c", "a", "b"]), [[3, 3], [1, 1], [2, 2]])
        cache.compact()
        assert cache.is_compact and not cache.journal_path.exists()
    with h5py.File(path, "r") as f:  # the layout readers without deepfl see
        assert [k.decode() for k in f["keys"]] == ["a", "b", "c"] and f["features"].dtype == np.float32
        assert (int(f.attrs["count"]), int(f.attrs["dim"]), f.attrs["source"], int(f.attrs["compact"])) == (
            3,
            2,
            "s",
            1,
        )
    with pytest.raises(FileNotFoundError):
        features.FeatureCache(tmp_path / "absent.h5", mode="r")
    (tmp_path / "empty.h5").write_bytes(b"")
    with pytest.raises(DeepflError, match="empty.h5"):
        features.FeatureCache(tmp_path / "empty.h5", dim=2)


_ROWS, _BATCH, _DIM = 1600, 16, 256


def _write_rows(path: str, committed) -> None:
    """Kill-test job: appends rows "0".."1599" (every value = the key) in batches, then compacts.

    `committed.value` is the number of rows the cache had committed when the last append returned."""
    with features.FeatureCache(path, dim=_DIM, source="w") as cache:
        committed.value = len(cache)
        for start in range(0, _ROWS, _BATCH):
            keys = [str(k) for k in range(start, start + _BATCH)]
            values = np.repeat(np.arange(start, start + _BATCH, dtype=np.float32)[:, None], _DIM, axis=1)
            cache.append(keys, values)
            committed.value = len(cache)
        if not cache.is_compact:
            cache.compact()


def _check_rows(path: Path, at_least: int) -> int:
    """Every committed row is there exactly once with its own values; returns the number of rows."""
    with features.FeatureCache(path, mode="r") as cache:
        keys = cache.keys()
        assert len(keys) == len(set(keys)) >= at_least
        np.testing.assert_array_equal(cache.get(keys), np.repeat(np.array(keys, np.float32)[:, None], _DIM, axis=1))
    return len(keys)


def test_sigkill_never_corrupts_committed_rows(tmp_path):
    """20 SIGKILLs at random points (mid-batch, between batches, during compact()); after each one the cache
    reopens with every committed row intact, and the resumed job ends byte-identical to an unbroken one."""
    import multiprocessing
    import random

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["deepfl.features", __name__])  # children start in milliseconds
    rng = random.Random(0)
    path, committed = tmp_path / "k.h5", ctx.RawValue("i", -1)  # no lock: a killed child must not hold one
    kills = 0
    for _attempt in range(20):
        committed.value = -1
        target = min(_ROWS, max(0, _check_rows(path, 0) if path.exists() else 0) + _BATCH * rng.randint(0, 8))
        proc = ctx.Process(target=_write_rows, args=(str(path), committed))
        proc.start()
        deadline = time.monotonic() + 60
        while proc.is_alive() and committed.value < target and time.monotonic() < deadline:
            time.sleep(0.0005)
        time.sleep(rng.uniform(0, 0.004))
        if proc.is_alive():
            proc.kill()
            kills += 1
        proc.join()
        assert proc.exitcode in (0, -signal.SIGKILL), f"the writer failed after {kills} kills (its stderr says why)"
        _check_rows(path, max(0, committed.value))
    assert kills >= 10, f"only {kills} of 20 kills landed"
    for out in (path, tmp_path / "unbroken.h5"):
        proc = ctx.Process(target=_write_rows, args=(str(out), committed))
        proc.start()
        proc.join(60)
        assert proc.exitcode == 0
        assert _check_rows(out, _ROWS) == _ROWS
    assert path.read_bytes() == (tmp_path / "unbroken.h5").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.h5", "unbroken.h5"]  # no journal, no temp file


def test_a_model_retrained_under_the_same_name_cannot_extend_its_old_cache(tmp_path):
    """The cache records the model file's path and content: features of a model retrained or re-exported under
    the same name are refused instead of being mixed with (or mistaken for) the old model's."""
    model = tmp_path / "model.keras"
    model.write_bytes(b"first training run")
    old_source = features.extractor_source(model, None, None)
    cache = tmp_path / "feats.h5"
    with features.FeatureCache(cache, dim=3, source=old_source):
        pass
    assert features.extractor_source(model, None, None) == old_source  # the same file: the cache resumes
    model.write_bytes(b"second training run")
    new_source = features.extractor_source(model, None, None)
    assert new_source != old_source and str(model.resolve()) in new_source
    with pytest.raises(DeepflError, match="retrained or re-exported"):
        features.FeatureCache(cache, source=new_source)
    # The same content under another name (a model copied or moved) is the same model: its cache resumes.
    moved = tmp_path / "moved" / "renamed model.keras"
    moved.parent.mkdir()
    moved.write_bytes(b"first training run")
    with features.FeatureCache(cache, source=features.extractor_source(moved, None, None)) as resumed:
        assert resumed.source == old_source
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"weights")
    with features.FeatureCache(
        tmp_path / "w_feats.h5", dim=3, source=features.extractor_source(None, str(weights), None)
    ):
        pass
    copied = tmp_path / "moved" / "w.h5"
    copied.write_bytes(b"weights")
    features.FeatureCache(tmp_path / "w_feats.h5", source=features.extractor_source(None, str(copied), None)).close()
    for other in (
        features.extractor_source(None, str(copied), "symmetric"),
        features.extractor_source(moved, None, None),
    ):
        with pytest.raises(DeepflError, match="holds features of"):
            features.FeatureCache(tmp_path / "w_feats.h5", source=other)


def test_missing_keys_are_named_with_the_way_on(tmp_path, monkeypatch):
    path = tmp_path / "c.h5"
    with features.FeatureCache(path, dim=2, source="s") as cache:
        cache.append([str(tmp_path / "a.png")], np.zeros((1, 2), np.float32))
    monkeypatch.chdir(tmp_path)  # relative paths are read from the current folder: a.png is the cached one
    with pytest.raises(DeepflError) as missing:
        features.load_features(path, ["a.png", "b.png", "c.png", "d.png", "e.png", "f.png"])
    message = str(missing.value)
    shown = ", ".join(str(tmp_path / name) for name in ("b.png", "c.png", "d.png"))
    assert f"5 image(s) have no cached features: {shown} and 2 more" in message, message
    assert "rerun it" in message and "out of the table" in message and "\n" not in message
    # None of them cached: another data set's cache, not images to skip (which left none, walk 42).
    with pytest.raises(DeepflError) as none:
        features.load_features(path, ["b.png", "c.png"])
    assert f"{path}: holds none of the 2 image(s) asked for" in str(none.value) and "skip" not in str(none.value)


def test_holds_every_image_only_for_a_finished_cache_of_this_source(tmp_path, monkeypatch):
    path = tmp_path / "c.h5"
    monkeypatch.chdir(tmp_path)  # the cache's keys are absolute: "a" is tmp_path/a
    assert not features.holds_every_image(path, ["a"], "s")  # no cache yet
    with features.FeatureCache(path, dim=3, source="s") as cache:
        cache.append([str(tmp_path / "a"), str(tmp_path / "b")], np.ones((2, 3)))
        assert not features.holds_every_image(path, ["a"], "s")  # rows still in the journal: unfinished
        cache.compact()
    assert features.holds_every_image(path, ["b", "a", "a"], "s")
    assert features.holds_every_image(path, [], "s")
    assert not features.holds_every_image(path, ["a", "c"], "s")
    with pytest.raises(DeepflError, match="holds features of"):  # as extraction into it would
        features.holds_every_image(path, ["a"], "another model")


def test_a_finished_extraction_rerun_loads_neither_the_model_nor_tensorflow(tmp_path):
    # Reruns with nothing to do waited 6-12 s for TensorFlow and the network (session 24's walk).
    import killrestart

    images = tmp_path / "photos"
    images.mkdir()
    rng = np.random.default_rng(0)
    for k in range(2):
        write_image(images / f"p{k}.png", rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    source = features.extractor_source(None, None, None)  # --weights=none
    paths = [str(p.resolve()) for p in sorted(images.iterdir())]
    with features.FeatureCache(tmp_path / "feats" / "photos.h5", dim=3, source=source) as cache:
        cache.append(paths, np.ones((2, 3)))
        cache.compact()
    argv = [f"--images={images}", "--weights=none", f"--out_dir={tmp_path / 'feats'}"]
    done, imported = killrestart.run_noting_tensorflow("extract_features", argv)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("0 extracted, 2 already cached, no bad images") and not imported


def test_images_takes_the_pattern_its_subfolder_warning_suggests(tmp_path):
    # `--images photos` warns that photos/more/ is left out and suggests 'photos/**/*.png'; the flag refused that
    # pattern as "no such folder" (walk 42). The cache is prefilled so that no process loads the network.
    import killrestart

    images = tmp_path / "photos"
    (images / "more").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("p0.png", "more/p1.png", "more/p2.png"):
        write_image(images / name, rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    source = features.extractor_source(None, None, None)  # --weights=none
    paths = [str(p.resolve()) for p in sorted(images.rglob("*.png"))]
    with features.FeatureCache(tmp_path / "feats" / "photos.h5", dim=3, source=source) as cache:
        cache.append(paths, np.ones((3, 3)))
        cache.compact()
    flags = ["--weights=none", f"--out_dir={tmp_path / 'feats'}"]
    done, imported = killrestart.run_noting_tensorflow("extract_features", [f"--images={images}/**/*.png", *flags])
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("0 extracted, 3 already cached, no bad images") and not imported
    nothing = killrestart.run_job(killrestart.job_command("extract_features", f"--images={images}/**/*.gif", *flags))
    assert nothing.returncode == 3 and nothing.stderr.strip().endswith("/**/*.gif: no file matches this pattern")
    wrong = killrestart.run_job(killrestart.job_command("extract_features", f"--images={tmp_path}/x/**/*.png", *flags))
    assert wrong.returncode == 2 and f"no such folder: {tmp_path}/x (where the pattern searches)" in wrong.stderr


def test_images_cached_under_another_folder_are_named_as_moved(tmp_path, caplog):
    # Session 25's walk: after a project moved, extract-features extracted every image again without a word, and
    # train-mlp's missing-features error advised making unreadable images readable.
    path = tmp_path / "c.h5"
    old = [f"/old/proj/photos/p{k}.png" for k in range(3)]
    with features.FeatureCache(path, dim=2, source="s") as cache:
        cache.append(old, np.ones((3, 2)))
        cache.compact()
    new = [f"/new/place/photos/p{k}.png" for k in range(3)] + ["/new/place/photos/other.png"]
    with features.FeatureCache(path, mode="r") as cache:
        assert cache.cached_elsewhere(new + old) == list(zip(new[:3], old))
        moved = r"\(3 of them are cached under another folder, e\.g\. /old/proj/photos/p0\.png"
        with pytest.raises(DeepflError, match=r"4 image\(s\) have no cached features: .*" + moved):
            cache.get(new)

    def extract(batch):
        return np.zeros((len(batch), 2))

    with caplog.at_level("WARNING", logger="deepfl"):
        features.extract_to_cache(extract, old, path, source="s", dim=2)
        assert not caplog.records
        stats = features.extract_to_cache(extract, new[:1], path, source="s", dim=2)  # (absent here: skipped)
    assert stats["skipped"] == 1
    assert "1 of the images to extract are cached under another folder (e.g. /new/place/photos/p0.png" in caplog.text


def test_the_progress_bar_names_the_cache_it_fills(tmp_path, monkeypatch, capsys):
    """deepfl-reproduce extracts several data sets one after another: each bar says which (it said "MLSP features"
    for all of them)."""
    monkeypatch.delenv("DEEPFL_NO_PROGRESS", raising=False)
    paths = []
    for i in range(2):
        paths.append(str(tmp_path / f"img{i}.png"))
        write_image(paths[-1], np.full((16, 16, 3), 40 * i, np.uint8))
    features.extract_to_cache(lambda x: x.mean(axis=(1, 2)), paths, tmp_path / "csiq.h5", source="test", dim=3)
    assert "MLSP features csiq: 100%" in capsys.readouterr().err


def test_paths_are_cached_under_absolute_keys_and_one_path_string_is_refused(tmp_path, monkeypatch, small_photo):
    """A walk passed relative paths (stored as given, where the docs promise absolute keys) and a folder as one
    string (read letter by letter: 'n: no such image file', ...)."""
    (tmp_path / "img").mkdir()
    for name in ("a.png", "b.png"):
        write_image(tmp_path / "img" / name, small_photo)
    monkeypatch.chdir(tmp_path)

    def extractor(batch):
        return batch.mean(axis=(1, 2))

    stats = features.extract_to_cache(extractor, ["img/a.png", "img/b.png"], "f.h5", dim=3)
    assert stats["written"] == 2
    from helpers_datasets import read_feature_cache

    keys, _ = read_feature_cache(tmp_path / "f.h5")
    assert keys == [str(tmp_path / "img" / "a.png"), str(tmp_path / "img" / "b.png")]
    assert features.load_features("f.h5", [tmp_path / "img" / "b.png", "img/a.png"]).shape == (2, 3)
    with pytest.raises(ValueError, match=r"^paths: a list of image paths, not one path \('img'; a folder's images"):
        features.extract_to_cache(extractor, "img", "g.h5", dim=3)
    assert not (tmp_path / "g.h5").exists()


def test_a_folder_listing_keys_links_by_their_targets_and_says_when_one_is_listed_twice(tmp_path, caplog):
    from deepfl.images import list_images

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        write_image(folder / name, rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    (folder / "a_again.png").symlink_to("a.png")  # a link to a listed file: the same features, extracted once
    (tmp_path / "elsewhere.png").write_bytes((folder / "b.png").read_bytes())
    (folder / "c.png").symlink_to(tmp_path / "elsewhere.png")  # a link out of the folder: keyed by its target
    (folder / "d.png").symlink_to(tmp_path / "unmounted" / "d.png")  # broken: named by the extraction
    with caplog.at_level("INFO", logger="deepfl"):
        keys = features.listed_cache_paths(list_images(folder))
    real = str(folder.resolve())
    assert keys == [f"{real}/a.png", f"{real}/a.png", f"{real}/b.png", str((tmp_path / "elsewhere.png").resolve()),
                    f"{real}/d.png"]  # fmt: skip
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["1 listed file(s) are links to files listed too; each file is extracted once (e.g. a_again.png "
                     "-> a.png)"]  # fmt: skip
    with pytest.raises(JobStopped, match=r"d.png: a link to .*unmounted/d.png, which does not exist"):
        features.group_by_size([keys[-1]], ErrorPolicy("stop"))
