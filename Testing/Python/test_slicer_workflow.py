"""The radiologist's workflow on real MRML (slicer-core): lesion -> shells -> exclusions -> erase -> recompute -> undo.

References: the core ``build_regions`` on plain arrays (the shells the panel must show), and set
algebra on the erased voxels (what must come back into each shell). The erase is done with Slicer's
own ``vtkSlicerSegmentEditorLogic`` (ModificationModeRemove: the Erase effect), not with our bridge.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from her2radiomics.regions import build_regions
from HER2RadiomicsLib import mrml_bridge as mb
from HER2RadiomicsLib import segments
from HER2RadiomicsLib.logic import PanelLogic

slicer = pytest.importorskip("slicer")
pytestmark = pytest.mark.slicer
pytest_plugins = ["mrml_scene"]

DISTANCES = (1.0, 3.0, 5.0)


def _arr(img: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(img).astype(bool)


def _seg_arr(seg, name, vol) -> np.ndarray:
    return _arr(mb.mask_from_segment(seg, name, vol))


def _lesion_near_pectoralis(ph, radius_mm: float = 3.0) -> np.ndarray:
    """The phantom's lesion if its 5 mm shell reaches the pectoralis; else a sphere placed 2.5 mm in front of it.

    The test needs shells that touch the pectoralis, otherwise erasing it could not change them.
    """
    les = _arr(ph.lesion)
    pect = _arr(ph.pectoralis)
    air = _arr(ph.air)
    sp = tuple(reversed(ph.image.GetSpacing()))
    if les.any():
        d_les = ndimage.distance_transform_edt(~les, sampling=sp)
        if (pect & (d_les <= 4.0)).any():
            return les
    d_pect = ndimage.distance_transform_edt(~pect, sampling=sp)
    d_air = ndimage.distance_transform_edt(~air, sampling=sp)
    ok = ~pect & ~air & (d_air > radius_mm + 8.0)
    score = np.where(ok, np.abs(d_pect - (radius_mm + 2.5)), np.inf)
    c = np.unravel_index(np.argmin(score), score.shape)
    zz, yy, xx = np.indices(les.shape)
    r2 = ((zz - c[0]) * sp[0]) ** 2 + ((yy - c[1]) * sp[1]) ** 2 + ((xx - c[2]) * sp[2]) ** 2
    return r2 <= radius_mm**2


def _names_colors(seg) -> list[tuple[str, tuple[float, ...]]]:
    s = seg.GetSegmentation()
    return [(s.GetNthSegment(i).GetName(), tuple(round(c, 6) for c in s.GetNthSegment(i).GetColor())) for i in range(s.GetNumberOfSegments())]


@pytest.fixture(scope="module")
def phantom():
    from her2radiomics.phantom import make_phantom

    kw = {"seed": 2, "size": (96, 96, 40), "spacing": (1.6, 1.6, 2.0), "lesion_radius_mm": 4.0}
    try:
        return make_phantom(**kw, lesion_gap_mm=2.0)  # lesion close to the pectoralis
    except TypeError:
        return make_phantom(**kw)


def test_radiologist_workflow(mrml_scene, phantom):
    ph = phantom
    vol = mb.volume_node_from_image(ph.image, "DCE phase 2")
    logic = PanelLogic()
    # a segment the user made before: must survive every step untouched
    seg = mrml_scene.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "case")
    seg.SetReferenceImageGeometryParameterFromVolumeNode(vol)
    other = np.zeros(_arr(ph.lesion).shape, bool)
    other[:3, :3, :3] = True
    mb.set_segment_from_mask(seg, "my notes", mb_mask(other, ph.image))
    seg = logic.setupSegmentation(vol, seg, DISTANCES)
    plan = [(n, tuple(round(c, 6) for c in col)) for n, col, _ in segments.segment_plan(DISTANCES)]
    assert _names_colors(seg) == [_names_colors(seg)[0], *plan]  # "my notes" first, then ours in order

    # 1. the radiologist paints the lesion with the Segment Editor (Paint = ModificationModeAdd)
    editor_node = logic.segmentEditorNode(seg, vol)
    assert editor_node.GetOverwriteMode() == editor_node.OverwriteNone
    editor = mrml_scene.segment_editor(editor_node, vol)
    lesion = _lesion_near_pectoralis(ph)
    mrml_scene.edit_segment(editor, seg, mb.segment_id(seg, "lesion"), lesion, mode="add")
    np.testing.assert_array_equal(_seg_arr(seg, "lesion", vol), lesion)

    # 2. generate shells with automatic exclusions: the segments equal the core on arrays
    image = mb.image_from_volume_node(vol)
    regions = logic.generateShells(vol, seg, DISTANCES, auto_exclusions=True)
    ref = build_regions(image, mb_mask(lesion, image), DISTANCES, auto_exclusions=True)
    for name in ["peri1", "peri3", "peri5", "air", "pectoralis"]:
        np.testing.assert_array_equal(_seg_arr(seg, name, vol), _arr(ref.masks[name]), err_msg=name)
    assert regions.stats == ref.stats
    auto_pect = _seg_arr(seg, "pectoralis", vol)
    air = _seg_arr(seg, "air", vol)
    assert logic.state.exclusion_states == {"air": "auto", "pectoralis": "auto"}
    names_colors = _names_colors(seg)

    # 2b. the radiologist checks the pectoralis and paints muscle the detector missed near the lesion
    #     (phantom truth within 5 mm); the test does not depend on how good the detector is
    ideal = build_regions(image, mb_mask(lesion, image), DISTANCES, auto_exclusions=False)
    near = _arr(ideal.masks["peri5"])
    missed = _arr(ph.pectoralis) & near & ~auto_pect
    if missed.any():
        mrml_scene.edit_segment(editor, seg, mb.segment_id(seg, "pectoralis"), missed, mode="add")
        logic.generateShells(vol, seg, DISTANCES, auto_exclusions=True)
    pect = _seg_arr(seg, "pectoralis", vol)
    np.testing.assert_array_equal(pect, auto_pect | missed)
    assert (pect & near).any(), "the pectoralis must reach the lesion's shells in this phantom"
    shells_before = {n: _seg_arr(seg, n, vol) for n in ["peri1", "peri3", "peri5"]}
    ref1 = build_regions(image, mb_mask(lesion, image), DISTANCES, air=mb_mask(air, image), pectoralis=mb_mask(pect, image))
    for name, arr in shells_before.items():
        np.testing.assert_array_equal(arr, _arr(ref1.masks[name]), err_msg=name)
    undo_depth = 2 if missed.any() else 1

    # 3. erase part of the pectoralis (the voxels within 5 mm of the lesion, on one side) with the Erase effect
    half = np.zeros_like(near)
    cx = int(np.round(np.argwhere(lesion)[:, 2].mean()))
    half[:, :, cx:] = True
    erase = near & half
    mrml_scene.edit_segment(editor, seg, mb.segment_id(seg, "pectoralis"), erase, mode="remove")
    edited = _seg_arr(seg, "pectoralis", vol)
    np.testing.assert_array_equal(edited, pect & ~erase)
    erased = pect & erase
    assert erased.sum() > 0
    np.testing.assert_array_equal(_seg_arr(seg, "lesion", vol), lesion)  # other segments untouched by the editor

    # 4. recompute: the edited pectoralis is respected, shells regain exactly the erased voxels within reach
    logic.generateShells(vol, seg, DISTANCES, auto_exclusions=True)
    np.testing.assert_array_equal(_seg_arr(seg, "pectoralis", vol), edited)  # the edit is kept, not re-detected
    assert logic.state.exclusion_states["pectoralis"] == "auto, edited"
    ref2 = build_regions(image, mb_mask(lesion, image), DISTANCES, air=mb_mask(air, image), pectoralis=mb_mask(edited, image))
    regained_total = 0
    for name in ["peri1", "peri3", "peri5"]:
        now = _seg_arr(seg, name, vol)
        np.testing.assert_array_equal(now, _arr(ref2.masks[name]), err_msg=name)
        regained = now & ~shells_before[name]
        expected = erased & _arr(ideal.masks[name]) & ~air
        np.testing.assert_array_equal(regained, expected, err_msg=name)
        assert not (shells_before[name] & ~now).any(), f"{name} lost voxels"
        regained_total += int(regained.sum())
    assert regained_total > 0
    assert _arr(ref2.masks["peri5"]).sum() > shells_before["peri5"].sum()
    assert _names_colors(seg) == names_colors  # names, colours and order stable
    np.testing.assert_array_equal(_seg_arr(seg, "my notes", vol), other)

    # 5. undo: back to the shells before the recompute (edit kept), then to before the first Generate
    assert logic.canUndo(seg)
    assert logic.undo(seg)
    for name, arr in shells_before.items():
        np.testing.assert_array_equal(_seg_arr(seg, name, vol), arr, err_msg=f"undo {name}")
    np.testing.assert_array_equal(_seg_arr(seg, "pectoralis", vol), edited)
    for _ in range(undo_depth):
        assert logic.undo(seg)
    for name in ["peri1", "peri3", "peri5", "air", "pectoralis"]:
        assert not _seg_arr(seg, name, vol).any(), f"undo to empty {name}"
    np.testing.assert_array_equal(_seg_arr(seg, "lesion", vol), lesion)
    assert _names_colors(seg) == names_colors


def mb_mask(arr: np.ndarray, ref: sitk.Image) -> sitk.Image:
    m = sitk.GetImageFromArray(arr.astype(np.uint8))
    m.CopyInformation(ref)
    return m


def test_painting_lesion_over_shells_never_erases_them(mrml_scene, phantom):
    """The module's editor node allows overlap: painting the lesion into a shell leaves the shell intact."""
    vol = mb.volume_node_from_image(phantom.image, "v")
    logic = PanelLogic()
    seg = logic.setupSegmentation(vol)
    lesion = _lesion_near_pectoralis(phantom)
    mb.set_segment_from_mask(seg, "lesion", mb_mask(lesion, phantom.image))
    logic.generateShells(vol, seg, DISTANCES, auto_exclusions=False)
    peri3 = _seg_arr(seg, "peri3", vol)
    node = logic.segmentEditorNode(seg, vol)
    node.SetOverwriteMode(node.OverwriteAllSegments)  # a user switched it in the editor...
    node = logic.segmentEditorNode(seg, vol)  # ...the module puts 'allow overlap' back
    editor = mrml_scene.segment_editor(node, vol)
    mrml_scene.edit_segment(editor, seg, mb.segment_id(seg, "lesion"), peri3, mode="add")
    np.testing.assert_array_equal(_seg_arr(seg, "peri3", vol), peri3)
    np.testing.assert_array_equal(_seg_arr(seg, "lesion", vol), lesion | peri3)


def test_changed_distances_replace_only_our_shells(mrml_scene, phantom):
    vol = mb.volume_node_from_image(phantom.image, "v")
    logic = PanelLogic()
    seg = logic.setupSegmentation(vol)
    lesion = _lesion_near_pectoralis(phantom)
    mb.set_segment_from_mask(seg, "lesion", mb_mask(lesion, phantom.image))
    mb.set_segment_from_mask(seg, "peri8", mb_mask(lesion, phantom.image))  # user-made, same name pattern
    logic.generateShells(vol, seg, "2 4", auto_exclusions=False)
    names = [n for n, _ in _names_colors(seg)]
    assert names == ["lesion", "peri2", "peri4", "peri8", "air", "pectoralis"]  # ours in plan order, peri8 in its slot
    ref = build_regions(phantom.image, mb_mask(lesion, phantom.image), (2.0, 4.0), auto_exclusions=False)
    for name in ("peri2", "peri4"):
        np.testing.assert_array_equal(_seg_arr(seg, name, vol), _arr(ref.masks[name]))
    np.testing.assert_array_equal(_seg_arr(seg, "peri8", vol), lesion)  # not ours: untouched
    colors = dict(_names_colors(seg))
    assert colors["peri2"] == tuple(round(c, 6) for c in segments.shell_color(2.0))


def test_empty_lesion_is_one_clear_error(mrml_scene, phantom):
    from her2radiomics.errors import UserError

    vol = mb.volume_node_from_image(phantom.image, "v")
    logic = PanelLogic()
    seg = logic.setupSegmentation(vol)
    with pytest.raises(UserError, match="'lesion' segment is empty"):
        logic.generateShells(vol, seg)
    with pytest.raises(UserError, match="no input image"):
        logic.setupSegmentation(None)
