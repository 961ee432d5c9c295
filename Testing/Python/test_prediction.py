"""Stage-wise prediction: probabilities, contributions, decision rule, trust signals, CLI."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st

from her2radiomics.errors import UserError
from her2radiomics.prediction import feature_label, predict

H = "sha256:" + "a" * 64


def make_card(features, mean, scale, coef, intercept, cutoff=0.5, task="stage1", tmin=None, tmax=None,
              parameter_file_hash=H, gdi=0.10) -> dict:
    """A complete her2radiomics.model/1 card (docs/developer/api.md), checksum included."""
    event, ref = ("positive", ["low", "zero"]) if task == "stage1" else ("low", ["zero"])
    n = len(features)
    card = {
        "format": "her2radiomics.model/1", "task": task, "classes": {"event": event, "reference": ref},
        "feature_set": "intra", "features": list(features),
        "scaler": {"mean": [float(v) for v in mean], "scale": [float(v) for v in scale]},
        "coefficients": [float(v) for v in coef], "intercept": float(intercept), "cutoff": float(cutoff),
        "selection": {"method": "lasso", "C": 1.0, "candidates": n, "icc_threshold": 0.75, "n_after_icc": n,
                      "n_after_mwu": n, "n_selected": n},
        "metrics": {"train": {"n": 40, "n_event": 20, "auc": 0.8, "auc_ci": [0.7, 0.9], "accuracy": 0.7,
                              "sensitivity": 0.7, "specificity": 0.7},
                    "test": {"n": 20, "n_event": 10, "auc": 0.8 * (1 - gdi), "auc_ci": [0.6, 0.9], "accuracy": 0.7,
                             "sensitivity": 0.7, "specificity": 0.7}},
        "gdi": {"test": {"value": gdi, "zone": "safe" if gdi <= 0.15 else ("warning" if gdi < 0.2 else "high")}},
        "training_range": {"min": [float(v) for v in (tmin if tmin is not None else np.full(n, -1e9))],
                           "max": [float(v) for v in (tmax if tmax is not None else np.full(n, 1e9))]},
        "provenance": {"software": "her2radiomics test", "created": "2026-01-01T00:00:00Z",
                       "parameter_file_hash": parameter_file_hash, "training_table_hash": "sha256:" + "b" * 64, "seed": 0,
                       "case_ids": {"train": [], "test": []}},
        "intended_use": "Test model, not for clinical use.",
    }
    return make_card_from(card)


def make_card_from(card: dict) -> dict:
    body = json.dumps({k: v for k, v in card.items() if k != "checksum"}, sort_keys=True, separators=(",", ":"))
    return {**card, "checksum": "sha256:" + hashlib.sha256(body.encode()).hexdigest()}


def _logit(p):
    return np.log(p) - np.log1p(-p)


floats = st.floats(-3, 3, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_probabilities_sum_to_one_and_contributions_sum_to_logit(n1, n2, n_cases, seed):
    rng = np.random.default_rng(seed)
    f1 = [f"intra_original_firstorder_F{i}" for i in range(n1)]
    f2 = [f"peri3_original_glcm_G{i}" for i in range(n2)]
    c1 = make_card(f1, rng.normal(0, 5, n1), rng.uniform(0.1, 5, n1), rng.normal(0, 1, n1), rng.normal(0, 1),
                   cutoff=rng.uniform(0.05, 0.95))
    c2 = make_card(f2, rng.normal(0, 5, n2), rng.uniform(0.1, 5, n2), rng.normal(0, 1, n2), rng.normal(0, 1),
                   cutoff=rng.uniform(0.05, 0.95), task="stage2")
    df = pd.DataFrame(rng.normal(0, 8, (n_cases, n1 + n2)), columns=f1 + f2)
    df.insert(0, "case_id", [f"c{i}" for i in range(n_cases)])
    pred = predict(df, c1, c2)
    t = pred.table
    np.testing.assert_allclose(t[["p_positive", "p_low", "p_zero"]].sum(axis=1), 1.0, atol=1e-12)
    assert ((t[["p_positive", "p_low", "p_zero"]] >= 0).all()).all()
    # decision rule: each stage called at its own cut-off; stage 2 always computed, flagged after a positive call
    assert ((t["stage1_call"] == "positive") == (t["p1"] >= c1["cutoff"])).all()
    assert ((t["stage2_call"] == "low") == (t["p2"] >= c2["cutoff"])).all()
    assert t["p2"].notna().all() and (t["stage2_flagged"] == (t["stage1_call"] == "positive")).all()
    for stage, card, pcol in (("stage1", c1, "p1"), ("stage2", c2, "p2")):
        c = pred.contributions[pred.contributions["stage"] == stage]
        lp = c.groupby("case_id")["contribution"].sum().reindex(t["case_id"]).to_numpy() + card["intercept"]
        p = t[pcol].to_numpy()
        ok = (p > 1e-9) & (p < 1 - 1e-9)
        np.testing.assert_allclose(lp[ok], _logit(p[ok]), rtol=1e-7, atol=1e-7)
        # brute-force second implementation of one contribution: beta * (x - mean) / scale
        row = c.iloc[0]
        j = card["features"].index(row["feature"])
        x = df.loc[df["case_id"] == row["case_id"], row["feature"]].iloc[0]
        assert row["contribution"] == pytest.approx(card["coefficients"][j] * (x - card["scaler"]["mean"][j])
                                                    / card["scaler"]["scale"][j], rel=1e-12, abs=1e-12)
        # ranked by |contribution| within each case
        for _, g in c.groupby("case_id"):
            a = g["contribution"].abs().to_numpy()
            assert np.all(a[:-1] >= a[1:])


def test_matches_scikit_learn_logistic_regression():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(3)
    x = rng.normal(10, 3, (80, 3))
    y = (x[:, 0] + rng.normal(0, 2, 80) > 10).astype(int)
    sc = StandardScaler().fit(x)
    lr = LogisticRegression().fit(sc.transform(x), y)
    names = ["intra_original_firstorder_Mean", "intra_original_glcm_Contrast", "peri1_original_shape_Sphericity"]
    card = make_card(names, sc.mean_, sc.scale_, lr.coef_[0], lr.intercept_[0])
    df = pd.DataFrame(x, columns=names).assign(case_id=[f"p{i}" for i in range(80)])
    pred = predict(df, card)
    np.testing.assert_allclose(pred.table["p_positive"], lr.predict_proba(sc.transform(x))[:, 1], rtol=1e-10)
    assert pred.table["p_low"].isna().all() and (pred.table["stage2_call"] == "").all()


def test_decision_rule_positive_stage1_still_gets_stage2_probabilities():
    f = ["intra_original_firstorder_Mean"]
    c1 = make_card(f, [0.0], [1.0], [2.0], 0.0, cutoff=0.6)
    c2 = make_card(f, [0.0], [1.0], [-1.0], 0.5, cutoff=0.4, task="stage2")
    # x = 1 -> p1 = expit(2) = 0.881 > 0.6 ; x = 0 -> p1 = 0.5 < 0.6
    # exactly at the cut-off counts as the event (score >= cutoff, as stats.binary_metrics)
    x_cut = np.log(0.6 / 0.4) / 2.0
    df = pd.DataFrame({"case_id": ["pos", "neg", "edge"], f[0]: [1.0, 0.0, x_cut]})
    pred = predict(df, c1, c2)
    t = pred.table.set_index("case_id")
    p1, p2 = 1 / (1 + np.exp(-2.0)), 1 / (1 + np.exp(-(0.5 - 1.0)))
    assert t.loc["pos", "stage1_call"] == "positive" and t.loc["neg", "stage1_call"] == "negative"
    assert t.loc["edge", "stage1_call"] == "positive"
    assert t.loc["pos", "p_positive"] == pytest.approx(p1)
    assert t.loc["pos", "p2"] == pytest.approx(p2)
    assert t.loc["pos", "p_low"] == pytest.approx((1 - p1) * p2)
    assert t.loc["pos", "p_zero"] == pytest.approx((1 - p1) * (1 - p2))
    assert t.loc["pos", "stage2_call"] == "zero"  # p2 = 0.378 < 0.4
    assert bool(t.loc["pos", "stage2_flagged"]) and not bool(t.loc["neg", "stage2_flagged"])
    assert t.loc["pos", "cascade_call"] == "positive" and t.loc["neg", "stage2_call"] == "low"
    assert any("stage 1 calls HER2-positive" in w for w in pred.case_warnings["pos"])
    assert "flagged" in pred.summary("pos")


def test_out_of_range_warning_says_which_and_by_how_much():
    f = ["peri3_original_firstorder_Mean", "intra_original_glcm_Contrast"]
    c1 = make_card(f, [400, 1], [100, 1], [0.5, 0.2], 0.0, tmin=[150, 0.0], tmax=[601, 5.0])
    df = pd.DataFrame({"case_id": ["a", "b"], f[0]: [812.0, 300.0], f[1]: [2.0, -2.0]})
    pred = predict(df, c1)
    wa = pred.case_warnings["a"]
    assert any("peri3_original_firstorder_Mean = 812 is 35% above the training maximum 601" in w for w in wa), wa
    wb = pred.case_warnings["b"]
    assert any("intra_original_glcm_Contrast = -2 is 0.4 training ranges below the training minimum 0" in w for w in wb), wb
    assert pred.table.set_index("case_id")["n_out_of_range"].to_dict() == {"a": 1, "b": 1}
    assert "35% above" in pred.summary("a")


def test_missing_feature_and_missing_value_are_errors():
    f = [f"intra_original_firstorder_F{i}" for i in range(8)]
    c1 = make_card(f, np.zeros(8), np.ones(8), np.ones(8), 0.0)
    df = pd.DataFrame({"case_id": ["a"], f[0]: [1.0]})
    with pytest.raises(UserError, match=r"lacks 7 of the 8 features.*F1, .*F5 and 2 more"):
        predict(df, c1)
    df = pd.DataFrame(np.ones((2, 8)), columns=f).assign(case_id=["a", "b"])
    df.loc[1, f[3]] = np.nan
    with pytest.raises(UserError, match=r"b: intra_original_firstorder_F3"):
        predict(df, c1)
    # a card that stores training medians imputes, and says so for that case and feature
    c1 = {k: v for k, v in c1.items() if k != "checksum"}
    c1["imputation"] = {"strategy": "median", "values": [float(i) for i in range(8)]}
    c1 = make_card_from(c1)
    pred = predict(df, c1)
    assert pred.stages["stage1"].values[1, 3] == 3.0
    assert any("F3 is missing and was imputed" in w for w in pred.case_warnings["b"]) and not pred.case_warnings["a"]


def test_incompatible_parameter_files_are_errors():
    f = ["intra_original_firstorder_Mean"]
    c1 = make_card(f, [0], [1], [1], 0)
    c2 = make_card(f, [0], [1], [1], 0, task="stage2", parameter_file_hash="sha256:" + "c" * 64)
    df = pd.DataFrame({"case_id": ["a"], f[0]: [1.0]})
    with pytest.raises(UserError, match="different parameter files"):
        predict(df, c1, c2)
    with pytest.raises(UserError, match="re-extract"):
        predict(df, c1, parameter_file_hash="sha256:" + "d" * 64)
    with pytest.raises(UserError, match="stage-2"):
        predict(df, c2)


def test_feature_label():
    assert feature_label("peri3_wavelet-LLH_glcm_Contrast") == "3 mm shell · wavelet LLH · GLCM · Contrast"
    assert feature_label("intra_original_firstorder_Mean") == "lesion · original · first-order · Mean"
    assert feature_label("peri2.5_log-sigma-3-0-mm-3D_glszm_ZoneEntropy") == "2.5 mm shell · LoG σ 3 mm · GLSZM · ZoneEntropy"
    assert feature_label("peri1_original_shape_Sphericity") == "1 mm shell · original · shape · Sphericity"
    assert feature_label("age_years") == "age_years"


def test_cli_predict_writes_tables_and_summary(tmp_path):
    f = ["intra_original_firstorder_Mean", "peri3_original_glcm_Contrast"]
    c1 = make_card(f, [100, 2], [10, 1], [1.0, -0.5], -0.2, cutoff=0.45, tmax=[130, 10], tmin=[50, 0])
    c2 = make_card(f, [100, 2], [10, 1], [0.3, 0.8], 0.1, cutoff=0.55, task="stage2")
    (tmp_path / "m1.json").write_text(json.dumps(c1))
    (tmp_path / "m2.json").write_text(json.dumps(c2))
    pd.DataFrame({"case_id": ["A", "B"], "reader": ["r1", "r1"], f[0]: [140.0, 90.0], f[1]: [1.0, 3.0]}).to_csv(
        tmp_path / "F.csv", index=False)
    r = run_cli("predict", tmp_path / "F.csv", "--stage1", tmp_path / "m1.json", "--stage2", tmp_path / "m2.json",
                "-o", tmp_path / "P.csv")
    assert r.returncode == 0, r.stderr
    t = pd.read_csv(tmp_path / "P.csv")
    assert list(t.columns[:6]) == ["case_id", "p_positive", "p_low", "p_zero", "stage1_call", "stage2_call"]
    c = pd.read_csv(tmp_path / "P.contributions.csv")
    assert list(c.columns[:7]) == ["case_id", "stage", "feature", "value", "z", "coefficient", "contribution"]
    assert len(c) == 2 * 2 * 2
    assert "not for clinical use" in r.stdout and "case A" in r.stdout and "above the training maximum" in r.stdout
    # a card from other features -> error, nothing written
    bad = make_card(["intra_original_firstorder_Median"], [0], [1], [1], 0)
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    r = run_cli("predict", tmp_path / "F.csv", "--stage1", tmp_path / "bad.json", "-o", tmp_path / "Q.csv")
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Median" in r.stderr
    assert not (tmp_path / "Q.csv").exists()


def test_cli_checks_the_features_sidecar_hash(tmp_path):
    f = ["intra_original_firstorder_Mean"]
    (tmp_path / "m1.json").write_text(json.dumps(make_card(f, [0], [1], [1], 0)))
    pd.DataFrame({"case_id": ["A"], f[0]: [1.0]}).to_csv(tmp_path / "F.csv", index=False)
    (tmp_path / "F.meta.json").write_text(json.dumps({"parameter_file_hash": "sha256:" + "e" * 64}))
    r = run_cli("predict", tmp_path / "F.csv", "--stage1", tmp_path / "m1.json", "-o", tmp_path / "P.csv")
    assert r.returncode == 2 and "re-extract" in r.stderr and not (tmp_path / "P.csv").exists()
    (tmp_path / "F.meta.json").write_text(json.dumps({"parameter_file_hash": H}))
    r = run_cli("predict", tmp_path / "F.csv", "--stage1", tmp_path / "m1.json", "-o", tmp_path / "P.csv")
    assert r.returncode == 0, r.stderr
    t = pd.read_csv(tmp_path / "P.csv")
    assert t["p_low"].isna().all() and t.loc[0, "stage1_call"] == "positive"  # expit(1) = 0.73 >= 0.5


def _cli(args) -> tuple[int, str, str]:
    import contextlib
    import io

    from her2radiomics import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()


def test_cli_predict_reads_the_features_table_like_train(tmp_path):
    """predict validates its table through the shared reader (io.read_table): a ';'-separated export is named
    as such (it was 'has no case_id column'), a repeated header is refused, and ids stay text ('007', not 7)."""
    f = ["intra_original_firstorder_Mean"]
    (tmp_path / "m1.json").write_text(json.dumps(make_card(f, [0], [1], [1], 0)))
    (tmp_path / "semi.csv").write_text(f"case_id;{f[0]}\nA;1.0\n")
    rc, out, err = _cli(["predict", tmp_path / "semi.csv", "--stage1", tmp_path / "m1.json", "-o", tmp_path / "P.csv"])
    assert rc == 2 and "separated by semicolons" in err and "comma-separated" in err, err
    (tmp_path / "dup.csv").write_text(f"case_id,{f[0]},{f[0]}\nA,1.0,2.0\n")
    rc, out, err = _cli(["predict", tmp_path / "dup.csv", "--stage1", tmp_path / "m1.json", "-o", tmp_path / "P.csv"])
    assert rc == 2 and "more than once" in err, err
    assert not (tmp_path / "P.csv").exists()
    (tmp_path / "F.csv").write_text(f"case_id,{f[0]}\n007,1.0\n")
    rc, out, err = _cli(["predict", tmp_path / "F.csv", "--stage1", tmp_path / "m1.json", "-o", tmp_path / "P.csv"])
    assert rc == 0, err
    assert pd.read_csv(tmp_path / "P.csv", dtype={"case_id": str})["case_id"].tolist() == ["007"]


def test_cli_predict_refuses_to_overwrite_an_input(tmp_path):
    """-o naming the features table (or the contributions file landing on it) would replace an input."""
    f = ["intra_original_firstorder_Mean"]
    (tmp_path / "m1.json").write_text(json.dumps(make_card(f, [0], [1], [1], 0)))
    table = f"case_id,{f[0]}\nA,1.0\n"
    (tmp_path / "F.csv").write_text(table)
    (tmp_path / "X.contributions.csv").write_text(table)
    for out in (tmp_path / "F.csv", tmp_path / "X.csv"):
        feats = tmp_path / ("F.csv" if out.name == "F.csv" else "X.contributions.csv")
        rc, _, err = _cli(["predict", feats, "--stage1", tmp_path / "m1.json", "-o", out])
        assert rc == 2 and "also an input" in err, err
    assert (tmp_path / "F.csv").read_text(encoding="utf-8") == table == (tmp_path / "X.contributions.csv").read_text(encoding="utf-8")


def test_a_whole_missing_region_is_one_warning():
    """A case without peri1 (thinner than its voxels; extract leaves the columns empty) gets one line for the region,
    not one per feature; a single missing feature of another region is still named."""
    f = ["intra_original_firstorder_Mean", "peri1_original_glcm_Contrast", "peri1_original_firstorder_Mean",
         "peri3_original_glcm_Contrast"]
    c1 = make_card(f, [0] * 4, [1] * 4, [1, 1, 1, 1], 0)
    c1["imputation"] = {"strategy": "median", "values": [0.0, 1.0, 2.0, 3.0]}
    c1 = make_card_from(c1)
    df = pd.DataFrame({"case_id": ["a", "b"], f[0]: [1.0, 1.0], f[1]: [1.0, np.nan], f[2]: [1.0, np.nan],
                       f[3]: [1.0, np.nan]})
    w = predict(df, c1).case_warnings["b"]
    assert any("1 mm shell (peri1) is missing for this case: its 2 model feature(s)" in x for x in w), w
    assert any("peri3_original_glcm_Contrast is missing and was imputed" in x for x in w)
    assert not any("peri1_original" in x for x in w)
