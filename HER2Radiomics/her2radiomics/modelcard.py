"""Model cards: the JSON file that fully describes one trained stage model (no pickle, ever).

A card holds everything needed to predict (feature names, training means/scales, coefficients, intercept,
cut-off, training medians for imputation) and everything needed to judge the model (selection steps, metrics
per split, GDI, training range, provenance, intended use). Its ``checksum`` field is the SHA-256 of the
canonical JSON of every other field, so any edit after saving (e.g. one coefficient changed by hand) is
detected and the card is refused.

Schema: ``docs/developer/api.md`` ("Model card") and ``docs/modeling.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from her2radiomics.errors import UserError
from her2radiomics.io import write_text

if TYPE_CHECKING:  # pandas is imported where a table is used: reading a card must work in a fresh 3D Slicer,
    import pandas as pd  # which bundles numpy but not pandas (the panel loads cards before its dependency prompt)

FORMAT = "her2radiomics.model/1"
#: the two HER2 stages (labels.stage_target); a card may also hold a generic ("custom") target
STAGE_TASKS = ("stage1", "stage2")
TASKS = (*STAGE_TASKS, "custom")
INTENDED_USE = (
    "Research software: not for clinical use. Estimates the probability of the event class from DCE-MRI "
    "radiomics features for research on retrospective cohorts; it must not guide the diagnosis or treatment "
    "of any patient."
)
_REQUIRED = (
    "format", "task", "classes", "feature_set", "features", "scaler", "coefficients", "intercept", "cutoff",
    "selection", "metrics", "gdi", "training_range", "provenance", "intended_use",
)
_METRIC_KEYS = ("n", "n_event", "auc", "auc_ci", "accuracy", "sensitivity", "specificity")


# --------------------------------------------------------------------------------------------- checksum
def canonical_json(card: Mapping[str, Any]) -> str:
    """The canonical JSON text the checksum is computed over (sorted keys, no spaces, no NaN)."""
    body = {k: v for k, v in card.items() if k != "checksum"}
    try:
        return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UserError(f"model card holds a value that is not plain finite JSON ({exc}); fix the card") from None


def card_checksum(card: Mapping[str, Any]) -> str:
    """``"sha256:<hex>"`` of :func:`canonical_json` (every field except ``checksum``)."""
    return "sha256:" + hashlib.sha256(canonical_json(card).encode("utf-8")).hexdigest()


def jsonable(obj: Any) -> Any:
    """Convert numpy/pandas scalars and arrays (recursively) to plain JSON types; reject NaN/inf."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        if not math.isfinite(f):
            raise ValueError(f"non-finite number {f} cannot go into a model card")
        return f
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a model card")


# --------------------------------------------------------------------------------------------- validation
def _fail(where: str, what: str) -> UserError:
    return UserError(f"model card {where} is invalid: {what}; re-train the model or restore the original file")


def _num(x: Any, where: str, field: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(float(x)):
        raise _fail(where, f"'{field}' must be a finite number, got {x!r}")
    return float(x)


def _num_list(x: Any, n: int | None, where: str, field: str) -> list[float]:
    if not isinstance(x, list):
        raise _fail(where, f"'{field}' must be a list of numbers")
    if n is not None and len(x) != n:
        raise _fail(where, f"'{field}' has {len(x)} values for {n} features")
    return [_num(v, where, f"{field}[{i}]") for i, v in enumerate(x)]


def validate_model_card(card: Any, where: str = "(in memory)", *, require_checksum: bool = True) -> dict:
    """Check a card's format version, checksum, schema, types, finiteness and lengths.

    Raises :class:`UserError` with one line naming the card and the problem. The checksum is checked
    before the schema so that any hand edit is reported as such.
    """
    if not isinstance(card, dict):
        raise UserError(f"{where} is not a HER2Radiomics model card (expected a JSON object)")
    fmt = card.get("format")
    if fmt != FORMAT:
        if isinstance(fmt, str) and fmt.startswith("her2radiomics.model/"):
            raise UserError(f"model card {where} has format {fmt!r}, this version reads {FORMAT!r}; update HER2Radiomics")
        raise UserError(f"{where} is not a HER2Radiomics model card (format {fmt!r}, expected {FORMAT!r})")
    if "checksum" in card or require_checksum:
        stored = card.get("checksum")
        if not isinstance(stored, str):
            raise UserError(f"model card {where} has no checksum; re-train the model or restore the original file")
        if stored != card_checksum(card):
            raise UserError(
                f"model card {where} was modified after it was saved (checksum mismatch); "
                "re-train or restore the original file"
            )
    missing = [k for k in _REQUIRED if k not in card]
    if missing:
        raise _fail(where, f"missing field(s) {', '.join(missing)}")
    if card["task"] not in TASKS:
        raise _fail(where, f"'task' must be one of {', '.join(TASKS)}")
    cls = card["classes"]
    if (not isinstance(cls, dict) or not isinstance(cls.get("event"), str) or not isinstance(cls.get("reference"), list)
            or not all(isinstance(r, str) for r in cls["reference"])):
        raise _fail(where, "'classes' must be {\"event\": str, \"reference\": [str, ...]}")
    if not isinstance(card["feature_set"], str):
        raise _fail(where, "'feature_set' must be a string")
    feats = card["features"]
    if not isinstance(feats, list) or not feats or not all(isinstance(f, str) and f for f in feats):
        raise _fail(where, "'features' must be a non-empty list of names")
    if len(set(feats)) != len(feats):
        dup = next(f for f in feats if feats.count(f) > 1)
        raise _fail(where, f"feature {dup!r} appears twice")
    n = len(feats)
    sc = card["scaler"]
    if not isinstance(sc, dict):
        raise _fail(where, "'scaler' must be {\"mean\": [...], \"scale\": [...]}")
    _num_list(sc.get("mean"), n, where, "scaler.mean")
    scale = _num_list(sc.get("scale"), n, where, "scaler.scale")
    if any(s <= 0 for s in scale):
        raise _fail(where, "'scaler.scale' values must be > 0")
    _num_list(card["coefficients"], n, where, "coefficients")
    _num(card["intercept"], where, "intercept")
    cut = _num(card["cutoff"], where, "cutoff")
    if not 0.0 <= cut <= 1.0:
        raise _fail(where, f"'cutoff' must be a probability in [0, 1], got {cut}")
    if not isinstance(card["selection"], dict):
        raise _fail(where, "'selection' must be an object")
    tr = card["training_range"]
    if not isinstance(tr, dict):
        raise _fail(where, "'training_range' must be {\"min\": [...], \"max\": [...]}")
    lo = _num_list(tr.get("min"), n, where, "training_range.min")
    hi = _num_list(tr.get("max"), n, where, "training_range.max")
    if any(a > b for a, b in zip(lo, hi, strict=True)):
        raise _fail(where, "'training_range' has min > max")
    imp = card.get("imputation")
    if imp is not None:
        if not isinstance(imp, dict) or imp.get("strategy") != "median":
            raise _fail(where, "'imputation' must be {\"strategy\": \"median\", \"values\": [...]}")
        _num_list(imp.get("values"), n, where, "imputation.values")
    metrics = card["metrics"]
    if not isinstance(metrics, dict) or "train" not in metrics:
        raise _fail(where, "'metrics' must hold at least the 'train' split")
    for split, m in metrics.items():
        if not isinstance(m, dict):
            raise _fail(where, f"metrics.{split} must be an object")
        for key in _METRIC_KEYS:
            if key not in m:
                raise _fail(where, f"metrics.{split} lacks '{key}'")
        ci = m["auc_ci"]
        if not isinstance(ci, list) or len(ci) != 2:
            raise _fail(where, f"metrics.{split}.auc_ci must be [low, high]")
        for key in ("auc", "accuracy", "sensitivity", "specificity"):
            v = _num(m[key], where, f"metrics.{split}.{key}")
            if not 0.0 <= v <= 1.0:
                raise _fail(where, f"metrics.{split}.{key} must be in [0, 1]")
        _num_list(ci, 2, where, f"metrics.{split}.auc_ci")
        _num(m["n"], where, f"metrics.{split}.n")
        _num(m["n_event"], where, f"metrics.{split}.n_event")
    gdi = card["gdi"]
    if not isinstance(gdi, dict):
        raise _fail(where, "'gdi' must be an object")
    for split, g in gdi.items():
        if not isinstance(g, dict) or g.get("zone") not in ("safe", "warning", "high"):
            raise _fail(where, f"gdi.{split} must be {{\"value\": number, \"zone\": safe|warning|high}}")
        _num(g.get("value"), where, f"gdi.{split}.value")
    prov = card["provenance"]
    if not isinstance(prov, dict):
        raise _fail(where, "'provenance' must be an object")
    for key in ("software", "created", "training_table_hash", "case_ids"):
        if key not in prov:
            raise _fail(where, f"provenance lacks '{key}'")
    if not isinstance(prov["case_ids"], dict):
        raise _fail(where, "provenance.case_ids must map split -> [case ids]")
    if not isinstance(card["intended_use"], str) or "not for clinical use" not in card["intended_use"].lower():
        raise _fail(where, "'intended_use' must state that the model is not for clinical use")
    return card


def save_model_card(card: dict, path: str | os.PathLike[str]) -> None:
    """Validate ``card``, add/refresh its ``checksum`` and write it atomically as indented JSON."""
    try:
        body = jsonable({k: v for k, v in card.items() if k != "checksum"})
    except (TypeError, ValueError) as exc:
        raise UserError(f"cannot save model card {path}: {exc}") from None
    validate_model_card(body, str(path), require_checksum=False)
    body["checksum"] = card_checksum(body)
    card["checksum"] = body["checksum"]
    write_text(json.dumps(body, indent=2, allow_nan=False) + "\n", path)


def load_model_card(path_or_dict: str | os.PathLike[str] | Mapping[str, Any]) -> dict:
    """Read (or take) a card and validate it; refuses modified cards (checksum) and malformed ones."""
    if isinstance(path_or_dict, Mapping):
        return validate_model_card(dict(path_or_dict))
    p = Path(path_or_dict)
    if p.is_dir():
        raise UserError(f"model card {p} is a folder; give the card's JSON file (written by 'train')")
    if not p.is_file():
        raise UserError(f"model card not found: {p}; check the path")
    try:
        card = json.loads(p.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise UserError(f"{p} is not a valid JSON model card ({str(exc).splitlines()[0]}); give a card written by 'train'") from None
    return validate_model_card(card, str(p))


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


# --------------------------------------------------------------------------------------------- prediction
def design_matrix(card: Mapping[str, Any], X: pd.DataFrame, *, impute: bool = True) -> np.ndarray:
    """The card's features from ``X`` as a float matrix (rows of X, columns in card order).

    Non-finite or missing values are replaced by the card's training medians (``imputation``) when
    ``impute`` and the card has them; otherwise they raise :class:`UserError`.
    """
    feats = list(card["features"])
    missing = [f for f in feats if f not in X.columns]
    if missing:
        raise UserError(
            f"features table lacks {len(missing)} of the model's {len(feats)} features (e.g. {missing[0]!r}); "
            "extract features with the same parameter file and regions as the training table"
        )
    import pandas as pd

    try:
        A = X[feats].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise UserError(f"model features are not numeric: {exc}") from None
    bad = ~np.isfinite(A)
    if bad.any():
        imp = card.get("imputation")
        if not impute or not imp:
            j = int(np.argwhere(bad)[0][1])
            raise UserError(
                f"{int(bad.sum())} missing/non-finite value(s) in the model's features (e.g. {feats[j]!r}) and the "
                "card has no imputation values; fill them in"
            )
        med = np.asarray(imp["values"], dtype=float)
        A = np.where(bad, med[None, :], A)
    return A


def linear_predictor(card: Mapping[str, Any], X: pd.DataFrame, *, impute: bool = True) -> np.ndarray:
    """Rad-score: ``intercept + sum_i beta_i * (x_i - mean_i) / scale_i`` for every row of ``X``."""
    A = design_matrix(card, X, impute=impute)
    z = (A - np.asarray(card["scaler"]["mean"], float)) / np.asarray(card["scaler"]["scale"], float)
    return float(card["intercept"]) + z @ np.asarray(card["coefficients"], float)


def predict_proba(card: Mapping[str, Any], X: pd.DataFrame, *, impute: bool = True) -> np.ndarray:
    """P(event) = logistic(linear predictor), computed stably for large |logit|."""
    eta = linear_predictor(card, X, impute=impute)
    out = np.empty_like(eta)
    pos = eta >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-eta[pos]))
    e = np.exp(eta[~pos])
    out[~pos] = e / (1.0 + e)
    return out
