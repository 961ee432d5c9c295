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
and ``v`` stay the training ones. One deviation, for this post-hoc step only: the prior's moments are taken over
the features whose variance ratio to ``v`` is within [1e-3, 1e3] (on Duke, 22 of 529 features are nearly constant
on GE and vary on Siemens, ratios up to 2.5e9, and pushed every delta* to ~5e4 otherwise). At *training* time the
unlabelled ``--harmonize-batch`` cases of a batch absent from the training split instead join the ComBat fit
(labels unused; the protocol of Orlhac et al. 2019), so that path is plain neuroCombat.

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
    from her2radiomics.targets import norm_value

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


def fit(X: pd.DataFrame, batch: Sequence, *, batch_column: str, allow_single: bool = False) -> dict:
    """Fit ComBat on every numeric column of ``X`` (cases x features) with ``batch`` per case -> card record.

    With ``allow_single`` a single batch (e.g. the training split of a centre split) is the *reference batch*
    (sva's ``ref.batch``, Zhang et al. BMC Bioinformatics 2018;19:262): its mean and variance are the grand mean
    and pooled variance, its own transform is the identity (gamma* = 0, delta* = 1), and other batches are
    then estimated onto it from their unlabelled cases (:func:`estimate_batch`)."""
    from neuroCombat import neuroCombat

    labels = _batch_labels(batch)
    levels = sorted(set(labels), key=str)
    counts = {b: int((labels == b).sum()) for b in levels}
    if len(levels) < 2 and not allow_single:
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
    if len(levels) == 1:
        b = levels[0]
        return _record(batch_column, [b], counts, use, len(cols), n_filled, filled.mean(axis=0), filled.var(axis=0),
                       {b: [0.0] * len(use)}, {b: [1.0] * len(use)}, reference=b)
    covars = pd.DataFrame({"batch": [levels.index(b) for b in labels]})
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = neuroCombat(dat=filled.T, covars=covars, batch_col="batch")
    est = res["estimates"]
    order = [int(v) for v in est["batches"]]          # integer codes, sorted = levels order
    gs, ds = np.asarray(est["gamma.star"]), np.asarray(est["delta.star"])
    return _record(batch_column, [levels[i] for i in order], counts, use, len(cols), n_filled,
                   np.asarray(est["stand.mean"])[:, 0], np.asarray(est["var.pooled"]).ravel(),
                   {levels[i]: gs[k].tolist() for k, i in enumerate(order)},
                   {levels[i]: ds[k].tolist() for k, i in enumerate(order)})


def _record(batch_column, batches, counts, use, n_cols, n_filled, grand_mean, var_pooled, gamma, delta,
            reference=None) -> dict:
    return {
        "method": METHOD,
        "implementation": IMPLEMENTATION,
        "reference": "Johnson WE, Li C, Rabinovic A. Biostatistics 2007;8:118-127; Fortin JP et al. NeuroImage 2018",
        "batch_column": batch_column,
        "reference_batch": reference,
        "batches": list(batches),
        "n_per_batch": {b: counts[b] for b in batches},
        "features": list(use),
        "n_unharmonised": int(n_cols - len(use)),
        "n_filled_for_estimation": n_filled,
        "grand_mean": np.asarray(grand_mean, dtype=float).tolist(),
        "var_pooled": np.asarray(var_pooled, dtype=float).tolist(),
        "gamma_star": gamma,
        "delta_star": delta,
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
    harmonised = pd.DataFrame(out, index=X.index, columns=feats)
    return pd.concat([X.drop(columns=feats), harmonised], axis=1)[list(X.columns)]


def estimate_batch(record: dict, X: pd.DataFrame, batch: str) -> dict:
    """A copy of ``record`` with ``batch``'s gamma*/delta* estimated from its cases ``X`` (no labels used).

    Standardises with the stored grand mean and pooled variance, then runs ComBat's per-batch parametric
    empirical Bayes (neuroCombat's ``aprior``, ``bprior``, ``it_sol``) exactly as for a training batch."""
    from neuroCombat.neuroCombat import aprior, bprior, it_sol

    from her2radiomics.targets import norm_value

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
    # ComBat's moment estimates of the priors (across features); features whose variance ratio to the stored
    # pooled variance is degenerate (< 1e-3 or > 1e3: nearly constant in the fitted batches) are left out of
    # those moments only, which would otherwise be dominated by them (they still get their own estimates)
    ok = (d_hat > 1e-3) & (d_hat < 1e3)
    if ok.sum() < 3:
        raise UserError(f"--harmonize-batch: batch {b!r} gives no usable spread of batch effects; cannot estimate it")
    g_bar, t2 = float(np.mean(g_hat[ok])), float(np.var(g_hat[ok], ddof=1))
    if not math.isfinite(t2) or t2 <= 0:
        raise UserError(f"--harmonize-batch: batch {b!r} gives no spread of batch effects; cannot estimate it")
    g_star, d_star = it_sol(s, g_hat, d_hat, g_bar, t2, aprior(d_hat[ok]), bprior(d_hat[ok]))
    out = {**record, "gamma_star": dict(record["gamma_star"]), "delta_star": dict(record["delta_star"]),
           "n_per_batch": dict(record["n_per_batch"])}
    out["gamma_star"][b] = np.asarray(g_star).tolist()
    out["delta_star"][b] = np.asarray(d_star).tolist()
    if b not in out["batches"]:
        out["batches"] = [*record["batches"], b]
    out["n_per_batch"][b] = int(len(X))
    out["estimated_from_new_cases"] = [*record.get("estimated_from_new_cases", []), b]
    return out


# ============================================================================================ command hooks
def batch_lookup(ids: Sequence[str], batch_column: str, tables: Sequence[tuple[str, str]]) -> np.ndarray:
    """The batch value of every case id, from the first of ``tables`` (``[(path, id_column), ...]``) that has
    ``batch_column``; one line when none has it or a case has no value."""
    from her2radiomics.labels import load_clinical
    from her2radiomics.targets import norm_value_id

    last = None
    for path, id_col in tables:
        if not path:
            continue
        try:
            t = load_clinical(path, [batch_column], id_col, what="batch")
        except UserError as exc:
            last = exc
            continue
        vals = {norm_value_id(i): v for i, v in zip(t.index, t[batch_column], strict=True)}
        out = np.array([vals.get(str(i), "") for i in ids], dtype=object)
        blank = [str(i) for i, v in zip(ids, out, strict=True) if str(v).strip() == ""]
        if blank:
            raise UserError(f"{len(blank)} case(s) have no {batch_column!r} value (e.g. {blank[0]!r}); ComBat needs "
                            "the batch of every case")
        return out
    raise last or UserError(f"no table has the batch column {batch_column!r}; fix --batch-column")


def harmonize_cohort_X(X: pd.DataFrame, batch: np.ndarray, train_rows: np.ndarray, columns: Sequence[str],
                       batch_column: str, extra: tuple[pd.DataFrame, np.ndarray] | None = None
                       ) -> tuple[pd.DataFrame, dict]:
    """Fit ComBat on the training rows' ``columns`` and harmonise every row of ``X``.

    A batch present only outside the training rows is estimated from ``extra`` (``--harmonize-batch``: its
    unlabelled cases and their batch values), else refused with one line."""
    from her2radiomics.targets import norm_value

    cols = list(columns)
    Xt, bt = X.iloc[train_rows][cols], np.asarray(batch, dtype=object)[train_rows]
    trained = {norm_value(v) for v in bt}
    needed = [b for b in dict.fromkeys(norm_value(v) for v in batch) if b not in trained]
    if needed and extra is None:
        raise unknown_batch_error(fit(Xt, bt, batch_column=batch_column, allow_single=True), needed[0])
    if needed:  # the unlabelled cases of the batches absent from training join the ComBat fit (labels unused)
        Xe, be = extra
        missing = [c for c in cols if c not in Xe.columns]
        if missing:
            raise UserError(f"--harmonize-batch table lacks feature column {missing[0]!r}; use a table extracted "
                            "like the training one")
        parts, labels = [Xt], [bt]
        for b in needed:
            rows = np.array([norm_value(v) == b for v in be], dtype=bool)
            if not rows.any():
                raise UserError(f"--harmonize-batch table has no case of batch {b!r}; add that batch's cases")
            parts.append(Xe[rows][cols])
            labels.append(np.asarray(be, dtype=object)[rows])
        rec = fit(pd.concat(parts, axis=0), np.concatenate(labels), batch_column=batch_column)
        rec["estimated_from_new_cases"] = needed
    else:
        rec = fit(Xt, bt, batch_column=batch_column, allow_single=True)
    return apply(rec, X, batch), rec
