"""QA sessions (her2radiomics.qa, `her2radiomics qa`, `extract --qa`): statuses, edited masks with hashes, excluded
volumes checked against a brute-force EDT shell, audit trail, locking, crash-resume, blind second reader -> ICC
manifest, and extraction of only the approved cases with the edited masks."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from features_synth import SMALL_PARAMS
from qa_synth import QA_DISTANCES, FixedClock, brute_excluded_mm3, erased_near, eroded, write_qa_cohort

from her2radiomics import cli, io, qa
from her2radiomics.errors import UserError
from her2radiomics.qa import QASession


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_qa_cohort(tmp_path_factory.mktemp("qa_cohort"), 3)


@pytest.fixture
def small_params(tmp_path):
    """A small pyradiomics parameter file (a few features: fast extraction)."""
    path = tmp_path / "small.yaml"
    path.write_text(SMALL_PARAMS)
    return path


@pytest.fixture
def session(cohort, tmp_path):
    return QASession.create(cohort, tmp_path / "QA", reader="R1", distances=QA_DISTANCES, auto_exclusions=False,
                            clock=FixedClock())


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != qa.LOCK_FILE}


def test_create_status_and_reopen(session, cohort):
    assert [c.case_id for c in session.cases()] == ["c0", "c1", "c2"]
    (p,) = session.status()
    assert (p.total, p.reviewed, p.counts["pending"]) == (3, 0, 3)
    assert p.text() == "R1: 0 of 3 reviewed (0 approved, 0 edited, 0 rejected, 3 pending)"
    meta = json.loads((session.path / "session.json").read_text(encoding="utf-8"))
    assert meta["manifest"]["sha256"] == "sha256:" + hashlib.sha256(cohort.read_bytes()).hexdigest()
    assert meta["cases"][0]["image"] == str((cohort.parent / "c0" / "image.nrrd").resolve())
    session.set_status("c1", "R1", "approved")
    again = QASession.open(session.path)
    assert again.review("c1", "R1").status == "approved"
    assert again.status()[0].reviewed == 1
    assert again.next_pending("R1") == "c0" and again.next_pending("R1", after="c0") == "c2"
    status_csv = pd.read_csv(session.path / "status.csv", keep_default_na=False)
    assert status_csv[["case_id", "status"]].values.tolist() == [["c0", "pending"], ["c1", "approved"], ["c2", "pending"]]


def test_create_refuses_bad_input(cohort, tmp_path):
    QASession.create(cohort, tmp_path / "S")
    with pytest.raises(UserError, match="already a QA session"):
        QASession.create(cohort, tmp_path / "S")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(UserError, match="not an empty folder"):
        QASession.create(cohort, tmp_path / "full")
    with pytest.raises(UserError, match="reader name"):
        QASession.create(cohort, tmp_path / "T", reader="../evil")
    two = tmp_path / "two.csv"
    two.write_text(cohort.read_text(encoding="utf-8").replace("case_id,image,lesion", "case_id,image,lesion,reader")
                   .replace("lesion.nrrd\n", "lesion.nrrd,A\n") + "c0,c0/image.nrrd,c0/lesion.nrrd,B\n")
    (tmp_path / "c0").symlink_to(cohort.parent / "c0")
    with pytest.raises(UserError, match="several rows for case"):
        QASession.create(two, tmp_path / "U")
    assert not (tmp_path / "T").exists() and not (tmp_path / "U" / "session.json").exists()
    with pytest.raises(UserError, match="not a QA session"):
        QASession.open(tmp_path / "nothing")


def test_save_masks_hashes_and_excluded_volumes_match_brute_force(session, cohort):
    """Excluded mm3 per shell after the edit = voxels of the exact d-mm shell (scipy EDT) in the mask x voxel volume."""
    pect = sitk.ReadImage(str(cohort.parent / "c0" / "pectoralis.nrrd"))
    air = sitk.ReadImage(str(cohort.parent / "c0" / "air.nrrd"))
    lesion = sitk.ReadImage(str(cohort.parent / "c0" / "lesion.nrrd"))
    session.start_review("c0", "R1")
    rev = session.save_masks("c0", "R1", pectoralis=pect, air=air)
    assert rev.status == "pending" and set(rev.masks) == {"air", "pectoralis"}
    for kind, entry in rev.masks.items():
        f = session.path / entry["file"]
        assert entry["sha256"] == io.file_hash(f) and entry["file"].startswith(f"masks/c0/R1/{kind}-")
        np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(f))), sitk.GetArrayFromImage(
            pect if kind == "pectoralis" else air))
    for d in QA_DISTANCES:
        name = f"peri{d:g}"
        assert rev.excluded_before[name] == {"air": 0.0, "pectoralis": 0.0, "total": 0.0}  # no exclusion before
        assert rev.excluded_after[name]["pectoralis"] == pytest.approx(brute_excluded_mm3(lesion, pect, d))
        assert rev.excluded_after[name]["air"] == pytest.approx(brute_excluded_mm3(lesion, air, d))
    assert rev.excluded_after["peri5"]["pectoralis"] > 0   # the phantom's lesion lies 4 mm from the muscle
    # the reader is now shown the edited masks
    inp = session.inputs("c0", "R1")
    assert inp.sources == {"lesion": "manifest", "air": "edited", "pectoralis": "edited"}
    # a second edit of the same kind replaces the file; the old one is removed after the record points to the new
    old = session.path / rev.masks["pectoralis"]["file"]
    rev2 = session.save_masks("c0", "R1", pectoralis=erased_near(pect, lesion, 4.0))
    assert not old.exists() and (session.path / rev2.masks["pectoralis"]["file"]).exists()
    erased = sitk.ReadImage(str(session.path / rev2.masks["pectoralis"]["file"]))
    for d in QA_DISTANCES:
        assert rev2.excluded_after[f"peri{d:g}"]["pectoralis"] == pytest.approx(brute_excluded_mm3(lesion, erased, d))
    assert rev2.excluded_after["peri3"]["pectoralis"] == 0
    assert 0 < rev2.excluded_after["peri5"]["pectoralis"] < rev.excluded_after["peri5"]["pectoralis"]
    assert session.set_status("c0", "R1", "edited").status == "edited"


def test_approve_saves_only_changed_masks(session, cohort):
    lesion = sitk.ReadImage(str(cohort.parent / "c1" / "lesion.nrrd"))
    session.start_review("c1", "R1")
    rev = session.approve("c1", "R1", lesion=lesion)    # the same lesion as shown: not an edit
    assert rev.status == "approved" and rev.masks == {} and not (session.path / "masks").exists()
    assert session.start_review("c1", "R1").sources["lesion"] == "manifest"   # browsing back changes nothing
    assert session.review("c1", "R1").status == "approved"
    rev = session.approve("c1", "R1", lesion=eroded(lesion), note="trimmed the rim")
    assert rev.status == "edited" and set(rev.masks) == {"lesion"} and rev.note == "trimmed the rim"
    assert rev.history[0]["status"] == "approved"          # decided again: the earlier decision is kept
    assert rev.excluded_after["intra"]["volume_mm3"] < rev.excluded_before["intra"]["volume_mm3"]
    # the clock ticks 7 s per reading: start, status(approved) + audit, save_masks audit, status + audit
    assert rev.seconds == pytest.approx(7.0 * 5)


def test_bad_decisions_write_nothing(session, cohort):
    before = _files(session.path)
    with pytest.raises(UserError, match="needs a note"):
        session.set_status("c0", "R1", "rejected")
    with pytest.raises(UserError, match="no edited masks"):
        session.set_status("c0", "R1", "edited")
    with pytest.raises(UserError, match="unknown QA status"):
        session.set_status("c0", "R1", "maybe")
    with pytest.raises(UserError, match="not in QA session"):
        session.set_status("c9", "R1", "approved")
    with pytest.raises(UserError, match="reader 'R9' is not in"):
        session.set_status("c0", "R9", "approved")
    off = sitk.Image(10, 10, 10, sitk.sitkUInt8)
    with pytest.raises(UserError):
        session.save_masks("c0", "R1", air=off)
    assert _files(session.path) == before


def test_audit_trail_is_append_only_and_survives_a_torn_line(session):
    session.start_review("c0", "R1")
    session.set_status("c0", "R1", "rejected", note="motion   artefact")
    events = session.audit()
    assert [e["event"] for e in events] == ["create", "start", "status"]
    assert events[-1] | {"time": None, "os_user": None} == {
        "time": None, "os_user": None, "event": "status", "case_id": "c0", "reader": "R1", "reviewer": "R1",
        "status": "rejected", "note": "motion artefact"}
    text = (session.path / qa.AUDIT_FILE).read_text(encoding="utf-8")
    with open(session.path / qa.AUDIT_FILE, "a", encoding="utf-8") as f:
        f.write('{"time": "2026-')          # a crash in the middle of a line
    assert len(session.audit()) == 3
    session.set_status("c1", "R1", "approved")
    assert (session.path / qa.AUDIT_FILE).read_text(encoding="utf-8").startswith(text)
    assert session.audit()[-1]["status"] == "approved"


def test_crash_between_mask_and_record_resumes(session, cohort, monkeypatch):
    """A crash after the mask file but before the record leaves the old record (and an audit line); redo works."""
    pect = sitk.ReadImage(str(cohort.parent / "c2" / "pectoralis.nrrd"))

    def crash(*a, **k):
        raise OSError("power cut")

    monkeypatch.setattr(QASession, "_write_review", crash)
    with pytest.raises(OSError):
        session.save_masks("c2", "R1", pectoralis=pect)
    monkeypatch.undo()
    again = QASession.open(session.path)
    assert again.review("c2", "R1").masks == {} and again.review("c2", "R1").status == "pending"
    assert len(list((session.path / "masks").rglob("*.nrrd"))) == 1    # unreferenced, harmless
    rev = again.approve("c2", "R1", pectoralis=pect)
    assert rev.status == "edited" and (session.path / rev.masks["pectoralis"]["file"]).is_file()
    assert not list(session.path.rglob(".*.tmp-*"))


def test_second_writer_waits_for_the_lock(session, monkeypatch):
    fcntl = pytest.importorskip("fcntl")
    fd = open(session.path / qa.LOCK_FILE, "a", encoding="utf-8")  # noqa: SIM115 - held across the call
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        monkeypatch.setattr(qa, "LOCK_TIMEOUT_S", 0.2)
        with pytest.raises(UserError, match="being written by another process"):
            session.set_status("c0", "R1", "approved")
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        fd.close()
    assert session.set_status("c0", "R1", "approved").status == "approved"


def test_blind_second_reader_and_icc_manifest(session, cohort, tmp_path):
    session.set_status("c0", "R1", "approved")
    session.set_status("c1", "R1", "approved")
    session.add_reader("R2", cases=["c0", "c1"])
    assert session.is_blind("R2") and [c.case_id for c in session.cases("R2")] == ["c0", "c1"]
    inp = session.start_review("c0", "R2")
    assert inp.lesion is None and inp.sources["lesion"] == "hidden"   # reader 1's (the manifest's) lesion is hidden
    image, masks = session.load("c0", "R2")
    assert masks["lesion"] is None
    with pytest.raises(UserError, match="reviews blind"):
        session.approve("c0", "R2")
    own = eroded(sitk.ReadImage(str(cohort.parent / "c0" / "lesion.nrrd")))
    rev = session.approve("c0", "R2", lesion=own)
    assert rev.status == "edited" and rev.excluded_before is not None
    texts = [p.text() for p in session.status()]
    assert texts[1] == "R2: 1 of 2 reviewed (0 approved, 1 edited, 0 rejected, 1 pending)"
    n = session.write_manifest(tmp_path / "icc.csv")
    m = pd.read_csv(tmp_path / "icc.csv", keep_default_na=False)
    assert n == 3 and m[["case_id", "reader"]].values.tolist() == [["c0", "R1"], ["c1", "R1"], ["c0", "R2"]]
    assert m.loc[2, "lesion"] == str(session.path / rev.masks["lesion"]["file"])
    assert m.loc[0, "lesion"] == str((cohort.parent / "c0" / "lesion.nrrd").resolve())
    from her2radiomics.manifest import read_manifest
    specs = read_manifest(tmp_path / "icc.csv")   # the ICC extraction reads it as any two-reader manifest
    assert [(s.case_id, s.reader) for s in specs] == [("c0", "R1"), ("c1", "R1"), ("c0", "R2")]


def test_extract_only_approved_uses_edited_masks(session, cohort, tmp_path, capsys, small_params):
    """extract --qa --only-approved: approved/edited cases only, a note per skipped one, the edited lesion used."""
    lesion0 = sitk.ReadImage(str(cohort.parent / "c0" / "lesion.nrrd"))
    edited = eroded(lesion0)
    session.approve("c0", "R1", lesion=edited)
    session.set_status("c1", "R1", "rejected", note="motion")
    out = tmp_path / "F.csv"
    code = cli.main(["extract", str(cohort), "-o", str(out), "--params", str(small_params),
                     "--distances", "3", "5", "--qa", str(session.path), "--only-approved", "--no-progress",
                     "--no-auto-exclusions"])
    err = capsys.readouterr().err
    assert code == 0
    assert "note: skipped c1: QA status rejected (motion)" in err and "note: skipped c2: QA status pending" in err
    table = pd.read_csv(out)
    assert table["case_id"].tolist() == ["c0"]
    vv = float(np.prod(lesion0.GetSpacing()))
    n_edited = int(sitk.GetArrayFromImage(edited).sum())
    assert n_edited < int(sitk.GetArrayFromImage(lesion0).sum())
    assert table.loc[0, "intra_original_shape_VoxelVolume"] == pytest.approx(n_edited * vv)
    meta = json.loads(out.with_name("F.meta.json").read_text(encoding="utf-8"))
    assert meta["qa"]["only_approved"] is True and len(meta["qa"]["notes"]) == 2
    # without --qa the option makes no sense: one error line
    assert cli.main(["extract", str(cohort), "-o", str(tmp_path / "G.csv"), "--only-approved"]) == 2
    assert "--only-approved needs --qa SESSION" in capsys.readouterr().err


def test_cli_init_status_set_manifest(cohort, tmp_path, capsys):
    d = tmp_path / "QA"
    assert cli.main(["qa", "init", str(cohort), "-o", str(d), "--reader", "alice", "--distances", "3", "5"]) == 0
    assert "3 case(s), reader alice" in capsys.readouterr().out
    assert cli.main(["qa", "set", str(d), "c1", "approved"]) == 0
    assert cli.main(["qa", "set", str(d), "c2", "rejected", "--note", "wrong series"]) == 0
    capsys.readouterr()
    assert cli.main(["qa", "status", str(d)]) == 0
    out = capsys.readouterr().out
    assert "alice: 2 of 3 reviewed (1 approved, 0 edited, 1 rejected, 1 pending)" in out
    assert cli.main(["qa", "manifest", str(d), "-o", str(tmp_path / "m.csv")]) == 0
    assert pd.read_csv(tmp_path / "m.csv")["case_id"].tolist() == ["c1"]
    capsys.readouterr()
    assert cli.main(["qa", "set", str(d), "c0", "rejected"]) == 2
    assert capsys.readouterr().err.strip() == "error: rejecting case c0 needs a note saying why"
    assert cli.main(["qa", "status", str(tmp_path)]) == 2
    assert "is not a QA session" in capsys.readouterr().err
    assert cli.main(["qa", "init", str(cohort), "-o", str(d)]) == 2
    assert "already a QA session" in capsys.readouterr().err


def test_second_reader_feeds_the_icc_filter(session, cohort, tmp_path, capsys, small_params):
    """qa manifest -> extract -> selection.icc_filter: the blind reader's lesions give the two-reader ICC table."""
    from her2radiomics import selection

    session.add_reader("R2")
    for c in session.cases():
        session.set_status(c.case_id, "R1", "approved")
        session.start_review(c.case_id, "R2")
        session.approve(c.case_id, "R2", lesion=eroded(sitk.ReadImage(c.lesion)))
    assert cli.main(["qa", "manifest", str(session.path), "-o", str(tmp_path / "icc_manifest.csv")]) == 0
    out = tmp_path / "icc.csv"
    assert cli.main(["extract", str(tmp_path / "icc_manifest.csv"), "-o", str(out), "--params",
                     str(small_params), "--distances", "3", "5", "--no-progress", "--no-auto-exclusions"]) == 0
    table = pd.read_csv(out)
    assert sorted(set(zip(table["case_id"], table["reader"], strict=True))) == [
        (f"c{i}", r) for i in range(3) for r in ("R1", "R2")]
    r1 = table[table.reader == "R1"].set_index("case_id")["intra_original_shape_VoxelVolume"]
    r2 = table[table.reader == "R2"].set_index("case_id")["intra_original_shape_VoxelVolume"]
    assert (r2 < r1).all()      # reader 2's own (eroded) lesions, not reader 1's
    feats = [c for c in table.columns if c.startswith("intra_")]
    kept, iccs, notes = selection.icc_filter(table, feats, "case_id")
    assert set(iccs) <= set(feats) and len(iccs) > 0 and "3 cases read by both readers (r1, r2)" in notes[0]


def test_review_needs_no_package_slicer_lacks(session, cohort):
    """The panel reviews before pandas / PyYAML / pyradiomics are installed: open, load, approve import none."""
    import subprocess
    import sys

    from conftest import PKG_DIR

    code = ("import sys, SimpleITK as sitk\nfrom her2radiomics.qa import QASession\n"
            f"s = QASession.open({str(session.path)!r})\ns.start_review('c0', 'R1')\nimage, masks = s.load('c0', 'R1')\n"
            "s.approve('c0', 'R1', pectoralis=masks['lesion'])\n"
            "print(sorted(m for m in ('pandas', 'yaml', 'radiomics', 'joblib', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, encoding="utf-8", timeout=120,
                         env={"PYTHONPATH": str(PKG_DIR), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_report_shows_the_qa_summary(session, cohort, tmp_path, capsys):
    """report --qa: per reader reviewed / approved / edited / rejected, who, and the median review time."""
    session.start_review("c0", "R1", reviewer="dr_a")
    session.set_status("c0", "R1", "approved")                   # 2 ticks of 7 s: 14 s
    session.start_review("c1", "R1", reviewer="dr_b")
    session.save_masks("c1", "R1", air=sitk.ReadImage(str(cohort.parent / "c1" / "air.nrrd")))
    session.set_status("c1", "R1", "edited")                     # 4 ticks: 28 s
    session.start_review("c2", "R1", reviewer="dr_a")
    session.set_status("c2", "R1", "rejected", note="motion")   # 14 s
    s = session.summary()["readers"]["R1"]
    assert (s["reviewed"], s["approved"], s["edited"], s["rejected"], s["pending"]) == (3, 1, 1, 1, 0)
    assert s["reviewers"] == ["dr_a", "dr_b"] and s["median_review_seconds"] == pytest.approx(14.0)
    pd.DataFrame({"case_id": ["c0"], "p_positive": [0.4], "p_low": [0.3], "p_zero": [0.3], "stage1_call": ["negative"],
                  "stage2_call": ["low"]}).to_csv(tmp_path / "P.csv", index=False)
    pd.DataFrame({"case_id": ["c0"], "stage": ["stage1"], "feature": ["intra_x"], "value": [1.0], "z": [0.5],
                  "coefficient": [0.2], "contribution": [0.1]}).to_csv(
        tmp_path / "P.contributions.csv", index=False)
    assert cli.main(["report", "--predictions", str(tmp_path / "P.csv"), "--qa", str(session.path),
                     "-o", str(tmp_path / "r.html")]) == 0
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert '<section id="qa"><h2>Segmentation QA</h2>' in text
    assert ("<td class=l>R1</td><td>3</td><td>3</td><td>1</td><td>1</td><td>1</td><td>0</td>"
            "<td class=l>dr_a, dr_b</td><td>14.0 s</td>") in text
