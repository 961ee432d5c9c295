"""A real two-centre cohort goes through without losing cases (issue 12, items 1 and 5-7).

An empty or too-thin shell costs only that region's columns (NaN, reason in FEATURES.notes.csv and in
FEATURES.meta.json), never the case; inputs as they arrive (DICOM series, pyradiomics' batch CSV, multi-label masks,
swapped image/mask) get a message naming what is wrong and an option that exists.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from conftest import run_cli
from features_synth import textured_case

from her2radiomics import __version__, batch, features, regions
from her2radiomics.manifest import read_manifest


def _two_centres(folder):
    """Centre A at 0.74 x 0.74 x 1.2 mm, centre B at 1.2 x 1.2 x 3 mm (the 1 mm ring is thinner than its voxel)."""
    folder.mkdir(parents=True, exist_ok=True)
    img_a, les_a, _ = textured_case(seed=0, shape_zyx=(24, 48, 48), radius_mm=4.0)
    img_b, les_b, _ = textured_case(seed=1, shape_zyx=(14, 40, 40), spacing_xyz=(1.2, 1.2, 3.0), radius_mm=6.0)
    for name, img in (("A1_image", img_a), ("A1_lesion", les_a), ("B1_image", img_b), ("B1_lesion", les_b)):
        sitk.WriteImage(img, str(folder / f"{name}.nrrd"), True)
    manifest = folder / "manifest.csv"
    manifest.write_text("case_id,image,lesion\nA1,A1_image.nrrd,A1_lesion.nrrd\nB1,B1_image.nrrd,B1_lesion.nrrd\n")
    return manifest, (img_b, les_b)


def test_regions_name_the_real_cause_of_an_empty_shell():
    img, les, _ = textured_case(seed=1, shape_zyx=(14, 40, 40), spacing_xyz=(1.2, 1.2, 3.0), radius_mm=6.0)
    r = regions.build_regions(img, les, (1.0, 3.0, 5.0), auto_exclusions=False)
    assert r.stats["peri1"]["voxels"] == 0 and r.stats["peri3"]["voxels"] > 0
    reason = r.stats["peri1"]["empty_reason"]
    assert "thinner than the voxel" in reason and "1.2 mm along x" in reason and "3 mm along z" in reason
    assert "exclusions" not in reason  # the old message blamed exclusions and clipping
    assert [w for w in r.warnings if w.startswith("peri1")] == [f"{reason}; its features cannot be computed"]
    assert any(w.startswith("peri3: 3 mm ring is thinner") for w in r.warnings) is False  # 3 mm = the slice: not thin
    # emptied by the exclusions: the message says so, with the volumes
    air = sitk.GetImageFromArray((sitk.GetArrayFromImage(les) == 0).astype(np.uint8))
    air.CopyInformation(img)
    r = regions.build_regions(img, les, (3.0,), air=air, auto_exclusions=False)
    assert "air" in r.stats["peri3"]["empty_reason"] and "exclusion" in r.stats["peri3"]["empty_reason"]


def test_coarse_centre_case_is_kept_with_lesion_and_3_5_mm_shells(tmp_path, small_params):
    """Must show: the 1.2 x 1.2 x 3 mm centre's case keeps its lesion and 3/5 mm shell features; peri1's columns are
    missing with the reason in FEATURES.notes.csv and in the table metadata (before: the whole case failed with
    "region 'peri1' is empty ... check the lesion mask")."""
    manifest, (img_b, les_b) = _two_centres(tmp_path / "c")
    out = tmp_path / "out" / "FEATURES.csv"
    r = run_cli("extract", manifest, "-o", out, "--params", small_params, "--no-progress", "--no-auto-exclusions")
    assert r.returncode == 0, r.stderr
    t = pd.read_csv(out, dtype={"case_id": str}).set_index("case_id")
    assert t.index.tolist() == ["A1", "B1"]
    cols = {reg: [c for c in t.columns if c.startswith(f"{reg}_")] for reg in ("intra", "peri1", "peri3", "peri5")}
    assert all(len(v) == len(cols["intra"]) > 0 for v in cols.values())
    assert t.loc["B1", cols["intra"] + cols["peri3"] + cols["peri5"]].notna().all()
    assert t.loc["B1", cols["peri1"]].isna().all() and t.loc["A1", cols["peri1"]].notna().all()
    # the kept columns are exactly extract_case's numbers on the regions that exist
    masks = regions.build_regions(img_b, les_b, auto_exclusions=False).feature_masks()
    direct = features.extract_case(img_b, {k: v for k, v in masks.items() if k != "peri1"}, small_params)
    assert all(t.loc["B1", k] == v for k, v in direct.items())
    # the reason, in the notes sidecar and in the metadata
    notes = pd.read_csv(out.with_name("FEATURES.notes.csv"), keep_default_na=False)
    assert notes[["case_id", "region"]].values.tolist() == [["B1", "peri1"]]
    reason = notes.loc[0, "reason"]
    assert "thinner than the voxel" in reason and "1.2 mm along x" in reason and "3 mm along z" in reason
    meta = json.loads(out.with_name("FEATURES.meta.json").read_text(encoding="utf-8"))
    assert meta["missing_regions"] == {"B1": {"peri1": reason}} and meta["n_cases"] == 2 and meta["n_failed"] == 0
    assert not out.with_name("FEATURES.failures.csv").exists()
    assert "B1" in r.stderr and "peri1" in r.stderr and "thinner" in r.stderr
    # provenance columns travel with the table
    assert (t["parameter_file_hash"] == features.parameter_file_hash(features.load_params(small_params))).all()
    assert (t["her2radiomics_version"].astype(str) == __version__).all()
    assert list(t.columns[-3:]) == ["parameter_file_hash", "resample", "her2radiomics_version"]
    # a re-run reads the case, its NaN columns and its note back from the cache
    r = run_cli("extract", manifest, "-o", out, "--params", small_params, "--no-progress", "--no-auto-exclusions")
    assert r.returncode == 0 and "2 from cache" in r.stderr, r.stderr
    t2 = pd.read_csv(out, dtype={"case_id": str}).set_index("case_id")
    pd.testing.assert_frame_equal(t, t2)
    assert pd.read_csv(out.with_name("FEATURES.notes.csv"), keep_default_na=False).equals(notes)


def test_extract_multilabel_lesion_points_to_the_manifest_label_column(tmp_path, small_params):
    img, les, _ = textured_case(seed=0, shape_zyx=(24, 48, 48), radius_mm=4.0)
    arr = sitk.GetArrayFromImage(les)
    arr[0, 0, :3] = 2
    two = sitk.GetImageFromArray(arr)
    two.CopyInformation(img)
    sitk.WriteImage(img, str(tmp_path / "image.nrrd"))
    sitk.WriteImage(two, str(tmp_path / "two.nrrd"))
    sitk.WriteImage(les, str(tmp_path / "lesion.nrrd"))
    (tmp_path / "m.csv").write_text("case_id,image,lesion,air\nA,image.nrrd,two.nrrd,\nS,two.nrrd,image.nrrd,\n"
                                    "X,image.nrrd,lesion.nrrd,two.nrrd\n")
    res = batch.extract_cohort(tmp_path / "m.csv", tmp_path / "F.csv", small_params, progress=False,
                                auto_exclusions=False, log=lambda m: None)
    err = res.failures.set_index("case_id")["error"]
    assert "--label" not in err["A"] and "'label' column" in err["A"], err["A"]
    assert "air mask" in err["X"] and "--label" not in err["X"] and "0/1 mask" in err["X"], err["X"]
    # image and lesion swapped: said as such
    assert "swapped" in err["S"] and "--label" not in err["S"], err["S"]
    # regions (which has --label) still names --label
    r = run_cli("regions", tmp_path / "image.nrrd", tmp_path / "two.nrrd", "-o", tmp_path / "R")
    assert r.returncode == 2 and "--label N" in r.stderr
    r = run_cli("regions", tmp_path / "two.nrrd", tmp_path / "image.nrrd", "-o", tmp_path / "R")
    assert r.returncode == 2 and "swapped" in r.stderr, r.stderr


def test_study_reports_cases_without_a_region_and_their_imputation(tmp_path):
    """Item 2: a table where peri1 is missing for some cases (the coarse centre) trains, and the study output, the
    card and study.json say which cases lack which region and that their values are imputed."""
    from modeling_synth import synthetic_cohort

    from her2radiomics import modelcard

    feats, lab = synthetic_cohort(n_cases=90, n_per_region=6, regions=("intra", "peri1", "peri3"), seed=2)
    lacking = feats["case_id"].iloc[:7].tolist()
    feats.loc[feats["case_id"].isin(lacking), [c for c in feats.columns if c.startswith("peri1_")]] = np.nan
    feats.to_csv(tmp_path / "F.csv", index=False)
    pd.DataFrame({"case_id": lab["case_id"], "her2": np.where(lab["label"] == 1, "positive", "zero")}).to_csv(
        tmp_path / "L.csv", index=False)
    r = run_cli("study", tmp_path / "F.csv", tmp_path / "L.csv", "--task", "stage1", "-o", tmp_path / "S",
                "--feature-sets", "intra", "intra+peri1", "--cv-folds", "3")
    assert r.returncode == 0, r.stderr
    assert "intra+peri1: peri1 is missing for 7 of 90 case(s)" in r.stdout and "imputed" in r.stdout, r.stdout
    assert "intra: peri1" not in r.stdout  # only the sets that use the region say it
    card = modelcard.load_model_card(tmp_path / "S" / "intra_peri1.model.json")
    miss = card["selection"]["missing_regions"]["peri1"]
    assert sorted(miss["case_ids"]) == sorted(lacking) and miss["n_train"] + miss["n_other"] == 7
    study = json.loads((tmp_path / "S" / "study.json").read_text(encoding="utf-8"))
    assert any("peri1 is missing for 7" in n for n in study["notes"])


# ------------------------------------------------------------------------------------------------ DICOM (item 5)
def _series(folder, positions, uid=None, number=None, description=None):
    """A DICOM series cloned from the real Duke slice 1-01 (pixel data kept) at the given slice positions (mm)."""
    import pydicom
    from conftest import shared_path
    from pydicom.uid import generate_uid

    src = pydicom.dcmread(shared_path("duke_dicom", "1-01.dcm"))
    folder.mkdir(parents=True, exist_ok=True)
    uid = uid or generate_uid()
    for i, z in enumerate(positions):
        ds = src.copy()
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [153.451, 173.121, float(z)]
        if number is not None:
            ds.SeriesNumber = number
        if description is not None:
            ds.SeriesDescription = description
        ds.save_as(folder / f"{uid[-6:]}_{i:03d}.dcm")
    return folder


def _lesion_on(img, folder):
    arr = np.zeros(tuple(reversed(img.GetSize())), np.uint8)
    arr[1:3, 200:220, 200:220] = 1
    les = sitk.GetImageFromArray(arr)
    les.CopyInformation(img)
    sitk.WriteImage(les, str(folder / "lesion.nrrd"))
    return folder / "lesion.nrrd"


def test_dicom_missing_slice_and_non_uniform_spacing_are_named(tmp_path, capfd):
    from her2radiomics import io
    from her2radiomics.errors import UserError

    ok = io.read_image(_series(tmp_path / "ok", [89.7563, 86.7563, 83.7563, 80.7563]))
    assert ok.GetSize()[2] == 4 and abs(ok.GetSpacing()[2] - 3.0) < 1e-6
    gap = _series(tmp_path / "gap", [89.7563, 86.7563, 80.7563, 77.7563])  # the slice at 83.7563 is missing
    with pytest.raises(UserError) as e:
        io.read_image(gap)
    msg = str(e.value)
    assert "missing slice" in msg and "z = 83.76" in msg and "resample" not in msg, msg
    uneven = _series(tmp_path / "uneven", [89.7563, 86.7563, 83.7563, 79.2563])
    with pytest.raises(UserError, match="non-uniform slice spacing.*3 to 4.5 mm"):
        io.read_image(uneven)
    assert "Non uniform sampling" not in capfd.readouterr().err  # ITK's raw warning does not leak


def test_dicom_single_file_and_several_series(tmp_path):
    from her2radiomics import io
    from her2radiomics.errors import UserError

    one = _series(tmp_path / "one", [89.7563, 86.7563, 83.7563])
    with pytest.raises(UserError) as e:
        io.read_image(sorted(one.glob("*.dcm"))[0])
    assert "one file of a DICOM series of 3 slices" in str(e.value) and "resample" not in str(e.value)
    two = _series(tmp_path / "two", [89.7563, 86.7563, 83.7563], number=3, description="ax t1 pre")
    _series(two, [89.7563, 86.7563], number=7, description="ax t1 post", uid="1.2.826.0.1.3680043.8.498.77")
    with pytest.raises(UserError) as e:
        io.read_image(two)
    msg = str(e.value)
    assert "2 DICOM series" in msg and "number 3 'ax t1 pre' (3 slices" in msg and "number 7 'ax t1 post' (2 slices" in msg
    assert "series" in msg and "--series" in msg, msg
    assert io.read_image(two, series="7").GetSize()[2] == 2
    assert io.read_image(two, series="1.2.826.0.1.3680043.8.498.77").GetSize()[2] == 2
    with pytest.raises(UserError, match="no series '9'"):
        io.read_image(two, series="9")

    # the manifest picks a series per case (column series or series_uid); regions takes --series
    img = io.read_image(two, series="3")
    lesion = _lesion_on(img, tmp_path)
    (tmp_path / "m.csv").write_text("case_id,image,lesion,series\nA,two,lesion.nrrd,3\n")
    (spec,) = read_manifest(tmp_path / "m.csv")
    assert spec.series == "3"
    r = run_cli("regions", two, lesion, "-o", tmp_path / "R", "--series", "3", "--no-auto-exclusions")
    assert r.returncode == 0, r.stderr
    r = run_cli("regions", two, lesion, "-o", tmp_path / "R2", "--no-auto-exclusions")
    assert r.returncode == 2 and "2 DICOM series" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_pyradiomics_batch_csv_is_a_manifest(tmp_path, small_params):
    """Item 6: pyradiomics' own batch header ID,Image,Mask[,Label] works as an extract manifest."""
    img, les, _ = textured_case(seed=0, shape_zyx=(24, 48, 48), radius_mm=4.0)
    arr = sitk.GetArrayFromImage(les) * 3  # the lesion has label 3
    three = sitk.GetImageFromArray(arr.astype(np.uint8))
    three.CopyInformation(img)
    sitk.WriteImage(img, str(tmp_path / "image.nrrd"))
    sitk.WriteImage(three, str(tmp_path / "label.nrrd"))
    (tmp_path / "batch.csv").write_text("ID,Image,Mask,Label\npatient1,image.nrrd,label.nrrd,3\n")
    (spec,) = read_manifest(tmp_path / "batch.csv")
    assert (spec.case_id, spec.label, spec.image.name, spec.lesion.name) == ("patient1", 3, "image.nrrd", "label.nrrd")
    r = run_cli("extract", tmp_path / "batch.csv", "-o", tmp_path / "F.csv", "--params", small_params, "--no-progress",
                "--no-auto-exclusions", "--distances", "3")
    assert r.returncode == 0, r.stderr
    assert pd.read_csv(tmp_path / "F.csv")["case_id"].tolist() == ["patient1"]
    (tmp_path / "noid.csv").write_text("Image,Mask\nimage.nrrd,label.nrrd\nimage.nrrd,label.nrrd\n")
    assert [s.case_id for s in read_manifest(tmp_path / "noid.csv")] == ["1", "2"]  # pyradiomics numbers rows


# ------------------------------------------------------------------------------------------- resampling (item 1)
@pytest.mark.parametrize("interpolator", ["linear", "bspline"])
def test_resample_reproduces_a_linear_ramp_and_keeps_masks_binary(interpolator):
    """Independent reference: linear and cubic B-spline interpolation reproduce a linear function exactly (away from
    the border), so the resampled ramp must equal the analytic ramp at the new voxel centres."""
    from her2radiomics import io

    size, spacing = (30, 28, 12), (1.2, 1.2, 3.0)
    z, y, x = np.indices(tuple(reversed(size)), dtype=float)
    img = sitk.GetImageFromArray(2.0 * x * spacing[0] - 0.5 * y * spacing[1] + 0.25 * z * spacing[2])
    img.SetSpacing(spacing)
    img.SetOrigin((10.0, -4.0, 2.5))
    out = io.resample_image(img, (0.8, 0.8, 0.8), interpolator)
    assert np.allclose(out.GetSpacing(), (0.8, 0.8, 0.8))
    # the field of view (voxel box) starts where it did and ends within half a new voxel of the old end
    o_old, o_new = np.array(img.GetOrigin()) - np.array(spacing) / 2, np.array(out.GetOrigin()) - 0.4
    assert np.allclose(o_old, o_new)
    end_old = o_old + np.array(size) * spacing
    end_new = o_new + np.array(out.GetSize()) * 0.8
    assert np.all(np.abs(end_old - end_new) <= 0.4 + 1e-9)
    arr = sitk.GetArrayFromImage(out)
    shift = (np.array(out.GetOrigin()) - np.array(img.GetOrigin()))  # new centres relative to the old first centre
    zz, yy, xx = (np.indices(arr.shape, dtype=float) * 0.8 + shift[::-1, None, None, None])
    ref = 2.0 * xx - 0.5 * yy + 0.25 * zz
    # away from the border (the B-spline prefilter's mirror boundary decays geometrically, ~0.27 per old voxel)
    inner = np.ones(arr.shape, bool)
    for c, sp, n in ((xx, spacing[0], size[0]), (yy, spacing[1], size[1]), (zz, spacing[2], size[2])):
        inner &= (c / sp >= 4) & (c / sp <= n - 5)
    assert inner.sum() > 100 and np.max(np.abs(arr[inner] - ref[inner])) < 1e-2
    les = sitk.GetImageFromArray((x > 10).astype(np.uint8))
    les.CopyInformation(img)
    m = io.resample_mask(les, out)
    assert set(np.unique(sitk.GetArrayFromImage(m))) == {0, 1} and m.GetSize() == out.GetSize()


def test_resample_spacing_gives_the_coarse_case_its_1mm_shell(tmp_path, small_params):
    """--resample-spacing brings a 1.2 x 1.2 x 3 mm case onto a 0.8 mm grid where the 1 mm ring exists."""
    manifest, (img_b, les_b) = _two_centres(tmp_path / "c")
    out = tmp_path / "F.csv"
    r = run_cli("extract", manifest, "-o", out, "--params", small_params, "--no-progress", "--no-auto-exclusions",
                "--resample-spacing", "0.8", "0.8", "0.8")
    assert r.returncode == 0, r.stderr
    t = pd.read_csv(out, dtype={"case_id": str}).set_index("case_id")
    assert t.filter(like="peri1_").notna().all().all() and not out.with_name("F.notes.csv").exists()
    meta = json.loads(out.with_name("F.meta.json").read_text(encoding="utf-8"))
    assert meta["resample"] == {"spacing": [0.8, 0.8, 0.8], "interpolator": "linear", "masks": "nearest"}
    assert (t["resample"] == "0.8 0.8 0.8 linear").all()
    vol = float(sitk.GetArrayFromImage(les_b).sum() * np.prod(les_b.GetSpacing()))
    assert abs(t.loc["B1", "intra_original_shape_VoxelVolume"] - vol) / vol < 0.15
    # regions: the masks on the new grid, with the resampled image beside them
    r = run_cli("regions", tmp_path / "c" / "B1_image.nrrd", tmp_path / "c" / "B1_lesion.nrrd", "-o", tmp_path / "R",
                "--no-auto-exclusions", "--resample-spacing", "0.8", "0.8", "0.8", "--interpolator", "bspline")
    assert r.returncode == 0, r.stderr
    p1 = sitk.ReadImage(str(tmp_path / "R" / "peri1.nrrd"))
    assert np.allclose(p1.GetSpacing(), 0.8) and sitk.GetArrayFromImage(p1).sum() > 0
    assert sitk.ReadImage(str(tmp_path / "R" / "image.nrrd")).GetSize() == p1.GetSize()
    assert json.loads((tmp_path / "R" / "regions.json").read_text(encoding="utf-8"))["resample"]["interpolator"] == "bspline"
    r = run_cli("extract", manifest, "-o", tmp_path / "G.csv", "--resample-spacing", "0.8", "0", "0.8")
    assert r.returncode == 2 and "--resample-spacing" in r.stderr and len(r.stderr.strip().splitlines()) == 1
