"""Clinical covariates: encoding, univariate -> multivariate logistic regression, clinical and combined models.

The related studies (issue 15; e.g. the multiparametric MRI HER2 study's Table 2) build a *clinical* model by
univariate logistic regression of each clinical variable (keep p < 0.05) followed by one multivariate logistic
regression of the kept variables, and a *combined* model of the radiomics rad-score plus those variables. This
module holds that part, Qt-free and independent of the radiomics pipeline:

- :func:`parse_spec` / :func:`encode`: ``COL`` (numeric when every value reads as a number, else categorical),
  ``COL:cat`` (categorical), ``COL:cat=REF`` (categorical with reference level REF). A categorical variable is
  one-hot coded against its reference level (default: the first level in sorted order, as R's ``factor``);
  the reference is stored in the encoding record. Missing values are imputed with the training median
  (numeric) or the training mode (categorical) and counted.
- :func:`fit_logistic`: unpenalised maximum-likelihood logistic regression by Newton-Raphson (= IRLS for the
  canonical logit link; McCullagh & Nelder, Generalized Linear Models, 2nd ed. 1989, sec. 4.4), Wald standard
  errors from the inverse observed information, ``OR = exp(b)``, 95% CI ``exp(b +- 1.959964 SE)``, two-sided
  Wald p from the normal distribution: the numbers R's ``summary(glm(..., family = binomial))`` and
  ``exp(confint.default(fit))`` print (checked in Testing/Python/test_clinical.py against R).
- :func:`select_univariate`: one model per variable; a variable is kept when any of its coefficients has
  Wald p < ``alpha`` (0.05).
- :class:`LinearModel`: a fitted logit model on named terms (``rad_score`` and encoded clinical columns), JSON
  round-trip, ``predict_proba``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from her2radiomics.errors import UserError

Z95 = 1.959963984540054     # standard normal 0.975 quantile
RAD_SCORE = "rad_score"


# ============================================================================================ variable specs
@dataclass
class VariableSpec:
    """One ``--clinical`` entry: column name, kind (auto/numeric/categorical) and the reference level."""

    column: str
    kind: str = "auto"             # auto | categorical
    reference: str | None = None


def parse_spec(text: str) -> VariableSpec:
    """``COL``, ``COL:cat`` or ``COL:cat=REF`` -> VariableSpec (UserError for another suffix)."""
    col, sep, rest = str(text).partition(":")
    col = col.strip()
    if not col:
        raise UserError(f"--clinical entry {text!r} has no column name; write COL, COL:cat or COL:cat=REF")
    if not sep:
        return VariableSpec(col)
    kind, _, ref = rest.partition("=")
    if kind.strip().lower() not in ("cat", "categorical"):
        raise UserError(f"--clinical entry {text!r}: unknown kind {kind!r}; write COL, COL:cat or COL:cat=REF")
    return VariableSpec(col, "categorical", ref.strip() or None)


def _as_number(v: str) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _level_text(v: str) -> str:
    """A categorical level as text: '2.0' -> '2' (numbers keep their integer form), text stripped."""
    f = _as_number(v)
    if f is not None and f == int(f):
        return str(int(f))
    return str(v).strip()


def _level_key(level: str):
    f = _as_number(level)
    return (0, f, "") if f is not None else (1, 0.0, level)


# ============================================================================================ encoding
def _blank(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip().lower() in ("", "na", "nan", "none")


def encoding_record(raw: pd.DataFrame, specs: Sequence[VariableSpec]) -> list[dict]:
    """How each clinical variable is coded, learnt from the *training* rows ``raw`` (text or numbers).

    Numeric: ``{"name", "kind": "numeric", "columns": [name], "impute": median}``. Categorical:
    ``{"name", "kind": "categorical", "levels": [...], "reference": REF, "columns": ["name=level", ...],
    "impute": mode}`` (one column per non-reference level).
    """
    out = []
    for s in specs:
        vals = [v for v in raw[s.column].tolist() if not _blank(v)]
        if not vals:
            raise UserError(f"clinical column {s.column!r} has no value on the training cases; drop it from --clinical")
        nums = [_as_number(v) for v in vals]
        if s.kind == "auto" and all(n is not None for n in nums):
            out.append({"name": s.column, "kind": "numeric", "columns": [s.column],
                        "impute": float(np.median(np.array(nums, dtype=float)))})
            continue
        levels = sorted({_level_text(v) for v in vals}, key=_level_key)
        if len(levels) < 2:
            raise UserError(f"clinical column {s.column!r} has a single level ({levels[0]!r}) on the training cases; "
                            "drop it from --clinical")
        ref = levels[0] if s.reference is None else _level_text(s.reference)
        if ref not in levels:
            raise UserError(f"--clinical {s.column}:cat={s.reference}: level {s.reference!r} not in the column "
                            f"(levels: {', '.join(levels)})")
        counts = pd.Series([_level_text(v) for v in vals]).value_counts()
        mode = sorted(counts.index[counts == counts.max()], key=_level_key)[0]
        out.append({"name": s.column, "kind": "categorical", "levels": levels, "reference": ref,
                    "columns": [f"{s.column}={lv}" for lv in levels if lv != ref], "impute": mode})
    return out


def encode(raw: pd.DataFrame, record: Sequence[dict]) -> tuple[pd.DataFrame, int]:
    """Design columns of ``raw`` under ``record`` (encoding_record); returns (frame, number of imputed values).

    A categorical level not seen in training is an error (one line naming it)."""
    cols: dict[str, np.ndarray] = {}
    n_imputed = 0
    for v in record:
        x = raw[v["name"]].tolist()
        miss = np.array([_blank(t) for t in x], dtype=bool)
        n_imputed += int(miss.sum())
        if v["kind"] == "numeric":
            a = np.array([v["impute"] if m else _as_number(t) for t, m in zip(x, miss, strict=True)], dtype=object)
            bad = [t for t, m, n in zip(x, miss, a, strict=True) if not m and n is None]
            if bad:
                raise UserError(f"clinical column {v['name']!r} is numeric but has the value {bad[0]!r}; fix it or "
                                f"pass it as {v['name']}:cat")
            cols[v["name"]] = a.astype(float)
        else:
            lv = [v["impute"] if m else _level_text(t) for t, m in zip(x, miss, strict=True)]
            unknown = sorted(set(lv) - set(v["levels"]))
            if unknown:
                raise UserError(f"clinical column {v['name']!r} has level {unknown[0]!r} not seen in training "
                                f"(levels: {', '.join(v['levels'])}); fix the value or retrain")
            for c, level in zip(v["columns"], [lvl for lvl in v["levels"] if lvl != v["reference"]], strict=True):
                cols[c] = np.array([t == level for t in lv], dtype=float)
    return pd.DataFrame(cols, index=raw.index), n_imputed


# ============================================================================================ logistic regression
def fit_logistic(X: np.ndarray, y: np.ndarray, names: Sequence[str], *, max_iter: int = 100,
                 tol: float = 1e-10, firth: bool = False) -> dict:
    """Unpenalised logistic regression with an intercept by Newton-Raphson; Wald SE, OR, 95% CI and p.

    Stops when the largest coefficient change is below ``tol`` (R's glm stops on the relative deviance change
    1e-8; both reach the same maximum to ~1e-8 on a regular problem). Refuses (one line) a design that is
    singular or separates the classes (coefficients diverging), where ORs are not defined. ``firth=True``
    maximises Firth's penalised likelihood instead (score ``X'(y - p + h (1/2 - p))`` with ``h`` the hat
    values; Firth, Biometrika 1993;80:27-38; Heinze & Schemper, Stat Med 2002;21:2409-2419), finite under
    separation; its Wald SEs come from the same information matrix (R's logistf with ``pl = FALSE``).
    """
    from scipy.stats import norm

    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    A = np.column_stack([np.ones(len(y)), X])
    b = np.zeros(A.shape[1])
    ybar = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    b[0] = math.log(ybar / (1 - ybar))
    converged = False
    separation = UserError(f"the clinical logistic regression on {', '.join(names)} does not converge (the "
                           "variables separate the classes perfectly); drop or merge the separating variable or level")
    for it in range(max_iter):
        eta = A @ b
        p = 1.0 / (1.0 + np.exp(-eta))
        w = p * (1 - p)
        info = A.T @ (A * w[:, None])
        try:
            if np.linalg.cond(info) > 1e14:
                raise np.linalg.LinAlgError
            resid = y - p
            if firth:
                Aw = A * np.sqrt(w)[:, None]
                h = np.einsum("ij,ij->i", Aw @ np.linalg.inv(info), Aw)
                resid = resid + h * (0.5 - p)
            step = np.linalg.solve(info, A.T @ resid)
            if firth:
                step = step * min(1.0, 5.0 / max(np.max(np.abs(step)), 1e-300))   # logistf's maxstep 5
        except np.linalg.LinAlgError:
            if it > 0 and np.max(np.abs(b)) > 10:
                raise separation from None
            raise UserError(f"the clinical logistic regression on {', '.join(names)} is singular (a variable is "
                            "constant or duplicates another); drop one from --clinical") from None
        b = b + step
        if np.max(np.abs(step)) < tol:
            converged = True
            break
    eta = A @ b
    p = 1.0 / (1.0 + np.exp(-eta))
    if not firth and (not converged or np.max(np.abs(b)) > 30 or min(p.min(), 1 - p.max()) < 1e-10):
        raise separation
    if firth and not converged:
        raise UserError(f"Firth's logistic regression on {', '.join(names)} did not converge; drop a variable")
    w = p * (1 - p)
    cov = np.linalg.inv(A.T @ (A * w[:, None]))
    se = np.sqrt(np.diag(cov))
    z = b / se
    pv = 2 * norm.sf(np.abs(z))
    rows = []
    for j, n in enumerate(["(Intercept)", *names]):
        rows.append({"term": n, "coef": float(b[j]), "se": float(se[j]), "z": float(z[j]), "p": float(pv[j]),
                     "or": float(math.exp(b[j])), "or_ci": [float(math.exp(b[j] - Z95 * se[j])),
                                                           float(math.exp(b[j] + Z95 * se[j]))]})
    dev = -2 * float(np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)))
    return {"intercept": float(b[0]), "coefficients": [float(v) for v in b[1:]], "terms": list(names),
            "table": rows, "deviance": dev, "n": int(len(y)), "n_event": int(y.sum()),
            "estimator": "Firth penalised likelihood" if firth else "maximum likelihood"}


def fit_logistic_or_firth(X: np.ndarray, y: np.ndarray, names: Sequence[str], notes: list[str] | None = None,
                          what: str = "") -> dict:
    """fit_logistic; under separation, Firth's penalised likelihood with a note (finite ORs, wide CIs)."""
    try:
        return fit_logistic(X, y, names)
    except UserError as exc:
        if "separate the classes" not in str(exc):
            raise
        if notes is not None:
            notes.append(f"{what or ', '.join(names)}: the classes are separated on the training split; Firth's "
                         "penalised logistic regression used (Heinze & Schemper 2002)")
        return fit_logistic(X, y, names, firth=True)


def select_univariate(D: pd.DataFrame, y: np.ndarray, record: Sequence[dict], alpha: float = 0.05,
                      notes: list[str] | None = None) -> dict:
    """Univariate logistic regression of every clinical variable (all its design columns together).

    Returns ``{"alpha", "univariate": [{"name", "table": [...], "p_min", "kept"}], "selected": [names]}``; a
    variable is kept when any of its Wald p-values is < ``alpha``."""
    uni = []
    for v in record:
        r = fit_logistic_or_firth(D[v["columns"]].to_numpy(), y, v["columns"], notes, f"univariate {v['name']}")
        p_min = min(t["p"] for t in r["table"][1:])
        uni.append({"name": v["name"], "table": r["table"][1:], "p_min": p_min, "kept": bool(p_min < alpha)})
    return {"alpha": alpha, "univariate": uni, "selected": [u["name"] for u in uni if u["kept"]]}


# ============================================================================================ fitted model
@dataclass
class LinearModel:
    """A fitted logit model ``P = 1 / (1 + exp(-(b0 + sum b_j x_j)))`` on named terms.

    ``terms`` are ``rad_score`` (the radiomics card's linear predictor) and/or encoded clinical columns
    (``age_years``, ``T_stage=3``, ...); ``variables`` is the encoding record of the clinical variables used."""

    kind: str                          # clinical | combined
    terms: list[str]
    coefficients: list[float]
    intercept: float
    variables: list[dict]
    table: list[dict] = field(default_factory=list)
    ranges: dict[str, list[float]] = field(default_factory=dict)   # term -> [min, max] on the training cases

    def to_json(self) -> dict:
        return {"kind": self.kind, "terms": self.terms, "coefficients": self.coefficients,
                "intercept": self.intercept, "variables": self.variables, "table": self.table, "ranges": self.ranges}

    @classmethod
    def from_json(cls, d: dict) -> LinearModel:
        return cls(kind=d["kind"], terms=list(d["terms"]), coefficients=[float(c) for c in d["coefficients"]],
                   intercept=float(d["intercept"]), variables=list(d["variables"]), table=list(d.get("table", [])),
                   ranges=dict(d.get("ranges", {})))

    def linear_predictor(self, T: pd.DataFrame) -> np.ndarray:
        """``b0 + T @ b`` for a frame ``T`` holding the term columns."""
        return self.intercept + np.asarray(T[self.terms], dtype=float) @ np.asarray(self.coefficients, dtype=float)

    def predict_proba(self, T: pd.DataFrame) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.linear_predictor(T)))

    def formula(self, digits: int = 4) -> str:
        parts = [f"{self.intercept:.{digits}f}"]
        for t, b in zip(self.terms, self.coefficients, strict=True):
            parts.append(f"{'-' if b < 0 else '+'} {abs(b):.{digits}f} * [{t}]")
        return "logit(P) = " + " ".join(parts)


def fit_linear_model(kind: str, T: pd.DataFrame, y: np.ndarray, variables: Sequence[dict],
                     notes: list[str] | None = None) -> LinearModel:
    """Unpenalised logistic regression on every column of ``T`` (fit_logistic; Firth under separation when
    ``notes`` is given to receive the note), as a LinearModel."""
    terms = list(T.columns)
    r = (fit_logistic(T.to_numpy(dtype=float), y, terms) if notes is None else
         fit_logistic_or_firth(T.to_numpy(dtype=float), y, terms, notes, f"{kind} model"))
    A = T.to_numpy(dtype=float)
    ranges = {t: [float(A[:, j].min()), float(A[:, j].max())] for j, t in enumerate(terms)}
    return LinearModel(kind=kind, terms=terms, coefficients=r["coefficients"], intercept=r["intercept"],
                       variables=list(variables), table=r["table"], ranges=ranges)


def term_frame(D: pd.DataFrame, variables: Sequence[dict], rad_score: np.ndarray | None = None) -> pd.DataFrame:
    """The columns a LinearModel reads: ``rad_score`` (if given) then the variables' design columns."""
    cols = [c for v in variables for c in v["columns"]]
    T = D[cols].copy() if cols else pd.DataFrame(index=D.index)
    if rad_score is not None:
        T.insert(0, RAD_SCORE, np.asarray(rad_score, dtype=float))
    return T


# ============================================================================================ the card's section
MODELS = ("radiomics", "clinical", "combined")


def _model_record(m: LinearModel, y_tr: np.ndarray, T_splits: dict[str, pd.DataFrame], y_splits: dict) -> dict:
    from her2radiomics import stats
    from her2radiomics.evaluation import split_metrics

    p_tr = m.predict_proba(T_splits["train"])
    cut = float(stats.youden_cutoff(y_tr, p_tr))
    probs = {sp: m.predict_proba(T) for sp, T in T_splits.items()}
    return {**m.to_json(), "formula": m.formula(), "cutoff": cut,
            "metrics": {sp: split_metrics(y_splits[sp], probs[sp], cut) for sp in T_splits},
            "probabilities": {sp: p.tolist() for sp, p in probs.items()}}


def card_section(card: dict, X: pd.DataFrame, y: np.ndarray, splits: dict[str, np.ndarray], raw: pd.DataFrame,
                 specs: Sequence[VariableSpec], selection: str | None = None, alpha: float = 0.05) -> dict:
    """Clinical and combined models next to a trained radiomics card (``card["clinical_models"]``).

    ``X``: the cohort's features (as the card saw them), ``raw``: the clinical columns as text, indexed like
    ``X``. Fitted on ``splits["train"]``: the encoding (reference levels, imputation values), the univariate
    screen (``selection="univariate"``: keep p < ``alpha``) and the multivariate clinical model with its ORs;
    the combined model is the rad-score (the card's linear predictor) plus the kept clinical variables. Every
    model gets its own Youden cut-off on the training split, metrics on every split, and the three are compared
    by DeLong's test on every split. The nomogram scales of the combined model are stored too."""
    from her2radiomics import nomogram
    from her2radiomics.fitting import rad_score_formula
    from her2radiomics.modelcard import linear_predictor, predict_proba
    from her2radiomics.stats import delong_matrix

    if selection not in (None, "univariate"):
        raise UserError(f"unknown --clinical-selection {selection!r}; use univariate")
    tr = splits["train"]
    raw = raw.reindex(X.index)
    record = encoding_record(raw.iloc[tr], specs)
    D, n_imputed = encode(raw, record)
    notes = []
    if n_imputed:
        notes.append(f"{n_imputed} missing clinical value(s) imputed with the training median (numeric) or mode "
                     "(categorical)")
    uni = select_univariate(D.iloc[tr], y[tr], record, alpha, notes) if selection == "univariate" else None
    if uni is not None:
        kept = [v for v in record if v["name"] in uni["selected"]]
        if not kept:
            best = min(uni["univariate"], key=lambda u: u["p_min"])
            kept = [v for v in record if v["name"] == best["name"]]
            notes.append(f"no clinical variable has univariate p < {alpha}; kept the one with the smallest p "
                         f"({best['name']}, p = {best['p_min']:.3g})")
    else:
        kept = list(record)
    rad = linear_predictor(card, X)
    y_sp = {sp: y[rows] for sp, rows in splits.items()}
    T_cl = term_frame(D, kept)
    T_co = term_frame(D, kept, rad_score=rad)
    clin = fit_linear_model("clinical", T_cl.iloc[tr], y[tr], kept, notes)
    comb = fit_linear_model("combined", T_co.iloc[tr], y[tr], kept, notes)
    rec_cl = _model_record(clin, y[tr], {sp: T_cl.iloc[r] for sp, r in splits.items()}, y_sp)
    rec_co = _model_record(comb, y[tr], {sp: T_co.iloc[r] for sp, r in splits.items()}, y_sp)
    p_rad = predict_proba(card, X)
    delong = {sp: delong_matrix(y[rows], [p_rad[rows], np.asarray(rec_cl["probabilities"][sp]),
                                          np.asarray(rec_co["probabilities"][sp])], list(MODELS))
              for sp, rows in splits.items()}
    return {
        "requested": [s.column for s in specs],
        "encoding": record,
        "selection": {"method": selection or "none (every requested variable)", "alpha": alpha if uni else None,
                      "univariate": uni["univariate"] if uni else None, "kept": [v["name"] for v in kept]},
        "rad_score": {"term": RAD_SCORE, "formula": rad_score_formula(card),
                      "definition": "the radiomics card's linear predictor (log-odds)"},
        "clinical": rec_cl,
        "combined": rec_co,
        "delong": delong,
        "nomogram": nomogram.scales(comb),
        "method": "univariate logistic regression (Wald p < alpha) -> multivariate logistic regression "
                  "(unpenalised ML, Wald 95% CI); combined = rad-score + kept variables",
        "notes": notes,
    }


def predict_section(section: dict, card: dict, X: pd.DataFrame, raw: pd.DataFrame) -> dict[str, np.ndarray]:
    """Probabilities of the three models for new cases (clinical values as text, indexed like ``X``)."""
    from her2radiomics.modelcard import linear_predictor, predict_proba

    raw = raw.reindex(X.index)
    D, _ = encode(raw, section["encoding"])
    clin = LinearModel.from_json(section["clinical"])
    comb = LinearModel.from_json(section["combined"])
    return {"radiomics": predict_proba(card, X),
            "clinical": clin.predict_proba(term_frame(D, clin.variables)),
            "combined": comb.predict_proba(term_frame(D, comb.variables, rad_score=linear_predictor(card, X)))}


def nomogram_scales(card: dict, model: str = "combined") -> dict | None:
    """The nomogram scales (nomogram.scales) of a model card's ``clinical_models`` (``combined`` or ``clinical``;
    None for a card trained without --clinical): nomogram.card_scales, which needs no pandas (the Slicer panel
    calls that one before the dependency prompt)."""
    from her2radiomics import nomogram

    return nomogram.card_scales(card, model)
