"""Makes a corpus of bad inputs in a temporary folder, entirely by code (nothing binary is committed).

Each item is a `BadInput`: a path, what kind of trouble it is, and what a job should do with it:
`expect="reject"` (cannot be decoded: one-line error naming the file, skipped and counted with
`--on_error=skip`, non-zero exit with `--on_error=stop`) or `expect="accept"` (an odd but valid image that
`deepfl.images.read_image` converts to 8-bit RGB; a job must process it like any other). A few items are
`expect="either"`: a valid image that some steps cannot use (a 1x1 image is too small for an 11x11 SSIM
window), so a job may process it or reject it with a one-line error, but never crash.

CSV variants are built from a valid table the caller supplies, so every job's own CSV format gets the same
treatment (missing column, extra column, duplicate row, NaN and inf scores, empty file, header only, a row
that names a missing file).
"""

from __future__ import annotations

import csv
import io
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

# Non-UTF-8 bytes in a file name (valid on Linux file systems, undecodable as UTF-8).
NON_UTF8_STEM = b"bad_\xff\xfe_name"


@dataclass
class BadInput:
    """One item of the corpus: a file (or pair of files) and the behaviour a job owes it."""

    name: str  # short id, e.g. "truncated_png"
    path: Path  # the bad file (for a pair: the distorted image)
    expect: str  # "reject", "accept" or "either"
    what: str  # one-line description for docs/reports
    ref: Path | None = None  # for a pair: the reference image
    extra: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# Image bytes, made by code
# ---------------------------------------------------------------------------------------------------------


def textured_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth-plus-noise RGB uint8 image, so that compressed files are neither tiny nor trivial."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack([128 + 100 * np.sin(xx / 7.0 + c) * np.cos(yy / 11.0 - c) for c in range(3)], axis=-1)
    noisy = base + rng.normal(0, 12, base.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bytes(array: np.ndarray, bit_depth: int = 8) -> bytes:
    """Writes a PNG by hand (gray, gray+alpha, RGB or RGBA: HxW, HxWx2, HxWx3, HxWx4; 8 or 16 bits), so 16-bit
    files can be made without Pillow, which writes none with colour or alpha."""
    array = np.asarray(array)
    if array.ndim == 2:
        color_type, channels = 0, 1
    elif array.ndim == 3 and array.shape[2] in (2, 3, 4):
        channels = array.shape[2]
        color_type = {2: 4, 3: 2, 4: 6}[channels]
    else:
        raise ValueError(f"array: expected HxW or HxWx(2, 3, 4), got {array.shape}")
    height, width = array.shape[:2]
    dtype = ">u2" if bit_depth == 16 else "u1"
    rows = array.astype(dtype).reshape(height, width * channels)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw, 6))
        + _png_chunk(b"IEND", b"")
    )


def header_only_png(width: int, height: int) -> bytes:
    """A PNG that declares a size in its header but holds no pixel data (a 'decompression bomb' probe)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IEND", b"")


def pil_bytes(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def jpeg_bytes(array: np.ndarray, quality: int = 90) -> bytes:
    return pil_bytes(Image.fromarray(array), "JPEG", quality=quality)


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def non_utf8_path(folder: Path, suffix: str) -> Path:
    """A path in `folder` whose file name is not valid UTF-8 (Python holds it with surrogate escapes)."""
    return Path(os.fsdecode(os.fsencode(folder) + b"/" + NON_UTF8_STEM + suffix.encode()))


# ---------------------------------------------------------------------------------------------------------
# The image corpus
# ---------------------------------------------------------------------------------------------------------


def image_specs(height: int = 48, width: int = 64, seed: int = 0) -> list[tuple[str, str, str, str, bytes]]:
    """(name, file name, expect, description, bytes) of every single-image item of the corpus."""
    rgb = textured_image(height, width, seed)
    gray = rgb.mean(axis=2).round().astype(np.uint8)
    png = png_bytes(rgb)
    jpg = jpeg_bytes(rgb)
    rgba = Image.fromarray(np.dstack([rgb, np.full((height, width), 200, np.uint8)]), "RGBA")
    return [
        ("zero_byte_png", "zero_byte.png", "reject", "zero-byte .png file", b""),
        ("zero_byte_jpg", "zero_byte.jpg", "reject", "zero-byte .jpg file", b""),
        ("truncated_png", "truncated.png", "reject", "PNG cut at 60% of its bytes", png[: int(len(png) * 0.6)]),
        ("truncated_jpg", "truncated.jpg", "reject", "JPEG cut at 50% of its bytes", jpg[: len(jpg) // 2]),
        (
            "text_as_png",
            "text_file.png",
            "reject",
            "a text file named .png",
            b"this is a text file, not a PNG image\n" * 4,
        ),
        (
            "header_only_huge",
            "huge_20000x20000.png",
            "reject",
            "PNG header declaring 20000x20000 pixels, no pixel data",
            header_only_png(20000, 20000),
        ),
        ("png_16bit_gray", "gray16.png", "accept", "16-bit grayscale PNG", png_bytes(gray.astype(np.uint16) * 257, 16)),
        ("png_16bit_rgb", "rgb16.png", "accept", "16-bit RGB PNG", png_bytes(rgb.astype(np.uint16) * 257, 16)),
        ("gray_png", "gray8.png", "accept", "8-bit grayscale PNG", pil_bytes(Image.fromarray(gray, "L"), "PNG")),
        ("rgba_png", "rgba.png", "accept", "RGBA PNG (alpha channel)", pil_bytes(rgba, "PNG")),
        (
            "cmyk_jpg",
            "cmyk.jpg",
            "accept",
            "CMYK JPEG",
            pil_bytes(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=90),
        ),
        ("tiny_1x1", "one_pixel.png", "either", "a valid 1x1 RGB PNG", png_bytes(rgb[:1, :1])),
    ]


def make_image_corpus(
    folder: str | os.PathLike, height: int = 48, width: int = 64, seed: int = 0, include: Sequence[str] | None = None
) -> list[BadInput]:
    """Writes every single-image bad input into `folder` (plus one with a space and one with a non-UTF-8 name).

    Returns the items; `include` restricts them to the given names.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for name, file_name, expect, what, data in image_specs(height, width, seed):
        if include is None or name in include:
            items.append(BadInput(name, _write(folder / file_name, data), expect, what))
    good = png_bytes(textured_image(height, width, seed + 1))
    if include is None or "space_in_name" in include:
        items.append(
            BadInput(
                "space_in_name",
                _write(folder / "a photo with spaces.png", good),
                "accept",
                "valid PNG whose name holds spaces",
            )
        )
    if include is None or "non_utf8_name" in include:
        items.append(
            BadInput(
                "non_utf8_name",
                _write(non_utf8_path(folder, ".png"), good),
                "either",
                "valid PNG whose file name is not valid UTF-8",
            )
        )
    return items


def make_mismatched_pair(
    ref_folder: str | os.PathLike, dist_folder: str | os.PathLike, stem: str = "mismatch", seed: int = 0
) -> BadInput:
    """A reference (48x64) and a 'distorted' image of another size (40x56) named as KADIS would name it."""
    ref = _write(Path(ref_folder) / f"{stem}.png", png_bytes(textured_image(48, 64, seed)))
    dist = _write(Path(dist_folder) / f"{stem}_01_01.png", png_bytes(textured_image(40, 56, seed + 1)))
    return BadInput("mismatched_sizes", dist, "reject", "distorted image 40x56 vs reference 48x64", ref=ref)


# ---------------------------------------------------------------------------------------------------------
# CSV variants of a valid table
# ---------------------------------------------------------------------------------------------------------


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Sequence[Sequence]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv_rows(path: str | os.PathLike) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def make_csv_variants(
    valid_csv: str | os.PathLike,
    folder: str | os.PathLike,
    score_column: str | None = None,
    required: Sequence[str] | None = None,
    file_column: str | None = None,
) -> list[BadInput]:
    """Writes broken variants of a valid CSV into `folder`; returns them as `BadInput`s.

    score_column: a numeric column to poison with NaN / inf. required: the columns the job needs (the first is
    dropped for the missing-column variant; default: the first column). file_column: a column naming an image
    file, for the missing-file variant. A duplicate row may be legitimately de-duplicated by a job, so it is
    `either`; everything else must be rejected (a job may instead skip-and-count the poisoned row).
    """
    folder = Path(folder)
    header, rows = read_csv_rows(valid_csv)
    if not rows:
        raise ValueError(f"valid_csv: {valid_csv} has no data rows")
    items = []
    missing = (required or header)[0]
    keep = [i for i, column in enumerate(header) if column != missing]
    items.append(
        BadInput(
            "csv_missing_column",
            write_csv(
                folder / "missing_column.csv", [header[i] for i in keep], [[row[i] for i in keep] for row in rows]
            ),
            "reject",
            f"CSV without its '{missing}' column",
            extra={"column": missing},
        )
    )
    items.append(
        BadInput(
            "csv_extra_column",
            write_csv(folder / "extra_column.csv", header + ["comment"], [row + ["note, with comma"] for row in rows]),
            "accept",
            "CSV with an extra unknown column",
        )
    )
    items.append(
        BadInput(
            "csv_duplicate_rows",
            write_csv(folder / "duplicate_rows.csv", header, rows + [rows[0]]),
            "either",
            "CSV whose first row appears twice",
            extra={"row": 1},
        )
    )
    if score_column is not None:
        col = header.index(score_column)
        for kind, value in (("nan", "nan"), ("inf", "inf")):
            poisoned = [list(row) for row in rows]
            poisoned[-1][col] = value
            items.append(
                BadInput(
                    f"csv_{kind}_score",
                    write_csv(folder / f"{kind}_score.csv", header, poisoned),
                    "reject",
                    f"CSV with {value} in '{score_column}' (last row)",
                    extra={"row": len(rows), "column": score_column},
                )
            )
    if file_column is not None:
        col = header.index(file_column)
        ghost = [list(row) for row in rows]
        ghost[-1][col] = "no_such_image.png"
        items.append(
            BadInput(
                "csv_missing_file",
                write_csv(folder / "missing_file.csv", header, ghost),
                "reject",
                f"CSV row naming a missing image in '{file_column}'",
                extra={"row": len(rows), "file": "no_such_image.png"},
            )
        )
    items.append(BadInput("csv_empty", _write(folder / "empty.csv", b""), "reject", "zero-byte CSV"))
    items.append(
        BadInput(
            "csv_header_only",
            write_csv(folder / "header_only.csv", header, []),
            "either",
            "CSV with a header and no rows",
        )
    )
    items.append(
        BadInput(
            "csv_not_utf8",
            _write(folder / "latin1.csv", (",".join(header) + "\n").encode() + b"\xff\xfe\xfa garbage\n"),
            "reject",
            "CSV holding bytes that are not UTF-8",
        )
    )
    return items


# ---------------------------------------------------------------------------------------------------------
# Checks on a job's stderr
# ---------------------------------------------------------------------------------------------------------


def assert_no_traceback(stderr: str, context: str = "") -> None:
    """A job must never print a bare Python traceback."""
    assert "Traceback (most recent call last)" not in stderr, f"{context}: traceback on stderr:\n{stderr[-3000:]}"


def assert_no_tracebacks(results: dict) -> None:
    """No job of `results` (name -> CompletedProcess) printed a bare Python traceback; names every one that did."""
    failures = [name for name, result in results.items() if "Traceback (most recent call last)" in result.stderr]
    assert not failures, (
        "tracebacks from: "
        + ", ".join(failures)
        + "\n"
        + "\n".join(results[name].stderr[-1500:] for name in failures[:2])
    )


def error_line(stderr: str) -> str:
    """The last line of stderr starting with 'error' (the one-line message of `deepfl.cli.app.run_app`)."""
    lines = [line for line in stderr.splitlines() if line.startswith("error")]
    return lines[-1] if lines else ""


def names_culprit(text: str, path: Path) -> bool:
    """True when `text` names the file (by its name, or its name with escaped non-UTF-8 bytes)."""
    name = path.name
    candidates = {name, name.encode("utf-8", "backslashreplace").decode("ascii", "ignore"), repr(name)[1:-1]}
    if "\udcff" in name:  # non-UTF-8 file name: accept any rendering that keeps the readable part
        candidates.add("bad_")
    return any(c and c in text for c in candidates)
