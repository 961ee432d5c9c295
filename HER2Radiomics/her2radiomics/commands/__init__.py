"""Sub-commands of the ``her2radiomics`` CLI (see her2radiomics.cli).

A command module is imported to build its parser (``her2radiomics train --help``), so it must not import the
scientific stack at module level: :func:`lazy_module` gives a module whose code runs on first attribute access
(the standard library's ``importlib.util.LazyLoader``), and functions import what only they use.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """``name`` as a module object that is imported on first attribute access (already imported: returned as is).

    Recipe of the Python documentation (importlib, "Implementing lazy imports").
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}")
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
