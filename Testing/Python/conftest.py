"""Shared pytest fixtures: real data from ../shared/data (skipped when absent), a CLI runner, and the Slicer
module file imported headless."""

from __future__ import annotations

import importlib
import locale
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PKG_DIR = REPO / "HER2Radiomics"
SHARED_DATA = Path(os.environ.get("HER2_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """Path into ../shared/data; the calling test is skipped when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not available: {p}")
    return p


@pytest.fixture
def small_params(tmp_path: Path) -> Path:
    """A small pyradiomics parameter file (features_synth.SMALL_PARAMS: few features, fast) written into tmp_path."""
    from features_synth import SMALL_PARAMS

    p = tmp_path / "small.yaml"
    p.write_text(SMALL_PARAMS)
    return p


@pytest.fixture
def breast1() -> tuple[Path, Path]:
    d = shared_path("pyradiomics_breast1")
    return d / "breast1_image.nrrd", d / "breast1_label.nrrd"


@pytest.fixture
def slicer_module(monkeypatch):
    """``HER2Radiomics.py`` (the scripted module) imported on slicer-core, which lacks Qt and Slicer's scripted-module
    classes: the stand-ins of ``slicer_fakes.install_module_fakes`` are installed for the test (and removed after)."""
    pytest.importorskip("slicer")
    from slicer_fakes import install_module_fakes

    install_module_fakes(monkeypatch)
    monkeypatch.delitem(sys.modules, "HER2Radiomics", raising=False)  # imported now, on these fakes
    return importlib.import_module("HER2Radiomics")


_START_CTYPE = locale.setlocale(locale.LC_CTYPE)


@pytest.fixture(autouse=True)
def _keep_the_locale():
    """Restore LC_CTYPE after every test: a native library called during one test reset it to "C", after which
    every later text read without an explicit encoding (ours pass one; pytest's and some libraries' do not) decoded
    as ASCII and failed on "±" or "≤" in our outputs."""
    yield
    if locale.setlocale(locale.LC_CTYPE) != _START_CTYPE:
        locale.setlocale(locale.LC_CTYPE, _START_CTYPE)


def run_cli(*args: str | os.PathLike[str], cwd: str | os.PathLike[str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``python -m her2radiomics ARGS`` on this checkout's code; returns the completed process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PKG_DIR) + os.pathsep + env.get("PYTHONPATH", "")
    # UTF-8 both ways, whatever the locale: a library that resets LC_CTYPE to "C" in this process made the text
    # decoding ASCII, and an output with "±" or "≤" then failed with UnicodeDecodeError
    env["PYTHONUTF8"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "her2radiomics", *map(str, args)],
        capture_output=True, encoding="utf-8", cwd=cwd, env=env, timeout=timeout,
    )
