"""Feature extraction (and deepfl-predict, which shares `predict_by_size`) on images of many sizes does not build
a new graph per size: one trace serves every height and width (Keras' `predict_on_batch` traced twice, for the
first size and again for unknown sizes)."""

from __future__ import annotations

import numpy as np


def test_compute_features_traces_once_over_eight_sizes_and_matches_predict_on_batch():
    from deepfl import features
    from deepfl.models.banded_conv import any_size_predictor
    from helpers_models import tiny_extractor

    model = tiny_extractor()
    images = [np.full((40 + 6 * k, 50 + 5 * k, 3), 10 * k, np.uint8) for k in range(8)]
    out = features.compute_features(model, images, batch_size=1)
    assert out.shape == (8, 7) and np.all(np.isfinite(out))
    features.compute_features(model, images[::-1], batch_size=2)  # a second call reuses the trace
    assert any_size_predictor(model).experimental_get_tracing_count() == 1
    for image, row in zip(images, out):
        expected = model.predict_on_batch(image[None].astype(np.float32))[0]
        np.testing.assert_allclose(row, expected, rtol=1e-6, atol=1e-7)


def test_phone_portraits_are_batched_with_their_upright_size(tmp_path, small_photo):
    """A phone stores a portrait sideways (W x H pixels, EXIF orientation 6), so its header size equals a
    landscape photo's; decoded upright it is H x W. Batching must use the upright size, or the two cannot be
    stacked and the whole batch is skipped."""
    from PIL import Image

    from deepfl import features
    from deepfl.images import header_size

    landscape = tmp_path / "landscape.jpg"
    Image.fromarray(small_photo[:48, :64]).save(landscape, quality=95)
    portrait = tmp_path / "portrait.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view": stored sideways
    Image.fromarray(small_photo[:48, :64]).save(portrait, quality=95, exif=exif.tobytes())
    assert header_size(landscape) == (48, 64) and header_size(portrait) == (64, 48)

    seen = []

    def extractor(batch):
        seen.append(batch.shape[1:3])
        return batch.mean(axis=(1, 2))

    stats = features.extract_to_cache(
        extractor, [str(landscape), str(portrait)], tmp_path / "f.h5", batch_size=8, dim=3
    )
    assert stats["written"] == 2 and stats["skipped"] == 0, stats
    assert sorted(seen) == [(48, 64), (64, 48)]


def test_the_traced_function_does_not_keep_its_model_alive():
    import gc
    import weakref

    from deepfl.models.banded_conv import any_size_predictor
    from helpers_models import tiny_extractor

    model = tiny_extractor()
    any_size_predictor(model)(np.zeros((1, 40, 50, 3), np.float32))
    gone = weakref.ref(model)
    del model
    gc.collect()
    assert gone() is None
