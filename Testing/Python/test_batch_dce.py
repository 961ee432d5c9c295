"""The batch runner with DCE series (phase pick, subtraction, kinetic columns) and --mode 2d-max."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from conftest import run_cli
from features_synth import SMALL_PARAMS

from her2radiomics import batch
from her2radiomics.errors import UserError
from her2radiomics.phantom import make_dce_phantom, write_dce_phantom

GRID = {"size": (96, 96, 32), "spacing": (3.45, 3.45, 6.0)}
KINETIC = {"c1": "washout", "c2": "plateau", "c3": "persistent"}


@pytest.fixture(scope="module")
def dce_cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("dce")
    rows = ["case_id,lesion,dce_phases,dce_times"]
    single = ["case_id,image,lesion"]
    for seed, (cid, kin) in enumerate(KINETIC.items()):
        ph = make_dce_phantom(seed + 20, **GRID, kinetic=kin, lesion_radius_mm=12)
        write_dce_phantom(ph, root / cid)
        phases = ";".join(f"{cid}/dce/phase{k}.nrrd" for k in range(6))
        rows.append(f"{cid},{cid}/lesion.nrrd,{phases},0;90;180;270;360;450")
        single.append(f"{cid},{cid}/dce/phase2.nrrd,{cid}/lesion.nrrd")
    (root / "dce.csv").write_text("\n".join(rows) + "\n")
    (root / "single.csv").write_text("\n".join(single) + "\n")
    (root / "small.yaml").write_text(SMALL_PARAMS)
    return root


def test_dce_manifest_gives_radiomics_of_the_phase_and_kinetic_columns(dce_cohort):
    kw = {"progress": False, "auto_exclusions": False, "log": lambda m: None, "distances": (3.0, 6.0)}
    p = dce_cohort / "small.yaml"
    dce = batch.extract_cohort(dce_cohort / "dce.csv", dce_cohort / "out" / "F.csv", p, **kw)
    ref = batch.extract_cohort(dce_cohort / "single.csv", dce_cohort / "ref" / "F.csv", p, **kw)
    assert dce.ok and ref.ok, (dce.failures, ref.failures)
    t, r = dce.table.set_index("case_id"), ref.table.set_index("case_id")
    # default --phase 2: the radiomics equal those of the 2nd post-contrast phase given as the image
    radiomic = [c for c in r.columns if c.startswith(("intra_original", "peri3_", "peri6_"))]
    pd.testing.assert_frame_equal(t[radiomic], r[radiomic])
    for cid, kin in KINETIC.items():
        assert t.loc[cid, "intra_tic_type"] == kin and t.loc[cid, "intra_tic_initial"] == "fast"
        assert t.loc[cid, "intra_kinetic_tic_code"] == {"persistent": 1, "plateau": 2, "washout": 3}[kin]
        assert t.loc[cid, f"intra_kinetic_{kin}_fraction"] > 0.9
    for c in ("peri3_kinetic_ser", "peri6_kinetic_washout_pct", "intra_kinetic_time_to_peak_s"):
        assert c in t.columns
    assert t.loc["c1", "intra_kinetic_time_to_peak_s"] == 90.0   # washout: the peak is the first post-contrast phase
    # --phase 3 --subtraction changes the radiomics, not the kinetics
    sub = batch.extract_cohort(dce_cohort / "dce.csv", dce_cohort / "sub" / "F.csv", p, phase=3, subtraction=True,
                                **kw)
    s = sub.table.set_index("case_id")
    assert not np.allclose(s["intra_original_firstorder_Mean"], t["intra_original_firstorder_Mean"])
    assert (s["intra_tic_type"] == t["intra_tic_type"]).all()
    with pytest.raises(UserError, match="the manifest has no dce_phases column"):
        batch.extract_cohort(dce_cohort / "single.csv", dce_cohort / "x" / "F.csv", p, phase=3, **kw)
    with pytest.raises(UserError, match="--subtraction needs a post-contrast --phase"):
        batch.extract_cohort(dce_cohort / "dce.csv", dce_cohort / "x" / "F.csv", p, phase=0, subtraction=True, **kw)


def test_2d_max_mode_from_the_cli(dce_cohort):
    out = dce_cohort / "2d" / "F.csv"
    r = run_cli("extract", dce_cohort / "single.csv", "-o", out, "--params", dce_cohort / "small.yaml",
                "--no-progress", "--distances", "3", "5", "8", "--mode", "2d-max")
    assert r.returncode == 0, r.stderr
    t = pd.read_csv(out)
    assert any("_shape2D_" in c for c in t.columns) and not any("_shape_" in c for c in t.columns)
    assert {"intra_original_shape2D_PixelSurface", "peri8_original_firstorder_Mean"} <= set(t.columns)
    r = run_cli("extract", dce_cohort / "single.csv", "-o", out, "--pixel-spacing", "0.1", "0.1")
    assert r.returncode == 2 and "--pixel-spacing is for 2D images" in r.stderr


def test_true_2d_pictures_in_a_manifest(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.indices((80, 100))
    rows = ["case_id,image,lesion"]
    for i in range(2):
        img = (rng.normal(100, 10, (80, 100)) + 60 * (((yy - 40) / 12.0) ** 2 + ((xx - 50 - 5 * i) / 16.0) ** 2 <= 1))
        sitk.WriteImage(sitk.GetImageFromArray(np.clip(img, 0, 255).astype(np.uint8)), str(tmp_path / f"us{i}.png"))
        les = (((yy - 40) / 12.0) ** 2 + ((xx - 50 - 5 * i) / 16.0) ** 2 <= 1).astype(np.uint8) * 255
        sitk.WriteImage(sitk.GetImageFromArray(les), str(tmp_path / f"us{i}_lesion.png"))
        rows.append(f"u{i},us{i}.png,us{i}_lesion.png")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "small.yaml").write_text(SMALL_PARAMS)
    res = batch.extract_cohort(tmp_path / "m.csv", tmp_path / "F.csv", tmp_path / "small.yaml", progress=False,
                                log=lambda m: None, distances=(3.0, 5.0, 8.0), mode="2d-max", pixel_spacing=(0.2, 0.2))
    assert res.ok, res.failures
    t = res.table.set_index("case_id")
    # lesion area = pixels x 0.04 mm2 (pyradiomics shape2D PixelSurface)
    n = int((((yy - 40) / 12.0) ** 2 + ((xx - 50) / 16.0) ** 2 <= 1).sum())
    assert t.loc["u0", "intra_original_shape2D_PixelSurface"] == pytest.approx(n * 0.04)
    assert t["peri8_original_firstorder_Mean"].notna().all()


def test_ultrasound_recipe_on_2d_phantoms(tmp_path):
    """3/5/8 mm rings on 2D phantoms (NRRD, in-plane spacing from the file) through the CLI."""
    from her2radiomics.phantom import make_phantom_2d, write_phantom

    rows = ["case_id,image,lesion,air,pectoralis"]
    for i in range(2):
        ph = make_phantom_2d(30 + i, lesion_radius_mm=9)
        assert ph.image.GetDimension() == 2
        write_phantom(ph, tmp_path / f"p{i}")
        rows.append(f"p{i},p{i}/image.nrrd,p{i}/lesion.nrrd,p{i}/air.nrrd,p{i}/pectoralis.nrrd")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "small.yaml").write_text(SMALL_PARAMS)
    r = run_cli("extract", tmp_path / "m.csv", "-o", tmp_path / "F.csv", "--params", tmp_path / "small.yaml",
                "--no-progress", "--distances", "3", "5", "8", "--mode", "2d-max")
    assert r.returncode == 0, r.stderr
    t = pd.read_csv(tmp_path / "F.csv")
    assert t[["peri3_original_firstorder_Mean", "peri5_original_firstorder_Mean",
              "peri8_original_firstorder_Mean"]].notna().all().all()


def test_2d_max_with_a_dce_series_keeps_the_kinetics(dce_cohort):
    res = batch.extract_cohort(dce_cohort / "dce.csv", dce_cohort / "dce2d" / "F.csv", dce_cohort / "small.yaml",
                                progress=False, auto_exclusions=False, log=lambda m: None, distances=(3.0, 6.0),
                                mode="2d-max")
    assert res.ok, res.failures
    t = res.table.set_index("case_id")
    assert "intra_original_shape2D_PixelSurface" in t.columns
    assert all(t.loc[c, "intra_tic_type"] == k for c, k in KINETIC.items())
