"""Compiled (Numba) per-pixel kernels of the distortions: loops that numpy can only run as many full-image passes.

Every kernel implements exactly the maths of a plain numpy form, in the same floating-point order where
the output must stay byte-identical (tests/test_distortions.py compares each one with the plain numpy maths).
Kernels are compiled on first use and cached on disk (`cache=True`: `__pycache__` beside this file, or
NUMBA_CACHE_DIR); where no cache location is writable they are compiled per process instead of failing. No
kernel is parallel: the generator already runs one process per core.
"""
