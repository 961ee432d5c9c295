"""One self-contained HTML report of a study (stage 1 and/or 2) and optional predictions.

Every figure is drawn with matplotlib (Agg backend) and embedded as a base64 PNG, so the file can be mailed
or archived alone. Contents per study: model table (AUC with DeLong 95% CI, accuracy, sensitivity,
specificity, GDI with zone), ROC curves per feature set and split, the DeLong p-value matrix (DeLong,
DeLong & Clarke-Pearson 1988, Biometrics 44:837), calibration curves (observed vs predicted by quantile bins;
Steyerberg, *Clinical Prediction Models*, 2nd ed., 2019, ch. 15), decision curves (net benefit
``TP/n - FP/n * pt / (1 - pt)``; Vickers & Elkin 2006, Med Decis Making 26:565), GDI bars with the zones
safe <= 15% < warning < 20% <= high (Gao et al. 2026, BMC Cancer), and the selected features with their
coefficients. Per-case sections show the stage-wise probabilities and a contributions chart. Every section
carries the intended-use line.

Study input (``load_study``): the JSON written by ``her2radiomics study`` (see docs/modeling.md), read through
:func:`normalize_study`, whose canonical form is documented in docs/report.md.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from her2radiomics import NOT_FOR_CLINICAL_USE, __version__, stats  # noqa: E402
from her2radiomics.errors import UserError  # noqa: E402
from her2radiomics.evaluation import calibration_record  # noqa: E402
from her2radiomics.fitting import rad_score_formula  # noqa: E402
from her2radiomics.modelcard import load_model_card  # noqa: E402
from her2radiomics.prediction import feature_label  # noqa: E402

ZONE_COLOURS = {"safe": "#2e7d32", "warning": "#f9a825", "high": "#c62828", "unknown": "#757575"}
_STYLES = ["-", "--", "-.", ":"]
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
STAGE_TITLES = {"stage1": "Stage 1: HER2-positive vs HER2-negative",
                "stage2": "Stage 2: HER2-low vs HER2-zero (among HER2-negative)"}


# ----------------------------------------------------------------------------------------------------
# study input


def _card_from(entry: Mapping[str, Any], base: Path | None) -> dict:
    card = entry.get("card")
    if card is None:
        path = entry.get("model_card") or entry.get("card_path") or entry.get("model") or entry.get("path")
        if path is None:
            raise UserError("a study model has no 'model_card' or 'card'; give a study.json from 'her2radiomics study'")
        p = Path(path)
        if not p.is_absolute() and base is not None:
            p = base / p
        if not p.exists():
            raise UserError(f"study refers to model card {p}, which does not exist; keep the study folder together")
        card = load_model_card(p)  # the same validation (schema, checksum) as predict/evaluate
    return dict(card)


def _scores_from(entry: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    raw = entry.get("scores") or entry.get("predictions") or entry.get("splits") or {}
    out: dict[str, dict[str, np.ndarray]] = {}
    for split, s in raw.items():
        if isinstance(s, Mapping):
            ids = next((s[k] for k in ("case_id", "case_ids") if s.get(k) is not None), [])
            y = next((s[k] for k in ("y", "label", "labels") if s.get(k) is not None), None)
            prob = next((s[k] for k in ("prob", "probabilities", "probability", "p") if s.get(k) is not None), None)
        else:  # list of {case_id, y, prob} rows
            rows = list(s)
            ids = [r.get("case_id") for r in rows]
            y = [r.get("y", r.get("label")) for r in rows]
            prob = [r.get("prob", r.get("p")) for r in rows]
        if y is None or prob is None:
            continue
        y_arr, p_arr = np.asarray(y, float), np.asarray(prob, float)
        if len(y_arr) != len(p_arr):
            raise UserError(f"study split {split}: {len(y_arr)} labels but {len(p_arr)} probabilities; re-run the study")
        out[str(split)] = {"case_id": np.asarray(ids, str), "y": y_arr.astype(int), "prob": p_arr}
    return out


def normalize_study(obj: Mapping[str, Any], base: Path | None = None) -> dict:
    """Bring a study JSON to the canonical form ``{task, title, models: [{name, card, scores}], delong}``.

    ``models`` may be a list of entries or a mapping ``feature_set -> entry``; each entry holds ``card`` (or
    ``card_path`` relative to the study file) and ``scores``/``predictions`` ``{split: {case_id, y, prob}}``.
    ``delong`` (optional) ``{split: {"names": [...], "p": [[...]]}}`` is computed when absent.
    """
    models_raw = obj.get("models") or obj.get("feature_sets") or obj.get("results")
    if not models_raw:
        raise UserError("study has no models; give a study.json from 'her2radiomics study'")
    items = list(models_raw.items()) if isinstance(models_raw, Mapping) else [(None, m) for m in models_raw]
    models = []
    for key, entry in items:
        card = _card_from(entry, base)
        name = str(entry.get("feature_set") or entry.get("name") or key or card.get("feature_set"))
        extra = {split: {k: v for k, v in (e or {}).items() if k in ("bootstrap", "calibration")}
                 for split, e in (entry.get("splits") or {}).items() if isinstance(e, Mapping)}
        models.append({"name": name, "card": card, "scores": _scores_from(entry), "split_extras": extra,
                       "funnel": entry.get("funnel")})
    task = str(obj.get("task") or models[0]["card"].get("task") or "custom")
    classes = obj.get("classes") or models[0]["card"].get("classes") or {}
    title = STAGE_TITLES.get(task, f"Study ({task})")
    if classes.get("event") and classes.get("event") not in ("positive", "low"):
        title = f"{task}: {classes['event']} vs {', '.join(map(str, classes.get('reference') or []))}"
    return {
        "task": task,
        "title": str(obj.get("title") or title),
        "models": models,
        "delong": obj.get("delong") or {},
        "intended_use": obj.get("intended_use"),
        "chosen": obj.get("chosen") or obj.get("selected_model") or obj.get("recommended"),
        "notes": list(obj.get("notes") or []),
        "methods": {k: obj.get(k) for k in ("cohort_table", "parameter_file", "seed", "split", "icc", "bootstrap",
                                            "provenance", "classes", "software", "case_ids", "y")},
    }


def load_study(path: str | Path) -> dict:
    p = Path(path)
    if not p.exists():
        raise UserError(f"study file not found: {p}; run 'her2radiomics study' first")
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read study {p}: {exc}; give the study.json written by 'her2radiomics study'") from None
    return normalize_study(obj, p.parent)


# ----------------------------------------------------------------------------------------------------
# curves (plotting helpers; the statistics themselves come from her2radiomics.stats when available)


def roc_points(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empirical ROC curve (FPR, TPR) over all distinct thresholds, ties grouped (Fawcett 2006)."""
    y = np.asarray(y, int)
    order = np.argsort(-np.asarray(score, float), kind="mergesort")
    s, yy = np.asarray(score, float)[order], y[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp = np.cumsum(yy)[distinct]
    fp = (distinct + 1) - tp
    npos, nneg = max(int(y.sum()), 1), max(int((1 - y).sum()), 1)
    return np.r_[0.0, fp / nneg], np.r_[0.0, tp / npos]


def calibration_points(y: np.ndarray, prob: np.ndarray, n_bins: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean predicted, observed fraction, count) per quantile bin (``stats.calibration_curve``)."""
    c = stats.calibration_curve(y, prob, n_bins=n_bins, strategy="quantile")
    return np.asarray(c["mean_predicted"], float), np.asarray(c["observed"], float), np.asarray(c["count"], float)


def net_benefit(y: np.ndarray, prob: np.ndarray, thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """Decision curve (Vickers & Elkin 2006; ``stats.decision_curve``)."""
    d = stats.decision_curve(y, prob, thresholds)
    return {k: np.asarray(d[k], float) for k in ("model", "treat_all", "treat_none")}


def delong_p_values(models: Sequence[dict], split: str) -> tuple[list[str], np.ndarray] | None:
    """Pairwise two-sided DeLong p-values (``stats.delong_matrix``) between the models scored on the same cases
    of ``split``, aligned by case id; None when fewer than two models have the split or their cases differ."""
    have = [m for m in models if split in m["scores"]]
    if len(have) < 2:
        return None
    ids0 = list(have[0]["scores"][split]["case_id"])
    aligned = []
    for m in have:
        s = m["scores"][split]
        pos = {c: i for i, c in enumerate(s["case_id"])}
        if len(ids0) and set(pos) != set(ids0):
            return None  # not the same cases: no paired test
        order = [pos[c] for c in ids0] if len(ids0) else list(range(len(s["prob"])))
        aligned.append((s["y"][order], s["prob"][order]))
    if any(not np.array_equal(y, aligned[0][0]) for y, _ in aligned):
        return None  # the same cases with other labels (another target): no paired test
    names = [m["name"] for m in have]
    res = stats.delong_matrix(aligned[0][0], [p for _, p in aligned], names)
    return names, np.asarray(res["p"], float)


# ----------------------------------------------------------------------------------------------------
# figures


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(fig, alt: str) -> str:
    return f'<img class="fig" alt="{html.escape(alt)}" src="data:image/png;base64,{_png(fig)}">'


def _splits(models: Sequence[dict]) -> list[str]:
    order = ["train", "internal", "test", "internal_test", "external", "external_test"]
    seen: list[str] = []
    for m in models:
        for s in m["scores"]:
            if s not in seen:
                seen.append(s)
    return sorted(seen, key=lambda s: (order.index(s) if s in order else len(order), s))


def _grid(n: int, width: float = 4.2, height: float = 3.8):
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    return fig, axes[0]


def roc_figure(models: Sequence[dict], title: str) -> str:
    splits = _splits(models)
    fig, axes = _grid(len(splits))
    for ax, split in zip(axes, splits, strict=True):
        for k, m in enumerate(models):
            s = m["scores"].get(split)
            if s is None or len(np.unique(s["y"])) < 2:
                continue
            fpr, tpr = roc_points(s["y"], s["prob"])
            # coinciding curves (e.g. two models at AUC 1) stay visible: wider solid lines under thinner dashed ones
            ax.step(fpr, tpr, where="post", color=_PALETTE[k % len(_PALETTE)], ls=_STYLES[k % len(_STYLES)],
                    lw=max(1.0, 3.0 - 0.6 * k), zorder=10 - k, clip_on=False,
                    label=f"{m['name']} (AUC {stats.roc_auc(s['y'], s['prob']):.3f})")
        ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1)
        ax.set(title=f"{split} (n={_n(models, split)})", xlabel="1 - specificity", ylabel="sensitivity",
               xlim=(0, 1), ylim=(0, 1.01), aspect="equal")
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"ROC curves: {title}")
    return _img(fig, f"ROC curves {title}")


def _n(models: Sequence[dict], split: str) -> int:
    return max((len(m["scores"][split]["y"]) for m in models if split in m["scores"]), default=0)


def calibration_figure(models: Sequence[dict], title: str) -> str:
    splits = _splits(models)
    fig, axes = _grid(len(splits))
    for ax, split in zip(axes, splits, strict=True):
        for k, m in enumerate(models):
            s = m["scores"].get(split)
            if s is None:
                continue
            mp, ob, _ = calibration_points(s["y"], s["prob"], n_bins=5 if len(s["y"]) >= 25 else 3)
            ax.plot(mp, ob, marker="o", color=_PALETTE[k % len(_PALETTE)], ls=_STYLES[k % len(_STYLES)],
                    clip_on=False, label=m["name"] + _hl_text(s))
        ax.plot([0, 1], [0, 1], ls=":", c="grey", lw=1, label="ideal")
        # a margin around [0, 1], so points at p = 0 or 1 (confident models) are drawn whole
        ax.set(title=split, xlabel="predicted probability", ylabel="observed fraction", xlim=(-0.04, 1.04),
               ylim=(-0.04, 1.04), aspect="equal")
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Calibration (quantile bins): {title}")
    return _img(fig, f"Calibration {title}")


def _hl_text(s: Mapping[str, np.ndarray]) -> str:
    """`` (HL p=0.42)``: Hosmer-Lemeshow goodness of fit (Hosmer & Lemeshow 1980; ``stats.hosmer_lemeshow``)."""
    try:
        groups = 10 if len(s["y"]) >= 50 else 5
        p = float(stats.hosmer_lemeshow(s["y"], s["prob"], groups=groups)["p"])
    except (UserError, ValueError, ZeroDivisionError):
        return ""
    return f" (HL p={p:.2f})" if math.isfinite(p) else ""


def decision_figure(models: Sequence[dict], title: str) -> str:
    splits = _splits(models)
    fig, axes = _grid(len(splits))
    thresholds = np.linspace(0.01, 0.9, 90)
    for ax, split in zip(axes, splits, strict=True):
        top = 0.05
        for k, m in enumerate(models):
            s = m["scores"].get(split)
            if s is None:
                continue
            d = net_benefit(s["y"], s["prob"], thresholds)
            ax.plot(thresholds, d["model"], color=_PALETTE[k % len(_PALETTE)], label=m["name"])
            top = max(top, float(np.max(d["treat_all"])), float(np.max(d["model"])))
        if any(split in m["scores"] for m in models):
            ax.plot(thresholds, d["treat_all"], c="grey", lw=1, label="treat all")
            ax.plot(thresholds, d["treat_none"], c="black", lw=1, ls="--", label="treat none")
        ax.set(title=split, xlabel="threshold probability", ylabel="net benefit", ylim=(-0.05, top + 0.05))
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)  # off the curves
    fig.suptitle(f"Decision curves: {title}")
    return _img(fig, f"Decision curves {title}")


def gdi_figure(models: Sequence[dict], title: str) -> str:
    splits = sorted({s for m in models for s in (m["card"].get("gdi") or {})})
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(models) * max(1, len(splits)), 3.6))
    vals = [100 * float(v.get("value", 0)) for m in models for v in (m["card"].get("gdi") or {}).values()]
    ymax = max([25.0, *[v + 10 for v in vals]])
    ymin = min([0.0, *[v - 5 for v in vals]])
    ax.axhspan(ymin, 15, color=ZONE_COLOURS["safe"], alpha=0.12, label="safe (<= 15%)")
    ax.axhspan(15, 20, color=ZONE_COLOURS["warning"], alpha=0.18, label="warning (15-20%)")
    ax.axhspan(20, ymax, color=ZONE_COLOURS["high"], alpha=0.12, label="high (>= 20%)")
    width = 0.8 / max(1, len(splits))
    for j, split in enumerate(splits):
        for i, m in enumerate(models):
            g = (m["card"].get("gdi") or {}).get(split)
            if not g:
                continue
            v = 100 * float(g["value"])
            ax.bar(i + (j - (len(splits) - 1) / 2) * width, v, width * 0.9,
                   color=ZONE_COLOURS.get(str(g.get("zone")), "grey"), edgecolor="black", hatch=["", "//", ".."][j % 3])
            ax.text(i + (j - (len(splits) - 1) / 2) * width, max(v, 0.0) + 0.4, f"{v:.0f}%\n{split}", ha="center", fontsize=7)  # above 0 for negative bars
    ax.set_xticks(range(len(models)), [m["name"] for m in models])
    ax.set(ylabel="GDI (%)", ylim=(ymin, ymax), title=f"Generalisation decay index: {title}")
    from matplotlib.patches import Patch

    handles, _ = ax.get_legend_handles_labels()
    handles += [Patch(facecolor="white", edgecolor="black", hatch=["", "//", ".."][j % 3], label=f"bars: {split}")
                for j, split in enumerate(splits)]  # which hatching is which split
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, frameon=False)
    return _img(fig, f"GDI {title}")


def delong_figure(names: list[str], p: np.ndarray, split: str) -> str:
    fig, ax = plt.subplots(figsize=(1.6 + 0.75 * len(names), 1.0 + 0.6 * len(names)))
    im = ax.imshow(np.where(np.eye(len(names), dtype=bool), np.nan, p), vmin=0, vmax=0.2, cmap="RdYlGn")
    for i in range(len(names)):
        for j in range(len(names)):
            if i != j:
                ax.text(j, i, f"{p[i, j]:.3f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_title(f"DeLong p-values ({split})")
    fig.colorbar(im, ax=ax, fraction=0.046, label="p (< 0.05 red)")
    return _img(fig, f"DeLong matrix {split}")


def coefficients_figure(models: Sequence[dict], title: str) -> str:
    n = len(models)
    heights = [max(1, len(m["card"].get("features") or [])) for m in models]
    fig, axes = plt.subplots(n, 1, figsize=(8.5, 0.8 + 0.28 * sum(heights) + 0.6 * n), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, m in zip(axes[:, 0], models, strict=True):
        feats = list(m["card"].get("features") or [])
        coef = np.asarray(m["card"].get("coefficients") or [], float)
        order = np.argsort(np.abs(coef))
        ax.barh([feature_label(feats[i]) for i in order], coef[order],
                color=["#c62828" if c > 0 else "#1565c0" for c in coef[order]])
        ax.axvline(0, c="black", lw=0.8)
        ax.set_title(f"{m['name']}: {len(feats)} selected features (coefficient per SD)", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle(f"Selected features: {title}")
    fig.tight_layout()
    return _img(fig, f"Coefficients {title}")


def icc_figure(icc: Mapping[str, Any]) -> str:
    """Histogram of the inter-reader ICCs of the candidate features with the threshold (Shrout & Fleiss 1979;
    Koo & Li 2016 call ICC >= 0.75 good reliability)."""
    edges = np.asarray(icc["histogram"]["edges"], float)
    counts = np.asarray(icc["histogram"]["counts"], float)
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    left, width = edges[:-1], np.diff(edges)
    kept = left >= float(icc["threshold"]) - 1e-12
    ax.bar(left, counts, width=width, align="edge", color=np.where(kept, "#2e7d32", "#9e9e9e"), edgecolor="white")
    ax.axvline(float(icc["threshold"]), color="#c62828", lw=1.5, ls="--", label=f"threshold {icc['threshold']:g}")
    ax.set(xlim=(max(-0.2, float(edges[0])), 1.0), xlabel=f"ICC({icc['kind']}) between the two readers",
           ylabel="features", title=f"{icc['n_kept']} of {icc['n_features']} candidate features kept "
                                    f"(ICC >= {icc['threshold']:g}, {icc['n_cases']} cases read twice)")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7, loc="upper left")
    return _img(fig, "ICC distribution")


def funnel_figure(models: Sequence[dict]) -> str:
    """Features left after each selection step, per feature set (log scale)."""
    fig, ax = plt.subplots(figsize=(6.4, 2.9))
    for k, m in enumerate(models):
        steps = m.get("funnel") or _funnel_from(m["card"])
        ax.plot(range(len(steps)), [max(v, 0.8) for _, v in steps], marker="o", color=_PALETTE[k % len(_PALETTE)],
                ls=_STYLES[k % len(_STYLES)], label=m["name"])
    names = [n for n, _ in (models[0].get("funnel") or _funnel_from(models[0]["card"]))]
    ax.set_xticks(range(len(names)), names)
    ax.set_yscale("log")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set(ylabel="features left (log scale)", title="Selection funnel (training split only; counts in the table)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=4, frameon=False)
    return _img(fig, "Selection funnel")


def _funnel_from(card: Mapping[str, Any]) -> list[list]:
    sel = card.get("selection") or {}
    after_icc = int(sel.get("n_after_icc") or sel.get("candidates") or 0)
    return [["candidates", int(sel.get("candidates") or 0)], ["ICC", after_icc],
            ["non-constant", after_icc - int(sel.get("n_constant_dropped") or 0)],
            ["MWU", int(sel.get("n_after_mwu") or 0)], ["LASSO", len(card.get("features") or [])]]


def lasso_figure(m: dict) -> str | None:
    """LASSO tuning: mean CV deviance +/- 1 SE over the penalty path with the chosen penalty, and the L1 coefficient
    path on the training split (Friedman, Hastie & Tibshirani 2010, as glmnet's plot.cv.glmnet / plot.glmnet)."""
    sel = m["card"].get("selection") or {}
    cv = sel.get("cv_curve") or {}
    if not cv.get("C"):
        return None
    path = sel.get("lasso_path") or {}
    x = np.log10(np.asarray(cv["C"], float))
    chosen = math.log10(float(sel["C"])) if sel.get("C") else None
    fig, axes = plt.subplots(1, 2 if path.get("features") else 1, figsize=(10.5 if path.get("features") else 5.2, 3.3),
                             squeeze=False)
    ax = axes[0, 0]
    dev, se = np.asarray(cv["deviance"], float), np.asarray(cv.get("deviance_se") or np.zeros(x.size), float)
    ax.errorbar(x, dev, yerr=se, fmt="o-", ms=3, color="#c62828", ecolor="#9e9e9e", capsize=2, lw=1)
    ax.set(xlabel="log10 C (weaker penalty ->)", ylabel="mean CV binomial deviance",
           title=f"{m['name']}: {sel.get('cv_folds', '?')}-fold CV, rule {sel.get('lambda_rule', 'min')}")
    if chosen is not None:
        ax.axvline(chosen, color="black", ls="--", lw=1, label=f"chosen C = {float(sel['C']):.3g}")
        ax.legend(fontsize=7)
    ax.title.set_fontsize(9)
    if path.get("features"):
        ax2 = axes[0, 1]
        px = np.log10(np.asarray(path["C"], float))
        selected = set(m["card"].get("features") or [])
        for j, (f, coef) in enumerate(zip(path["features"], path["coefficients"], strict=True)):
            on = f in selected
            ax2.plot(px, coef, lw=1.6 if on else 0.7, color=_PALETTE[j % len(_PALETTE)] if on else "#bdbdbd",
                     zorder=3 if on else 1, label=feature_label(f) if on else None)
        if chosen is not None:
            ax2.axvline(chosen, color="black", ls="--", lw=1)
        ax2.axhline(0, color="black", lw=0.5)
        ax2.set(xlabel="log10 C", ylabel="coefficient (per SD)",
                title=f"L1 path: {len(path['features'])} features enter, {len(selected)} selected (coloured)")
        ax2.title.set_fontsize(9)
        if selected:
            ax2.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return _img(fig, f"LASSO cross-validation and coefficient path {m['name']}")


def contributions_figure(contrib: pd.DataFrame, case_id: str, intercepts: Mapping[str, float], top: int = 10) -> str:
    stages = [s for s in ("stage1", "stage2") if s in set(contrib["stage"])]
    n = max(1, len(stages))
    fig, axes = plt.subplots(n, 1, figsize=(9.0, n * (1.0 + 0.3 * top)), squeeze=False)
    for ax, stage in zip(axes[:, 0], stages, strict=False):
        c = contrib[contrib["stage"] == stage].copy()
        c = c.reindex(c["contribution"].abs().sort_values(ascending=False).index).head(top)[::-1]
        labels = [feature_label(f) for f in c["feature"]]
        ax.barh(labels, c["contribution"], color=["#c62828" if v > 0 else "#1565c0" for v in c["contribution"]])
        ax.axvline(0, c="black", lw=0.8)
        ax.tick_params(axis="y", labelsize=7)
        event = "positive" if stage == "stage1" else "low"
        icpt = intercepts.get(stage, float("nan"))
        ax.set(xlabel=f"contribution to log-odds of HER2-{event} (intercept {icpt:+.2f})", title=f"{case_id}: {stage}")
    fig.tight_layout()
    return _img(fig, f"Contributions {case_id}")


def probability_figure(row: Mapping[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=(6.5, 0.9))
    left = 0.0
    for key, colour, name in (("p_positive", "#c62828", "positive"), ("p_low", "#f9a825", "low"), ("p_zero", "#1565c0", "zero")):
        v = float(row.get(key, float("nan")))
        if not math.isfinite(v):
            continue
        ax.barh([0], [v], left=left, color=colour)
        if v > 0.06:
            ax.text(left + v / 2, 0, f"{name} {v:.2f}", ha="center", va="center", color="white", fontsize=9)
        left += v
    ax.set(xlim=(0, 1), yticks=[])
    ax.set_xlabel("probability (soft cascade)", fontsize=8)
    return _img(fig, "Probabilities")


# ----------------------------------------------------------------------------------------------------
# HTML


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#263238;color:#fff;padding:14px 24px} header h1{margin:0;font-size:22px}
.banner{background:#fff3e0;border-left:6px solid #e65100;padding:8px 14px;margin:10px 0;font-weight:600}
main{padding:0 24px 24px} section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px 18px;margin:16px 0}
h2{margin-top:4px;border-bottom:2px solid #263238;padding-bottom:4px} h3{margin-bottom:6px}
table{border-collapse:collapse;font-size:13px;margin:6px 0} th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#eceff1} td.l,th.l{text-align:left}
.zone{color:#fff;border-radius:4px;padding:1px 6px;font-size:12px}
img.fig{max-width:100%;display:block;margin:8px 0} .row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.formula code{white-space:normal;font-size:12px} h4{margin:12px 0 4px}
tr.clear-item.yes td:nth-child(4){color:#2e7d32;font-weight:600} tr.clear-item.partly td:nth-child(4){color:#ef6c00}
tr.clear-item.author td:nth-child(4){color:#757575}
.warn{color:#b71c1c} .muted{color:#666;font-size:12px} nav a{margin-right:12px}
@media print{section{page-break-before:always;border:none} nav{display:none} body{background:#fff}}
"""


def _zone_badge(zone: str, value: float | None = None) -> str:
    text = zone if value is None else f"{100 * value:.0f}% {zone}"
    return f'<span class="zone" style="background:{ZONE_COLOURS.get(zone, "#757575")}">{html.escape(text)}</span>'


def _fmt(v: Any, nd: int = 3) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return html.escape(str(v)) if v is not None else "–"
    return "–" if not math.isfinite(f) else f"{f:.{nd}f}"


def _banner(text: str) -> str:
    return f'<div class="banner">{html.escape(text)}</div>'


def _model_table(models: Sequence[dict]) -> str:
    splits: list[str] = []
    for m in models:
        for s in m["card"].get("metrics") or {}:
            if s not in splits:
                splits.append(s)
    head = "<tr><th class=l>feature set</th><th>selected</th><th>cut-off</th>" + "".join(
        f"<th>{html.escape(s)} AUC (95% CI)</th><th>{html.escape(s)} acc / sens / spec</th>" for s in splits
    ) + "<th class=l>GDI</th></tr>"
    rows = []
    for m in models:
        card = m["card"]
        cells = [f"<td class=l>{html.escape(m['name'])}</td>", f"<td>{len(card.get('features') or [])}</td>",
                 f"<td>{_fmt(card.get('cutoff'))}</td>"]
        for s in splits:
            met = (card.get("metrics") or {}).get(s) or {}
            ci = met.get("auc_ci") or [None, None]
            cells.append(f"<td>{_fmt(met.get('auc'))} ({_fmt(ci[0])}-{_fmt(ci[1])})</td>")
            cells.append(f"<td>{_fmt(met.get('accuracy'))} / {_fmt(met.get('sensitivity'))} / {_fmt(met.get('specificity'))}</td>")
        gd = " ".join(f"{html.escape(s)} {_zone_badge(str(g.get('zone')), g.get('value'))}"
                      for s, g in (card.get("gdi") or {}).items())
        cells.append(f"<td class=l>{gd or '–'}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _coef_table(m: dict) -> str:
    card = m["card"]
    feats = list(card.get("features") or [])
    coef = np.asarray(card.get("coefficients") or [], float)
    rng = card.get("training_range") or {}
    rows = []
    for i in np.argsort(-np.abs(coef)):
        lo = (rng.get("min") or [None] * len(feats))[i]
        hi = (rng.get("max") or [None] * len(feats))[i]
        rows.append(f"<tr><td class=l>{html.escape(feature_label(feats[i]))}</td><td class=l><code>{html.escape(feats[i])}</code></td>"
                    f"<td>{coef[i]:+.4f}</td><td>{_fmt(lo, 4)} to {_fmt(hi, 4)}</td></tr>")
    try:
        formula = rad_score_formula(card)
    except (KeyError, TypeError, ValueError):
        formula = ""
    rad = (f"<p class=formula><code>{html.escape(formula)}</code><br><span class=muted>P({html.escape(str((card.get('classes') or {}).get('event', 'event')))})"
           " = 1 / (1 + exp(-Rad-score)); a missing value takes the training median.</span></p>") if formula else ""
    return (f"<h3>{html.escape(m['name'])} (intercept {_fmt(card.get('intercept'))})</h3>{rad}<table><tr><th class=l>feature</th>"
            f"<th class=l>column</th><th>coefficient (per SD)</th><th>training range</th></tr>{''.join(rows)}</table>")


HL_CAVEAT = ("The Hosmer-Lemeshow p-value depends on the number of groups (risk groups; here 10, or 5 below 50 cases) and on "
             "how tied probabilities are grouped, and has little power on small splits (Hosmer & Lemeshow 2000, "
             "section 5.2.2); read it together with the calibration slope and intercept (1 and 0 are ideal; Cox 1958, "
             "Van Calster et al. 2016) and the Brier score (Brier 1950; lower is better).")


def _kv_table(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th class=l>{html.escape(k)}</th><td class=l>{v}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _split_text(split: Mapping[str, Any] | None) -> str:
    method = (split or {}).get("method")
    if method not in ("center", "random"):
        return "not recorded in this study"
    if not isinstance(split.get("test_size"), (int, float)):
        split = {**split, "test_size": 0.0}
    if method == "center":
        internal = (f"; {split.get('test_size'):g} of the other centres' cases held out (stratified) as internal test"
                    if split.get("test_size") else "")
        return html.escape(f"by centre: {split.get('center_column') or 'centre'} = {split.get('test_center')} is the "
                           f"external test set{internal}; the rest trains")
    return html.escape(f"random stratified split, {split['test_size']:g} of the cases held out as test set")


def design_table(study: dict) -> str:
    """Study design for a methods section: task, split definition, seed, parameter file, selection options."""
    meth = study.get("methods") or {}
    card = study["models"][0]["card"]
    prov = card.get("provenance") or {}
    opts = prov.get("options") or {}
    pf = meth.get("parameter_file") or {}
    pname = pf.get("name") or prov.get("parameter_file")
    phash = pf.get("sha256") or prov.get("parameter_file_hash")
    classes = study.get("classes") or card.get("classes") or {}
    sel = card.get("selection") or {}
    icc = (f"ICC({sel.get('icc_kind')}) >= {sel.get('icc_threshold'):g} from a two-reader table"
           if sel.get("icc_threshold") is not None else "not applied (no two-reader table)")
    mwu = f"Mann-Whitney U p < {opts['mwu_p']:g}" if opts.get("mwu_p") else "not applied"
    lab = prov.get("labels") or {}
    rows = [
        ("Task", html.escape(f"{study['task']}: {classes.get('event', '?')} vs {', '.join(classes.get('reference') or [])}")),
        ("Labels", html.escape("generic: " + str(lab.get("label_column")) if lab.get("positive") else
                               "HER2 categories (ASCO/CAP 2018; HER2-low after Tarantino 2020)")),
        ("Split", _split_text(meth.get("split") or {"method": opts.get("split"), "test_size": opts.get("test_size"),
                                                     "test_center": opts.get("test_center")})),
        ("Seed", html.escape(str(meth.get("seed", prov.get("seed", "–"))))),
        ("Parameter file", f"{html.escape(str(pname or 'not recorded'))}<br><code>{html.escape(str(phash or '–'))}</code>"),
        ("Features table", f"{html.escape(str(prov.get('training_table') or '–'))} "
                           f"<code>{html.escape(str(prov.get('training_table_hash') or ''))}</code>"),
        ("Reproducibility filter", html.escape(icc)),
        ("Missing values", "median of the training split (stored in the card); features constant on the training "
                           "split dropped"),
        ("Univariate filter", html.escape(mwu)),
        ("Scaling", "z-score with the training mean and SD"),
        ("LASSO", html.escape(f"L1 logistic regression, {sel.get('cv_folds', opts.get('cv_folds', '?'))}-fold stratified "
                              f"CV of the penalty (binomial deviance, rule {sel.get('lambda_rule', 'min')})")),
        ("Final model", html.escape(str(sel.get("refit") or "logistic regression")) + "; cut-off: maximum Youden index "
                        "on the training split"),
        ("Software", html.escape(str(prov.get("software") or meth.get("software") or f"her2radiomics {__version__}"))),
    ]
    return _kv_table(rows)


def cohort_html(rows: Sequence[Mapping[str, Any]], classes: Mapping[str, Any]) -> str:
    """Cases per split, centre and class (study.json ``cohort_table``)."""
    if not rows:
        return "<p class=muted>No cohort table in this study (re-run 'her2radiomics study').</p>"
    ev = html.escape(str(classes.get("event", "event")))
    ref = html.escape(", ".join(classes.get("reference") or ["reference"]))
    body = "".join(f"<tr><td class=l>{html.escape(str(r['split']))}</td><td class=l>"
                   f"{html.escape(str(r['center'])) if r.get('center') is not None else '–'}</td><td>{r['n']}</td>"
                   f"<td>{r['event']}</td><td>{r['reference']}</td></tr>" for r in rows)
    tot = sum(int(r["n"]) for r in rows)
    return (f"<table><tr><th class=l>split</th><th class=l>centre</th><th>cases</th><th>{ev}</th><th>{ref}</th></tr>"
            f"{body}<tr><th class=l>all</th><th></th><th>{tot}</th><th>{sum(int(r['event']) for r in rows)}</th>"
            f"<th>{sum(int(r['reference']) for r in rows)}</th></tr></table>")


def funnel_table(models: Sequence[dict]) -> str:
    head = None
    rows = []
    for m in models:
        steps = m.get("funnel") or _funnel_from(m["card"])
        sel = m["card"].get("selection") or {}
        head = head or "".join(f"<th>{html.escape(n)}</th>" for n, _ in steps)
        cells = []
        for n, v in steps:
            off = (n == "ICC" and sel.get("icc_threshold") is None) or (n == "MWU" and sel.get("mwu_p") is None)
            cells.append(f"<td>{v}{' <span class=muted>(not applied)</span>' if off else ''}</td>")
        rows.append(f"<tr><td class=l>{html.escape(m['name'])}</td>{''.join(cells)}</tr>")
    return f"<table><tr><th class=l>feature set</th>{head}</tr>{''.join(rows)}</table>"


def performance_table(models: Sequence[dict]) -> str:
    """AUC with its DeLong 95% CI and, when the study ran ``--bootstrap N``, the stratified bootstrap 95% CI;
    calibration slope and intercept, Brier score and Hosmer-Lemeshow per split."""
    rows = []
    for m in models:
        for split in _splits([m]):
            s = m["scores"][split]
            met = ((m["card"].get("metrics") or {}).get(split)) or {}
            ci = met.get("auc_ci") or [None, None]
            boot = ((m.get("split_extras") or {}).get(split) or {}).get("bootstrap")
            bt = f"{_fmt(boot['lo'])}-{_fmt(boot['hi'])} <span class=muted>({boot['n_boot']})</span>" if boot else "–"
            try:
                cal = calibration_record(s["y"], s["prob"]) if len(np.unique(s["y"])) == 2 else None
            except UserError:
                cal = None
            if cal is None:
                calc = "<td>–</td>" * 4
            else:
                hl = cal["hosmer_lemeshow"]
                slope = "∞ (separated)" if cal["separation"] else _fmt(cal["slope"])
                hlt = (f"{_fmt(hl['statistic'], 2)} (df {hl['df']}, {hl['groups']} groups), p {_fmt(hl['p'])}"
                       if hl.get("p") is not None else html.escape(str(hl.get("reason", "–"))))
                calc = (f"<td>{slope}</td><td>{_fmt(cal['intercept'])}</td><td>{_fmt(cal['brier'])}</td>"
                        f"<td class=l>{hlt}</td>")
            auc = met.get("auc", stats.roc_auc(s["y"], s["prob"]) if len(np.unique(s["y"])) == 2 else None)
            rows.append(f"<tr><td class=l>{html.escape(m['name'])}</td><td class=l>{html.escape(split)}</td>"
                        f"<td>{len(s['y'])}</td><td>{_fmt(auc)}</td><td>{_fmt(ci[0])}-{_fmt(ci[1])}</td><td>{bt}</td>"
                        f"{calc}</tr>")
    return ("<table><tr><th class=l>feature set</th><th class=l>split</th><th>n</th><th>AUC</th><th>DeLong 95% CI</th>"
            "<th>bootstrap 95% CI (replicates)</th><th>Calibration slope</th><th>calibration intercept</th>"
            "<th>Brier</th><th class=l>Hosmer-Lemeshow</th></tr>" + "".join(rows) + "</table>"
            f"<p class=muted>{html.escape(HL_CAVEAT)} Bootstrap: stratified percentile interval (events and non-events "
            "resampled separately; Efron & Tibshirani 1993).</p>")


def methods_section(study: dict) -> str:
    """The study's methods record (docs/report.md): design, cohort, ICC, selection funnel, LASSO tuning and path,
    discrimination with DeLong and bootstrap CIs, calibration numbers."""
    models = study["models"]
    meth = study.get("methods") or {}
    sid = html.escape(study["task"])
    parts = [f'<div id="{sid}-methods"><h3>Methods record</h3>', "<h4>Study design</h4>", design_table(study),
             "<h4>Cohort: cases per split, centre and class</h4>",
             cohort_html(meth.get("cohort_table") or [], study.get("classes") or models[0]["card"].get("classes") or {})]
    icc = meth.get("icc") or next(((m["card"].get("selection") or {}).get("icc") for m in models
                                   if (m["card"].get("selection") or {}).get("icc")), None)
    parts.append("<h4>Reproducibility (ICC)</h4>")
    if icc:
        q = icc.get("quantiles") or {}
        parts.append(f"<p>ICC({html.escape(str(icc['kind']))}) of the {icc['n_features']} candidate features on the "
                     f"{icc['n_cases']} cases segmented by both readers: median {_fmt(q.get('median'))} (IQR "
                     f"{_fmt(q.get('q25'))}-{_fmt(q.get('q75'))}); {icc['n_kept']} features have ICC &ge; "
                     f"{icc['threshold']:g} and stay candidates ({icc['n_undefined']} undefined). The ICC table's cases "
                     "are not restricted to the training split.</p>")
        parts.append(icc_figure(icc))
    else:
        parts.append("<p class=muted>No ICC filter: the study was run without a two-reader table (--icc).</p>")
    parts += ["<h4>Feature selection</h4>", funnel_table(models), funnel_figure(models)]
    for m in models:
        fig = lasso_figure(m)
        if fig:
            parts.append(fig)
    if any(m["scores"] for m in models):
        parts += ["<h4>Discrimination and calibration</h4>", performance_table(models)]
    parts.append("</div>")
    return "\n".join(parts)


# CLEAR: CheckList for EvaluAtion of Radiomics research (Kocak B, et al. Insights Imaging 2023;14:75,
# doi:10.1186/s13244-023-01415-8), items 1-58 by their short titles.
CLEAR_ITEMS: tuple[tuple[int, str, str], ...] = (
    (1, "Title", "Relevant title, specifying the radiomic methodology"),
    (2, "Abstract", "Structured summary with relevant information"),
    (3, "Keywords", "Relevant keywords for radiomics"),
    (4, "Introduction", "Scientific or clinical background"),
    (5, "Introduction", "Rationale for using a radiomic approach"),
    (6, "Introduction", "Study objective(s)"),
    (7, "Study design", "Adherence to guidelines or checklists"),
    (8, "Study design", "Ethical details"),
    (9, "Study design", "Sample size calculation"),
    (10, "Study design", "Study nature"),
    (11, "Study design", "Eligibility criteria"),
    (12, "Study design", "Flowchart for technical pipeline"),
    (13, "Data", "Data source"),
    (14, "Data", "Data overlap"),
    (15, "Data", "Data split methodology"),
    (16, "Data", "Imaging protocol"),
    (17, "Data", "Definition of non-radiomic predictor variables"),
    (18, "Data", "Definition of the reference standard"),
    (19, "Segmentation", "Segmentation strategy"),
    (20, "Segmentation", "Details of operators performing segmentation"),
    (21, "Pre-processing", "Image pre-processing details"),
    (22, "Pre-processing", "Resampling method and its parameters"),
    (23, "Pre-processing", "Discretization method and its parameters"),
    (24, "Pre-processing", "Image types"),
    (25, "Feature extraction", "Feature extraction method"),
    (26, "Feature extraction", "Feature classes"),
    (27, "Feature extraction", "Number of features"),
    (28, "Feature extraction", "Default configuration statement for remaining parameters"),
    (29, "Data preparation", "Handling of missing data"),
    (30, "Data preparation", "Details of class imbalance"),
    (31, "Data preparation", "Details of segmentation reliability analysis"),
    (32, "Data preparation", "Feature scaling details"),
    (33, "Data preparation", "Dimension reduction details"),
    (34, "Modeling", "Algorithm details"),
    (35, "Modeling", "Training and tuning details"),
    (36, "Modeling", "Handling of confounders"),
    (37, "Modeling", "Model selection strategy"),
    (38, "Evaluation", "Testing technique"),
    (39, "Evaluation", "Performance metrics and rationale for choosing"),
    (40, "Evaluation", "Uncertainty evaluation and measures"),
    (41, "Evaluation", "Statistical performance comparison"),
    (42, "Evaluation", "Comparison with non-radiomic and combined methods"),
    (43, "Evaluation", "Interpretability and explainability methods"),
    (44, "Results", "Baseline demographic and clinical characteristics"),
    (45, "Results", "Flowchart for eligibility criteria"),
    (46, "Results", "Feature statistics"),
    (47, "Results", "Model performance evaluation"),
    (48, "Results", "Comparison with non-radiomic and combined approaches"),
    (49, "Discussion", "Overview of important findings"),
    (50, "Discussion", "Previous works with differences from the current study"),
    (51, "Discussion", "Practical implications"),
    (52, "Discussion", "Strengths and limitations"),
    (53, "Open science", "Sharing images along with segmentation data"),
    (54, "Open science", "Sharing radiomic feature data"),
    (55, "Open science", "Sharing pre-processing scripts or settings"),
    (56, "Open science", "Sharing source code for modeling"),
    (57, "Open science", "Sharing final model files"),
    (58, "Open science", "Sharing a ready-to-use system"),
)


def clear_status(studies: Sequence[dict], has_predictions: bool = False) -> dict[int, tuple[str, str]]:
    """Which CLEAR items this run documents: item -> (``yes`` | ``partly`` | ``author``, where / what is missing).
    ``author``: the run cannot know it (ethics, imaging protocol, segmentation operators, ...); the manuscript must."""
    icc = any((st.get("methods") or {}).get("icc") or any((m["card"].get("selection") or {}).get("icc")
                                                        for m in st["models"]) for st in studies)
    boot = any((st.get("methods") or {}).get("bootstrap") for st in studies)
    several = any(len(st["models"]) > 1 for st in studies)
    st: dict[int, tuple[str, str]] = {
        12: ("partly", "selection funnel and pipeline table (Methods record); draw the imaging/segmentation steps"),
        15: ("yes", "Study design: split definition, seed; Cohort table per split, centre and class"),
        18: ("partly", "label rule stated (ASCO/CAP 2018 categories or the generic label column); describe the "
                       "pathology workflow"),
        19: ("partly", "regions are the feature sets (lesion and peritumoral shells in mm); describe who drew the lesion"),
        22: ("partly", "in the parameter file (name and SHA-256 recorded); quote its resampling settings"),
        23: ("partly", "in the parameter file (name and SHA-256 recorded); quote binWidth/binCount"),
        24: ("partly", "in the parameter file (name and SHA-256 recorded); feature names carry the image type"),
        25: ("partly", "pyradiomics through her2radiomics (software line); IBSI compliance to be stated"),
        26: ("partly", "feature names carry the class (e.g. glcm); count per class from the features table"),
        27: ("yes", "candidates per feature set (Feature selection)"),
        28: ("partly", "parameter file recorded by hash; state that other settings are pyradiomics defaults"),
        29: ("yes", "median imputation with training medians; counts in the cards' notes"),
        30: ("partly", "class counts per split (Cohort); no resampling or weighting is used"),
        31: ("yes" if icc else "author", "ICC kind, threshold, cases read twice, distribution (Reproducibility)"
             if icc else "no ICC table in this run (--icc)"),
        32: ("yes", "z-score with training mean and SD"),
        33: ("yes", "ICC -> constant -> Mann-Whitney -> LASSO counts (Feature selection)"),
        34: ("yes", "L1 logistic regression for selection, ridge-refitted logistic regression (Study design)"),
        35: ("yes", "CV folds, penalty grid, CV curve and chosen C per feature set (LASSO figures)"),
        37: ("partly", "penalty by CV deviance; cut-off by Youden on the training split; the choice between feature "
                       "sets is the author's"),
        38: ("yes", "internal / external test splits (Study design, Cohort)"),
        39: ("yes", "AUC, accuracy, sensitivity, specificity, GDI"),
        40: ("yes", "DeLong 95% CIs" + (", stratified bootstrap CIs" if boot else " (add --bootstrap N for bootstrap "
                                                                           "CIs)") + ", calibration"),
        41: ("yes" if several else "partly", "paired DeLong tests between feature sets" if several else
             "only one model: no comparison"),
        42: ("partly", "decision curves against treat-all/none; no clinical model in this run"),
        43: ("yes", "coefficients, Rad-score formula" + (", per-case contributions" if has_predictions else "")),
        44: ("partly", "cases per centre and class only; add demographics"),
        45: ("partly", "excluded cases are counted in the notes; draw the eligibility flowchart"),
        46: ("yes", "ICC distribution and selection funnel" if icc else "selection funnel"),
        47: ("yes", "model table, ROC, calibration and decision curves per split"),
        55: ("partly", "parameter file identified by name and SHA-256; share the file"),
        56: ("partly", f"her2radiomics {__version__} (open source); cite the version"),
        57: ("yes", "JSON model cards with checksums (one per feature set)"),
    }
    return {no: st.get(no, ("author", "not documented by this run: report it in the manuscript"))
            for no, _, _ in CLEAR_ITEMS}


def clear_section(studies: Sequence[dict], has_predictions: bool, intended_use: str) -> str:
    status = clear_status(studies, has_predictions)
    marks = {"yes": "documented", "partly": "partly", "author": "author"}
    rows = "".join(
        f'<tr class="clear-item {status[no][0]}"><td>{no}</td><td class=l>{html.escape(sec)}</td>'
        f"<td class=l>{html.escape(title)}</td><td class=l>{marks[status[no][0]]}</td>"
        f"<td class=l>{html.escape(status[no][1])}</td></tr>" for no, sec, title in CLEAR_ITEMS)
    n = {k: sum(1 for v in status.values() if v[0] == k) for k in marks}
    return (f'<section id="clear"><h2>CLEAR checklist</h2>{_banner(intended_use)}<p>CheckList for EvaluAtion of '
            "Radiomics research (Kocak B, Baessler B, Bakas S, et al. Insights Imaging 2023;14:75, "
            f"doi:10.1186/s13244-023-01415-8). This run documents {n['yes']} items and part of {n['partly']}; the "
            f"other {n['author']} (ethics, imaging protocol, segmentation, discussion, ...) belong to the manuscript. "
            "Use the checklist with its explanations; the 'where' column says what this report holds.</p>"
            "<table><tr><th>item</th><th class=l>section</th><th class=l>item</th><th class=l>this run</th>"
            f"<th class=l>where / what to add</th></tr>{rows}</table></section>")


def truth_and_split(studies: Sequence[dict], labels: pd.DataFrame | None = None) -> dict[str, tuple[str, str]]:
    """case id -> (true class, split per study) from a labels table (``case_id, her2``) and/or the studies' own
    labels: stage 1 gives positive vs negative, stage 2 refines negative into low or zero."""
    truth: dict[str, str] = {}
    where: dict[str, list[str]] = {}
    for st in sorted(studies, key=lambda s: s["task"]):
        meth = st.get("methods") or {}
        ids, ys = meth.get("case_ids") or {}, meth.get("y") or {}
        for split, cases in ids.items():
            for cid, yv in zip(cases, ys.get(split) or [None] * len(cases), strict=False):
                where.setdefault(str(cid), []).append(f"{st['task']}: {split}")
                if st["task"] == "stage1" and yv is not None:
                    truth.setdefault(str(cid), "positive" if yv else "negative")
                elif st["task"] == "stage2" and yv is not None:
                    truth[str(cid)] = "low" if yv else "zero"
    if labels is not None:
        truth.update({str(c): str(v) for c, v in zip(labels["case_id"], labels["her2"], strict=True)})
    return {cid: (truth.get(cid, ""), "; ".join(where.get(cid, []))) for cid in set(truth) | set(where)}


def study_section(study: dict, intended_use: str) -> str:
    models = study["models"]
    title = study["title"]
    parts = [f'<section id="{html.escape(study["task"])}"><h2>{html.escape(title)}</h2>', _banner(intended_use)]
    if study.get("chosen"):
        parts.append(f"<p>Model chosen by the study: <b>{html.escape(str(study['chosen']))}</b></p>")
    for note in study.get("notes") or []:
        parts.append(f"<p class=muted>{html.escape(str(note))}</p>")
    parts.append(_model_table(models))
    parts.append(methods_section(study))
    if any(m["scores"] for m in models):
        parts.append(roc_figure(models, title))
        parts.append("<h3>DeLong tests (paired AUC differences)</h3>")
        shown = False
        parts.append('<div class="row">')
        for split in _splits(models):
            given = (study.get("delong") or {}).get(split)
            mat = ((list(given.get("names") or given.get("models")), np.asarray(given["p"], float)) if given
                   else delong_p_values(models, split))
            if mat is not None and len(mat[0]) >= 2:
                parts.append(delong_figure(mat[0], mat[1], split))
                shown = True
        parts.append("</div>")
        if not shown:
            parts.append("<p class=muted>No paired comparison available (fewer than two models on the same cases).</p>")
        parts.append(calibration_figure(models, title))
        parts.append(decision_figure(models, title))
    else:
        parts.append("<p class=muted>The study holds no per-case scores: ROC, calibration and decision curves omitted.</p>")
    parts.append(gdi_figure(models, title))
    parts.append("<h3>Selected features and coefficients</h3>")
    parts.append(coefficients_figure(models, title))
    parts.extend(_coef_table(m) for m in models)
    parts.append("</section>")
    return "\n".join(parts)


def predictions_section(table: pd.DataFrame, contributions: pd.DataFrame, intended_use: str,
                        intercepts: Mapping[str, float] | None = None, max_cases: int = 50,
                        truth: Mapping[str, tuple[str, str]] | None = None) -> str:
    """The predictions table (with each case's true class and split when labels or studies give them) and one
    section per case (probabilities, contributions, warnings)."""
    intercepts = dict(intercepts or {})
    if not intercepts:
        intercepts = _intercepts_from(table, contributions)
    cols = ["case_id", "p_positive", "p_low", "p_zero", "stage1_call", "stage2_call"]
    truth = {k: v for k, v in (truth or {}).items() if k in set(table["case_id"].astype(str))}
    head = "".join(f"<th>{c}</th>" for c in cols) + ("<th>true class</th><th>split</th>" if truth else "") + \
        "<th class=l>warnings</th>"
    rows = []
    for _, r in table.iterrows():
        n_w = len([w for w in str(r.get("warnings", "") or "").split(" | ") if w and w != "nan"])
        t = truth.get(str(r["case_id"]), ("", "")) if truth else None
        extra = (f"<td class=l>{html.escape(t[0])}</td><td class=l>{html.escape(t[1] or 'not in a study')}</td>"
                 if t else "")
        rows.append("<tr>" + "".join(
            f"<td>{_fmt(r[c]) if c.startswith('p_') else html.escape(str(r[c]))}</td>" for c in cols
        ) + extra + f"<td class=l>{n_w or ''}</td></tr>")
    parts = ['<section id="predictions"><h2>Predictions</h2>', _banner(intended_use),
             "<p>P(positive) = p1, P(low) = (1 - p1) p2, P(zero) = (1 - p1)(1 - p2); each stage called at its "
             "training Youden cut-off. Stage 2 is always computed and flagged when stage 1 calls positive.</p>",
             f"<table><tr>{head}</tr>{''.join(rows)}</table></section>"]
    for _, r in table.head(max_cases).iterrows():
        cid = str(r["case_id"])
        c = contributions[contributions["case_id"].astype(str) == cid]
        parts.append(f'<section class="case" id="case-{html.escape(cid)}"><h2>Case {html.escape(cid)}</h2>')
        parts.append(_banner(intended_use))
        parts.append(probability_figure(r))
        lines = [f"stage 1: p1 = {_fmt(r.get('p1'))} (cut-off {_fmt(r.get('stage1_cutoff'))}) → <b>{html.escape(str(r['stage1_call']))}</b>"
                 + (f", GDI zone {_zone_badge(str(r.get('stage1_gdi_zone')))}" if r.get("stage1_gdi_zone") else "")]
        if str(r.get("stage2_call", "")) not in ("", "nan"):
            flag = " <span class=warn>[flagged: stage 1 called positive]</span>" if str(r.get("stage2_flagged")) == "True" else ""
            lines.append(f"stage 2: p2 = {_fmt(r.get('p2'))} (cut-off {_fmt(r.get('stage2_cutoff'))}) → "
                         f"<b>{html.escape(str(r['stage2_call']))}</b>{flag}"
                         + (f", GDI zone {_zone_badge(str(r.get('stage2_gdi_zone')))}" if r.get("stage2_gdi_zone") else ""))
        parts.append("<p>" + "<br>".join(lines) + "</p>")
        if len(c):
            parts.append(contributions_figure(c, cid, intercepts))
            parts.append(_contrib_table(c))
        warns = [w for w in str(r.get("warnings", "") or "").split(" | ") if w and w != "nan"]
        if warns:
            parts.append("<ul>" + "".join(f"<li class=warn>{html.escape(w)}</li>" for w in warns) + "</ul>")
        parts.append("</section>")
    if len(table) > max_cases:
        parts.append(f"<p class=muted>{len(table) - max_cases} more cases in the predictions table.</p>")
    return "\n".join(parts)


def _intercepts_from(table: pd.DataFrame, contrib: pd.DataFrame) -> dict[str, float]:
    """Each stage's intercept: the ``stage{k}_intercept`` column, else logit(p) - sum(contributions) (exact)."""
    out: dict[str, float] = {}
    for stage, col in (("stage1", "p1"), ("stage2", "p2")):
        icol = f"{stage}_intercept"
        if icol in table.columns and pd.notna(table[icol].iloc[0]):
            out[stage] = float(table[icol].iloc[0])
            continue
        for _, r in table.iterrows():
            p = float(r.get(col, float("nan")))
            c = contrib[(contrib["case_id"].astype(str) == str(r["case_id"])) & (contrib["stage"] == stage)]
            if len(c) and 1e-12 < p < 1 - 1e-12:
                out[stage] = math.log(p / (1 - p)) - float(c["contribution"].sum())
                break
    return out


def _contrib_table(c: pd.DataFrame, top: int = 10) -> str:
    rows = []
    for stage, g in c.groupby("stage", sort=True):
        g = g.reindex(g["contribution"].abs().sort_values(ascending=False).index).head(top)
        for _, s in g.iterrows():
            rows.append(f"<tr><td class=l>{stage}</td><td class=l>{html.escape(feature_label(s['feature']))}</td>"
                        f"<td>{float(s['value']):.4g}</td><td>{float(s['z']):+.2f}</td><td>{float(s['coefficient']):+.3f}</td>"
                        f"<td>{float(s['contribution']):+.3f}</td></tr>")
    return ("<table><tr><th class=l>stage</th><th class=l>feature</th><th>value</th><th>z</th><th>coefficient</th>"
            f"<th>contribution</th></tr>{''.join(rows)}</table>")


def build_report(studies: Sequence[dict] = (), predictions: tuple[pd.DataFrame, pd.DataFrame] | None = None, *,
                 title: str = "HER2Radiomics report", intended_use: str | None = None,
                 intercepts: Mapping[str, float] | None = None, extra_html: str = "",
                 labels: pd.DataFrame | None = None, max_cases: int = 50) -> str:
    """The report as one HTML string (figures embedded). ``studies`` are :func:`normalize_study` outputs;
    ``labels`` (``case_id, her2``) adds each predicted case's true class (the studies' labels are used too)."""
    if not studies and predictions is None:
        raise UserError("nothing to report; give --study and/or --predictions")
    texts = []
    if predictions is not None and "intended_use" in predictions[0].columns:
        texts += [str(t) for t in predictions[0]["intended_use"].dropna().unique() if str(t) and str(t) != "nan"]
    for s in studies:
        for t in [s.get("intended_use")] + [m["card"].get("intended_use") for m in s["models"]]:
            if t and t not in texts:
                texts.append(str(t))
    texts = [t for t in texts if not any(t != u and t in u for u in texts)]  # drop texts contained in another
    line = intended_use or (" ".join(texts) if texts else NOT_FOR_CLINICAL_USE)
    if "not for clinical use" not in line.lower():
        line = f"{line} {NOT_FOR_CLINICAL_USE}"
    nav = "".join(f'<a href="#{html.escape(s["task"])}">{html.escape(s["title"])}</a>' for s in studies)
    if studies:
        nav += '<a href="#clear">CLEAR checklist</a>'
    if predictions is not None:
        nav += '<a href="#predictions">Predictions</a>'
    body = [f"<header><h1>{html.escape(title)}</h1><div class=muted style='color:#cfd8dc'>her2radiomics {__version__}"
            f" · method: Gao et al. 2026, BMC Cancer (doi:10.1186/s12885-026-15688-x)</div></header><main>",
            _banner(line), f"<nav>{nav}</nav>", extra_html]
    body += [study_section(s, line) for s in studies]
    if studies:
        body.append(clear_section(studies, predictions is not None, line))
    if predictions is not None:
        truth = truth_and_split(studies, labels) if (studies or labels is not None) else None
        body.append(predictions_section(predictions[0], predictions[1], line, intercepts, max_cases=max_cases,
                                        truth=truth))
    body.append(f"<p class=muted>{html.escape(line)}</p></main>")
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>" + html.escape(title) + "</title><style>"
            + _CSS + "</style></head><body>" + "\n".join(body) + "</body></html>")


def write_report(path: str | Path, studies: Sequence[dict] = (), predictions=None, **kw: Any) -> Path:
    from her2radiomics.io import write_text
    text = build_report(studies, predictions, **kw)
    write_text(text, path)
    return Path(path)
