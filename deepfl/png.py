"""A fast lossless PNG writer for 8-bit images (the KADIS generator writes ~3.5 million of them).

Pillow's PNG encoder at `compress_level=1` costs ~20 ms for a 512x384 RGB image. Here every scanline uses the
"up" filter (difference to the row above, one vectorised numpy subtraction) and the zlib stream comes from
libdeflate through ctypes when the system has it (`libdeflate.so.0`, 2-3x faster than zlib at the same level),
else from Python's zlib. Measured on 512x384 photos: 3-6 ms and files about the size of Pillow's level-1 files
(see docs/distortions.md). The result is a standard PNG (IHDR, one IDAT, IEND) that any reader decodes to the
same pixels.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
import threading
import zlib

import numpy as np

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
    lib.libdeflate_zlib_compress.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                                             ctypes.c_size_t]
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


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(payload, zlib.crc32(kind)))


def encode_png(image: np.ndarray, level: int = 1, backend: str | None = None) -> bytes:
    """Encodes an HxW, HxWx1, HxWx3 or HxWx4 uint8 array as a PNG and returns the bytes.

    `level`: deflate effort (0 = stored, 1 = fastest compression, the default; up to 12 with libdeflate, 9 with
    zlib). `backend`: 'libdeflate' or 'zlib' (default: libdeflate where available). ValueError names a bad
    argument.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"image: must be a uint8 numpy array, got {getattr(image, 'dtype', type(image).__name__)}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in _COLOR_TYPE or min(image.shape[:2]) < 1:
        raise ValueError(f"image: must be HxW or HxWx{{1,2,3,4}} with H, W >= 1, got shape {image.shape}")
    backend = backend or deflate_backend()
    if backend not in ("libdeflate", "zlib"):
        raise ValueError(f"backend: must be 'libdeflate' or 'zlib', got {backend!r}")
    max_level = 12 if backend == "libdeflate" and _LIBDEFLATE is not None else 9
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 0 <= level <= max_level:
        raise ValueError(f"level: must be an int 0..{max_level} for {backend}, got {level!r}")
    h, w, c = image.shape
    rows = image.reshape(h, w * c)
    filtered = np.empty((h, w * c + 1), dtype=np.uint8)
    filtered[:, 0] = _UP_FILTER
    filtered[0, 1:] = rows[0]  # the row above the first one is zeros
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # modulo 256, as the PNG "up" filter
    header = struct.pack(">IIBBBBB", w, h, 8, _COLOR_TYPE[c], 0, 0, 0)
    return b"".join([_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", _zlib_compress(filtered, int(level),
                                                                                          backend)),
                     _chunk(b"IEND", b"")])


__all__ = ["deflate_backend", "encode_png"]
