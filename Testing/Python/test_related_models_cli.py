"""train/study/evaluate/predict with --clinical and --harmonize combat (issue 15) on a synthetic cohort."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from modeling_synth import synthetic_cohort

from her2radiomics import clinical as C
from her2radiomics import harmonize as H
from her2radiomics.fitting import TrainConfig
from her2radiomics.modelcard import load_model_card, predict_proba

GENERIC = ("--task", "custom", "--label-column", "label", "--positive", "1", "--negative", "0",
           "--feature-set", "intra", "--cv-folds", "5")


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    d = tmp_path_factory.mktemp("rel")
    feats, labels = synthetic_cohort(n_cases=180, n_per_region=20, regions=("intra",), seed=4)
    rng = np.random.default_rng(1)
    # scanner effect: centre B shifts and stretches every feature, centre C shifts it the other way
    cols = [c for c in feats.columns if c.startswith("intra_")]
    sd = feats[cols].std().to_numpy()
    for centre, (shift, scale) in {"B": (1.5, 1.6), "C": (-1.0, 0.7)}.items():
        rows = (labels["center"] == centre).to_numpy()
        m = feats.loc[rows, cols].mean().to_numpy()
        feats.loc[rows, cols] = (feats.loc[rows, cols].to_numpy() - m) * scale + m + shift * sd
    y = labels["label"].to_numpy()
    labels["age"] = np.round(50 + 8 * y + rng.normal(0, 10, len(y)), 1)
    labels["grade"] = np.where(rng.random(len(y)) < 0.3 + 0.3 * y, "3", np.where(rng.random(len(y)) < 0.5, "2", "1"))
    labels.loc[5, "age"] = np.nan
    feats.to_csv(d / "f.csv", index=False)
    labels.to_csv(d / "l.csv", index=False)
    return d / "f.csv", d / "l.csv", feats, labels


def test_train_harmonised_and_clinical_card_then_evaluate(tables, tmp_path):
    f, lab, feats, labels = tables
    card_path = tmp_path / "m.json"
    r = run_cli("train", f, lab, "-o", card_path, *GENERIC, "--harmonize", "combat", "--batch-column", "center",
                "--clinical", "age", "grade:cat", "--clinical-selection", "univariate")
    assert r.returncode == 0, r.stderr
    assert "clinical model (multivariate logistic regression)" in r.stdout and "[test] AUC radiomics" in r.stdout
    card = load_model_card(card_path)
    h = card["harmonization"]
    assert h["batches"] == ["a", "b", "c"] and h["reference_batch"] is None and len(h["features"]) == 20
    # the record harmonises the training cases exactly as a ComBat fit on them does
    X = feats.set_index("case_id")
    tr = card["provenance"]["case_ids"]["train"]
    batch = labels.set_index("case_id").loc[tr, "center"].to_numpy()
    again = H.fit(X.loc[tr, [c for c in X.columns if c.startswith("intra_")]], batch, batch_column="center")
    np.testing.assert_allclose(again["gamma_star"]["b"], h["gamma_star"]["b"], rtol=1e-12)
    sec = card["clinical_models"]
    assert sec["encoding"][1]["reference"] == "1" and sec["combined"]["terms"][0] == "rad_score"
    assert sec["delong"]["test"]["models"] == ["radiomics", "clinical", "combined"]
    assert card["provenance"]["options"]["harmonize"] == "combat"
    # the combined model's nomogram reading equals its probability on a case
    lm = C.LinearModel.from_json(sec["combined"])
    p_test = np.asarray(sec["combined"]["probabilities"]["test"])
    assert np.all((p_test > 0) & (p_test < 1)) and lm.terms[0] == "rad_score"
    # evaluate: refused without --harmonize, then reproduces the card's own test metrics for all three models
    r = run_cli("evaluate", f, lab, "--model", card_path, "--cases", "test")
    assert r.returncode != 0 and "add --harmonize combat --batch-column center" in r.stderr
    r = run_cli("evaluate", f, lab, "--model", card_path, "--cases", "test", "--harmonize", "combat",
                "-o", tmp_path / "ev.json")
    assert r.returncode == 0, r.stderr
    ev = json.loads((tmp_path / "ev.json").read_text(encoding="utf-8"))
    assert ev["metrics"]["auc"] == pytest.approx(card["metrics"]["test"]["auc"], abs=1e-12)
    for m in ("clinical", "combined"):
        assert ev["clinical_models"]["metrics"][m]["auc"] == pytest.approx(sec[m]["metrics"]["test"]["auc"], abs=1e-12)
    assert "combined AUC" in r.stdout


def test_centre_split_unseen_batch_refused_or_estimated(tables, tmp_path):
    f, lab, _, _ = tables
    opts = (*GENERIC, "--split", "center", "--test-center", "C", "--harmonize", "combat", "--batch-column", "center")
    r = run_cli("train", f, lab, "-o", tmp_path / "a.json", *opts)
    assert r.returncode != 0
    assert r.stderr.strip().count("\n") == 0 and "batch 'c' of 'center' was not in the ComBat fit" in r.stderr
    assert "--harmonize-batch FILE" in r.stderr and not (tmp_path / "a.json").exists()
    r = run_cli("train", f, lab, "-o", tmp_path / "b.json", *opts, "--harmonize-batch", f)
    assert r.returncode == 0, r.stderr
    h = load_model_card(tmp_path / "b.json")["harmonization"]
    assert h["estimated_from_new_cases"] == ["c"] and set(h["gamma_star"]) == {"a", "b", "c"}


def test_predict_with_harmonised_card(tables, tmp_path):
    f, lab, feats, labels = tables
    r = run_cli("train", f, lab, "-o", tmp_path / "m.json", *GENERIC, "--harmonize", "combat", "--batch-column",
                "center")
    assert r.returncode == 0, r.stderr
    card = load_model_card(tmp_path / "m.json")
    t = feats.merge(labels[["case_id", "center"]], on="case_id")
    t.to_csv(tmp_path / "fc.csv", index=False)
    r = run_cli("predict", tmp_path / "fc.csv", "--stage1", tmp_path / "m.json", "-o", tmp_path / "p.csv")
    assert r.returncode != 0 and "add --harmonize combat" in r.stderr
    r = run_cli("predict", tmp_path / "fc.csv", "--stage1", tmp_path / "m.json", "-o", tmp_path / "p.csv",
                "--harmonize", "combat")
    assert r.returncode == 0, r.stderr
    pred = pd.read_csv(tmp_path / "p.csv", dtype={"case_id": str}).set_index("case_id")
    ids = card["provenance"]["case_ids"]["test"]
    Xh = H.apply(card["harmonization"], feats.set_index("case_id").loc[ids], labels.set_index("case_id").loc[ids,
                                                                                                           "center"])
    want = predict_proba(card, Xh)
    np.testing.assert_allclose(pred.loc[ids, "p_positive"].to_numpy(), want, atol=1e-12)


def test_default_card_has_no_new_sections(tables, tmp_path):
    f, lab, _, _ = tables
    r = run_cli("train", f, lab, "-o", tmp_path / "m.json", *GENERIC)
    assert r.returncode == 0, r.stderr
    card = load_model_card(tmp_path / "m.json")
    assert "harmonization" not in card and "clinical_models" not in card
    assert set(card["provenance"]["options"]) == set(TrainConfig().to_json())


def test_option_misuse_is_one_line(tables, tmp_path):
    f, lab, _, _ = tables
    for extra, msg in ((("--harmonize", "combat"), "needs --batch-column COL"),
                       (("--clinical-selection", "univariate"), "needs --clinical COL"),
                       (("--clinical", "stage"), "no clinical column 'stage'")):
        r = run_cli("train", f, lab, "-o", tmp_path / "x.json", *GENERIC, *extra)
        assert r.returncode != 0 and msg in r.stderr, r.stderr


def test_study_with_clinical_then_report_draws_nomogram(tables, tmp_path):
    f, lab, _, _ = tables
    r = run_cli("study", f, lab, "-o", tmp_path / "s", *GENERIC[:-4], "--feature-sets", "intra", "--cv-folds", "5",
                "--clinical", "age", "grade:cat=1")
    assert r.returncode == 0, r.stderr
    study = json.loads((tmp_path / "s" / "study.json").read_text(encoding="utf-8"))
    cm = study["feature_sets"][0]["clinical_models"]
    assert cm["kept"] == ["age", "grade"] and cm["delong"]["test"]["models"] == ["radiomics", "clinical", "combined"]
    r = run_cli("report", "--study", tmp_path / "s" / "study.json", "-o", tmp_path / "r.html")
    assert r.returncode == 0, r.stderr
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Clinical and combined models (intra)" in html and "grade (ref 1)" in html and "multivariate OR" in html
    assert (tmp_path / "r.nomogram.custom.intra.png").stat().st_size > 1000
    assert "<svg" in (tmp_path / "r.nomogram.custom.intra.svg").read_text(encoding="utf-8")[:400]
