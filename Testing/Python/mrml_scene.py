"""Headless MRML scene fixture on slicer-core (real MRML classes, no Qt, no Slicer application).

slicer-core gives the MRML library, the module logics and ``slicer.util`` but not ``slicer.app``,
``slicer.modules`` or ``slicer.mrmlScene``. :func:`new_scene` builds what the Slicer application
would: a ``vtkMRMLScene`` with an application logic and the Colors, Volumes and Segmentations
module logics registered on it, assigns it to ``slicer.mrmlScene``, and exposes the logics through a
minimal ``slicer.modules.<name>.logic()`` namespace so that ``slicer.util`` helpers that go through
``slicer.modules`` (``arrayFromSegmentBinaryLabelmap``, ``updateSegmentBinaryLabelmapFromArray``)
work as in Slicer. Use the ``mrml_scene`` fixture (``pytest_plugins = ["mrml_scene"]`` or import it).
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import pytest

slicer = pytest.importorskip("slicer", reason="slicer-core is not installed (pip install slicer-core)")


@dataclass
class SceneContext:
    scene: object
    app_logic: object
    colors: object
    volumes: object
    segmentations: object
    tables: object
    plots: object

    def close(self) -> None:
        for lg in (self.plots, self.tables, self.segmentations, self.volumes, self.colors):
            lg.SetMRMLScene(None)
        self.scene.Clear(True)


def _module(logic):
    return types.SimpleNamespace(logic=lambda: logic)


def new_scene() -> SceneContext:
    """A fresh scene with the logics registered, set as ``slicer.mrmlScene``."""
    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    logics = {}
    for name, cls in (
        # vtkMRMLColorLogic: default colour tables without Slicer's share/ColorFiles folder, which
        # slicer-core does not ship (vtkSlicerColorLogic would log "HomeDirectory is not set")
        ("colors", slicer.vtkMRMLColorLogic),
        ("volumes", slicer.vtkSlicerVolumesLogic),
        ("segmentations", slicer.vtkSlicerSegmentationsModuleLogic),
        ("tables", slicer.vtkSlicerTablesLogic),
        ("plots", slicer.vtkSlicerPlotsLogic),
    ):
        lg = cls()
        lg.SetMRMLApplicationLogic(app_logic)
        lg.SetMRMLScene(scene)
        logics[name] = lg
    slicer.mrmlScene = scene
    slicer.modules = types.SimpleNamespace(**{k: _module(v) for k, v in logics.items()})
    return SceneContext(scene, app_logic, **logics)


@pytest.fixture
def mrml_scene():
    """Fresh headless MRML scene (``slicer.mrmlScene`` set for the duration of the test)."""
    had_scene, had_modules = hasattr(slicer, "mrmlScene"), hasattr(slicer, "modules")
    old_scene, old_modules = getattr(slicer, "mrmlScene", None), getattr(slicer, "modules", None)
    ctx = new_scene()
    try:
        yield ctx
    finally:
        ctx.close()
        if had_scene:
            slicer.mrmlScene = old_scene
        else:
            del slicer.mrmlScene
        if had_modules:
            slicer.modules = old_modules
        else:
            del slicer.modules
