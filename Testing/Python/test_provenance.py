"""Provenance that travels with the numbers (issue 12, items 3-4).

The parameter-file hash is a column of the features table (``parameter_file_hash``, the same name as in
``FEATURES.meta.json`` and in a card's ``provenance``), so a table copied without its sidecar still refuses a card
or an ICC table from another parameter file; ``predict`` writes repr-exact floats and one logit column per stage.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import shared_path
from modeling_synth import synthetic_cohort

from her2radiomics import cli, modelcard

H1 = "sha256:" + "1" * 64
H2 = "sha256:" + "2" * 64


def _run(capsys, *args) -> tuple[int, str, str]:
    from her2radiomics.errors import UserError

    try:
        rc = cli.main([str(a) for a in args])
    except SystemExit as exc:  # argparse
        rc = int(exc.code or 0)
    except UserError as exc:
        print(f"error: {exc}", file=__import__("sys").stderr)
        rc = 2
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture
def tables(tmp_path):
    """A synthetic 'extract' table carrying H1 in its parameter_file_hash column (no sidecar) and HER2 labels."""
    feats, lab = synthetic_cohort(n_cases=80, n_per_region=8, regions=("intra",), effect=1.5, seed=3)
    feats["parameter_file_hash"] = H1
    feats["her2radiomics_version"] = "0.test"
    f1 = tmp_path / "F1.csv"
    feats.to_csv(f1, index=False)
    labels = pd.DataFrame({"case_id": lab["case_id"], "her2": np.where(lab["label"] == 1, "positive", "zero")})
    lp = tmp_path / "labels.csv"
    labels.to_csv(lp, index=False)
    return f1, lp, feats


def test_hash_column_is_recorded_by_train_and_not_a_feature(tables, tmp_path, capsys):
    f1, lp, _ = tables
    rc, out, err = _run(capsys, "train", f1, lp, "--task", "stage1", "--feature-set", "all", "-o", tmp_path / "m.json",
                        "--cv-folds", "3")
    assert rc == 0, err
    card = modelcard.load_model_card(tmp_path / "m.json")
    assert card["provenance"]["parameter_file_hash"] == H1
    # the provenance columns are not candidates of 'all' and are not reported as dropped text columns
    assert card["selection"]["candidates"] == 8
    assert "non-numeric" not in out


def test_copied_table_from_another_parameter_file_is_refused(tables, tmp_path, capsys):
    """Must show: FEATURES.csv copied without its .meta.json, extracted with another parameter file, is refused by
    predict, evaluate and train (--icc) in one line."""
    f1, lp, feats = tables
    rc, _, err = _run(capsys, "train", f1, lp, "--task", "stage1", "-o", tmp_path / "m.json", "--cv-folds", "3")
    assert rc == 0, err
    other = tmp_path / "copied" / "FEATURES.csv"
    other.parent.mkdir()
    feats.assign(parameter_file_hash=H2).to_csv(other, index=False)
    assert not other.with_suffix(".meta.json").exists()

    rc, _, err = _run(capsys, "predict", other, "--stage1", tmp_path / "m.json", "-o", tmp_path / "P.csv")
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "parameter file" in err and H2[:19] in err and not (tmp_path / "P.csv").exists()

    rc, _, err = _run(capsys, "evaluate", other, lp, "--model", tmp_path / "m.json")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "parameter file" in err, err

    # train: an ICC table from another parameter file
    icc = feats.head(12).assign(parameter_file_hash=H2)
    icc = pd.concat([icc.assign(reader="A"), icc.assign(reader="B")])
    icc.to_csv(tmp_path / "icc.csv", index=False)
    rc, _, err = _run(capsys, "train", f1, lp, "--task", "stage1", "-o", tmp_path / "m2.json", "--icc",
                      tmp_path / "icc.csv")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "ICC table" in err and "parameter file" in err, err
    assert not (tmp_path / "m2.json").exists()

    # a table that mixes two extractions (concatenated) is refused too
    mixed = pd.concat([feats.head(40), feats.iloc[40:].assign(parameter_file_hash=H2)])
    mixed.to_csv(tmp_path / "mixed.csv", index=False)
    rc, _, err = _run(capsys, "train", tmp_path / "mixed.csv", lp, "--task", "stage1", "-o", tmp_path / "m3.json")
    assert rc == 2 and "2 parameter files" in err, err

    # a sidecar that disagrees with the column is refused (a table edited or re-labelled by hand)
    shutil.copy(f1, tmp_path / "F3.csv")
    (tmp_path / "F3.meta.json").write_text(json.dumps({"parameter_file_hash": H2}))
    rc, _, err = _run(capsys, "predict", tmp_path / "F3.csv", "--stage1", tmp_path / "m.json", "-o", tmp_path / "P.csv")
    assert rc == 2 and "sidecar" in err, err


def test_icc_subset_smaller_than_10_warns_with_the_number(tables, tmp_path, capsys):
    f1, lp, feats = tables
    icc = feats.head(6)
    pd.concat([icc.assign(reader="A"), icc.assign(reader="B")]).to_csv(tmp_path / "icc.csv", index=False)
    rc, out, err = _run(capsys, "train", f1, lp, "--task", "stage1", "-o", tmp_path / "m.json", "--icc",
                        tmp_path / "icc.csv", "--cv-folds", "3", "--icc-threshold", "0")
    assert rc == 0, err
    assert "only 6 cases read by both readers" in out and "fewer than 10" in out, out


def test_predict_writes_repr_exact_probabilities_and_logits(tables, tmp_path, capsys):
    f1, lp, feats = tables
    rc, _, err = _run(capsys, "train", f1, lp, "--task", "stage1", "-o", tmp_path / "m.json", "--cv-folds", "3")
    assert rc == 0, err
    rc, _, err = _run(capsys, "predict", f1, "--stage1", tmp_path / "m.json", "-o", tmp_path / "P.csv")
    assert rc == 0, err
    card = modelcard.load_model_card(tmp_path / "m.json")
    t = pd.read_csv(tmp_path / "P.csv", dtype={"case_id": str})
    from her2radiomics.prediction import predict

    mem = predict(feats, tmp_path / "m.json").table
    for col in ("p_positive", "p1", "stage1_logit"):  # the file holds the in-memory float64 values exactly
        assert np.array_equal(t[col].to_numpy(), mem[col].to_numpy()), col
    X = feats.set_index("case_id").loc[t["case_id"]]
    assert np.allclose(t["p_positive"].to_numpy(), modelcard.predict_proba(card, X), rtol=1e-14, atol=0)
    assert t["parameter_file_hash"].eq(H1).all()
    c = pd.read_csv(tmp_path / "P.contributions.csv", dtype={"case_id": str})
    s = c[c["stage"] == "stage1"].groupby("case_id")["contribution"].sum()
    logit = t.set_index("case_id")["stage1_logit"]
    assert np.allclose(s.loc[logit.index] + card["intercept"], logit, rtol=0, atol=1e-12)
    assert np.allclose(1 / (1 + np.exp(-logit)), t.set_index("case_id")["p1"], rtol=0, atol=1e-15)


def test_pred_csv_auc_equals_evaluate_on_duke(tmp_path, capsys):
    """Must show: the AUC recomputed from PRED.csv equals 'evaluate' to 1e-12 on the real Duke table. With 6
    significant digits (before) the Siemens (external) split had 23 ties and 24 probabilities written as exactly 1,
    and the recomputed AUC differed from evaluate's by 3.8e-3."""
    from sklearn.metrics import roc_auc_score

    d = shared_path("duke")
    feats, clin = d / "imaging_features.csv", d / "clinical.csv"
    generic = ("--id-column", "patient_id", "--label-column", "HER2", "--positive", "1", "--negative", "0")
    rc, _, err = _run(capsys, "train", feats, clin, "-o", tmp_path / "her2.json", "--task", "stage1", "--feature-set",
                      "all", *generic, "--split", "center", "--center-column", "manufacturer", "--test-center", "2")
    assert rc == 0, err
    rc, _, err = _run(capsys, "evaluate", feats, clin, "--model", tmp_path / "her2.json", "--cases",
                      "external", "-o", tmp_path / "metrics.json")
    assert rc == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    rc, _, err = _run(capsys, "predict", feats, "--stage1", tmp_path / "her2.json", "--id-column", "patient_id",
                      "-o", tmp_path / "PRED.csv", "--max-cases", "0")
    assert rc == 0, err
    pred = pd.read_csv(tmp_path / "PRED.csv").set_index("case_id")
    ids = metrics["predictions"]["case_ids"]
    y = clin_y = pd.read_csv(clin).set_index("patient_id")["HER2"].loc[ids].to_numpy()
    assert np.array_equal(y, np.asarray(metrics["predictions"]["y"])) and clin_y.sum() > 10
    auc = roc_auc_score(y, pred.loc[ids, "p_positive"].to_numpy())
    assert abs(auc - metrics["metrics"]["auc"]) <= 1e-12
    # confident cases are no longer written as p = 1: only those that are 1.0 in float64 itself
    assert (pred.loc[ids, "p_positive"] == 1).sum() == sum(p == 1 for p in metrics["predictions"]["probabilities"])
    # the same float64 up to the order of the sums (predict adds contributions, evaluate a dot product)
    assert np.allclose(pred.loc[ids, "p_positive"].to_numpy(), metrics["predictions"]["probabilities"], rtol=1e-13, atol=0)


def test_resampled_and_native_features_do_not_mix(tables, tmp_path, capsys):
    """--resample-spacing changes texture features a lot (docs/features.md): a card trained on resampled features
    refuses native ones (the table's 'resample' column, recorded in the card) and the reverse."""
    f1, lp, feats = tables
    feats.assign(resample="0.8 0.8 0.8 linear").to_csv(tmp_path / "R.csv", index=False)
    rc, _, err = _run(capsys, "train", tmp_path / "R.csv", lp, "--task", "stage1", "-o", tmp_path / "m.json",
                      "--cv-folds", "3")
    assert rc == 0, err
    assert modelcard.load_model_card(tmp_path / "m.json")["provenance"]["resample"] == "0.8 0.8 0.8 linear"
    feats.assign(resample="none").to_csv(tmp_path / "N.csv", index=False)
    rc, _, err = _run(capsys, "predict", tmp_path / "N.csv", "--stage1", tmp_path / "m.json", "-o", tmp_path / "P.csv")
    assert rc == 2 and "resampl" in err and "--resample-spacing" in err and len(err.strip().splitlines()) == 1, err
    rc, _, err = _run(capsys, "evaluate", tmp_path / "N.csv", lp, "--model", tmp_path / "m.json")
    assert rc == 2 and "resampl" in err, err
    rc, _, err = _run(capsys, "predict", tmp_path / "R.csv", "--stage1", tmp_path / "m.json", "-o", tmp_path / "P.csv")
    assert rc == 0, err


def test_report_and_compare_refuse_features_from_another_parameter_file(tables, tmp_path, capsys):
    f1, lp, feats = tables
    rc, _, err = _run(capsys, "study", f1, lp, "--task", "stage1", "-o", tmp_path / "S", "--feature-sets", "intra",
                      "all", "--cv-folds", "3")
    assert rc == 0, err
    other = tmp_path / "other.csv"
    feats.assign(parameter_file_hash=H2).to_csv(other, index=False)
    cards = [tmp_path / "S" / "intra.model.json", tmp_path / "S" / "all.model.json"]
    rc, _, err = _run(capsys, "compare", other, lp, "--models", *cards)
    assert rc == 2 and "parameter file" in err and len(err.strip().splitlines()) == 1, err
    rc, _, err = _run(capsys, "predict", f1, "--stage1", cards[0], "-o", tmp_path / "P.csv", "--max-cases", "0")
    assert rc == 0, err
    from her2radiomics.commands.report import check_parameter_files, read_predictions
    from her2radiomics.report import load_study

    study = load_study(tmp_path / "S" / "study.json")
    check_parameter_files([study], read_predictions(tmp_path / "P.csv")[0], tmp_path / "P.csv")  # same file: passes
    pred = pd.read_csv(tmp_path / "P.csv", dtype=str, keep_default_na=False)
    pred.assign(parameter_file_hash=H2).to_csv(tmp_path / "Q.csv", index=False)
    shutil.copy(tmp_path / "P.contributions.csv", tmp_path / "Q.contributions.csv")
    rc, _, err = _run(capsys, "report", "--study", tmp_path / "S" / "study.json", "--predictions", tmp_path / "Q.csv",
                      "-o", tmp_path / "r2.html")
    assert rc == 2 and "parameter file" in err and not (tmp_path / "r2.html").exists(), err
