"""Locate the project's Resources/ folder (parameter files, demo model cards, UI).

Works from the source tree (``<repo>/HER2Radiomics/her2radiomics`` -> ``<repo>/Resources``) and from an
installed Slicer extension (``qt-scripted-modules/her2radiomics`` -> ``qt-scripted-modules/Resources``).
``HER2RADIOMICS_RESOURCES`` overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path

from her2radiomics.errors import UserError

_HERE = Path(__file__).resolve().parent


def resources_dir() -> Path:
    env = os.environ.get("HER2RADIOMICS_RESOURCES")
    candidates = [Path(env)] if env else []
    candidates += [_HERE.parents[1] / "Resources", _HERE.parent / "Resources"]
    for c in candidates:
        if (c / "Parameters").is_dir():
            return c
    raise UserError(
        "cannot find the HER2Radiomics Resources folder; run from the source tree or set HER2RADIOMICS_RESOURCES"
    )


def resource(*parts: str) -> Path:
    """Path of a file inside Resources/ (not checked for existence)."""
    return resources_dir().joinpath(*parts)
