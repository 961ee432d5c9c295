"""Feature filters and selectors beside LASSO: variance threshold, Pearson redundancy, Mann-Whitney U, RFE.

All are fitted on the training split only, on the median-imputed training matrix (``A``: cases x features) with
the 0/1 target ``y``; each returns a boolean mask over the columns plus what the card's ``selection`` record
stores. Order in the pipeline (``fitting``): ICC -> imputation -> constant -> variance threshold -> Mann-Whitney U
-> Pearson redundancy -> z-score -> selection (``lasso`` | ``rfe`` | ``none``) -> classifier.

* Variance threshold: keep features whose training variance (population, ddof = 0) is *greater* than ``T``, as
  scikit-learn's ``VarianceThreshold`` does. It is applied to the raw (imputed) values, before the z-score (after
  it every variance is 1), so ``T`` is in the features' own units squared.
* Mann-Whitney U: keep features with two-sided p < ``P`` (Mann & Whitney 1947; scipy's ``mannwhitneyu``, with
  its default choice per feature: exact for <= 8 cases per class without ties, else normal approximation with
  tie and continuity correction).
* Pearson redundancy: features are ranked by their univariate AUC (discrimination regardless of direction,
  ``max(AUC, 1 - AUC)``, AUC = U / (n1 n0), Hanley & McNeil 1982); walking down that ranking, a feature is kept
  unless its absolute Pearson correlation with an already kept feature is greater than ``R``. So of every
  redundant pair the feature with the higher AUC stays (ties: the earlier column).
* RFE: scikit-learn's ``RFECV`` (Guyon et al. 2002, Machine Learning 46:389-422) with the chosen classifier's
  ranking (LR: |coefficient|; RF: impurity importance; SVM: a *linear* SVM's |weight| for both kernels, since
  an RBF SVM has no per-feature weight), step 1 (``--rfe-step``), stratified K-fold CV shuffled with the run's seed, scoring
  ROC AUC; the number of features with the highest mean CV AUC is kept (ties: fewer features).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from her2radiomics.errors import UserError

SELECTIONS = ("lasso", "rfe", "none")


def check_selection(method: str) -> None:
    if method not in SELECTIONS:
        raise UserError(f"unknown --selection {method!r}; use one of {', '.join(SELECTIONS)}")


def variance_filter(A: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(mask of features with population variance > ``threshold``, the variances)."""
    var = np.var(np.asarray(A, dtype=float), axis=0)
    return var > threshold, var


def univariate_auc(A: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per column ``max(AUC, 1 - AUC)`` with ``AUC = U / (n1 n0)`` (midranks for ties; Hanley & McNeil 1982)."""
    from scipy.stats import rankdata

    A = np.asarray(A, dtype=float)
    y = np.asarray(y, dtype=int)
    n1, n0 = int(y.sum()), int((1 - y).sum())
    r = rankdata(A, axis=0)
    u = r[y == 1].sum(axis=0) - n1 * (n1 + 1) / 2.0
    auc = u / (n1 * n0)
    return np.maximum(auc, 1.0 - auc)


def mwu_filter(A: np.ndarray, y: np.ndarray, p: float) -> tuple[np.ndarray, np.ndarray]:
    """(mask of features with two-sided Mann-Whitney U p < ``p``, the p-values)."""
    from scipy.stats import mannwhitneyu

    A = np.asarray(A, dtype=float)
    y = np.asarray(y, dtype=int)
    a, b = A[y == 1], A[y == 0]
    if a.shape[0] <= 8 and b.shape[0] <= 8:
        # scipy's 'auto' takes the exact test only when no column of the whole array has ties: per column instead
        pv = np.array([mannwhitneyu(a[:, j], b[:, j], alternative="two-sided").pvalue for j in range(A.shape[1])])
    else:
        pv = np.asarray(mannwhitneyu(a, b, axis=0, alternative="two-sided").pvalue, dtype=float)
    return pv < p, pv


def correlation_filter(A: np.ndarray, y: np.ndarray, max_r: float) -> tuple[np.ndarray, np.ndarray]:
    """(mask after the Pearson redundancy filter, the univariate AUCs): greedy by decreasing AUC, a feature is
    dropped when ``|r| > max_r`` with a feature already kept."""
    A = np.asarray(A, dtype=float)
    auc = univariate_auc(A, y)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.abs(np.corrcoef(A, rowvar=False)) if A.shape[1] > 1 else np.ones((1, 1))
    r = np.nan_to_num(np.atleast_2d(r), nan=0.0)
    order = np.argsort(-auc, kind="stable")
    kept: list[int] = []
    for j in order:
        if all(r[j, k] <= max_r for k in kept):
            kept.append(int(j))
    mask = np.zeros(A.shape[1], dtype=bool)
    mask[kept] = True
    return mask, auc


def rfe_estimator(classifier: str, seed: int) -> tuple[Any, str]:
    """The estimator RFE ranks features with, and its description."""
    if classifier == "lr":
        from sklearn.linear_model import LogisticRegression

        return (LogisticRegression(C=10.0, solver="lbfgs", max_iter=5000),
                "logistic regression (L2, C=10) ranked by |coefficient|")
    if classifier == "rf":
        from her2radiomics.classifiers import make_estimator

        return make_estimator("rf", seed), "random forest ranked by impurity importance"
    if classifier == "svm":
        from sklearn.svm import SVC

        return SVC(C=1.0, kernel="linear"), "linear SVM (C=1) ranked by |weight|"
    raise UserError(f"unknown --classifier {classifier!r}; use one of lr, rf, svm")


def rfe_select(Z: np.ndarray, y: np.ndarray, classifier: str, *, folds: int = 10, seed: int = 0,
               step: float = 1) -> dict:
    """Recursive feature elimination with cross-validation (scikit-learn ``RFECV``) on the z-scored training
    matrix; ``step`` features are removed per round (an integer >= 1, or a fraction in (0, 1) of the remaining
    ones, as scikit-learn's ``step``). Returns ``{"selected": [column indices], "n_features": k, "cv_auc": [mean AUC for 1..p features],
    "folds": K, "estimator": text}``."""
    from sklearn.feature_selection import RFECV
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y, dtype=int)
    n_min = int(np.bincount(y, minlength=2).min())
    k = min(folds, n_min)
    if k < 2:
        raise UserError(f"the training split has {n_min} case(s) of one class; RFE cross-validation needs at least 2")
    est, text = rfe_estimator(classifier, seed)
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    step = int(step) if step >= 1 else float(step)
    rfe = RFECV(est, step=step, cv=cv, scoring="roc_auc", min_features_to_select=1).fit(np.asarray(Z, float), y)
    return {"selected": np.flatnonzero(rfe.support_).tolist(), "n_features": int(rfe.n_features_),
            "cv_auc": [float(v) for v in rfe.cv_results_["mean_test_score"]],
            "n_features_grid": [int(v) for v in rfe.cv_results_["n_features"]], "folds": k, "estimator": text,
            "scoring": "roc_auc", "step": step, "seed": seed}


# ------------------------------------------------------------------------------------------------ pipeline hooks
def apply_variance(A: np.ndarray, med: np.ndarray, cols: list[str], threshold: float | None,
                   sel: dict) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The variance-threshold step of ``fit_model`` (no-op for None); records ``variance_threshold`` and
    ``n_after_variance`` in ``sel``."""
    sel["variance_threshold"] = threshold
    if threshold is not None:
        keep, _ = variance_filter(A, threshold)
        if not keep.any():
            raise UserError(f"no feature has a training variance above --variance-threshold {threshold:g}; lower it")
        A, med, cols = A[:, keep], med[keep], [c for c, k in zip(cols, keep, strict=True) if k]
    sel["n_after_variance"] = len(cols)
    return A, med, cols


def apply_correlation(A: np.ndarray, y: np.ndarray, med: np.ndarray, cols: list[str], max_r: float | None,
                      sel: dict) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The Pearson redundancy step of ``fit_model`` (no-op for None); records ``max_correlation`` and
    ``n_after_correlation`` in ``sel``."""
    sel["max_correlation"] = max_r
    if max_r is not None:
        keep, _ = correlation_filter(A, y, max_r)
        A, med, cols = A[:, keep], med[keep], [c for c, k in zip(cols, keep, strict=True) if k]
    sel["n_after_correlation"] = len(cols)
    return A, med, cols


def funnel(sel: dict) -> list[list]:
    """The funnel of a run with these filters: candidates -> ICC -> non-constant -> variance -> MWU ->
    correlation -> the selector; a step not applied keeps the previous count."""
    after_icc = int(sel["n_after_icc"])
    last = {"lasso": "LASSO", "rfe": "RFE", "none": "no selector"}[sel.get("selector", "lasso")]
    return [["candidates", int(sel["candidates"])], ["ICC", after_icc],
            ["non-constant", after_icc - int(sel.get("n_constant_dropped") or 0)],
            ["variance", int(sel["n_after_variance"])], ["MWU", int(sel["n_after_mwu"])],
            ["correlation", int(sel["n_after_correlation"])], [last, int(sel["n_selected"])]]
