"""End to end on the real Duke-Breast-Cancer-MRI cohort (599 patients, 529 DCE-MRI features, real missing values)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli, shared_path
from sklearn.metrics import roc_auc_score

from her2radiomics import modelcard

GENERIC = ("--feature-set", "all", "--id-column", "patient_id", "--positive", "1", "--negative", "0")
CENTRE = ("--split", "center", "--center-column", "manufacturer", "--test-center", "2")


@pytest.fixture(scope="module")
def duke():
    d = shared_path("duke")
    return d / "imaging_features.csv", d / "clinical.csv"


def _check_card_against_data(card, feats: pd.DataFrame, clin: pd.DataFrame, label: str) -> dict:
    """Recompute every split's AUC and counts from the raw tables with scikit-learn."""
    y_all = clin.set_index("patient_id")[label]
    X = feats.set_index("patient_id")
    out = {}
    for split, ids in card["provenance"]["case_ids"].items():
        p = modelcard.predict_proba(card, X.loc[ids])
        y = y_all.loc[ids].to_numpy()
        m = card["metrics"][split]
        assert m["n"] == len(ids) and m["n_event"] == int(y.sum())
        assert m["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        pred = p >= card["cutoff"]
        assert m["sensitivity"] == pytest.approx(np.mean(pred[y == 1]))
        assert m["specificity"] == pytest.approx(np.mean(~pred[y == 0]))
        out[split] = m
    return out


def test_duke_er_centre_split_end_to_end(duke, tmp_path):
    features, clinical = duke
    r = run_cli("train", features, clinical, "-o", tmp_path / "er.json", "--task", "custom", "--label-column", "ER",
                *GENERIC, *CENTRE)
    assert r.returncode == 0, r.stderr
    card = modelcard.load_model_card(tmp_path / "er.json")
    feats, clin = pd.read_csv(features), pd.read_csv(clinical)
    m = _check_card_against_data(card, feats, clin, "ER")
    # the centre split follows the scanner manufacturer: GE (0) trains, Siemens (2) is the external test
    man = clin.set_index("patient_id")["manufacturer"]
    assert set(man.loc[card["provenance"]["case_ids"]["external"]]) == {2}
    assert len(card["provenance"]["case_ids"]["external"]) == int((man == 2).sum()) == 191
    assert set(man.loc[card["provenance"]["case_ids"]["train"] + card["provenance"]["case_ids"]["internal"]]) == {0}
    # real missing values were imputed (training medians stored in the card)
    assert card["selection"]["n_missing_imputed"] > 0
    assert card["selection"]["candidates"] == 529 and 1 <= card["selection"]["n_selected"] <= 60
    # ER is predictable above chance on the other manufacturer's scanners (DeLong CI excludes 0.5)
    assert m["external"]["auc"] > 0.6 and m["external"]["auc_ci"][0] > 0.5
    assert m["train"]["auc"] > m["external"]["auc"]
    g = card["gdi"]["external"]
    assert g["value"] == pytest.approx((m["train"]["auc"] - m["external"]["auc"]) / m["train"]["auc"])


def test_duke_her2_random_split_and_evaluate(duke, tmp_path):
    features, clinical = duke
    r = run_cli("train", features, clinical, "-o", tmp_path / "her2.json", "--task", "stage1", "--label-column", "HER2",
                *GENERIC, "--seed", "0")
    assert r.returncode == 0, r.stderr
    card = modelcard.load_model_card(tmp_path / "her2.json")
    feats, clin = pd.read_csv(features), pd.read_csv(clinical)
    m = _check_card_against_data(card, feats, clin, "HER2")
    assert m["train"]["n"] + m["test"]["n"] == 599
    assert m["train"]["n_event"] + m["test"]["n_event"] == 106       # 106 HER2-positive patients in the table
    assert abs(m["test"]["n_event"] - 0.3 * 106) <= 1                # stratified
    assert 0.4 < m["test"]["auc"] < 0.8            # HER2 is only weakly visible in these features
    # evaluate on the card's own test cases (label options taken from the card) reproduces its test metrics
    r2 = run_cli("evaluate", features, clinical, "--model", tmp_path / "her2.json", "--cases", "test",
                 "-o", tmp_path / "metrics.json")
    assert r2.returncode == 0, r2.stderr
    ev = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    for k in ("n", "n_event", "auc", "auc_ci", "accuracy", "sensitivity", "specificity"):
        assert ev["metrics"][k] == pytest.approx(card["metrics"]["test"][k]), k
    assert ev["gdi"] == card["gdi"]["test"]
    assert ev["n_training_cases_evaluated"] == 0
