"""A model card's metrics on labelled cases: AUC with DeLong CI, accuracy/sensitivity/specificity at the card's
cut-off, GDI, calibration, and paired DeLong comparison of several cards on the same cases."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from her2radiomics import stats
from her2radiomics.errors import UserError
from her2radiomics.modelcard import predict_proba
from her2radiomics.targets import LabelledTable


def split_metrics(y: np.ndarray, prob: np.ndarray, cutoff: float) -> dict:
    """n, n_event, AUC with 95% DeLong CI, and accuracy/sensitivity/specificity at ``cutoff``."""
    y = np.asarray(y, dtype=int)
    auc, lo, hi = stats.delong_ci(y, prob)
    bm = stats.binary_metrics(y, prob, cutoff)
    return {"n": int(y.size), "n_event": int(y.sum()), "auc": float(auc), "auc_ci": [float(lo), float(hi)],
            "accuracy": float(bm["accuracy"]), "sensitivity": float(bm["sensitivity"]),
            "specificity": float(bm["specificity"])}



def gdi_entry(auc_train: float, auc_test: float) -> dict:
    """{"value": GDI fraction, "zone": safe|warning|high} (stats.gdi, stats.gdi_zone)."""
    g = float(stats.gdi(auc_train, auc_test))
    return {"value": g, "zone": stats.gdi_zone(g)}



def calibration_record(y: np.ndarray, prob: np.ndarray) -> dict:
    """Calibration of one split: slope and intercept (stats.calibration_slope_intercept), Brier score, and the
    Hosmer-Lemeshow test with 10 groups (5 below 50 cases), whose p-value depends on that grouping."""
    y = np.asarray(y, dtype=int)
    prob = np.asarray(prob, dtype=float)
    cal = stats.calibration_slope_intercept(y, prob)
    out = {"slope": cal["slope"] if math.isfinite(cal["slope"]) else None, "intercept": cal["intercept"],
           "separation": cal["separation"], "brier": stats.brier_score(y, prob)}
    groups = 10 if y.size >= 50 else 5
    try:
        hl = stats.hosmer_lemeshow(y, prob, groups=groups)
        out["hosmer_lemeshow"] = {"statistic": hl["statistic"] if math.isfinite(hl["statistic"]) else None,
                                  "df": hl["df"], "p": hl["p"], "groups": hl["groups"], "groups_asked": groups}
    except UserError as exc:
        out["hosmer_lemeshow"] = {"statistic": None, "df": None, "p": None, "groups": 0, "groups_asked": groups,
                                  "reason": str(exc)}
    return out



def missing_value_notes(card: dict, X: pd.DataFrame) -> list[str]:
    """Notes on the card's feature values that prediction imputes (missing, non-numeric or non-finite), so a
    table with a wrongly named or empty column does not give a quietly degraded AUC."""
    feats = [f for f in card["features"] if f in X.columns]
    A = X[feats].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(A)
    if not bad.any():
        return []
    notes = [f"{int(bad.sum())} missing/non-numeric value(s) of the model's features imputed with the card's training "
             "medians"]
    empty = [f for f, col in zip(feats, bad.T, strict=True) if col.all()]
    if empty:
        notes.append(f"feature(s) {', '.join(empty[:3])} have no usable value in this table, so every case got the "
                     "training median (the model runs without them); check the features table")
    return notes



def evaluate(card: dict, data: LabelledTable) -> dict:
    """Metrics of a card on every case of ``data`` at the card's cut-off, with the GDI vs its training AUC."""
    prob = predict_proba(card, data.X)
    y = data.y
    if np.bincount(y, minlength=2).min() < 2:
        raise UserError(f"the evaluation cases hold {int(y.sum())} event / {int((1 - y).sum())} reference case(s); "
                        "each class needs at least 2")
    m = split_metrics(y, prob, float(card["cutoff"]))
    train_auc = float(card["metrics"]["train"]["auc"])
    ids = data.ids
    overlap = training_overlap(card, ids)
    out = {"model": {"task": card["task"], "feature_set": card["feature_set"], "classes": card["classes"],
                     "n_features": len(card["features"]), "cutoff": card["cutoff"], "checksum": card.get("checksum")},
           "metrics": m, "train_auc": train_auc, "gdi": gdi_entry(train_auc, m["auc"]),
           "n_training_cases_evaluated": overlap,
           "predictions": {"case_ids": ids, "y": y.tolist(), "probabilities": prob.tolist()},
           "notes": list(data.notes) + missing_value_notes(card, data.X)}
    if overlap:
        out["notes"].append(f"{overlap} of the {len(ids)} evaluated cases were used to train this model; "
                            "their AUC is optimistic")
    return out



def training_overlap(card: dict, ids: Sequence[str]) -> int:
    """How many of ``ids`` the card was trained on (``provenance.case_ids.train``): metrics on them are optimistic."""
    train_ids = set((card.get("provenance") or {}).get("case_ids", {}).get("train", []))
    return sum(1 for i in ids if i in train_ids)



def restrict_to_split(data: LabelledTable, card: dict, split: str) -> LabelledTable:
    """The cases of ``data`` that the card recorded for ``split`` (provenance.case_ids)."""
    recorded = card["provenance"]["case_ids"]
    if split not in recorded:
        raise UserError(f"the model card has no split {split!r} (it has {', '.join(recorded)}); fix --cases")
    want = set(recorded[split])
    rows = np.array([i in want for i in data.ids], dtype=bool)
    missing = len(want) - int(rows.sum())
    notes = list(data.notes)
    if missing:
        notes.append(f"{missing} of the card's {split} cases are not in these tables")
    if not rows.any():
        raise UserError(f"none of the card's {split} cases is in these tables; check the tables and --id-column")
    return LabelledTable(X=data.X[rows], y=data.y[rows], center=None if data.center is None else data.center[rows],
                  classes=data.classes, numeric=data.numeric, notes=notes)



def compare(cards: Sequence[dict], names: Sequence[str], data: LabelledTable) -> dict:
    """Pairwise DeLong tests (stats.delong_test) of the cards' AUCs on the same cases."""
    y = data.y
    probs = [predict_proba(c, data.X) for c in cards]
    return stats.delong_matrix(y, probs, names)


def check_card_features(card: dict, features: str | os.PathLike[str], card_name: str = "model card") -> None:
    """Refuse (one line) a features table extracted with another parameter file or resampling grid than the card's
    (the table's provenance column or its sidecar; her2radiomics.provenance)."""
    from her2radiomics.provenance import check_card, check_card_resample, table_hash, table_resample

    check_card(card, table_hash(features), card_name)
    check_card_resample(card, table_resample(features), card_name)


def format_auc(m: dict) -> str:
    """``AUC (lo-hi)`` of a metrics record (:func:`split_metrics`), three decimals."""
    lo, hi = m["auc_ci"]
    return f"{m['auc']:.3f} ({lo:.3f}-{hi:.3f})"


def format_delong(result: dict) -> str:
    """A DeLong matrix (``stats.delong_matrix``) as text: AUC per model, then every pair's AUC difference
    (row - column) and p-value."""
    names = result["models"]
    w = max(12, *(len(n) for n in names))
    lines = [f"DeLong comparison on {result['n']} cases ({result['n_event']} events)"]
    lines += [f"  {n:<{w}} AUC {a:.3f}" for n, a in zip(names, result["auc"], strict=True)]
    lines.append(f"  {'A':<{w}} {'B':<{w}} {'AUC A-B':>8} {'p':>8}")
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            p = result["p"][i][j]
            star = " *" if p < 0.05 else ""
            lines.append(f"  {names[i]:<{w}} {names[j]:<{w}} {result['diff'][i][j]:>+8.3f} {p:>8.4f}{star}")
    return "\n".join(lines)
