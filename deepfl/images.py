"""Reading and writing images: always uint8 RGB HxWx3 in, atomic writes out.

Every failure raises `ImageReadError` with one line that names the file and the reason, so batch jobs can log
and skip it instead of dying with a traceback.
"""

from __future__ import annotations

import collections
import io
import logging
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from deepfl.cpus import usable_cores
from deepfl.errors import ImageReadError
from deepfl.fileio import atomic_write_bytes

log = logging.getLogger("deepfl")

# Pillow warns about images over Image.MAX_IMAGE_PIXELS (89 MP: today's phones take 108-200 MP photos) with an
# anonymous multi-line warning; deepfl names the file in its own line instead (`_warn_once`). Pillow's refusal
# above twice that limit stays (a decompression bomb), with the file named.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

# Image formats people keep photos in that Pillow may not decode (without plugins): listing a folder takes those
# Pillow reads and names the others instead of passing over them in silence. CSVs, sidecars and the like are
# passed over.
FOREIGN_IMAGES = (
    ".heic",
    ".heif",
    ".avif",
    ".jxl",
    ".dng",
    ".cr2",
    ".cr3",
    ".nef",
    ".arw",
    ".orf",
    ".rw2",
    ".raf",
    ".psd",
)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif")


def to_rgb_uint8(pil_image: Image.Image) -> np.ndarray:
    """Converts any Pillow image (gray, 16-bit, RGBA, palette, CMYK) to an HxWx3 uint8 RGB array."""
    if pil_image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit (or 32-bit int) gray: rescale to 8 bits by the nominal range of the mode.
        array = np.asarray(pil_image, dtype=np.float64)
        peak = 65535.0 if pil_image.mode.startswith("I;16") or array.max() > 255 else 255.0
        gray = np.clip(np.round(array * (255.0 / peak)), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if pil_image.mode == "F":
        # Float gray (TIFF): 0..1 is the float convention (MATLAB's im2uint8 multiplies by 255); an image with
        # values above 1 is taken as 0..255.
        array = np.asarray(pil_image, dtype=np.float64)
        if not np.isfinite(array).all():
            raise ValueError("float image with NaN or infinite values")
        peak = 1.0 if array.max() <= 1.0 else 255.0
        gray = np.clip(np.round(array * (255.0 / peak)), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(pil_image.convert("RGB"), dtype=np.uint8)


def has_transparency(pil_image: Image.Image) -> bool:
    """True when some pixel of the image is not fully opaque (an alpha channel or a transparent palette entry)."""
    if pil_image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return pil_image.getchannel("A").getextrema()[0] < 255
    if "transparency" in pil_image.info:
        return pil_image.convert("RGBA").getchannel("A").getextrema()[0] < 255
    return False


_warned: set[tuple[str, str]] = set()


def _warn_once(name: str, message: str) -> None:
    """One warning line per file (or folder), message and process (a reference is decoded for each of its pairs,
    a folder listed by more than one step of a job)."""
    if (name, message) not in _warned:
        _warned.add((name, message))
        log.warning("%s: %s", name, message)


def _missing(given: str | os.PathLike) -> str:
    """The message for a path that names no file: a glob pattern (kept by callers that expand patterns when it
    matched nothing) says so, a folder too, and a name written as a folder (`photos/`) that is none."""
    import glob

    path = Path(given)
    if is_broken_link(path):
        return f"{path}: a link to {os.readlink(path)}, which does not exist"
    if glob.has_magic(str(path)):
        return f"{path}: no file matches this pattern"
    if path.is_dir():
        return f"{path}: is a folder, not an image file"
    if str(given).endswith(("/", os.sep)):
        return f"{given}: no such folder"
    return f"{path}: no such image file"


def turned_by_orientation_tag(path: str | os.PathLike) -> bool:
    """Whether `read_image` turns the image at `path` a quarter turn by its EXIF orientation tag (5-8: stored
    sideways; a PNG's tag is ignored, as `decode_image` does); False for a file that cannot be opened."""
    try:
        with Image.open(path) as pil_image:
            return pil_image.format != "PNG" and pil_image.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except (OSError, ValueError, Image.DecompressionBombError):
        return False


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file as HxWx3 uint8 RGB (gray, RGBA, CMYK, palette and 16-bit are converted)."""
    given, path = path, Path(path)
    if not path.is_file():
        raise ImageReadError(_missing(given))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return decode_image(data, name=str(path))


def read_images_ahead(
    paths: Iterable[str | os.PathLike], workers: int | None = None, lookahead: int = 32
) -> Iterator[tuple[str, np.ndarray | ImageReadError]]:
    """Yields (path, image) in input order while background threads decode up to `lookahead` files ahead.

    A file that cannot be read yields its `ImageReadError` in place of the image (nothing is raised), so the
    caller decides to skip or stop. Decoding (Pillow, zlib, libjpeg) releases the GIL, so the threads keep a
    model busy instead of leaving it idle while the main thread decodes. workers: default min(4, CPUs).
    """

    def load(path):
        try:
            return read_image(path)
        except ImageReadError as exc:
            return exc

    workers = workers or min(4, usable_cores())
    pending: collections.deque = collections.deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deepfl-decode") as pool:
        for path in paths:
            pending.append((str(path), pool.submit(load, path)))
            if len(pending) >= lookahead:
                name, future = pending.popleft()
                yield name, future.result()
        while pending:
            name, future = pending.popleft()
            yield name, future.result()


EXIF_ORIENTATION_TAG = 0x0112
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD9)})  # markers without a length field


def header_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of the image as `read_image` returns it, read from the file header without decoding the
    pixels: upright, so an EXIF orientation that turns the picture (phone portraits) swaps the sides. Raises
    ImageReadError naming the file when it is missing or its header is unreadable."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            if _header_orientation(image) in (5, 6, 7, 8):
                width, height = height, width
    except FileNotFoundError:
        raise ImageReadError(_missing(path)) from None
    except Exception as exc:  # Pillow raises many types for bad headers; named as every job names them
        raise ImageReadError(header_error(path) or f"{path}: not a readable image ({exc})") from None
    return int(height), int(width)


def header_error(path: str | os.PathLike) -> str | None:
    """Why `read_image` would refuse the file, as far as its header shows (missing, empty, not an image), in the
    same words; None when the header reads. No pixels are decoded, so a job can name such files before it loads a
    model: a damaged file whose header reads is only found when it is decoded."""
    given, path = path, Path(path)
    if not path.is_file():
        return _missing(given)
    try:
        if path.stat().st_size == 0:
            return f"{path}: empty file (0 bytes)"
        with Image.open(path):
            pass
    except Image.DecompressionBombError as exc:
        return f"{path}: image too large to decode safely ({exc}); downscale it first"
    except UnidentifiedImageError:
        return f"{path}: not an image file (unknown or corrupt format)"
    except OSError as exc:
        return f"{path}: cannot read ({exc.strerror or exc})"
    except Exception as exc:  # Pillow raises many types for bad headers
        return f"{path}: corrupt or truncated image ({exc})"
    return None


def header_errors(paths: Sequence[str | os.PathLike], workers: int = 8) -> list[str | None]:
    """`header_error` of each path, read on `workers` threads (the cost is file opens, not computation)."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(header_error, paths, chunksize=256))


def header_sizes_of(paths: Iterable[str | os.PathLike], workers: int = 8) -> list[tuple[int, int] | None]:
    """`header_size` of each path, None where it is unreadable (the job that decodes the file names it), read on
    `workers` threads: the cost is file opens, not computation."""

    def size_of(path: str | os.PathLike) -> tuple[int, int] | None:
        try:
            return header_size(path)
        except ImageReadError:
            return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(size_of, list(paths), chunksize=256))


def _header_orientation(image: Image.Image) -> int:
    """The EXIF orientation `decode_image` applies to an opened image (1 for none), from its header alone. A PNG's
    is ignored, as by TensorFlow's decoder and `deepfl.png` (and Pillow would decode the whole file to look for
    an eXIf chunk after the pixels); a TIFF's is 1 because Pillow already gives its size upright."""
    if image.format in ("PNG", "TIFF"):
        return 1
    return int(image.getexif().get(EXIF_ORIENTATION_TAG, 1))


def jpeg_orientation(data: bytes) -> int:
    """The EXIF orientation (1..8) of JPEG bytes, 1 when there is none (or the bytes are not a JPEG).

    Reads the APP1 "Exif" segment's first image directory (TIFF layout, either byte order) and nothing else, so it
    costs microseconds; `deepfl.data.make_dataset` uses it to turn phone portraits upright as `decode_image` does.
    """
    data = bytes(data)
    if data[:2] != b"\xff\xd8":
        return 1
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE_MARKERS:
            pos += 2
            continue
        if marker == 0xDA:  # start of scan: no EXIF after this
            return 1
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        segment = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and segment[:6] == b"Exif\x00\x00":
            return _tiff_orientation(segment[6:])
        pos += 2 + length
    return 1


def _tiff_orientation(tiff: bytes) -> int:
    order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 1
    ifd = int.from_bytes(tiff[4:8], order)
    if ifd + 2 > len(tiff):
        return 1
    for i in range(int.from_bytes(tiff[ifd : ifd + 2], order)):
        entry = tiff[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
        if len(entry) < 12:
            break
        if int.from_bytes(entry[:2], order) == EXIF_ORIENTATION_TAG:
            value = int.from_bytes(entry[8:10], order)  # a SHORT, left-aligned in the value field
            return value if 1 <= value <= 8 else 1
    return 1


_TRANSPARENT = (
    "has transparent pixels; the alpha channel is ignored (as MATLAB's imread does), so they count with the colours "
    "stored under them"
)


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decodes encoded image bytes to HxWx3 uint8 RGB; `name` is used in error messages.

    Plain 8- and 16-bit PNGs (gray or RGB, with or without alpha) go through `deepfl.png.decode_png_pixels`
    (Pillow's pixels, faster; 16 bits rounded as MATLAB's im2uint8 does, where Pillow truncates RGB and every image
    with alpha); every other format, and any PNG it declines (damaged, palette, tRNS, interlaced), through Pillow,
    which also names the error. An EXIF orientation tag (phone portraits, JPEG/TIFF/WebP) is applied; a PNG's is
    not. A 16-bit TIFF keeps Pillow's v >> 8 for RGB."""
    from deepfl.png import decode_png_pixels

    if not data:
        raise ImageReadError(f"{name}: empty file (0 bytes)")
    fast = decode_png_pixels(data)
    if fast is not None:
        rgb, transparent = fast
        if transparent:
            _warn_once(name, _TRANSPARENT)
        return rgb
    try:
        with Image.open(io.BytesIO(data)) as pil_image:
            pixels = pil_image.width * pil_image.height
            if pixels > (Image.MAX_IMAGE_PIXELS or float("inf")):
                _warn_once(
                    name,
                    f"{pil_image.width}x{pil_image.height} pixels ({pixels / 1e6:.0f} MP, about "
                    f"{3 * pixels / 1e9:.1f} GB decoded); read anyway",
                )
            pil_image.load()
            # Cameras store portrait photos sideways with an EXIF orientation tag; show them as a viewer does
            # (not a PNG's: TensorFlow's decoder and deepfl.png ignore it, and every path must agree).
            upright = pil_image if pil_image.format == "PNG" else ImageOps.exif_transpose(pil_image)
            array = to_rgb_uint8(upright)
            if has_transparency(upright):
                _warn_once(name, _TRANSPARENT)
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{name}: image too large to decode safely ({exc}); downscale it first") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{name}: not an image file (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{name}: corrupt or truncated image ({exc})") from None
    if array.ndim != 3 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ImageReadError(f"{name}: decoded to an unusable shape {array.shape}")
    return array


def encode_image(image: np.ndarray, fmt: str) -> bytes:
    """Encodes an HxWx3 (or HxW gray) uint8 array losslessly as PNG or BMP (or JPEG at quality 95) and returns
    the bytes. Another dtype is refused: cast to uint8, floats in 0..1 became a black image and int16 values
    wrapped around, without a word.

    PNG goes through `deepfl.png.encode_png` (its level 1: faster than Pillow's writer, no string matching).
    """
    fmt = fmt.lower().lstrip(".")
    pil_format = {"png": "PNG", "bmp": "BMP", "jpg": "JPEG", "jpeg": "JPEG", "tif": "TIFF", "tiff": "TIFF"}.get(fmt)
    if pil_format is None:
        raise ValueError(f"fmt: unsupported image format {fmt!r}")
    dtype, shape = getattr(image, "dtype", None), np.shape(image)
    if dtype != np.uint8 or not (len(shape) == 2 or (len(shape) == 3 and shape[2] == 3)):
        floats = getattr(dtype, "kind", "") == "f"
        hint = "floats in 0..1: multiply by 255, round" if floats else "other integers: scale"
        raise ValueError(
            f"image: need an HxWx3 (or HxW) uint8 array, got {dtype} {'x'.join(map(str, shape))} ({hint} and clip "
            "to 0..255, then .astype(np.uint8))"
        )
    if pil_format == "PNG":
        from deepfl.png import encode_png

        return encode_png(np.ascontiguousarray(image, dtype=np.uint8))
    buffer = io.BytesIO()
    options = {"quality": 95} if pil_format == "JPEG" else {}
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format=pil_format, **options)
    return buffer.getvalue()


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Atomically writes an HxWx3 (or HxW) uint8 image; the format follows the file extension."""
    atomic_write_bytes(path, encode_image(image, Path(path).suffix))


def model_input(array, name: str) -> np.ndarray:
    """An in-memory image checked for the models: HxWx3 RGB, uint8 or finite floats in 0..255, as the models were
    trained on. A uint16, int16 or 0..1 float array, or one with NaN, is refused naming `name`: each was scored
    without a word (features up to 1.7 off, or all NaN)."""
    array = np.asarray(array)
    if array.ndim != 3 or array.shape[-1] != 3 or not (array.dtype == np.uint8 or array.dtype.kind == "f"):
        gray = array.ndim == 2 or (array.ndim == 3 and array.shape[-1] == 1)
        raise ValueError(
            f"{name}: expected an HxWx3 RGB array of uint8 (or floats in 0..255), got {array.dtype} "
            f"{'x'.join(map(str, array.shape))} (convert to 0..255 RGB"
            + ("; a gray image: np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2)" if gray else "")
            + "; image files of other layouts are converted as read_image does)"
        )
    if array.dtype.kind == "f" and array.size:
        if not np.isfinite(array).all():
            raise ValueError(f"{name}: holds {np.count_nonzero(~np.isfinite(array))} NaN or infinite value(s)")
        low, high = float(np.min(array)), float(np.max(array))
        if not (0.0 <= low and high <= 255.0) or 0.0 < high <= 1.0:
            raise ValueError(
                f"{name}: float values {low:g}..{high:g}; the models take RGB in 0..255"
                + (" (multiply images scaled to 0..1 by 255)" if 0.0 <= low and high <= 1.0 else "")
            )
    return array


def list_images(folder: str | os.PathLike, nested_hint: str | None = None) -> list[Path]:
    """Lists the image files directly inside `folder`, sorted by name (hidden/temporary files excluded; a link to
    an image file that no longer exists is kept, for the job to name it as unreadable). Files
    with other extensions (a phone's .HEIC, a camera's raw files) are left out with one warning line that counts
    them and names one, so that a folder of photos deepfl cannot read does not pass in silence; so are subfolders
    with images, with how to include them: a quoted glob pattern, or `nested_hint` for a caller that takes none."""
    folder = Path(folder)
    if folder.is_file():
        raise NotADirectoryError(f"{folder}: is a file, not a folder of images")
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if is_file_or_broken_link(p) and not p.name.startswith("."))
    opens = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}  # .avif: Pillow 11.3+
    readable = set(IMAGE_EXTENSIONS) | (set(FOREIGN_IMAGES) & opens)
    images = [p for p in files if p.suffix.lower() in readable]
    others = [p for p in files if p.suffix.lower() in FOREIGN_IMAGES and p.suffix.lower() not in readable]
    if others:
        _warn_once(
            str(folder),
            f"{len(others)} file(s) in an image format deepfl does not read left out (e.g. {others[0].name}); it "
            f"reads {' '.join(IMAGE_EXTENSIONS)}",
        )
    nested = _subfolders_with_images(folder, readable) if images else []
    if nested:  # (a folder without images of its own is refused by the jobs, naming this rule)
        _warn_once(
            str(folder),
            f"{len(nested)} subfolder(s) with images left out (e.g. {nested[0].name}/): a folder's images are "
            "listed without its subfolders; to include them, "
            + (nested_hint or f"give a pattern in quotes, e.g. '{os.path.join(folder, '**', '*' + images[0].suffix)}'"),
        )
    return images


def is_broken_link(path: Path) -> bool:
    """Whether `path` is a symbolic link whose target does not exist."""
    return path.is_symlink() and not path.exists()


def is_file_or_broken_link(path: Path) -> bool:
    """What a folder's listing or a pattern's matches keep: files, and links whose target is gone, which the jobs
    then name as unreadable and count (a link to a drive that is not mounted must not drop photos in silence)."""
    return path.is_file() or is_broken_link(path)


def _subfolders_with_images(folder: Path, extensions: set[str]) -> list[Path]:
    """The visible subfolders of `folder` that hold an image file directly, sorted by name (unreadable ones left
    out)."""

    def holds_images(sub: Path) -> bool:
        try:
            return any(p.suffix.lower() in extensions and p.is_file() for p in sub.iterdir())
        except OSError:
            return False

    return sorted(
        sub for sub in folder.iterdir() if sub.is_dir() and not sub.name.startswith(".") and holds_images(sub)
    )


def pattern_folder(pattern: str) -> Path:
    """The folder a glob pattern searches from: its path up to the first part with a wildcard (`photos` for
    `photos/**/*.jpg`, `.` for `*.png`), with `~` expanded."""
    import glob

    parts = Path(os.path.expanduser(pattern)).parts
    fixed = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    return Path(*parts[:fixed]) if fixed else Path(".")


def expand_inputs(inputs: Iterable[str]) -> list[str]:
    """Files, folders (their images) and glob patterns -> a de-duplicated list of paths, in the given order.

    A name that matches nothing is kept as is, so the caller reports it as unreadable rather than dropping it.
    """
    import glob

    out: list[str] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            out.extend(str(p) for p in list_images(path))
        elif not path.exists() and glob.has_magic(str(item)):
            matches = [
                m
                for m in sorted(glob.glob(os.path.expanduser(str(item)), recursive=True))
                if is_file_or_broken_link(Path(m))
            ]
            out.extend(matches or [str(item)])
        elif str(item).endswith(("/", os.sep)) and not path.exists():
            out.append(str(item))  # a folder that is not there: kept as written, so its error line says folder
        else:
            out.append(str(path))
    return list(dict.fromkeys(out))
