"""Image reading: every layout becomes uint8 RGB; every bad file gives one line naming it."""

from pathlib import Path

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
    for path, reason in [
        (empty, "empty"),
        (text, "not an image"),
        (truncated, "truncated"),
        (tmp_path / "missing.png", "no such"),
    ]:
        with pytest.raises(ImageReadError, match=reason) as info:
            read_image(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_read_images_ahead_keeps_order_and_hands_back_errors(tmp_path, small_photo):
    from deepfl.images import read_images_ahead

    paths = []
    for i in range(7):
        path = tmp_path / f"{i}.png"
        write_image(path, np.roll(small_photo, i, axis=1))
        paths.append(path)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    paths.insert(3, tmp_path / "bad.png")
    paths.append(tmp_path / "missing.png")
    results = list(read_images_ahead(paths, workers=3, lookahead=2))
    assert [name for name, _ in results] == [str(p) for p in paths]
    errors = [name for name, image in results if isinstance(image, ImageReadError)]
    assert errors == [str(tmp_path / "bad.png"), str(tmp_path / "missing.png")]
    good = [image for _, image in results if not isinstance(image, ImageReadError)]
    for i, image in enumerate(good):
        np.testing.assert_array_equal(image, np.roll(small_photo, i, axis=1))


@pytest.mark.parametrize("orientation, rotate", [(1, 0), (3, 2), (6, -1), (8, 1)])
def test_exif_orientation_is_applied(tmp_path, small_photo, orientation, rotate):
    """A phone stores a portrait photo sideways with an EXIF orientation tag; it must be read upright."""
    plain, tagged = tmp_path / "plain.jpg", tmp_path / "tagged.jpg"
    Image.fromarray(small_photo).save(plain, quality=95)
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    Image.fromarray(small_photo).save(tagged, quality=95, exif=exif.tobytes())
    upright = read_image(tagged)
    np.testing.assert_array_equal(upright, np.rot90(read_image(plain), k=rotate))
    assert upright.shape[:2] == (small_photo.shape[:2] if rotate in (0, 2) else small_photo.shape[1::-1])


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif"])
@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_header_size_is_the_size_read_image_returns(tmp_path, small_photo, suffix, orientation):
    """Jobs batch images by their header size (no decode), so it must be the size `read_image` gives, EXIF
    orientation applied (JPEG, WebP, TIFF) or not (PNG: ignored by every decoder of ours), in every format."""
    from deepfl.images import header_size

    path = tmp_path / f"tagged{suffix}"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(small_photo[:48, :64]).save(path, exif=exif.tobytes())
    assert header_size(path) == read_image(path).shape[:2]
    turned = suffix != ".png" and orientation in (6, 8)
    assert header_size(path) == ((64, 48) if turned else (48, 64))


def test_header_size_names_a_missing_or_unreadable_file(tmp_path):
    from deepfl.images import header_size

    with pytest.raises(ImageReadError, match="missing.png: no such image file"):
        header_size(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match=r"bad.png: not an image file \(unknown or corrupt format\)"):
        header_size(tmp_path / "bad.png")
    (tmp_path / "empty.png").write_bytes(b"")  # in the words of every other job (extraction's were Pillow's)
    with pytest.raises(ImageReadError, match=r"empty.png: empty file \(0 bytes\)"):
        header_size(tmp_path / "empty.png")
    (tmp_path / "gone.png").symlink_to(tmp_path / "moved" / "photo.png")
    with pytest.raises(ImageReadError, match=r"gone.png: a link to .*moved/photo.png, which does not exist"):
        header_size(tmp_path / "gone.png")


def test_header_error_says_what_read_image_would_say_without_decoding(tmp_path, small_photo):
    """deepfl-predict names such files before it loads a model, in read_image's words."""
    from deepfl.images import header_error, header_errors

    (tmp_path / "text.jpg").write_text("not a photo")
    (tmp_path / "empty.png").write_bytes(b"")
    write_image(tmp_path / "good.png", small_photo)
    bad = [tmp_path / "text.jpg", tmp_path / "empty.png", tmp_path / "missing.png", f"{tmp_path / 'nosuch'}/", tmp_path]
    for path in bad:
        with pytest.raises(ImageReadError) as refused:
            read_image(path)
        assert header_error(path) == str(refused.value), path
    assert header_errors([tmp_path / "good.png", tmp_path / "empty.png"]) == [
        None,
        f"{tmp_path / 'empty.png'}: empty file (0 bytes)",
    ]


def test_float_images_in_0_1_are_scaled_as_matlab_im2uint8_does(tmp_path, small_photo):
    gray = small_photo[..., 1]
    Image.fromarray((gray / 255.0).astype(np.float32)).save(tmp_path / "unit.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "unit.tif")[..., 0], gray)  # not a nearly black image
    Image.fromarray(gray.astype(np.float32)).save(tmp_path / "bytes.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "bytes.tif")[..., 2], gray)
    values = (gray / 255.0).astype(np.float32)
    values[0, 0] = np.nan
    Image.fromarray(values).save(tmp_path / "nan.tif")
    with pytest.raises(ImageReadError, match=r"nan\.tif: .*NaN"):
        read_image(tmp_path / "nan.tif")


def test_transparent_pixels_get_one_warning_per_file(tmp_path, small_photo, caplog):
    rgba = np.dstack([small_photo, np.full(small_photo.shape[:2], 255, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "opaque.png")
    rgba[:, :10, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "holes.png")
    with caplog.at_level("WARNING", logger="deepfl"):
        for _ in range(3):
            np.testing.assert_array_equal(read_image(tmp_path / "holes.png"), small_photo)  # alpha dropped
        read_image(tmp_path / "opaque.png")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "holes.png" in lines[0] and "alpha channel is ignored" in lines[0], lines


def test_images_over_pillows_pixel_limit_are_named_in_one_line(tmp_path, small_photo):
    """Phones take 108-200 MP photos; Pillow's anonymous DecompressionBombWarning becomes one line naming the file
    (in a fresh interpreter: pytest resets warning filters around each test)."""
    import subprocess
    import sys

    height, width = small_photo.shape[:2]
    Image.fromarray(small_photo).save(tmp_path / "big.jpg")
    script = (
        "import logging, sys; logging.basicConfig(format='%(message)s'); from PIL import Image; "
        "from deepfl.images import read_image; "
        f"Image.MAX_IMAGE_PIXELS = {height * width - 1}; read_image(sys.argv[1]); read_image(sys.argv[1]); "
        f"Image.MAX_IMAGE_PIXELS = {height * width // 3}; read_image(sys.argv[1])"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "big.jpg")], capture_output=True, text=True)
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"{tmp_path / 'big.jpg'}: {width}x{height} pixels (0 MP, about 0.0 GB decoded); read anyway"
    assert "DecompressionBombWarning" not in result.stderr and "warnings.warn" not in result.stderr, result.stderr
    assert "big.jpg: image too large to decode safely" in lines[-1] and "downscale it first" in lines[-1], lines


def test_a_folder_names_the_photos_it_cannot_read_and_takes_those_pillow_opens(tmp_path, small_photo, caplog):
    from deepfl.images import list_images

    write_image(tmp_path / "a.png", small_photo)
    (tmp_path / "IMG_0001.HEIC").write_bytes(b"\0\0\0\x18ftypheic")
    (tmp_path / "notes.csv").write_text("x\n")
    with caplog.at_level("WARNING", logger="deepfl"):
        listed = [p.name for p in list_images(tmp_path)]
    assert listed[0] == "a.png" and "IMG_0001.HEIC" not in listed and "notes.csv" not in listed
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "IMG_0001.HEIC" in lines[0] and "does not read" in lines[0], lines


def test_a_folder_keeps_a_broken_link_for_the_job_to_name_it(tmp_path, small_photo):
    # A link to a photo on a drive that is not mounted was left out of the listing without a word (user walk,
    # session 44): the jobs' counts then did not include it and their exit codes said all was done.
    from deepfl.images import expand_inputs, header_error, list_images, read_image

    write_image(tmp_path / "a.png", small_photo)
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    (tmp_path / "c.png").symlink_to("/mnt/not_mounted/c.png")
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.png", "c.png"]
    assert [Path(p).name for p in expand_inputs([str(tmp_path / "*.png")])] == ["a.png", "b.png", "c.png"]  # a pattern
    message = f"{tmp_path / 'c.png'}: a link to /mnt/not_mounted/c.png, which does not exist"
    assert header_error(tmp_path / "c.png") == message
    with pytest.raises(ImageReadError) as raised:
        read_image(tmp_path / "c.png")
    assert str(raised.value) == message


def test_a_folder_says_once_which_subfolders_with_images_it_leaves_out(tmp_path, small_photo, caplog):
    # deepfl-predict photos/ scored the top level and skipped photos/more/ without a word (user walk, session 26).
    from deepfl.images import expand_inputs, list_images

    write_image(tmp_path / "a.jpg", small_photo)
    for sub in ("more", "portrait"):
        (tmp_path / sub).mkdir()
        write_image(tmp_path / sub / "b.png", small_photo)
    (tmp_path / "empty").mkdir()
    (tmp_path / ".hidden").mkdir()
    write_image(tmp_path / ".hidden" / "c.png", small_photo)
    with caplog.at_level("WARNING", logger="deepfl"):
        assert [p.name for p in list_images(tmp_path)] == ["a.jpg"]
        list_images(tmp_path)  # a job listing the folder again says nothing new
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "2 subfolder(s) with images left out (e.g. more/)" in lines[0], lines
    assert f"'{tmp_path}/**/*.jpg'" in lines[0]
    # The pattern it names reaches them.
    assert sorted(Path(p).name for p in expand_inputs([f"{tmp_path}/**/*.png"])) == ["b.png", "b.png"]


def test_the_distortion_generator_does_not_suggest_a_pattern_it_cannot_take(tmp_path, small_photo, caplog):
    # deepfl-distort's warning suggested 'weird/**/*.png', which its --ref_dir refuses as "no such folder" (walk 42b).
    from deepfl.generation import reference_pairs
    from deepfl.jobs import ErrorPolicy

    write_image(tmp_path / "a.png", small_photo)
    (tmp_path / "sub").mkdir()
    write_image(tmp_path / "sub" / "b.png", small_photo)
    with caplog.at_level("WARNING", logger="deepfl"):
        assert [name for name, _ in reference_pairs(tmp_path, ErrorPolicy("skip"), seed=0)] == ["a.png"]
    (line,) = [r.getMessage() for r in caplog.records]
    assert "1 subfolder(s) with images left out (e.g. sub/)" in line and "**" not in line, line
    assert line.endswith("to include them, distort each subfolder as a ref_dir of its own, into an out_dir of its own")


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".jpg"])
def test_writing_refuses_arrays_that_are_not_uint8(tmp_path, small_photo, suffix):
    """The cast to uint8 made 0..1 floats a black image and wrapped int16 values around, without a word."""
    for bad, hint in [
        (small_photo / 255.0, "floats in 0..1: multiply by 255"),
        (small_photo.astype(np.int16) - 10, "other integers: scale"),
        (small_photo[..., :2], "and clip"),
    ]:
        with pytest.raises(ValueError, match=f"image: need an HxWx3 \\(or HxW\\) uint8 array, got .*{hint}"):
            write_image(tmp_path / f"x{suffix}", bad)
    assert not list(tmp_path.iterdir())
    write_image(tmp_path / f"gray{suffix}", small_photo[..., 0])
    write_image(tmp_path / f"rgb{suffix}", small_photo)
    if suffix != ".jpg":
        np.testing.assert_array_equal(read_image(tmp_path / f"rgb{suffix}"), small_photo)
