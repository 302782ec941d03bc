"""Tests of deepfl.png, the generator's PNG writer: every reader decodes exactly the pixels written."""

import io
import struct
import zlib

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from deepfl import png

BACKENDS = ["zlib"] + (["libdeflate"] if png.deflate_backend() == "libdeflate" else [])
CASES = [(backend, level) for backend in BACKENDS for level in (0, 1, 6)] + [("huffman", 1)]


@pytest.mark.parametrize("backend, level", CASES)
def test_pillow_and_imageio_read_back_the_same_pixels(photo, backend, level):
    rng = np.random.default_rng(0)
    for image in (
        photo,
        photo[:, :, 1],
        photo[:1, :1],
        rng.integers(0, 256, (7, 5, 4), dtype=np.uint8),
        rng.integers(0, 256, (3, 8, 2), dtype=np.uint8),
        photo[::-1, ::2],  # also non-contiguous
        np.full((5, 6, 3), 77, np.uint8),
        rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
    ):
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


def test_level_one_defaults_to_the_huffman_encoder_and_stays_small(photo):
    assert png.encode_png(photo) == png.encode_png(photo, 1, "huffman")
    up_filter_deflate = png.encode_png(photo, 1, BACKENDS[-1])
    assert len(png.encode_png(photo)) < 1.1 * len(up_filter_deflate)


def _optimal_cost(counts):
    """Total bits of an optimal (unlimited) Huffman code, by the classic merge of the two lightest weights."""
    import heapq

    heap = [int(c) for c in counts if c > 0]
    heapq.heapify(heap)
    cost = 0
    while len(heap) > 1:
        merged = heapq.heappop(heap) + heapq.heappop(heap)
        cost += merged
        heapq.heappush(heap, merged)
    return cost


@pytest.mark.parametrize(
    "counts",
    [
        [5, 0, 0, 1],
        [1, 1],
        [0, 0, 7, 0],
        list(range(1, 258)),
        list(np.random.default_rng(0).integers(0, 10**5, 257)),
        [2**k for k in range(40)] + [1],  # optimal code needs 40 bits: limited to 15
    ],
)
def test_huffman_lengths_are_optimal_or_length_limited_prefix_codes(counts):
    counts = np.array(counts, dtype=np.int64)
    lengths = png._huffman_lengths(counts, 15)
    used = counts > 0
    assert np.all((lengths > 0) == used) and lengths.max() <= 15
    assert np.sum(2.0 ** -lengths[used]) <= 1.0  # Kraft: a prefix code exists
    if used.sum() > 1 and _optimal_cost(counts) and lengths.max() < 15:
        assert int(np.sum(lengths * counts)) == _optimal_cost(counts)
    codes = png._canonical_codes(lengths)  # bit-reversed canonical codes are prefix-free
    words = {format(int(c), f"0{n}b")[::-1] for c, n in zip(codes[used], lengths[used])}
    assert len(words) == used.sum()
    assert not any(a != b and b.startswith(a) for a in words for b in words)


def _left_up_paeth(rows, bpp):
    """int32 left and up neighbours of every sample of HxN `rows` (0 where missing) and its Paeth prediction in
    numpy (PNG spec: the neighbour closest to left + up - upper-left, ties a, b, c)."""
    x = np.pad(rows.astype(np.int32), ((1, 0), (bpp, 0)))
    a, b, c = x[1:, :-bpp], x[:-1, bpp:], x[:-1, :-bpp]
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return a, b, np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def test_huffman_stream_inflates_to_the_filtered_rows(photo):
    import zlib

    rows = photo.reshape(photo.shape[0], -1)
    filtered = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    png._paeth_filter(rows, 3, filtered)
    assert zlib.decompress(png._huffman_idat(rows, 3)) == filtered.tobytes()
    _, _, pred = _left_up_paeth(rows, 3)
    np.testing.assert_array_equal(filtered[:, 1:], ((rows.astype(np.int32) - pred) % 256).astype(np.uint8))
    assert (filtered[:, 0] == 4).all()
    assert np.array_equal(png._histogram(filtered.reshape(-1))[:256], np.bincount(filtered.ravel(), minlength=256))


def test_default_is_deterministic(photo):
    assert png.encode_png(photo) == png.encode_png(photo.copy())


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(image=np.zeros((4, 4, 3), np.float32)), "image"),
        (dict(image=np.zeros((4, 4, 5), np.uint8)), "image"),
        (dict(image=np.zeros((0, 4, 3), np.uint8)), "image"),
        (dict(image=np.zeros((4, 4, 3), np.uint8), level=13), "level"),
        (dict(image=np.zeros((4, 4, 3), np.uint8), level=10, backend="zlib"), "level"),
        (dict(image=np.zeros((4, 4, 3), np.uint8), backend="lzma"), "backend"),
        (dict(image=np.zeros((4, 4, 3), np.uint8), level=2, backend="huffman"), "level"),
        (dict(image=np.zeros((4, 4, 3), np.uint8), level=1.0), "level"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        png.encode_png(**kwargs)


def _pillow_png(image, **options):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", **options)
    return buffer.getvalue()


def test_decode_png_rgb_equals_pillow_for_gray_and_rgb(photo):
    from deepfl.images import to_rgb_uint8

    def decode_image(data):  # Pillow alone (deepfl.images.decode_image itself uses decode_png_rgb)
        with Image.open(io.BytesIO(data)) as pil_image:
            return to_rgb_uint8(pil_image)

    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (33, 17, 3), dtype=np.uint8)
    for image in (photo, photo[:, :, 0], noise, noise[:, :, 2], photo[:1, :1]):
        for data in (
            _pillow_png(np.ascontiguousarray(image)),
            _pillow_png(np.ascontiguousarray(image), optimize=True),
            _pillow_png(np.ascontiguousarray(image), compress_level=0),
            png.encode_png(image),
            png.encode_png(image, 6),
        ):
            np.testing.assert_array_equal(png.decode_png_rgb(data), decode_image(data))


def test_unfilter_undoes_all_five_filter_types():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (25, 9, 3), dtype=np.uint8)
    image[5:12] = 200  # flat rows
    for bpp, rows in ((3, image.reshape(25, -1)), (1, image[:, :, 0].copy())):
        a, b, paeth = _left_up_paeth(rows, bpp)
        predictions = [np.zeros_like(a), a, b, (a + b) // 2, paeth]
        kinds = np.arange(rows.shape[0]) % 5
        filtered = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
        filtered[:, 0] = kinds
        for y, kind in enumerate(kinds):
            filtered[y, 1:] = (rows[y].astype(np.int32) - predictions[kind][y]) % 256
        out = np.empty_like(rows)
        assert png._unfilter(filtered, bpp, out)
        np.testing.assert_array_equal(out, rows)
        filtered[3, 0] = 5
        assert not png._unfilter(filtered, bpp, out)


def test_decode_png_rgb_declines_other_and_damaged_files(photo):
    rgb = _pillow_png(photo)
    flipped = bytearray(rgb)
    flipped[len(rgb) // 2] ^= 0xFF  # damaged IDAT: CRC mismatch
    header = png._chunk(b"IHDR", struct.pack(">IIBBBBB", 512, 384, 16, 2, 0, 0, 0))  # 16-bit RGB on 8-bit data
    sixteen = rgb[:8] + header + rgb[8 + len(header) :]
    interlaced = rgb[:8] + png._chunk(b"IHDR", struct.pack(">IIBBBBB", 512, 384, 8, 2, 0, 0, 1)) + rgb[8 + 25 :]
    palette = io.BytesIO()
    Image.fromarray(photo).quantize(16).save(palette, format="PNG")
    for data in (
        b"",
        b"not a png",
        rgb[:-20],
        bytes(flipped),
        _pillow_png(photo[:8, :8].copy()).replace(b"IHDR", b"IHDX"),
        _pillow_png(np.dstack([photo, photo[:, :, :1]])),  # RGBA
        sixteen,
        interlaced,
        _pillow_png(photo, transparency=(0, 0, 0)),
        palette.getvalue(),
    ):
        assert png.decode_png_rgb(data) is None
    with pytest.raises(TypeError, match=r"data: the PNG file's bytes \(e\.g\. Path\(name\)\.read_bytes\(\)\), got str"):
        png.decode_png_rgb("photo.png")  # a file name: the bytes are wanted


def test_16_bit_pngs_become_8_bits_as_matlab_im2uint8_makes_them(tmp_path):
    # Pillow reads a 16-bit RGB PNG as v >> 8; MATLAB's im2uint8 gives round(v / 257): a level off in places (user
    # walk, session 27). The rows are filtered (none, sub, up) over the 6 bytes of a 16-bit RGB pixel.
    from badinputs import png_bytes
    from deepfl.images import read_image

    wide = np.random.default_rng(3).integers(0, 65536, (37, 53, 3), dtype=np.uint16)
    expected = np.round(wide / 257).astype(np.uint8)
    assert (expected != (wide >> 8)).any()
    rows = wide.astype(">u2").view(np.uint8).reshape(37, 53 * 6).astype(np.int32)
    filtered = []
    for y, row in enumerate(rows):
        kind = y % 3
        left = np.concatenate([np.zeros(6, np.int32), row[:-6]])
        up = rows[y - 1] if y else np.zeros_like(row)
        filtered.append(bytes([kind]) + (((row - (0, left, up)[kind]) % 256).astype(np.uint8)).tobytes())
    header = struct.pack(">IIBBBBB", 53, 37, 16, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + png._chunk(b"IHDR", header) + png._chunk(b"IDAT", zlib.compress(b"".join(filtered)))
    (tmp_path / "rgb16.png").write_bytes(data + png._chunk(b"IEND", b""))
    (tmp_path / "gray16.png").write_bytes(png_bytes(wide[..., 0], 16))
    np.testing.assert_array_equal(read_image(tmp_path / "rgb16.png"), expected)
    np.testing.assert_array_equal(read_image(tmp_path / "gray16.png"), np.repeat(expected[..., :1], 3, axis=2))


def test_pngs_with_alpha_decode_to_their_colours_and_say_whether_any_pixel_is_transparent():
    from badinputs import png_bytes

    rng = np.random.default_rng(5)
    for depth, peak in ((8, 255), (16, 65535)):
        dtype = np.uint8 if depth == 8 else np.uint16
        rgba = rng.integers(0, peak + 1, (9, 11, 4), dtype=dtype)
        rgba[..., 3] = peak
        colours = rgba[..., :3] if depth == 8 else np.round(rgba[..., :3] / 257).astype(np.uint8)
        rgb, transparent = png.decode_png_pixels(png_bytes(rgba, depth))
        np.testing.assert_array_equal(rgb, colours)
        assert not transparent  # every pixel opaque
        rgba[4, 5, 3] = peak - 1
        gray_alpha = rgba[..., [0, 3]]
        assert png.decode_png_pixels(png_bytes(rgba, depth))[1]
        rgb, transparent = png.decode_png_pixels(png_bytes(gray_alpha, depth))
        np.testing.assert_array_equal(rgb, np.repeat(colours[..., :1], 3, axis=2))
        assert transparent
        assert png.decode_png_rgb(png_bytes(rgba, depth)) is None  # (its callers take no alpha)
