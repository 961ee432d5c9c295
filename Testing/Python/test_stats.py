"""Statistics against published numbers, hand computations and brute-force second implementations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import roc_auc_score, roc_curve

from her2radiomics import stats
from her2radiomics.errors import UserError

# --------------------------------------------------------------------------------------------------
# ICC: Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges; their Table 4 gives
# ICC(1,1) = .17, ICC(2,1) = .29, ICC(3,1) = .71.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8],
     [6, 1, 3, 2],
     [8, 4, 6, 8],
     [7, 1, 2, 6],
     [10, 5, 6, 9],
     [6, 2, 4, 7]],
    dtype=float,
)


@pytest.mark.parametrize(("kind", "published"), [("1,1", 0.17), ("2,1", 0.29), ("3,1", 0.71)])
def test_icc_shrout_fleiss_table(kind, published):
    assert round(stats.icc(SHROUT_FLEISS, kind), 2) == published


def test_icc_shrout_fleiss_mean_squares():
    # Shrout & Fleiss Table 3 (ANOVA): BMS = 11.24, WMS = 6.26, JMS = 32.49, EMS = 1.02
    ms = stats.icc_mean_squares(SHROUT_FLEISS)
    assert [round(ms[key], 2) for key in ("bms", "wms", "jms", "ems")] == [11.24, 6.26, 32.49, 1.02]
    # Table 4 formulas with the published (rounded) mean squares give the published ICCs too
    bms, wms, jms, ems, n, k = 11.24, 6.26, 32.49, 1.02, 6, 4
    assert round((bms - wms) / (bms + (k - 1) * wms), 2) == 0.17
    assert round((bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n), 2) == 0.29
    assert round((bms - ems) / (bms + (k - 1) * ems), 2) == 0.71


def test_icc_kind_spellings_and_errors():
    assert stats.icc(SHROUT_FLEISS, "ICC(2,1)") == stats.icc(SHROUT_FLEISS, "2,1")
    with pytest.raises(UserError, match="ICC kind"):
        stats.icc(SHROUT_FLEISS, "2,k")
    with pytest.raises(UserError, match="targets"):
        stats.icc(np.ones((1, 3)))
    bad = SHROUT_FLEISS.copy()
    bad[0, 0] = np.nan
    with pytest.raises(UserError, match="NaN"):
        stats.icc(bad)


def test_icc_perfect_agreement_and_constant():
    x = np.arange(10.0)
    assert stats.icc(np.c_[x, x], "2,1") == pytest.approx(1.0)
    assert np.isnan(stats.icc(np.ones((5, 2)), "2,1"))
    # a constant shift between readers: consistency (3,1) is still 1, absolute agreement (2,1) is not
    assert stats.icc(np.c_[x, x + 3.0], "3,1") == pytest.approx(1.0)
    assert stats.icc(np.c_[x, x + 3.0], "2,1") < 0.9


@pytest.mark.parametrize("kind", stats.ICC_KINDS)
def test_icc_columns_equals_scalar_column_by_column(kind):
    rng = np.random.default_rng(7)
    n, f = 40, 60
    truth = rng.normal(size=(n, f)) * rng.uniform(0.1, 1000, size=f)
    a = truth + rng.normal(size=(n, f)) * rng.uniform(0.01, 500, size=f)
    b = truth + rng.normal(size=(n, f)) * rng.uniform(0.01, 500, size=f) + rng.normal(size=f) * 50
    a[:, 3] = 5.0  # constant column -> NaN
    b[:, 3] = 5.0
    a[7, 5] = np.nan  # missing value -> NaN
    out = stats.icc_columns(a, b, kind)
    assert out.shape == (f,)
    assert np.isnan(out[3]) and np.isnan(out[5])
    for j in range(f):
        if j in (3, 5):
            continue
        assert out[j] == pytest.approx(stats.icc(np.c_[a[:, j], b[:, j]], kind), abs=1e-10)
    assert np.isfinite(np.delete(out, [3, 5])).all()


def test_icc_columns_shape_errors():
    with pytest.raises(UserError, match="same shape"):
        stats.icc_columns(np.ones((5, 3)), np.ones((4, 3)))
    with pytest.raises(UserError, match="at least 2 cases"):
        stats.icc_columns(np.ones((1, 3)), np.ones((1, 3)))


# --------------------------------------------------------------------------------------------------
# ROC AUC and DeLong


def test_auc_hand_example_with_tie():
    # pairs (event, non-event): (0.8, 0.5) 1, (0.8, 0.2) 1, (0.5, 0.5) 1/2, (0.5, 0.2) 1 -> 3.5 / 4
    assert stats.roc_auc([1, 1, 0, 0], [0.8, 0.5, 0.5, 0.2]) == 0.875


def test_auc_hanley_mcneil_rating_example():
    # Hanley & McNeil (1982) Table 1: 5-point ratings of 58 normal and 51 abnormal CT images;
    # published area 0.893.
    normal = np.repeat([1, 2, 3, 4, 5], [33, 6, 6, 11, 2])
    abnormal = np.repeat([1, 2, 3, 4, 5], [3, 2, 2, 11, 33])
    y = np.r_[np.zeros(normal.size), np.ones(abnormal.size)]
    assert round(stats.roc_auc(y, np.r_[normal, abnormal]), 3) == 0.893


def _tied_data(rng, n, levels):
    y = rng.integers(0, 2, n)
    y[:2] = (0, 1)
    y[2:4] = (0, 1)
    s1 = np.round(rng.normal(size=n) + 0.8 * y, levels)
    s2 = np.round(0.5 * s1 + rng.normal(size=n) + 0.3 * y, levels)
    return y, s1, s2


@pytest.mark.parametrize("n", [6, 15, 40, 120, 301])
def test_roc_auc_equals_sklearn_and_delong_fast_equals_structural(n):
    for seed in range(25):
        rng = np.random.default_rng(1000 * n + seed)
        y, s1, s2 = _tied_data(rng, n, levels=seed % 3)  # 0-2 decimals: many ties
        assert stats.roc_auc(y, s1) == pytest.approx(roc_auc_score(y, s1), abs=1e-14)
        a_fast, v_fast = stats.delong_variance(y, s1)
        a_ref, v_ref = stats.delong_variance_structural(y, s1)
        assert a_fast == pytest.approx(a_ref, abs=1e-12)
        assert v_fast == pytest.approx(v_ref, abs=1e-12)
        aucs_f, cov_f = stats.delong_covariance(y, [s1, s2])
        aucs_r, cov_r = stats.delong_covariance_structural(y, [s1, s2])
        np.testing.assert_allclose(aucs_f, aucs_r, rtol=0, atol=1e-12)
        np.testing.assert_allclose(cov_f, cov_r, rtol=0, atol=1e-12)
        t = stats.delong_test(y, s1, s2)
        var_ref = cov_r[0, 0] + cov_r[1, 1] - 2 * cov_r[0, 1]
        np.testing.assert_allclose(t["cov"], cov_r, rtol=0, atol=1e-12)
        assert t["diff"] == pytest.approx(aucs_r[0] - aucs_r[1], abs=1e-12)
        if var_ref > 1e-12:
            assert t["se"] == pytest.approx(np.sqrt(var_ref), rel=1e-9)
            assert t["p"] == pytest.approx(2 * sps.norm.sf(abs(t["diff"]) / np.sqrt(var_ref)), rel=1e-9)


def test_auc_and_delong_rank_invariance_and_symmetry():
    # rank statistics: invariant under a strictly increasing transform; reversing the score gives 1 - AUC
    # with the same variance; swapping the two models flips the sign of the paired difference only
    rng = np.random.default_rng(21)
    y, s1, s2 = _tied_data(rng, 80, levels=1)
    auc, var = stats.delong_variance(y, s1)
    auc_t, var_t = stats.delong_variance(y, np.exp(3 * s1) - 7)
    assert (auc_t, var_t) == pytest.approx((auc, var), abs=1e-14)
    auc_r, var_r = stats.delong_variance(y, -s1)
    assert auc_r == pytest.approx(1 - auc, abs=1e-14) and var_r == pytest.approx(var, abs=1e-14)
    ab, ba = stats.delong_test(y, s1, s2), stats.delong_test(y, s2, s1)
    assert ab["diff"] == pytest.approx(-ba["diff"]) and ab["p"] == pytest.approx(ba["p"])


def test_delong_structural_by_plain_loops():
    # a third, loop-only computation of V10/V01 on a tiny tied sample, to anchor the structural version
    y = np.array([1, 0, 1, 1, 0, 0, 1, 0])
    s = np.array([3, 1, 2, 2, 2, 0, 1, 3], dtype=float)
    xs = s[y == 1]
    ys = s[y == 0]

    def psi(a, b):
        return 1.0 if a > b else 0.5 if a == b else 0.0

    v10 = [sum(psi(a, b) for b in ys) / len(ys) for a in xs]
    v01 = [sum(psi(a, b) for a in xs) / len(xs) for b in ys]
    auc = sum(v10) / len(v10)
    var = np.var(v10, ddof=1) / len(xs) + np.var(v01, ddof=1) / len(ys)
    assert stats.delong_variance(y, s) == pytest.approx((auc, var), abs=1e-15)
    assert stats.delong_variance_structural(y, s) == pytest.approx((auc, var), abs=1e-15)


def test_delong_test_identical_and_perfect():
    rng = np.random.default_rng(3)
    y = np.r_[np.ones(20), np.zeros(20)]
    s = rng.normal(size=40) + y
    t = stats.delong_test(y, s, s)
    assert t["diff"] == 0 and t["z"] == 0 and t["p"] == 1.0
    # perfect model vs a constant score: both AUC variances are 0, so the difference is "certain"
    t = stats.delong_test(y, y.astype(float), np.zeros(40))
    assert t["diff"] == 0.5 and t["p"] == 0.0


def test_delong_ci_coverage_simulation():
    # Binormal model: non-events N(0, 1), events N(mu, 1), true AUC = Phi(mu / sqrt 2) = 0.80.
    # 2,000 samples of 50 + 50 cases (seed 20261121): the 95 % DeLong CI covered the true AUC in
    # 93.85 % of samples (reported in docs/statistics.md). SE of a coverage estimate ~ 0.005.
    true_auc = 0.80
    mu = np.sqrt(2.0) * sps.norm.ppf(true_auc)
    rng = np.random.default_rng(20261121)
    y = np.r_[np.ones(50), np.zeros(50)]
    hits = 0
    reps = 2000
    for _ in range(reps):
        s = np.r_[rng.normal(mu, 1.0, 50), rng.normal(0.0, 1.0, 50)]
        _, lo, hi = stats.delong_ci(y, s)
        hits += lo <= true_auc <= hi
    coverage = hits / reps
    assert 0.93 <= coverage <= 0.97, coverage


def test_delong_ci_clipped_and_level():
    y = np.r_[np.ones(10), np.zeros(10)]
    s = np.r_[np.arange(10) + 8.5, np.arange(10)]  # one discordant pair of 100: AUC 0.99
    # V10 = V01 = (0.9, 1 x 9), each sample variance 0.001: var = 0.001/10 + 0.001/10 = 2e-4
    auc, lo, hi = stats.delong_ci(y, s)
    assert auc == pytest.approx(0.99) and hi == 1.0
    assert lo == pytest.approx(0.99 - sps.norm.ppf(0.975) * np.sqrt(2e-4), abs=1e-12)
    _, lo90, hi90 = stats.delong_ci(y, s, level=0.90)
    assert lo90 > lo
    with pytest.raises(UserError, match="level"):
        stats.delong_ci(y, s, level=95)


@pytest.mark.parametrize(
    ("y", "s", "pattern"),
    [
        ([1, 1, 1], [0.1, 0.2, 0.3], "each class"),
        ([1, 0, 2], [0.1, 0.2, 0.3], "only 0 and 1"),
        (["a", "b"], [0.1, 0.2], "numeric"),
        ([1, 0, 1], [0.1, 0.2], "same cases"),
        ([1, 0, 1], [0.1, np.nan, 0.3], "non-finite"),
        ([], [], "empty"),
    ],
)
def test_validation_errors_one_line(y, s, pattern):
    with pytest.raises(UserError, match=pattern) as err:
        stats.roc_auc(y, s)
    assert "\n" not in str(err.value)


def test_delong_needs_two_per_class():
    with pytest.raises(UserError, match="at least 2"):
        stats.delong_variance([1, 0, 0, 0], [0.9, 0.1, 0.2, 0.3])
    assert stats.roc_auc([True, False, False], [0.9, 0.1, 0.2]) == 1.0


# --------------------------------------------------------------------------------------------------
# Youden cut-off and metrics


def test_youden_hand_example_with_tie():
    # scores 0.10 0.30 0.35 0.40 0.60 0.80 with labels 0 0 1 0 1 1 (3 events, 3 non-events).
    # midpoint cut-offs and J = sens + spec - 1 with rule score >= cut:
    #   0.200: TP 3 FP 2 -> 1 + 1/3 - 1 = 1/3
    #   0.325: TP 3 FP 1 -> 1 + 2/3 - 1 = 2/3   (tied maximum)
    #   0.375: TP 2 FP 1 -> 2/3 + 2/3 - 1 = 1/3
    #   0.500: TP 2 FP 0 -> 2/3 + 1 - 1 = 2/3   (tied maximum, highest -> chosen)
    #   0.700: TP 1 FP 0 -> 1/3
    y = [0, 0, 1, 0, 1, 1]
    s = [0.10, 0.30, 0.35, 0.40, 0.60, 0.80]
    cut = stats.youden_cutoff(y, s)
    assert cut == pytest.approx(0.5)
    m = stats.binary_metrics(y, s, cut)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (2, 0, 3, 1)
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["specificity"] == 1.0
    assert m["accuracy"] == pytest.approx(5 / 6) and m["ppv"] == 1.0 and m["npv"] == pytest.approx(0.75)
    # the floating-point idiom thresholds[argmax(tpr - fpr)] breaks this exact tie by rounding
    # (1 - 1/3 = 0.6666666666666667 > 2/3 = 0.6666666666666666) and picks 0.35; J is compared exactly here
    fpr, tpr, thr = roc_curve(y, s)
    assert thr[np.argmax(tpr - fpr)] == 0.35


def test_youden_matches_bruteforce_on_random_data():
    rng = np.random.default_rng(11)
    for _ in range(30):
        y = rng.integers(0, 2, 50)
        y[:2] = (0, 1)
        s = np.round(rng.normal(size=50) + y, 1)
        cut = stats.youden_cutoff(y, s)
        m = stats.binary_metrics(y, s, cut)
        best = max(
            stats.binary_metrics(y, s, t)["sensitivity"] + stats.binary_metrics(y, s, t)["specificity"]
            for t in np.unique(s)[1:]
        )
        assert m["sensitivity"] + m["specificity"] == pytest.approx(best, abs=1e-12)
        assert not np.any(s == cut)


def test_youden_single_value_and_metrics_errors():
    assert stats.youden_cutoff([0, 1, 1], [0.3, 0.3, 0.3]) == 0.3
    m = stats.binary_metrics([0, 1], [0.2, 0.4], 0.9)
    assert np.isnan(m["ppv"]) and m["npv"] == 0.5
    with pytest.raises(UserError, match="cut-off"):
        stats.binary_metrics([0, 1], [0.2, 0.4], float("nan"))


# --------------------------------------------------------------------------------------------------
# calibration and Hosmer-Lemeshow

CAL_P = np.array([0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95])
CAL_Y = np.array([0, 0, 0, 1, 0, 1, 1, 0, 1, 1])


def test_calibration_uniform_by_hand():
    # edges 0 .2 .4 .6 .8 1: pairs (.05,.15) (.25,.35) (.45,.55) (.65,.75) (.85,.95)
    # observed: (0,0) -> 0, (0,1) -> .5, (0,1) -> .5, (1,0) -> .5, (1,1) -> 1
    c = stats.calibration_curve(CAL_Y, CAL_P, n_bins=5, strategy="uniform")
    np.testing.assert_allclose(c["mean_predicted"], [0.1, 0.3, 0.5, 0.7, 0.9])
    np.testing.assert_allclose(c["observed"], [0, 0.5, 0.5, 0.5, 1])
    np.testing.assert_array_equal(c["count"], [2, 2, 2, 2, 2])
    # 10 uniform bins over probabilities below 0.5 -> the 5 empty upper bins are dropped
    c = stats.calibration_curve(CAL_Y[:5], CAL_P[:5], n_bins=10, strategy="uniform")
    assert c["count"].tolist() == [1, 1, 1, 1, 1]
    np.testing.assert_allclose(c["lower"], [0.0, 0.1, 0.2, 0.3, 0.4])


def test_calibration_quantile_by_hand():
    # median of the 10 probabilities = 0.5 -> lower half .05-.45 (mean .25, labels 0 0 0 1 0 -> .2),
    # upper half .55-.95 (mean .75, labels 1 1 0 1 1 -> .8)
    c = stats.calibration_curve(CAL_Y, CAL_P, n_bins=2, strategy="quantile")
    np.testing.assert_allclose(c["mean_predicted"], [0.25, 0.75])
    np.testing.assert_allclose(c["observed"], [0.2, 0.8])
    np.testing.assert_array_equal(c["count"], [5, 5])
    # probability exactly 1.0 falls in the closed last bin
    c = stats.calibration_curve([0, 1, 1], [0.0, 0.5, 1.0], n_bins=2, strategy="uniform")
    assert c["count"].tolist() == [1, 2]
    with pytest.raises(UserError, match="strategy"):
        stats.calibration_curve(CAL_Y, CAL_P, strategy="kmeans")
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        stats.calibration_curve(CAL_Y, CAL_P * 2)


def test_hosmer_lemeshow_hand_example():
    # 9 cases, 3 groups of 3 by sorted probability:
    #   g1 p .1 .2 .3  y 0 0 1: O=1 E=0.6 -> (0.4)^2 / (0.6 * (1 - 0.6/3)) = 0.16 / 0.48 = 1/3
    #   g2 p .4 .5 .6  y 0 1 1: O=2 E=1.5 -> (0.5)^2 / (1.5 * 0.5)        = 0.25 / 0.75 = 1/3
    #   g3 p .7 .8 .9  y 1 1 0: O=2 E=2.4 -> (0.4)^2 / (2.4 * 0.2)        = 0.16 / 0.48 = 1/3
    # C = 1, df = 3 - 2 = 1, p = P(chi2_1 > 1) = P(|Z| > 1) = 0.3173105
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    y = np.array([0, 0, 1, 0, 1, 1, 1, 1, 0])
    perm = np.random.default_rng(0).permutation(9)  # input order must not matter
    hl = stats.hosmer_lemeshow(y[perm], p[perm], groups=3)
    assert hl["statistic"] == pytest.approx(1.0, abs=1e-12)
    assert hl["df"] == 1
    assert hl["p"] == pytest.approx(sps.chi2.sf(1.0, 1), rel=1e-12)
    assert hl["p"] == pytest.approx(0.3173105, abs=1e-7)
    np.testing.assert_allclose(hl["expected"], [0.6, 1.5, 2.4])
    np.testing.assert_allclose(hl["observed"], [1, 2, 2])


def test_hosmer_lemeshow_ties_stay_together_and_matches_two_part_sum():
    rng = np.random.default_rng(5)
    p = np.round(rng.uniform(0.05, 0.95, 200), 2)
    y = (rng.uniform(size=200) < p).astype(int)
    hl = stats.hosmer_lemeshow(y, p, groups=10)
    # independent recomputation: sum over events and non-events of (O - E)^2 / E per group
    order = np.argsort(p, kind="stable")
    ps, ys = p[order], y[order]
    bounds = np.cumsum(hl["n"])[:-1]
    for b in bounds:  # no tied probability split across a group boundary
        assert ps[b - 1] != ps[b]
    c = 0.0
    for gp, gy in zip(np.split(ps, bounds), np.split(ys, bounds), strict=True):
        e1, o1 = gp.sum(), gy.sum()
        e0, o0 = gp.size - e1, gp.size - o1
        c += (o1 - e1) ** 2 / e1 + (o0 - e0) ** 2 / e0
    assert hl["statistic"] == pytest.approx(c, rel=1e-12)
    assert hl["p"] == pytest.approx(sps.chi2.sf(c, hl["groups"] - 2), rel=1e-12)
    assert sum(hl["n"]) == 200


def test_hosmer_lemeshow_errors():
    with pytest.raises(UserError, match="groups"):
        stats.hosmer_lemeshow([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], groups=2)
    with pytest.raises(UserError, match="distinct risk groups"):
        stats.hosmer_lemeshow([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], groups=3)


# --------------------------------------------------------------------------------------------------
# decision curve


def test_decision_curve_hand_example():
    # n = 10, events at probabilities .9 .7 .4 .8 (prevalence 0.4); non-events .6 .2 .1 .3 .05 .5
    #   pt = .10: treated p >= .1 -> TP 4, FP 5: 4/10 - 5/10 * (.1/.9) = 0.344444; all: .4 - .6/9 = .333333
    #   pt = .25: TP 4, FP 3 (.6 .3 .5):          0.4 - 0.3 * (1/3) = 0.3;        all: .4 - .6/3 = 0.2
    #   pt = .50: TP 3 (.9 .7 .8), FP 2 (.6 .5):  0.3 - 0.2 * 1      = 0.1;        all: .4 - .6   = -0.2
    y = [1, 1, 0, 0, 1, 0, 0, 0, 0, 1]
    p = [0.9, 0.7, 0.6, 0.2, 0.4, 0.1, 0.3, 0.05, 0.5, 0.8]
    dc = stats.decision_curve(y, p, [0.1, 0.25, 0.5])
    np.testing.assert_allclose(dc["model"], [0.4 - 0.5 / 9, 0.3, 0.1], atol=1e-12)
    np.testing.assert_allclose(dc["treat_all"], [0.4 - 0.6 / 9, 0.2, -0.2], atol=1e-12)
    np.testing.assert_array_equal(dc["treat_none"], [0, 0, 0])
    np.testing.assert_array_equal(dc["threshold"], [0.1, 0.25, 0.5])
    with pytest.raises(UserError, match="strictly between 0 and 1"):
        stats.decision_curve(y, p, [0.0, 0.5])
    with pytest.raises(UserError, match="strictly between 0 and 1"):
        stats.decision_curve(y, p, [1.0])


# --------------------------------------------------------------------------------------------------
# GDI


def test_gdi_paper_example():
    g = stats.gdi(0.889, 0.796)
    assert round(100 * g, 1) == 10.5
    assert stats.gdi_zone(g) == "safe"


@pytest.mark.parametrize(
    ("value", "zone"),
    [
        (0.15, "safe"),
        (0.15000000000000002, "safe"),  # = gdi(1.0, 0.85) in floating point
        (0.1500001, "warning"),
        (0.1999999, "warning"),
        (0.19999999999999996, "high"),  # = gdi(1.0, 0.8) in floating point
        (0.2, "high"),
        (0.35, "high"),
        (-0.05, "safe"),
        (0.0, "safe"),
    ],
)
def test_gdi_zone_boundaries(value, zone):
    assert stats.gdi_zone(value) == zone


def test_gdi_float_edges_and_errors():
    assert stats.gdi_zone(stats.gdi(1.0, 0.85)) == "safe"
    assert stats.gdi_zone(stats.gdi(1.0, 0.8)) == "high"
    assert stats.gdi_zone(stats.gdi(0.8, 0.68)) == "safe"  # exactly 15 % in decimal
    assert stats.gdi_zone(stats.gdi(0.9, 0.72)) == "high"  # exactly 20 % in decimal
    with pytest.raises(UserError, match="training AUC"):
        stats.gdi(0.0, 0.5)
    with pytest.raises(UserError, match="test AUC"):
        stats.gdi(0.8, float("nan"))
    with pytest.raises(UserError, match="finite"):
        stats.gdi_zone(float("inf"))
