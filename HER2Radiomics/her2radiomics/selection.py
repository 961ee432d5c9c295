"""Feature selection on the training split: ICC reproducibility filter, LASSO (L1 logistic regression with
cross-validated penalty), and the records of both that the model card keeps; regions some cases lack.

References: Shrout & Fleiss 1979 and Koo & Li 2016 (ICC); Tibshirani 1996 and Friedman, Hastie & Tibshirani 2010
(LASSO, glmnet's cv.glmnet). Method: docs/modeling.md.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from her2radiomics import stats
from her2radiomics.errors import UserError
from her2radiomics.targets import norm_value, norm_value_id

MIN_ICC_CASES = 10

N_PENALTIES = 20

INTERCEPT_SCALING = 100.0   # liblinear penalises the intercept; a large scaling makes that penalty negligible

_REGION_PREFIX = re.compile(r"^(intra|peri\d+(?:\.\d+)?)_")



def icc_filter(icc_table: pd.DataFrame, candidates: Sequence[str], id_column: str, threshold: float = 0.75,
               kind: str = "2,1") -> tuple[list[str], dict[str, float], list[str]]:
    """Features with inter-reader ICC >= ``threshold`` from a two-reader table (column ``reader``).

    Cases read by both readers are matched on ``id_column``; a feature's ICC is computed on the cases where both
    readers' values are finite (stats.icc_columns; Shrout & Fleiss 1979, Koo & Li 2016). Candidates absent from
    the ICC table or with an undefined ICC are dropped. Returns (kept, icc per candidate, notes).
    """
    if "reader" not in icc_table.columns or id_column not in icc_table.columns:
        raise UserError(f"the ICC table needs columns {id_column!r} and 'reader' (one row per case and reader)")
    readers = [r for r in pd.unique(icc_table["reader"].map(norm_value)) if r is not None]
    if not readers:
        raise UserError("the ICC table's 'reader' column is empty; give each row its reader (e.g. A / B)")
    if len(readers) != 2:
        raise UserError(f"the ICC table must hold exactly two readers, found {len(readers)} ({', '.join(map(str, readers[:5]))})")
    tabs = []
    for r in readers:
        t = icc_table[icc_table["reader"].map(norm_value) == r].copy()
        t.index = t[id_column].map(norm_value_id)
        if t.index.duplicated().any():
            raise UserError(f"the ICC table has case {t.index[t.index.duplicated()][0]!r} twice for reader {r!r}")
        tabs.append(t)
    both = sorted(set(tabs[0].index) & set(tabs[1].index))
    if len(both) < 3:
        raise UserError(f"only {len(both)} case(s) are read by both readers in the ICC table; ICC needs at least 3")
    present = [c for c in candidates if c in icc_table.columns]
    if not present:
        raise UserError(f"the ICC table has none of the {len(candidates)} candidate feature columns (e.g. "
                        f"{candidates[0]!r}); extract it with the same parameters and regions as the features table")
    notes = [f"ICC computed on {len(both)} cases read by both readers ({readers[0]}, {readers[1]}), ICC({kind})"]
    if len(both) < MIN_ICC_CASES:
        # Koo & Li 2016 (J Chiropr Med 15:155-163) advise >= 30 heterogeneous cases: a handful gives a wide ICC CI
        notes[0] = (f"ICC computed on only {len(both)} cases read by both readers ({readers[0]}, {readers[1]}), "
                    f"ICC({kind}): fewer than {MIN_ICC_CASES}, so each feature's ICC is imprecise and the filter "
                    "may keep or drop features by chance; have more cases read twice (>= 30 is advised)")
    if len(present) < len(candidates):
        notes.append(f"{len(candidates) - len(present)} candidate feature(s) absent from the ICC table were dropped")
    a = tabs[0].loc[both, present].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    b = tabs[1].loc[both, present].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    values = np.asarray(stats.icc_columns(a, b, kind=kind), dtype=float)
    # columns with missing values: ICC on the cases where both readers have a finite value
    for j in np.flatnonzero(~(np.isfinite(a).all(0) & np.isfinite(b).all(0))):
        ok = np.isfinite(a[:, j]) & np.isfinite(b[:, j])
        if ok.sum() >= 3:
            values[j] = float(stats.icc_columns(a[ok, j], b[ok, j], kind=kind)[0])
    iccs = {c: float(v) for c, v in zip(present, values, strict=True)}
    kept = [c for c in present if np.isfinite(iccs[c]) and iccs[c] >= threshold]
    return kept, iccs, notes



def icc_summary(iccs: dict[str, float], kept: Sequence[str], threshold: float, kind: str, n_cases: int) -> dict:
    """The ICC filter's result for reports: distribution (histogram, quantiles), threshold and how many kept."""
    v = np.array([x for x in iccs.values() if np.isfinite(x)], dtype=float)
    edges = [-1.0, *np.round(np.arange(0.0, 1.0001, 0.05), 2).tolist()]
    counts = np.histogram(np.clip(v, -1.0, 1.0), bins=edges)[0].tolist() if v.size else [0] * (len(edges) - 1)
    q = np.quantile(v, [0.0, 0.25, 0.5, 0.75, 1.0]).tolist() if v.size else [None] * 5
    return {"kind": kind, "threshold": threshold, "n_cases": n_cases, "n_features": len(iccs),
            "n_kept": len(kept), "n_undefined": int(len(iccs) - v.size),
            "quantiles": dict(zip(("min", "q25", "median", "q75", "max"), q, strict=True)),
            "histogram": {"edges": edges, "counts": counts}}



def _l1_logistic(C: float, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, l1_ratio=1.0, solver="liblinear", intercept_scaling=INTERCEPT_SCALING, max_iter=1000,
                              tol=1e-4, random_state=seed)



def _deviance(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-2.0 * np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))



def lasso_select(Z: np.ndarray, y: np.ndarray, *, folds: int = 10, seed: int = 0, rule: str = "min",
                 n_penalties: int = N_PENALTIES) -> dict:
    """LASSO selection by L1-penalised logistic regression with stratified K-fold CV of the penalty.

    Penalty grid: ``C = C0 * 10**linspace(-0.3, 2, n)`` where ``C0 = 1 / max_j |z_j^T (y - mean y)|`` is the smallest
    C giving a non-null model on the full training data (intercept unpenalised), so the grid starts at the null model (lambda_max) and
    spans 2 decades like glmnet's ``lambda.min.ratio = 0.01`` for n < p. CV criterion: mean held-out binomial
    deviance (glmnet's default ``type.measure``); ``rule="min"`` takes its minimum, ``"1se"`` the strongest
    penalty within one standard error of it. Ties go to the stronger penalty. The path stops early once the
    mean deviance has been above (minimum + its SE) for 3 penalties past the minimum (saves the slow, weakly
    penalised end of the path; the choice of either rule is unaffected). Features with non-zero
    coefficients when refitting at the chosen C on all training rows are returned.

    References: Tibshirani R. J R Stat Soc B 1996;58:267-288. Friedman J, Hastie T, Tibshirani R.
    J Stat Softw 2010;33(1):1-22 (glmnet, cv.glmnet).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y, dtype=int)
    n_min = int(np.bincount(y, minlength=2).min())
    k = min(folds, n_min)
    if k < 2:
        raise UserError(f"the training split has {n_min} case(s) of one class; LASSO cross-validation needs at least 2")
    # smallest C with a non-null model when the intercept is (nearly) unpenalised: 1 / max_j |z_j^T (y - mean y)|
    c0 = 1.0 / float(np.max(np.abs(Z.T @ (y - y.mean()))))
    Cs = c0 * 10.0 ** np.linspace(-0.3, 2.0, n_penalties)
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    dev = np.zeros((k, Cs.size))
    auc = np.full((k, Cs.size), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        folds_idx = list(skf.split(Z, y))
        n_done = Cs.size
        for j, C in enumerate(Cs):
            for f, (tr, te) in enumerate(folds_idx):
                m = _l1_logistic(C, seed).fit(Z[tr], y[tr])
                p = m.predict_proba(Z[te])[:, 1]
                dev[f, j] = _deviance(y[te], p)
                if np.ptp(p) > 0 and 0 < y[te].sum() < y[te].size:
                    auc[f, j] = stats.roc_auc(y[te], p)
            # early stop (as glmnet stops its path): 3 penalties past the minimum and clearly worse
            mean = dev[:, : j + 1].mean(0)
            b = int(np.argmin(mean))
            se_b = dev[:, b].std(ddof=1) / math.sqrt(k)
            if j - b >= 3 and mean[j] > mean[b] + se_b:
                n_done = j + 1
                break
        Cs, dev, auc = Cs[:n_done], dev[:, :n_done], auc[:, :n_done]
        mean, se = dev.mean(0), dev.std(0, ddof=1) / math.sqrt(k)
        best = int(np.argmin(mean))
        if rule == "1se":
            best = int(np.flatnonzero(mean <= mean[best] + se[best])[0])
        elif rule != "min":
            raise UserError(f"unknown LASSO rule {rule!r}; use min or 1se")
        # coefficient path on all training rows (the chosen penalty's fit is its column ``best``)
        path = np.vstack([_l1_logistic(C, seed).fit(Z, y).coef_.ravel() for C in Cs])
    coef = path[best]
    return {"C": float(Cs[best]), "Cs": Cs.tolist(), "cv_deviance": mean.tolist(), "cv_deviance_se": se.tolist(),
            "cv_auc": auc.mean(0).tolist(), "folds": k, "selected": np.flatnonzero(coef != 0).tolist(),
            "lasso_coefficients": coef[coef != 0].tolist(), "path": path}



def lasso_path_record(Cs: Sequence[float], path: np.ndarray, names: Sequence[str]) -> dict:
    """The L1 coefficient path for the card: ``C`` per penalty and, for every feature that is non-zero at some
    penalty, its coefficients (per SD) along the path."""
    on = np.flatnonzero((np.asarray(path) != 0).any(axis=0))
    return {"C": [float(c) for c in Cs], "features": [names[j] for j in on],
            "coefficients": [[float(v) for v in path[:, j]] for j in on]}



def missing_regions(X: pd.DataFrame, candidates: Sequence[str], train_rows: np.ndarray) -> dict[str, dict]:
    """Regions that some cases lack entirely (every column of the region missing), among the candidate columns.

    Returns ``{region: {"case_ids": [...], "n_train": k, "n_other": m, "n_features": f}}``; those cases' values are
    imputed with the training medians like any missing value (step 3 of the pipeline), which this makes explicit.
    """
    by_region: dict[str, list[str]] = {}
    for c in candidates:
        m = _REGION_PREFIX.match(str(c))
        if m:
            by_region.setdefault(m.group(1), []).append(c)
    is_train = np.zeros(len(X), dtype=bool)
    is_train[np.asarray(train_rows, dtype=int)] = True
    out: dict[str, dict] = {}
    for region, cols in by_region.items():
        A = X[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        empty = ~np.isfinite(A).any(axis=1)
        if empty.any():
            out[region] = {"case_ids": [str(X.index[i]) for i in np.flatnonzero(empty)],
                           "n_train": int((empty & is_train).sum()), "n_other": int((empty & ~is_train).sum()),
                           "n_features": len(cols)}
    return out



def missing_region_note(region: str, info: dict, n_cases: int) -> str:
    """One line: which cases lack ``region`` and how their values are handled."""
    ids = info["case_ids"]
    shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
    return (f"{region} is missing for {len(ids)} of {n_cases} case(s) ({shown}; {info['n_train']} in the training "
            f"split): their {info['n_features']} {region} feature(s) are imputed with the training medians")


def read_icc_table(path: str | os.PathLike[str] | None, id_column: str = "case_id") -> pd.DataFrame | None:
    """The two-reader features table for :func:`icc_filter` (``io.read_table``; ids and readers as text), or None."""
    from her2radiomics.io import read_table

    if not path:
        return None
    return read_table(path, "ICC table", text_columns=[id_column, "reader"])
