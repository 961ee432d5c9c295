"""The module file against its .ui (names, classes, parameter bindings), runtime dependencies, packaging,
and the module self-test's workflow run headless on slicer-core.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from her2radiomics.errors import UserError
from HER2RadiomicsLib import deps

REPO = Path(__file__).resolve().parents[2]
MODULE_FILE = REPO / "HER2Radiomics" / "HER2Radiomics.py"
UI_FILE = REPO / "Resources" / "UI" / "HER2Radiomics.ui"
pytest_plugins = ["mrml_scene"]

# what each use of a widget requires from its class (Qt/CTK/Slicer class names as in the .ui)
BUTTONS = {"QPushButton", "QToolButton"}
SIGNALS = {
    "clicked(bool)": BUTTONS,
    "currentNodeChanged(vtkMRMLNode*)": {"qMRMLNodeComboBox"},
    "currentPathChanged(QString)": {"ctkPathLineEdit"},
    "validInputChanged(bool)": {"ctkPathLineEdit"},
    "currentRowChanged(int)": {"QListWidget"},
}
ATTRIBUTES = {
    "text": {"QLabel", "QLineEdit", *BUTTONS},
    "enabled": None,  # any QWidget
    "toolTip": None,
    "value": {"QProgressBar"},
    "setRange": {"QProgressBar"},
    "setPlainText": {"QPlainTextEdit", "QTextEdit"},
    "setMRMLTableNode": {"qMRMLTableView"},
    "setMRMLPlotViewNode": {"qMRMLPlotWidget"},
    "collapsed": {"ctkCollapsibleButton"},
    "currentPath": {"ctkPathLineEdit"},
    "directory": {"ctkDirectoryButton"},
    **{m: {"QListWidget"} for m in ("clear", "addItems", "setCurrentRow")},
    **{m: {"qMRMLSegmentEditorWidget"} for m in (
        "setMRMLSegmentEditorNode", "setSegmentationNode", "setSourceVolumeNode", "setCurrentSegmentID",
        "setActiveEffectByName", "saveStateForUndo", "undo", "setupViewObservations", "removeViewObservations",
        "setActiveEffect", "segmentationNode", "sourceVolumeNode")},
}
PARAMETER_WIDGETS = {  # parameterNodeWrapper's connectors (Base/Python/slicer/parameterNodeWrapper/guiConnectors.py)
    "str": {"QLineEdit", "QLabel", "QTextEdit"},
    "bool": {"QCheckBox", "ctkCheckBox", "QPushButton"},
    "pathlib.Path": {"ctkPathLineEdit", "ctkDirectoryButton"},
}


def _ui_widgets() -> dict[str, ET.Element]:
    root = ET.parse(UI_FILE).getroot()
    return {w.get("name"): w for w in root.iter("widget")}


def _ui_uses() -> list[tuple[str, str | None, str | None]]:
    """(widget, attribute, signal) for every ``self.ui.<widget>[.<attribute>]`` in the module file."""
    tree = ast.parse(MODULE_FILE.read_text(encoding="utf-8"))
    uses = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "ui"
                and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"):
            uses.append((node.attr, None, None))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
            inner = node.value
            if (isinstance(inner.value, ast.Attribute) and inner.value.attr == "ui"
                    and isinstance(inner.value.value, ast.Name) and inner.value.value.id == "self"
                    and node.attr != "connect"):  # connect(...) calls are checked with their signal below
                uses.append((inner.attr, node.attr, None))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "connect":
            target = node.func.value
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute) and target.value.attr == "ui":
                sig = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
                uses.append((target.attr, "connect", sig))
    return uses


def test_every_ui_name_the_widget_uses_exists_with_a_compatible_class():
    widgets = _ui_widgets()
    uses = _ui_uses()
    assert len({u[0] for u in uses}) >= 30
    for name, attr, signal in uses:
        assert name in widgets, f"self.ui.{name} is not in {UI_FILE.name}"
        cls = widgets[name].get("class")
        if attr == "connect":
            assert signal in SIGNALS, f"unknown signal {signal} on {name}"
            assert cls in SIGNALS[signal], f"{name} is a {cls}, which has no {signal}"
        elif attr is not None:
            assert attr in ATTRIBUTES, f"self.ui.{name}.{attr}: add the attribute to the test's table"
            allowed = ATTRIBUTES[attr]
            assert allowed is None or cls in allowed, f"self.ui.{name}.{attr} needs one of {allowed}, the .ui has {cls}"


def test_parameter_node_fields_bind_to_ui_widgets():
    tree = ast.parse(MODULE_FILE.read_text(encoding="utf-8"))
    cls = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "HER2RadiomicsParameterNode")
    fields = {n.target.id: ast.unparse(n.annotation) for n in cls.body if isinstance(n, ast.AnnAssign)}
    bound = {}
    for w in _ui_widgets().values():
        for prop in w.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[prop.find("string").text] = w
    module = importlib.import_module("HER2Radiomics") if importlib.util.find_spec("slicer") else None
    by_hand = dict(module.PATH_FIELDS) if module else {"parameterFile": "parameterFilePathLineEdit",
                                                       "stage1Model": "stage1ModelPathLineEdit",
                                                       "stage2Model": "stage2ModelPathLineEdit"}
    assert set(bound) | set(by_hand) == set(fields) and not set(bound) & set(by_hand), \
        "every parameter has exactly one widget and vice versa"
    for field, name in by_hand.items():  # ctkPathLineEdit bound by hand (see PATH_FIELDS): str, never a Path '.'
        assert fields[field] == "str" and _ui_widgets()[name].get("class") == "ctkPathLineEdit", field
    for field, w in bound.items():
        typ = fields[field]
        if typ.startswith("vtkMRML"):
            assert w.get("class") == "qMRMLNodeComboBox"
            types = [s.text for p in w.findall("property") if p.get("name") == "nodeTypes" for s in p.iter("string")]
            assert types == [typ], f"{field}: nodeTypes {types}"
        else:
            assert w.get("class") in PARAMETER_WIDGETS[typ], f"{field}: {typ} cannot bind to {w.get('class')}"


def test_ui_declares_custom_widgets_and_scene_connections():
    root = ET.parse(UI_FILE).getroot()
    used = {w.get("class") for w in root.iter("widget")}
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    assert {c for c in used if not c.startswith("Q")} <= declared
    mrml = {w.get("name") for w in root.iter("widget") if w.get("class", "").startswith("qMRML") and w.get("name") != "HER2Radiomics"}
    connected = {c.findtext("receiver") for c in root.iter("connection") if c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"}
    assert mrml == connected
    sections = [w.find("property/string").text for w in root.iter("widget") if w.get("class") == "ctkCollapsibleButton"]
    assert sections == ["Input", "Lesion", "Peritumoral shells", "Exclusions", "Features", "Prediction", "QA"]


def test_module_file_imports_headless_and_has_template_classes():
    pytest.importorskip("slicer")
    mod = importlib.import_module("HER2Radiomics")
    for name in ("HER2Radiomics", "HER2RadiomicsWidget", "HER2RadiomicsLogic", "HER2RadiomicsTest", "HER2RadiomicsParameterNode"):
        assert hasattr(mod, name), name
    assert hasattr(mod.HER2RadiomicsTest, "runTest")
    assert isinstance(mod.HER2RadiomicsLogic().core, importlib.import_module("HER2RadiomicsLib.logic").HER2RadiomicsLogic)


def test_cmake_packaging_lists_sources_and_resources():
    top = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    assert re.search(r"set\(EXTENSION_DEPENDS\s+SlicerRadiomics\)", top)
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        assert key in top
    assert "add_subdirectory(HER2Radiomics)" in top
    mod = (REPO / "HER2Radiomics" / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in mod
    for glob in ("HER2RadiomicsLib/*.py", "her2radiomics/*.py", "UI/*.ui", "Icons/*.png", "Parameters/*", "Models/*", "requirements.txt"):
        assert glob in mod, glob
    from PIL import Image

    with Image.open(REPO / "Resources" / "Icons" / "HER2Radiomics.png") as im:
        assert im.size == (128, 128)


def test_requirements_are_real_and_installed_here():
    reqs = deps.read_requirements(REPO / "Resources" / "requirements.txt")
    # exactly what the module imports beyond Slicer's bundled packages (issue 10: no scikit-learn, joblib,
    # matplotlib, tqdm, scipy); pyradiomics comes from SlicerRadiomics
    assert {deps.requirement_name(r) for r in reqs} == {"pandas", "PyYAML"}
    assert deps.missing(reqs) == []  # every name resolves to an importable module (import-name map is right)


def test_dependencies_are_installed_only_after_the_user_agrees(monkeypatch):
    reqs = ["scikit-learn>=1.3", "surely-not-installed-pkg>=1"]
    asked, installed = [], []
    with pytest.raises(UserError, match="cannot run without surely-not-installed-pkg"):
        deps.ensure(reqs, confirm=lambda q: asked.append(q) or False, install=installed.append)
    assert installed == [] and "surely-not-installed-pkg" in asked[0] and "scikit-learn" not in asked[0]
    with pytest.raises(UserError, match="installing surely-not-installed-pkg failed"):
        deps.ensure(reqs, confirm=lambda q: True, install=installed.append)
    assert installed == [["surely-not-installed-pkg>=1"]]
    monkeypatch.setattr(deps, "radiomics_available", lambda: False)
    with pytest.raises(UserError, match="SlicerRadiomics"):
        deps.ensure(["numpy"], confirm=lambda q: True, install=installed.append)
    assert deps.ensure(["numpy"], confirm=lambda q: True, install=installed.append, need_radiomics=False) == []


def test_selftest_workflow_runs_headless(mrml_scene, tmp_path):
    """The ScriptedLoadableModuleTest's workflow on slicer-core, with the shipped demo cards when they are usable."""
    import json

    from mrml_scene import model_card

    from her2radiomics.features import load_params, n_features_per_region
    from HER2RadiomicsLib.logic import default_model_cards, parameter_file_for_card
    from HER2RadiomicsLib.selftest import run_workflow

    shipped = default_model_cards()
    params = parameter_file_for_card(shipped["stage1"]) if "stage1" in shipped else None
    cards = None  # the shipped demo cards, extracted with the parameter file they were trained with
    if params is None:  # demo cards absent or their parameter file not shipped: cards on default-parameter features
        cards = {}
        for task, feats in (("stage1", ["intra_original_firstorder_Mean", "peri3_original_glcm_Contrast"]),
                            ("stage2", ["peri1_original_firstorder_Entropy", "intra_original_shape_Sphericity"])):
            card = model_card(task, feats, [100.0, 5.0], [50.0, 5.0], [0.7, -0.4], 0.2)
            (tmp_path / f"{task}.json").write_text(json.dumps(card), encoding="utf-8")
            cards[task] = str(tmp_path / f"{task}.json")
    said = []
    out = run_workflow(say=said.append, scene=mrml_scene.scene, app_logic=mrml_scene.app_logic, cards=cards,
                       workdir=tmp_path / "session")
    assert said[-1] == "HER2Radiomics workflow test passed"
    assert out["parameter_file"] == (str(params) if params else None)
    assert out["n_features"] == 4 * n_features_per_region(load_params(params))
    assert out["regained_voxels"] > 0
    assert set(out["audit"]["files"]) >= {"segmentation.seg.nrrd", "features.csv", "predictions.json", "regions.json"}


def test_small_logic_helpers(tmp_path):
    import json

    from HER2RadiomicsLib.logic import card_notice, default_model_cards, gdi_badges, gdi_html, parse_distances

    assert parse_distances("5, 1;3") == (1.0, 3.0, 5.0)
    assert parse_distances([2.5]) == (2.5,)
    for bad, msg in (("1 x", "must be numbers"), ("", "no shell distance"), ("1 1", "repeat"), ("-2", "positive")):
        with pytest.raises(UserError, match=msg) as exc:
            parse_distances(bad)
        assert "\n" not in str(exc.value)
    assert "not for clinical use" in card_notice(None).lower()
    assert card_notice({"intended_use": "Demo model"}).startswith("Demo model") and "not for clinical use" in card_notice(
        {"intended_use": "Demo model"}).lower()
    assert card_notice({"intended_use": "Synthetic, not for clinical use."}) == "Synthetic, not for clinical use."
    badges = gdi_badges({"gdi": {"internal": {"value": 0.10, "zone": "safe"}, "external": {"value": 0.25, "zone": "high"}}})
    assert badges == [("internal", 0.10, "safe"), ("external", 0.25, "high")]
    html = gdi_html(badges)
    assert "GDI 10% (safe)" in html and "#2e7d32" in html and "GDI 25% (high)" in html and "#c62828" in html
    from mrml_scene import model_card

    (tmp_path / "b.json").write_text(json.dumps(model_card("stage2", ["x"], [0.0], [1.0], [1.0], 0.0)), encoding="utf-8")
    (tmp_path / "a.json").write_text(json.dumps(model_card("stage1", ["x"], [0.0], [1.0], [1.0], 0.0)), encoding="utf-8")
    (tmp_path / "c.json").write_text("not json", encoding="utf-8")
    edited = model_card("stage1", ["x"], [0.0], [1.0], [1.0], 0.0)
    edited["coefficients"] = [9.0]  # a hand edit: the checksum no longer matches, the card is refused
    (tmp_path / "0.json").write_text(json.dumps(edited), encoding="utf-8")
    assert default_model_cards(tmp_path) == {"stage1": tmp_path / "a.json", "stage2": tmp_path / "b.json"}


def test_parameter_file_for_card_matches_by_hash(tmp_path):
    import json

    from her2radiomics.features import load_params, parameter_file_hash
    from HER2RadiomicsLib.logic import parameter_file_for_card

    a = tmp_path / "a.yaml"
    a.write_text("imageType:\n  Original: {}\nfeatureClass:\n  firstorder:\nsetting:\n  binCount: 16\n", encoding="utf-8")
    b = tmp_path / "b.yaml"
    b.write_text("imageType:\n  Original: {}\nfeatureClass:\n  firstorder:\nsetting:\n  binCount: 32\n", encoding="utf-8")
    (tmp_path / "broken.yaml").write_text("imageType: [", encoding="utf-8")
    card = {"provenance": {"parameter_file_hash": parameter_file_hash(load_params(b))}}
    assert parameter_file_for_card(card, tmp_path) == b
    assert parameter_file_for_card({"provenance": {"parameter_file_hash": "sha256:0"}}, tmp_path) is None
    assert parameter_file_for_card({"provenance": {}}, tmp_path) is None
    from mrml_scene import model_card

    valid = model_card("stage1", ["x"], [0.0], [1.0], [1.0], 0.0, phash=parameter_file_hash(load_params(b)))
    (tmp_path / "card.json").write_text(json.dumps(valid), encoding="utf-8")
    assert parameter_file_for_card(tmp_path / "card.json", tmp_path) == b
    valid["intercept"] = 3.0  # edited after saving: refused by load_model_card, so no parameter file either
    (tmp_path / "edited.json").write_text(json.dumps(valid), encoding="utf-8")
    assert parameter_file_for_card(tmp_path / "edited.json", tmp_path) is None
    # before PyYAML / pyradiomics are installed: the file the card names, nothing imported
    named = {"provenance": {"parameter_file_hash": "sha256:1", "parameter_file": "a.yaml"}}
    assert parameter_file_for_card(named, tmp_path, verify=False) == a
    assert parameter_file_for_card({"provenance": {"parameter_file_hash": "sha256:1", "parameter_file": "zz.yaml"}},
                                   tmp_path, verify=False) is None


# Slicer / CTK API the module calls that no headless test can execute, pinned to the declarations read in
# Slicer's source (Slicer/Slicer 583e9b37d50e, tags v5.8.0 / v5.10.0 / v5.12.x; CTK 868d56c72d28); see
# docs/developer/slicer_api_check.md for the file:line of each. A new call must be verified and added here.
VERIFIED_WIDGET_API = {
    # Modules/Loadable/Segmentations/Widgets/qMRMLSegmentEditorWidget.h (public slots / Q_INVOKABLE)
    "qMRMLSegmentEditorWidget": {
        "setMRMLScene", "setMRMLSegmentEditorNode", "setSegmentationNode", "setSourceVolumeNode",
        "setCurrentSegmentID", "setActiveEffectByName", "setActiveEffect", "saveStateForUndo", "undo", "redo",
        "setupViewObservations", "removeViewObservations", "segmentationNode", "sourceVolumeNode"},
    "qMRMLTableView": {"setMRMLScene", "setMRMLTableNode"},  # Libs/MRML/Widgets/qMRMLTableView.h
    "qMRMLPlotWidget": {"setMRMLScene", "setMRMLPlotViewNode"},  # Libs/MRML/Widgets/qMRMLPlotWidget.h
    "ctkPathLineEdit": {"currentPath"},  # CTK Libs/Widgets/ctkPathLineEdit.h Q_PROPERTY
    "QLabel": {"text", "toolTip"},  # Qt QLabel / QWidget properties
    "ctkCollapsibleButton": {"collapsed"},  # CTK Libs/Widgets/ctkCollapsibleButton.h Q_PROPERTY
}
# renamed in Slicer 5.1 (master -> source volume); the old names only warn and may be removed
DEPRECATED = ("setMasterVolumeNode", "masterVolumeNodeSelectorVisible", "MasterVolume", "autoShowMasterVolumeNode")


def test_widget_calls_only_verified_slicer_api():
    widgets = _ui_widgets()
    used: dict[str, set[str]] = {}
    for name, attr, _signal in _ui_uses():
        cls = widgets[name].get("class")
        if attr and attr != "connect" and cls in VERIFIED_WIDGET_API:
            used.setdefault(cls, set()).add(attr)
    tree = ast.parse(MODULE_FILE.read_text(encoding="utf-8"))
    undo = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "EditorUndo")
    for node in ast.walk(undo):  # EditorUndo drives the embedded editor widget
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "editor":
            used.setdefault("qMRMLSegmentEditorWidget", set()).add(node.attr)
    assert used["qMRMLSegmentEditorWidget"] >= {"saveStateForUndo", "undo", "setSourceVolumeNode"}
    for cls, attrs in used.items():
        assert attrs <= VERIFIED_WIDGET_API[cls], f"{cls}: {attrs - VERIFIED_WIDGET_API[cls]} not verified in Slicer's source"


def test_no_deprecated_master_volume_names():
    files = [MODULE_FILE, UI_FILE, *sorted((REPO / "HER2Radiomics" / "HER2RadiomicsLib").glob("*.py"))]
    for f in files:
        text = f.read_text(encoding="utf-8")
        for name in DEPRECATED:
            assert name not in text, f"{f.name} uses the deprecated {name}"


def test_selector_changes_reach_the_widget_through_the_parameter_node():
    """currentNodeChanged of a bound selector fires before the parameterNodeWrapper connector stores the node
    (Base/Python/slicer/parameterNodeWrapper/guiConnectors.py qMRMLNodeComboBoxToNodeConnector, connected later
    by connectGui), so the widget must observe the parameter node, as the module template does."""
    source = MODULE_FILE.read_text(encoding="utf-8")
    assert "addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onInputsChanged)" in source
    bound = {w.get("name") for w in _ui_widgets().values()
             if any(p.get("name") == "SlicerParameterName" for p in w.findall("property"))}
    for name, attr, signal in _ui_uses():
        if attr == "connect" and name in bound and signal != "currentPathChanged(QString)":
            pytest.fail(f"{name} is bound to the parameter node; react to the node's ModifiedEvent, not {signal}")


def test_selftest_edit_without_segment_editor_logic_matches_the_editor(mrml_scene):
    """Slicer 5.8 has no vtkSlicerSegmentEditorLogic (added in 5.10): the self-test's fallback stroke must
    give the same segments as the editor logic's Add / Remove."""
    import numpy as np
    import SimpleITK as sitk

    from HER2RadiomicsLib import mrml_bridge as mb
    from HER2RadiomicsLib.logic import HER2RadiomicsLogic
    from HER2RadiomicsLib.selftest import _edit, segment_editor_logic

    img = sitk.Image(24, 20, 10, sitk.sitkInt16)
    img.SetSpacing((0.8, 0.9, 2.0))
    img.SetOrigin((10.0, -5.0, 3.0))
    volume = mb.volume_node_from_image(img, "v", scene=mrml_scene.scene)
    logic = HER2RadiomicsLogic(mrml_scene.scene)
    seg = logic.setup_segmentation(volume)
    editor = segment_editor_logic(mrml_scene.scene, logic.segment_editor_node(seg, volume), volume, mrml_scene.app_logic)
    if editor is None:
        pytest.skip("this slicer-core has no vtkSlicerSegmentEditorLogic")
    rng = np.random.default_rng(3)
    add, remove = rng.random((10, 20, 24)) < 0.3, rng.random((10, 20, 24)) < 0.3
    for name, ed in (("air", editor), ("pectoralis", None)):
        _edit(ed, seg, name, add, remove=False, volume_node=volume)
        _edit(ed, seg, name, remove, remove=True, volume_node=volume)
    air = sitk.GetArrayFromImage(mb.mask_from_segment(seg, "air", volume)).astype(bool)
    pect = sitk.GetArrayFromImage(mb.mask_from_segment(seg, "pectoralis", volume)).astype(bool)
    assert np.array_equal(air, add & ~remove)
    assert np.array_equal(pect, air)
