"""An import finder that runs one module's execution inside a wrapper of the caller's choice.

`deepfl.quiet` (TensorFlow's import with its C++ lines sent to a file) and `deepfl.lean_keras` (Keras' import
without scikit-learn and matplotlib) each change how one module is executed, not where it is found.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType


class WrappedExecFinder(importlib.abc.MetaPathFinder):
    """Finds the module `name` like the normal machinery, but executes it through `execute(module, run)`, where
    `run(module)` is the normal execution.

    It stays in `sys.meta_path` until the module is executed, not only until it is first looked up: libraries
    probe for a module with `importlib.util.find_spec` without importing it (torch does for TensorFlow, at its
    import), and a finder gone after that probe would leave the real import unwrapped. Once the module executes,
    the finder leaves `sys.meta_path`: later lookups go the normal way.
    """

    def __init__(self, name: str):
        self.name = name
        self._searching = False

    def execute(self, module: ModuleType, run: Callable[[ModuleType], None]) -> None:
        run(module)

    def find_spec(self, name, path=None, target=None):
        if name != self.name or self._searching:
            return None
        self._searching = True  # the normal machinery below finds the spec; this finder steps aside meanwhile
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._searching = False
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module) -> None:
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            self.execute(module, run)

        spec.loader.exec_module = exec_module
        return spec
