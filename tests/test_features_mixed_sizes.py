"""Feature extraction (and deepfl-predict, which shares `predict_by_size`) on images of many sizes does not build
a new graph per size: the Keras predict function relaxes to unknown height/width after the second shape."""

from __future__ import annotations

import numpy as np


def test_compute_features_traces_at_most_twice_over_eight_sizes():
    from deepfl import features
    from helpers_models import tiny_extractor

    model = tiny_extractor()
    images = [np.full((40 + 6 * k, 50 + 5 * k, 3), 10 * k, np.uint8) for k in range(8)]
    out = features.compute_features(model, images, batch_size=1)
    assert out.shape == (8, 7) and np.all(np.isfinite(out))
    assert model.predict_function.experimental_get_tracing_count() <= 2


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
