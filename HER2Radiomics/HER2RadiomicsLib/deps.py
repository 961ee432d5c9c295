"""Runtime dependencies inside 3D Slicer: check, ask, install (STYLE.md: Slicer template).

Slicer ships numpy, SimpleITK and VTK; scikit-learn, pandas, PyYAML... are installed with Slicer's
pip on first use, after the user agreed (``slicer.packaging.pip_ensure`` on Slicer >= 5.12, else
``slicer.util.pip_install``). pyradiomics comes from the SlicerRadiomics extension, which the
extension depends on; when it is missing the user gets one clear message instead of an ImportError.
The GUI injects ``confirm`` and ``install`` so this module is tested headless.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from her2radiomics.errors import UserError

#: import name of each distribution listed in Resources/requirements.txt
IMPORT_NAMES = {"scikit-learn": "sklearn", "pyyaml": "yaml", "pywavelets": "pywt"}

RADIOMICS_MISSING = (
    "pyradiomics is not available: install the SlicerRadiomics extension (Extensions Manager > "
    "SlicerRadiomics), restart Slicer and try again"
)


def read_requirements(path: str | Path) -> list[str]:
    """Requirement lines of a requirements.txt (comments and blank lines dropped)."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def requirement_name(req: str) -> str:
    return re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].strip()


def import_name(req: str) -> str:
    name = requirement_name(req)
    return IMPORT_NAMES.get(name.lower(), name.replace("-", "_"))


def missing(requirements: Iterable[str]) -> list[str]:
    """Requirements whose module cannot be imported (version bounds are left to pip)."""
    return [r for r in requirements if importlib.util.find_spec(import_name(r)) is None]


def radiomics_available() -> bool:
    return importlib.util.find_spec("radiomics") is not None


def ensure(
    requirements: Iterable[str],
    confirm: Callable[[str], bool],
    install: Callable[[list[str]], None],
    need_radiomics: bool = True,
) -> list[str]:
    """Install missing requirements after ``confirm`` agreed; returns what was installed.

    UserError when the user declines, and when pyradiomics (SlicerRadiomics) is missing.
    """
    todo = missing(requirements)
    if todo:
        names = ", ".join(requirement_name(r) for r in todo)
        question = (
            f"HER2Radiomics needs these Python packages, which are not installed yet: {names}. "
            "Install them now with pip? (This downloads them from the Python Package Index and may take a few minutes.)"
        )
        if not confirm(question):
            raise UserError(f"HER2Radiomics cannot run without {names}; accept the installation or install them with pip")
        install(todo)
        still = missing(todo)
        if still:
            raise UserError(f"installing {', '.join(requirement_name(r) for r in still)} failed; see the Python console")
    if need_radiomics and not radiomics_available():
        raise UserError(RADIOMICS_MISSING)
    return todo
