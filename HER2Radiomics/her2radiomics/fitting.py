"""Training one stage model: the selection pipeline, the logistic regression refit and the model card.

Pipeline (Gao et al. 2026; docs/modeling.md), all fitted on the training split only:

1. candidates = the feature set's columns (``intra``, ``intra+peri{d}``, or ``all`` numeric columns);
2. ICC filter from a two-reader features table (keep ICC >= 0.75; ICC(2,1) by default, Shrout & Fleiss 1979);
3. non-finite values -> missing; median imputation with the *training* medians (stored in the card);
   columns constant on the training split are dropped;
4. optional Mann-Whitney U filter (keep p < ``mwu_p``; Mann & Whitney 1947);
5. z-score with the training mean and standard deviation (ddof = 0, as scikit-learn's StandardScaler);
6. LASSO: L1-penalised logistic regression (the binomial-family LASSO of glmnet; Tibshirani 1996,
   Friedman, Hastie & Tibshirani 2010) on a path of 20 penalties, 10-fold stratified CV, the penalty with
   the lowest mean held-out deviance (glmnet's ``lambda.min``; ``lambda_rule="1se"`` for the 1-SE rule);
   features with non-zero coefficients at that penalty on the whole training split are selected;
7. logistic regression refit on the selected z-scored features with a weak ridge (C = 10);
8. cut-off = maximum Youden index on the training probabilities (Youden 1950).
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from her2radiomics import __version__, stats
from her2radiomics.errors import UserError
from her2radiomics.evaluation import gdi_entry, split_metrics
from her2radiomics.modelcard import FORMAT, INTENDED_USE, predict_proba
from her2radiomics.selection import (
    icc_filter,
    icc_summary,
    lasso_path_record,
    lasso_select,
    missing_region_note,
    missing_regions,
)
from her2radiomics.splits import make_splits
from her2radiomics.targets import LabelledTable, LabelSpec, feature_columns, norm_value, norm_value_id

REFIT_C = 10.0



@dataclass
class TrainConfig:
    """Options of one training run (the CLI's flags)."""

    task: str = "stage1"
    feature_set: str = "intra"
    split: str = "random"
    test_size: float = 0.3
    test_center: str | None = None
    seed: int = 0
    icc_threshold: float = 0.75
    icc_kind: str = "2,1"
    mwu_p: float | None = None
    cv_folds: int = 10
    lambda_rule: str = "min"

    def to_json(self) -> dict:
        return dict(self.__dict__)

    def check(self) -> TrainConfig:
        """UserError (one line, naming the CLI flag) for an option out of range; returns ``self``."""
        if self.split == "center" and self.test_center is None:
            raise UserError("--split center needs --test-center VALUE (the centre forming the external test set)")
        if self.split != "center" and self.test_center is not None:
            raise UserError("--test-center is used only with --split center; add --split center or drop --test-center")
        if not 0 <= self.seed < 2**32:
            raise UserError(f"--seed must be an integer in [0, 4294967295], got {self.seed}")
        if self.cv_folds < 2:
            raise UserError(f"--cv-folds must be >= 2, got {self.cv_folds}")
        if not 0.0 <= self.icc_threshold <= 1.0:
            raise UserError(f"--icc-threshold must be in [0, 1], got {self.icc_threshold}")
        if self.mwu_p is not None and not 0.0 < self.mwu_p <= 1.0:
            raise UserError(f"--mwu-p must be in (0, 1], got {self.mwu_p}")
        return self



@dataclass
class Fit:
    """A fitted selection + logistic regression (arrays refer to the ``features`` order)."""

    features: list[str]
    mean: np.ndarray
    scale: np.ndarray
    median: np.ndarray
    coefficients: np.ndarray
    intercept: float
    selection: dict
    sklearn_model: Any = None          # in memory only (tests); never saved
    notes: list[str] = field(default_factory=list)



def _refit_logistic() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=REFIT_C, l1_ratio=0.0, solver="lbfgs", max_iter=5000, tol=1e-10)



def fit_model(X: pd.DataFrame, y: np.ndarray, candidates: Sequence[str], *, config: TrainConfig,
              icc_kept: Sequence[str] | None = None) -> Fit:
    """Fit the selection pipeline + logistic regression on training rows ``X`` (raw values) and ``y``."""
    from scipy.stats import mannwhitneyu

    y = np.asarray(y, dtype=int)
    notes: list[str] = []
    sel: dict[str, Any] = {
        "method": "ICC filter -> median imputation -> constant filter -> Mann-Whitney U -> z-score -> "
                  "LASSO (L1 logistic regression, 10-fold stratified CV) -> logistic regression",
        "estimator": "L1-penalised logistic regression (liblinear), binomial-family LASSO",
        "candidates": len(candidates),
        "icc_threshold": config.icc_threshold if icc_kept is not None else None,
        "icc_kind": config.icc_kind if icc_kept is not None else None,
    }
    cols = list(candidates)
    if icc_kept is not None:
        keep = set(icc_kept)
        cols = [c for c in cols if c in keep]
        if not cols:
            raise UserError(f"no candidate feature has ICC >= {config.icc_threshold}; check the ICC table or lower --icc-threshold")
    sel["n_after_icc"] = len(cols)
    A = np.array(X[cols].apply(pd.to_numeric, errors="coerce"), dtype=float)
    A[~np.isfinite(A)] = np.nan
    n_missing = int(np.isnan(A).sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(A, axis=0)
    ok = np.isfinite(med)
    A = np.where(np.isnan(A), med[None, :], A)
    ok &= np.ptp(np.where(np.isfinite(A), A, 0.0), axis=0) > 0
    n_const = int((~ok).sum())
    cols = [c for c, k in zip(cols, ok, strict=True) if k]
    A, med = A[:, ok], med[ok]
    if n_missing:
        notes.append(f"{n_missing} missing/non-finite training value(s) imputed with training medians")
    if n_const:
        notes.append(f"{n_const} feature(s) constant (or empty) on the training split dropped")
    if not cols:
        raise UserError("every candidate feature is constant or empty (all values missing) on the training split; "
                        "check the features table or choose another --feature-set")
    sel["n_missing_imputed"] = n_missing
    sel["n_constant_dropped"] = n_const
    sel["mwu_p"] = config.mwu_p
    if config.mwu_p is not None:
        p = mannwhitneyu(A[y == 1], A[y == 0], axis=0, alternative="two-sided").pvalue
        keep = np.asarray(p) < config.mwu_p
        if not keep.any():
            raise UserError(f"no feature passes the Mann-Whitney U filter p < {config.mwu_p}; raise --mwu-p or drop it")
        cols = [c for c, k in zip(cols, keep, strict=True) if k]
        A, med = A[:, keep], med[keep]
    sel["n_after_mwu"] = len(cols)
    mean = A.mean(axis=0)
    scale = A.std(axis=0)
    Z = (A - mean) / scale
    lasso = lasso_select(Z, y, folds=config.cv_folds, seed=config.seed, rule=config.lambda_rule)
    chosen = lasso["selected"]
    sel["fallback"] = None
    if not chosen:
        score = np.abs(Z.T @ (y - y.mean()))
        chosen = [int(np.argmax(score))]
        sel["fallback"] = (
            "LASSO selected no feature at the CV-chosen penalty (the null model had the best CV deviance: no "
            "reliable signal); kept the single feature that enters the L1 path first (largest |z^T (y - mean y)|)"
        )
        notes.append("LASSO selected no feature; fell back to the first feature of the L1 path (see the card)")
    sel.update({
        "C": lasso["C"], "alpha": 1.0 / (lasso["C"] * len(y)), "lambda_rule": config.lambda_rule,
        "cv_folds": lasso["folds"], "cv_curve": {"C": lasso["Cs"], "deviance": lasso["cv_deviance"],
                                                  "deviance_se": lasso["cv_deviance_se"], "auc": lasso["cv_auc"]},
        "n_selected": len(chosen),
        "refit": f"logistic regression, L2 penalty C={REFIT_C:g} on z-scored features (lbfgs)",
        "lasso_path": lasso_path_record(lasso["Cs"], lasso["path"], cols),
    })
    model = _refit_logistic().fit(Z[:, chosen], y)
    feats = [cols[j] for j in chosen]
    return Fit(features=feats, mean=mean[chosen], scale=scale[chosen], median=med[chosen],
               coefficients=model.coef_.ravel().copy(), intercept=float(model.intercept_[0]), selection=sel,
               sklearn_model=model, notes=notes)



@dataclass
class TrainResult:
    card: dict
    fit: Fit
    splits: dict[str, dict]     # split -> {"case_ids", "y", "probabilities"}
    notes: list[str]



def train(data: LabelledTable, config: TrainConfig, *, splits: dict[str, np.ndarray] | None = None,
          icc_table: pd.DataFrame | None = None, id_column: str = "case_id", provenance: dict | None = None,
          center_column: str = "center") -> TrainResult:
    """Train one model card for ``config.feature_set`` on ``data`` (splits computed unless given)."""
    if splits is None:
        splits = make_splits(data.y, method=config.split, test_size=config.test_size, seed=config.seed,
                             center=data.center, test_center=config.test_center, center_column=center_column)
    candidates = feature_columns(list(data.X.columns), config.feature_set, numeric=data.numeric)
    non_numeric = [c for c in candidates if c not in set(data.numeric)]
    if non_numeric:
        raise UserError(f"feature column {non_numeric[0]!r} is not numeric; remove it or fix the features table")
    notes = list(data.notes)
    if config.feature_set == "all":
        text_cols = [c for c in data.X.columns if c not in set(data.numeric)]
        if text_cols:
            notes.append(f"{len(text_cols)} non-numeric column(s) left out of 'all' (e.g. {text_cols[0]!r})")
    icc_kept = None
    sel_extra: dict[str, Any] = {}
    if icc_table is not None:
        icc_kept, iccs, icc_notes = icc_filter(icc_table, candidates, id_column, config.icc_threshold, config.icc_kind)
        notes += icc_notes
        sel_extra["icc_cases"] = icc_notes[0]
        readers = icc_table["reader"].map(norm_value)
        ids = icc_table[id_column].map(norm_value_id)
        n_both = len(set.intersection(*[set(ids[readers == r]) for r in readers.dropna().unique()]))
        sel_extra["icc"] = icc_summary({c: iccs.get(c, float("nan")) for c in candidates}, icc_kept,
                                       config.icc_threshold, config.icc_kind, n_both)
    tr = splits["train"]
    fit = fit_model(data.X.iloc[tr], data.y[tr], candidates, config=config, icc_kept=icc_kept)
    fit.selection.update(sel_extra)
    lacking = missing_regions(data.X, candidates, tr)
    if lacking:  # e.g. peri1 of a centre whose voxels are thicker than the ring (extract's FEATURES.notes.csv)
        fit.selection["missing_regions"] = lacking
        fit.notes[:0] = [missing_region_note(r, v, len(data.ids)) for r, v in lacking.items()]
    notes += fit.notes
    card: dict[str, Any] = {
        "format": FORMAT,
        "task": config.task,
        "classes": data.classes,
        "feature_set": config.feature_set,
        "features": fit.features,
        "scaler": {"mean": fit.mean.tolist(), "scale": fit.scale.tolist()},
        "coefficients": fit.coefficients.tolist(),
        "intercept": fit.intercept,
        "cutoff": 0.5,
        "imputation": {"strategy": "median", "values": fit.median.tolist()},
        "selection": fit.selection,
    }
    probs = {name: predict_proba(card, data.X.iloc[rows]) for name, rows in splits.items()}
    card["cutoff"] = float(stats.youden_cutoff(data.y[tr], probs["train"]))
    metrics = {name: split_metrics(data.y[rows], probs[name], card["cutoff"]) for name, rows in splits.items()}
    card["metrics"] = metrics
    card["gdi"] = {name: gdi_entry(metrics["train"]["auc"], m["auc"]) for name, m in metrics.items() if name != "train"}
    raw = np.array(data.X.iloc[tr][fit.features].apply(pd.to_numeric, errors="coerce"), dtype=float)
    raw[~np.isfinite(raw)] = np.nan
    card["training_range"] = {"min": np.nanmin(raw, axis=0).tolist(), "max": np.nanmax(raw, axis=0).tolist()}
    ids = np.asarray(data.ids, dtype=object)
    prov = {
        "software": f"her2radiomics {__version__} (scikit-learn {_sklearn_version()})",
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "parameter_file_hash": None,
        "training_table_hash": None,
        "seed": config.seed,
        "options": config.to_json(),
        "case_ids": {name: ids[rows].tolist() for name, rows in splits.items()},
    }
    prov.update(provenance or {})
    card["provenance"] = prov
    card["intended_use"] = INTENDED_USE
    card["notes"] = notes
    out_splits = {name: {"case_ids": ids[rows].tolist(), "y": data.y[rows].tolist(),
                         "probabilities": probs[name].tolist()} for name, rows in splits.items()}
    return TrainResult(card=card, fit=fit, splits=out_splits, notes=notes)



def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__



def rad_score_formula(card: dict, digits: int = 4) -> str:
    """The card's linear predictor written out: ``Rad-score = b0 + b1 * (x1 - mean1) / sd1 + ...`` with the raw
    feature columns, their training means and SDs (missing values are imputed with the card's training medians);
    P(event) = 1 / (1 + exp(-Rad-score))."""
    terms = [f"{float(card['intercept']):.{digits}f}"]
    for f, b, m, sd in zip(card["features"], card["coefficients"], card["scaler"]["mean"], card["scaler"]["scale"],
                           strict=True):
        sign = "-" if b < 0 else "+"
        terms.append(f"{sign} {abs(float(b)):.{digits}f} * ({f} - {float(m):.{digits}g}) / {float(sd):.{digits}g}")
    return "Rad-score = " + " ".join(terms)


def training_provenance(features: str | os.PathLike[str], labels: str | os.PathLike[str], spec: LabelSpec,
                        icc: str | os.PathLike[str] | None = None) -> dict:
    """The card's provenance of its input tables: parameter-file hash and resampling grid of the features
    (her2radiomics.provenance), ``io.file_hash`` of each table, the label options. Refuses an ICC table extracted
    with another parameter file or grid than the features table."""
    from her2radiomics.io import file_hash
    from her2radiomics.provenance import check_same, table_hash, table_resample

    phash = table_hash(features)
    grid = table_resample(features)
    if icc:
        check_same(phash, table_hash(icc, what="ICC table"), "features table", "ICC table")
        icc_grid = table_resample(icc, what="ICC table")
        if grid and icc_grid and grid != icc_grid:
            raise UserError(f"the ICC table's features were computed on grid {icc_grid!r} but the features table's on "
                            f"{grid!r}; extract both with the same --resample-spacing")
    prov = {
        "parameter_file_hash": phash,
        **({"resample": grid} if grid else {}),
        "training_table_hash": file_hash(features),
        "labels_table_hash": file_hash(labels),
        "training_table": Path(features).name,
        "labels": spec.to_json(),
    }
    if icc:
        prov["icc_table_hash"] = file_hash(icc)
    return prov
