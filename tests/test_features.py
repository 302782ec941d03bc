"""MLSP feature extraction batched by size and its resumable HDF5 cache (tiny stand-in extractor)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from deepfl import features
from deepfl.errors import DeepflError
from deepfl.images import write_image
from deepfl.jobs import ErrorPolicy


def tiny_extractor():
    """Image [0, 255] -> 7 floats: two pooled levels, like a miniature MLSP (fixed seed)."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    a = keras.layers.Conv2D(4, 3, activation="relu")(x)
    b = keras.layers.Conv2D(3, 3, strides=2, activation="relu")(a)
    out = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(a), keras.layers.GlobalAveragePooling2D()(b)])
    return keras.Model(inp, out)


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
    stats = features.extract_to_cache(extractor, paths[:3] + [bad], cache, batch_size=2, source="tiny",
                                      policy=policy)
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
        np.testing.assert_allclose(row, extractor.predict_on_batch(img[None].astype(np.float32))[0], rtol=1e-5,
                                   atol=1e-6)


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


_WRITER = """
import sys, numpy as np
from deepfl.features import FeatureCache
with FeatureCache(sys.argv[1], dim=512, source="w") as cache:
    for i in range(100000):
        if str(i) in cache:
            continue
        keys = [str(j) for j in range(i - i % 4, i - i % 4 + 4)]
        cache.append(keys, np.stack([np.full(512, float(k)) for k in keys]))
        if i >= 3000:
            break
"""


def test_sigkill_never_corrupts_committed_rows(tmp_path):
    path = tmp_path / "k.h5"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    kills = 0
    for attempt in range(3):
        start_size = path.stat().st_size if path.exists() else 0
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], env=env, start_new_session=True)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if path.exists() and path.stat().st_size > start_size + 300_000:
                break
            time.sleep(0.005)
        time.sleep(0.01 * attempt)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 1
    subprocess.run([sys.executable, "-c", _WRITER, str(path)], env=env, check=True, timeout=120)
    with features.FeatureCache(path) as cache:
        keys = cache.keys()
        assert len(keys) == len(set(keys)) >= 3000
        values = cache.get(keys)
    np.testing.assert_array_equal(values, np.repeat(np.array(keys, float)[:, None], 512, axis=1))
