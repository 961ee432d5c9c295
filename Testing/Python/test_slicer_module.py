"""The module's parameter node against its .ui (bindings), the .ui's declarations, runtime dependencies,
packaging, and the module self-test's workflow run headless on slicer-core. (That the widget uses only names of
the .ui, with the API their classes have in Qt / CTK / Slicer, is checked by driving it: slicer_fakes.WIDGET_API.)
"""

from __future__ import annotations

import importlib
import pathlib
import re
import typing
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from her2radiomics.errors import UserError
from HER2RadiomicsLib import deps

REPO = Path(__file__).resolve().parents[2]
UI_FILE = REPO / "Resources" / "UI" / "HER2Radiomics.ui"
pytest_plugins = ["mrml_scene"]

PARAMETER_WIDGETS = {  # parameterNodeWrapper's connectors (Base/Python/slicer/parameterNodeWrapper/guiConnectors.py)
    "str": {"QLineEdit", "QLabel", "QTextEdit"},
    "bool": {"QCheckBox", "ctkCheckBox", "QPushButton"},
    "pathlib.Path": {"ctkPathLineEdit", "ctkDirectoryButton"},
}


def _ui_widgets() -> dict[str, ET.Element]:
    root = ET.parse(UI_FILE).getroot()
    return {w.get("name"): w for w in root.iter("widget")}


def test_parameter_node_fields_bind_to_ui_widgets(slicer_module):
    """Every parameter of the module's parameter node (its declared types, as parameterNodeWrapper reads them) has
    exactly one widget in the .ui that can represent that type."""
    hints = typing.get_type_hints(slicer_module.HER2RadiomicsParameterNode, globalns=vars(slicer_module))
    fields = {name: ("pathlib.Path" if typ is pathlib.Path else typ.__name__) for name, typ in hints.items()}
    bound = {}
    for w in _ui_widgets().values():
        for prop in w.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[prop.find("string").text] = w
    by_hand = dict(slicer_module.PATH_FIELDS)
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
    assert sections == ["Input", "Lesion", "Peritumoral shells", "Exclusions", "Features", "Prediction", "QA",
                        "DCE series"]


def test_module_file_imports_headless_and_has_template_classes(slicer_module):
    mod = slicer_module
    for name in ("HER2Radiomics", "HER2RadiomicsWidget", "HER2RadiomicsLogic", "HER2RadiomicsTest", "HER2RadiomicsParameterNode"):
        assert hasattr(mod, name), name
    assert hasattr(mod.HER2RadiomicsTest, "runTest")
    import sys

    base = sys.modules["slicer.ScriptedLoadableModule"]  # the stand-in installed by the fixture, not a stub in the module
    for name, cls in (("HER2Radiomics", "ScriptedLoadableModule"), ("HER2RadiomicsWidget", "ScriptedLoadableModuleWidget"),
                      ("HER2RadiomicsLogic", "ScriptedLoadableModuleLogic"), ("HER2RadiomicsTest", "ScriptedLoadableModuleTest")):
        assert issubclass(getattr(mod, name), getattr(base, cls)), name
    assert isinstance(mod.HER2RadiomicsLogic().core, importlib.import_module("HER2RadiomicsLib.logic").PanelLogic)


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
    from her2radiomics.modelcard import parameter_file_for_card
    from HER2RadiomicsLib.logic import default_model_cards
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

    from her2radiomics.modelcard import card_notice, gdi_zones
    from HER2RadiomicsLib.logic import default_model_cards, gdi_html, parse_distances

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
    zones = gdi_zones({"gdi": {"internal": {"value": 0.10, "zone": "safe"}, "external": {"value": 0.25, "zone": "high"}}})
    assert zones == {"internal": (0.10, "safe"), "external": (0.25, "high")}
    badges = [(split, v, z) for split, (v, z) in zones.items()]
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
    from her2radiomics.modelcard import parameter_file_for_card

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


def test_selftest_edit_without_segment_editor_logic_matches_the_editor(mrml_scene):
    """Slicer 5.8 has no vtkSlicerSegmentEditorLogic (added in 5.10): the self-test's fallback stroke must
    give the same segments as the editor logic's Add / Remove."""
    import numpy as np
    import SimpleITK as sitk

    from HER2RadiomicsLib import mrml_bridge as mb
    from HER2RadiomicsLib.logic import PanelLogic
    from HER2RadiomicsLib.selftest import _edit, segment_editor_logic

    img = sitk.Image(24, 20, 10, sitk.sitkInt16)
    img.SetSpacing((0.8, 0.9, 2.0))
    img.SetOrigin((10.0, -5.0, 3.0))
    volume = mb.volume_node_from_image(img, "v", scene=mrml_scene.scene)
    logic = PanelLogic(mrml_scene.scene)
    seg = logic.setupSegmentation(volume)
    editor = segment_editor_logic(mrml_scene.scene, logic.segmentEditorNode(seg, volume), volume, mrml_scene.app_logic)
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
