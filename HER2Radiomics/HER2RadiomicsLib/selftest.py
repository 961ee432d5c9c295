"""The whole panel workflow on a generated phantom, as the module's self-test runs it inside Slicer.

``HER2RadiomicsTest`` (HER2Radiomics.py, registered with ``slicer_add_python_unittest``) calls
:func:`run_workflow` with ``delayDisplay`` as ``say``; the pytest suite calls the same function on
slicer-core, so the self-test's logic is exercised headless too. Steps: phantom -> volume node ->
lesion painted with the Segment Editor logic (vtkSlicerSegmentEditorLogic on Slicer >= 5.10, an equivalent
SetBinaryLabelmapToSegment stroke on 5.8) -> shells with automatic exclusions -> part of the
pectoralis erased (ModificationModeRemove) -> recompute (erased voxels return to the shells) ->
undo -> features -> prediction with the shipped demo cards -> save and reload the session.
With ``full=False`` (testing mode on a build server without PyYAML / pandas / pyradiomics) the features
and the prediction are skipped: everything else needs only the packages Slicer bundles.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from her2radiomics.modelcard import parameter_file_for_card

from . import mrml_bridge, session
from .logic import PanelLogic, default_model_cards, table_rows


def _arr(img: sitk.Image) -> np.ndarray:
    return sitk.GetArrayViewFromImage(img).astype(bool)


def _edit(editor, segmentation_node, name: str, mask: np.ndarray, remove: bool, volume_node=None) -> None:
    """One Segment Editor stroke: Paint (add) or Erase (remove) ``mask`` on the source volume grid.

    ``editor`` is a ``vtkSlicerSegmentEditorLogic`` (Slicer >= 5.10,
    Modules/Loadable/Segmentations/Logic/vtkSlicerSegmentEditorLogic.h). Slicer 5.8 has no such class (the
    editing logic lived inside qMRMLSegmentEditorWidget), so with ``editor=None`` the same stroke is written
    with ``vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment`` (union / difference, then replace).
    """
    if editor is None:
        current = mrml_bridge.mask_from_segment(segmentation_node, name, volume_node)
        arr = _arr(current)
        new = sitk.GetImageFromArray((arr & ~mask if remove else arr | mask).astype(np.uint8))
        new.CopyInformation(current)
        mrml_bridge.set_segment_from_mask(segmentation_node, name, new)
        return
    from vtk.util import numpy_support

    editor.ResetModifierLabelmapToDefault()
    modifier = editor.GetModifierLabelmap()
    arr = numpy_support.vtk_to_numpy(modifier.GetPointData().GetScalars()).reshape(mask.shape)
    arr[:] = mask
    modifier.Modified()
    sid = mrml_bridge.segment_id(segmentation_node, name)
    mode = editor.ModificationModeRemove if remove else editor.ModificationModeAdd
    editor.ModifySegmentByLabelmap(segmentation_node, sid, modifier, mode, modifier.GetExtent(), True, False)


def segment_editor_logic(scene, editor_node, volume_node, app_logic=None):
    """A ``vtkSlicerSegmentEditorLogic`` set up like the editor widget's, or None on Slicer < 5.10 (see _edit)."""
    import slicer

    cls = getattr(slicer, "vtkSlicerSegmentEditorLogic", None)
    if cls is None:
        return None
    editor = cls()
    editor.SetMRMLScene(scene)
    if app_logic is not None:
        editor.SetMRMLApplicationLogic(app_logic)
    editor.SetSegmentEditorNode(editor_node)
    editor.SetSourceVolumeNode(volume_node)
    return editor


def run_workflow(
    say: Callable[[str], None] = print,
    scene=None,
    app_logic=None,
    params: Any = None,
    cards: Mapping[str, str | Path] | None = None,
    workdir: str | Path | None = None,
    full: bool = True,
) -> dict[str, Any]:
    """Run every step and check it; returns the numbers a reviewer may want to see. AssertionError on failure."""
    import slicer

    from her2radiomics.phantom import make_phantom
    from her2radiomics.regions import build_regions

    scene = scene or slicer.mrmlScene
    say("Generating a breast DCE-MRI phantom")
    kw = {"seed": 0, "size": (128, 128, 48), "spacing": (0.95, 0.95, 1.8), "lesion_radius_mm": 4.0}
    try:  # a lesion 2.5 mm in front of the pectoralis, so that its shells meet the exclusion
        ph = make_phantom(**kw, lesion_gap_mm=2.5)
    except TypeError:  # a phantom without that option
        ph = make_phantom(**kw)
    volume = mrml_bridge.volume_node_from_image(ph.image, "HER2 phantom", scene=scene)
    logic = PanelLogic(scene)
    seg = logic.setupSegmentation(volume)

    say("Painting the lesion with the Segment Editor")
    if app_logic is None and hasattr(slicer, "app"):
        app_logic = slicer.app.applicationLogic()
    editor = segment_editor_logic(scene, logic.segmentEditorNode(seg, volume), volume, app_logic)
    lesion = _arr(ph.lesion)
    _edit(editor, seg, "lesion", lesion, remove=False, volume_node=volume)
    assert np.array_equal(_arr(mrml_bridge.mask_from_segment(seg, "lesion", volume)), lesion), "painted lesion differs"

    say("Generating peritumoral shells with automatic exclusions")
    regions = logic.generateShells(volume, seg, (1, 3, 5), auto_exclusions=True)
    shells = {n: _arr(mrml_bridge.mask_from_segment(seg, n, volume)) for n in ("peri1", "peri3", "peri5")}
    assert shells["peri1"].any() and not (shells["peri5"] & lesion).any()
    assert not (shells["peri1"] & ~shells["peri3"]).any() and not (shells["peri3"] & ~shells["peri5"]).any(), "not nested"
    assert len(table_rows(logic.regionStatsTable())) == 4

    say("Checking the pectoralis: painting muscle the detector missed next to the lesion")
    ideal = build_regions(ph.image, ph.lesion, (1, 3, 5), auto_exclusions=False)
    reach = _arr(ideal.masks["peri5"])
    missed = _arr(ph.pectoralis) & reach & ~_arr(mrml_bridge.mask_from_segment(seg, "pectoralis", volume))
    if missed.any():
        _edit(editor, seg, "pectoralis", missed, remove=False, volume_node=volume)
        logic.generateShells(volume, seg, (1, 3, 5))
    shells = {n: _arr(mrml_bridge.mask_from_segment(seg, n, volume)) for n in ("peri1", "peri3", "peri5")}

    say("Erasing part of the pectoralis near the lesion, then recomputing")
    excl = {n: _arr(mrml_bridge.mask_from_segment(seg, n, volume)) for n in ("air", "pectoralis")}
    erase = reach.copy()
    erase[:, :, : int(np.argwhere(lesion)[:, 2].mean())] = False  # one side only: part of the exclusion stays
    _edit(editor, seg, "pectoralis", erase, remove=True, volume_node=volume)
    logic.generateShells(volume, seg, (1, 3, 5))
    erased = excl["pectoralis"] & erase
    regained = 0
    for name, before in shells.items():
        now = _arr(mrml_bridge.mask_from_segment(seg, name, volume))
        expected = erased & _arr(ideal.masks[name]) & ~excl["air"]
        assert np.array_equal(now & ~before, expected), f"{name} did not regain exactly the erased voxels"
        regained += int(expected.sum())
    assert regained > 0, "no erased voxel came back into the shells"

    say("Undo restores the previous shells")
    assert logic.undo(seg)
    for name, before in shells.items():
        assert np.array_equal(_arr(mrml_bridge.mask_from_segment(seg, name, volume)), before), f"undo {name}"
    logic.generateShells(volume, seg, (1, 3, 5))

    values: dict[str, float] = {}
    p: dict[str, Any] | None = None
    if full:
        cards = dict(cards) if cards else {k: str(v) for k, v in default_model_cards().items()}
        assert "stage1" in cards, "no stage-1 demo model card in Resources/Models"
        if params is None:  # the parameter file the cards were trained with (the default file when none matches)
            params = parameter_file_for_card(cards["stage1"])
        say(f"Extracting features ({Path(str(params)).name if params else 'default parameter file'})")
        values = logic.extractFeatures(volume, seg, params)
        assert values and all(k.split("_", 1)[0] in ("intra", "peri1", "peri3", "peri5") for k in values)
        logic.featuresTable()

        say("Predicting with the model cards")
        pred = logic.predict(cards["stage1"], cards.get("stage2"), volume_node=volume, segmentation_node=seg)
        p = pred.row
        total = p["p_positive"] + (p["p_low"] or 0.0) + (p["p_zero"] or 0.0)
        assert abs(total - 1.0) < 1e-9 or "stage2" not in cards
        assert pred.chart_node.GetNumberOfPlotSeriesNodes() >= 1
    else:
        say("Skipping features and prediction (PyYAML / pandas / pyradiomics not installed in testing mode)")

    say("Saving and reloading the session")
    out = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="her2radiomics-selftest-"))
    session.save_session(out, logic, volume, seg)
    reloaded, audit = session.load_session(out, scene)
    for name in ("lesion", "peri1", "peri3", "peri5", "air", "pectoralis"):
        a = _arr(mrml_bridge.mask_from_segment(reloaded, name, volume))
        b = _arr(mrml_bridge.mask_from_segment(seg, name, volume))
        assert np.array_equal(a, b), f"reloaded {name} differs"
    say("HER2Radiomics workflow test passed")
    return {"regained_voxels": regained, "painted_voxels": int(missed.sum()), "n_features": len(values), "prediction": p,
            "parameter_file": str(params) if params else None,
            "session": str(out), "audit": audit, "regions": regions.stats}
