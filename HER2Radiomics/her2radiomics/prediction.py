"""Stage-wise (soft cascade) HER2 prediction from two model cards, with per-feature contributions.

Stage 1 gives ``p1 = P(HER2-positive)``; stage 2 gives ``p2 = P(HER2-low | HER2-negative)``. Following
the recommendation of Gao et al. 2026 (BMC Cancer, doi:10.1186/s12885-026-15688-x) to report probabilistic
rather than hard cascaded outputs, the three-class probabilities are

    P(positive) = p1,   P(low) = (1 - p1) * p2,   P(zero) = (1 - p1) * (1 - p2)

(the law of total probability over the stage-1 outcome; they sum to 1). Each stage is also *called* at its
stored cut-off (maximum Youden index on the training set; ``p >= cutoff`` -> event, as in
``stats.binary_metrics``). Stage 2 is always computed; when stage 1 calls a case positive the stage-2 result
is kept but flagged, because stage 2 was trained on HER2-negative cases only.

Contributions: a logistic model's log-odds is ``intercept + sum_i beta_i * z_i`` with
``z_i = (x_i - mean_i) / scale_i`` (the training z-score); ``beta_i * z_i`` is the contribution of feature i
to the log-odds relative to an average training case (z = 0). Contributions plus the intercept sum exactly to
``logit(p)`` (Hosmer, Lemeshow & Sturdivant, *Applied Logistic Regression*, 3rd ed., 2013, ch. 1-3).

Random forest and SVM cards (``classifier`` record, :mod:`her2radiomics.classifiers`): contributions are exact
Shapley values instead: TreeSHAP of P(event) for a forest (base value + contributions = p, column ``scale`` =
``probability``), baseline Shapley of the Platt log-odds for an SVM (base value + contributions = logit(p)); the
``stageN_intercept`` column then holds the base value and ``coefficient`` is empty.

Trust signals: the generalisation decay index zone of each model (GDI, Gao et al. 2026: safe <= 15%,
warning 15-20%, high >= 20%), features outside the training range (extrapolation), and hard errors for
missing features, missing values and cards built from different pyradiomics parameter files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from her2radiomics.errors import UserError
from her2radiomics.modelcard import card_notice, gdi_zones, load_model_card, worst_zone
from her2radiomics.provenance import card_hash, short

#: columns of the long contributions table
CONTRIBUTION_COLUMNS = ("case_id", "stage", "feature", "value", "z", "coefficient", "contribution")
_MAX_NAMES = 5


@dataclass
class StageResult:
    """One stage's numbers for every case (arrays aligned with the features rows)."""

    stage: str                     # "stage1" | "stage2"
    card: dict
    probability: np.ndarray        # P(event)
    log_odds: np.ndarray           # intercept + sum(contributions)
    calls: list[str]
    values: np.ndarray             # (n_cases, n_features) raw values
    z: np.ndarray                  # (n_cases, n_features)
    contributions: np.ndarray      # (n_cases, n_features)
    imputed: list[tuple[int, str]] = field(default_factory=list)   # (row, feature) filled from the card
    base: float | None = None      # RF/SVM cards: the base value of the contributions (LR: the intercept)
    scale: str = "log-odds"        # what the contributions add up to: log-odds (LR, SVM) or probability (RF)


@dataclass
class Prediction:
    """Result of :func:`predict`.

    ``table``: one row per case with ``case_id, p_positive, p_low, p_zero, stage1_call, stage2_call`` and
    then ``p1, p2, stage1_logit, stage2_logit, stage1_cutoff, stage2_cutoff, stage2_flagged, cascade_call,
    most_likely, stage1_gdi_zone, stage2_gdi_zone, n_out_of_range, warnings, stage1_intercept, stage2_intercept,
    parameter_file_hash, intended_use``. ``stageN_logit`` = ``stageN_intercept`` + the stage's contributions.
    ``contributions``: long format ``case_id, stage, feature, value, z, coefficient, contribution`` (+ ``label``),
    sorted per case and stage by decreasing absolute contribution.
    ``warnings``: every warning, each prefixed with its case id.
    """

    table: pd.DataFrame
    contributions: pd.DataFrame
    warnings: list[str]
    case_warnings: dict[str, list[str]] = field(default_factory=dict)
    stages: dict[str, StageResult] = field(default_factory=dict)
    intercepts: dict[str, float] = field(default_factory=dict)
    intended_use: list[str] = field(default_factory=list)

    def summary(self, case_id: str, top: int = 5) -> str:
        """Per-case plain-text summary (probabilities, calls, GDI zones, top contributions, warnings)."""
        return case_summary(self, case_id, top=top)


# ----------------------------------------------------------------------------------------------------
# readable feature names

_REGION_RE = re.compile(r"^peri(\d+(?:\.\d+)?)$")
_CLASS_LABELS = {
    "firstorder": "first-order", "shape": "shape", "shape2D": "shape 2D", "glcm": "GLCM", "glrlm": "GLRLM",
    "glszm": "GLSZM", "gldm": "GLDM", "ngtdm": "NGTDM",
}
_SIMPLE_FILTERS = {
    "original": "original", "square": "square", "squareroot": "square root", "logarithm": "logarithm",
    "exponential": "exponential", "gradient": "gradient",
}


def region_label(region: str) -> str:
    """``intra`` -> ``lesion``; ``peri3`` -> ``3 mm shell``; anything else unchanged."""
    if region == "intra":
        return "lesion"
    m = _REGION_RE.match(region)
    if m:
        return f"{float(m.group(1)):g} mm shell"
    return region


def filter_label(image_type: str) -> str:
    """Readable pyradiomics image type: ``wavelet-LLH`` -> ``wavelet LLH``, ``log-sigma-3-0-mm-3D`` -> ``LoG σ 3 mm``."""
    if image_type in _SIMPLE_FILTERS:
        return _SIMPLE_FILTERS[image_type]
    if image_type.startswith("wavelet"):
        return "wavelet " + image_type.split("-", 1)[1] if "-" in image_type else "wavelet"
    m = re.match(r"^log-sigma-(\d+)-(\d+)-mm-3D$", image_type)
    if m:
        return f"LoG σ {float(m.group(1) + '.' + m.group(2)):g} mm"
    if image_type.startswith("lbp-"):
        return "LBP " + image_type[4:].replace("-", " ")
    return image_type


def feature_label(name: str) -> str:
    """Readable label for a feature column ``{region}_{image type}_{class}_{feature}``.

    ``"peri3_wavelet-LLH_glcm_Contrast"`` -> ``"3 mm shell · wavelet LLH · GLCM · Contrast"``. Names that do
    not follow the pyradiomics pattern (e.g. a generic table's columns) are returned unchanged.
    """
    parts = str(name).split("_", 3)
    if len(parts) == 4 and parts[2] in _CLASS_LABELS:
        region, image_type, cls, feat = parts
        return f"{region_label(region)} · {filter_label(image_type)} · {_CLASS_LABELS[cls]} · {feat}"
    if len(parts) == 3 and parts[1] in _CLASS_LABELS:  # a plain pyradiomics name without region
        image_type, cls, feat = parts
        return f"{filter_label(image_type)} · {_CLASS_LABELS[cls]} · {feat}"
    return str(name)


# ----------------------------------------------------------------------------------------------------
# model cards (read with modelcard.load_model_card; GDI zones and notices from modelcard)


def _event_and_other(card: Mapping[str, Any], stage: str) -> tuple[str, str]:
    """Call names: the card's event class, and ``negative`` (HER2 stage 1), the single reference class, or ``not-EVENT``."""
    classes = card.get("classes") or {}
    event = str(classes.get("event") or ("positive" if stage == "stage1" else "low"))
    ref = classes.get("reference") or []
    if stage == "stage1" and event == "positive":
        other = "negative"
    elif isinstance(ref, list) and len(ref) == 1:
        other = str(ref[0])
    elif stage == "stage2" and event == "low":
        other = "zero"
    else:
        other = f"not-{event}"
    return event, other


def check_compatible(stage1: Mapping[str, Any], stage2: Mapping[str, Any] | None = None,
                     parameter_file_hash: str | None = None) -> None:
    """Raise UserError when the cards (or the features table) come from different parameter files.

    Also rejects swapped cards (a ``stage2`` card given as stage 1 or the reverse); ``custom`` cards pass.
    """
    t1 = stage1.get("task")
    if t1 == "stage2":
        raise UserError("the --stage1 card is a stage-2 (low vs zero) model; give the stage-1 (positive vs negative) card")
    if stage2 is not None and stage2.get("task") == "stage1":
        raise UserError("the --stage2 card is a stage-1 (positive vs negative) model; give the stage-2 (low vs zero) card")
    h1 = card_hash(stage1)
    h2 = card_hash(stage2) if stage2 is not None else None
    if h1 and h2 and h1 != h2:
        raise UserError(
            f"the stage-1 and stage-2 cards were trained on features from different parameter files ({short(h1)} vs "
            f"{short(h2)}); use cards trained on the same features"
        )
    if parameter_file_hash:
        for name, h in (("stage-1", h1), ("stage-2", h2)):
            if h and h != parameter_file_hash:
                raise UserError(
                    f"the features were extracted with parameter file {short(parameter_file_hash)} but the {name} card was trained "
                    f"with {short(h)}; re-extract with the card's parameter file"
                )


# ----------------------------------------------------------------------------------------------------
# prediction


def _case_ids(features: pd.DataFrame) -> list[str]:
    if "case_id" in features.columns:
        ids = features["case_id"].astype(str)
    else:
        ids = pd.Series(features.index.astype(str), index=features.index)
    if "reader" in features.columns:
        readers = features["reader"].astype(str).replace({"nan": "", "None": ""})
        if ids.duplicated().any():
            ids = ids.where(readers == "", ids + "/" + readers)
    if ids.duplicated().any():
        dup = ids[ids.duplicated()].unique().tolist()
        raise UserError(f"case ids repeat in the features table ({', '.join(dup[:_MAX_NAMES])}); give one row per case")
    return ids.tolist()


def _name_list(names: list[str]) -> str:
    head = ", ".join(names[:_MAX_NAMES])
    return head + (f" and {len(names) - _MAX_NAMES} more" if len(names) > _MAX_NAMES else "")


def _matrix(features: pd.DataFrame, card: dict, stage: str, ids: list[str]) -> tuple[np.ndarray, list[tuple[int, str]]]:
    names = [str(f) for f in card["features"]]
    missing = [f for f in names if f not in features.columns]
    if missing:
        raise UserError(
            f"the features table lacks {len(missing)} of the {len(names)} features the {stage} model needs: "
            f"{_name_list(missing)}; extract them with the card's parameter file and regions"
        )
    block = features[names].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    bad = ~np.isfinite(block)
    if bad.any():
        # Policy: no silent imputation. A model card may declare an imputation (``imputation.values``, one per
        # feature, e.g. the training median); otherwise a missing/non-numeric value is an error naming it.
        imp = card.get("imputation")
        values = imp.get("values") if isinstance(imp, Mapping) else None
        if values is None or len(values) != len(names):
            rows, cols = np.nonzero(bad)
            where = [f"{ids[r]}: {names[c]}" for r, c in zip(rows, cols, strict=True)]
            raise UserError(
                f"{len(where)} missing or non-numeric feature value(s) for the {stage} model ({_name_list(where)}); "
                "fix or re-extract those cases"
            )
        fill = np.broadcast_to(np.asarray(values, float), block.shape)
        block = np.where(bad, fill, block)
        rows, cols = np.nonzero(bad)
        return block, [(int(r), names[c]) for r, c in zip(rows, cols, strict=True)]
    return block, []


def _stage(features: pd.DataFrame, card: dict, stage: str, ids: list[str]) -> StageResult:
    x, imputed = _matrix(features, card, stage, ids)
    mean = np.asarray(card["scaler"]["mean"], float)
    scale = np.asarray(card["scaler"]["scale"], float)
    z = (x - mean) / scale
    base, out_scale = None, "log-odds"
    if card.get("classifier") is not None:
        # hook (issue 15a): RF/SVM cards; contributions + base = P(event) (RF, TreeSHAP) or log-odds (SVM)
        from her2radiomics import classifiers

        contrib, base, out = classifiers.contributions(card["classifier"], z)
        out_scale = classifiers.output_scale(card["classifier"])
        p = classifiers.predict_proba(card["classifier"], z)
        # the logit column; an RF probability of exactly 0 or 1 is clipped to [1e-9, 1 - 1e-9] for it
        lp = out if out_scale == "log-odds" else np.log(np.clip(p, 1e-9, 1 - 1e-9) / np.clip(1 - p, 1e-9, 1 - 1e-9))
    else:
        coef = np.asarray(card["coefficients"], float)
        contrib = z * coef
        lp = float(card["intercept"]) + contrib.sum(axis=1)
        p = expit(lp)
    event, other = _event_and_other(card, stage)
    cut = float(card["cutoff"])
    calls = [event if pi >= cut else other for pi in p]
    return StageResult(stage, card, p, lp, calls, x, z, contrib, imputed, base, out_scale)


_FEATURE_REGION = re.compile(r"^(intra|peri\d+(?:\.\d+)?)_")


def _imputed_messages(names: list[str], card_features: list[str]) -> list[str]:
    """Warnings for imputed features; a region whose every model feature is missing (e.g. peri1 of a case whose
    voxels are thicker than the ring, extract's FEATURES.notes.csv) gets one line instead of one per feature."""
    if not names:
        return []

    def region(f: str) -> str | None:
        m = _FEATURE_REGION.match(str(f))
        return m.group(1) if m else None

    missing = set(names)
    whole = [r for r in dict.fromkeys(region(f) for f in names)
             if r is not None and sum(region(f) == r for f in card_features) >= 2
             and all(f in missing for f in card_features if region(f) == r)]
    out = []
    for r in whole:
        feats = [f for f in card_features if region(f) == r]
        out.append(f"the {region_label(r)} ({r}) is missing for this case: its {len(feats)} model feature(s) were imputed "
                   "with the card's training medians")
    out += [f"{n} is missing and was imputed with the card's training median" for n in names if region(n) not in whole]
    return out


def _out_of_range(res: StageResult) -> dict[int, list[str]]:
    """Messages per case row for every selected feature outside the card's training range."""
    rng = res.card.get("training_range") or {}
    if rng.get("min") is None or rng.get("max") is None:
        return {}
    lo, hi = np.asarray(rng["min"], float), np.asarray(rng["max"], float)
    out: dict[int, list[str]] = {}
    names = res.card["features"]
    for i, j in zip(*np.nonzero((res.values > hi) | (res.values < lo)), strict=True):
        v = res.values[i, j]
        if v > hi[j]:
            msg = _range_message(names[j], v, hi[j], "above", "maximum", hi[j] - lo[j])
        else:
            msg = _range_message(names[j], v, lo[j], "below", "minimum", hi[j] - lo[j])
        out.setdefault(int(i), []).append(msg)
    return out


def _range_message(name: str, v: float, bound: float, word: str, which: str, width: float) -> str:
    diff = abs(v - bound)
    if abs(bound) > 1e-12:
        pct = 100 * diff / abs(bound)
        how = f"{pct:.0f}%" if pct >= 10 else f"{pct:.2g}%"
    elif width > 0:
        how = f"{diff / width:.2g} training ranges"
    else:
        how = f"{diff:.3g}"
    return f"{name} = {v:.4g} is {how} {word} the training {which} {bound:.4g}"


def predict(features: pd.DataFrame, stage1: Mapping[str, Any] | str | Path,
            stage2: Mapping[str, Any] | str | Path | None = None, *,
            parameter_file_hash: str | None = None) -> Prediction:
    """Stage-wise soft cascade with per-feature contributions.

    Parameters
    ----------
    features : DataFrame with ``case_id`` (optional ``reader``) and the cards' feature columns.
    stage1, stage2 : model cards (dicts or paths); stage 2 optional (then ``p_low``/``p_zero`` are NaN).
    parameter_file_hash : the features table's ``parameter_file_hash`` (FEATURES.meta.json), checked against the cards.

    Raises UserError for missing features, missing values, or incompatible cards.
    """
    card1 = load_model_card(stage1, name="stage-1 model card")
    card2 = load_model_card(stage2, name="stage-2 model card") if stage2 is not None else None
    check_compatible(card1, card2, parameter_file_hash)
    if any(c is not None and c.get("harmonization") for c in (card1, card2)) and not features.attrs.get("harmonized"):
        raise UserError("the model card was trained on ComBat-harmonised features; predict its cases with "
                        "'her2radiomics predict --harmonize combat' (this path does not harmonise)")  # issue 15
    if len(features) == 0:
        raise UserError("the features table has no rows; give at least one case")
    ids = _case_ids(features)
    r1 = _stage(features, card1, "stage1", ids)
    r2 = _stage(features, card2, "stage2", ids) if card2 is not None else None

    event1, _ = _event_and_other(card1, "stage1")
    flagged = np.array([c == event1 for c in r1.calls]) & (r2 is not None)
    zone1, zone2 = worst_zone(card1), (worst_zone(card2) if card2 is not None else "")
    case_warnings = _case_warnings(ids, r1, r2, flagged, zone1, zone2)
    table = _cascade_table(ids, r1, r2, flagged)
    table["stage1_gdi_zone"] = zone1
    table["stage2_gdi_zone"] = zone2
    table["n_out_of_range"] = [sum("extrapolation" in m for m in case_warnings[c]) for c in ids]
    table["warnings"] = [" | ".join(case_warnings[c]) for c in ids]
    table["stage1_intercept"] = _base(r1)
    table["stage2_intercept"] = _base(r2) if r2 is not None else np.nan
    # the features' parameter file (or, when the table does not say, the one the cards were trained with)
    table["parameter_file_hash"] = parameter_file_hash or card_hash(card1) or ""
    contributions = _contributions_table(ids, [r for r in (r1, r2) if r is not None])
    intended = list(dict.fromkeys(card_notice(card) for card in (card1, card2) if card is not None))
    table["intended_use"] = " ".join(intended)
    warnings = [f"{cid}: {m}" for cid in ids for m in case_warnings[cid]]
    stages = {"stage1": r1} | ({"stage2": r2} if r2 is not None else {})
    intercepts = {s: _base(r) for s, r in stages.items()}
    return Prediction(table, contributions, warnings, case_warnings, stages, intercepts, intended)


def _case_warnings(ids: list[str], r1: StageResult, r2: StageResult | None, flagged: np.ndarray,
                   zone1: str, zone2: str) -> dict[str, list[str]]:
    """Every case's warnings: extrapolation, imputed features, a flagged stage 2, a high-GDI model."""
    ranges = {"stage 1": _out_of_range(r1), "stage 2": _out_of_range(r2) if r2 is not None else {}}
    imputed: dict[str, dict[int, list[str]]] = {label: {} for label in ranges}
    for res, label in ((r1, "stage 1"), (r2, "stage 2")):
        for r, name in (res.imputed if res is not None else []):
            imputed[label].setdefault(r, []).append(name)
    case_warnings: dict[str, list[str]] = {}
    for i, cid in enumerate(ids):
        w: list[str] = []
        for res, label in ((r1, "stage 1"), (r2, "stage 2")):
            if res is None:
                continue
            w += [f"{label}: {m} (extrapolation; treat the {label} probability with caution)" for m in ranges[label].get(i, [])]
            w += [f"{label}: {m}" for m in _imputed_messages(imputed[label].get(i, []), res.card["features"])]
        if flagged[i]:
            w.append(
                "stage 1 calls HER2-positive: the stage-2 (low vs zero) result is shown for information only, "
                "it was trained on HER2-negative cases"
            )
        for res, zone, label in ((r1, zone1, "stage 1"), (r2, zone2, "stage 2")):
            if res is not None and zone == "high":
                w.append(f"{label} model has a high generalisation decay (GDI >= 20%) on a test split")
        case_warnings[cid] = w
    return case_warnings


def _cascade_table(ids: list[str], r1: StageResult, r2: StageResult | None, flagged: np.ndarray) -> pd.DataFrame:
    """The three-class probabilities (law of total probability over stage 1), the calls and the log-odds."""
    p1 = r1.probability
    p2 = r2.probability if r2 is not None else np.full(len(ids), np.nan)
    table = pd.DataFrame({
        "case_id": ids,
        "p_positive": p1,
        "p_low": (1 - p1) * p2,
        "p_zero": (1 - p1) * (1 - p2),
        "stage1_call": r1.calls,
        "stage2_call": r2.calls if r2 is not None else [""] * len(ids),
        "p1": p1,
        "p2": p2,
        # log-odds per stage: intercept + the sum of that stage's contributions (PRED.contributions.csv) = logit(p)
        "stage1_logit": r1.log_odds,
        "stage2_logit": r2.log_odds if r2 is not None else np.full(len(ids), np.nan),
        "stage1_cutoff": float(r1.card["cutoff"]),
        "stage2_cutoff": float(r2.card["cutoff"]) if r2 is not None else np.nan,
        "stage2_flagged": flagged,
    })
    if r2 is not None:
        table["cascade_call"] = [c1 if f else c2 for c1, c2, f in zip(r1.calls, r2.calls, flagged, strict=True)]
        probs = table[["p_positive", "p_low", "p_zero"]].to_numpy()
        table["most_likely"] = np.array(["positive", "low", "zero"])[probs.argmax(axis=1)]
    else:
        table["cascade_call"] = r1.calls
        table["most_likely"] = ""
    return table


def _contributions_table(ids: list[str], results: list[StageResult]) -> pd.DataFrame:
    """Long format, per case and stage sorted by decreasing absolute contribution (stable for ties)."""
    blocks = []
    for res in results:
        names = np.asarray([str(f) for f in res.card["features"]], dtype=object)
        labels = np.asarray([feature_label(f) for f in names], dtype=object)
        coef = (np.asarray(res.card["coefficients"], float) if res.card.get("coefficients") is not None
                else np.full(len(names), np.nan))  # RF/SVM cards have no coefficient
        order = np.argsort(-np.abs(res.contributions), axis=1, kind="stable")  # rank within each case
        k = len(names)
        blocks.append(pd.DataFrame({
            "case_id": np.repeat(np.asarray(ids, dtype=object), k),
            "stage": res.stage,
            "feature": names[order].ravel(),
            "value": np.take_along_axis(res.values, order, 1).ravel(),
            "z": np.take_along_axis(res.z, order, 1).ravel(),
            "coefficient": coef[order].ravel(),
            "contribution": np.take_along_axis(res.contributions, order, 1).ravel(),
            "label": labels[order].ravel(),
        }))
    contributions = pd.concat(blocks, ignore_index=True)
    scales = {r.stage: r.scale for r in results if r.base is not None}
    if scales:  # issue 15a: an RF/SVM stage says what its contributions add up to (LR tables unchanged)
        contributions["scale"] = contributions["stage"].map(lambda st: scales.get(st, "log-odds"))
    return contributions


def _base(res: StageResult) -> float:
    """The value the stage's contributions start from: the LR intercept, or an RF/SVM card's base value."""
    return float(res.card["intercept"]) if res.base is None else float(res.base)


# ----------------------------------------------------------------------------------------------------
# text summary


def _zones_text(card: Mapping[str, Any]) -> str:
    zones = gdi_zones(card)
    if not zones:
        return "GDI not recorded"
    return ", ".join(f"{s} {'?' if v is None else f'{100 * v:.0f}%'} ({z})" for s, (v, z) in zones.items())


def case_summary(pred: Prediction, case_id: str, top: int = 5) -> str:
    """Plain-text summary of one case (what the CLI prints)."""
    row = pred.table.loc[pred.table["case_id"] == str(case_id)]
    if row.empty:
        raise UserError(f"case {case_id} is not in the prediction; choose one of the features table's case ids")
    r = row.iloc[0]
    lines = [f"case {r['case_id']}"]
    has2 = "stage2" in pred.stages
    if has2:
        lines.append(
            f"  P(positive) = {r['p_positive']:.3f}   P(low) = {r['p_low']:.3f}   P(zero) = {r['p_zero']:.3f}"
            f"   (most likely: HER2-{r['most_likely']})"
        )
    else:
        lines.append(f"  P(positive) = {r['p_positive']:.3f}   (no stage-2 card: low/zero not split)")
    lines.append(f"  stage 1: p1 = {r['p1']:.3f} vs cut-off {r['stage1_cutoff']:.3f} -> {r['stage1_call']}"
                 f"   GDI: {_zones_text(pred.stages['stage1'].card)}")
    if has2:
        flag = "   [flagged: stage 1 called positive]" if r["stage2_flagged"] else ""
        lines.append(f"  stage 2: p2 = P(low | negative) = {r['p2']:.3f} vs cut-off {r['stage2_cutoff']:.3f} -> "
                     f"{r['stage2_call']}{flag}   GDI: {_zones_text(pred.stages['stage2'].card)}")
    c = pred.contributions
    for stage in pred.stages:
        sub = c[(c["case_id"] == str(case_id)) & (c["stage"] == stage)].head(top)
        res = pred.stages[stage]
        what = "P(event)" if res.scale == "probability" else "the log-odds"
        start = "intercept" if res.base is None else "base value"
        lines.append(f"  top {stage} contributions to {what} ({start} {pred.intercepts[stage]:+.3f}):")
        for _, s in sub.iterrows():
            lines.append(f"    {s['contribution']:+.3f}  {s['label']}  (value {s['value']:.4g}, z {s['z']:+.2f})")
    for w in pred.case_warnings.get(str(case_id), []):
        lines.append(f"  warning: {w}")
    for text in pred.intended_use:
        lines.append(f"  intended use: {text}")
    return "\n".join(lines)
