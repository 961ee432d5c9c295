"""The panel's code paths, headless: HER2RadiomicsWidget driven through fake Qt widgets built from the .ui.

Qt is absent here, so every widget named in Resources/UI/HER2Radiomics.ui becomes a fake from
``slicer_fakes`` that behaves like the real one where the module depends on it (the parameter node writes
bound widgets and fires their change signals as connectGui does; ctkPathLineEdit emits only for paths
matching its filters). The MRML scene, the logic, the background process and the files are all real.
This runs every button's handler as a user would click it: Prepare, Generate, Detect, Edit, Extract (background with the timer's polling, Cancel, synchronous),
Predict and Save session.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import SimpleITK as sitk

from HER2RadiomicsLib import mrml_bridge as mb

slicer = pytest.importorskip("slicer")
pytestmark = pytest.mark.slicer
pytest_plugins = ["mrml_scene"]

PARAMS = "imageType:\n  Original: {}\nfeatureClass:\n  firstorder: [Mean, Entropy]\n  glcm: [Contrast]\nsetting:\n  binCount: 16\n"


@pytest.fixture
def panel(mrml_scene, monkeypatch, tmp_path):
    """The widget set up on the fakes of slicer_fakes; returns (widget, ui namespace, parameter node)."""
    from slicer_fakes import Panel

    monkeypatch.setenv("HER2RADIOMICS_SESSION_DIR", str(tmp_path / "sessions"))
    p = Panel(mrml_scene, monkeypatch, version="5.12.3", testing=True)
    assert Path(p.widget.resourcePath("UI/HER2Radiomics.ui")).is_file()  # source-tree Resources, as from a checkout
    p.start()
    yield p.widget, p.ui, p.pn
    p.cleanup()


def _phantom():
    from her2radiomics.phantom import make_phantom

    return make_phantom(seed=5, size=(128, 128, 48), spacing=(0.95, 0.95, 1.8), lesion_radius_mm=4.0)


def test_every_button_of_the_panel(panel, mrml_scene, tmp_path):
    from mrml_scene import model_card

    widget, ui, pn = panel
    ph = _phantom()
    vol = mb.volume_node_from_image(ph.image, "DCE")
    assert not ui.generateShellsButton.enabled  # no input image yet
    pn.inputVolume = vol  # as the selector's GUI connector stores it: the widget reacts to the parameter node
    assert ui.generateShellsButton.enabled
    assert ui.segmentEditorWidget.errors == []  # no source volume before there is a segmentation
    assert "not for clinical use" in ui.modelNoticeLabel.text.lower()
    editor_node = mrml_scene.scene.GetFirstNodeByName("HER2Radiomics segment editor")
    assert ("setMRMLSegmentEditorNode", (editor_node,)) in ui.segmentEditorWidget.calls
    editor_node.SetOverwriteMode(editor_node.OverwriteAllSegments)  # the user changes it: the module resets it
    assert editor_node.GetOverwriteMode() == editor_node.OverwriteNone

    ui.prepareSegmentationButton.click()
    seg = pn.segmentation
    assert seg is not None and mb.segment_id(seg, "lesion")
    assert ("setCurrentSegmentID", (mb.segment_id(seg, "lesion"),)) in ui.segmentEditorWidget.calls
    mb.set_segment_from_mask(seg, "lesion", ph.lesion)  # the radiologist paints

    ui.segmentEditorWidget.calls.clear()
    ui.generateShellsButton.click()
    assert ("saveStateForUndo", ()) in ui.segmentEditorWidget.calls  # the editor's Undo covers this step
    assert sitk.GetArrayFromImage(mb.mask_from_segment(seg, "peri3", vol)).any()
    assert "peri1, peri3, peri5" in ui.shellsStatusLabel.text
    assert any(c[0] == "setMRMLTableNode" for c in ui.regionStatsTableView.calls)
    ui.undoButton.click()
    assert ("undo", ()) in ui.segmentEditorWidget.calls

    ui.detectAirButton.click()
    assert ui.exclusionNotesLabel.text.startswith("air:")
    ui.editPectoralisButton.click()
    assert ("setActiveEffectByName", ("Erase",)) in ui.segmentEditorWidget.calls
    assert ("setCurrentSegmentID", (mb.segment_id(seg, "pectoralis"),)) in ui.segmentEditorWidget.calls
    ui.applyExclusionsButton.click()

    params = tmp_path / "p.yaml"
    params.write_text(PARAMS, encoding="utf-8")
    pn.parameterFile = params
    # background: the button turns into Cancel, the timer drains the worker's output
    ui.extractButton.click()
    assert ui.extractButton.text == "Cancel" and widget._timer.active
    deadline = time.monotonic() + 300
    while widget._timer.active and time.monotonic() < deadline:
        widget.onPollJob()
        time.sleep(0.05)
    assert ui.extractButton.text == "Extract features"
    assert ui.extractProgressBar.value == 100 and ui.extractStatusLabel.text == "12 features"
    background = dict(widget.logic.core.state.features)
    # cancel
    ui.extractButton.click()
    ui.extractButton.click()
    while widget._timer.active:
        widget.onPollJob()
        time.sleep(0.02)
    assert ui.extractStatusLabel.text == "Cancelled." and widget.logic.core.state.features == background
    # synchronous: same numbers
    pn.runInBackground = False
    ui.extractButton.click()
    assert widget.logic.core.state.features == pytest.approx(background, rel=1e-12)

    f = ["intra_original_firstorder_Mean", "peri3_original_glcm_Contrast"]
    for task in ("stage1", "stage2"):
        (tmp_path / f"{task}.json").write_text(json.dumps(model_card(task, f, [300.0, 5.0], [100.0, 5.0], [0.5, -0.3], 0.1)))
    pn.stage1Model, pn.stage2Model = tmp_path / "stage1.json", tmp_path / "stage2.json"
    ui.predictButton.click()
    probs = [float(x.text.rstrip(" %")) for x in (ui.pPositiveLabel, ui.pLowLabel, ui.pZeroLabel)]
    assert sum(probs) == pytest.approx(100.0, abs=0.2)
    assert ui.stage1CallLabel.text in ("positive", "negative") and ui.stage2CallLabel.text in ("low", "zero")
    assert "warning" in ui.gdiStage1Label.text and "not for clinical use" in ui.modelNoticeLabel.text.lower()
    assert any(c[0] == "setMRMLPlotViewNode" for c in ui.contributionsPlotWidget.calls)

    pn.sessionDirectory = tmp_path / "sessions"
    pn.caseId = "P7"
    ui.saveSessionButton.click()
    audit = json.loads((tmp_path / "sessions" / "P7" / "audit.json").read_text(encoding="utf-8"))
    assert audit["case_id"] == "P7" and audit["prediction"]["p_positive"] == pytest.approx(probs[0] / 100, abs=1e-3)
    assert "Saved" in ui.sessionStatusLabel.text
    assert audit["software"]["3D Slicer"] == "5.12.3 (fake)"

    # the lesion is repainted after the extraction: its features, and what the panel shows of them, are dropped
    mb.set_segment_from_mask(seg, "lesion", sitk.BinaryDilate(ph.lesion, [1, 1, 1]))
    ui.generateShellsButton.click()
    assert widget.logic.core.state.features is None and ui.pPositiveLabel.text == "-"
    assert ui.extractProgressBar.value == 0 and ui.extractStatusLabel.text == "Segments changed: extract the features again."


def test_errors_reach_the_user_as_one_line(panel):
    from her2radiomics.errors import UserError

    widget, ui, pn = panel
    with pytest.raises(ValueError, match="Select the input image"):
        ui.generateShellsButton.click()
    ph = _phantom()
    pn.inputVolume = mb.volume_node_from_image(ph.image, "DCE")
    with pytest.raises(UserError, match="'lesion' segment is empty"):
        ui.generateShellsButton.click()
    pn.distances = "1 x"
    with pytest.raises(UserError, match="must be numbers"):
        ui.generateShellsButton.click()
    assert ui.extractButton.text != "Cancel"


def test_card_edited_after_saving_is_refused_by_the_panel(panel, tmp_path):
    """A card whose checksum no longer matches (one coefficient edited by hand) is refused everywhere the panel
    reads cards: the shipped-card list, the notice under the selectors and Predict."""
    from mrml_scene import model_card

    from her2radiomics.errors import UserError
    from HER2RadiomicsLib.logic import default_model_cards

    widget, ui, pn = panel
    edited = model_card("stage1", ["x"], [0.0], [1.0], [1.0], 0.0)
    edited["coefficients"] = [9.0]
    (tmp_path / "edited.json").write_text(json.dumps(edited), encoding="utf-8")
    assert default_model_cards(tmp_path) == {}
    pn.stage1Model = str(tmp_path / "edited.json")
    widget.onModelChanged()
    assert "refused" in ui.modelNoticeLabel.text and "checksum mismatch" in ui.modelNoticeLabel.text
    widget.logic.core.setFeatures({"x": 1.0})
    with pytest.raises(UserError, match="checksum mismatch"):
        widget.logic.core.predict(str(tmp_path / "edited.json"), values={"x": 1.0})


def test_panel_uses_no_deprecated_source_volume_api(panel, mrml_scene, vtk_messages):
    """Slicer 5.1 renamed master -> source volume; the old names still work but log a deprecation (the MRML nodes
    through VTK's output window, qMRMLSegmentEditorWidget as its fake in slicer_fakes). Driving the panel logs none."""
    widget, ui, pn = panel
    ph = _phantom()
    vol = mb.volume_node_from_image(ph.image, "DCE")
    pn.inputVolume = vol
    ui.prepareSegmentationButton.click()
    seg = pn.segmentation
    mb.set_segment_from_mask(seg, "lesion", ph.lesion)
    ui.generateShellsButton.click()
    ui.detectAirButton.click()
    ui.editPectoralisButton.click()
    ui.undoButton.click()
    editor_node = mrml_scene.scene.GetFirstNodeByName("HER2Radiomics segment editor")
    assert editor_node.GetSourceVolumeNode() is vol and ui.segmentEditorWidget.sourceVolumeNode() is vol
    assert ui.segmentEditorWidget.deprecated == []
    assert "deprecated" not in vtk_messages.GetOutput()


def test_selecting_a_volume_reaches_the_segment_editor(panel):
    """The selector's node reaches the module through the parameter node: its GUI connector stores the node after
    the selector's currentNodeChanged has fired (Slicer's parameterNodeWrapper connects it last), so a module that
    reacted to the signal itself would still see the previous volume."""
    widget, ui, pn = panel
    a = mb.volume_node_from_image(_phantom().image, "A")
    b = mb.volume_node_from_image(_phantom().image, "B")
    ui.inputVolumeSelector.setCurrentNode(a)
    assert pn.inputVolume is a and ui.prepareSegmentationButton.enabled
    ui.prepareSegmentationButton.click()
    assert ui.segmentEditorWidget.sourceVolumeNode() is a
    ui.inputVolumeSelector.setCurrentNode(b)
    assert pn.inputVolume is b and ui.segmentEditorWidget.sourceVolumeNode() is b
    ui.inputVolumeSelector.setCurrentNode(None)
    assert not ui.prepareSegmentationButton.enabled


def test_the_chosen_card_shows_its_nomogram(panel, mrml_scene, tmp_path):
    """Prediction section (issue 15): a card trained with --clinical shows its combined model's nomogram (the image,
    a caption naming the card and the model, the card's notice); a card without one gets one line and no image;
    closing the scene clears it (the closed scene's card is not shown)."""
    import tempfile

    from mrml_scene import clinical_models, model_card

    from her2radiomics import nomogram

    widget, ui, pn = panel
    no_nomogram = "this card has no nomogram (trained without --clinical)"
    demo = ui.nomogramCaptionLabel.text.split("\n")  # the shipped demo cards, chosen at start: no --clinical
    assert demo[0] == f"Stage-1 card her2radiomics_demo_stage1.json: {no_nomogram}"
    assert demo[1].startswith("Synthetic demonstration model, not for clinical use.")
    assert ui.nomogramImageLabel.shownPixmap is None

    f = ["intra_original_firstorder_Mean"]
    clinical = model_card("stage2", f, [300.0], [100.0], [0.5], 0.1, clinical=clinical_models())
    plain = model_card("stage1", f, [300.0], [100.0], [0.5], 0.1)
    for name, card in (("clin_a.json", clinical), ("clin_b.json", clinical), ("plain.json", plain)):
        (tmp_path / name).write_text(json.dumps(card), encoding="utf-8")
    leftovers = set(Path(tempfile.gettempdir()).glob("her2radiomics-nomogram-*"))

    ui.stage2ModelPathLineEdit.currentPath = str(tmp_path / "clin_a.json")
    pixmap = ui.nomogramImageLabel.shownPixmap
    assert pixmap is not None and not pixmap.isNull() and pixmap.format == "PNG"
    _, layout = nomogram.render_png(nomogram.card_scales(clinical))
    assert (pixmap.width(), pixmap.height()) == (layout["width"], layout["height"])
    assert [r["name"] for r in layout["rows"]] == ["Points", "Rad-score", "age", "stage (ref 1)", "Total points",
                                                   "Probability"]
    assert ui.nomogramCaptionLabel.text.split("\n") == [
        "Stage-2 card clin_a.json: nomogram of its combined model (rad-score + clinical variables)",
        "Synthetic test model, not for clinical use."]
    assert set(Path(tempfile.gettempdir()).glob("her2radiomics-nomogram-*")) == leftovers  # its PNG is gone

    ui.stage1ModelPathLineEdit.currentPath = str(tmp_path / "plain.json")  # another card, without --clinical
    assert ui.nomogramImageLabel.shownPixmap is None
    assert ui.nomogramCaptionLabel.text.split("\n")[0] == f"Stage-1 card plain.json: {no_nomogram}"
    ui.stage2ModelPathLineEdit.currentPath = ""  # a cleared field: the stage-1 card's (none) stays shown
    assert ui.nomogramImageLabel.shownPixmap is None and no_nomogram in ui.nomogramCaptionLabel.text

    ui.stage2ModelPathLineEdit.currentPath = str(tmp_path / "clin_b.json")
    assert ui.nomogramImageLabel.shownPixmap is not None
    widget.parent.isEntered = False  # File > Close scene with the module in the background: nothing is left
    mrml_scene.scene.Clear(False)
    assert ui.nomogramImageLabel.shownPixmap is None and ui.nomogramCaptionLabel.text == ""
    widget.enter()  # the module again: the new scene's (default) card, stage 1
    assert ui.nomogramCaptionLabel.text.split("\n")[0] == demo[0] and ui.nomogramImageLabel.shownPixmap is None

    ui.stage2ModelPathLineEdit.currentPath = str(tmp_path / "clin_a.json")
    widget.parent.isEntered = True  # closed while shown: the default cards come back at once, without a nomogram
    mrml_scene.scene.Clear(False)
    assert ui.nomogramImageLabel.shownPixmap is None and ui.nomogramCaptionLabel.text.split("\n") == demo
