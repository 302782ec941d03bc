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
