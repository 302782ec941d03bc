"""Image reading: every layout becomes uint8 RGB; every bad file gives one line naming it."""

import numpy as np
import pytest
from PIL import Image

from deepfl.errors import ImageReadError
from deepfl.images import read_image, write_image


def test_round_trip_png_is_lossless(tmp_path, small_photo):
    path = tmp_path / "a.png"
    write_image(path, small_photo)
    np.testing.assert_array_equal(read_image(path), small_photo)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK", "I;16"])
def test_layouts_become_rgb_uint8(tmp_path, small_photo, mode):
    image = Image.fromarray(small_photo)
    if mode == "I;16":
        converted = Image.fromarray(small_photo[..., 0].astype(np.uint16) * 257)
    else:
        converted = image.convert(mode)
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    converted.save(path)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == small_photo.shape
    if mode == "I;16":
        np.testing.assert_array_equal(out[..., 1], small_photo[..., 0])


def test_bad_files_name_the_culprit(tmp_path, small_photo):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "text.png"
    text.write_text("not an image")
    write_image(tmp_path / "full.png", small_photo)
    truncated = tmp_path / "trunc.png"
    truncated.write_bytes((tmp_path / "full.png").read_bytes()[:200])
    for path, reason in [(empty, "empty"), (text, "not an image"), (truncated, "truncated"),
                         (tmp_path / "missing.png", "no such")]:
        with pytest.raises(ImageReadError, match=reason) as info:
            read_image(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
