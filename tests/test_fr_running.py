"""Several metrics side by side (`deepfl.fr.running.score_metrics`, what `compute` and `deepfl-label` run) and
FSIMc's Numba kernels (`deepfl.fr.uncompiled.fsim_kernels`) against the NumPy arithmetic they replace."""

from __future__ import annotations

import contextvars
import math
import threading
import time

import numpy as np
import pytest

from deepfl.fr import running

_FLAG = contextvars.ContextVar("test_fr_running_flag", default="unset")


def _fake(value: float, seconds: float = 0.0, log: list | None = None):
    """A metric function that sleeps, records (thread, context flag) and returns `value` per pair."""

    def function(ref, dist, ref_index=None):
        time.sleep(seconds)
        if log is not None:
            log.append((threading.current_thread().name, _FLAG.get()))
        return np.full(len(dist), value, np.float32)

    return function


def _failing(message: str, seconds: float = 0.0):
    def function(ref, dist, ref_index=None):
        time.sleep(seconds)
        raise ValueError(message)

    return function


def test_results_keep_the_callers_order_and_match_one_after_another(monkeypatch):
    monkeypatch.setattr(running, "WORKERS", 2)
    functions = {"gmsd": _fake(1.0, 0.02), "fsim": _fake(2.0, 0.05), "unknown_new": _fake(3.0), "ssim": _fake(4.0)}
    dist = np.zeros((3, 4, 4, 3))
    out = running.score_metrics(functions, dist, dist)
    assert list(out) == list(functions)
    for name, value in zip(functions, (1.0, 2.0, 3.0, 4.0)):
        assert out[name].dtype == np.float64 and out[name].tolist() == [value] * 3


def test_two_threads_share_the_metrics_and_see_the_callers_context(monkeypatch):
    monkeypatch.setattr(running, "WORKERS", 2)
    log: list = []
    functions = {name: _fake(0.0, 0.05, log) for name in ("ssim", "msssim", "mdsi", "gmsd")}
    token = _FLAG.set("set by the caller")
    try:
        running.score_metrics(functions, np.zeros((1, 4, 4, 3)), np.zeros((1, 4, 4, 3)))
    finally:
        _FLAG.reset(token)
    threads = {thread for thread, _ in log}
    assert len(log) == 4 and len(threads) == 2  # each thread took some metrics
    assert {flag for _, flag in log} == {"set by the caller"}  # e.g. staging.compiled_from_first_call


def test_one_core_or_a_worker_thread_runs_them_one_after_another(monkeypatch):
    log: list = []
    functions = {name: _fake(0.0, 0.0, log) for name in ("ssim", "gmsd")}
    monkeypatch.setattr(running, "WORKERS", 1)
    running.score_metrics(functions, np.zeros((1, 4, 4, 3)), np.zeros((1, 4, 4, 3)))
    assert {thread for thread, _ in log} == {threading.main_thread().name}
    monkeypatch.setattr(running, "WORKERS", 2)
    log.clear()
    worker = threading.Thread(
        target=running.score_metrics, args=(functions, np.zeros((1, 4, 4, 3)), np.zeros((1, 4, 4, 3))), name="mine"
    )
    worker.start()
    worker.join()
    assert {thread for thread, _ in log} == {"mine"}


def test_an_error_is_raised_and_stops_the_queue(monkeypatch):
    monkeypatch.setattr(running, "WORKERS", 2)
    log: list = []
    functions = {
        "fsim": _failing("fsim: images too small", 0.05),
        "iwssim": _failing("iwssim: images too small", 0.0),
        **{name: _fake(0.0, 0.05, log) for name in ("ssim", "msssim", "mdsi", "gmsd")},
    }
    with pytest.raises(ValueError, match="^fsim: images too small$"):  # the first in the caller's order
        running.score_metrics(functions, np.zeros((1, 4, 4, 3)), np.zeros((1, 4, 4, 3)))
    assert len(log) < 4  # the queue was emptied: not every remaining metric ran


def test_compute_scores_equal_the_metric_functions_called_one_by_one(photo):
    """The real metrics through `compute` (two threads) against each function called on its own. Equal to float
    rounding, not bit for bit: in a worker thread a metric's NumPy form does not split its rows over a second
    thread. Both sides run the NumPy forms: a size no other test uses, and no compiling within the block (whether
    a size compiles depends on the time its calls took, so on the rest of the process's work; the compiled SSIM
    differs from the NumPy one by about 1e-5)."""
    from deepfl.fr import compute, metric_function
    from deepfl.fr.functional.staging import compile_after

    ref = photo[:95, :127]
    dist = np.clip(ref.astype(np.int16) + np.random.default_rng(0).integers(-20, 21, ref.shape), 0, 255)
    dist = dist.astype(np.uint8)
    names = ["ssim", "gmsd", "mdsi", "fsim"]
    with compile_after(math.inf):
        together = compute(ref, dist, names)
        alone_scores = {
            name: np.asarray(metric_function(name)(ref[None].astype(np.float32), dist[None].astype(np.float32)))
            for name in names
        }
    for name in names:
        alone = alone_scores[name]
        np.testing.assert_allclose(together[name], alone.astype(np.float64).reshape(-1), rtol=1e-6, err_msg=name)


def test_compute_takes_one_name_as_a_string_none_as_all_and_suggests_a_close_spelling(photo):
    # A string was iterated letter by letter ("unknown metric 's'") and None raised a TypeError (a user's walk).
    from deepfl.fr import METRICS, compute

    ref = photo[:176, :176]
    dist = np.ascontiguousarray(ref[::-1])
    assert list(compute(ref, dist, "gmsd")) == ["gmsd"]
    assert list(compute(ref, dist, None)) == list(METRICS) == list(compute(ref, dist))
    for spelled, meant in (("MS-SSIM", "msssim"), ("SR_SIM", "sr_sim"), ("FSIMc", "fsim")):
        with pytest.raises(ValueError, match=f"unknown metric '{spelled}'; did you mean '{meant}'\\?"):
            compute(ref, dist, ["ssim", spelled])
    with pytest.raises(ValueError, match=r"unknown metric 'psnr' \(choose from ssim, "):
        compute(ref, dist, "psnr")


# --------------------------------------------------------------------------------------------------------------
# FSIMc's kernels
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(9, 12), (10, 11), (7, 7)])
def test_oriented_products_unfold_the_quarter_grid(shape):
    from deepfl.fr._fsim import unfold
    from deepfl.fr.uncompiled import fsim_kernels

    rng = np.random.default_rng(1)
    h, w = shape
    spectrum = (rng.standard_normal((h, w)) + 1j * rng.standard_normal((h, w))).astype(np.complex64)
    angular = rng.random((h, w), np.float32)
    radial = rng.random((4, h // 2 + 1, w // 2 + 1), np.float32)
    out = np.empty((4, h, w), np.complex64)
    fsim_kernels.oriented_products(spectrum, angular, radial, out)
    np.testing.assert_array_equal(out, (spectrum * angular)[None] * unfold(radial, h, w))


def test_orientation_energy_follows_the_numpy_formula():
    from deepfl.fr.uncompiled import fsim_kernels

    rng = np.random.default_rng(2)
    eo = (rng.standard_normal((4, 6, 5)) + 1j * rng.standard_normal((4, 6, 5))).astype(np.complex64)
    amplitude_sum = np.full((6, 5), 0.5, np.float32)
    energy, finest = np.empty((6, 5), np.float32), np.empty((6, 5), np.float32)
    fsim_kernels.orientation_energy(eo, 1e-4, amplitude_sum, energy, finest)
    e = eo.astype(np.complex128)
    total = e.sum(axis=0)
    expected = (np.abs(total) ** 2 - np.abs((e * np.conj(total)).imag).sum(axis=0)) / (np.abs(total) + 1e-4)
    np.testing.assert_allclose(amplitude_sum, 0.5 + np.abs(e).sum(axis=0), rtol=1e-6)
    np.testing.assert_allclose(energy, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(finest, np.abs(e[0]) ** 2, rtol=1e-6)
    summed = np.zeros((6, 5), np.float32)
    fsim_kernels.add_thresholded(energy, 0.3, summed)
    np.testing.assert_array_equal(summed, np.maximum(energy - np.float32(0.3), 0))


def test_the_main_thread_splits_no_metric_while_two_threads_share_them(monkeypatch):
    """Inside score_metrics the main thread runs its metrics on itself: a third thread would only compete."""
    from deepfl.fr.uncompiled import threads

    monkeypatch.setattr(running, "WORKERS", 2)
    monkeypatch.setattr(threads, "WORKERS", 2)
    seen: list = []

    def splitting(ref, dist, ref_index=None):
        names = threads.in_parallel(lambda _: threading.current_thread().name, [0, 1])
        seen.append((threading.current_thread() is threading.main_thread(), len(set(names))))
        time.sleep(0.05)
        return np.zeros(len(dist))

    functions = {name: splitting for name in ("ssim", "msssim", "mdsi", "gmsd")}
    running.score_metrics(functions, np.zeros((1, 4, 4, 3)), np.zeros((1, 4, 4, 3)))
    assert {main for main, _ in seen} == {True, False} and {count for _, count in seen} == {1}
    # Outside it, the main thread still splits its work in two.
    names = threads.in_parallel(lambda _: threading.current_thread().name, [0, 1])
    assert len(set(names)) == 2
