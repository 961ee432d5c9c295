"""ComBat harmonisation of feature tables across batches (scanners, centres), stored in the model card.

ComBat (Johnson, Li & Rabinovic, Biostatistics 2007;8:118-127; for radiomics: Orlhac et al., J Nucl Med
2018;59:1321-1328 and Radiology 2019;291:53-59) models a feature ``x`` of case ``i`` in batch ``b`` as
``x = alpha + gamma_b + delta_b * eps`` and removes the batch's location ``gamma_b`` and scale ``delta_b``,
shrunk towards their across-feature means by parametric empirical Bayes. The estimation is done by the
maintained PyPI implementation **neuroCombat 0.2.12** (Fortin et al., NeuroImage 2017/2018; MIT licence; pure
numpy, installs with this project's pinned numpy/pandas, unlike neuroHarmonize 2.5 which pins numpy < 2 and
pandas < 3, and combatlearn 2.3 which pulls in seaborn/plotly/umap-learn). No covariates are protected (the
issue's outside measurement and Orlhac et al. harmonise without labels), so the fitted transform of a case of
batch ``b`` is, per feature::

    x_h = m + (x - m - gamma*_b * sqrt(v)) / sqrt(delta*_b)

with ``m`` the grand mean, ``v`` the pooled variance and ``gamma*_b``, ``delta*_b`` the empirical-Bayes
estimates: those five arrays are what the card stores (``harmonization`` record), so a new case of a known
batch is harmonised exactly as the training cases were. An unseen batch is refused, or its ``gamma*``/``delta*``
are estimated from that batch's own unlabelled cases (``--harmonize-batch FILE``) by the same per-batch
empirical-Bayes step (neuroCombat's ``it_sol``) against the stored ``m`` and ``v``: this is exactly what ComBat
would have estimated for that batch had it been in the fit (ComBat's priors are per batch), except that ``m``
and ``v`` stay the training ones.

Missing values: ComBat needs complete data, so for *estimation* a missing value is replaced by its batch's
median (counted in the record); the transform is then applied to the observed values only (missing values stay
missing and are imputed later by the model's own training medians). Features that are constant within a batch
(zero variance: delta undefined) are left unharmonised and counted.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from her2radiomics.errors import UserError

METHOD = "combat"
IMPLEMENTATION = "neuroCombat 0.2.12 (parametric empirical Bayes, no protected covariates)"


def _batch_labels(batch: Sequence) -> np.ndarray:
    from her2radiomics.modeling import norm_value

    out = np.array([norm_value(b) for b in batch], dtype=object)
    if any(b is None for b in out):
        raise UserError("the batch column has blank values; give every case a batch (scanner/centre) value")
    return out


def _numeric(X: pd.DataFrame) -> np.ndarray:
    A = np.array(X.apply(pd.to_numeric, errors="coerce"), dtype=float)
    A[~np.isfinite(A)] = np.nan
    return A


def _fill_by_batch(A: np.ndarray, batch: np.ndarray) -> tuple[np.ndarray, int]:
    B = A.copy()
    n = int(np.isnan(B).sum())
    for b in np.unique(batch):
        rows = batch == b
        sub = B[rows]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(sub, axis=0)
        B[rows] = np.where(np.isnan(sub), med[None, :], sub)
    return B, n


def fit(X: pd.DataFrame, batch: Sequence, *, batch_column: str) -> dict:
    """Fit ComBat on every numeric column of ``X`` (cases x features) with ``batch`` per case -> card record."""
    from neuroCombat import neuroCombat

    labels = _batch_labels(batch)
    levels = sorted(set(labels), key=str)
    counts = {b: int((labels == b).sum()) for b in levels}
    if len(levels) < 2:
        raise UserError(f"--harmonize combat needs at least 2 batches in {batch_column!r}; found only {levels[0]!r}")
    small = [b for b, n in counts.items() if n < 2]
    if small:
        raise UserError(f"batch {small[0]!r} of {batch_column!r} has 1 case; ComBat needs >= 2 cases per batch")
    cols = list(X.columns)
    A = _numeric(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ok = np.ones(len(cols), dtype=bool)
        for b in levels:
            sub = A[labels == b]
            ok &= (np.sum(np.isfinite(sub), axis=0) >= 2) & (np.nan_to_num(np.nanstd(sub, axis=0)) > 0)
    use = [c for c, k in zip(cols, ok, strict=True) if k]
    if not use:
        raise UserError("no feature varies within every batch; ComBat has nothing to estimate")
    filled, n_filled = _fill_by_batch(A[:, ok], labels)
    covars = pd.DataFrame({"batch": [levels.index(b) for b in labels]})
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = neuroCombat(dat=filled.T, covars=covars, batch_col="batch")
    est = res["estimates"]
    order = [int(v) for v in est["batches"]]          # integer codes, sorted = levels order
    gs, ds = np.asarray(est["gamma.star"]), np.asarray(est["delta.star"])
    return {
        "method": METHOD,
        "implementation": IMPLEMENTATION,
        "reference": "Johnson WE, Li C, Rabinovic A. Biostatistics 2007;8:118-127; Fortin JP et al. NeuroImage 2018",
        "batch_column": batch_column,
        "batches": [levels[i] for i in order],
        "n_per_batch": {levels[i]: counts[levels[i]] for i in order},
        "features": use,
        "n_unharmonised": int(len(cols) - len(use)),
        "n_filled_for_estimation": n_filled,
        "grand_mean": np.asarray(est["stand.mean"])[:, 0].tolist(),
        "var_pooled": np.asarray(est["var.pooled"]).ravel().tolist(),
        "gamma_star": {levels[i]: gs[k].tolist() for k, i in enumerate(order)},
        "delta_star": {levels[i]: ds[k].tolist() for k, i in enumerate(order)},
        "estimated_from_new_cases": [],
    }


def unknown_batch_error(record: dict, batch: str) -> UserError:
    known = ", ".join(repr(b) for b in record["batches"])
    return UserError(f"batch {batch!r} of {record['batch_column']!r} was not in the ComBat fit (known: {known}); "
                     "pass --harmonize-batch FILE with that batch's unlabelled cases to estimate it")


def apply(record: dict, X: pd.DataFrame, batch: Sequence) -> pd.DataFrame:
    """Harmonise ``X`` (cases x features, any column order) with the card's record; other columns unchanged."""
    labels = _batch_labels(batch)
    for b in dict.fromkeys(labels):
        if b not in record["gamma_star"]:
            raise unknown_batch_error(record, b)
    feats = [f for f in record["features"] if f in X.columns]
    if not feats:
        return X.copy()
    idx = [record["features"].index(f) for f in feats]
    m = np.asarray(record["grand_mean"], dtype=float)[idx]
    sv = np.sqrt(np.asarray(record["var_pooled"], dtype=float)[idx])
    A = _numeric(X[feats])
    out = A.copy()
    for b in dict.fromkeys(labels):
        rows = labels == b
        g = np.asarray(record["gamma_star"][b], dtype=float)[idx]
        d = np.sqrt(np.asarray(record["delta_star"][b], dtype=float)[idx])
        out[rows] = m + (A[rows] - m - g * sv) / d
    H = X.copy()
    H[feats] = out
    return H


def estimate_batch(record: dict, X: pd.DataFrame, batch: str) -> dict:
    """A copy of ``record`` with ``batch``'s gamma*/delta* estimated from its cases ``X`` (no labels used).

    Standardises with the stored grand mean and pooled variance, then runs ComBat's per-batch parametric
    empirical Bayes (neuroCombat's ``aprior``, ``bprior``, ``it_sol``) exactly as for a training batch."""
    from neuroCombat.neuroCombat import aprior, bprior, it_sol

    from her2radiomics.modeling import norm_value

    b = norm_value(batch)
    if len(X) < 2:
        raise UserError(f"--harmonize-batch: batch {b!r} has {len(X)} case(s); ComBat needs >= 2 to estimate it")
    missing = [f for f in record["features"] if f not in X.columns]
    if missing:
        raise UserError(f"--harmonize-batch table lacks {len(missing)} harmonised feature column(s), e.g. "
                        f"{missing[0]!r}; use a table extracted like the training one")
    A = _numeric(X[record["features"]])
    A, _ = _fill_by_batch(A, np.array([b] * len(X), dtype=object))
    A = np.where(np.isnan(A), np.asarray(record["grand_mean"])[None, :], A)
    m = np.asarray(record["grand_mean"], dtype=float)
    sv = np.sqrt(np.asarray(record["var_pooled"], dtype=float))
    s = ((A - m) / sv).T                              # features x cases
    g_hat = s.mean(axis=1)
    d_hat = s.var(axis=1, ddof=1)
    d_hat[d_hat == 0] = 1.0
    g_bar, t2 = float(np.mean(g_hat)), float(np.var(g_hat, ddof=1))
    if not math.isfinite(t2) or t2 <= 0:
        raise UserError(f"--harmonize-batch: batch {b!r} gives no spread of batch effects; cannot estimate it")
    g_star, d_star = it_sol(s, g_hat, d_hat, g_bar, t2, aprior(d_hat), bprior(d_hat))
    out = {**record, "gamma_star": dict(record["gamma_star"]), "delta_star": dict(record["delta_star"]),
           "n_per_batch": dict(record["n_per_batch"])}
    out["gamma_star"][b] = np.asarray(g_star).tolist()
    out["delta_star"][b] = np.asarray(d_star).tolist()
    if b not in out["batches"]:
        out["batches"] = [*record["batches"], b]
    out["n_per_batch"][b] = int(len(X))
    out["estimated_from_new_cases"] = [*record.get("estimated_from_new_cases", []), b]
    return out
