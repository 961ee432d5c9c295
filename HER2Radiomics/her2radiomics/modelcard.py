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

from her2radiomics import DEMO_MODEL_NOTICE, NOT_FOR_CLINICAL_USE
from her2radiomics.errors import UserError
from her2radiomics.io import require_file, write_text

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
#: GDI zones from the best to the worst (Gao et al. 2026: safe <= 15%, warning 15-20%, high >= 20%)
ZONE_ORDER = ("safe", "warning", "high")
#: the one colour of each GDI zone (report figures and badges, the Slicer panel, the web page); white text is
#: written on them, so "warning" is a dark orange (contrast 3.1:1 with white) rather than an amber (2:1)
ZONE_COLOURS = {"safe": "#2e7d32", "warning": "#ef6c00", "high": "#c62828", "unknown": "#757575"}


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
    _check_format(card, where)
    _check_checksum(card, where, require_checksum)
    _check_fields(card, where)
    n = _check_features(card, where)
    _check_linear_model(card, n, where)
    _check_ranges(card, n, where)
    _check_metrics(card["metrics"], where)
    _check_gdi(card["gdi"], where)
    _check_provenance(card, where)
    return card


def _check_format(card: Any, where: str) -> None:
    """A JSON object of this version's ``format``."""
    if not isinstance(card, dict):
        raise UserError(f"{where} is not a HER2Radiomics model card (expected a JSON object)")
    fmt = card.get("format")
    if fmt != FORMAT:
        if isinstance(fmt, str) and fmt.startswith("her2radiomics.model/"):
            raise UserError(f"model card {where} has format {fmt!r}, this version reads {FORMAT!r}; update HER2Radiomics")
        raise UserError(f"{where} is not a HER2Radiomics model card (format {fmt!r}, expected {FORMAT!r})")


def _check_checksum(card: dict, where: str, require_checksum: bool) -> None:
    """The stored checksum equals :func:`card_checksum` (a card being saved may have none yet)."""
    if "checksum" in card or require_checksum:
        stored = card.get("checksum")
        if not isinstance(stored, str):
            raise UserError(f"model card {where} has no checksum; re-train the model or restore the original file")
        if stored != card_checksum(card):
            raise UserError(
                f"model card {where} was modified after it was saved (checksum mismatch); "
                "re-train or restore the original file"
            )


def _check_fields(card: dict, where: str) -> None:
    """Every required field, a known task and the class names."""
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


def _check_features(card: dict, where: str) -> int:
    """Distinct non-empty feature names; returns their number."""
    feats = card["features"]
    if not isinstance(feats, list) or not feats or not all(isinstance(f, str) and f for f in feats):
        raise _fail(where, "'features' must be a non-empty list of names")
    if len(set(feats)) != len(feats):
        dup = next(f for f in feats if feats.count(f) > 1)
        raise _fail(where, f"feature {dup!r} appears twice")
    return len(feats)


def _check_linear_model(card: dict, n: int, where: str) -> None:
    """Scaler (positive scales), coefficients, intercept and a cut-off in [0, 1], one value per feature."""
    sc = card["scaler"]
    if not isinstance(sc, dict):
        raise _fail(where, "'scaler' must be {\"mean\": [...], \"scale\": [...]}")
    _num_list(sc.get("mean"), n, where, "scaler.mean")
    scale = _num_list(sc.get("scale"), n, where, "scaler.scale")
    if any(s <= 0 for s in scale):
        raise _fail(where, "'scaler.scale' values must be > 0")
    if card.get("classifier") is not None:
        # --- hook (issue 15a): an RF/SVM card has null coefficients/intercept and a 'classifier' record
        from her2radiomics import classifiers

        if card["coefficients"] is not None or card["intercept"] is not None:
            raise _fail(where, "a card with a 'classifier' record must have null 'coefficients' and 'intercept'")
        classifiers.validate(card["classifier"], n, where)
    else:
        _num_list(card["coefficients"], n, where, "coefficients")
        _num(card["intercept"], where, "intercept")
    cut = _num(card["cutoff"], where, "cutoff")
    if not 0.0 <= cut <= 1.0:
        raise _fail(where, f"'cutoff' must be a probability in [0, 1], got {cut}")
    if not isinstance(card["selection"], dict):
        raise _fail(where, "'selection' must be an object")


def _check_ranges(card: dict, n: int, where: str) -> None:
    """Training range (min <= max) and the optional median imputation, one value per feature."""
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


def _check_metrics(metrics: Any, where: str) -> None:
    """Every split's metrics (at least ``train``): proportions in [0, 1], a two-sided AUC interval, counts."""
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


def _check_gdi(gdi: Any, where: str) -> None:
    """Every split's GDI: a number and one of the zones."""
    if not isinstance(gdi, dict):
        raise _fail(where, "'gdi' must be an object")
    for split, g in gdi.items():
        if not isinstance(g, dict) or g.get("zone") not in ZONE_ORDER:
            raise _fail(where, f"gdi.{split} must be {{\"value\": number, \"zone\": safe|warning|high}}")
        _num(g.get("value"), where, f"gdi.{split}.value")


def _check_provenance(card: dict, where: str) -> None:
    """Provenance keys, case ids per split and an intended use that says 'not for clinical use'."""
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


def load_model_card(path_or_dict: str | os.PathLike[str] | Mapping[str, Any], *, name: str | None = None) -> dict:
    """Read (or take) a card and validate it; refuses modified cards (checksum) and malformed ones.

    The one reader of card files (the CLI, ``prediction.predict``, the Slicer panel and the web page all read
    cards here). ``name`` (e.g. ``"stage-1 model card"``) names an in-memory card in messages:
    ``(stage-1 model card, in memory)``; a file is named by its path.
    """
    if isinstance(path_or_dict, Mapping):
        return validate_model_card(dict(path_or_dict), f"({name}, in memory)" if name else "(in memory)")
    p = require_file(path_or_dict, "model card {p} is a folder; give the card's JSON file (written by 'train')",
                     "model card not found: {p}; check the path")
    try:
        card = json.loads(p.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise UserError(f"{p} is not a valid JSON model card ({str(exc).splitlines()[0]}); give a card written by 'train'") from None
    return validate_model_card(card, str(p))


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


# --------------------------------------------------------------------------------------------- what a card says
def gdi_zones(card: Mapping[str, Any]) -> dict[str, tuple[float | None, str]]:
    """``{split: (gdi fraction, zone)}`` for every non-training split stored in the card.

    A split without a stored zone gets :func:`her2radiomics.stats.gdi_zone` of its value.
    """
    out: dict[str, tuple[float | None, str]] = {}
    for split, entry in (card.get("gdi") or {}).items():
        if isinstance(entry, Mapping):
            value = entry.get("value")
            zone = entry.get("zone")
            if zone is None and value is not None:
                from her2radiomics.stats import gdi_zone

                zone = gdi_zone(float(value))
            out[str(split)] = (None if value is None else float(value), str(zone))
    return out


def worst_zone(card: Mapping[str, Any]) -> str:
    """The worst GDI zone over the card's test splits ("unknown" when the card has none)."""
    zones = [z for _, z in gdi_zones(card).values() if z in ZONE_ORDER]
    if not zones:
        return "unknown"
    return max(zones, key=ZONE_ORDER.index)


def card_notice(card: Mapping[str, Any] | None) -> str:
    """The intended-use notice shown with a card's results: its ``intended_use``, always saying 'not for clinical
    use' (no card: the generic notice)."""
    if not card:
        return NOT_FOR_CLINICAL_USE
    text = str(card.get("intended_use") or DEMO_MODEL_NOTICE)
    if "not for clinical use" not in text.lower():
        text = f"{text} {NOT_FOR_CLINICAL_USE}"
    return text


def parameter_file_for_card(card: Mapping[str, Any] | str | os.PathLike[str], folder: str | os.PathLike[str] | None = None,
                            verify: bool | None = None) -> Path | None:
    """The shipped pyradiomics parameter file a model card was trained with.

    Cards record ``provenance.parameter_file_hash`` (``features.parameter_file_hash``) and the file's name
    (``provenance.parameter_file``). With PyYAML and pyradiomics installed (``verify``, default: when
    importable) the first file of Resources/Parameters with that hash is returned. Before they are
    installed (a fresh Slicer, before the dependency prompt) nothing is imported: the file named by the
    card is returned when it exists, and the hash is checked later (the features carry their parameter
    hash and ``predict`` refuses a card trained with another one). None when nothing matches. A card path is
    read with :func:`load_model_card` (a refused card gives None).
    """
    from her2radiomics.resources import resources_dir

    if not isinstance(card, Mapping):
        try:
            card = load_model_card(card)
        except UserError:
            return None
    prov = card.get("provenance") or {}
    want = prov.get("parameter_file_hash")
    if not want:
        return None
    try:
        base = Path(folder) if folder else resources_dir() / "Parameters"
    except UserError:
        return None
    if not (_features_importable() if verify is None else verify):
        named = prov.get("parameter_file")
        path = base / Path(str(named)).name if named else None
        return path if path is not None and path.is_file() else None
    from her2radiomics.features import load_params, parameter_file_hash

    for path in sorted(base.glob("*")):
        if path.suffix.lower() not in (".yaml", ".yml", ".json"):
            continue
        try:
            if parameter_file_hash(load_params(path)) == want:
                return path
        except UserError:
            continue
    return None


def _features_importable() -> bool:
    """True when parameter files can be read and hashed here (PyYAML and pyradiomics installed), found without
    importing them."""
    import importlib.util

    def found(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # blocked (sys.modules[name] = None) or a parent package missing
            return False

    return found("yaml") and found("radiomics")


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


def standardized(card: Mapping[str, Any], X: pd.DataFrame, *, impute: bool = True) -> np.ndarray:
    """The card's z-scored features ``(x - mean) / scale`` (after imputation) for every row of ``X``."""
    A = design_matrix(card, X, impute=impute)
    return (A - np.asarray(card["scaler"]["mean"], float)) / np.asarray(card["scaler"]["scale"], float)


def linear_predictor(card: Mapping[str, Any], X: pd.DataFrame, *, impute: bool = True) -> np.ndarray:
    """Rad-score: ``intercept + sum_i beta_i * (x_i - mean_i) / scale_i`` for every row of ``X``."""
    if card.get("classifier") is not None:  # hook (issue 15a): RF/SVM cards have no linear predictor
        raise UserError(f"this model card is a {card['classifier'].get('type')} model: it has no linear predictor "
                        "(Rad-score); use predict_proba")
    z = standardized(card, X, impute=impute)
    return float(card["intercept"]) + z @ np.asarray(card["coefficients"], float)


def predict_proba(card: Mapping[str, Any], X: pd.DataFrame, *, impute: bool = True) -> np.ndarray:
    """P(event) = logistic(linear predictor), computed stably for large |logit|; an RF/SVM card (``classifier``
    record) predicts with :func:`her2radiomics.classifiers.predict_proba` on the same z-scored features."""
    if card.get("classifier") is not None:  # hook (issue 15a)
        from her2radiomics import classifiers

        return classifiers.predict_proba(card["classifier"], standardized(card, X, impute=impute))
    eta = linear_predictor(card, X, impute=impute)
    out = np.empty_like(eta)
    pos = eta >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-eta[pos]))
    e = np.exp(eta[~pos])
    out[~pos] = e / (1.0 + e)
    return out
