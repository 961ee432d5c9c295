"""Nomogram of a logistic model (rad-score and/or clinical variables), as R's ``rms::nomogram`` draws it.

Construction (Harrell, Regression Modeling Strategies, 2nd ed. 2015, sec. 10.8; ``rms::nomogram``): each
variable ``j`` contributes ``c_j(x) = b_j * x`` (a categorical variable: ``b`` of its level, 0 for the
reference level) to the linear predictor. Over the variable's training range (continuous) or levels
(categorical) the contribution spans ``R_j = max c_j - min c_j``; the variable with the largest span gets the
0-100 *points* scale and every other is drawn to the same scale::

    points_j(x) = 100 * (c_j(x) - min c_j) / max_k R_k

so the total points ``T = sum_j points_j`` map back to the linear predictor exactly,
``lp = b0 + sum_j min c_j + T * max_k R_k / 100`` and ``P = 1 / (1 + exp(-lp))``. :func:`scales` returns
these scales as plain data (:func:`card_scales`: a model card's); :func:`rows` lays them out as the nomogram's
axes, which the report draws with matplotlib (:func:`draw`) and the Slicer panel with pillow (:func:`render_png`,
no matplotlib: it runs in a fresh 3D Slicer, before the dependency prompt); :func:`total_points` and
:func:`probability` read a case off them (tests check that the reading equals the model's own ``predict_proba``).
This module imports numpy only (pillow and matplotlib inside the functions that draw).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

MIN_LABEL_GAP = 4.5     # points (of the 0-100 axis) between two tick labels drawn on one row
RAD_SCORE = "rad_score"   # the term name of the rad-score (clinical.RAD_SCORE)
PNG_WIDTH = 560         # px: the pillow drawing's width (fits the Slicer module panel)
PROBABILITY_TICKS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def _nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    if not hi > lo:
        return [float(lo)]
    if float(lo).is_integer() and float(hi).is_integer() and hi - lo <= 10:   # a coded variable: 0/1, stage 1-4
        return [float(v) for v in range(int(lo), int(hi) + 1)]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    first = math.ceil(lo / step) * step
    ticks = [round(v, 10) for v in np.arange(first, hi + step * 1e-9, step)]
    return [float(lo), *[t for t in ticks if lo < t < hi], float(hi)]


def _variables(model: Mapping) -> list[dict]:
    """Group the model's terms into nomogram variables: rad_score, numeric, and categorical (several dummies)."""
    coef = dict(zip(model["terms"], (float(c) for c in model["coefficients"]), strict=True))
    ranges = model.get("ranges", {})
    out = []
    if RAD_SCORE in coef:
        lo, hi = ranges[RAD_SCORE]
        out.append({"name": "Rad-score", "term": RAD_SCORE, "kind": "continuous", "coef": coef[RAD_SCORE],
                    "range": [lo, hi]})
    for v in model["variables"]:
        if v["kind"] == "numeric":
            lo, hi = ranges[v["name"]]
            out.append({"name": v["name"], "term": v["name"], "kind": "continuous", "coef": coef[v["name"]],
                        "range": [lo, hi]})
        else:
            levels = []
            for lv in v["levels"]:
                col = f"{v['name']}={lv}"
                levels.append({"level": lv, "contribution": coef.get(col, 0.0) if lv != v["reference"] else 0.0})
            out.append({"name": v["name"], "kind": "categorical", "reference": v["reference"], "levels": levels})
    return out


def scales(model) -> dict:
    """The nomogram's scales of a fitted logit model (clinical.LinearModel, or its JSON record as a card stores it:
    ``terms``, ``coefficients``, ``intercept``, ``variables``, ``ranges``, ``kind``) as plain data (JSON-able).

    ``{"points_per_lp": 100 / max span, "lp_at_zero": b0 + sum min c_j, "variables": [{"name", "kind",
    "ticks": [{"value", "points"}]} or {"name", "kind": "categorical", "levels": [{"level", "points"}]}],
    "total_points": {"max", "ticks"}, "probability": [{"p", "total_points"}]}``."""
    model = model.to_json() if hasattr(model, "to_json") else model
    vars_ = _variables(model)
    spans, mins = [], []
    for v in vars_:
        if v["kind"] == "continuous":
            c = [v["coef"] * v["range"][0], v["coef"] * v["range"][1]]
        else:
            c = [lv["contribution"] for lv in v["levels"]]
        mins.append(min(c))
        spans.append(max(c) - min(c))
    big = max(spans) if spans and max(spans) > 0 else 1.0
    ppl = 100.0 / big
    out_vars = []
    for v, cmin in zip(vars_, mins, strict=True):
        if v["kind"] == "continuous":
            ticks = [{"value": t, "points": ppl * (v["coef"] * t - cmin)} for t in _nice_ticks(*v["range"])]
            out_vars.append({"name": v["name"], "term": v["term"], "kind": "continuous", "coef": v["coef"],
                             "min_contribution": cmin, "range": v["range"], "ticks": ticks})
        else:
            out_vars.append({"name": v["name"], "kind": "categorical", "reference": v["reference"],
                             "levels": [{"level": lv["level"], "points": ppl * (lv["contribution"] - cmin)}
                                        for lv in v["levels"]]})
    lp0 = float(model["intercept"]) + sum(mins)
    tmax = sum(ppl * s for s in spans)
    prob = []
    for p in PROBABILITY_TICKS:
        t = (math.log(p / (1 - p)) - lp0) * ppl
        if 0 <= t <= tmax:
            prob.append({"p": p, "total_points": t})
    return {"model": model["kind"], "points_per_lp": ppl, "lp_at_zero": lp0, "variables": out_vars,
            "total_points": {"max": tmax, "ticks": _nice_ticks(0.0, tmax, 8)}, "probability": prob,
            "reference": "Harrell, Regression Modeling Strategies 2015, sec. 10.8 (rms::nomogram)"}


def variable_points(sc: Mapping, name: str, value) -> float:
    """Points of one variable at ``value`` (a number, or a level for a categorical variable)."""
    for v in sc["variables"]:
        if v["name"] != name:
            continue
        if v["kind"] == "continuous":
            return sc["points_per_lp"] * (v["coef"] * float(value) - v["min_contribution"])
        for lv in v["levels"]:
            if lv["level"] == str(value):
                return lv["points"]
        raise KeyError(f"level {value!r} of {name!r}")
    raise KeyError(name)


def total_points(sc: Mapping, values: Mapping) -> float:
    """Sum of the points of every variable (``values``: name -> value; ``Rad-score`` for the rad-score)."""
    return sum(variable_points(sc, v["name"], values[v["name"]]) for v in sc["variables"])


def probability(sc: Mapping, total: float) -> float:
    """Total points -> predicted probability (the bottom axes of the nomogram)."""
    lp = sc["lp_at_zero"] + total / sc["points_per_lp"]
    return 1.0 / (1.0 + math.exp(-lp))


def card_scales(card: Mapping, model: str = "combined") -> dict | None:
    """The nomogram scales of a model card's ``clinical_models`` (``model``: ``combined`` or ``clinical``); None for
    a card trained without --clinical. The combined model's are stored in the card (``clinical_models.nomogram``);
    otherwise they are computed from the model's JSON record (clinical.LinearModel.to_json), without pandas."""
    sec = card.get("clinical_models")
    if not sec:
        return None
    if model == "combined" and sec.get("nomogram"):
        return dict(sec["nomogram"])
    return scales(sec[model])


def rows(sc: Mapping) -> list[tuple[str, list[tuple[float, str]]]]:
    """The nomogram's axes, top to bottom: ``[(label, [(x on the 0-100 points axis, tick text), ...]), ...]``:
    Points, one row per variable, Total points and Probability (the last two drawn on the same 0-100 width)."""
    out = [("Points", [(float(t), f"{t:g}") for t in range(0, 101, 10)])]
    for v in sc["variables"]:
        if v["kind"] == "continuous":
            out.append((v["name"], [(t["points"], f"{t['value']:.3g}") for t in v["ticks"]]))
        else:
            out.append((f"{v['name']} (ref {v['reference']})", [(lv["points"], lv["level"]) for lv in v["levels"]]))
    tmax = sc["total_points"]["max"]
    scale_tot = 100.0 / tmax if tmax > 0 else 1.0       # total points drawn on the same width as 0-100
    out.append(("Total points", [(t * scale_tot, f"{t:.0f}") for t in sc["total_points"]["ticks"]]))
    out.append(("Probability", [(q["total_points"] * scale_tot, f"{q['p']:g}") for q in sc["probability"]]))
    return out


def figure(sc: Mapping, title: str = "Nomogram"):
    """The nomogram as a matplotlib figure (points row, one row per variable, total points, probability) and its
    axes (:func:`rows`)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    axes = rows(sc)
    fig, ax = plt.subplots(figsize=(8.5, 0.55 * len(axes) + 0.8))
    for i, (name, ticks) in enumerate(axes):
        yv = len(axes) - i
        xs = [x for x, _ in ticks]
        if xs:
            ax.plot([min(xs), max(xs)], [yv, yv], color="black", lw=1)
        shown: list[float] = []
        for x, lab in sorted(ticks, key=lambda t: t[0]):
            ax.plot([x, x], [yv, yv + 0.12], color="black", lw=1)
            if all(abs(x - s) >= MIN_LABEL_GAP for s in shown):   # labels closer than that would overprint
                ax.text(x, yv + 0.18, lab, ha="center", va="bottom", fontsize=7)
                shown.append(x)
        ax.text(-4, yv, name, ha="right", va="center", fontsize=8)
    ax.set_xlim(-45, 105)
    ax.set_ylim(0.4, len(axes) + 0.8)
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig, axes


def draw(sc: Mapping, png: str | os.PathLike[str] | None = None, svg: str | os.PathLike[str] | None = None,
         title: str = "Nomogram"):
    """Write the nomogram (:func:`figure`) to PNG and/or SVG; returns its rows."""
    import matplotlib.pyplot as plt

    fig, axes = figure(sc, title)
    for path in (png, svg):
        if path:
            fig.savefig(path, dpi=150 if str(path).endswith(".png") else None)
    plt.close(fig)
    return axes


def _font(size: int):
    """Pillow's own font at ``size`` px (FreeType, Pillow >= 10.1), else its fixed bitmap font."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):   # older Pillow, or built without FreeType
        return ImageFont.load_default()


def render_png(sc: Mapping, png: str | os.PathLike[str] | None = None, title: str = "Nomogram",
               width: int = PNG_WIDTH) -> tuple[bytes, dict]:
    """The nomogram (:func:`rows`) drawn with pillow (bundled with 3D Slicer; no matplotlib) as PNG bytes, also
    written to ``png`` when given, and its layout: ``{"width", "height", "axis": (x0, x1) pixels of points 0 and
    100, "rows": [{"name", "y", "ticks": [{"at": points, "x": pixel, "label", "shown"}]}]}``. A tick label
    that would overlap the previous one on its row is not drawn (``shown`` False), as :func:`figure` does."""
    from PIL import Image, ImageDraw

    axes = rows(sc)
    font, title_font = _font(11), _font(12)
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))

    def text_width(text: str, f=font) -> float:
        return probe.textlength(text, font=f)

    x0 = min(max(text_width(name) for name, _ in axes) + 14, 0.45 * width)
    x1 = width - 18
    top, row_h = 28, 34
    height = top + row_h * len(axes) + 12
    im = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(im)
    draw.text((width / 2, 6), title, fill="black", font=title_font, anchor="mt")
    layout_rows = []
    for i, (name, ticks) in enumerate(axes):
        y = top + row_h * i + row_h - 8
        placed = [{"at": float(at), "x": x0 + (x1 - x0) * float(at) / 100.0, "label": label}
                  for at, label in sorted(ticks, key=lambda t: t[0])]
        if placed:
            draw.line([(placed[0]["x"], y), (placed[-1]["x"], y)], fill="black", width=1)
        right_edge = -math.inf
        for t in placed:
            draw.line([(t["x"], y), (t["x"], y - 5)], fill="black", width=1)
            half = text_width(t["label"]) / 2
            t["shown"] = t["x"] - half >= right_edge + 3
            if t["shown"]:
                draw.text((t["x"], y - 7), t["label"], fill="black", font=font, anchor="mb")
                right_edge = t["x"] + half
        draw.text((x0 - 8, y), name, fill="black", font=font, anchor="rm")
        layout_rows.append({"name": name, "y": y, "ticks": placed})
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    data = buf.getvalue()
    if png:
        Path(png).write_bytes(data)
    return data, {"width": width, "height": height, "axis": (x0, x1), "rows": layout_rows}

