"""Variance threshold, univariate AUC, Pearson redundancy, Mann-Whitney U and RFE: hand computations on small
tables and scikit-learn's own VarianceThreshold / RFE / RFECV."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from modeling_synth import synthetic_cohort

from her2radiomics import feature_filters as ff
from her2radiomics import fitting, targets
from her2radiomics.errors import UserError

# 6 cases; y = 0 0 0 1 1 1
Y = np.array([0, 0, 0, 1, 1, 1])
A = np.array([
    # constant, var 0.25, var 35/12, f3 ~ 2*f2 (r ~ 1), independent
    [1.0, 0.0, 1.0, 2.1, 3.0],
    [1.0, 1.0, 2.0, 3.9, 1.0],
    [1.0, 0.0, 3.0, 6.0, 2.0],
    [1.0, 1.0, 4.0, 8.2, 1.0],
    [1.0, 0.0, 5.0, 9.9, 3.0],
    [1.0, 1.0, 6.0, 12.0, 2.0],
])


def test_variance_threshold_by_hand_and_sklearn():
    from sklearn.feature_selection import VarianceThreshold

    keep, var = ff.variance_filter(A, 0.25)
    # population variances: 0, 1/4, 35/12, ...; 'greater than' the threshold, so 0.25 itself is dropped
    assert var[0] == 0.0 and var[1] == pytest.approx(0.25) and var[2] == pytest.approx(35 / 12)
    assert keep.tolist() == [False, False, True, True, True]
    for t in (0.0, 0.25, 0.3, 3.0):
        np.testing.assert_array_equal(ff.variance_filter(A, t)[0], VarianceThreshold(t).fit(A).get_support())


def test_univariate_auc_by_hand_and_sklearn():
    from sklearn.metrics import roc_auc_score

    auc = ff.univariate_auc(A, Y)
    # f2 = 1..6 separates perfectly: AUC 1; f1 = 0 1 0 | 1 0 1: U = 1.5+3+... by hand (pairs event > ref + ties / 2)
    assert auc[2] == 1.0
    pairs = [(a, b) for a in A[Y == 1, 1] for b in A[Y == 0, 1]]
    hand = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)
    assert auc[1] == pytest.approx(max(hand, 1 - hand))
    for j in range(1, A.shape[1]):
        s = roc_auc_score(Y, A[:, j])
        assert auc[j] == pytest.approx(max(s, 1 - s), abs=1e-15)


def test_correlation_filter_keeps_the_higher_auc_of_a_redundant_pair():
    B = A[:, 1:]                      # f1, f2, f3, f4
    keep, auc = ff.correlation_filter(B, Y, 0.9)
    r = np.corrcoef(B, rowvar=False)
    assert abs(r[1, 2]) > 0.99         # f2 and f3 redundant
    assert auc[1] == 1.0 and auc[2] == 1.0  # tie -> the earlier column (f2) stays
    # by hand: order by AUC f2, f3, then f1 / f4; f3 dropped (|r| with f2 > 0.9); f1, f4 kept (|r| small)
    assert keep.tolist() == [True, True, False, True]
    C = B.copy()
    C[3, 2] = 5.0                     # an event case of f3 below a reference case: AUC 8/9, still |r| > 0.9
    keep2, auc2 = ff.correlation_filter(C[:, [2, 1]], Y, 0.9)
    assert auc2[0] == pytest.approx(8 / 9) and abs(np.corrcoef(C[:, 2], C[:, 1])[0, 1]) > 0.9
    assert keep2.tolist() == [False, True]     # f2 (AUC 1) stays although it comes second
    assert ff.correlation_filter(B, Y, 1.0)[0].all()


def test_mwu_filter_matches_scipy_and_hand_exact_p():
    from scipy.stats import mannwhitneyu

    keep, p = ff.mwu_filter(A[:, 1:], Y, 0.1)
    # f2 perfectly separated with 3 + 3 cases: exact two-sided p = 2 / C(6, 3) = 0.1
    assert p[1] == pytest.approx(0.1)
    assert not keep[1]                 # p < 0.1 is strict
    for j in range(4):  # each column on its own (scipy picks exact/asymptotic per column, not for the whole table)
        assert p[j] == pytest.approx(mannwhitneyu(A[Y == 1, j + 1], A[Y == 0, j + 1]).pvalue)
    rng = np.random.default_rng(0)
    big, yb = rng.standard_normal((40, 3)), np.repeat([0, 1], 20)
    np.testing.assert_allclose(ff.mwu_filter(big, yb, 0.05)[1],
                               [mannwhitneyu(big[yb == 1, j], big[yb == 0, j]).pvalue for j in range(3)])


def _rfe_data(seed=0, n=90, p=7):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, p))
    y = (1.2 * Z[:, 0] - 0.8 * Z[:, 3] + rng.standard_normal(n) > 0).astype(int)
    return Z, y


def test_rfe_elimination_order_by_hand_matches_sklearn_rfe():
    from sklearn.feature_selection import RFE

    Z, y = _rfe_data()
    est, _ = ff.rfe_estimator("lr", 0)
    # by hand: refit, drop the feature with the smallest |coefficient|, until 2 are left
    left = list(range(Z.shape[1]))
    while len(left) > 2:
        coef = np.abs(est.fit(Z[:, left], y).coef_.ravel())
        left.pop(int(np.argmin(coef)))
    sk = RFE(est, n_features_to_select=2, step=1).fit(Z, y)
    assert sorted(left) == np.flatnonzero(sk.support_).tolist() == [0, 3]


@pytest.mark.parametrize("clf", ["lr", "rf", "svm"])
def test_rfe_select_is_sklearn_rfecv_with_the_stated_folds_and_seed(clf):
    from sklearn.feature_selection import RFECV
    from sklearn.model_selection import StratifiedKFold

    Z, y = _rfe_data(1, p=4 if clf == "rf" else 7)
    got = ff.rfe_select(Z, y, clf, folds=4, seed=3)
    est, text = ff.rfe_estimator(clf, 3)
    ref = RFECV(est, step=1, cv=StratifiedKFold(4, shuffle=True, random_state=3), scoring="roc_auc").fit(Z, y)
    assert got["selected"] == np.flatnonzero(ref.support_).tolist()
    np.testing.assert_allclose(got["cv_auc"], ref.cv_results_["mean_test_score"])
    # the chosen size is the (first) maximum of the mean CV AUC
    assert got["n_features"] == got["n_features_grid"][int(np.argmax(got["cv_auc"]))]
    assert got["folds"] == 4 and got["seed"] == 3 and got["estimator"] == text and got["step"] == 1
    if clf == "lr":  # a fractional step is scikit-learn's too
        frac = ff.rfe_select(Z, y, clf, folds=4, seed=3, step=0.3)
        ref = RFECV(est, step=0.3, cv=StratifiedKFold(4, shuffle=True, random_state=3), scoring="roc_auc").fit(Z, y)
        assert frac["selected"] == np.flatnonzero(ref.support_).tolist() and frac["step"] == 0.3
        np.testing.assert_allclose(frac["cv_auc"], ref.cv_results_["mean_test_score"])


def _cohort():
    feats, labels = synthetic_cohort(n_cases=100, n_per_region=10, regions=("intra",), seed=4)
    feats["intra_dup"] = feats["intra_f0"] * 2.0 + 1.0      # perfectly redundant with intra_f0
    feats["intra_flat"] = 5.0 + 1e-3 * np.arange(len(feats)) % 2  # tiny variance
    spec = targets.LabelSpec(label_column="label", positive=("1",), negative=("0",))
    tg = targets.Targets(y=pd.Series(labels["label"].to_numpy(), index=labels["case_id"]), center=None,
                    classes={"event": "label=1", "reference": ["label=0"]})
    return targets.join_labels(feats, tg, spec)


def test_pipeline_records_filters_in_selection_and_funnel():
    c = _cohort()
    res = fitting.train(c, fitting.TrainConfig(task="custom", variance_threshold=0.01, max_correlation=0.95, mwu_p=0.5,
                                   selection="none", cv_folds=5))
    sel = res.card["selection"]
    assert sel["variance_threshold"] == 0.01 and sel["max_correlation"] == 0.95 and sel["selector"] == "none"
    names = [s[0] for s in sel["funnel"]]
    assert names == ["candidates", "ICC", "non-constant", "variance", "MWU", "correlation", "no selector"]
    counts = [s[1] for s in sel["funnel"]]
    assert counts == sorted(counts, reverse=True) and counts[0] == 12
    assert "intra_flat" not in res.card["features"]
    assert not {"intra_f0", "intra_dup"} <= set(res.card["features"])   # one of the redundant pair only
    assert sel["n_selected"] == len(res.card["features"]) == sel["n_after_correlation"]


def test_pipeline_rfe_and_report_funnel(tmp_path):
    from her2radiomics import report, study

    c = _cohort()
    res = fitting.train(c, fitting.TrainConfig(task="custom", selection="rfe", cv_folds=4, seed=2))
    sel = res.card["selection"]
    assert sel["rfe"]["folds"] == 4 and sel["rfe"]["seed"] == 2 and "RFECV" in sel["method"]
    assert sel["n_selected"] == sel["rfe"]["n_features"] == len(res.card["features"])
    assert study.funnel(sel) == sel["funnel"]
    html = report.funnel_table([{"name": "intra", "card": res.card}])
    assert "RFE" in html and "variance" in html and html.count("not applied") == 4  # ICC, variance, MWU, correlation


def test_filter_that_removes_everything_is_one_clear_line():
    c = _cohort()
    with pytest.raises(UserError, match="variance-threshold"):
        fitting.train(c, fitting.TrainConfig(task="custom", variance_threshold=1e30, cv_folds=5))
    with pytest.raises(UserError, match="--selection"):
        ff.check_selection("boruta")
