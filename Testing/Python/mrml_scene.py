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

    def segment_editor(self, editor_node, volume_node):
        """See :func:`segment_editor`."""
        return segment_editor(self, editor_node, volume_node)

    @staticmethod
    def edit_segment(editor, segmentation_node, segment_id: str, box_mask, mode: str = "remove") -> None:
        """See :func:`edit_segment`."""
        edit_segment(editor, segmentation_node, segment_id, box_mask, mode)

    def close(self) -> None:
        self.scene.Clear(True)
        # the segmentations logic is not detached: detaching it warns about a missing subject hierarchy
        for lg in (self.plots, self.tables, self.volumes, self.colors):
            lg.SetMRMLScene(None)


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


@pytest.fixture
def vtk_messages():
    """Every VTK/MRML warning and error logged during the test, as text (a vtkStringOutputWindow): e.g. the
    "... method is deprecated, use ... instead" that MRML nodes log for the names Slicer renamed."""
    import vtk

    old = vtk.vtkOutputWindow.GetInstance()
    window = vtk.vtkStringOutputWindow()
    vtk.vtkOutputWindow.SetInstance(window)
    try:
        yield window
    finally:
        vtk.vtkOutputWindow.SetInstance(old)


# ------------------------------------------------------------------------------------------------
# Segment Editor (vtkSlicerSegmentEditorLogic: the C++ logic behind qMRMLSegmentEditorWidget)
# ------------------------------------------------------------------------------------------------
def segment_editor(ctx: SceneContext, editor_node, volume_node):
    """A vtkSlicerSegmentEditorLogic driving ``editor_node`` on ``volume_node``, as the editor widget does."""
    logic = slicer.vtkSlicerSegmentEditorLogic()
    logic.SetMRMLScene(ctx.scene)
    logic.SetMRMLApplicationLogic(ctx.app_logic)
    logic.SetSegmentEditorNode(editor_node)
    logic.SetSourceVolumeNode(volume_node)
    if not logic.ResetModifierLabelmapToDefault():
        raise RuntimeError("segment editor: no reference geometry")
    return logic


def edit_segment(editor, segmentation_node, segment_id: str, box_mask, mode: str = "remove") -> None:
    """Apply one brush-like edit: ``box_mask`` ((k, j, i) 0/1 array on the source volume grid).

    ``mode`` is "remove" (ModificationModeRemove, the Erase effect), "add" (Paint) or "set".
    """
    from vtk.util import numpy_support

    editor.ResetModifierLabelmapToDefault()
    modifier = editor.GetModifierLabelmap()
    arr = numpy_support.vtk_to_numpy(modifier.GetPointData().GetScalars()).reshape(tuple(reversed(modifier.GetDimensions())))
    if arr.shape != box_mask.shape:
        raise ValueError(f"modifier labelmap {arr.shape} is not on the volume grid {box_mask.shape}")
    arr[:] = box_mask.astype(arr.dtype)
    modifier.Modified()
    modes = {
        "remove": editor.ModificationModeRemove,
        "add": editor.ModificationModeAdd,
        "set": editor.ModificationModeSet,
    }
    editor.SetCurrentSegmentID(segment_id)
    editor.SaveStateForUndo()
    editor.ModifySegmentByLabelmap(segmentation_node, segment_id, modifier, modes[mode], modifier.GetExtent(), True, False)


# ------------------------------------------------------------------------------------------------
# Model cards for tests (docs/developer/api.md contract, checksum over the canonical JSON)
# ------------------------------------------------------------------------------------------------
def clinical_models() -> dict:
    """A card's ``clinical_models`` section (clinical.card_section's layout) with fixed coefficients, built without
    pandas (the fresh-Slicer tests use it): combined = rad-score + age + stage (levels 1-3, reference 1), clinical =
    age + stage; the combined model's nomogram stored as card_section stores it."""
    from her2radiomics import nomogram

    age = {"name": "age", "kind": "numeric", "columns": ["age"], "impute": 55.0}
    stage = {"name": "stage", "kind": "categorical", "levels": ["1", "2", "3"], "reference": "1",
             "columns": ["stage=2", "stage=3"], "impute": "2"}
    ranges = {"rad_score": [-2.5, 3.0], "age": [28.0, 81.0], "stage=2": [0.0, 1.0], "stage=3": [0.0, 1.0]}
    combined = {"kind": "combined", "terms": ["rad_score", "age", "stage=2", "stage=3"],
                "coefficients": [1.1, 0.03, 0.4, 0.9], "intercept": -2.2, "variables": [age, stage], "ranges": ranges}
    clinical = {"kind": "clinical", "terms": ["age", "stage=2", "stage=3"], "coefficients": [0.04, 0.5, 1.0],
                "intercept": -2.9, "variables": [age, stage], "ranges": {k: ranges[k] for k in ("age", "stage=2", "stage=3")}}
    section = {"requested": ["age", "stage:cat"], "encoding": [age, stage], "combined": combined, "clinical": clinical}
    section["nomogram"] = nomogram.card_scales({"clinical_models": section})  # none stored yet: from the JSON
    return section


def model_card(task: str, features: list[str], mean: list[float], scale: list[float], coef: list[float],
               intercept: float, phash: str | None = None, clinical: dict | None = None) -> dict:
    """A valid model card with the given linear model (GDI 'warning' on its test split); ``clinical``: its
    ``clinical_models`` section (:func:`clinical_models`), as a card trained with --clinical has."""
    import hashlib
    import json

    event, ref = ("positive", ["low", "zero"]) if task == "stage1" else ("low", ["zero"])
    metrics = {"n": 60, "n_event": 20, "auc": 0.85, "auc_ci": [0.75, 0.95], "accuracy": 0.8, "sensitivity": 0.8, "specificity": 0.8}
    card = {
        "format": "her2radiomics.model/1", "task": task, "classes": {"event": event, "reference": ref},
        "feature_set": "intra+peri3", "features": list(features), "scaler": {"mean": list(mean), "scale": list(scale)},
        "coefficients": list(coef), "intercept": float(intercept), "cutoff": 0.5,
        "selection": {"method": "lasso", "C": 1.0, "candidates": len(features), "icc_threshold": 0.75,
                      "n_after_icc": len(features), "n_after_mwu": len(features), "n_selected": len(features)},
        "metrics": {"train": metrics, "test": {**metrics, "auc": 0.70}},
        "gdi": {"test": {"value": (0.85 - 0.70) / 0.85, "zone": "warning"}},
        "training_range": {"min": [m - 10 * s for m, s in zip(mean, scale, strict=True)],
                           "max": [m + 10 * s for m, s in zip(mean, scale, strict=True)]},
        "provenance": {"software": "test", "created": "2026-01-01T00:00:00Z", "parameter_file_hash": phash,
                       "training_table_hash": "sha256:0", "seed": 0, "case_ids": {"train": ["a"], "test": ["b"]}},
        "intended_use": "Synthetic test model, not for clinical use.",
    }
    if clinical is not None:
        card["clinical_models"] = clinical
    body = json.dumps(card, sort_keys=True, separators=(",", ":"))
    card["checksum"] = "sha256:" + hashlib.sha256(body.encode("utf-8")).hexdigest()
    return card
