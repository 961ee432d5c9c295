"""`study`: four feature sets on one split, study.json schema (plain JSON lists, no NaN), DeLong matrix."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_cli
from modeling_synth import synthetic_cohort
from sklearn.metrics import roc_auc_score

from her2radiomics import modelcard, stats


def _no_nan(name):
    raise AssertionError(f"study.json holds {name}")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    d = tmp_path_factory.mktemp("study")
    f, lab = synthetic_cohort(n_cases=120, n_per_region=15, regions=("intra", "peri1", "peri3"), seed=5, effect=1.2)
    lab["her2"] = np.where(lab["label"] == 1, "positive", np.where(np.arange(len(lab)) % 2, "low", "zero"))
    f.to_csv(d / "features.csv", index=False)
    lab.drop(columns="label").to_csv(d / "labels.csv", index=False)
    r = run_cli("study", d / "features.csv", d / "labels.csv", "-o", d / "out", "--task", "stage1",
                "--split", "center", "--test-center", "C")
    assert r.returncode == 0, r.stderr
    text = (d / "out" / "study.json").read_text(encoding="utf-8")
    return d, json.loads(text, parse_constant=_no_nan), r.stdout


def test_study_outputs(study):
    d, s, stdout = study
    assert s["format"] == "her2radiomics.study/1" and s["task"] == "stage1"
    assert s["classes"] == {"event": "positive", "reference": ["low", "zero"]}
    assert [fs["name"] for fs in s["feature_sets"]] == ["intra", "intra+peri1", "intra+peri3"]
    assert s["skipped"][0]["name"] == "intra+peri5" and "peri5" in s["skipped"][0]["reason"]
    assert s["split_names"] == ["train", "internal", "external"]
    for fs in s["feature_sets"]:
        card = modelcard.load_model_card(d / "out" / fs["model_card"])
        assert card["checksum"] == fs["checksum"] and card["features"] == fs["features"]
        for split in s["split_names"]:
            e = fs["splits"][split]
            assert e["case_ids"] == s["case_ids"][split] and e["y"] == s["y"][split]
            assert len(e["probabilities"]) == len(e["y"]) == e["metrics"]["n"]
            assert e["metrics"]["auc"] == pytest.approx(roc_auc_score(e["y"], e["probabilities"]))
            assert e["metrics"] == card["metrics"][split]
            assert (e["gdi"] is None) == (split == "train")
    # the planted signal lives in intra and peri3: intra+peri3 is at least as good externally as intra+peri1
    auc = {fs["name"]: fs["splits"]["external"]["metrics"]["auc"] for fs in s["feature_sets"]}
    assert auc["intra+peri3"] > 0.75
    assert "intra+peri3" in stdout and "DeLong" in stdout and "GDI" in stdout


def test_study_delong_matrix(study):
    _, s, _ = study
    names = [fs["name"] for fs in s["feature_sets"]]
    for split in s["split_names"]:
        dl = s["delong"][split]
        assert dl["models"] == names
        k = len(names)
        for i in range(k):
            assert dl["p"][i][i] == 1.0 and dl["diff"][i][i] == 0.0
            for j in range(k):
                assert dl["p"][i][j] == dl["p"][j][i] and dl["diff"][i][j] == -dl["diff"][j][i]
        a, b = s["feature_sets"][0]["splits"][split], s["feature_sets"][2]["splits"][split]
        t = stats.delong_test(a["y"], a["probabilities"], b["probabilities"])
        assert dl["p"][0][2] == pytest.approx(t["p"]) and dl["diff"][0][2] == pytest.approx(t["diff"])


# ------------------------------------------------------------------------------------------- methods record (issue 12)
@pytest.fixture(scope="module")
def methods_study(tmp_path_factory):
    """A stage-1 study with an ICC table, a parameter-file sidecar and --bootstrap: everything a methods section
    needs must be in study.json."""
    import pandas as pd

    d = tmp_path_factory.mktemp("methods")
    f, lab = synthetic_cohort(n_cases=90, n_per_region=8, regions=("intra", "peri3"), seed=2, effect=1.3)
    lab["her2"] = np.where(lab["label"] == 1, "positive", np.where(np.arange(len(lab)) % 2, "low", "zero"))
    f.to_csv(d / "features.csv", index=False)
    (d / "features.meta.json").write_text(json.dumps({"parameter_file": "MR_params.yaml",
                                                      "parameter_file_hash": "sha256:" + "ab" * 32}))
    lab.drop(columns="label").to_csv(d / "labels.csv", index=False)
    rng = np.random.default_rng(0)
    a = f.iloc[:20].copy()
    b = a.copy()
    num = [c for c in f.columns if c != "case_id"]
    b[num] = b[num] + rng.normal(0, 1, b[num].shape) * b[num].std().to_numpy() * np.r_[[0.1] * 12, [3.0] * 4]
    pd.concat([a.assign(reader="A"), b.assign(reader="B")]).to_csv(d / "icc.csv", index=False)
    r = run_cli("study", d / "features.csv", d / "labels.csv", "-o", d / "out", "--task", "stage1", "--icc",
                d / "icc.csv", "--cv-folds", "5", "--bootstrap", "200", "--split", "center", "--test-center", "C",
                "--feature-sets", "intra", "intra+peri3")
    assert r.returncode == 0, r.stderr
    return d, json.loads((d / "out" / "study.json").read_text(encoding="utf-8"), parse_constant=_no_nan), r.stdout


def test_study_json_holds_the_methods_record(methods_study):
    d, s, out = methods_study
    # cohort table: cases per centre / split / class, summing to the split sizes
    rows = s["cohort_table"]
    for split, ids in s["case_ids"].items():
        assert sum(r["n"] for r in rows if r["split"] == split) == len(ids)
        assert sum(r["event"] for r in rows if r["split"] == split) == sum(s["y"][split])
    assert {r["center"] for r in rows if r["split"] == "external"} == {"C"}  # as written in the labels table
    # provenance a methods section quotes
    assert s["parameter_file"] == {"name": "MR_params.yaml", "sha256": "sha256:" + "ab" * 32}
    assert s["seed"] == 0 and s["split"]["method"] == "center" and s["split"]["test_center"] == "C"
    # ICC: distribution, threshold, kept
    icc = s["icc"]
    assert icc["threshold"] == 0.75 and icc["kind"] == "2,1" and icc["n_cases"] == 20
    assert sum(icc["histogram"]["counts"]) + icc["n_undefined"] == icc["n_features"]
    assert 0 < icc["n_kept"] < icc["n_features"]
    for fs in s["feature_sets"]:
        fun = fs["funnel"]
        assert [k for k, _ in fun] == ["candidates", "ICC", "non-constant", "MWU", "LASSO"]
        counts = [v for _, v in fun]
        assert counts == sorted(counts, reverse=True) and counts[-1] == len(fs["features"])
        card = modelcard.load_model_card(d / "out" / fs["model_card"])
        path = card["selection"]["lasso_path"]
        assert len(path["C"]) == len(card["selection"]["cv_curve"]["C"])
        assert set(fs["features"]) <= set(path["features"])
        chosen = path["C"].index(card["selection"]["C"])
        nz = {f for f, c in zip(path["features"], path["coefficients"], strict=True) if c[chosen] != 0}
        assert nz == set(fs["features"]) or card["selection"]["fallback"]
        assert fs["rad_score"].startswith("Rad-score = ")
        for split in s["split_names"]:
            e = fs["splits"][split]
            cal = e["calibration"]
            y, p = np.asarray(e["y"]), np.asarray(e["probabilities"])
            assert cal["brier"] == pytest.approx(np.mean((p - y) ** 2))
            assert cal["slope"] == pytest.approx(stats.calibration_slope_intercept(y, p)["slope"]) or cal["separation"]
            assert "hosmer_lemeshow" in cal and cal["hosmer_lemeshow"]["groups"] >= 3
            b = e["bootstrap"]
            assert b["n_boot"] == 200 and b["lo"] <= e["metrics"]["auc"] <= b["hi"]
    assert "after ICC" in out


def test_study_without_bootstrap_has_none(study):
    _, s, _ = study
    for fs in s["feature_sets"]:
        for e in fs["splits"].values():
            assert e["bootstrap"] is None and "calibration" in e
    assert s["icc"] is None and s["parameter_file"] == {"name": None, "sha256": None}
