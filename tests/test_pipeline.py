"""The tf.data pipeline: decoding of every format, batching, targets, seeded shuffles, augmentation, bad files."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from deepfl import data as dd
from deepfl.fr import METRICS
from deepfl.images import read_image, write_image


@pytest.fixture(scope="module")
def images(tmp_path_factory, small_photo) -> list[Path]:
    """Twelve different 48x64 crops of a real photo, alternately PNG and JPEG."""
    folder = tmp_path_factory.mktemp("pipeline")
    paths = []
    for i in range(12):
        crop = small_photo[i * 3 : i * 3 + 48, i * 5 : i * 5 + 64]
        path = folder / f"img{i:02d}.{'png' if i % 2 == 0 else 'jpg'}"
        write_image(path, crop)
        paths.append(path)
    return paths


def table_of(paths, **columns) -> pd.DataFrame:
    n = len(paths)
    table = pd.DataFrame(
        {"image": [str(p) for p in paths], "content": [f"c{i}" for i in range(n)], "score": np.linspace(0, 1, n)}
    )
    for name, values in columns.items():
        table[name] = values
    return table


def collect(dataset):
    images, targets = [], {}
    for batch_images, batch_targets in dataset:
        images.append(batch_images.numpy())
        for k, v in batch_targets.items():
            targets.setdefault(k, []).append(v.numpy())
    return images, {k: np.concatenate(v) for k, v in targets.items()}


def test_decode_formats_match_pillow(tmp_path, small_photo):
    rgb = small_photo[:20, :30]
    gray = rgb[..., 0]
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])
    cases = {
        "rgb.png": Image.fromarray(rgb),
        "rgb.bmp": Image.fromarray(rgb),
        "gray.png": Image.fromarray(gray),
        "rgba.png": Image.fromarray(rgba),
        "pal.gif": Image.fromarray(rgb).convert("P"),
        "gray.jpg": Image.fromarray(gray),
        "rgb.jpg": Image.fromarray(rgb),
        "gray.bmp": Image.fromarray(gray),
    }
    for name, pil in cases.items():
        pil.save(tmp_path / name)
        ours = dd.read_image_tf(str(tmp_path / name)).numpy()
        expected = read_image(tmp_path / name)
        assert ours.shape == expected.shape == (20, 30, 3), name
        np.testing.assert_array_equal(ours, expected, err_msg=name)  # JPEG too: same accurate IDCT as Pillow
    fast = dd.read_image_tf(str(tmp_path / "rgb.jpg"), accurate_jpeg=False).numpy()
    assert 0 < np.abs(fast.astype(int) - read_image(tmp_path / "rgb.jpg")).max() <= 4
    assert not dd.is_known_image(tf.constant(b"hello")).numpy()
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    np.testing.assert_array_equal(dd.decode_image_tf(tf.constant(buffer.getvalue())).numpy(), rgb)


def test_16_bit_and_transparent_files_train_on_the_pixels_and_warnings_of_read_image(tmp_path, caplog):
    # Walked in session 44: training's decoder kept v >> 8 of a 16-bit PNG where every other job rounds v / 257
    # (MATLAB's im2uint8), and dropped a PNG's alpha without the warning line the other jobs print.
    from badinputs import png_bytes

    rng = np.random.default_rng(4)
    wide = rng.integers(0, 65536, (20, 30, 4), dtype=np.uint16)
    wide[0, 0, :3] = 257 * 9 + 200  # a level above v >> 8 once rounded
    rounded = np.round(wide / 257).astype(np.uint8)
    opaque = wide.copy()
    opaque[..., 3] = 65535
    small = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    files = {
        "rgb16.png": (png_bytes(wide[..., :3], 16), rounded[..., :3], False),
        "gray16.png": (png_bytes(wide[..., 0], 16), np.repeat(rounded[..., :1], 3, axis=2), False),
        "rgba16.png": (png_bytes(wide, 16), rounded[..., :3], True),
        "opaque_rgba16.png": (png_bytes(opaque, 16), rounded[..., :3], False),
        "gray_alpha.png": (png_bytes(small[..., :2], 8), np.repeat(small[..., :1], 3, axis=2), True),
    }
    palette = Image.fromarray(small).quantize(8)
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", transparency=0)
    files["palette_trns.png"] = (buffer.getvalue(), np.asarray(palette.convert("RGB")), True)
    paths = []
    for name, (data, expected, _) in files.items():
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
        np.testing.assert_array_equal(read_image(tmp_path / name), expected, err_msg=name)
        np.testing.assert_array_equal(dd.read_image_tf(str(tmp_path / name)).numpy(), expected, err_msg=name)
    assert (rounded[..., :3] != (wide[..., :3] >> 8)).any()  # the test tells rounding from truncation

    from deepfl import images as deepfl_images

    deepfl_images._warned.clear()  # (warned once per process: the reads above warned already)
    with caplog.at_level(logging.WARNING, logger="deepfl"):
        batches, _ = collect(dd.make_dataset(table_of(paths), "score", batch_size=2, training=True, seed=1))
    assert sorted(np.concatenate(batches).sum(axis=(1, 2, 3))) == sorted(
        float(expected.astype(np.float32).sum()) for _, expected, _ in files.values()
    )
    warned = {r.getMessage().split(": ")[0] for r in caplog.records if "has transparent pixels" in r.getMessage()}
    assert warned == {str(tmp_path / name) for name, (_, _, transparent) in files.items() if transparent}


def test_batches_and_single_target(images):
    table = table_of(images)
    dataset = dd.make_dataset(table, "score", batch_size=5)
    batches, targets = collect(dataset)
    assert [b.shape for b in batches] == [(5, 48, 64, 3), (5, 48, 64, 3), (2, 48, 64, 3)]
    assert batches[0].dtype == np.float32 and 0 <= batches[0].min() and batches[0].max() <= 255
    np.testing.assert_allclose(targets["score"], table["score"], rtol=1e-6)  # eval: table order kept
    np.testing.assert_array_equal(batches[0][1], read_image(images[1]).astype(np.float32))
    assert dataset.deepfl_stats.seen == 12 and dataset.deepfl_stats.skipped == 0


def test_eleven_weak_label_targets_with_normalizer(images):
    rng = np.random.default_rng(0)
    table = table_of(images, **{m: rng.uniform(0, 1, len(images)) for m in METRICS})
    normalizer = dd.TargetNormalizer().fit(table.iloc[:8], METRICS)
    _, targets = collect(dd.make_dataset(table, METRICS, batch_size=4, normalizer=normalizer))
    assert sorted(targets) == sorted(METRICS)
    np.testing.assert_allclose(targets["gmsd"], normalizer.transform(table)["gmsd"], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"targets: column\(s\) \['psnr'\]"):
        dd.make_dataset(table, ["psnr"], batch_size=4)
    table.loc[3, "ssim"] = np.nan
    with pytest.raises(ValueError, match="target 'ssim' is NaN/inf for .*img03.jpg"):
        dd.make_dataset(table, METRICS, batch_size=4)


def test_seeded_shuffle_is_reproducible_and_reshuffles(images):
    table = table_of(images)

    def order(seed, epochs=1):
        dataset = dd.make_dataset(table, "score", 4, training=True, seed=seed, repeat=epochs > 1)
        return collect(dataset.take(3 * epochs))[1]["score"]

    first, again, other = order(1), order(1), order(2)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert sorted(first) == sorted(table["score"].astype(np.float32))  # a permutation, each image once
    two_epochs = order(1, epochs=2)
    assert sorted(two_epochs[:12]) == sorted(two_epochs[12:]) and not np.array_equal(two_epochs[:12], two_epochs[12:])


def test_crop_flip_resize(images):
    table = table_of(images[:4])
    train = collect(
        dd.make_dataset(table, "score", 4, training=True, crop_size=(32, 40), flip=True, seed=5, shuffle=False)
    )[0][0]
    again = collect(
        dd.make_dataset(table, "score", 4, training=True, crop_size=(32, 40), flip=True, seed=5, shuffle=False)
    )[0][0]
    assert train.shape == (4, 32, 40, 3)
    np.testing.assert_array_equal(train, again)
    full = read_image(images[0]).astype(np.float32)
    windows = [full[y : y + 32, x : x + 40] for y in range(17) for x in range(25)]
    assert any(np.array_equal(train[0], w) or np.array_equal(train[0], w[:, ::-1]) for w in windows)
    # deterministic mode: shuffled order, crops and flips are the same bytes in two fresh pipelines
    runs = [
        collect(dd.make_dataset(table_of(images), "score", 5, training=True, crop_size=(32, 40), flip=True, seed=9))
        for _ in range(2)
    ]
    np.testing.assert_array_equal(np.concatenate(runs[0][0]), np.concatenate(runs[1][0]))
    np.testing.assert_array_equal(runs[0][1]["score"], runs[1][1]["score"])
    # resuming after 14 consumed images (12 of epoch 1, 2 of epoch 2) continues the unbroken stream exactly
    kwargs = dict(training=True, crop_size=(32, 40), flip=True, seed=9, repeat=True)
    unbroken = collect(dd.make_dataset(table_of(images), "score", 1, **kwargs).take(20))
    resumed = collect(dd.make_dataset(table_of(images), "score", 1, skip=14, **kwargs).take(6))
    np.testing.assert_array_equal(np.concatenate(resumed[0]), np.concatenate(unbroken[0][14:]))
    np.testing.assert_array_equal(resumed[1]["score"], unbroken[1]["score"][14:])
    centre = collect(dd.make_dataset(table, "score", 4, crop_size=(32, 40)))[0][0]
    np.testing.assert_array_equal(centre[0], full[8:40, 12:52])
    resized = collect(dd.make_dataset(table, "score", 4, image_size=(24, 32)))[0][0]
    assert resized.shape == (4, 24, 32, 3) and abs(resized[0].mean() - full.mean()) < 2


def test_mixed_sizes_batched_by_shape(images, tmp_path, small_photo):
    small = tmp_path / "small.png"
    write_image(small, small_photo[:30, :40])
    table = table_of([images[0], small, images[2], images[4]])
    batches, _ = collect(dd.make_dataset(table, "score", batch_size=4))
    assert sorted(b.shape for b in batches) == [(1, 30, 40, 3), (3, 48, 64, 3)]


@pytest.fixture(scope="module")
def many_sizes(tmp_path_factory, small_photo) -> list[Path]:
    """Nine PNG crops of a real photo in three sizes (48x64, 30x40, 40x30), the sizes interleaved in the list."""
    folder = tmp_path_factory.mktemp("many_sizes")
    shapes = [(48, 64), (30, 40), (40, 30)]
    paths = []
    for i in range(9):
        height, width = shapes[i % 3]
        path = folder / f"s{i}.png"
        write_image(path, small_photo[i * 2 : i * 2 + height, i * 3 : i * 3 + width])
        paths.append(path)
    return paths


def test_training_on_many_sizes_sees_every_image_once_per_pass_and_resumes_at_a_batch(many_sizes, tmp_path):
    """A repeated training stream of several sizes: each pass (epoch) trains every row once, in batches of one
    size, the last of a size smaller; a stream started after k batches continues the unbroken one exactly
    (images, flips and targets). Before, batches were filled across passes: with batch 4 and three images per
    size, a batch held one image twice and an epoch of 3 steps missed whole sizes."""
    from deepfl.data.size_batches import batches_per_pass

    table = table_of(many_sizes, row=np.arange(9, dtype=float))
    per_pass = batches_per_pass([read_image(p).shape[:2] for p in many_sizes], 4)
    assert per_pass == 3

    def stream(skip: int, count: int):
        dataset = dd.make_dataset(table, "row", 4, training=True, repeat=True, flip=True, seed=3, skip=skip)
        return [(images.numpy(), targets["row"].numpy()) for images, targets in dataset.take(count)]

    unbroken = stream(0, 3 * per_pass)
    for epoch in range(3):
        batches = unbroken[epoch * per_pass : (epoch + 1) * per_pass]
        rows = np.concatenate([rows for _, rows in batches])
        assert sorted(rows) == list(range(9)), (epoch, rows)
        for images, rows in batches:
            assert {read_image(many_sizes[int(r)]).shape for r in rows} == {images.shape[1:]}
    first_rows = [list(rows) for _, rows in unbroken[:per_pass]]
    assert first_rows != [list(rows) for _, rows in unbroken[per_pass : 2 * per_pass]]  # reshuffled each pass
    flipped = [
        not np.array_equal(image, read_image(many_sizes[int(row)]))
        for images, rows in unbroken
        for image, row in zip(images, rows)
    ]
    assert any(flipped) and not all(flipped)
    for k in (2, 4):
        resumed = stream(k, len(unbroken) - k)
        assert all(np.array_equal(a, c) and np.array_equal(b, d) for (a, b), (c, d) in zip(resumed, unbroken[k:])), k

    # A corrupt file is dropped from its batch alone, and counted.
    broken = tmp_path / "broken.png"
    broken.write_bytes(many_sizes[0].read_bytes()[:300])
    stats = dd.PipelineStats()
    sizes = [read_image(p).shape[:2] for p in many_sizes] + [(48, 64)]
    dataset = dd.make_dataset(
        table_of([*many_sizes, broken], row=np.arange(10.0)),
        "row",
        4,
        training=True,
        repeat=True,
        stats=stats,
        image_sizes=sizes,
    )
    rows = np.concatenate([targets["row"].numpy() for _, targets in dataset.take(batches_per_pass(sizes, 4))])
    assert sorted(rows) == list(range(9)) and stats.skipped >= 1  # (read-ahead passes count too)
    with pytest.raises(ValueError, match="image_sizes: 9 sizes for a table of 10 rows"):
        dd.make_dataset(table_of([*many_sizes, broken]), "score", 4, training=True, repeat=True, image_sizes=sizes[:9])


def test_batches_for_two_replicas_have_an_even_length_even_above_the_batch_size(many_sizes):
    """Three images of each size at batch 3 for 2 replicas: each size's one batch is topped up to 4 (it is never
    cut into 3 + 1, which would leave a replica without an image)."""
    table = table_of(many_sizes, row=np.arange(9, dtype=float))
    dataset = dd.make_dataset(table, "row", 3, training=True, repeat=True, seed=1, replicas=2)
    lengths = [int(images.shape[0]) for images, _ in dataset.take(6)]
    assert lengths == [4] * 6, lengths


@pytest.mark.parametrize("cores", [1, 2, 16])
def test_every_pipeline_runs_without_tf_data_autotuning(images, many_sizes, monkeypatch, cores):
    """tf.data's autotuning thread sometimes slept through the iterator's cancellation, and deleting a training
    stream (at the end of each training phase) then waited 20-50 s idle (two of three stage-1 runs of the demo's
    size on 2 cores); every kind of pipeline runs with fixed parallelism instead (one call per core; tf.data
    refuses more parallel calls than an interleave's cycle, which 16 cores would exceed), and yields its batches."""
    from deepfl.data import pipeline

    monkeypatch.setattr(pipeline, "PARALLEL_CALLS", cores)
    pipelines = {
        "one size, cropped": dd.make_dataset(table_of(images), "score", 4, training=True, crop_size=32, repeat=True),
        "by shape": dd.make_dataset(table_of(images), "score", 4),
        "many sizes, planned": dd.make_dataset(table_of(many_sizes), "score", 4, training=True, repeat=True),
        "validation": dd.make_dataset(table_of(images), "score", 5, crop_size=32, same_size=True, dtype="uint8"),
    }
    for name, dataset in pipelines.items():
        assert dataset.options().autotune.enabled is False, name
        assert sum(int(batch.shape[0]) for batch, _ in dataset.take(3)) >= 3, name


def test_a_crop_larger_than_the_images_is_named_not_called_corrupt(images, caplog):
    """Every image smaller than crop_size: no batch, and the stats called all of them corrupt while
    name_skipped (checking decodability only) found none of them."""
    table = table_of(images[:4])
    stats = dd.PipelineStats()
    batches, _ = collect(dd.make_dataset(table, "score", 2, training=True, crop_size=(56, 56), stats=stats))
    assert batches == [] and stats.skipped == 4
    assert stats.summary() == "0 of 4 images decoded, 4 skipped (unreadable or smaller than the crop)"
    with caplog.at_level(logging.WARNING, logger="deepfl"):
        named = stats.name_skipped(table["image"])
    assert [p for p, _ in named] == list(table["image"])
    assert "64x48 pixels (width x height), smaller than the crop of 56x56" in named[0][1]
    assert f"{images[0]}: image skipped (64x48 pixels" in caplog.text


def test_corrupt_images_skipped_and_counted_or_stop(images, tmp_path, caplog):
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(images[0].read_bytes()[:200])
    not_image = tmp_path / "text.jpg"
    not_image.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    paths = [images[0], truncated, images[1], not_image, empty, tmp_path / "missing.png", images[2]]
    table = table_of(paths)
    stats = dd.PipelineStats()
    batches, targets = collect(dd.make_dataset(table, "score", 2, stats=stats))
    assert sum(len(b) for b in batches) == 3 and stats.skipped == 4 and stats.seen == 7
    np.testing.assert_allclose(targets["score"], table["score"].iloc[[0, 2, 6]], rtol=1e-6)
    collect(dd.make_dataset(table, "score", 2, stats=stats))  # counts accumulate over epochs
    assert stats.skipped == 8
    stats.reset()
    assert stats.seen == 0
    bad = dict(dd.find_unreadable_images(table["image"]))
    assert set(bad) == {str(p) for p in (truncated, not_image, empty, tmp_path / "missing.png")}
    assert bad[str(not_image)] == "not an image file (unknown or corrupt format)"
    assert bad[str(empty)] == "empty file (0 bytes)"
    assert stats.name_skipped(table["image"]) == []  # nothing skipped since reset
    stats._seen.assign(1)
    with caplog.at_level(logging.WARNING, logger="deepfl"):
        named = stats.name_skipped(table["image"])
    assert {p for p, _ in named} == set(bad) and f"{not_image}: image skipped" in caplog.text
    uncounted = dd.PipelineStats()
    batches, _ = collect(dd.make_dataset(table, "score", 2, stats=uncounted, count_errors=False))
    assert sum(len(b) for b in batches) == 3 and uncounted.seen == 0
    with pytest.raises(tf.errors.OpError):
        collect(dd.make_dataset(table, "score", 2, on_error="stop"))


def test_first_usable_image_skips_unreadable_and_too_small_files(images, tmp_path):
    # A repeated training stream of files that are all skipped would wait forever for its first batch: the
    # training job refuses such a split up front with this function.
    truncated = tmp_path / "truncated.png"  # a valid header, pixels cut off: only the decode finds it
    truncated.write_bytes(images[0].read_bytes()[:200])
    not_image = tmp_path / "text.png"
    not_image.write_text("not an image")
    bad = [str(not_image), str(truncated), str(tmp_path / "missing.png")]
    assert dd.first_usable_image(bad) is None
    assert dd.first_usable_image([*bad, str(images[3])]) == str(images[3])
    assert dd.first_usable_image([str(p) for p in images], crop_size=(48, 64)) == str(images[0])
    assert dd.first_usable_image([str(p) for p in images], crop_size=(49, 64)) is None  # all 48x64
    assert dd.first_usable_image([str(p) for p in images], crop_size=(64, 48)) is None
    assert dd.first_usable_image([]) is None


def test_uint8_same_size_and_drop_remainder_counts(images, tmp_path):
    table = table_of(images)
    as_float = collect(dd.make_dataset(table, "score", 5))[0]
    as_uint8 = collect(dd.make_dataset(table, "score", 5, dtype="uint8", same_size=True))[0]
    assert as_uint8[0].dtype == np.uint8 and [b.shape for b in as_uint8] == [b.shape for b in as_float]
    np.testing.assert_array_equal(np.concatenate(as_uint8).astype(np.float32), np.concatenate(as_float))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    stats = dd.PipelineStats()
    batches, _ = collect(dd.make_dataset(table_of([*images, broken]), "score", 5, drop_remainder=True, stats=stats))
    assert [len(b) for b in batches] == [5, 5] and stats.seen == 13 and stats.decoded == 12 and stats.skipped == 1


def test_make_dataset_argument_errors(images):
    table = table_of(images[:2])
    with pytest.raises(ValueError, match="on_error"):
        dd.make_dataset(table, "score", 2, on_error="ignore")
    with pytest.raises(ValueError, match="batch_size"):
        dd.make_dataset(table, "score", 0)
    with pytest.raises(ValueError, match="crop_size"):
        dd.make_dataset(table, "score", 2, crop_size=(0, 3))
    with pytest.raises(ValueError, match="skip: must be"):
        dd.make_dataset(table, "score", 2, skip=-1)
    with pytest.raises(ValueError, match="dtype: must be"):
        dd.make_dataset(table, "score", 2, dtype="float16")
    with pytest.raises(ValueError, match="dtype: 'uint8' cannot carry resized"):
        dd.make_dataset(table, "score", 2, dtype="uint8", image_size=8)
    with pytest.raises(ValueError, match="table: is empty"):
        dd.make_dataset(table.iloc[:0], "score", 2)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_training_pipeline_reads_jpegs_upright_like_read_image(tmp_path, small_photo, orientation):
    """tf.data decodes with tf.io, which ignores EXIF; the pipeline applies the orientation tag itself."""
    from PIL import Image

    from deepfl.data.pipeline import header_sizes, read_image_tf
    from deepfl.images import jpeg_orientation, read_image

    photo = np.ascontiguousarray(small_photo[:, :100])  # not square, so a wrong transpose shows
    tagged = tmp_path / f"o{orientation}.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(photo).save(tagged, quality=95, exif=exif.tobytes())
    assert jpeg_orientation(tagged.read_bytes()) == orientation
    expected = read_image(tagged)  # Pillow's exif_transpose
    np.testing.assert_array_equal(read_image_tf(str(tagged)).numpy(), expected)
    assert header_sizes([str(tagged)]) == {expected.shape[:2]: 1}


def test_the_exif_parser_runs_only_for_jpegs_that_hold_exif(tmp_path, small_photo, monkeypatch):
    """A call into Python per image halved the JPEG stream: JPEGs without EXIF (and other formats) are found
    upright in the graph; a JPEG with EXIF still goes through `jpeg_orientation`."""
    from PIL import Image

    from deepfl.data import pipeline
    from deepfl.images import jpeg_orientation, read_image

    calls = []
    monkeypatch.setattr(pipeline, "jpeg_orientation", lambda data: calls.append(1) or jpeg_orientation(data))
    photo = np.ascontiguousarray(small_photo[:, :100])
    plain, tagged, png = tmp_path / "plain.jpg", tmp_path / "tagged.jpg", tmp_path / "image.png"
    Image.fromarray(photo).save(plain, quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(photo).save(tagged, quality=95, exif=exif.tobytes())
    Image.fromarray(photo).save(png, exif=exif.tobytes())  # a PNG eXIf chunk: not read, as by read_image
    for path, parsed in ((plain, 0), (png, 0), (tagged, 1)):
        calls.clear()
        np.testing.assert_array_equal(pipeline.read_image_tf(str(path)).numpy(), read_image(path))
        assert len(calls) == parsed, path.name


def test_jpeg_orientation_reads_both_byte_orders_and_ignores_other_bytes():
    from deepfl.images import jpeg_orientation

    def jpeg_with_exif(tiff: bytes) -> bytes:
        payload = b"Exif\x00\x00" + tiff
        return b"\xff\xd8" + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + b"\xff\xda\x00\x02"

    little = b"II*\x00" + (8).to_bytes(4, "little") + (1).to_bytes(2, "little")
    little += (0x0112).to_bytes(2, "little") + (3).to_bytes(2, "little") + (1).to_bytes(4, "little")
    little += (6).to_bytes(2, "little") + b"\x00\x00"
    big = b"MM\x00*" + (8).to_bytes(4, "big") + (1).to_bytes(2, "big")
    big += (0x0112).to_bytes(2, "big") + (3).to_bytes(2, "big") + (1).to_bytes(4, "big") + (8).to_bytes(2, "big")
    big += b"\x00\x00"
    assert jpeg_orientation(jpeg_with_exif(little)) == 6
    assert jpeg_orientation(jpeg_with_exif(big)) == 8
    assert jpeg_orientation(b"\x89PNG\r\n\x1a\n") == 1
    assert jpeg_orientation(b"\xff\xd8\xff\xda") == 1
    assert jpeg_orientation(b"") == 1
    assert jpeg_orientation(jpeg_with_exif(b"XX")) == 1  # a broken TIFF header is no orientation


def test_formats_tensorflow_cannot_decode_read_as_read_image_does(tmp_path, small_photo):
    """TIFF, WebP, PPM (and a float TIFF) through the training pipeline: Pillow's pixels, upright for EXIF."""
    from PIL import Image

    from deepfl.images import read_image

    image = Image.fromarray(small_photo)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, as a phone does
    paths = [tmp_path / "a.tif", tmp_path / "b.webp", tmp_path / "c.ppm", tmp_path / "d.tif", tmp_path / "e.tif"]
    image.save(paths[0])
    image.save(paths[1], lossless=True, exif=exif)
    image.save(paths[2])
    image.save(paths[3], exif=exif)
    Image.fromarray((small_photo[..., 0] / 255.0).astype(np.float32)).save(paths[4])
    for path in paths:
        decoded = dd.read_image_tf(str(path)).numpy()
        np.testing.assert_array_equal(decoded, read_image(path), err_msg=path.name)
    assert dd.read_image_tf(str(paths[1])).shape[:2] == small_photo.shape[1::-1]  # turned upright
    batches, _ = collect(dd.make_dataset(table_of(paths[:3]), "score", 3, training=True, crop_size=8, flip=True))
    assert [b.shape for b in batches] == [(3, 8, 8, 3)]
