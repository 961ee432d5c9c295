"""Modelling pipeline: feature sets, splits, selection, LR refit, and the card's predictions vs scikit-learn."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from hypothesis import given, settings
from hypothesis import strategies as st
from modeling_synth import synthetic_cohort
from scipy.stats import mannwhitneyu
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from her2radiomics import fitting, modelcard, selection, splits, stats, targets
from her2radiomics.errors import UserError

CLASSES = {"event": "label=1", "reference": ["label=0"]}


def cohort(n_cases=150, n_per_region=30, seed=1, **kw) -> targets.LabelledTable:
    f, lab = synthetic_cohort(n_cases=n_cases, n_per_region=n_per_region, seed=seed, **kw)
    lab = lab.set_index("case_id")
    t = targets.Targets(y=lab["label"], center=lab["center"], classes=CLASSES)
    return targets.join_labels(f, t, targets.LabelSpec())


@pytest.fixture(scope="module")
def trained() -> tuple[targets.LabelledTable, fitting.TrainResult]:
    c = cohort(missing_rate=0.01)
    return c, fitting.train(c, fitting.TrainConfig(task="custom", feature_set="intra+peri3", seed=3))


# ---------------------------------------------------------------------------------------- feature sets
def test_feature_columns_sets():
    cols = ["case_id", "intra_a", "intra_b", "peri1_a", "peri3_a", "peri3_b", "peri5_a", "peri2.5_x", "age"]
    assert targets.feature_columns(cols, "intra") == ["intra_a", "intra_b"]
    assert targets.feature_columns(cols, "intra+peri3") == ["intra_a", "intra_b", "peri3_a", "peri3_b"]
    assert targets.feature_columns(cols, "intra+peri2.5") == ["intra_a", "intra_b", "peri2.5_x"]
    assert targets.feature_columns(cols, "all", exclude=["case_id"], numeric=cols[1:-1]) == cols[1:-1]
    with pytest.raises(UserError, match="peri7"):
        targets.feature_columns(cols, "intra+peri7")
    with pytest.raises(UserError, match="unknown feature set"):
        targets.feature_columns(cols, "lesion")


def test_build_cohort_joins_and_sorts_ids():
    f = pd.DataFrame({"case_id": ["c", "a", "b", "z"], "intra_x": [3.0, 1.0, 2.0, 9.0]})
    t = targets.Targets(y=pd.Series([1, 0, 1], index=["b", "a", "c"]), center=None, classes=CLASSES)
    c = targets.join_labels(f, t, targets.LabelSpec())
    assert c.ids == ["a", "b", "c"]
    assert c.y.tolist() == [0, 1, 1]
    assert c.X["intra_x"].tolist() == [1.0, 2.0, 3.0]
    assert any("no usable label" in n for n in c.notes)


# ---------------------------------------------------------------------------------------- splits
def test_random_split_stratified_and_deterministic():
    y = np.array([1] * 40 + [0] * 60)
    a = splits.make_splits(y, test_size=0.3, seed=5)
    b = splits.make_splits(y, test_size=0.3, seed=5)
    c = splits.make_splits(y, test_size=0.3, seed=6)
    assert a["test"].tolist() == b["test"].tolist() and a["test"].tolist() != c["test"].tolist()
    assert len(a["test"]) == 30 and y[a["test"]].sum() == 12          # 30% of 40 events
    assert sorted(np.r_[a["train"], a["test"]].tolist()) == list(range(100))


def test_center_split_external_is_the_test_center():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 90)
    y[:6] = [1, 0, 1, 0, 1, 0]
    center = np.array(["0", "2", "5"] * 30, dtype=object)
    s = splits.make_splits(y, method="center", test_size=0.3, seed=0, center=center, test_center="2.0")
    assert set(center[s["external"]]) == {"2"} and len(s["external"]) == 30
    assert set(center[np.r_[s["train"], s["internal"]]]) == {"0", "5"}
    assert not set(s["train"]) & set(s["internal"])
    assert len(s["internal"]) == math.ceil(0.3 * 60)
    with pytest.raises(UserError, match="no case has center"):
        splits.make_splits(y, method="center", center=center, test_center="9")


# ---------------------------------------------------------------------------------------- the fitted model
def test_card_predictions_equal_sklearn(trained):
    c, res = trained
    card = res.card
    train_ids = card["provenance"]["case_ids"]["train"]
    test_ids = card["provenance"]["case_ids"]["test"]
    feats = card["features"]
    Xtr = c.X.loc[train_ids, feats].to_numpy(float)
    med = np.nanmedian(Xtr, axis=0)
    Xtr = np.where(np.isnan(Xtr), med, Xtr)
    Xte = c.X.loc[test_ids, feats].to_numpy(float)
    Xte = np.where(np.isnan(Xte), med, Xte)
    # independent pipeline: StandardScaler + LogisticRegression(C=10) fitted on the selected training columns
    scaler = StandardScaler().fit(Xtr)
    lr = LogisticRegression(C=fitting.REFIT_C, max_iter=5000, tol=1e-10).fit(scaler.transform(Xtr), c.y[[c.ids.index(i) for i in train_ids]])
    ref = lr.predict_proba(scaler.transform(Xte))[:, 1]
    got = modelcard.predict_proba(card, c.X.loc[test_ids])
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(card["imputation"]["values"], med)
    np.testing.assert_allclose(card["scaler"]["mean"], scaler.mean_, rtol=1e-12)
    np.testing.assert_allclose(card["scaler"]["scale"], scaler.scale_, rtol=1e-12)
    # the in-memory sklearn model used for the refit gives the same probabilities
    z = (Xte - np.array(card["scaler"]["mean"])) / np.array(card["scaler"]["scale"])
    np.testing.assert_allclose(got, res.fit.sklearn_model.predict_proba(z)[:, 1], rtol=1e-12)
    # rad-score = logit of the probability
    eta = modelcard.linear_predictor(card, c.X.loc[test_ids])
    np.testing.assert_allclose(1 / (1 + np.exp(-eta)), got, rtol=1e-12)


def test_card_metrics_recomputed_independently(trained):
    c, res = trained
    card = res.card
    for split, ids in card["provenance"]["case_ids"].items():
        p = modelcard.predict_proba(card, c.X.loc[ids])
        y = c.y[[c.ids.index(i) for i in ids]]
        m = card["metrics"][split]
        assert m["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert m["n"] == len(ids) and m["n_event"] == int(y.sum())
        pred = p >= card["cutoff"]
        assert m["accuracy"] == pytest.approx(np.mean(pred == y))
        assert m["sensitivity"] == pytest.approx(np.mean(pred[y == 1]))
        assert m["specificity"] == pytest.approx(np.mean(~pred[y == 0]))
        assert m["auc_ci"][0] <= m["auc"] <= m["auc_ci"][1]
    g = card["gdi"]["test"]
    tr, te = card["metrics"]["train"]["auc"], card["metrics"]["test"]["auc"]
    assert g["value"] == pytest.approx((tr - te) / tr) and g["zone"] == stats.gdi_zone(g["value"])
    # cut-off is Youden's on the training probabilities (sklearn ROC thresholds as a brute-force reference)
    from sklearn.metrics import roc_curve
    ids = card["provenance"]["case_ids"]["train"]
    p = modelcard.predict_proba(card, c.X.loc[ids])
    y = c.y[[c.ids.index(i) for i in ids]]
    fpr, tpr, _ = roc_curve(y, p)
    pred = p >= card["cutoff"]
    j = np.mean(pred[y == 1]) + np.mean(~pred[y == 0]) - 1
    assert j == pytest.approx(np.max(tpr - fpr))


def test_planted_signal_is_found(trained):
    _, res = trained
    card = res.card
    planted = {"intra_f0", "intra_f1", "intra_f2", "peri3_f0", "peri3_f1", "peri3_f2"}
    assert len(planted & set(card["features"])) >= 5
    assert card["metrics"]["test"]["auc"] > 0.8
    assert card["selection"]["fallback"] is None
    assert card["selection"]["n_selected"] == len(card["features"])
    assert all(f.startswith(("intra_", "peri3_")) for f in card["features"])


def test_zscore_uses_training_rows_only(trained):
    c, res = trained
    test_ids = res.card["provenance"]["case_ids"]["test"]
    X2 = c.X.copy()
    X2.loc[test_ids] = X2.loc[test_ids] * 1000.0 + 7.0          # wild test rows
    c2 = targets.LabelledTable(X=X2, y=c.y, center=c.center, classes=c.classes, numeric=c.numeric, notes=[])
    res2 = fitting.train(c2, fitting.TrainConfig(task="custom", feature_set="intra+peri3", seed=3))
    for key in ("features", "scaler", "coefficients", "intercept", "cutoff", "imputation", "training_range"):
        assert res2.card[key] == res.card[key], key
    assert res2.card["metrics"]["train"] == res.card["metrics"]["train"]
    assert res2.card["metrics"]["test"] != res.card["metrics"]["test"]


def test_determinism_with_seed(trained):
    c, res = trained
    again = fitting.train(c, fitting.TrainConfig(task="custom", feature_set="intra+peri3", seed=3))
    strip = lambda card: {k: v for k, v in card.items() if k != "provenance"}  # noqa: E731
    assert json.dumps(strip(again.card), sort_keys=True) == json.dumps(strip(res.card), sort_keys=True)
    other = fitting.train(c, fitting.TrainConfig(task="custom", feature_set="intra+peri3", seed=4))
    assert other.card["provenance"]["case_ids"]["test"] != res.card["provenance"]["case_ids"]["test"]


def test_lasso_fallback_on_pure_noise():
    c = cohort(n_cases=120, n_per_region=20, seed=7, effect=0.0)
    res = fitting.train(c, fitting.TrainConfig(task="custom", feature_set="intra", seed=0, lambda_rule="1se"))
    sel = res.card["selection"]
    assert sel["fallback"] and "no feature" in sel["fallback"]
    assert sel["n_selected"] == 1 and len(res.card["features"]) == 1
    # the kept feature is the one most correlated with the label on the training rows (first on the L1 path)
    ids = res.card["provenance"]["case_ids"]["train"]
    X = c.X.loc[ids, targets.feature_columns(list(c.X.columns), "intra")].to_numpy(float)
    y = c.y[[c.ids.index(i) for i in ids]]
    z = (X - X.mean(0)) / X.std(0)
    best = targets.feature_columns(list(c.X.columns), "intra")[int(np.argmax(np.abs(z.T @ (y - y.mean()))))]
    assert res.card["features"] == [best]


def test_mwu_filter_count_matches_scipy():
    c = cohort(n_cases=120, n_per_region=25, seed=2)
    res = fitting.train(c, fitting.TrainConfig(task="custom", feature_set="intra", mwu_p=0.05))
    ids = res.card["provenance"]["case_ids"]["train"]
    X = c.X.loc[ids, targets.feature_columns(list(c.X.columns), "intra")].to_numpy(float)
    y = c.y[[c.ids.index(i) for i in ids]]
    n_ref = sum(mannwhitneyu(X[y == 1, j], X[y == 0, j]).pvalue < 0.05 for j in range(X.shape[1]))
    assert res.card["selection"]["n_after_mwu"] == n_ref
    assert res.card["selection"]["n_after_mwu"] < res.card["selection"]["n_after_icc"]


def test_icc_filter_against_stats_icc():
    rng = np.random.default_rng(3)
    n = 40
    truth = rng.standard_normal((n, 4))
    noise = np.array([0.05, 0.3, 1.5, 5.0])            # reader noise: reproducible -> not reproducible
    r1 = truth + rng.standard_normal((n, 4)) * noise
    r2 = truth + rng.standard_normal((n, 4)) * noise
    r2[5, 0] = np.nan                                   # a missing value: ICC on the complete cases
    cols = [f"intra_f{j}" for j in range(4)]
    tab = pd.concat([pd.DataFrame(r1, columns=cols).assign(reader="R1"), pd.DataFrame(r2, columns=cols).assign(reader="R2")])
    tab.insert(0, "case_id", [f"c{i}" for i in range(n)] * 2)
    kept, iccs, _ = selection.icc_filter(tab, cols + ["intra_absent"], "case_id", threshold=0.75, kind="2,1")
    ok = np.isfinite(r2[:, 0])
    assert iccs["intra_f0"] == pytest.approx(stats.icc(np.c_[r1[ok, 0], r2[ok, 0]], kind="2,1"), rel=1e-10)
    for j in (1, 2, 3):
        assert iccs[cols[j]] == pytest.approx(stats.icc(np.c_[r1[:, j], r2[:, j]], kind="2,1"), rel=1e-10)
    assert kept == [c for c in cols if iccs[c] >= 0.75]
    assert kept[:2] == ["intra_f0", "intra_f1"] and "intra_f3" not in kept


def test_train_with_icc_table_via_cli(tmp_path):
    f, lab = synthetic_cohort(n_cases=90, n_per_region=12, regions=("intra", "peri3"), seed=4)
    f.to_csv(tmp_path / "features.csv", index=False)
    lab.to_csv(tmp_path / "labels.csv", index=False)
    rng = np.random.default_rng(0)
    sub = f.iloc[:30]
    noisy = sub.copy()
    cols = [c for c in f.columns if c != "case_id"]
    sd = f[cols].std().to_numpy()
    noise = np.where([c.endswith(("_f0", "_f1")) for c in cols], 0.02, 3.0)   # only f0/f1 reproducible
    noisy[cols] = sub[cols].to_numpy() + rng.standard_normal(sub[cols].shape) * sd * noise
    icc = pd.concat([sub.assign(reader="A"), noisy.assign(reader="B")])
    icc.to_csv(tmp_path / "icc.csv", index=False)
    r = run_cli("train", tmp_path / "features.csv", tmp_path / "labels.csv", "-o", tmp_path / "m.json", "--task", "custom",
                "--label-column", "label", "--positive", "1", "--negative", "0", "--feature-set", "intra+peri3",
                "--icc", tmp_path / "icc.csv", "--icc-kind", "3,1")
    assert r.returncode == 0, r.stderr
    card = modelcard.load_model_card(tmp_path / "m.json")
    assert card["selection"]["n_after_icc"] == 4 and card["selection"]["icc_kind"] == "3,1"
    assert set(card["features"]) <= {"intra_f0", "intra_f1", "peri3_f0", "peri3_f1"}
    assert card["provenance"]["icc_table_hash"].startswith("sha256:")


def test_missing_values_imputed_with_training_medians(trained):
    c, res = trained
    card = res.card
    test_ids = card["provenance"]["case_ids"]["test"][:3]
    X = c.X.loc[test_ids].copy()
    X[card["features"][0]] = np.nan
    Y = X.copy()
    Y[card["features"][0]] = card["imputation"]["values"][0]
    np.testing.assert_allclose(modelcard.predict_proba(card, X), modelcard.predict_proba(card, Y))
    with pytest.raises(UserError, match="missing"):
        modelcard.predict_proba(card, X, impute=False)
    with pytest.raises(UserError, match="lacks 1 of the model's"):
        modelcard.predict_proba(card, X.drop(columns=[card["features"][-1]]))


# ---------------------------------------------------------------------------------------- property test
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(12, 60), p=st.integers(1, 6), offset=st.floats(-1e4, 1e4),
       logscale=st.floats(-3, 4))
def test_card_linear_predictor_equals_sklearn_pipeline(seed, n, p, offset, logscale):
    rng = np.random.default_rng(seed)
    X = offset + 10.0**logscale * rng.standard_normal((n, p))
    y = (rng.random(n) < 0.5).astype(int)
    y[:2] = [0, 1]
    sc = StandardScaler().fit(X)
    lr = LogisticRegression(C=1.0).fit(sc.transform(X), y)
    names = [f"intra_f{j}" for j in range(p)]
    card = {"features": names, "scaler": {"mean": sc.mean_.tolist(), "scale": sc.scale_.tolist()},
            "coefficients": lr.coef_.ravel().tolist(), "intercept": float(lr.intercept_[0])}
    df = pd.DataFrame(X, columns=names)
    np.testing.assert_allclose(modelcard.predict_proba(card, df), lr.predict_proba(sc.transform(X))[:, 1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(modelcard.linear_predictor(card, df), lr.decision_function(sc.transform(X)), rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------------------------------- labels -> targets
def test_load_targets_stages_and_generic(tmp_path):
    p = tmp_path / "labels.csv"
    pd.DataFrame({"case_id": ["a", "b", "c", "d", "e"], "ihc": ["3+", "2+", "2+", "1+", "0"],
                  "fish": ["", "positive", "negative", "", ""], "site": [1, 1, 2, 2, 2],
                  "grade": ["1", "2.0", "3", "", "2"]}).to_csv(p, index=False)
    s1 = targets.load_targets(p, "stage1", targets.LabelSpec())
    assert s1.y.to_dict() == {"a": 1, "b": 1, "c": 0, "d": 0, "e": 0}
    assert s1.classes == {"event": "positive", "reference": ["low", "zero"]}
    s2 = targets.load_targets(p, "stage2", targets.LabelSpec(center_column="site"))
    assert s2.y.to_dict() == {"c": 1, "d": 1, "e": 0}
    assert s2.center.to_dict() == {"c": "2", "d": "2", "e": "2"}
    assert any("2 HER2-positive case(s) excluded" in n for n in s2.notes)
    g = targets.load_targets(p, "custom", targets.LabelSpec(label_column="grade", positive=("2",), negative=("1",)))
    assert g.y.to_dict() == {"a": 0, "b": 1, "e": 1}                    # "2.0" == "2"; blank and 3 left out
    assert g.classes == {"event": "grade=2", "reference": ["grade=1"]}
    with pytest.raises(UserError, match="custom"):
        targets.load_targets(p, "custom", targets.LabelSpec())


def test_multi_reader_features_need_reader_choice():
    f = pd.DataFrame({"case_id": ["a", "a", "b", "b"], "reader": ["R1", "R2", "R1", "R2"], "intra_x": [1.0, 1.1, 2.0, 2.2]})
    t = targets.Targets(y=pd.Series([0, 1], index=["a", "b"]), center=None, classes=CLASSES)
    with pytest.raises(UserError, match="pass --reader"):
        targets.join_labels(f, t, targets.LabelSpec())
    c = targets.join_labels(f, t, targets.LabelSpec(), reader="R2")
    assert c.X["intra_x"].tolist() == [1.1, 2.2] and "reader" not in c.X.columns


def test_label_and_centre_columns_never_become_features():
    f = pd.DataFrame({"case_id": list("abcdef"), "ER": [1, 0, 1, 0, 1, 0], "Center": [1, 2, 1, 2, 1, 2],
                      "age": [50.0, 60, 55, 40, 45, 70]})
    t = targets.Targets(y=pd.Series([1, 0, 1, 0, 1, 0], index=list("abcdef")), center=None, classes=CLASSES)
    c = targets.join_labels(f, t, targets.LabelSpec(label_column="ER", center_column="center"))
    assert targets.feature_columns(list(c.X.columns), "all", numeric=c.numeric) == ["age"]


def test_tab_separated_labels_keep_their_centre_column(tmp_path):
    """labels.load_labels reads .tsv files; load_targets looked for the centre column in a comma-split header, so a
    TSV's centre was dropped and --split center failed with 'needs a centre column'."""
    feats, labels = synthetic_cohort(n_cases=30, n_per_region=2, regions=("intra",), seed=1)
    labels.to_csv(tmp_path / "l.tsv", index=False, sep="\t")
    labels.to_csv(tmp_path / "l.csv", index=False)
    spec = targets.LabelSpec(label_column="label", positive=("1",), negative=("0",))
    want = {i: c.lower() for i, c in zip(labels["case_id"], labels["center"], strict=True)}  # canonical text
    for name in ("l.tsv", "l.csv"):
        t = targets.load_targets(tmp_path / name, "custom", spec)
        assert t.center is not None and t.center.to_dict() == want, name
