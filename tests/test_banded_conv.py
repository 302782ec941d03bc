"""Convolutions over very large images in row bands (`deepfl.models.banded_conv`): with oneDNN on and a CPU
without AVX-512, a convolution whose input holds about 2^27 values per image falls back to oneDNN's reference
kernel (a 12-megapixel photo took 68 s in the `small` network instead of 4). Bands must give the whole
convolution's values, and feature extraction must route large images through them where the fallback exists."""

from __future__ import annotations

import itertools
import os
import platform
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest


def test_banded_convolution_equals_the_whole_one():
    import keras

    from deepfl.models.banded_conv import _BandPlan, banded_conv2d

    rng = np.random.default_rng(0)
    cases = itertools.product([(37, 23), (40, 41), (9, 64)], [(1, 3), (3, 3), (5, 2)], [1, 2, 3], ["same", "valid"])
    banded = total = 0
    for (height, width), kernel_size, stride, padding in cases:
        for dilation in (1, 2) if stride == 1 else (1,):
            images = rng.normal(size=(2, height, width, 4)).astype(np.float32)
            kernel = rng.normal(size=(*kernel_size, 4, 5)).astype(np.float32)
            args = ((stride, stride), padding, (dilation, dilation))
            whole = keras.ops.convert_to_numpy(
                keras.ops.conv(images, kernel, args[0], padding, "channels_last", args[2])
            )
            got = keras.ops.convert_to_numpy(banded_conv2d(images, kernel, *args, band_values=300))
            case = (height, width, kernel_size, stride, padding, dilation)
            assert got.shape == whole.shape, case
            np.testing.assert_allclose(got, whole, rtol=1e-5, atol=1e-5, err_msg=str(case))
            total += 1
            banded += _BandPlan(height, width, kernel.shape, *args, 300).bands > 1
    assert total == 72 and banded >= 70  # nearly every case ran in several bands (not 9 rows with a 5-row kernel)


def test_large_images_are_routed_through_bands_where_onednn_would_fall_back(monkeypatch):
    """On such a machine (simulated), a large image's features come from banded convolutions, equal to the
    whole ones; elsewhere the usual `predict_on_batch` runs, untouched."""
    from deepfl import features
    from deepfl.models import backbone, banded_conv

    monkeypatch.setattr(banded_conv, "onednn_fallback_possible", lambda: False)
    monkeypatch.setattr(backbone, "onednn_fallback_possible", lambda: False)
    model = backbone.build_backbone(weights=None, arch="small", seed=3)
    images = [np.random.default_rng(k).integers(0, 256, (70 + 9 * k, 90 - 7 * k, 3), dtype=np.uint8) for k in range(3)]
    whole = features.compute_features(model, images, batch_size=2)

    bands = []
    convolve = banded_conv._BandPlan.convolve
    monkeypatch.setattr(
        banded_conv._BandPlan, "convolve", lambda plan, *a: bands.append(plan.bands) or convolve(plan, *a)
    )
    monkeypatch.setattr(banded_conv, "LARGE_IMAGE_PIXELS", 1000)
    assert features.compute_features(model, images, batch_size=2).shape == whole.shape
    assert bands == []  # no fallback possible: nothing banded

    monkeypatch.setattr(banded_conv, "onednn_fallback_possible", lambda: True)
    assert banded_conv.band_large_convolutions(model, band_values=5000) == 10  # the small CNN's ten 3x3 convs
    assert banded_conv.band_large_convolutions(model) == 0  # once only
    banded = features.compute_features(model, images, batch_size=2)
    assert bands and max(bands) > 1
    np.testing.assert_allclose(banded, whole, rtol=1e-5, atol=1e-5)


def test_built_and_loaded_models_band_where_onednn_would_fall_back(monkeypatch, tmp_path):
    """Training and scoring load or build their networks through these two functions: a static-shape call on a
    large image (a training step, or a batch_predictor call) then runs in bands."""
    import keras

    from deepfl import fileio
    from deepfl.models import backbone, banded_conv

    monkeypatch.setattr(backbone, "onednn_fallback_possible", lambda: True)
    built = backbone.build_backbone(weights=None, arch="small")
    assert banded_conv.band_large_convolutions(built) == 0  # already done
    bands = []
    convolve = banded_conv._BandPlan.convolve

    def counted(plan, *args):
        bands.append(plan.bands)
        return convolve(plan, *args)

    monkeypatch.setattr(banded_conv._BandPlan, "convolve", counted)
    built(np.zeros((1, 1500, 1500, 3), np.float32))  # the first stage's 16 channels: 36M values > 2^25
    assert bands and max(bands) > 1

    path = tmp_path / "small.keras"
    built.save(path)
    monkeypatch.setattr(banded_conv, "onednn_fallback_possible", lambda: True)
    loaded = fileio.load_model_file(path)
    assert banded_conv.band_large_convolutions(loaded) == 0
    monkeypatch.setattr(banded_conv, "onednn_fallback_possible", lambda: False)
    plain = keras.saving.load_model(path)
    assert banded_conv.band_large_convolutions(plain) == 10


def test_fallback_detection_follows_the_onednn_setting_and_the_cpu(monkeypatch):
    from deepfl.models import banded_conv

    def possible(**env) -> bool:
        for name in ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        banded_conv.onednn_fallback_possible.cache_clear()
        try:
            return banded_conv.onednn_fallback_possible()
        finally:
            banded_conv.onednn_fallback_possible.cache_clear()

    monkeypatch.setattr(banded_conv.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(banded_conv, "_cpu_has_avx512", lambda: False)
    assert possible(TF_ENABLE_ONEDNN_OPTS="1")
    assert not possible(TF_ENABLE_ONEDNN_OPTS="0")
    assert not possible()  # TensorFlow's default: oneDNN only where AVX-512 is
    monkeypatch.setattr(banded_conv, "_cpu_has_avx512", lambda: True)
    assert not possible(TF_ENABLE_ONEDNN_OPTS="1")
    assert possible(TF_ENABLE_ONEDNN_OPTS="1", ONEDNN_MAX_CPU_ISA="AVX2")  # capped below AVX-512
    monkeypatch.setattr(banded_conv.platform, "machine", lambda: "aarch64")
    assert not possible(TF_ENABLE_ONEDNN_OPTS="1", ONEDNN_MAX_CPU_ISA="AVX2")


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="oneDNN's x86 kernels")
def test_no_reference_convolution_on_a_twelve_megapixel_photo(tmp_path):
    """End to end, with oneDNN capped at AVX2 as on CPUs without AVX-512: features of a 12-megapixel image
    create no `ref:any` convolution (before the bands, its first strided convolution did, and ran 68 s). The
    run is stopped at the first such line, so a regression fails in seconds."""
    script = textwrap.dedent(
        """
        import numpy as np
        import deepfl
        from deepfl.features import compute_features
        from deepfl.models.backbone import build_backbone
        image = np.random.default_rng(0).integers(0, 256, (3000, 4000, 3), dtype=np.uint8)
        features = compute_features(build_backbone(weights=None, arch="small"), [image])
        print("features", features.shape, flush=True)
        """
    )
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ONEDNN_VERBOSE": "all", "TF_ENABLE_ONEDNN_OPTS": "1"}
    env.pop("DNNL_MAX_CPU_ISA", None)
    process = subprocess.Popen(
        [sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    reference, lines = None, []
    for line in process.stdout:
        lines.append(line)
        if re.search(r"create:\w+,cpu,convolution,ref:any", line):
            reference = line
            process.kill()
            break
    process.wait()
    assert reference is None, f"oneDNN fell back to its reference convolution: {reference[:300]}"
    assert process.returncode == 0, "".join(lines[-20:])
    assert any(line.startswith("features (1, 432)") for line in lines)
