"""Compression distortions (KADID types 9-10): a JPEG2000 and a JPEG round trip, as `imwrite` + `imread`.

The original writes through MATLAB's encoders (Kakadu-based JPEG2000, IJG libjpeg); we use Pillow's OpenJPEG
and libjpeg(-turbo) encoders with the same settings (irreversible 9/7 wavelet with colour transform at the
given compression ratio; IJG quality scale with 4:2:0 chroma subsampling).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from deepfl.distortions._ranges import to_double_uint8_roundtrip


def _roundtrip(x: np.ndarray, **save_options) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(to_double_uint8_roundtrip(x)).save(buffer, **save_options)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.float64) / 255.0


def jpeg2000(x: np.ndarray, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Type 9, `imcompressjp2k`: JPEG2000 at compression ratio `ratio` (raw 24-bit size / coded size)."""
    return _roundtrip(
        x, format="JPEG2000", quality_mode="rates", quality_layers=[float(ratio)], irreversible=True, mct=1
    )


def jpeg(x: np.ndarray, quality: int, rng: np.random.Generator) -> np.ndarray:
    """Type 10, `imcompressjpeg`: baseline JPEG at IJG quality `quality` (4:2:0, as MATLAB's `imwrite`)."""
    return _roundtrip(x, format="JPEG", quality=int(quality), subsampling="4:2:0")
