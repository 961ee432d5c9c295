"""Kinetic features and BI-RADS curve types: hand computations, series reading, planted phantom curves."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from her2radiomics import kinetics as K
from her2radiomics.errors import UserError
from her2radiomics.phantom import make_dce_phantom

TIMES = (0.0, 60.0, 120.0, 240.0, 360.0)
CURVE = (100.0, 180.0, 200.0, 190.0, 170.0)


def test_curve_features_equal_a_hand_computation():
    f = K.curve_features(CURVE, TIMES)
    assert f["initial_enhancement_pct"] == pytest.approx(80.0)          # (180 - 100) / 100
    assert f["peak_enhancement_pct"] == pytest.approx(100.0)            # (200 - 100) / 100
    assert f["ser"] == pytest.approx(80.0 / 70.0)                       # (180 - 100) / (170 - 100)
    assert f["washout_pct"] == pytest.approx(15.0)                      # (200 - 170) / 200
    assert f["time_to_peak_s"] == pytest.approx(120.0) and f["peak_phase"] == 2
    # initial phase = phases within 120 s (60 s and 120 s): early signal 200 -> (170 - 200) / 200
    assert f["delayed_change_pct"] == pytest.approx(-15.0)
    assert (f["initial_type"], f["delayed_type"]) == ("medium", "washout")
    # without times the initial phase is the first post-contrast phase: (170 - 180) / 180 = -5.6 % -> plateau
    g = K.curve_features(CURVE)
    assert g["delayed_change_pct"] == pytest.approx(-100 * 10 / 180)
    assert g["delayed_type"] == "plateau" and math.isnan(g["time_to_peak_s"])


@pytest.mark.parametrize("pct,expected", [(49.9, "slow"), (50.0, "medium"), (100.0, "medium"), (100.1, "fast")])
def test_initial_thresholds(pct, expected):
    assert K.initial_type(pct) == expected


@pytest.mark.parametrize("pct,expected", [(10.1, "persistent"), (10.0, "plateau"), (-10.0, "plateau"),
                                          (-10.1, "washout")])
def test_delayed_thresholds(pct, expected):
    assert K.delayed_type(pct) == expected


def _series(stack: np.ndarray, times=None) -> K.DceSeries:
    phases = []
    for a in stack:
        img = sitk.GetImageFromArray(a.astype(np.int16))
        img.SetSpacing((0.7, 0.7, 2.0))
        img.SetOrigin((10.0, -5.0, 3.0))
        phases.append(img)
    return K.DceSeries(phases, times)


def test_region_kinetics_on_a_small_array_by_hand():
    # 1 x 2 x 3 volume, 4 phases; region A = first row (3 voxels), region B = last voxel
    stack = np.array([
        [[[100, 100, 50], [10, 10, 200]]],
        [[[300, 150, 60], [10, 10, 400]]],     # A: +200 %, +50 %, +20 %
        [[[270, 165, 70], [10, 10, 400]]],
        [[[240, 180, 70], [10, 10, 400]]],
    ], float)
    s = _series(stack, (0.0, 90.0, 180.0, 270.0))
    ma = np.zeros((1, 2, 3), np.uint8)
    ma[0, 0] = 1
    mb = np.zeros((1, 2, 3), np.uint8)
    mb[0, 1, 2] = 1
    masks = {}
    for name, m in (("A", ma), ("B", mb)):
        img = sitk.GetImageFromArray(m)
        img.CopyInformation(s.phases[0])
        masks[name] = img
    res = K.region_kinetics(s, masks)
    a = res["A"]
    mean = [250 / 3, 510 / 3, 505 / 3, 490 / 3]
    assert a["curve"] == pytest.approx(mean)
    assert a["initial_enhancement_pct"] == pytest.approx(100 * (mean[1] - mean[0]) / mean[0])
    assert a["ser"] == pytest.approx((mean[1] - mean[0]) / (mean[3] - mean[0]))
    assert a["delayed_change_pct"] == pytest.approx(100 * (mean[3] - mean[1]) / mean[1])   # early = 90 s phase only
    # voxel map: voxel 1 (+200 %, -20 %) washout; voxel 2 (+50 %, +20 %) persistent; voxel 3 (+20 %) not enhancing
    assert a["enhancing_fraction"] == pytest.approx(2 / 3)
    assert a["washout_fraction"] == pytest.approx(0.5) and a["persistent_fraction"] == pytest.approx(0.5)
    assert a["worst_type"] == "washout"
    b = res["B"]
    assert b["initial_enhancement_pct"] == pytest.approx(100.0) and b["delayed_type"] == "plateau"
    assert b["ser"] == pytest.approx(1.0) and b["washout_pct"] == pytest.approx(0.0)
    cols = K.kinetic_columns(res, lesion_region="A")
    assert a["delayed_type"] == "plateau"   # mean curve: (490 - 510) / 510 = -3.9 %
    assert cols["A_kinetic_ser"] == a["ser"] and cols["A_kinetic_tic_code"] == 2
    assert cols["A_tic_type"] == a["delayed_type"] and cols["B_kinetic_washout_fraction"] == 0.0
    assert all(K.is_kinetic_column(c) for c in cols)
    cmap = sitk.GetArrayFromImage(K.curve_type_image(s, masks["A"]))
    assert cmap.tolist() == [[[3, 1, 0], [0, 0, 0]]]


def test_read_series_forms(tmp_path):
    ph = make_dce_phantom(0, (96, 96, 32), (3.45, 3.45, 6.0))
    files = []
    for k, img in enumerate(ph.phases):
        f = tmp_path / "dce" / f"phase{k}.nrrd"
        f.parent.mkdir(exist_ok=True)
        sitk.WriteImage(img, str(f))
        files.append(f)
    four_d = tmp_path / "dce4d.nrrd"
    sitk.WriteImage(sitk.JoinSeries(ph.phases), str(four_d))
    ref = [sitk.GetArrayFromImage(p) for p in ph.phases]
    for src in (";".join(map(str, files)), tmp_path / "dce", four_d, files):
        s = K.read_series(src, "0;90;180;270;360;450")
        assert len(s.phases) == 6 and s.times_s == (0, 90, 180, 270, 360, 450)
        assert all(np.array_equal(sitk.GetArrayFromImage(a), b) for a, b in zip(s.phases, ref, strict=True)), src
        assert np.allclose(s.phases[0].GetOrigin(), ph.phases[0].GetOrigin())
    s = K.read_series(files)
    assert np.array_equal(sitk.GetArrayFromImage(K.pick_phase(s)), ref[2])
    sub = sitk.GetArrayFromImage(K.pick_phase(s, 3, subtraction=True))
    assert np.array_equal(sub, ref[3].astype(np.float32) - ref[0])
    with pytest.raises(UserError, match="outside the series"):
        K.pick_phase(s, 6)
    with pytest.raises(UserError, match="one time per phase"):
        K.read_series(files, "0;90")
    with pytest.raises(UserError, match="at least 2"):
        K.read_series(files[:2])
    moved = sitk.Image(ph.phases[1])
    moved.SetOrigin((0.0, 0.0, 0.0))
    sitk.WriteImage(moved, str(tmp_path / "moved.nrrd"))
    with pytest.raises(UserError, match="DCE phase 1 is not on the image grid"):
        K.read_series([files[0], tmp_path / "moved.nrrd", files[2]])


#: noise sigma of the planted-curve recovery (lesion rim ~650, fat 70: sigma 20 is a poor scan)
NOISE_LEVELS = (0.0, 8.0, 20.0)


@pytest.mark.parametrize("noise", NOISE_LEVELS)
@pytest.mark.parametrize("kinetic", ["persistent", "plateau", "washout"])
def test_tic_type_recovered_on_the_phantom_series(kinetic, noise):
    ph = make_dce_phantom(11, (96, 96, 32), (3.45, 3.45, 6.0), kinetic=kinetic, noise=noise, lesion_radius_mm=12,
                          initial_enhancement_pct=150.0)
    s = K.DceSeries(ph.phases, ph.times_s)
    res = K.region_kinetics(s, {"intra": ph.lesion})["intra"]
    assert res["delayed_type"] == kinetic, res
    assert res["initial_type"] == "fast"
    assert res["delayed_change_pct"] == pytest.approx(ph.meta["dce"]["delayed_change_pct"], abs=4.0)
    assert res[f"{kinetic}_fraction"] > (0.95 if noise <= 8 else 0.6), res
    assert K.kinetic_columns({"intra": res})["intra_tic_type"] == kinetic


def test_initial_types_recovered_on_the_phantom_series():
    for pct, expected in ((30.0, "slow"), (75.0, "medium"), (150.0, "fast")):
        ph = make_dce_phantom(12, (96, 96, 32), (3.45, 3.45, 6.0), kinetic="washout", initial_enhancement_pct=pct)
        res = K.region_kinetics(K.DceSeries(ph.phases, ph.times_s), {"intra": ph.lesion})["intra"]
        assert res["initial_type"] == expected, (pct, res["initial_enhancement_pct"])


def test_tic_type_goes_into_a_labels_table_for_clinical_covariates():
    import pandas as pd

    feats = pd.DataFrame({"case_id": ["a", "b", "b"], "reader": ["", "r1", "r2"], "intra_tic_type": ["washout",
                          "plateau", "washout"], "intra_tic_initial": ["fast", "medium", "fast"]})
    labels = pd.DataFrame({"case_id": ["a", "b", "c"], "her2": ["positive", "zero", "low"]})
    out = K.add_tic_to_labels(labels, feats)
    assert out["tic_type"].tolist()[:2] == ["washout", "plateau"] and pd.isna(out["tic_type"].iloc[2])
    read = labels.assign(tic_type=["persistent", "plateau", "washout"])
    out2 = K.add_tic_to_labels(read, feats)
    assert out2["tic_type"].tolist() == ["persistent", "plateau", "washout"]
    assert out2["tic_type_computed"].tolist()[:2] == ["washout", "plateau"]
    with pytest.raises(UserError, match="dce_phases"):
        K.add_tic_to_labels(labels, feats.drop(columns=["intra_tic_type"]))


def _write_dicom_series(folder, img, number, uid):
    arr = sitk.GetArrayFromImage(img)
    w = sitk.ImageFileWriter()
    w.KeepOriginalImageUIDOn()
    for k in range(arr.shape[0]):
        sl = sitk.GetImageFromArray(arr[k:k + 1].astype(np.int16))
        sl.SetSpacing(img.GetSpacing())
        pos = img.TransformIndexToPhysicalPoint((0, 0, k))
        for tag, val in (("0008|0060", "MR"), ("0020|000e", uid), ("0020|0011", str(number)),
                         ("0020|000d", "1.2.826.0.1.3680043.2.1125.1"), ("0008|0018", f"{uid}.{k + 1}"),
                         ("0020|0013", str(k + 1)), ("0020|0032", "\\".join(f"{v:.4f}" for v in pos)),
                         ("0020|0037", "1\\0\\0\\0\\1\\0"), ("0028|0030", "0.7\\0.7"),
                         ("0018|0050", "2.0"), ("0008|103e", f"dyn {number}")):
            sl.SetMetaData(tag, val)
        w.SetFileName(str(folder / f"s{number}_{k:03d}.dcm"))
        w.Execute(sl)


def test_read_series_from_one_folder_of_several_dicom_series(tmp_path):
    rng = np.random.default_rng(3)
    base = rng.integers(50, 100, (4, 6, 5)).astype(np.int16)
    phases = [base, base * 3, base * 2]
    folder = tmp_path / "dicom"
    folder.mkdir()
    for n, (arr_k, number) in enumerate(zip(phases, (7, 5, 11), strict=True)):   # written out of order
        img = sitk.GetImageFromArray(arr_k)
        img.SetSpacing((0.7, 0.7, 2.0))
        _write_dicom_series(folder, img, number, f"1.2.826.0.1.3680043.2.1125.{100 + n}")
    s = K.read_series(folder)
    got = [sitk.GetArrayFromImage(p) for p in s.phases]
    # SeriesNumber order 5, 7, 11 -> phases[1], phases[0], phases[2]
    assert [int(g[0, 0, 0]) for g in got] == [int(phases[1][0, 0, 0]), int(phases[0][0, 0, 0]), int(phases[2][0, 0, 0])]
    assert np.allclose(s.phases[0].GetSpacing(), (0.7, 0.7, 2.0))
