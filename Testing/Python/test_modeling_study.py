"""`study`: four feature sets on one split, study.json schema (plain JSON lists, no NaN), DeLong matrix."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_cli
from sklearn.metrics import roc_auc_score

from her2radiomics import modeling as M
from her2radiomics import stats


def _no_nan(name):
    raise AssertionError(f"study.json holds {name}")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    d = tmp_path_factory.mktemp("study")
    f, lab = M.synthetic_cohort(n_cases=120, n_per_region=15, regions=("intra", "peri1", "peri3"), seed=5, effect=1.2)
    lab["her2"] = np.where(lab["label"] == 1, "positive", np.where(np.arange(len(lab)) % 2, "low", "zero"))
    f.to_csv(d / "features.csv", index=False)
    lab.drop(columns="label").to_csv(d / "labels.csv", index=False)
    r = run_cli("study", d / "features.csv", d / "labels.csv", "-o", d / "out", "--task", "stage1",
                "--split", "center", "--test-center", "C")
    assert r.returncode == 0, r.stderr
    text = (d / "out" / "study.json").read_text()
    return d, json.loads(text, parse_constant=_no_nan), r.stdout


def test_study_outputs(study):
    d, s, stdout = study
    assert s["format"] == "her2radiomics.study/1" and s["task"] == "stage1"
    assert s["classes"] == {"event": "positive", "reference": ["low", "zero"]}
    assert [fs["name"] for fs in s["feature_sets"]] == ["intra", "intra+peri1", "intra+peri3"]
    assert s["skipped"][0]["name"] == "intra+peri5" and "peri5" in s["skipped"][0]["reason"]
    assert s["split_names"] == ["train", "internal", "external"]
    for fs in s["feature_sets"]:
        card = M.load_model_card(d / "out" / fs["model_card"])
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
