"""Options shared by train/study/evaluate/predict for the related studies' models (issue 15):
clinical covariates (``--clinical``) and ComBat harmonisation (``--harmonize combat``).

Without these options nothing here runs, so the default pipeline is unchanged.
"""

from __future__ import annotations

import argparse
import dataclasses

from her2radiomics.commands import lazy_module
from her2radiomics.errors import UserError

targets = lazy_module("her2radiomics.targets")
io = lazy_module("her2radiomics.io")


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("clinical covariates and harmonisation (docs/modeling.md)")
    g.add_argument("--clinical", nargs="+", default=None, metavar="COL",
                   help="clinical columns of the labels table for a clinical and a combined (rad-score + clinical) "
                        "model: COL (numeric if every value is a number), COL:cat or COL:cat=REF (categorical, "
                        "one-hot against reference level REF; default the first level)")
    g.add_argument("--clinical-selection", choices=("univariate",), default=None,
                   help="keep the clinical variables with univariate logistic p < 0.05 before the multivariate "
                        "model (default: every --clinical variable)")
    add_harmonize_arguments(parser)


def add_harmonize_arguments(parser: argparse.ArgumentParser, *, group=None) -> None:
    g = group or parser.add_argument_group("harmonisation")
    g.add_argument("--harmonize", choices=("combat",), default=None,
                   help="ComBat-harmonise the features across batches (neuroCombat) before the model; the card "
                        "stores the per-batch estimates")
    g.add_argument("--batch-column", default=None, metavar="COL",
                   help="batch (scanner/centre) column of the features or labels table, for --harmonize")
    g.add_argument("--harmonize-batch", default=None, metavar="FILE",
                   help="features table of unlabelled cases of a batch the ComBat fit has not seen (with its batch "
                        "column, or ids in the labels table): that batch is estimated from them")


def check(args: argparse.Namespace, *, batch_from_card: bool = False) -> None:
    """One line for options that need another (evaluate/predict take the batch column from the card)."""
    if getattr(args, "harmonize", None) and not args.batch_column and not batch_from_card:
        raise UserError("--harmonize combat needs --batch-column COL (the scanner/centre column)")
    if getattr(args, "batch_column", None) and not args.harmonize:
        raise UserError("--batch-column is used only with --harmonize combat; add it or drop --batch-column")
    if getattr(args, "harmonize_batch", None) and not args.harmonize:
        raise UserError("--harmonize-batch is used only with --harmonize combat; add it or drop --harmonize-batch")
    if getattr(args, "clinical_selection", None) and not getattr(args, "clinical", None):
        raise UserError("--clinical-selection needs --clinical COL [COL ...]")


def active(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "harmonize", None) or getattr(args, "clinical", None))


def _tables(args: argparse.Namespace, spec) -> list[tuple[str, str]]:
    return [(args.features, spec.id_column), (args.labels, spec.labels_id_column or spec.id_column)]


def _drop_columns(cohort, names: set[str]):
    """The cohort without columns that are batch/clinical variables (never features)."""
    low = {n.lower() for n in names}
    keep = [c for c in cohort.X.columns if str(c).lower() not in low]
    if len(keep) == cohort.X.shape[1]:
        return cohort
    return dataclasses.replace(cohort, X=cohort.X[keep], numeric=[c for c in cohort.numeric if c in set(keep)])


def harmonize_training(args: argparse.Namespace, cohort, splits: dict, spec):
    """(cohort with harmonised features, ComBat record) for training; (cohort, None) without --harmonize."""
    from her2radiomics import clinical, harmonize

    names = set()
    if args.batch_column:
        names.add(args.batch_column)
    if getattr(args, "clinical", None):
        names |= {clinical.parse_spec(c).column for c in args.clinical}
    cohort = _drop_columns(cohort, names)
    if not args.harmonize:
        return cohort, None
    batch = harmonize.batch_lookup(cohort.ids, args.batch_column, _tables(args, spec))
    extra = _extra(args, spec)
    X, rec = harmonize.harmonize_cohort_X(cohort.X, batch, splits["train"], cohort.numeric, args.batch_column, extra)
    notes = [*cohort.notes, harmonize_note(rec)]
    return dataclasses.replace(cohort, X=X, notes=notes), rec


def harmonize_note(rec: dict) -> str:
    est = rec.get("estimated_from_new_cases") or []
    return (f"ComBat: {len(rec['features'])} feature(s) harmonised over {rec['batch_column']} batches "
            f"{', '.join(rec['batches'])}" + (f" (estimated from unlabelled cases: {', '.join(est)})" if est else "")
            + (f"; reference batch {rec['reference_batch']}" if rec.get("reference_batch") else ""))


def _extra(args: argparse.Namespace, spec):
    from her2radiomics import harmonize

    if not args.harmonize_batch:
        return None
    t = io.read_table(args.harmonize_batch, "--harmonize-batch table", text_columns=[spec.id_column,
                                                                                          args.batch_column])
    if spec.id_column not in t.columns:
        raise UserError(f"--harmonize-batch table has no id column {spec.id_column!r}; give it the features' ids")
    ids = [targets.norm_value_id(v) for v in t[spec.id_column]]
    t.index = ids
    b = harmonize.batch_lookup(ids, args.batch_column, [(args.harmonize_batch, spec.id_column), *_tables(args, spec)])
    return t, b


def harmonize_card_cases(args: argparse.Namespace, card: dict, cohort, spec):
    """Harmonise an evaluation cohort with the card's ComBat record (evaluate/predict); refuses a card that was
    trained on harmonised features when --harmonize is not given, and the reverse."""
    from her2radiomics import harmonize

    rec = card.get("harmonization")
    if rec is None:
        if getattr(args, "harmonize", None):
            raise UserError("this model card was trained without harmonisation; drop --harmonize")
        return cohort
    if not getattr(args, "harmonize", None):
        raise UserError(f"this model card was trained on ComBat-harmonised features (batch column "
                        f"{rec['batch_column']!r}); add --harmonize combat --batch-column {rec['batch_column']}")
    args.batch_column = args.batch_column or rec["batch_column"]
    batch = harmonize.batch_lookup(cohort.ids, args.batch_column, _tables(args, spec))
    extra = _extra(args, spec)
    if extra is not None:
        import numpy as np

        from her2radiomics.targets import norm_value

        for b in dict.fromkeys(norm_value(v) for v in batch):
            if b not in rec["gamma_star"]:
                rows = np.array([norm_value(v) == b for v in extra[1]], dtype=bool)
                if not rows.any():
                    raise UserError(f"--harmonize-batch table has no case of batch {b!r}; add that batch's cases")
                rec = harmonize.estimate_batch(rec, extra[0][rows], b)
    return dataclasses.replace(cohort, X=harmonize.apply(rec, cohort.X, batch),
                               notes=[*cohort.notes, harmonize_note(rec)])


def clinical_section(args: argparse.Namespace, card: dict, cohort, splits: dict, spec) -> dict | None:
    """The card's ``clinical_models`` section (clinical.card_section) for --clinical, else None."""
    from her2radiomics import clinical
    from her2radiomics.labels import load_clinical

    if not getattr(args, "clinical", None):
        return None
    specs = [clinical.parse_spec(c) for c in args.clinical]
    raw = load_clinical(args.labels, [s.column for s in specs], spec.labels_id_column or spec.id_column)
    raw.index = [targets.norm_value_id(i) for i in raw.index]
    return clinical.card_section(card, cohort.X, cohort.y, splits, raw, specs, args.clinical_selection)


def options_record(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k, None) for k in ("clinical", "clinical_selection", "harmonize", "batch_column",
                                                "harmonize_batch")}


def finish_card(card: dict, rec: dict | None, section: dict | None, args: argparse.Namespace | None = None) -> dict:
    """Add the harmonisation record and the clinical section to a freshly trained card (before it is saved)."""
    if args is not None:
        card["provenance"]["options"].update(options_record(args))
    if rec is not None:
        card["harmonization"] = rec
    if section is not None:
        card["clinical_models"] = section
        card["notes"] = [*card.get("notes", []), *section["notes"]]
    return card


def format_clinical(section: dict) -> str:
    """ORs table and the three-model comparison for the console."""
    lines = ["clinical model (multivariate logistic regression): OR (95% CI), p"]
    for t in section["clinical"]["table"][1:]:
        lo, hi = t["or_ci"]
        lines.append(f"  {t['term']:<24} {t['or']:.3f} ({lo:.3f}-{hi:.3f})  p={t['p']:.3g}")
    uni = section["selection"].get("univariate")
    if uni:
        lines.append(f"univariate screen (min p; kept if < {section['selection']['alpha']:g}): "
                     + ", ".join(f"{u['name']} {u['p_min']:.3g}{'*' if u['kept'] else ''}" for u in uni))
    for sp, d in section["delong"].items():
        aucs = ", ".join(f"{m} {a:.3f}" for m, a in zip(d["models"], d["auc"], strict=True))
        ps = f"rad-comb p={d['p'][0][2]:.3g}, clin-comb p={d['p'][1][2]:.3g}, rad-clin p={d['p'][0][1]:.3g}"
        lines.append(f"[{sp}] AUC {aucs}; DeLong {ps}")
    return "\n".join(lines)


def study_extras(study: dict, results: list) -> None:
    """study.json: per feature set, the clinical/combined models' ORs, metrics and three-model DeLong tables, and
    the ComBat summary (the full records are in the cards)."""
    for entry, (_, res) in zip(study["feature_sets"], results, strict=True):
        sec = res.card.get("clinical_models")
        if sec:
            entry["clinical_models"] = {
                "kept": sec["selection"]["kept"], "univariate": sec["selection"]["univariate"],
                "clinical": {k: sec["clinical"][k] for k in ("formula", "table", "cutoff", "metrics")},
                "combined": {k: sec["combined"][k] for k in ("formula", "table", "cutoff", "metrics")},
                "delong": sec["delong"]}
        h = res.card.get("harmonization")
        if h:
            entry["harmonization"] = {k: h[k] for k in ("method", "implementation", "batch_column", "batches",
                                                        "n_per_batch", "reference_batch", "n_unharmonised",
                                                        "estimated_from_new_cases")}


def evaluate_clinical(args: argparse.Namespace, card: dict, cohort, spec) -> dict | None:
    """The three models of a card with ``clinical_models`` on an evaluation cohort: metrics at each model's
    training cut-off and the DeLong table; None (with a note) when the labels table lacks the clinical columns."""
    from her2radiomics import clinical
    from her2radiomics.evaluation import split_metrics
    from her2radiomics.labels import load_clinical
    from her2radiomics.stats import delong_matrix

    sec = card["clinical_models"]
    names = [v["name"] for v in sec["encoding"]]
    try:
        raw = load_clinical(args.labels, names, spec.labels_id_column or spec.id_column)
    except UserError as exc:
        cohort.notes.append(f"clinical/combined models not evaluated: {exc}")
        return None
    raw.index = [targets.norm_value_id(i) for i in raw.index]
    probs = clinical.predict_section(sec, card, cohort.X, raw)
    cuts = {"radiomics": float(card["cutoff"]), "clinical": sec["clinical"]["cutoff"],
            "combined": sec["combined"]["cutoff"]}
    y = cohort.y
    return {"metrics": {m: split_metrics(y, p, cuts[m]) for m, p in probs.items()},
            "delong": delong_matrix(y, list(probs.values()), list(probs)),
            "probabilities": {m: p.tolist() for m, p in probs.items()}}


def harmonize_prediction(args: argparse.Namespace, df, cards: list[dict]):
    """``predict``: harmonise the features table with the cards' ComBat record (batch from the table's
    --batch-column, or the card's batch column); refuses mixing a harmonised and a plain card, or two records."""
    from her2radiomics import harmonize

    recs = [c.get("harmonization") for c in cards]
    if all(r is None for r in recs):
        if getattr(args, "harmonize", None):
            raise UserError("the model card(s) were trained without harmonisation; drop --harmonize")
        return df
    if any(r is None for r in recs) or any(r != recs[0] for r in recs[1:]):
        raise UserError("the stage-1 and stage-2 cards were harmonised differently (or only one of them); predict "
                        "each stage separately")
    rec = recs[0]
    if not getattr(args, "harmonize", None):
        raise UserError(f"the model card was trained on ComBat-harmonised features (batch column "
                        f"{rec['batch_column']!r}); add --harmonize combat --batch-column {rec['batch_column']}")
    col = args.batch_column or rec["batch_column"]
    if col not in df.columns:
        raise UserError(f"the features table has no batch column {col!r}; add it (the scanner/centre of each case)")
    batch = df[col].to_numpy(dtype=object)
    if args.harmonize_batch:
        t = io.read_table(args.harmonize_batch, "--harmonize-batch table", text_columns=[col])
        if col not in t.columns:
            raise UserError(f"--harmonize-batch table has no batch column {col!r}; add it")
        for b in dict.fromkeys(targets.norm_value(v) for v in batch):
            if b not in rec["gamma_star"]:
                rows = (t[col].map(targets.norm_value) == b).to_numpy()
                if not rows.any():
                    raise UserError(f"--harmonize-batch table has no case of batch {b!r}; add that batch's cases")
                rec = harmonize.estimate_batch(rec, t[rows], b)
    out = harmonize.apply(rec, df, batch)
    out.attrs["harmonized"] = True   # prediction.predict refuses a harmonised card's cases without this mark
    return out
