"""Puts the embedded Bauplan stand-in (tests/bauplan_standin.py) in place of `bauplan.Client` in a subprocess.

Active only when `WAP_TEST_BAUPLAN_STANDIN=<root>` is set (see `bauplan_standin.subprocess_env`, which also
puts this folder first on PYTHONPATH). Nothing is imported at startup: when the process first imports
`bauplan`, the stand-in module is loaded and `bauplan.Client` replaced, so a process that never uses Bauplan
pays nothing. Any other `sitecustomize` later on sys.path (none in this repository's environment) still runs.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_STANDIN = os.path.join(os.path.dirname(_HERE), "bauplan_standin.py")


def _chain_next_sitecustomize() -> None:
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None or os.path.abspath(spec.origin or "") == os.path.abspath(__file__):
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["_chained_sitecustomize"] = module
    spec.loader.exec_module(module)


def _load_standin():
    module = sys.modules.get("bauplan_standin")
    if module is None:
        spec = importlib.util.spec_from_file_location("bauplan_standin", _STANDIN)
        module = importlib.util.module_from_spec(spec)
        sys.modules["bauplan_standin"] = module  # the same module if a test helper imports it later
        spec.loader.exec_module(module)
    return module


class _PatchBauplanOnImport(importlib.abc.MetaPathFinder):
    """Finds `bauplan` as usual, and replaces its `Client` right after the package has run."""

    def find_spec(self, name, path=None, target=None):
        if name != "bauplan":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        run = loader.exec_module

        def exec_module(module):
            run(module)
            sys.meta_path[:] = [f for f in sys.meta_path if f is not self]
            _load_standin().install_from_env(module)

        loader.exec_module = exec_module
        return spec


_chain_next_sitecustomize()
if os.environ.get("WAP_TEST_BAUPLAN_STANDIN"):
    sys.meta_path.insert(0, _PatchBauplanOnImport())
