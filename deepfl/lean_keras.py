"""Keras without the scikit-learn and matplotlib it imports for features the command-line jobs never use.

Keras 3 imports scikit-learn (for `keras.wrappers`, its scikit-learn estimators) and matplotlib's pyplot and
patches (for `keras.visualization`) whenever they are installed, each inside `try: ... except ImportError:`. That is
about a third of `import keras` (1.4-2 s of CPU of 4.6-6 s on 2-core build machines, `bench/keras_import.py`),
paid by every job that runs a network. While Keras' own package executes, `keras_without_extras` makes those two
imports fail as if the libraries were missing, so Keras takes its fallbacks; once Keras is imported they import
normally (the demo loads scikit-learn's sample photos afterwards).

Only the command-line jobs call it (`deepfl.cli.app.run_app`): in a user's process it would leave
`keras.wrappers` believing scikit-learn absent and `keras.visualization` without matplotlib, so the library does not
call it by itself. A module already imported when Keras is (say the user's own `import sklearn`) stays as it is.
"""

from __future__ import annotations

import importlib.abc
import sys

from deepfl.import_hooks import WrappedExecFinder

_KERAS = "keras"
# What Keras imports only for keras.wrappers and keras.visualization (matplotlib: pyplot and patches).
KERAS_EXTRAS = ("sklearn", "matplotlib")


class _RefuseExtras(importlib.abc.MetaPathFinder):
    """Answers "not installed" for `KERAS_EXTRAS` while it sits in `sys.meta_path`."""

    def find_spec(self, name, path=None, target=None):
        if name in KERAS_EXTRAS:
            raise ModuleNotFoundError(f"No module named {name!r} (left out while Keras is imported)", name=name)
        return None


class _KerasWithoutExtrasFinder(WrappedExecFinder):
    """Executes `keras` with `_RefuseExtras` in front of the other finders."""

    def __init__(self):
        super().__init__(_KERAS)

    def execute(self, module, run) -> None:
        refuse = _RefuseExtras()
        sys.meta_path.insert(0, refuse)
        try:
            run(module)
        finally:
            sys.meta_path.remove(refuse)


def keras_without_extras() -> None:
    """Makes this process' first `import keras` skip scikit-learn and matplotlib (see the module docstring); does
    nothing once Keras is imported."""
    if _KERAS in sys.modules or any(isinstance(f, _KerasWithoutExtrasFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _KerasWithoutExtrasFinder())
