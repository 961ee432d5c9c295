"""The panel's DCE section on real MRML (slicer-core): a DCE phantom series as a vtkMRMLSequenceNode (and a
sequence browser, and a multi-component multi-volume) -> pick a phase -> lesion TIC as a plot chart.

References: the phantom's own arrays (the picked phase must be phase N's voxels) and the curve type the
phantom planted (make_dce_phantom meta["dce"]["expected_delayed"]); the plot series must carry one point per
phase. The lesion segment is written with Slicer's own slicer.util.updateSegmentBinaryLabelmapFromArray, not
with our bridge.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from her2radiomics.errors import UserError
from her2radiomics.phantom import make_dce_phantom
from HER2RadiomicsLib import mrml_bridge as mb
from HER2RadiomicsLib.dce_panel import DcePanelLogic
from HER2RadiomicsLib.logic import PanelLogic

slicer = pytest.importorskip("slicer")
pytestmark = pytest.mark.slicer
pytest_plugins = ["mrml_scene"]

GRID = {"size": (64, 64, 20), "spacing": (4.5, 4.5, 6.0), "lesion_radius_mm": 9.0}


@pytest.fixture(scope="module")
def phantoms():
    return {k: make_dce_phantom(3, **GRID, kinetic=k, noise=4.0) for k in ("persistent", "plateau", "washout")}


def _sequence(scene, ph, name="DCE", unit="s"):
    """A sequence node with one scalar volume per phase (index = acquisition time), as Sequences' import makes."""
    seq = scene.AddNewNodeByClass("vtkMRMLSequenceNode", name)
    seq.SetIndexName("time")
    seq.SetIndexUnit(unit)
    for k, img in enumerate(ph.phases):
        vol = slicer.vtkMRMLScalarVolumeNode()
        mb.volume_node_from_image(img, node=vol)
        seq.SetDataNodeAtValue(vol, f"{ph.times_s[k]:g}")
    return seq


def _segmentation_with_lesion(scene, ph, reference_node):
    seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "seg")
    seg.CreateDefaultDisplayNodes()
    seg.SetReferenceImageGeometryParameterFromVolumeNode(reference_node)
    sid = seg.GetSegmentation().AddEmptySegment("lesion", "lesion")
    slicer.util.updateSegmentBinaryLabelmapFromArray(sitk.GetArrayFromImage(ph.lesion).astype(np.uint8), seg, sid,
                                                     reference_node)
    return seg


def _plot_points(chart):
    series = chart.GetNthPlotSeriesNode(0)
    table = series.GetTableNode().GetTable()
    return series, table


@pytest.mark.parametrize("kinetic", ["persistent", "plateau", "washout"])
def test_sequence_phase_and_tic_type(mrml_scene, phantoms, kinetic):
    ph = phantoms[kinetic]
    scene = mrml_scene.scene
    seq = _sequence(scene, ph)
    dce = DcePanelLogic(PanelLogic(scene))
    assert dce.phaseCount(seq) == 6

    vol = dce.pickPhase(seq, 2)
    assert vol.GetScene() is scene and vol.IsA("vtkMRMLScalarVolumeNode")
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(vol), sitk.GetArrayFromImage(ph.phases[2]))
    img = mb.image_from_volume_node(vol)
    np.testing.assert_allclose(img.GetOrigin(), ph.phases[2].GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(img.GetSpacing(), ph.phases[2].GetSpacing(), atol=1e-6)
    assert dce.series.times_s == ph.times_s

    seg = _segmentation_with_lesion(scene, ph, vol)
    result = dce.computeTic(seq, seg)
    rec = result["intra"]
    assert rec["delayed_type"] == ph.meta["dce"]["expected_delayed"] == kinetic
    assert rec["initial_type"] == ph.meta["dce"]["expected_initial"]
    assert kinetic in dce.resultText()

    chart = dce.chart_node
    assert chart.IsA("vtkMRMLPlotChartNode") and chart.GetNumberOfPlotSeriesNodes() == 1
    assert kinetic in chart.GetTitle()
    series, table = _plot_points(chart)
    assert series.IsA("vtkMRMLPlotSeriesNode") and table.GetNumberOfRows() == 6
    assert series.GetXColumnName() == "time_s" and series.GetYColumnName() == "enhancement_pct"
    xs = [table.GetValueByName(i, "time_s").ToDouble() for i in range(6)]
    assert xs == list(ph.times_s)
    # the plotted curve is the lesion's mean curve, by hand from the phantom's arrays
    m = sitk.GetArrayFromImage(ph.lesion) != 0
    means = [float(sitk.GetArrayFromImage(p)[m].mean()) for p in ph.phases]
    ys = [table.GetValueByName(i, "enhancement_pct").ToDouble() for i in range(6)]
    np.testing.assert_allclose(ys, [100 * (v - means[0]) / means[0] for v in means], rtol=1e-9)


@pytest.fixture
def sequences_logic(mrml_scene):
    """The Sequences module's logic on the scene (registers vtkMRMLSequenceBrowserNode, as the application does)."""
    logic = slicer.vtkSlicerSequencesLogic()
    logic.SetMRMLApplicationLogic(mrml_scene.app_logic)
    logic.SetMRMLScene(mrml_scene.scene)
    yield logic
    logic.SetMRMLScene(None)


def test_browser_and_picking_again_reuses_the_node(mrml_scene, sequences_logic, phantoms):
    ph = phantoms["washout"]
    scene = mrml_scene.scene
    seq = _sequence(scene, ph)
    browser = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", "DCE browser")
    browser.SetAndObserveMasterSequenceNodeID(seq.GetID())
    dce = DcePanelLogic(PanelLogic(scene))
    assert dce.phaseCount(browser) == 6
    v2 = dce.pickPhase(browser, 2)
    assert browser.GetSelectedItemNumber() == 2
    v4 = dce.pickPhase(browser, 4)
    assert v4 is v2 and v4.GetName() == "DCE browser phase 4"
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(v4), sitk.GetArrayFromImage(ph.phases[4]))


def test_multivolume_components_and_frame_labels(mrml_scene, phantoms):
    """A multi-volume (MultiVolumeExplorer): one component per phase, times in ms in MultiVolume.FrameLabels."""
    ph = phantoms["plateau"]
    scene = mrml_scene.scene
    stack = np.stack([sitk.GetArrayFromImage(p) for p in ph.phases], axis=-1)   # (z, y, x, phases)
    mv = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "DCE multivolume")
    ref = mb.volume_node_from_image(ph.phases[0], "tmp", scene=scene)
    mv.SetIJKToRASMatrix(_ijk(ref))
    from vtk.util import numpy_support

    data = slicer.vtkImageData() if hasattr(slicer, "vtkImageData") else __import__("vtk").vtkImageData()
    data.SetDimensions(*reversed(stack.shape[:3]))
    scalars = numpy_support.numpy_to_vtk(stack.reshape(-1, stack.shape[-1]).copy(), deep=True)
    data.GetPointData().SetScalars(scalars)
    mv.SetAndObserveImageData(data)
    mv.SetAttribute("MultiVolume.FrameLabels", ",".join(f"{1000 * t:g}" for t in ph.times_s))
    mv.SetAttribute("MultiVolume.FrameIdentifyingDICOMTagUnits", "ms")
    dce = DcePanelLogic(PanelLogic(scene))
    assert dce.phaseCount(mv) == 6
    vol = dce.pickPhase(mv, 3)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(vol), sitk.GetArrayFromImage(ph.phases[3]))
    assert dce.series.times_s == pytest.approx(ph.times_s)
    seg = _segmentation_with_lesion(scene, ph, ref)
    assert dce.computeTic(mv, seg)["intra"]["delayed_type"] == "plateau"


def _ijk(node):
    m = __import__("vtk").vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return m


def test_other_sequence_gets_the_lesion_through_physical_space(mrml_scene, phantoms):
    from her2radiomics.sequences import lesion_on_grid

    ph = phantoms["washout"]
    scene = mrml_scene.scene
    dce = DcePanelLogic(PanelLogic(scene))
    vol = dce.pickPhase(_sequence(scene, ph), 2)
    seg = _segmentation_with_lesion(scene, ph, vol)
    t2 = mb.volume_node_from_image(ph.t2, "T2", scene=scene)
    t2seg, transfer = dce.sequenceLesion(t2, seg, vol)
    expected = lesion_on_grid(ph.lesion, ph.t2, what="T2").mask
    got = mb.mask_from_segment(t2seg, "lesion", t2)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(got), sitk.GetArrayFromImage(expected))
    assert transfer.volume_mm3 > 0 and any("resampled" in w for w in transfer.warnings)


def test_bad_input_says_what_to_do(mrml_scene, phantoms):
    ph = phantoms["plateau"]
    scene = mrml_scene.scene
    dce = DcePanelLogic(PanelLogic(scene))
    with pytest.raises(UserError, match="select the DCE series"):
        dce.phaseCount(None)
    seq = _sequence(scene, ph)
    with pytest.raises(UserError, match="outside the series"):
        dce.pickPhase(seq, 6)
    with pytest.raises(UserError, match="segmentation"):
        dce.computeTic(seq, None)
    single = mb.volume_node_from_image(ph.phases[0], "one phase", scene=scene)
    with pytest.raises(UserError, match="one phase"):
        dce.readSeries(single)
    empty = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "empty")
    empty.GetSegmentation().AddEmptySegment("lesion", "lesion")
    with pytest.raises(UserError, match="empty"):
        dce.computeTic(seq, empty)


def test_panel_section_picks_the_phase_and_shows_the_tic(mrml_scene, monkeypatch, tmp_path, phantoms):
    """The DCE section clicked through the widget (fakes of slicer_fakes built from the .ui)."""
    from slicer_fakes import Panel

    monkeypatch.setenv("HER2RADIOMICS_SESSION_DIR", str(tmp_path / "sessions"))
    p = Panel(mrml_scene, monkeypatch, version="5.12.3", testing=True).start()
    try:
        ui, pn = p.ui, p.pn
        ph = phantoms["washout"]
        assert not ui.dceShowTicButton.enabled and ui.dceResultLabel.text == "Select a DCE series."
        seq = _sequence(mrml_scene.scene, ph)
        ui.dceSequenceSelector.setCurrentNode(seq)
        assert (ui.dcePhaseSpinBox.minimum, ui.dcePhaseSpinBox.maximum, ui.dcePhaseSpinBox.value) == (0, 5, 2)
        assert ui.dceShowTicButton.enabled and "6 phases" in ui.dceResultLabel.text
        ui.dcePickPhaseButton.click()
        assert p.errors == []
        vol = pn.inputVolume
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(vol), sitk.GetArrayFromImage(ph.phases[2]))
        ui.prepareSegmentationButton.click()
        seg = pn.segmentation
        sid = mb.segment_id(seg, "lesion")
        slicer.util.updateSegmentBinaryLabelmapFromArray(sitk.GetArrayFromImage(ph.lesion).astype(np.uint8), seg, sid, vol)
        ui.dceShowTicButton.click()
        assert p.errors == []
        assert "washout" in ui.dceResultLabel.text
        (view,) = [c[1][0] for c in ui.dcePlotWidget.calls if c[0] == "setMRMLPlotViewNode"]
        chart = view.GetPlotChartNode()
        assert chart is p.widget.dce.chart_node and _plot_points(chart)[1].GetNumberOfRows() == 6
        ui.dceSequenceSelector.setCurrentNode(None)
        assert not ui.dceShowTicButton.enabled and p.widget.dce.result is None
    finally:
        p.cleanup()
