"""Statistics for model evaluation: ROC AUC, DeLong, cut-offs, calibration, decision curves, GDI, ICC.

Pure numpy/scipy functions, each with its reference. Inputs are validated once at the edge: a label
vector ``y`` must be binary (0/1 or bool) with both classes present, scores must be finite and of the
same length; bad input raises :class:`~her2radiomics.errors.UserError` with one line.

Conventions (see docs/statistics.md):

- ``y == 1`` is the event (stage 1: HER2-positive, stage 2: HER2-low); a higher score means "more
  likely the event".
- Ties between an event and a non-event score count 1/2 in the AUC (Mann-Whitney).
- Prediction rule at a cut-off: ``score >= cutoff`` -> event.
- DeLong confidence interval: normal approximation on the AUC scale (no logit), clipped to [0, 1].
- GDI zones: safe <= 15 %, warning 15-20 % (both exclusive), high >= 20 %; the value is rounded to
  1e-12 before comparison so that e.g. (1.0 - 0.85) / 1.0 = 0.15000000000000002 is "safe".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as _sps

from her2radiomics.errors import UserError

__all__ = [
    "ICC_KINDS",
    "GDI_SAFE",
    "GDI_HIGH",
    "roc_auc",
    "delong_variance",
    "delong_variance_structural",
    "delong_covariance",
    "delong_covariance_structural",
    "delong_ci",
    "delong_test",
    "youden_cutoff",
    "binary_metrics",
    "calibration_curve",
    "hosmer_lemeshow",
    "calibration_slope_intercept",
    "brier_score",
    "bootstrap_auc_ci",
    "decision_curve",
    "gdi",
    "gdi_zone",
    "icc",
    "icc_mean_squares",
    "icc_columns",
]

ICC_KINDS = ("1,1", "2,1", "3,1")
GDI_SAFE = 0.15
GDI_HIGH = 0.20
_GDI_ROUND = 12  # decimals: GDI values are compared to the zone limits after rounding to 1e-12


# --------------------------------------------------------------------------------------------------
# validation


def _as_labels(y, what: str = "y") -> np.ndarray:
    """Return ``y`` as a 1-D int8 array of 0/1 or raise UserError."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise UserError(f"{what} must be a 1-D vector of 0/1 labels (got shape {arr.shape})")
    if arr.size == 0:
        raise UserError(f"{what} is empty: need cases of both classes")
    if arr.dtype == bool:
        return arr.astype(np.int8)
    if not np.issubdtype(arr.dtype, np.number):
        raise UserError(f"{what} must be numeric 0/1 labels (got {arr.dtype} values such as {arr.flat[0]!r})")
    fl = arr.astype(float)
    bad = ~np.isin(fl, (0.0, 1.0))
    if bad.any():
        vals = ", ".join(repr(v) for v in np.unique(fl[bad])[:5].tolist())
        raise UserError(f"{what} must contain only 0 and 1 (found {vals}); recode the labels as 0/1")
    return fl.astype(np.int8)


def _as_scores(score, n: int, what: str = "score") -> np.ndarray:
    arr = np.asarray(score)
    if arr.ndim != 1:
        raise UserError(f"{what} must be a 1-D vector (got shape {arr.shape})")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise UserError(f"{what} must be numeric (got {arr.dtype})")
    arr = arr.astype(float)
    if arr.size != n:
        raise UserError(f"{what} has {arr.size} values but y has {n}; they must be the same cases")
    if not np.all(np.isfinite(arr)):
        k = int((~np.isfinite(arr)).sum())
        raise UserError(f"{what} has {k} non-finite value(s) (NaN/inf); remove or impute those cases first")
    return arr


def _check(y, score, what: str = "score", min_per_class: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Validate a label vector and one score vector; return (y int8, score float)."""
    yy = _as_labels(y)
    ss = _as_scores(score, yy.size, what)
    n1 = int(yy.sum())
    n0 = int(yy.size - n1)
    if n1 < min_per_class or n0 < min_per_class:
        raise UserError(
            f"need at least {min_per_class} case(s) of each class (got {n1} event and {n0} non-event); "
            "check the labels and the split"
        )
    return yy, ss


def _as_probs(prob, n: int, what: str = "prob") -> np.ndarray:
    p = _as_scores(prob, n, what)
    if p.size and (p.min() < 0.0 or p.max() > 1.0):
        raise UserError(f"{what} must be probabilities in [0, 1] (got range {p.min():g} to {p.max():g})")
    return p


# --------------------------------------------------------------------------------------------------
# ROC AUC and DeLong


def roc_auc(y, score) -> float:
    """Area under the ROC curve as the Mann-Whitney statistic, ties counted 1/2.

    ``AUC = (R1 - m(m+1)/2) / (m n)`` where ``R1`` is the sum of the midranks of the ``m`` event scores
    in the pooled sample and ``n`` the number of non-events; equal to P(X > Y) + P(X = Y)/2.

    References
    ----------
    Hanley JA, McNeil BJ. The meaning and use of the area under a receiver operating characteristic
    (ROC) curve. Radiology 1982;143(1):29-36.
    """
    yy, ss = _check(y, score)
    m = int(yy.sum())
    n = yy.size - m
    ranks = _sps.rankdata(ss)  # midranks
    r1 = float(ranks[yy == 1].sum())
    return (r1 - m * (m + 1) / 2.0) / (m * n)


def _scores_matrix(y, scores: Sequence | np.ndarray, min_per_class: int = 2) -> tuple[np.ndarray, np.ndarray]:
    yy = _as_labels(y)
    mat = np.asarray(scores)
    if mat.ndim == 1:
        mat = mat[None, :]
    if mat.ndim != 2:
        raise UserError(f"scores must be one vector or a (k, n) array of k score vectors (got shape {mat.shape})")
    rows = [_as_scores(mat[i], yy.size, f"score {i + 1}") for i in range(mat.shape[0])]
    _check(yy, rows[0], min_per_class=min_per_class)
    return yy, np.vstack(rows)


def delong_covariance(y, scores) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and their DeLong covariance matrix for k scores on the same cases, fast midrank algorithm.

    For events X (m) and non-events Y (n), with midranks ``T_z`` in the pooled sample and ``T_x``,
    ``T_y`` within each class, the structural components are
    ``V10_i = (T_z(X_i) - T_x(X_i)) / n`` and ``V01_j = 1 - (T_z(Y_j) - T_y(Y_j)) / m``;
    ``AUC = mean(V10)`` and ``Cov = S10 / m + S01 / n`` with ``S10``, ``S01`` the (k x k) sample
    covariance matrices (ddof=1) of the components. O(k N log N).

    Returns ``(aucs (k,), cov (k, k))``. Needs at least two cases of each class.

    References
    ----------
    Sun X, Xu W. Fast implementation of DeLong's algorithm for comparing the areas under correlated
    receiver operating characteristic curves. IEEE Signal Processing Letters 2014;21(11):1389-1393.
    """
    yy, mat = _scores_matrix(y, scores)
    return _delong_fast(yy, mat)


def _delong_fast(yy: np.ndarray, mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos = yy == 1
    x = mat[:, pos]
    yneg = mat[:, ~pos]
    m = x.shape[1]
    n = yneg.shape[1]
    tx = _sps.rankdata(x, axis=1)
    ty = _sps.rankdata(yneg, axis=1)
    tz = _sps.rankdata(np.concatenate([x, yneg], axis=1), axis=1)
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    aucs = v10.mean(axis=1)
    s10 = np.atleast_2d(np.cov(v10, ddof=1))
    s01 = np.atleast_2d(np.cov(v01, ddof=1))
    return aucs, s10 / m + s01 / n


def delong_covariance_structural(y, scores) -> tuple[np.ndarray, np.ndarray]:
    """AUCs and DeLong covariance by explicit pairwise comparison (the independent reference).

    ``psi(X, Y) = 1 if X > Y, 1/2 if X = Y, 0 otherwise``; ``V10(X_i) = (1/n) sum_j psi(X_i, Y_j)``,
    ``V01(Y_j) = (1/m) sum_i psi(X_i, Y_j)``; ``S10[r, s] = sum_i (V10_r(X_i) - A_r)(V10_s(X_i) - A_s)
    / (m - 1)`` and likewise ``S01`` over the non-events; ``Cov = S10 / m + S01 / n``. O(k m n) memory
    and time: use it for testing, :func:`delong_covariance` otherwise.

    References
    ----------
    DeLong ER, DeLong DM, Clarke-Pearson DL. Comparing the areas under two or more correlated receiver
    operating characteristic curves: a nonparametric approach. Biometrics 1988;44(3):837-845.
    """
    yy, mat = _scores_matrix(y, scores)
    pos = yy == 1
    k = mat.shape[0]
    m = int(pos.sum())
    n = yy.size - m
    v10 = np.empty((k, m))
    v01 = np.empty((k, n))
    aucs = np.empty(k)
    for r in range(k):
        xs = mat[r, pos][:, None]
        ys = mat[r, ~pos][None, :]
        psi = (xs > ys).astype(float) + 0.5 * (xs == ys)
        v10[r] = psi.mean(axis=1)
        v01[r] = psi.mean(axis=0)
        aucs[r] = psi.mean()
    s10 = np.empty((k, k))
    s01 = np.empty((k, k))
    for r in range(k):
        for s in range(k):
            s10[r, s] = np.sum((v10[r] - aucs[r]) * (v10[s] - aucs[s])) / (m - 1)
            s01[r, s] = np.sum((v01[r] - aucs[r]) * (v01[s] - aucs[s])) / (n - 1)
    return aucs, s10 / m + s01 / n


def delong_variance(y, score) -> tuple[float, float]:
    """``(auc, variance)`` of one AUC by DeLong's method, fast midrank algorithm (Sun & Xu 2014).

    See :func:`delong_covariance` for the formulas.

    References
    ----------
    Sun X, Xu W. IEEE Signal Processing Letters 2014;21(11):1389-1393.
    DeLong ER, DeLong DM, Clarke-Pearson DL. Biometrics 1988;44(3):837-845.
    """
    yy, ss = _check(y, score, min_per_class=2)
    aucs, cov = _delong_fast(yy, ss[None, :])
    return float(aucs[0]), float(cov[0, 0])


def delong_variance_structural(y, score) -> tuple[float, float]:
    """``(auc, variance)`` by DeLong's structural components computed pair by pair (reference).

    References
    ----------
    DeLong ER, DeLong DM, Clarke-Pearson DL. Biometrics 1988;44(3):837-845.
    """
    aucs, cov = delong_covariance_structural(y, score)
    return float(aucs[0]), float(cov[0, 0])


def _check_level(level: float) -> float:
    try:
        lv = float(level)
    except (TypeError, ValueError):
        raise UserError(f"confidence level must be a number between 0 and 1 (got {level!r})") from None
    if not 0.0 < lv < 1.0:
        raise UserError(f"confidence level must be between 0 and 1, e.g. 0.95 (got {level!r})")
    return lv


def delong_ci(y, score, level: float = 0.95) -> tuple[float, float, float]:
    """``(auc, lo, hi)``: DeLong confidence interval, normal approximation clipped to [0, 1].

    ``AUC -/+ z_{(1+level)/2} * sqrt(Var_DeLong)`` on the AUC scale (no logit transform), the
    interval pROC calls "delong". In a simulation of 2,000 binormal samples (50 + 50 cases, true AUC
    0.80, seed 20261121) the 95 % interval covered the true AUC in 93.85 % of samples (see
    docs/statistics.md and Testing/Python/test_stats.py).

    References
    ----------
    DeLong ER, DeLong DM, Clarke-Pearson DL. Biometrics 1988;44(3):837-845.
    Sun X, Xu W. IEEE Signal Processing Letters 2014;21(11):1389-1393.
    """
    lv = _check_level(level)
    auc, var = delong_variance(y, score)
    half = float(_sps.norm.ppf(0.5 + lv / 2.0)) * math.sqrt(max(var, 0.0))
    return auc, max(0.0, auc - half), min(1.0, auc + half)


def delong_test(y, score_a, score_b) -> dict:
    """Paired DeLong test of two correlated AUCs measured on the same cases (two-sided).

    ``diff = AUC_a - AUC_b``, ``se = sqrt(V_aa + V_bb - 2 V_ab)`` from the 2x2 DeLong covariance
    matrix of the structural components, ``z = diff / se``, ``p = 2 (1 - Phi(|z|))``. When
    ``se == 0`` (e.g. identical scores) ``z = 0, p = 1`` if ``diff == 0``, else ``z = +/-inf, p = 0``.

    Returns a dict with ``auc_a, auc_b, diff, se, z, p, cov`` (cov as nested list).

    References
    ----------
    DeLong ER, DeLong DM, Clarke-Pearson DL. Biometrics 1988;44(3):837-845.
    Sun X, Xu W. IEEE Signal Processing Letters 2014;21(11):1389-1393.
    """
    yy = _as_labels(y)
    a = _as_scores(score_a, yy.size, "score_a")
    b = _as_scores(score_b, yy.size, "score_b")
    _check(yy, a, min_per_class=2)
    aucs, cov = _delong_fast(yy, np.vstack([a, b]))
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    se = math.sqrt(var) if var > 1e-15 else 0.0
    if se == 0.0:
        if abs(diff) < 1e-12:
            z, p = 0.0, 1.0
        else:
            z, p = math.copysign(math.inf, diff), 0.0
    else:
        z = diff / se
        p = float(2.0 * _sps.norm.sf(abs(z)))
    return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "diff": diff, "se": se, "z": z, "p": p,
            "cov": cov.tolist()}


# --------------------------------------------------------------------------------------------------
# cut-off and classification metrics


def youden_cutoff(y, score) -> float:
    """Cut-off maximising Youden's J = sensitivity + specificity - 1 on the (training) data.

    Candidate cut-offs are the midpoints between consecutive distinct observed scores (as pROC
    reports them), so every candidate splits the training cases into both predicted classes and no
    training score lies exactly on the cut-off. Prediction rule: ``score >= cutoff`` -> event. J is
    compared exactly (integer arithmetic: ``J m n = TP n + TN m - m n``); among equal maxima the
    **highest** cut-off (fewest false positives) is returned. (The common floating-point idiom
    ``thresholds[argmax(tpr - fpr)]`` breaks such ties by rounding noise.) With a single
    distinct score the score itself is returned (everything predicted event). For a model's
    probabilities the result is a probability threshold, applied unchanged to test sets.

    References
    ----------
    Youden WJ. Index for rating diagnostic tests. Cancer 1950;3(1):32-35.
    Fluss R, Faraggi D, Reiser B. Estimation of the Youden index and its associated cutoff point.
    Biometrical Journal 2005;47(4):458-472.
    """
    yy, ss = _check(y, score)
    values = np.unique(ss)
    if values.size == 1:
        return float(values[0])
    m = int(yy.sum())
    n = yy.size - m
    cut = (values[:-1] + values[1:]) / 2.0
    # guard against midpoints that round onto a neighbour for adjacent floats
    cut = np.where((cut > values[:-1]) & (cut <= values[1:]), cut, values[1:])
    # counts of cases with score >= cut, per class (integers)
    pos_sorted = np.sort(ss[yy == 1])
    neg_sorted = np.sort(ss[yy == 0])
    tp = m - np.searchsorted(pos_sorted, cut, side="left")
    fp = n - np.searchsorted(neg_sorted, cut, side="left")
    tn = n - fp
    j = tp.astype(np.int64) * n + tn.astype(np.int64) * m - m * n
    best = np.flatnonzero(j == j.max())
    return float(cut[best.max()])


def binary_metrics(y, score, cutoff: float) -> dict:
    """Accuracy, sensitivity, specificity, PPV, NPV and the 2x2 counts at a fixed cut-off.

    Rule: ``score >= cutoff`` -> event (1). PPV (NPV) is NaN when nothing is predicted event
    (non-event).

    References
    ----------
    Altman DG, Bland JM. Diagnostic tests 1: sensitivity and specificity. BMJ 1994;308:1552.
    Altman DG, Bland JM. Diagnostic tests 2: predictive values. BMJ 1994;309:102.
    """
    yy, ss = _check(y, score)
    try:
        c = float(cutoff)
    except (TypeError, ValueError):
        raise UserError(f"cut-off must be a number (got {cutoff!r})") from None
    if not math.isfinite(c):
        raise UserError(f"cut-off must be finite (got {cutoff!r})")
    pred = ss >= c
    pos = yy == 1
    tp = int(np.sum(pred & pos))
    fn = int(np.sum(~pred & pos))
    fp = int(np.sum(pred & ~pos))
    tn = int(np.sum(~pred & ~pos))
    nan = float("nan")
    return {
        "accuracy": (tp + tn) / yy.size,
        "sensitivity": tp / (tp + fn),
        "specificity": tn / (tn + fp),
        "ppv": tp / (tp + fp) if tp + fp else nan,
        "npv": tn / (tn + fn) if tn + fn else nan,
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        "cutoff": c,
    }


# --------------------------------------------------------------------------------------------------
# calibration


def _check_int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UserError(f"{name} must be an integer >= {low} (got {value!r})")
    if int(value) < low:
        raise UserError(f"{name} must be an integer >= {low} (got {value!r})")
    return int(value)


def calibration_curve(y, prob, n_bins: int = 10, strategy: str = "quantile") -> dict:
    """Observed event rate against mean predicted probability per bin (reliability diagram).

    ``strategy="uniform"``: bin edges ``linspace(0, 1, n_bins + 1)``. ``strategy="quantile"``: edges
    are the quantiles of ``prob`` (numpy's default linear interpolation) at ``linspace(0, 1,
    n_bins + 1)``, duplicates merged. Bins are ``[lower, upper)`` except the last, ``[lower, upper]``.
    Empty bins are dropped. Returns arrays ``lower, upper, mean_predicted, observed, count``.

    References
    ----------
    Steyerberg EW. Clinical Prediction Models, 2nd ed. Springer 2019, ch. 15 (calibration plots).
    Van Calster B, et al. Calibration: the Achilles heel of predictive analytics. BMC Med 2019;17:230.
    """
    yy = _as_labels(y)
    p = _as_probs(prob, yy.size)
    nb = _check_int(n_bins, "n_bins", 1)
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, nb + 1)
    elif strategy == "quantile":
        edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, nb + 1)))
        if edges.size == 1:
            edges = np.array([edges[0], edges[0]])
    else:
        raise UserError(f"calibration strategy must be 'quantile' or 'uniform' (got {strategy!r})")
    idx = np.searchsorted(edges[1:-1], p, side="right")
    k = edges.size - 1
    count = np.bincount(idx, minlength=k)
    sum_p = np.bincount(idx, weights=p, minlength=k)
    sum_y = np.bincount(idx, weights=yy.astype(float), minlength=k)
    keep = count > 0
    return {
        "lower": edges[:-1][keep],
        "upper": edges[1:][keep],
        "mean_predicted": sum_p[keep] / count[keep],
        "observed": sum_y[keep] / count[keep],
        "count": count[keep],
    }


def hosmer_lemeshow(y, prob, groups: int = 10) -> dict:
    """Hosmer-Lemeshow goodness-of-fit test with ``groups`` groups by deciles of risk.

    Cases are sorted by predicted probability and cut into ``groups`` groups of (almost) equal size
    (``numpy.array_split`` sizes on the sorted order); cases with tied probabilities are kept together
    in the group of the first of them, so a group can be smaller, and empty groups are dropped
    (``g`` = groups actually used). ``C = sum_g (O_g - E_g)^2 / (E_g (1 - E_g / n_g))`` with
    ``O_g`` the observed events and ``E_g`` the sum of predicted probabilities (equivalent to the
    sum over events and non-events of (O - E)^2 / E), ``df = g - 2``, ``p = P(chi2_df > C)``. A group
    with ``E_g (1 - E_g/n_g) = 0`` contributes 0 when it is also observed without error, else inf.

    Returns ``statistic, df, p, groups`` and per-group arrays ``n, observed, expected,
    mean_predicted``.

    References
    ----------
    Hosmer DW, Lemeshow S. Applied Logistic Regression, 2nd ed. Wiley 2000, section 5.2.2.
    """
    yy = _as_labels(y)
    p = _as_probs(prob, yy.size)
    g = _check_int(groups, "groups", 3)
    if g > yy.size:
        raise UserError(f"Hosmer-Lemeshow needs at least as many cases as groups ({yy.size} cases, {g} groups)")
    order = np.argsort(p, kind="stable")
    ps = p[order]
    ys = yy[order].astype(float)
    sizes = np.array([len(a) for a in np.array_split(np.arange(yy.size), g)])
    grp = np.repeat(np.arange(g), sizes)
    # ties: every case takes the group of the first case with the same probability
    first = np.searchsorted(ps, ps, side="left")
    grp = grp[first]
    n_g = np.bincount(grp, minlength=g)
    keep = n_g > 0
    n_g = n_g[keep]
    o_g = np.bincount(grp, weights=ys, minlength=g)[keep]
    e_g = np.bincount(grp, weights=ps, minlength=g)[keep]
    g_used = int(keep.sum())
    if g_used < 3:
        raise UserError(f"Hosmer-Lemeshow needs >= 3 distinct risk groups (got {g_used}); too many tied probabilities")
    denom = e_g * (1.0 - e_g / n_g)
    num = (o_g - e_g) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(denom > 0, num / np.where(denom > 0, denom, 1.0), np.where(num > 1e-24, np.inf, 0.0))
    stat = float(terms.sum())
    df = g_used - 2
    return {
        "statistic": stat,
        "df": df,
        "p": float(_sps.chi2.sf(stat, df)),
        "groups": g_used,
        "n": n_g,
        "observed": o_g,
        "expected": e_g,
        "mean_predicted": e_g / n_g,
    }


# --------------------------------------------------------------------------------------------------
# calibration slope / intercept, Brier score, bootstrap


def _logit(p: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    q = np.clip(p, eps, 1.0 - eps)
    return np.log(q / (1.0 - q))


def _logistic_newton(X: np.ndarray, y: np.ndarray, offset: np.ndarray, max_iter: int = 100,
                     tol: float = 1e-10) -> tuple[np.ndarray, bool]:
    """Maximum-likelihood logistic regression ``logit P(y=1) = offset + X beta`` by Newton-Raphson (IRLS),
    unpenalised; returns (beta, converged)."""
    beta = np.zeros(X.shape[1])
    for _ in range(max_iter):
        eta = offset + X @ beta
        mu = 1.0 / (1.0 + np.exp(-eta))
        w = mu * (1.0 - mu)
        grad = X.T @ (y - mu)
        hess = X.T @ (X * w[:, None])
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            return beta, False
        beta = beta + step
        if np.max(np.abs(step)) < tol * (1.0 + np.max(np.abs(beta))):
            return beta, True
    return beta, False


def calibration_slope_intercept(y, prob) -> dict:
    """Logistic recalibration of predicted probabilities: calibration slope and intercept.

    With the linear predictor ``lp = logit(prob)`` (probabilities clipped to [1e-12, 1 - 1e-12]):

    - ``slope``: ``b`` of the unpenalised logistic regression ``logit P(y=1) = a + b lp`` (Cox 1958); 1 is ideal,
      < 1 means predictions too extreme (overfitting), > 1 too moderate;
    - ``intercept``: calibration-in-the-large, ``a`` of ``logit P(y=1) = a + offset(lp)`` (slope fixed at 1);
      0 is ideal, > 0 means risks are underestimated on average (Van Calster et al. 2016, level "mean").

    Both are fitted by Newton-Raphson maximum likelihood (R's ``glm(y ~ lp, binomial)`` and
    ``glm(y ~ offset(lp), binomial)`` give the same values; Testing/Python/test_stats.py checks them against R
    when it is installed). When ``lp`` separates the classes completely (e.g. AUC = 1) the slope's maximum
    likelihood estimate does not exist: ``slope`` is then ``inf`` and ``separation`` True.

    Returns ``slope, intercept, separation``.

    References
    ----------
    Cox DR. Two further applications of a model for binary regression. Biometrika 1958;45(3-4):562-565.
    Van Calster B, Nieboer D, Vergouwe Y, De Cock B, Pencina MJ, Steyerberg EW. A calibration hierarchy for risk
    models was defined: from utopia to empirical data. J Clin Epidemiol 2016;74:167-176.
    """
    yy, _ = _check(y, prob, "prob")
    p = _as_probs(prob, yy.size)
    lp = _logit(p)
    yf = yy.astype(float)
    ones = np.ones((yy.size, 1))
    (citl,), ok_i = _logistic_newton(ones, yf, lp)
    separated = bool(lp[yy == 1].min() > lp[yy == 0].max())
    if separated:
        slope = math.inf
    else:
        (_, slope), ok_s = _logistic_newton(np.column_stack([ones[:, 0], lp]), yf, np.zeros(yy.size))
        slope = float(slope) if ok_s else math.nan
    return {"slope": float(slope), "intercept": float(citl) if ok_i else math.nan, "separation": separated}


def brier_score(y, prob) -> float:
    """Brier score: mean squared difference between predicted probability and outcome, ``mean((p - y)^2)``.

    0 is perfect; a model predicting the prevalence ``pi`` for everyone scores ``pi (1 - pi)``.

    References
    ----------
    Brier GW. Verification of forecasts expressed in terms of probability. Monthly Weather Review 1950;78(1):1-3.
    """
    yy = _as_labels(y)
    p = _as_probs(prob, yy.size)
    return float(np.mean((p - yy) ** 2))


def bootstrap_auc_ci(y, score, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """Stratified percentile-bootstrap confidence interval of the AUC.

    Each of ``n_boot`` replicates draws the events and the non-events separately with replacement (so every
    replicate keeps the observed class sizes, as pROC's ``ci.auc(method="bootstrap", stratified=TRUE)``), the
    AUC (:func:`roc_auc`) is computed per replicate, and the interval is the ``(1 - level)/2`` and
    ``(1 + level)/2`` quantiles of the replicate AUCs (numpy's linear interpolation, R's type 7). Deterministic
    for a given ``seed``.

    Returns ``auc`` (on the data), ``lo``, ``hi``, ``n_boot``, ``level``, ``seed``, ``method``.

    References
    ----------
    Efron B, Tibshirani RJ. An Introduction to the Bootstrap. Chapman & Hall 1993, ch. 13 (percentile interval).
    Robin X, et al. pROC: an open-source package for R and S+ to analyze and compare ROC curves. BMC
    Bioinformatics 2011;12:77.
    """
    yy, ss = _check(y, score)
    nb = _check_int(n_boot, "n_boot", 1)
    lv = _check_level(level)
    pos, neg = ss[yy == 1], ss[yy == 0]
    rng = np.random.default_rng(seed)
    aucs = np.empty(nb)
    chunk = max(1, 2_000_000 // yy.size)
    for start in range(0, nb, chunk):
        k = min(chunk, nb - start)
        bp = pos[rng.integers(0, pos.size, (k, pos.size))]
        bn = neg[rng.integers(0, neg.size, (k, neg.size))]
        ranks = _sps.rankdata(np.hstack([bp, bn]), axis=1)  # midranks: ties count 1/2
        r1 = ranks[:, : pos.size].sum(axis=1)
        aucs[start:start + k] = (r1 - pos.size * (pos.size + 1) / 2.0) / (pos.size * neg.size)
    lo, hi = np.quantile(aucs, [(1.0 - lv) / 2.0, (1.0 + lv) / 2.0])
    return {"auc": roc_auc(yy, ss), "lo": float(lo), "hi": float(hi), "n_boot": nb, "level": lv, "seed": int(seed),
            "method": "stratified percentile bootstrap"}


# --------------------------------------------------------------------------------------------------
# decision curve


def decision_curve(y, prob, thresholds) -> dict:
    """Net benefit of the model, treat-all and treat-none over threshold probabilities.

    At threshold ``pt`` a case is treated when ``prob >= pt``:
    ``NB_model = TP/n - FP/n * pt / (1 - pt)``; ``NB_all = prevalence - (1 - prevalence) * pt /
    (1 - pt)``; ``NB_none = 0``. Thresholds must lie in (0, 1).

    References
    ----------
    Vickers AJ, Elkin EB. Decision curve analysis: a novel method for evaluating prediction models.
    Medical Decision Making 2006;26(6):565-574.
    """
    yy = _as_labels(y)
    p = _as_probs(prob, yy.size)
    t = np.atleast_1d(np.asarray(thresholds, dtype=float))
    if t.ndim != 1 or t.size == 0:
        raise UserError("thresholds must be a non-empty 1-D list of probabilities")
    if not np.all(np.isfinite(t)) or t.min() <= 0.0 or t.max() >= 1.0:
        raise UserError("decision-curve thresholds must lie strictly between 0 and 1")
    n = yy.size
    pos = yy == 1
    treated = p[None, :] >= t[:, None]
    tp = (treated & pos[None, :]).sum(axis=1)
    fp = (treated & ~pos[None, :]).sum(axis=1)
    w = t / (1.0 - t)
    prev = pos.mean()
    return {
        "threshold": t,
        "model": tp / n - fp / n * w,
        "treat_all": prev - (1.0 - prev) * w,
        "treat_none": np.zeros_like(t),
    }


# --------------------------------------------------------------------------------------------------
# generalisation decay index


def gdi(auc_train: float, auc_test: float) -> float:
    """Generalization Decay Index ``(AUC_train - AUC_test) / AUC_train`` as a fraction.

    Example from the paper: (0.889 - 0.796) / 0.889 = 0.1046 -> 10.5 % (safe). Negative values (test
    better than training) are returned as they are.

    References
    ----------
    Gao Y, Gong J, et al. Stratified prediction of HER2 status in breast cancer by integrating
    intratumoral and peritumoral radiomics from DCE-MRI. BMC Cancer 2026;26(1).
    doi:10.1186/s12885-026-15688-x.
    """
    vals = []
    for name, v in (("training AUC", auc_train), ("test AUC", auc_test)):
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise UserError(f"{name} must be a number (got {v!r})") from None
        if not math.isfinite(f) or f < 0.0 or f > 1.0:
            raise UserError(f"{name} must be between 0 and 1 (got {v!r})")
        vals.append(f)
    tr, te = vals
    if tr == 0.0:
        raise UserError("training AUC is 0: GDI is undefined")
    return (tr - te) / tr


def gdi_zone(value: float) -> str:
    """Risk zone of a GDI fraction: ``"safe"`` (<= 0.15), ``"warning"`` (0.15 < g < 0.20), ``"high"`` (>= 0.20).

    The value is rounded to 12 decimals before comparison, so floating-point noise at the limits does
    not flip the zone: 0.15 and 0.15000000000000002 are safe, 0.1500001 is warning, 0.2 and
    0.19999999999999998 are high.

    References
    ----------
    Gao Y, Gong J, et al. BMC Cancer 2026;26(1). doi:10.1186/s12885-026-15688-x.
    """
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise UserError(f"GDI must be a number (got {value!r})") from None
    if not math.isfinite(f):
        raise UserError(f"GDI must be finite (got {value!r})")
    r = round(f, _GDI_ROUND)
    if r <= GDI_SAFE:
        return "safe"
    if r >= GDI_HIGH:
        return "high"
    return "warning"


# --------------------------------------------------------------------------------------------------
# intraclass correlation


def _check_kind(kind: str) -> str:
    k = str(kind).replace("ICC", "").replace("(", "").replace(")", "").replace(" ", "")
    if k not in ICC_KINDS:
        raise UserError(f"ICC kind must be one of {', '.join(ICC_KINDS)} (got {kind!r})")
    return k


def icc_mean_squares(ratings) -> dict:
    """Two-way ANOVA mean squares of a (n targets, k raters) table, as in Shrout & Fleiss (1979) Table 3.

    ``BMS = k sum_i (row_mean_i - m)^2 / (n - 1)`` (between targets), ``WMS = sum_ij (x_ij -
    row_mean_i)^2 / (n (k - 1))`` (within targets), ``JMS = n sum_j (col_mean_j - m)^2 / (k - 1)``
    (between judges), ``EMS = (SS_total - SS_targets - SS_judges) / ((n - 1)(k - 1))`` (residual).
    Returns ``{"bms", "wms", "jms", "ems", "n", "k"}``.

    References
    ----------
    Shrout PE, Fleiss JL. Psychological Bulletin 1979;86(2):420-428.
    """
    x = np.asarray(ratings, dtype=float)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise UserError(f"ICC needs a (targets, raters) table with >= 2 targets and >= 2 raters (got shape {x.shape})")
    if not np.all(np.isfinite(x)):
        raise UserError("ICC ratings contain NaN/inf; remove those targets first")
    n, k = x.shape
    gm = x.mean()
    ss_total = float(((x - gm) ** 2).sum())
    ss_rows = float(k * ((x.mean(axis=1) - gm) ** 2).sum())
    ss_cols = float(n * ((x.mean(axis=0) - gm) ** 2).sum())
    ss_err = ss_total - ss_rows - ss_cols
    return {
        "bms": ss_rows / (n - 1),
        "wms": (ss_total - ss_rows) / (n * (k - 1)),
        "jms": ss_cols / (k - 1),
        "ems": ss_err / ((n - 1) * (k - 1)),
        "n": n,
        "k": k,
    }


def icc(ratings, kind: str = "2,1") -> float:
    """Intraclass correlation ICC(1,1), ICC(2,1) or ICC(3,1) from the two-way ANOVA mean squares.

    ``ratings`` is (n targets, k raters). With BMS (between targets), WMS (within targets), JMS
    (between judges) and EMS (residual) mean squares (:func:`icc_mean_squares`):

    - ICC(1,1) = (BMS - WMS) / (BMS + (k-1) WMS)                          one-way random
    - ICC(2,1) = (BMS - EMS) / (BMS + (k-1) EMS + k (JMS - EMS) / n)      two-way random, absolute agreement
    - ICC(3,1) = (BMS - EMS) / (BMS + (k-1) EMS)                          two-way mixed, consistency

    Returns NaN when the denominator is 0 (all ratings identical). Shrout & Fleiss' 6 x 4 example
    gives 0.17, 0.29 and 0.71.

    References
    ----------
    Shrout PE, Fleiss JL. Intraclass correlations: uses in assessing rater reliability.
    Psychological Bulletin 1979;86(2):420-428.
    Koo TK, Li MY. A guideline of selecting and reporting intraclass correlation coefficients for
    reliability research. J Chiropr Med 2016;15(2):155-163.
    """
    k_ = _check_kind(kind)
    ms = icc_mean_squares(ratings)
    n, k = ms["n"], ms["k"]
    bms, wms, jms, ems = ms["bms"], ms["wms"], ms["jms"], ms["ems"]
    if k_ == "1,1":
        num, den = bms - wms, bms + (k - 1) * wms
    elif k_ == "2,1":
        num, den = bms - ems, bms + (k - 1) * ems + k * (jms - ems) / n
    else:
        num, den = bms - ems, bms + (k - 1) * ems
    scale = max(abs(bms), abs(wms), abs(ems), abs(jms))
    if scale == 0.0 or abs(den) <= 1e-14 * scale:
        return float("nan")
    return float(num / den)


def icc_columns(reader_a, reader_b, kind: str = "2,1") -> np.ndarray:
    """ICC per feature for two readers, vectorised over thousands of columns.

    ``reader_a`` and ``reader_b`` are (n_cases, n_features) arrays with rows in the same case order.
    For two raters the mean squares reduce to functions of the sum ``s = a + b`` and difference
    ``d = a - b`` per case: ``BMS = var(s) / 2``, ``WMS = sum(d^2) / (2n)``, ``EMS = var(d) / 2``,
    ``JMS = n mean(d)^2 / 2`` (sample variances, ddof=1), which are inserted into the Shrout &
    Fleiss formulas of :func:`icc` (k = 2). A column with any non-finite value, or with all values
    identical, gets NaN (so an ``icc >= threshold`` filter drops it).

    References
    ----------
    Shrout PE, Fleiss JL. Psychological Bulletin 1979;86(2):420-428.
    """
    k_ = _check_kind(kind)
    a = np.asarray(reader_a, dtype=float)
    b = np.asarray(reader_b, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    if b.ndim == 1:
        b = b[:, None]
    if a.shape != b.shape or a.ndim != 2:
        raise UserError(f"the two readers' feature tables must have the same shape (got {a.shape} and {b.shape})")
    n = a.shape[0]
    if n < 2:
        raise UserError(f"ICC needs at least 2 cases read by both readers (got {n})")
    finite = np.all(np.isfinite(a), axis=0) & np.all(np.isfinite(b), axis=0)
    a = np.where(finite[None, :], a, 0.0)
    b = np.where(finite[None, :], b, 0.0)
    # centre each column on its grand mean to limit cancellation for large-valued features
    centre = (a.mean(axis=0) + b.mean(axis=0)) / 2.0
    a = a - centre
    b = b - centre
    s = a + b
    d = a - b
    bms = s.var(axis=0, ddof=1) / 2.0
    wms = (d**2).sum(axis=0) / (2.0 * n)
    ems = d.var(axis=0, ddof=1) / 2.0
    jms = n * d.mean(axis=0) ** 2 / 2.0
    if k_ == "1,1":
        num, den = bms - wms, bms + wms
    elif k_ == "2,1":
        num, den = bms - ems, bms + ems + 2.0 * (jms - ems) / n
    else:
        num, den = bms - ems, bms + ems
    scale = np.maximum.reduce([np.abs(bms), np.abs(wms), np.abs(ems), np.abs(jms)])
    ok = finite & (scale > 0) & (np.abs(den) > 1e-14 * scale)
    out = np.full(a.shape[1], np.nan)
    out[ok] = num[ok] / den[ok]
    return out


def delong_matrix(y: np.ndarray, probs: Sequence[np.ndarray], names: Sequence[str]) -> dict:
    """AUC per model and the matrices of AUC differences (row - column) and two-sided DeLong p-values
    (:func:`delong_test` on every pair; DeLong, DeLong & Clarke-Pearson 1988), all scored on the same cases ``y``."""
    k = len(probs)
    aucs = [float(roc_auc(y, p)) for p in probs]
    diff = [[0.0] * k for _ in range(k)]
    pval = [[1.0] * k for _ in range(k)]
    for i in range(k):
        for j in range(i + 1, k):
            t = delong_test(y, probs[i], probs[j])
            d = float(t["diff"])
            p = float(t["p"]) if math.isfinite(float(t["p"])) else 1.0
            diff[i][j], diff[j][i] = d, -d
            pval[i][j] = pval[j][i] = p
    return {"models": list(names), "n": int(len(y)), "n_event": int(np.sum(y)), "auc": aucs, "diff": diff, "p": pval}

