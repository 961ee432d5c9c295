"""Calibration slope / intercept, Brier score and the stratified bootstrap AUC interval, against independent
references: scikit-learn, a brute-force bootstrap, and R (glm, pROC) when ``Rscript`` is installed."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from her2radiomics import stats
from her2radiomics.errors import UserError


def _data(n: int = 120, seed: int = 3, shift: float = 1.0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    lp = -0.4 + shift * (y - 0.4) * 2.0 + rng.normal(0, 1.2, n)
    p = 1.0 / (1.0 + np.exp(-1.6 * lp))          # too extreme: slope < 1 expected
    return y, p


def test_brier_matches_scikit_learn():
    from sklearn.metrics import brier_score_loss

    y, p = _data()
    assert stats.brier_score(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-15)
    assert stats.brier_score([0, 1, 1, 0], [0.5, 0.5, 0.5, 0.5]) == 0.25


def test_calibration_of_a_recalibrated_model_is_ideal():
    """After refitting a + b lp on the data themselves, slope = 1 and intercept = 0 (the ML score equations)."""
    y, p = _data()
    c = stats.calibration_slope_intercept(y, p)
    lp = np.log(p / (1 - p))
    q = 1 / (1 + np.exp(-(np.log(1) + c["slope"] * lp)))
    # refit: the calibrated probabilities of the slope model have slope 1 by construction
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression(C=1e12, tol=1e-12, max_iter=10000).fit(lp[:, None], y)
    assert c["slope"] == pytest.approx(m.coef_[0, 0], rel=1e-5)
    a0 = m.intercept_[0]
    p_cal = 1 / (1 + np.exp(-(a0 + m.coef_[0, 0] * lp)))
    again = stats.calibration_slope_intercept(y, p_cal)
    assert again["slope"] == pytest.approx(1.0, abs=1e-7) and again["intercept"] == pytest.approx(0.0, abs=1e-7)
    assert c["slope"] < 1 and not c["separation"] and np.all(np.isfinite(q))


def test_calibration_separation_and_bad_input():
    c = stats.calibration_slope_intercept([0, 0, 1, 1], [0.1, 0.2, 0.8, 1.0])
    assert c["separation"] and c["slope"] == np.inf and np.isfinite(c["intercept"])
    with pytest.raises(UserError):
        stats.calibration_slope_intercept([0, 0, 0], [0.1, 0.2, 0.3])


def test_bootstrap_is_stratified_and_matches_brute_force():
    y, p = _data(n=60)
    r = stats.bootstrap_auc_ci(y, p, n_boot=300, seed=7)
    rng = np.random.default_rng(7)
    pos, neg = p[y == 1], p[y == 0]
    bps = pos[rng.integers(0, pos.size, (300, pos.size))]  # the same draws, scored one replicate at a time
    bns = neg[rng.integers(0, neg.size, (300, neg.size))]
    yb = np.r_[np.ones(pos.size), np.zeros(neg.size)]
    aucs = [stats.roc_auc(yb, np.r_[bp, bn]) for bp, bn in zip(bps, bns, strict=True)]
    assert (r["lo"], r["hi"]) == pytest.approx(tuple(np.quantile(aucs, [0.025, 0.975])), abs=1e-12)
    assert r["lo"] < r["auc"] < r["hi"] and r["auc"] == stats.roc_auc(y, p)


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="R not installed (optional dev check)")
def test_against_r_glm_and_proc(tmp_path):
    y, p = _data(n=150, seed=11)
    csv = tmp_path / "d.csv"
    np.savetxt(csv, np.column_stack([y, p]), delimiter=",", header="y,p", comments="", fmt=["%d", "%.17g"])
    script = (f'd <- read.csv("{csv}"); lp <- qlogis(d$p);'
              'b <- coef(glm(d$y ~ lp, family = binomial))[2];'
              'a <- coef(glm(d$y ~ offset(lp), family = binomial))[1];'
              'ok <- requireNamespace("pROC", quietly = TRUE);'
              'ci <- if (ok) { set.seed(1); as.numeric(pROC::ci.auc(pROC::roc(d$y, d$p, quiet = TRUE, direction = "<"),'
              ' method = "bootstrap", boot.n = 4000, boot.stratified = TRUE, progress = "none")) } else c(NA, NA, NA);'
              'cat(sprintf("%.12f", c(b, a, ci)), sep = "\\n")')
    r = subprocess.run(["Rscript", "-e", script], capture_output=True, encoding="utf-8", timeout=180)
    assert r.returncode == 0, r.stderr
    b, a, lo, _, hi = (float(v) if v != "NA" else np.nan for v in r.stdout.split())
    c = stats.calibration_slope_intercept(y, p)
    # R's glm stops at a relative deviance change of 1e-8; our Newton steps go to 1e-10
    assert c["slope"] == pytest.approx(b, abs=1e-6) and c["intercept"] == pytest.approx(a, abs=1e-6)
    if np.isfinite(lo):  # two different random streams: agree to Monte-Carlo error (~0.005 at 4000 replicates)
        ours = stats.bootstrap_auc_ci(y, p, n_boot=4000, seed=1)
        assert ours["lo"] == pytest.approx(lo, abs=0.01) and ours["hi"] == pytest.approx(hi, abs=0.01)
