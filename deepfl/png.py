"""A fast lossless PNG writer (and reader for simple PNGs) for 8-bit images: the KADIS generator writes ~3.5
million of them.

Pillow's PNG encoder is slow even at `compress_level=1`, which matters at this volume. Level 1 here (the
default) is our own compiled encoder: the PNG Paeth filter on every row and one deflate block of literals coded
with a dynamic Huffman code. It skips string matching, which on filtered photographs gains little, so its files
are about as small as libdeflate's level 1 at a fraction of Pillow's time. The other levels use the "up" filter
(one vectorised numpy subtraction) and libdeflate through ctypes when the system has it (`libdeflate.so.0`,
faster than zlib at the same level), else Python's zlib. Measurements are in docs/distortions.md. The result is
a standard PNG (IHDR, one IDAT, IEND) that any reader decodes to the same pixels. `decode_png_rgb` reads 8- and
16-bit gray/RGB PNGs faster than Pillow (libdeflate inflate + compiled unfiltering), `decode_png_pixels` those
with an alpha channel too, and both decline everything else.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
import threading
import zlib

import numpy as np

from deepfl._numba import njit as _njit

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (gray, gray+alpha, RGB, RGBA)
_UP_FILTER = 2


def _load_libdeflate():
    name = ctypes.util.find_library("deflate") or "libdeflate.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.libdeflate_alloc_compressor.restype = ctypes.c_void_p
    lib.libdeflate_alloc_compressor.argtypes = [ctypes.c_int]
    lib.libdeflate_zlib_compress_bound.restype = ctypes.c_size_t
    lib.libdeflate_zlib_compress_bound.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    lib.libdeflate_zlib_compress.restype = ctypes.c_size_t
    lib.libdeflate_zlib_compress.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_void_p,
        ctypes.c_size_t,
    ]
    lib.libdeflate_alloc_decompressor.restype = ctypes.c_void_p
    lib.libdeflate_alloc_decompressor.argtypes = []
    lib.libdeflate_zlib_decompress.restype = ctypes.c_int
    lib.libdeflate_zlib_decompress.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_void_p,
    ]
    return lib


_LIBDEFLATE = _load_libdeflate()
_LOCAL = threading.local()  # a libdeflate compressor must not be shared between threads


def deflate_backend() -> str:
    """'libdeflate' when the system library was found, else 'zlib'."""
    return "libdeflate" if _LIBDEFLATE is not None else "zlib"


def _zlib_compress(data: np.ndarray, level: int, backend: str) -> bytes:
    """A zlib stream of the contiguous uint8 array `data`."""
    if backend == "libdeflate" and _LIBDEFLATE is not None:
        compressors = _LOCAL.__dict__.setdefault("compressors", {})
        if level not in compressors:
            handle = _LIBDEFLATE.libdeflate_alloc_compressor(level)
            if not handle:
                raise ValueError(f"level: libdeflate cannot compress at level {level}")
            compressors[level] = handle
        handle = compressors[level]
        bound = _LIBDEFLATE.libdeflate_zlib_compress_bound(handle, data.nbytes)
        out = ctypes.create_string_buffer(bound)
        size = _LIBDEFLATE.libdeflate_zlib_compress(handle, data.ctypes.data, data.nbytes, out, bound)
        if size == 0:  # cannot happen with the bound above; fall back rather than write a broken file
            return zlib.compress(data, min(level, 9))
        return ctypes.string_at(out, size)
    return zlib.compress(data, level)


# ------------------------------------------------------------------ level 1: Paeth filter + Huffman-only deflate


@_njit
def _paeth_filter(rows, bpp, out):
    """PNG filter type 4 on every row: out[y, 1 + i] = rows[y, i] - paeth(left, up, up-left) mod 256 (missing
    neighbours are 0), out[y, 0] = 4."""
    h, n = rows.shape
    for y in range(h):
        out[y, 0] = 4
        for i in range(n):
            a = np.int32(rows[y, i - bpp]) if i >= bpp else np.int32(0)
            b = np.int32(rows[y - 1, i]) if y > 0 else np.int32(0)
            c = np.int32(rows[y - 1, i - bpp]) if y > 0 and i >= bpp else np.int32(0)
            p = a + b - c
            pa = abs(p - a)
            pb = abs(p - b)
            pc = abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out[y, i + 1] = np.uint8((np.int32(rows[y, i]) - pred) & 255)


@_njit
def _histogram(data):
    """Counts of the 256 byte values of `data` and one end-of-block symbol (257 entries); four partial
    histograms so that repeated values do not serialise on one counter."""
    partial = np.zeros((4, 257), dtype=np.int64)
    n4 = data.size - data.size % 4
    for i in range(0, n4, 4):
        partial[0, data[i]] += 1
        partial[1, data[i + 1]] += 1
        partial[2, data[i + 2]] += 1
        partial[3, data[i + 3]] += 1
    for i in range(n4, data.size):
        partial[0, data[i]] += 1
    counts = np.zeros(257, dtype=np.int64)
    for v in range(256):  # not partial.sum(axis=0), which takes Numba seconds to compile
        counts[v] = partial[0, v] + partial[1, v] + partial[2, v] + partial[3, v]
    counts[256] = 1
    return counts


@_njit
def _huffman_lengths(counts, limit):
    """Code lengths of a Huffman code for `counts` (0 for unused symbols, 1 if only one is used), at most `limit`
    bits: counts are halved (keeping used symbols >= 1) until the optimal code fits."""
    n = counts.size
    freq = counts.astype(np.int64).copy()
    lengths = np.zeros(n, dtype=np.int64)
    while True:
        m = 0
        used = np.empty(n, dtype=np.int64)  # the used symbols in increasing order (np.nonzero compiles slowly)
        for k in range(n):
            if freq[k] > 0:
                used[m] = k
                m += 1
        for k in range(n):  # element by element: Numba compiles slice assignments slowly
            lengths[k] = 0
        if m == 0:
            return lengths
        if m == 1:
            lengths[used[0]] = 1
            return lengths
        # The used symbols by weight, equal weights in symbol order: a stable insertion sort of at most 257
        # symbols (np.argsort's mergesort takes Numba seconds to compile).
        order = used[:m].copy()
        for k in range(1, m):
            symbol = order[k]
            j = k - 1
            while j >= 0 and freq[order[j]] > freq[symbol]:
                order[j + 1] = order[j]
                j -= 1
            order[j + 1] = symbol
        # Two-queue Huffman: leaves sorted by weight, internal nodes created in non-decreasing weight order.
        weight = np.zeros(2 * m, dtype=np.int64)
        parent = np.full(2 * m, -1, dtype=np.int64)
        for k in range(m):
            weight[k] = freq[order[k]]
        leaf, node, new = 0, m, m
        for _ in range(m - 1):
            pair = np.zeros(2, dtype=np.int64)
            for t in range(2):
                if leaf < m and (node >= new or weight[leaf] <= weight[node]):
                    pair[t] = leaf
                    leaf += 1
                else:
                    pair[t] = node
                    node += 1
            weight[new] = weight[pair[0]] + weight[pair[1]]
            parent[pair[0]] = new
            parent[pair[1]] = new
            new += 1
        depth = np.zeros(2 * m, dtype=np.int64)
        for k in range(new - 2, -1, -1):  # the root is new - 1; parents come after their children
            depth[k] = depth[parent[k]] + 1
        longest = 0
        for k in range(m):
            lengths[order[k]] = depth[k]
            longest = max(longest, depth[k])
        if longest <= limit:
            return lengths
        for k in range(n):
            if freq[k] > 0:
                freq[k] = max(freq[k] >> 1, 1)


@_njit
def _canonical_codes(lengths):
    """Deflate's canonical Huffman codes for `lengths`, bit-reversed (deflate sends codes MSB first into an LSB-first
    bit stream)."""
    count = np.zeros(16, dtype=np.int64)
    for length in lengths:
        count[length] += 1
    count[0] = 0
    next_code = np.zeros(16, dtype=np.int64)
    code = 0
    for bits in range(1, 16):
        code = (code + count[bits - 1]) << 1
        next_code[bits] = code
    codes = np.zeros(lengths.size, dtype=np.uint64)
    for s in range(lengths.size):
        length = lengths[s]
        if length:
            c = next_code[length]
            next_code[length] += 1
            r = 0
            for _ in range(length):
                r = (r << 1) | (c & 1)
                c >>= 1
            codes[s] = r
    return codes


_CL_ORDER = np.array([16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15], dtype=np.int64)


@_njit
def _put_bits(out, pos, acc, nbits, value, bits):
    """Appends the low `bits` bits of `value` to the LSB-first bit accumulator `acc` (holding `nbits` bits) and
    moves its whole bytes to out[pos:]; returns the new (pos, acc, nbits), nbits < 8."""
    acc |= np.uint64(value) << np.uint64(nbits)
    nbits += bits
    while nbits >= 8:
        out[pos] = np.uint8(acc & np.uint64(255))
        acc >>= np.uint64(8)
        nbits -= 8
        pos += 1
    return pos, acc, nbits


@_njit
def _huffman_deflate(data, counts, out):
    """One final deflate block with dynamic Huffman codes and literals only (RFC 1951: no string matches) of the
    bytes `data` (histogram `counts`, 257 entries with the end-of-block symbol), zlib-wrapped without the trailing
    Adler-32; returns the number of bytes written to `out` (which must hold len(data) * 2 + 300 bytes)."""
    lengths = _huffman_lengths(counts, 15)
    codes = _canonical_codes(lengths)
    # The code-length alphabet: each of the 257 literal/length lengths and the single unused distance code
    # (length 0) is sent as a plain symbol 0..15 (no run-length symbols).
    cl_counts = np.zeros(19, dtype=np.int64)
    for s in range(257):
        cl_counts[lengths[s]] += 1
    cl_counts[0] += 1
    cl_lengths = _huffman_lengths(cl_counts, 7)
    cl_codes = _canonical_codes(cl_lengths)
    hclen = 19
    while hclen > 4 and cl_lengths[_CL_ORDER[hclen - 1]] == 0:
        hclen -= 1
    out[0] = 0x78  # zlib header: deflate, 32 KB window, no dictionary, (0x78 << 8 | 0x01) % 31 == 0
    out[1] = 0x01
    pos, acc, nbits = 2, np.uint64(0), 0
    for value, bits in ((1, 1), (2, 2), (0, 5), (0, 5), (hclen - 4, 4)):  # BFINAL, BTYPE=2, HLIT, HDIST, HCLEN
        pos, acc, nbits = _put_bits(out, pos, acc, nbits, value, bits)
    for i in range(hclen):
        pos, acc, nbits = _put_bits(out, pos, acc, nbits, cl_lengths[_CL_ORDER[i]], 3)
    for s in range(258):  # 257 literal/length code lengths, then the distance code length (0)
        length = lengths[s] if s < 257 else 0
        pos, acc, nbits = _put_bits(out, pos, acc, nbits, cl_codes[length], cl_lengths[length])
    for i in range(data.size):
        s = data[i]
        acc |= codes[s] << np.uint64(nbits)
        nbits += lengths[s]
        if nbits >= 32:
            out[pos] = np.uint8(acc & np.uint64(255))
            out[pos + 1] = np.uint8((acc >> np.uint64(8)) & np.uint64(255))
            out[pos + 2] = np.uint8((acc >> np.uint64(16)) & np.uint64(255))
            out[pos + 3] = np.uint8((acc >> np.uint64(24)) & np.uint64(255))
            acc >>= np.uint64(32)
            nbits -= 32
            pos += 4
    pos, acc, nbits = _put_bits(out, pos, acc, nbits, codes[256], lengths[256])  # end of block
    if nbits > 0:  # the last, partial byte
        out[pos] = np.uint8(acc)
        pos += 1
    return pos


def _huffman_idat(rows: np.ndarray, bpp: int) -> bytes:
    """The zlib stream of the Paeth-filtered rows (HxN uint8, `bpp` bytes per pixel), literals only."""
    h, n = rows.shape
    filtered = np.empty((h, n + 1), dtype=np.uint8)
    _paeth_filter(rows, bpp, filtered)
    counts = _histogram(filtered.reshape(-1))
    out = np.empty(filtered.size * 2 + 300, dtype=np.uint8)
    size = _huffman_deflate(filtered.reshape(-1), counts, out)
    return out[:size].tobytes() + struct.pack(">I", zlib.adler32(filtered))


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(payload, zlib.crc32(kind)))


def encode_png(image: np.ndarray, level: int = 1, backend: str | None = None) -> bytes:
    """Encodes an HxW, HxWx1, HxWx2, HxWx3 or HxWx4 uint8 array as a PNG and returns the bytes.

    `level`: 0 = stored; 1 (default) = the fastest compression; up to 12 with libdeflate, 9 with zlib.
    `backend`: 'huffman' (level 1 only, the default there: Paeth filter and one literals-only Huffman block, own
    compiled encoder), 'libdeflate' or 'zlib' ("up" filter and that library's deflate at `level`; default for
    the other levels: libdeflate where available). ValueError names a bad argument.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"image: must be a uint8 numpy array, got {getattr(image, 'dtype', type(image).__name__)}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in _COLOR_TYPE or min(image.shape[:2]) < 1:
        raise ValueError(f"image: must be HxW or HxWx{{1,2,3,4}} with H, W >= 1, got shape {image.shape}")
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)):
        raise ValueError(f"level: must be an int, got {level!r}")
    level = int(level)
    backend = backend or ("huffman" if level == 1 else deflate_backend())
    if backend not in ("huffman", "libdeflate", "zlib"):
        raise ValueError(f"backend: must be 'huffman', 'libdeflate' or 'zlib', got {backend!r}")
    max_level = {"huffman": 1, "libdeflate": 12 if _LIBDEFLATE is not None else 9, "zlib": 9}[backend]
    if not (1 if backend == "huffman" else 0) <= level <= max_level:
        raise ValueError(
            f"level: {backend} takes levels {'1' if backend == 'huffman' else f'0..{max_level}'}, got {level}"
        )
    h, w, c = image.shape
    rows = np.ascontiguousarray(image).reshape(h, w * c)
    if backend == "huffman":
        idat = _huffman_idat(rows, c)
    else:
        filtered = np.empty((h, w * c + 1), dtype=np.uint8)
        filtered[:, 0] = _UP_FILTER
        filtered[0, 1:] = rows[0]  # the row above the first one is zeros
        np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # modulo 256, as the PNG "up" filter
        idat = _zlib_compress(filtered, level, backend)
    header = struct.pack(">IIBBBBB", w, h, 8, _COLOR_TYPE[c], 0, 0, 0)
    return b"".join([_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", idat), _chunk(b"IEND", b"")])


# ---------------------------------------------------------------------------------- reading simple PNGs fast


@_njit
def _paeth_predict(a, b, c):
    """The PNG Paeth predictor without branches: a, b or c, whichever is closest to a + b - c (ties: a, b)."""
    pa = abs(b - c)
    pb = abs(a - c)
    pc = abs(a + b - 2 * c)
    use_a = np.int32((pa <= pb) & (pa <= pc))
    use_b = np.int32(pb <= pc)
    return use_a * a + (1 - use_a) * (use_b * b + (1 - use_b) * c)


@_njit
def _unfilter(filtered, bpp, out):
    """Undoes the PNG filters (RFC 2083: 0 none, 1 sub, 2 up, 3 average, 4 Paeth) of HxN filtered rows (each
    prefixed by its filter byte) into HxN-1 `out`; returns False on an unknown filter type."""
    h, n = out.shape
    zeros = np.zeros(n, dtype=np.uint8)
    for y in range(h):
        kind = filtered[y, 0]
        if kind > 4:
            return False
        src = filtered[y, 1:]
        up = out[y - 1] if y > 0 else zeros
        row = out[y]
        if kind == 0:  # element by element here: Numba compiles slice assignments slowly
            for i in range(n):
                row[i] = src[i]
        elif kind == 2:
            for i in range(n):
                row[i] = src[i] + up[i]
        elif kind == 1:
            for i in range(bpp):
                row[i] = src[i]
            for i in range(bpp, n):
                row[i] = src[i] + row[i - bpp]
        elif kind == 3:
            for i in range(bpp):
                row[i] = src[i] + (up[i] >> 1)
            for i in range(bpp, n):
                row[i] = src[i] + np.uint8((np.int32(row[i - bpp]) + np.int32(up[i])) >> 1)
        elif bpp == 3:  # RGB: the three channels' left/upper-left values stay in registers
            a0 = a1 = a2 = c0 = c1 = c2 = np.int32(0)
            for i in range(0, n, 3):
                b0, b1, b2 = np.int32(up[i]), np.int32(up[i + 1]), np.int32(up[i + 2])
                a0 = (np.int32(src[i]) + _paeth_predict(a0, b0, c0)) & 255
                a1 = (np.int32(src[i + 1]) + _paeth_predict(a1, b1, c1)) & 255
                a2 = (np.int32(src[i + 2]) + _paeth_predict(a2, b2, c2)) & 255
                row[i], row[i + 1], row[i + 2] = np.uint8(a0), np.uint8(a1), np.uint8(a2)
                c0, c1, c2 = b0, b1, b2
        else:
            for i in range(bpp):
                row[i] = src[i] + up[i]  # a = c = 0: the predictor is b
            for i in range(bpp, n):
                pred = _paeth_predict(np.int32(row[i - bpp]), np.int32(up[i]), np.int32(up[i - bpp]))
                row[i] = src[i] + np.uint8(pred)
    return True


def _inflate(stream: bytes, size: int) -> np.ndarray | None:
    """The `size` bytes a zlib stream inflates to (checksum verified), or None if it is not exactly that."""
    if _LIBDEFLATE is not None:
        decompressor = _LOCAL.__dict__.get("decompressor")
        if decompressor is None:
            decompressor = _LOCAL.decompressor = _LIBDEFLATE.libdeflate_alloc_decompressor()
        out = np.empty(size, dtype=np.uint8)
        if (
            decompressor
            and _LIBDEFLATE.libdeflate_zlib_decompress(decompressor, stream, len(stream), out.ctypes.data, size, None)
            == 0
        ):
            return out
        return None
    try:
        raw = zlib.decompress(stream)
    except zlib.error:
        return None
    return np.frombuffer(raw, dtype=np.uint8) if len(raw) == size else None


def decode_png_rgb(data: bytes) -> np.ndarray | None:
    """HxWx3 uint8 RGB of an 8- or 16-bit, non-interlaced gray or RGB PNG without transparency (gray is replicated
    to 3 channels, as Pillow's convert("RGB") does; 16-bit samples v become round(v / 257), as MATLAB's im2uint8
    makes them, where Pillow keeps v >> 8 of RGB), or None for any other or any damaged file (bad signature,
    chunk CRC, zlib checksum or size): callers then use a general decoder, which also names the error.

    libdeflate inflates (zlib without it) and a compiled loop undoes the filters, which makes it faster than
    Pillow for the generator's references.
    """
    decoded = _decode(data, with_alpha=False)
    return None if decoded is None else decoded[0]


def decode_png_pixels(data: bytes) -> tuple[np.ndarray, bool] | None:
    """`decode_png_rgb` that also reads PNGs with an alpha channel (gray+alpha, RGBA; 8 or 16 bits): (HxWx3 uint8
    RGB, whether some pixel is not fully opaque). The alpha is dropped, not composited, as MATLAB's `imread` and
    Pillow's convert("RGB") drop it; its 16-bit colours are rounded as `decode_png_rgb` rounds them, where Pillow
    keeps v >> 8 of every 16-bit image with alpha. None for palette, tRNS, interlaced or damaged files."""
    return _decode(data, with_alpha=True)


def _decode(data: bytes, with_alpha: bool) -> tuple[np.ndarray, bool] | None:
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"data: the PNG file's bytes (e.g. Path(name).read_bytes()), got {type(data).__name__}")
    if not data.startswith(_SIGNATURE):
        return None
    pos, header, idat = len(_SIGNATURE), None, []
    view = memoryview(data)
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", view[pos : pos + 8])
        end = pos + 12 + length
        if (
            end > len(data)
            or zlib.crc32(view[pos + 8 : end - 4], zlib.crc32(kind)) != struct.unpack(">I", view[end - 4 : end])[0]
        ):
            return None
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", view[pos + 8 : end - 4]) if length == 13 else None
        elif kind == b"IDAT":
            idat.append(view[pos + 8 : end - 4])
        elif kind in (b"tRNS", b"PLTE"):
            return None
        elif kind == b"IEND":
            break
        pos = end
    if header is None or not idat:
        return None
    w, h, depth, color, compression, filter_method, interlace = header
    channels = {0: 1, 2: 3, **({4: 2, 6: 4} if with_alpha else {})}.get(color)
    if depth not in (8, 16) or channels is None or (compression, filter_method, interlace) != (0, 0, 0):
        return None
    if w < 1 or h < 1:
        return None
    step = channels * depth // 8  # bytes per pixel: the filters' distance to the left neighbour
    raw = _inflate(b"".join(idat), h * (w * step + 1))
    if raw is None:
        return None
    out = np.empty((h, w * step), dtype=np.uint8)
    if not _unfilter(raw.reshape(h, -1), step, out):
        return None
    if depth == 16:  # big-endian samples -> round(v / 257), exact in integers (257 is odd: no ties)
        wide = out.reshape(h, w, channels, 2).astype(np.uint32)
        samples = wide[..., 0] * 256 + wide[..., 1]
        out = ((samples + 128) // 257).astype(np.uint8)
    else:
        samples = out = out.reshape(h, w, channels)
    transparent = False
    if channels in (2, 4):
        transparent = bool(samples[..., -1].min() < (1 << depth) - 1)
        out = out[..., :-1]
    rgb = np.repeat(out, 3, axis=2) if out.shape[2] == 1 else np.ascontiguousarray(out)
    return rgb, transparent


__all__ = ["decode_png_pixels", "decode_png_rgb", "deflate_backend", "encode_png"]
