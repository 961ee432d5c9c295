"""The panel's code paths, headless: HER2RadiomicsWidget driven through fake Qt widgets built from the .ui.

Qt is absent here, so every widget named in Resources/UI/HER2Radiomics.ui becomes a small recorder
(attributes such as ``text``/``value``/``currentPath``, ``connect(signal, slot)``, any ``setX(...)`` call
logged); the parameter node is a plain object with the wrapper's fields. The MRML scene, the logic, the
background process and the files are all real. This runs every button's handler as a user would click
it: Prepare, Generate, Detect, Edit, Extract (background with the timer's polling, Cancel, synchronous),
Predict and Save session.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import SimpleITK as sitk

from HER2RadiomicsLib import mrml_bridge as mb

slicer = pytest.importorskip("slicer")
pytestmark = pytest.mark.slicer
pytest_plugins = ["mrml_scene"]

REPO = Path(__file__).resolve().parents[2]
PARAMS = "imageType:\n  Original: {}\nfeatureClass:\n  firstorder: [Mean, Entropy]\n  glcm: [Contrast]\nsetting:\n  binCount: 16\n"


class FakeWidget:
    def __init__(self, name: str, cls: str) -> None:
        self.name, self.cls = name, cls
        self.calls: list[tuple[str, tuple]] = []
        self.slots: dict[str, list] = {}
        self.text, self.enabled, self.value, self.currentPath, self.collapsed = "", True, 0, "", True

    def connect(self, signal, slot):
        self.slots.setdefault(signal, []).append(slot)

    def click(self):
        for slot in self.slots.get("clicked(bool)", []):
            slot()

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)

        def record(*args, **kwargs):
            self.calls.append((attr, args))

        return record


class FakeTimer:
    def __init__(self) -> None:
        self.active, self.slot = False, None

    def setInterval(self, ms):
        pass

    def connect(self, signal, slot):
        self.slot = slot

    def start(self):
        self.active = True

    def stop(self):
        self.active = False


class FakeParameterNode:
    """The wrapper's fields; assigning one fires the observers, as the wrapped vtkMRMLScriptedModuleNode's
    ModifiedEvent does (the widget observes it, like the module template's setParameterNode)."""

    def __init__(self, ui) -> None:
        object.__setattr__(self, "_observers", {})
        self.inputVolume = self.segmentation = None
        self.caseId, self.distances, self.autoExclusions, self.runInBackground = "case", "1 3 5", True, True
        self.parameterFile = self.stage1Model = self.stage2Model = self.sessionDirectory = Path()

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        for method in list(self._observers.values()):
            method(self, "ModifiedEvent")

    def AddObserver(self, event, method, priority=0.0):
        tag = len(self._observers) + 1
        self._observers[tag] = method
        return tag

    def RemoveObserver(self, tag):
        self._observers.pop(tag, None)

    def connectGui(self, ui):
        return "tag"

    def disconnectGui(self, tag):
        pass


@pytest.fixture
def panel(mrml_scene, monkeypatch, tmp_path):
    """The widget set up on fake widgets; returns (widget, ui namespace, scene context)."""
    root = ET.parse(REPO / "Resources" / "UI" / "HER2Radiomics.ui").getroot()
    ui = types.SimpleNamespace(**{w.get("name"): FakeWidget(w.get("name"), w.get("class")) for w in root.iter("widget")})
    fake_qt = types.SimpleNamespace(QTimer=FakeTimer, Qt=types.SimpleNamespace(WaitCursor=0))
    app = types.SimpleNamespace(testingEnabled=lambda: True, setOverrideCursor=lambda c: None,
                                restoreOverrideCursor=lambda: None, processEvents=lambda: None,
                                applicationLogic=lambda: mrml_scene.app_logic, topLevelWidgets=lambda: [],
                                applicationVersion="5.9.0", repositoryRevision="test")
    monkeypatch.setattr(slicer, "app", app, raising=False)
    monkeypatch.setitem(sys.modules, "qt", fake_qt)
    monkeypatch.setattr(slicer.util, "loadUI", lambda path: FakeWidget("HER2Radiomics", "qMRMLWidget"))
    monkeypatch.setattr(slicer.util, "childWidgetVariables", lambda w: ui)
    module = importlib.import_module("HER2Radiomics")
    monkeypatch.setattr(module, "qt", fake_qt)
    monkeypatch.setattr(module.ScriptedLoadableModuleWidget, "setup", lambda self: None, raising=False)
    monkeypatch.setattr(module.HER2RadiomicsLogic, "getParameterNode", lambda self: pn)
    pn = FakeParameterNode(ui)
    widget = module.HER2RadiomicsWidget()
    widget.layout = FakeWidget("layout", "QVBoxLayout")
    widget.parent = types.SimpleNamespace(isEntered=True)
    assert Path(widget.resourcePath("UI/HER2Radiomics.ui")).is_file()  # source-tree Resources, as from a checkout
    widget.setup()
    widget.enter()
    yield widget, ui, pn
    widget.cleanup()


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
    assert ui.segmentEditorWidget.calls[-1] == ("setSourceVolumeNode", (vol,))
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
    audit = json.loads((tmp_path / "sessions" / "P7" / "audit.json").read_text())
    assert audit["case_id"] == "P7" and audit["prediction"]["p_positive"] == pytest.approx(probs[0] / 100, abs=1e-3)
    assert "Saved" in ui.sessionStatusLabel.text
    assert audit["software"]["3D Slicer"] == "5.9.0 (test)"


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
