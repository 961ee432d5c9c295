"""The panel's QA section, headless (slicer-core + the widget fakes of slicer_fakes): a cohort QA session reviewed
by clicking through the panel writes byte-for-byte the files that the same review through the core API
(her2radiomics.qa) writes; a case's results never leak into the next; a blind reader is shown no lesion.

The pectoralis edit is made with Slicer's own segment editor logic (vtkSlicerSegmentEditorLogic, Erase mode), the
core review's with a numpy mask of the same voxels; the reference for the shells is the scipy EDT shell.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from qa_synth import QA_DISTANCES, FixedClock, brute_excluded_mm3, erased_near, write_qa_cohort
from scipy import ndimage

from her2radiomics import qa
from her2radiomics.qa import QASession
from HER2RadiomicsLib import mrml_bridge as mb

slicer = pytest.importorskip("slicer")
pytestmark = pytest.mark.slicer
pytest_plugins = ["mrml_scene"]

ERASE_MM = 4.0


@pytest.fixture
def panel(mrml_scene, monkeypatch, tmp_path):
    from slicer_fakes import FakeShortcut, Panel

    monkeypatch.setenv("HER2RADIOMICS_SESSION_DIR", str(tmp_path / "sessions"))
    p = Panel(mrml_scene, monkeypatch, version="5.12.3", testing=True)
    monkeypatch.setattr(FakeShortcut, "made", [])
    p.start()
    yield p
    p.cleanup()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_qa_cohort(tmp_path_factory.mktemp("qa_panel_cohort"), 3, exclusions=True)


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != qa.LOCK_FILE}


def _near_lesion(lesion: sitk.Image, mm: float) -> np.ndarray:
    les = sitk.GetArrayFromImage(lesion).astype(bool)
    return ndimage.distance_transform_edt(~les, sampling=tuple(reversed(lesion.GetSpacing()))) <= mm


def _core_review(cohort, folder):
    """The reference review through the Python API: approve c0, erase the pectoralis near c1's lesion, reject c2."""
    s = QASession.create(cohort, folder, reader="R1", distances=QA_DISTANCES, clock=FixedClock())
    s.start_review("c0", "R1")
    s.approve("c0", "R1")
    s.start_review("c1", "R1")
    c1 = s.case("c1")
    pect, lesion = sitk.ReadImage(c1.pectoralis), sitk.ReadImage(c1.lesion)
    s.approve("c1", "R1", pectoralis=erased_near(pect, lesion, ERASE_MM))
    s.start_review("c2", "R1")
    s.set_status("c2", "R1", "rejected", note="motion artefact")
    return s


def test_panel_review_writes_the_same_files_as_the_core_api(panel, mrml_scene, cohort, tmp_path):
    from her2radiomics.errors import UserError

    reference = _core_review(cohort, tmp_path / "A")
    clock = FixedClock()
    QASession.create(cohort, tmp_path / "B", reader="R1", distances=QA_DISTANCES, clock=clock)
    widget, ui, pn = panel.widget, panel.ui, panel.pn
    widget.qa.clock = clock

    assert ui.qaProgressLabel.text == "No QA session open." and not ui.qaApproveButton.enabled
    ui.qaSessionDirectoryButton.directory = str(tmp_path / "B")
    ui.qaOpenSessionButton.click()
    assert pn.caseId == "c0" and pn.inputVolume.GetName() == "c0"
    assert ui.qaProgressLabel.text == ("Case 1 of 3: c0 (pending) | R1: 0 of 3 reviewed "
                                       "(0 approved, 0 edited, 0 rejected, 3 pending)")
    assert ("addItems", (["c0  [pending]", "c1  [pending]", "c2  [pending]"],)) in ui.qaCaseListWidget.calls
    assert pn.distances == "3 5"
    # the manifest's masks are in the scene, voxel for voxel
    c0 = reference.case("c0")
    for name in ("lesion", "air", "pectoralis"):
        np.testing.assert_array_equal(sitk.GetArrayFromImage(mb.mask_from_segment(pn.segmentation, name, pn.inputVolume)),
                                      sitk.GetArrayFromImage(sitk.ReadImage(getattr(c0, name))))
    ui.generateShellsButton.click()   # results of c0 ...
    assert widget.logic.core.state.regions is not None and ui.shellsStatusLabel.text
    old_nodes = (pn.inputVolume, pn.segmentation)

    ui.qaApproveButton.click()        # ... approve -> the next case is loaded
    assert pn.caseId == "c1" and pn.inputVolume.GetName() == "c1"
    assert widget.logic.core.state.regions is None and widget.logic.core.state.inputs is None   # ... never leak
    assert ui.shellsStatusLabel.text == "" and ui.warningsTextEdit.calls[-1] == ("setPlainText", ("",))
    assert all(n.GetScene() is None for n in old_nodes)               # the previous case left the scene
    assert mrml_scene.scene.GetNodesByClass("vtkMRMLScalarVolumeNode").GetNumberOfItems() == 1

    # the radiologist erases the pectoralis within 4 mm of the lesion with the segment editor, then Apply
    vol, seg = pn.inputVolume, pn.segmentation
    lesion = mb.mask_from_segment(seg, "lesion", vol)
    before = sitk.GetArrayFromImage(mb.mask_from_segment(seg, "pectoralis", vol)).astype(bool)
    editor = mrml_scene.segment_editor(widget.logic.core.segmentEditorNode(seg, vol), vol)
    mrml_scene.edit_segment(editor, seg, mb.segment_id(seg, "pectoralis"), _near_lesion(lesion, ERASE_MM), "remove")
    erased = sitk.GetArrayFromImage(mb.mask_from_segment(seg, "pectoralis", vol)).astype(bool)
    assert np.count_nonzero(before & ~erased) > 0 and not (erased & ~before).any()
    ui.applyExclusionsButton.click()
    regions = widget.logic.core.state.regions
    vv = float(np.prod(vol.GetSpacing()))
    erased_img = sitk.GetImageFromArray(erased.astype(np.uint8))
    erased_img.CopyInformation(lesion)
    for d in QA_DISTANCES:   # the shells regained the erased voxels within their distance (scipy EDT reference)
        assert regions.stats[f"peri{d:g}"]["excluded_pectoralis_mm3"] == pytest.approx(
            brute_excluded_mm3(lesion, erased_img, d), abs=vv / 2)

    from slicer_fakes import FakeShortcut

    shortcuts = {s.keys: s for s in FakeShortcut.made}
    assert set(shortcuts) == {"Ctrl+Alt+Left", "Ctrl+Alt+Right", "Ctrl+Alt+A", "Ctrl+Alt+E", "Ctrl+Alt+R"}
    shortcuts["Ctrl+Alt+A"].activate()                     # approve by the keyboard
    assert pn.caseId == "c2"
    ui.qaNoteLineEdit.text = "motion artefact"
    shortcuts["Ctrl+Alt+R"].activate()                     # reject by the keyboard; the last case stays
    assert ui.qaProgressLabel.text == ("Case 3 of 3: c2 (rejected) | R1: 3 of 3 reviewed "
                                       "(1 approved, 1 edited, 1 rejected, 0 pending)")

    # the same files, byte for byte (records, masks and their hashes, status.csv, audit trail, session.json)
    a, b = _files(tmp_path / "A"), _files(tmp_path / "B")
    assert sorted(a) == sorted(b) and len([n for n in a if n.startswith("masks/")]) == 1 and len(a) == 7, sorted(a)
    for name in a:
        assert a[name] == b[name], name
    rev = reference.review("c1", "R1")
    assert rev.status == "edited" and set(rev.masks) == {"pectoralis"}
    assert json.loads(b["reviews/c1/R1.json"])["excluded_after"]["peri3"]["pectoralis"] == pytest.approx(
        brute_excluded_mm3(lesion, erased_img, 3.0))

    # Previous shows the reader's edited pectoralis and never undoes the decision
    ui.qaPreviousButton.click()
    assert pn.caseId == "c1" and widget.qa.session.review("c1", "R1").status == "edited"
    np.testing.assert_array_equal(sitk.GetArrayFromImage(mb.mask_from_segment(pn.segmentation, "pectoralis",
                                                                              pn.inputVolume)).astype(bool), erased)
    assert _files(tmp_path / "B") == b
    # a closed scene takes the case with it: no decision on nodes that are gone
    panel.close_scene()
    with pytest.raises(UserError, match="left the scene"):
        ui.qaApproveButton.click()
    assert _files(tmp_path / "B") == b


def test_panel_blind_reader_and_needs_edit(panel, cohort, tmp_path):
    from her2radiomics.errors import UserError

    s = QASession.create(cohort, tmp_path / "S", reader="R1", distances=QA_DISTANCES)
    s.add_reader("R2", cases=["c1"])
    ui, pn = panel.ui, panel.pn
    ui.qaSessionDirectoryButton.directory = str(tmp_path / "S")
    ui.qaReaderLineEdit.text = "R2"
    ui.qaOpenSessionButton.click()
    assert pn.caseId == "c1" and "blind reader" in ui.qaProgressLabel.text
    lesion_seg = mb.mask_from_segment(pn.segmentation, "lesion", pn.inputVolume)
    assert not sitk.GetArrayFromImage(lesion_seg).any()                    # reader 1's lesion is not shown
    with pytest.raises(UserError, match="'lesion' segment of case c1 is empty"):
        ui.qaApproveButton.click()
    ui.qaNoteLineEdit.text = "lesion margin unclear"
    ui.qaNeedsEditButton.click()
    assert s.review("c1", "R2").status == "pending" and s.review("c1", "R2").note == "needs edit: lesion margin unclear"
    assert "[pending]  needs edit: lesion margin unclear" in ui.qaCaseListWidget.calls[-2][1][0][0]
    own = sitk.BinaryErode(sitk.ReadImage(s.case("c1").lesion), [1, 1, 1])
    mb.set_segment_from_mask(pn.segmentation, "lesion", own)              # reader 2 paints their own lesion
    ui.qaNoteLineEdit.text = ""
    ui.qaApproveButton.click()
    rev = s.review("c1", "R2")
    assert rev.status == "edited" and set(rev.masks) == {"lesion"}        # the exclusions were not touched
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(s.path / rev.masks["lesion"]["file"]))),
                                  sitk.GetArrayFromImage(own))
    assert s.review("c1", "R1").status == "pending"                        # reader 1's review is separate
    with pytest.raises(UserError, match="reader 'R9' is not in"):
        ui.qaReaderLineEdit.text = "R9"
        ui.qaOpenSessionButton.click()
