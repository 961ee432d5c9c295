"""Runtime dependencies inside 3D Slicer: check, ask, install (Slicer's scripted-module template; docs/architecture.md#supported-slicer).

Supported: 3D Slicer 5.10 and 5.12 (Python 3.12). They bundle numpy, scipy, SimpleITK, VTK, pydicom,
pillow and requests, but not PyYAML, pandas or pyradiomics. PyYAML and pandas (Resources/requirements.txt:
exactly what the module imports beyond the bundled packages) are installed with Slicer's pip on first use,
after the user agreed: ``slicer.packaging.pip_ensure`` on Slicer >= 5.12, ``slicer.util.pip_install``
on 5.10. The bundled numpy / scipy / SimpleITK are pinned to their installed versions in a pip
constraints file, so pip can never replace a package a running Slicer has loaded. pyradiomics comes from
the SlicerRadiomics extension, which the extension depends on; when it is missing the user gets one clear
message instead of an ImportError. In testing mode (``slicer.app.testingEnabled()``, the extension build
servers) nothing is installed: :class:`DependenciesSkipped` says what is missing. The GUI injects
``confirm`` and ``install`` so this module is tested headless.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from her2radiomics.errors import UserError

#: import name of each distribution listed in Resources/requirements.txt
IMPORT_NAMES = {"scikit-learn": "sklearn", "pyyaml": "yaml", "pywavelets": "pywt", "pyradiomics": "radiomics"}

#: Slicer's own packages that pip must never replace under a running Slicer (pinned as constraints)
BUNDLED_PINNED = ("numpy", "scipy", "SimpleITK")

#: the Slicer versions the module is built and tested for
SUPPORTED_SLICER = ((5, 10), (5, 12))

RADIOMICS_MISSING = (
    "pyradiomics is not available: install the SlicerRadiomics extension (Extensions Manager > "
    "SlicerRadiomics), restart Slicer and try again"
)


class DependenciesSkipped(UserError):
    """Testing mode: missing packages are not installed (the shared Slicer of a build server stays as it is)."""


def slicer_version_message(version: str | None) -> str | None:
    """None for a supported Slicer version ('5.10.0', '5.12.3', ...), else the one line to show."""
    m = re.match(r"\s*(\d+)\.(\d+)", version or "")
    if m is None:
        return None
    major, minor = int(m.group(1)), int(m.group(2))
    lo, hi = SUPPORTED_SLICER[0], SUPPORTED_SLICER[-1]
    if (major, minor) < lo:
        return (f"HER2Radiomics supports 3D Slicer {lo[0]}.{lo[1]} and {hi[0]}.{hi[1]} (Python 3.12); this is Slicer "
                f"{version}: install Slicer {hi[0]}.{hi[1]} from download.slicer.org to use the module")
    return None


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


def module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package is missing, or the module was blocked (sys.modules[x] = None)
        return False


def _version_tuple(text: str) -> tuple[int, ...]:
    """Release part of a PEP 440 version ('2.4.6', '6.0.3', '2.0.0rc1' -> (2, 0, 0)), for comparisons."""
    parts = []
    for p in text.split("+", 1)[0].split("."):
        m = re.match(r"\d+", p)
        if m is None:
            break
        parts.append(int(m.group()))
        if m.group() != p:
            break
    return tuple(parts)


def _cmp(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    n = max(len(a), len(b))
    a, b = a + (0,) * (n - len(a)), b + (0,) * (n - len(b))
    return (a > b) - (a < b)


def version_satisfies(installed: str, spec: str) -> bool:
    """True when ``installed`` meets every clause of ``spec`` (e.g. '>=6.0,<7'); ==, !=, >=, <=, >, <, ~= ."""
    have = _version_tuple(installed)
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        m = re.match(r"(~=|==|!=|>=|<=|>|<)\s*([0-9][0-9A-Za-z.*+!-]*)$", clause)
        if m is None:
            continue  # an operator we do not model: pip decides
        op, ver = m.groups()
        if ver.endswith(".*"):
            want = _version_tuple(ver[:-2])
            same = have[: len(want)] == want
            if (op == "==" and not same) or (op == "!=" and same):
                return False
            continue
        want = _version_tuple(ver)
        c = _cmp(have, want)
        ok = {"==": c == 0, "!=": c != 0, ">=": c >= 0, "<=": c <= 0, ">": c > 0, "<": c < 0,
              "~=": c >= 0 and have[: max(len(want) - 1, 1)] == want[: max(len(want) - 1, 1)]}[op]
        if not ok:
            return False
    return True


def installed_version(req: str) -> str | None:
    """Installed version of the requirement's distribution (None when absent or without metadata)."""
    from importlib import metadata

    try:
        return metadata.version(requirement_name(req))
    except metadata.PackageNotFoundError:
        return None


def missing(requirements: Iterable[str]) -> list[str]:
    """Requirements whose module cannot be imported, or whose installed version is outside the bounds."""
    out = []
    for r in requirements:
        if not module_available(import_name(r)):
            out.append(r)
            continue
        spec = r[len(requirement_name(r)):].split(";", 1)[0].strip()
        if spec.startswith("["):
            spec = spec.split("]", 1)[-1].strip()
        have = installed_version(r)
        if spec and have is not None and not version_satisfies(have, spec):
            out.append(r)
    return out


def radiomics_available() -> bool:
    return module_available("radiomics")


def write_constraints(folder: str | Path | None = None, packages: Iterable[str] = BUNDLED_PINNED) -> Path:
    """A pip constraints file pinning the installed (bundled) numpy / scipy / SimpleITK: ``name==version``."""
    from importlib import metadata

    lines = ["# written by HER2Radiomics: keep Slicer's own packages as they are"]
    for name in packages:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:  # built by Slicer's superbuild without pip metadata: the module's own
            try:
                version = str(importlib.import_module(name).__version__)
            except (ImportError, AttributeError):
                continue
        lines.append(f"{name}=={version}")
    folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="her2radiomics-pip-"))
    path = folder / "constraints.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def ensure(
    requirements: Iterable[str],
    confirm: Callable[[str], bool],
    install: Callable[[list[str]], None],
    need_radiomics: bool = True,
    testing: bool = False,
) -> list[str]:
    """Install missing requirements after ``confirm`` agreed; returns what was installed.

    UserError when the user declines, and when pyradiomics (SlicerRadiomics) is missing;
    :class:`DependenciesSkipped` in testing mode when something is missing (nothing is installed).
    """
    todo = missing(requirements)
    if todo and testing:
        names = ", ".join(requirement_name(r) for r in todo)
        raise DependenciesSkipped(f"testing mode: {names} not installed and not installed now; skipping the steps that need them")
    if todo:
        names = ", ".join(requirement_name(r) for r in todo)
        question = (
            f"HER2Radiomics needs these Python packages, which are not installed yet: {names}. "
            "Install them now with pip? (This downloads them from the Python Package Index and may take a few minutes.)"
        )
        if not confirm(question):
            raise UserError(f"HER2Radiomics cannot run without {names}; accept the installation or install them with pip")
        install(todo)
        importlib.invalidate_caches()
        still = missing(todo)
        if still:
            raise UserError(f"installing {', '.join(requirement_name(r) for r in still)} failed; see the Python console")
    if need_radiomics and not radiomics_available():
        if testing:
            raise DependenciesSkipped(f"testing mode: {RADIOMICS_MISSING}")
        raise UserError(RADIOMICS_MISSING)
    return todo
