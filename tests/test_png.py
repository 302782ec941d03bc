"""Tests of deepfl.png, the generator's PNG writer: every reader decodes exactly the pixels written."""

import io

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from deepfl import png

BACKENDS = ["zlib"] + (["libdeflate"] if png.deflate_backend() == "libdeflate" else [])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("level", [0, 1, 6])
def test_pillow_and_imageio_read_back_the_same_pixels(photo, backend, level):
    rng = np.random.default_rng(0)
    for image in (photo, photo[:, :, 1], photo[:1, :1], rng.integers(0, 256, (7, 5, 4), dtype=np.uint8),
                  rng.integers(0, 256, (3, 8, 2), dtype=np.uint8), photo[::-1, ::2]):  # also non-contiguous
        data = png.encode_png(image, level, backend)
        with Image.open(io.BytesIO(data)) as decoded:
            decoded.verify()  # chunk CRCs and structure
        with Image.open(io.BytesIO(data)) as decoded:
            np.testing.assert_array_equal(np.asarray(decoded), image)
        np.testing.assert_array_equal(iio.imread(data), image)


def test_level_one_is_compressed_and_level_zero_is_stored(photo):
    raw = photo.nbytes + photo.shape[0]
    assert len(png.encode_png(photo, 1)) < 0.8 * raw
    assert len(png.encode_png(photo, 0)) >= raw


def test_default_is_deterministic(photo):
    assert png.encode_png(photo) == png.encode_png(photo.copy())


@pytest.mark.parametrize("kwargs, name", [
    (dict(image=np.zeros((4, 4, 3), np.float32)), "image"),
    (dict(image=np.zeros((4, 4, 5), np.uint8)), "image"),
    (dict(image=np.zeros((0, 4, 3), np.uint8)), "image"),
    (dict(image=np.zeros((4, 4, 3), np.uint8), level=13), "level"),
    (dict(image=np.zeros((4, 4, 3), np.uint8), level=10, backend="zlib"), "level"),
    (dict(image=np.zeros((4, 4, 3), np.uint8), backend="lzma"), "backend"),
])
def test_bad_arguments_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        png.encode_png(**kwargs)
