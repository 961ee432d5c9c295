"""The fresh-Slicer lane (issue 10): the panel where nothing extra is installed yet, then the whole workflow.

Runs only inside the environment ``scripts/fresh_slicer_lane.sh`` builds (Python 3.12 with exactly the
packages of a fresh Slicer 5.12 or 5.10 plus slicer-core); elsewhere it is skipped. Steps: import the module
file, construct the module, ``setup()`` / ``enter()`` / ``exit()`` of the widget on the fakes of
``slicer_fakes``; prove nothing Slicer lacks was imported; accept the dependency prompt and let the module's
installer put PyYAML + pandas into a temporary target from PyPI, through a 5.10-like ``slicer.util.pip_install``
(no ``slicer.packaging``) and through a 5.12-like ``slicer.packaging.pip_ensure``; install what the
SlicerRadiomics extension provides; segment -> shells -> exclusions -> erase -> Extract in a background
process started through a PythonSlicer-like launcher (Cancel, then a completed run) -> Predict with the shipped
demo cards -> Save session; close the scene, a second case, and Predict refuses the first case's results.
HER2_FRESH_SLICER_INSTALLER (5.10.0 / 5.12.3) picks the Slicer API the installer meets.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

LANE = os.environ.get("HER2_FRESH_SLICER")
if not LANE:
    pytest.skip("runs in the fresh-Slicer lane only (bash scripts/fresh_slicer_lane.sh)", allow_module_level=True)

import numpy as np  # noqa: E402

slicer = pytest.importorskip("slicer")
pytest_plugins = ["mrml_scene"]

from processes import group_alive, process_alive  # noqa: E402
from slicer_fakes import REPO, Panel, pip_into  # noqa: E402

NOT_BUNDLED = ("yaml", "pandas", "sklearn", "joblib", "matplotlib", "tqdm", "radiomics", "pywt")
FAKES = Path(__file__).resolve().parent / "fakes"


def _pins() -> dict[str, str]:
    out = {}
    for line in (REPO / "Testing" / "FreshSlicer" / f"slicer-{LANE}.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, ver = line.split("==", 1)
            out[name.lower()] = ver
    return out


def test_this_is_a_fresh_slicer_python():
    from importlib import metadata

    assert sys.version_info[:2] == (3, 12)
    for name in ("numpy", "scipy", "simpleitk"):
        assert metadata.version(name) == _pins()[name], name
    import importlib.util

    present = [m for m in NOT_BUNDLED if importlib.util.find_spec(m) is not None]
    assert present == [], f"a fresh Slicer has none of {present}"


@pytest.fixture(scope="module")
def radiomics_dir(tmp_path_factory):
    """What installing the SlicerRadiomics extension adds: pyradiomics and its dependencies, in their own folder
    (installed once per lane environment by the lane script; here when the test runs alone)."""
    ready = os.environ.get("HER2_FRESH_SLICER_RADIOMICS")
    if ready and (Path(ready) / "radiomics").is_dir():
        return Path(ready)
    target = tmp_path_factory.mktemp("SlicerRadiomics")
    from HER2RadiomicsLib import deps

    constraints = deps.write_constraints(target.parent)
    t0 = time.monotonic()
    pip_into(target, ["-c", str(constraints), "-r", str(REPO / "Testing" / "FreshSlicer" / "pyradiomics.txt")])
    print(f"[lane] SlicerRadiomics stand-in installed in {time.monotonic() - t0:.0f} s")
    sys.path.remove(str(target))  # not importable until the 'extension' is installed in the test
    return target


def _paint(ph, seg, vol, scene_ctx):
    """The lesion painted with the Segment Editor logic (Paint = ModificationModeAdd), as the user would."""
    import SimpleITK as sitk

    from HER2RadiomicsLib import mrml_bridge as mb

    editor_node = scene_ctx.scene.GetSingletonNode("HER2Radiomics", "vtkMRMLSegmentEditorNode")
    editor = scene_ctx.segment_editor(editor_node, vol)
    mask = sitk.GetArrayFromImage(ph.lesion).astype(np.uint8)
    scene_ctx.edit_segment(editor, seg, mb.segment_id(seg, "lesion"), mask, mode="add")
    return editor


def test_fresh_slicer_whole_workflow(mrml_scene, monkeypatch, tmp_path, radiomics_dir):
    """One Slicer session per process (the lane script runs it once per installer API): a package imported
    once stays imported, as in Slicer, so the 5.10 and 5.12 installers each get a fresh interpreter."""
    import types

    installer = os.environ.get("HER2_FRESH_SLICER_INSTALLER", {"5.10": "5.10.0", "5.12": "5.12.3"}[LANE])
    target = tmp_path / "slicer-site-packages"
    monkeypatch.setenv("HER2RADIOMICS_SESSION_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv("PATH", str(FAKES) + os.pathsep + os.environ.get("PATH", ""))  # PythonSlicer = the launcher
    monkeypatch.setenv("HER2_REAL_PYTHON", sys.executable)
    monkeypatch.setenv("HER2_FAKE_LAUNCHER_PIDS", str(tmp_path / "pids"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in [m for m in sys.modules if m.split(".")[0] in ("her2radiomics", "HER2RadiomicsLib", "HER2Radiomics")]:
        monkeypatch.delitem(sys.modules, name)  # each run starts as a new Slicer session would

    p = Panel(mrml_scene, monkeypatch, version=installer, testing=False, target=target, answer=True)
    try:
        _workflow(p, mrml_scene, monkeypatch, tmp_path, target, radiomics_dir, types)
    finally:
        p.cleanup()


def _nomogram_with_slicers_pillow(p, tmp_path):
    """The Prediction section's nomogram, drawn with the pillow this Slicer bundles (no matplotlib): the demo card
    has none (one line), a card trained with --clinical shows its image; then the demo stage-2 card again."""
    from mrml_scene import clinical_models, model_card

    assert "this card has no nomogram" in p.ui.nomogramCaptionLabel.text
    assert "not for clinical use" in p.ui.nomogramCaptionLabel.text.lower()
    card = tmp_path / "clinical.json"
    card.write_text(json.dumps(model_card("stage2", ["x"], [0.0], [1.0], [1.0], 0.0, clinical=clinical_models())),
                    encoding="utf-8")
    demo_stage2 = p.ui.stage2ModelPathLineEdit.currentPath
    p.ui.stage2ModelPathLineEdit.currentPath = str(card)
    pixmap = p.ui.nomogramImageLabel.shownPixmap
    assert pixmap is not None and not pixmap.isNull() and pixmap.width() > 0, p.ui.nomogramCaptionLabel.text
    assert "nomogram of its combined model" in p.ui.nomogramCaptionLabel.text
    assert [m for m in NOT_BUNDLED if m in sys.modules] == []
    p.ui.stage2ModelPathLineEdit.currentPath = demo_stage2
    assert p.ui.nomogramImageLabel.shownPixmap is None


def _workflow(p, scene_ctx, monkeypatch, tmp_path, target, radiomics_dir, types):
    from her2radiomics.errors import UserError
    from her2radiomics.phantom import make_phantom
    from HER2RadiomicsLib import mrml_bridge as mb

    installer = p.app.applicationVersion
    # the module as Slicer loads it: construct, setup, enter, exit, enter
    parent = types.SimpleNamespace()
    p.module.HER2Radiomics(parent)
    assert "Supported: 3D Slicer 5.10 and 5.12" in parent.helpText and "HER2Radiomics supports" not in parent.helpText
    p.start()
    p.widget.exit()
    p.widget.enter()
    assert p.errors == [] and p.ui.segmentEditorWidget.errors == []
    loaded = [m for m in NOT_BUNDLED if m in sys.modules]
    assert loaded == [], f"opening the panel imported {loaded}, which a fresh Slicer does not have"
    assert Path(p.pn.parameterFile).name == "her2radiomics_demo.yaml"  # the demo card's file, chosen by name
    assert Path(p.pn.stage1Model).name == "her2radiomics_demo_stage1.json"
    _nomogram_with_slicers_pillow(p, tmp_path)

    # case A: segment, shells, exclusions, erase
    ph = make_phantom(seed=0, size=(128, 128, 48), spacing=(0.95, 0.95, 1.8), lesion_radius_mm=4.0)
    vol = mb.volume_node_from_image(ph.image, "case A")
    p.ui.inputVolumeSelector.setCurrentNode(vol)
    p.ui.caseIdLineEdit.text = "A"
    p.ui.prepareSegmentationButton.click()
    seg = p.pn.segmentation
    editor = _paint(ph, seg, vol, scene_ctx)
    p.ui.generateShellsButton.click()
    p.ui.detectAirButton.click()
    p.ui.detectPectoralisButton.click()
    p.ui.editPectoralisButton.click()
    pect = np.asarray(slicer.util.arrayFromSegmentBinaryLabelmap(seg, mb.segment_id(seg, "pectoralis"), vol))
    if pect.any():
        erase = np.zeros_like(pect, dtype=np.uint8)
        k = int(np.argwhere(pect)[:, 0].mean())
        erase[k:] = pect[k:]
        scene_ctx.edit_segment(editor, seg, mb.segment_id(seg, "pectoralis"), erase, mode="remove")
    p.ui.applyExclusionsButton.click()
    assert "peri1, peri3, peri5" in p.ui.shellsStatusLabel.text
    assert [m for m in NOT_BUNDLED if m in sys.modules] == []

    # Extract: the dependency prompt, the module's installer into the temporary target (from PyPI)
    t0 = time.monotonic()
    with pytest.raises(UserError, match="SlicerRadiomics"):  # PyYAML + pandas installed; pyradiomics is the extension's
        p.ui.extractButton.click()
    print(f"[lane] {installer}: dependencies installed in {time.monotonic() - t0:.0f} s: {p.installs}")
    assert len(p.questions) == 1 and "PyYAML, pandas" in p.questions[0]
    assert len(p.errors) == 1 and "SlicerRadiomics" in p.errors[0]
    p.errors.clear()
    (call,) = p.installs
    assert call[0] == ("pip_install" if installer.startswith("5.10") else "pip_ensure")
    assert (target / "yaml").is_dir() and (target / "pandas").is_dir()
    import numpy

    assert numpy.__version__ == _pins()["numpy"]  # the bundled numpy was never replaced
    np_target = list(target.glob("numpy-*.dist-info"))
    assert all(d.name.startswith(f"numpy-{_pins()['numpy']}.") for d in np_target), "pip changed Slicer's numpy"

    # install the SlicerRadiomics extension (its pyradiomics), as the message says; the worker sees both folders
    sys.path.append(str(radiomics_dir))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(target), str(radiomics_dir)]))

    # background extraction through the launcher: Cancel ends every process of the job's group within 2 s
    p.ui.extractButton.click()
    job = p.widget._job
    assert job is not None and p.ui.extractButton.text == "Cancel"
    assert Path(job.python).name == "PythonSlicer"
    pgid = job._proc.pid
    deadline = time.monotonic() + 30
    while not (tmp_path / "pids").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int((tmp_path / "pids").read_text(encoding="utf-8").split()[-1])
    p.ui.extractButton.click()  # Cancel
    assert p.ui.extractStatusLabel.text == "Cancelled."
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.0 and (process_alive(child) or group_alive(pgid)):
        time.sleep(0.05)
    assert not process_alive(child) and not group_alive(pgid), "a process of the cancelled job outlived Cancel by 2 s"

    # a completed run
    t0 = time.monotonic()
    p.ui.extractButton.click()
    p.wait_job(600)
    print(f"[lane] {installer}: background extraction {time.monotonic() - t0:.0f} s")
    assert p.errors == [], p.errors
    n = len(p.widget.logic.core.state.features or {})
    assert n > 100 and p.ui.extractStatusLabel.text == f"{n} features"
    # the parameter file chosen by name before PyYAML existed is the one the demo card was trained with (by hash)
    card = json.loads(Path(p.pn.stage1Model).read_text(encoding="utf-8"))
    assert Path(p.pn.parameterFile).name == "her2radiomics_demo.yaml"
    assert p.widget.logic.core.state.parameter_file_hash == card["provenance"]["parameter_file_hash"]

    # Predict with the shipped demo cards, Save session
    p.ui.predictButton.click()
    probs = [float(x.text.rstrip(" %")) for x in (p.ui.pPositiveLabel, p.ui.pLowLabel, p.ui.pZeroLabel)]
    assert sum(probs) == pytest.approx(100.0, abs=0.2)
    p.ui.saveSessionButton.click()
    folder = Path(str(p.pn.sessionDirectory)) / "A"
    audit = json.loads((folder / "audit.json").read_text(encoding="utf-8"))
    assert audit["case_id"] == "A" and audit["prediction"]["p_positive"] == pytest.approx(probs[0] / 100, abs=1e-3)
    assert {"features.csv", "predictions.json", "regions.json", "segmentation.seg.nrrd"} <= set(audit["files"])
    assert audit["software"]["3D Slicer"].startswith(installer)

    # close the scene, load case B: nothing of A is shown or predicted
    p.close_scene()
    assert p.pn.inputVolume is None and p.ui.pPositiveLabel.text == "-"
    ph2 = make_phantom(seed=3, size=(96, 96, 40), spacing=(0.95, 0.95, 1.8), lesion_radius_mm=4.0)
    vol2 = mb.volume_node_from_image(ph2.image, "case B")
    p.ui.inputVolumeSelector.setCurrentNode(vol2)
    p.ui.caseIdLineEdit.text = "B"
    p.ui.prepareSegmentationButton.click()
    _paint(ph2, p.pn.segmentation, vol2, scene_ctx)
    with pytest.raises(UserError, match="no features yet"):
        p.ui.predictButton.click()
    assert p.errors == ["Prediction failed.\n\nno features yet; run Extract features first"]
