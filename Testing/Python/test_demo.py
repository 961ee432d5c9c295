"""The demo: cohort design, shipped demo cards, and a reduced (--quick) end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, run_cli

from her2radiomics import DEMO_MODEL_NOTICE
from her2radiomics.demo import (
    SHIPPED_CARDS,
    choose_model,
    cohort_design,
    dce_design,
    demo_params_path,
    shipped_card_path,
)


def _need(*mods: str) -> None:
    for m in mods:
        pytest.importorskip(f"her2radiomics.{m}", reason=f"her2radiomics.{m} is not merged yet")


def test_cohort_design_plants_the_documented_signal():
    d = cohort_design(30)
    assert d.equals(cohort_design(30))  # deterministic
    assert d["her2"].value_counts().to_dict() == {"positive": 30, "low": 30, "zero": 30}
    assert (d["center"] == "B").sum() == 30 and set(d.groupby("her2")["center"].apply(lambda c: (c == "B").sum())) == {10}
    g = d.groupby("her2")
    # stage-1 signal: rim and heterogeneity higher in positives; stage-2 signal: peritumoral enhancement low > zero
    assert g["rim"].mean()["positive"] > g["rim"].mean()[["low", "zero"]].max() + 0.15
    assert g["heterogeneity"].mean()["positive"] > g["heterogeneity"].mean()[["low", "zero"]].max() + 0.15
    assert g["peritumoral_enhancement"].mean()["low"] > g["peritumoral_enhancement"].mean()["zero"] + 0.25
    # ... and it overlaps, so the task is not trivial
    assert d.loc[d["her2"] == "positive", "rim"].min() < d.loc[d["her2"] != "positive", "rim"].max()
    assert d.groupby("center")["noise"].first().to_dict() == {"A": 8.0, "B": 14.0}



def test_dce_design_plants_two_cases_per_curve_type():
    d = dce_design()
    assert d.equals(dce_design())  # deterministic
    assert d.groupby("planted")["planted_initial"].apply(sorted).to_dict() == {
        t: ["fast", "medium"] for t in ("persistent", "plateau", "washout")}
    assert (d["planted"] == d["kinetic"]).all() and d["case_id"].is_unique
    assert int(d["own_t2_lesion"].sum()) == 1  # one case with its own T2 lesion, the others resampled

def test_choose_model_prefers_safe_gdi_then_test_auc():
    def m(gdi, auc):
        return {"card": {"gdi": {"test": {"value": gdi}}, "metrics": {"train": {"auc": 0.9}, "test": {"auc": auc}}}}
    assert choose_model({"a": m(0.25, 0.9), "b": m(0.10, 0.7), "c": m(0.12, 0.8)}) == "c"
    assert choose_model({"a": m(0.25, 0.9), "b": m(0.30, 0.95)}) == "b"


def test_shipped_demo_cards_load_and_match_the_demo_parameter_file():
    from her2radiomics.modelcard import load_model_card

    cards = {s: load_model_card(shipped_card_path(s)) for s in SHIPPED_CARDS}
    assert cards["stage1"]["task"] == "stage1" and cards["stage2"]["task"] == "stage2"
    for c in cards.values():
        assert c["intended_use"].startswith(DEMO_MODEL_NOTICE)
        assert c["provenance"]["parameter_file"] == demo_params_path().name
    _need("features")
    from her2radiomics import features

    h = features.parameter_file_hash(features.load_params(demo_params_path()))
    assert {c["provenance"]["parameter_file_hash"] for c in cards.values()} == {h}


def test_shipped_demo_cards_predict_a_phantom_extracted_with_the_demo_parameter_file():
    _need("phantom", "features", "regions")
    from her2radiomics import features, phantom, regions
    from her2radiomics.prediction import predict

    ph = phantom.make_phantom(7, (96, 96, 40), (1.0, 1.0, 1.5), lesion_radius_mm=5.5, rim=0.7, heterogeneity=0.7)
    reg = regions.build_regions(ph.image, ph.lesion, air=ph.air, pectoralis=ph.pectoralis, auto_exclusions=False)
    params = features.load_params(demo_params_path())
    row = features.extract_case(ph.image, reg.feature_masks(), params)
    pred = predict(pd.DataFrame([{"case_id": "p", **row}]), shipped_card_path("stage1"), shipped_card_path("stage2"),
                   parameter_file_hash=features.parameter_file_hash(params))
    t = pred.table.iloc[0]
    # independent of prediction.py: each stage's probability from the card's JSON numbers by hand (summing to 1
    # is true by construction of the cascade, so it alone could not fail)
    p = {s: _card_probability(json.loads(shipped_card_path(s).read_text(encoding="utf-8")), row) for s in SHIPPED_CARDS}
    assert t["p_positive"] == pytest.approx(p["stage1"], rel=1e-9)
    assert t["p_low"] == pytest.approx((1 - p["stage1"]) * p["stage2"], rel=1e-9)
    assert t["p_zero"] == pytest.approx((1 - p["stage1"]) * (1 - p["stage2"]), rel=1e-9)
    assert 0.0 < p["stage1"] < 1.0 and 0.0 < p["stage2"] < 1.0
    assert DEMO_MODEL_NOTICE in pred.summary("p")


def _card_probability(card: dict, row: dict) -> float:
    """logistic(intercept + sum_i beta_i (x_i - mean_i) / scale_i) with plain Python floats."""
    import math

    eta = card["intercept"] + sum(b * (row[f] - m) / s for f, b, m, s in zip(
        card["features"], card["coefficients"], card["scaler"]["mean"], card["scaler"]["scale"], strict=True))
    return 1.0 / (1.0 + math.exp(-eta))


@pytest.mark.slow
def test_quick_demo_runs_end_to_end(tmp_path):
    _need("phantom", "features", "regions", "fitting")
    out = tmp_path / "demo"
    r = run_cli("demo", "-o", out, "--quick", "--no-progress", "--jobs", "2", timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    assert DEMO_MODEL_NOTICE in r.stdout and "demo finished" in r.stdout
    for name in ("report.html", "predictions.csv", "predictions.contributions.csv", "stage1/study.json",
                 "stage2/study.json", "models/demo_stage1.json", "models/demo_stage2.json", "NOTICE.txt",
                 "features.csv", "labels.csv", "demo_summary.json"):
        assert (out / name).exists(), name
    # everything it writes about models says what they are
    for name in ("report.html", "stage1/study.json", "stage2/study.json", "models/demo_stage1.json", "NOTICE.txt",
                 "demo_summary.json"):
        assert DEMO_MODEL_NOTICE.lower().rstrip(".") in (out / name).read_text(encoding="utf-8").lower(), name
    _check_dce_step(out, r.stdout)
    pred = pd.read_csv(out / "predictions.csv", dtype={"case_id": str})
    np.testing.assert_allclose(pred[["p_positive", "p_low", "p_zero"]].sum(axis=1), 1.0, atol=1e-6)
    # the written probabilities are the chosen cards' logistic models applied to the written case features
    cases = pd.read_csv(out / "cases_features.csv", dtype={"case_id": str}).set_index("case_id")
    card1 = json.loads((out / "models" / "demo_stage1.json").read_text(encoding="utf-8"))
    want = [_card_probability(card1, cases.loc[c].to_dict()) for c in pred["case_id"]]
    np.testing.assert_allclose(pred["p_positive"], want, rtol=1e-5)  # predictions.csv keeps 6 significant digits
    assert {"pos02", "low02", "zer02"} <= set(pred["case_id"])
    has_b1 = (SHARED_DATA / "pyradiomics_breast1" / "breast1_image.nrrd").exists()
    assert ("breast1" in set(pred["case_id"])) == has_b1
    contrib = pd.read_csv(out / "predictions.contributions.csv", dtype={"case_id": str})
    assert set(contrib["case_id"]) == set(pred["case_id"]) and set(contrib["stage"]) == {"stage1", "stage2"}
    study = json.loads((out / "stage1" / "study.json").read_text(encoding="utf-8"))
    assert [s["name"] for s in study["feature_sets"]] == ["intra", "intra+peri1", "intra+peri3", "intra+peri5"]
    assert set(study["delong"]) == {"train", "internal", "external"}  # stage 1 split by centre
    # the report renders with every figure (skips without Chromium)
    from test_report import count_loaded_images

    ok, total = count_loaded_images(out / "report.html")
    assert total >= 2 * 9 and ok == total
    # the study files (her2radiomics.study/1, cards beside them) feed the report command as they are
    r = run_cli("report", "--study", out / "stage1" / "study.json", out / "stage2" / "study.json", "--predictions",
                out / "predictions.csv", "-o", out / "again.html")
    assert r.returncode == 0, r.stderr
    ok, total = count_loaded_images(out / "again.html")
    assert total >= 2 * 9 and ok == total
    assert "synthetic demonstration model" in (out / "again.html").read_text(encoding="utf-8").lower()


def _check_dce_step(out, stdout: str) -> None:
    """The demo's DCE step: planted vs recovered curve types, kinetic columns, the multi-sequence columns."""
    folder = out / "dce"
    for name in ("tic_types.csv", "dce_features.csv", "multiseq_features.csv", "dce_manifest.csv",
                 "multiseq_manifest.csv", "design.csv"):
        assert (folder / name).exists(), name
    tic = pd.read_csv(folder / "tic_types.csv", dtype={"case_id": str})
    assert sorted(tic["planted"]) == sorted(["persistent", "plateau", "washout"] * 2)
    assert (tic["recovered"] == tic["planted"]).all(), tic
    assert (tic["recovered_initial"] == tic["planted_initial"]).all(), tic
    # planted as the generator states it (phantom.json), not only as the demo's design says
    for cid, planted in zip(tic["case_id"], tic["planted"], strict=True):
        meta = json.loads((folder / cid / "phantom.json").read_text(encoding="utf-8"))
        assert meta["dce"]["expected_delayed"] == planted and len(meta["dce"]["phases"]) == 6
    assert "TIC type recovered in 6 of 6 cases" in stdout
    assert "recovered from the lesion's mean curve in 6 of 6" in (out / "report.html").read_text(encoding="utf-8")
    kin = pd.read_csv(folder / "dce_features.csv", dtype={"case_id": str}).set_index("case_id")
    assert {"intra_tic_type", "intra_kinetic_ser", "peri3_kinetic_washout_pct"} <= set(kin.columns)
    assert (kin.loc[tic["case_id"], "intra_tic_type"].to_numpy() == tic["recovered"].to_numpy()).all()
    seq = pd.read_csv(folder / "multiseq_features.csv", dtype={"case_id": str}).set_index("case_id")
    for q in ("dce", "t2", "adc"):
        for reg in ("intra", "peri3"):
            assert f"{q}_{reg}_original_firstorder_Mean" in seq.columns, (q, reg)
        assert not any(c.startswith(f"{q}_peri1_") or c.startswith(f"{q}_peri5_") for c in seq.columns)
    n = json.loads((out / "demo_summary.json").read_text(encoding="utf-8"))["dce"]
    assert n["recovered"] == n["cases"] == 6
    assert n["columns_per_sequence"] == {q: sum(c.startswith(f"{q}_") for c in seq.columns) for q in ("dce", "t2", "adc")}
    # image_dce is the default radiomics phase (2nd post-contrast): the same numbers as the dce_phases extraction
    np.testing.assert_allclose(seq.loc[kin.index, "dce_intra_original_firstorder_Mean"],
                               kin["intra_original_firstorder_Mean"], rtol=1e-12)
    diag = json.loads((folder / "multiseq_features.meta.json").read_text(encoding="utf-8"))["diagnostics"]
    assert sorted(d["sequences"]["t2"]["lesion"] for d in diag.values()) == ["given"] + ["resampled"] * 5
    assert {d["sequences"]["adc"]["lesion"] for d in diag.values()} == {"resampled"}
