"""`her2radiomics train`: one stage's ICC -> LASSO -> logistic regression model card.

Also holds the table/label options shared by ``evaluate``, ``compare`` and ``study``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from her2radiomics.commands import lazy_module
from her2radiomics.errors import UserError

modeling = lazy_module("her2radiomics.modeling")  # imported on first use, not by --help


# ------------------------------------------------------------------------------------------- shared options
def add_table_arguments(parser: argparse.ArgumentParser, *, task_required: bool = True,
                        label_defaults_from_card: bool = False) -> None:
    parser.add_argument("features", metavar="FEATURES.csv", help="features table ({region}_{feature} columns)")
    parser.add_argument("labels", metavar="LABELS.csv",
                        help="labels table (may be the same file as FEATURES.csv), joined on the id column")
    g = parser.add_argument_group("generic tables")
    dflt = " (default: as in the model card)" if label_defaults_from_card else ""
    g.add_argument("--id-column", default=None if label_defaults_from_card else "case_id",
                   help="case id column in every table " + (dflt or "(default: case_id)"))
    g.add_argument("--label-column", default=None,
                   help="label column (default: 'her2' categories, or 'ihc' + 'fish' with ASCO/CAP 2018 rules)" + dflt)
    g.add_argument("--positive", nargs="+", default=None, metavar="V", help="label value(s) of the event class")
    g.add_argument("--negative", nargs="+", default=None, metavar="V", help="label value(s) of the reference class")
    g.add_argument("--labels-id-column", default=None, metavar="COL",
                   help="the labels table's id column, when its name differs from --id-column")
    g.add_argument("--ihc-column", default=None, metavar="COL",
                   help="IHC score column of a pathology export (default: ihc)" + dflt)
    g.add_argument("--fish-column", default=None, metavar="COL",
                   help="ISH/FISH result column of a pathology export (default: fish or ish)" + dflt)
    g.add_argument("--drop-unresolved", action="store_true", default=None,
                   help="leave out (with a note) cases whose HER2 category the tests leave open, e.g. IHC 2+ without "
                        "ISH; default: every such case is listed in one error")
    g.add_argument("--center-column", default=None if label_defaults_from_card else "center",
                   help="centre column (labels or features table; default: center)")
    g.add_argument("--reader", default=None, help="use this reader's rows of a multi-reader features table")
    if task_required:
        parser.add_argument("--task", required=True, choices=("stage1", "stage2", "custom"),
                            help="stage1: HER2-positive vs low+zero; stage2: low vs zero (positives excluded); "
                                 "custom: a generic --positive/--negative target")


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", choices=("random", "center"), default="random",
                        help="random stratified split, or by centre (--test-center is the external test set)")
    parser.add_argument("--test-size", type=float, default=0.3,
                        help="fraction held out for the (internal) test set (default 0.3)")
    parser.add_argument("--test-center", default=None, metavar="V", help="centre value forming the external test set")
    parser.add_argument("--icc", default=None, metavar="ICC.csv",
                        help="two-reader features table (column 'reader') for the ICC reproducibility filter")
    parser.add_argument("--icc-threshold", type=float, default=0.75, help="keep features with ICC >= this (0.75)")
    parser.add_argument("--icc-kind", choices=("2,1", "3,1", "1,1"), default="2,1", metavar="KIND",
                        help="ICC form (Shrout & Fleiss): 2,1 absolute agreement (default) or 3,1 consistency")
    parser.add_argument("--mwu-p", "--mwu", type=float, default=None, metavar="P", dest="mwu_p",
                        help="optional Mann-Whitney U filter: keep features with p < P (e.g. 0.05)")
    # issue 15a: filters, selectors and classifiers beside ICC -> LASSO -> LR (feature_filters.py, classifiers.py)
    parser.add_argument("--variance-threshold", type=float, default=None, metavar="T",
                        help="optional filter: keep features whose training variance (raw values) is > T")
    parser.add_argument("--max-correlation", type=float, default=None, metavar="R",
                        help="optional Pearson redundancy filter: of two features with |r| > R keep the one with the "
                             "higher univariate AUC (e.g. 0.9)")
    parser.add_argument("--selection", default="lasso", metavar="METHOD",
                        help="feature selector: lasso (default), rfe (RFECV with the classifier, --cv-folds, --seed) "
                             "or none")
    parser.add_argument("--classifier", default="lr", metavar="MODEL",
                        help="final model: lr (logistic regression, default), rf (random forest) or svm")
    parser.add_argument("--svm-kernel", default="rbf", metavar="KERNEL",
                        help="kernel of --classifier svm: rbf (default) or linear")
    parser.add_argument("--cv-folds", type=int, default=10, help="LASSO cross-validation folds (default 10)")
    parser.add_argument("--lambda-rule", choices=("min", "1se"), default="min",
                        help="LASSO penalty: lowest CV deviance (min, default) or the 1-SE rule")
    parser.add_argument("--seed", type=int, default=0, help="random seed for the split and the CV folds (default 0)")


def label_spec(args: argparse.Namespace) -> modeling.LabelSpec:
    return modeling.LabelSpec(id_column=args.id_column, label_column=args.label_column,
                              positive=tuple(args.positive or ()), negative=tuple(args.negative or ()),
                              center_column=args.center_column, labels_id_column=args.labels_id_column,
                              ihc_column=args.ihc_column, fish_column=args.fish_column,
                              drop_unresolved=bool(args.drop_unresolved))


def check_card_features(card: dict, features: str | os.PathLike[str], card_name: str = "model card") -> None:
    """Refuse (one line) a features table extracted with another parameter file than the card's (column or sidecar)."""
    from her2radiomics.provenance import check_card, check_card_resample, table_hash, table_resample

    check_card(card, table_hash(features), card_name)
    check_card_resample(card, table_resample(features), card_name)


def card_label_spec(args: argparse.Namespace, card: dict) -> modeling.LabelSpec:
    """Label options for evaluating a card: command-line values, else those the card was trained with."""
    saved = card.get("provenance", {}).get("labels") or {}
    given = any(v is not None for v in (args.label_column, args.positive, args.negative))
    if given:
        pos, neg, col = tuple(args.positive or ()), tuple(args.negative or ()), args.label_column
    else:
        pos, neg = tuple(saved.get("positive") or ()), tuple(saved.get("negative") or ())
        col = saved.get("label_column")
    return modeling.LabelSpec(id_column=args.id_column or saved.get("id_column") or "case_id", label_column=col,
                              positive=pos, negative=neg,
                              center_column=args.center_column or saved.get("center_column") or "center",
                              labels_id_column=args.labels_id_column or saved.get("labels_id_column"),
                              ihc_column=args.ihc_column or saved.get("ihc_column"),
                              fish_column=args.fish_column or saved.get("fish_column"),
                              drop_unresolved=bool(args.drop_unresolved or saved.get("drop_unresolved")))


def load_cohort(args: argparse.Namespace, task: str, spec: modeling.LabelSpec | None = None) -> modeling.Cohort:
    spec = spec or label_spec(args)
    text = [spec.id_column, spec.label_column or "her2", "her2", "ihc", "fish", spec.center_column, "reader",
            spec.ihc_column, spec.fish_column]
    features = modeling.read_table(args.features, "features table", text_columns=text)
    targets = modeling.load_targets(args.labels, task, spec)
    same = _same_file(args.features, args.labels)
    return modeling.build_cohort(features, targets, spec, reader=args.reader, same_table=same)


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def training_config(args: argparse.Namespace, feature_set: str) -> modeling.TrainConfig:
    if args.split == "center" and args.test_center is None:
        raise UserError("--split center needs --test-center VALUE (the centre forming the external test set)")
    if args.split != "center" and args.test_center is not None:
        raise UserError("--test-center is used only with --split center; add --split center or drop --test-center")
    if not 0 <= args.seed < 2**32:
        raise UserError(f"--seed must be an integer in [0, 4294967295], got {args.seed}")
    if args.cv_folds < 2:
        raise UserError(f"--cv-folds must be >= 2, got {args.cv_folds}")
    if not 0.0 <= args.icc_threshold <= 1.0:
        raise UserError(f"--icc-threshold must be in [0, 1], got {args.icc_threshold}")
    if args.mwu_p is not None and not 0.0 < args.mwu_p <= 1.0:
        raise UserError(f"--mwu-p must be in (0, 1], got {args.mwu_p}")
    extra = extended_options(args)
    return modeling.TrainConfig(task=args.task, feature_set=feature_set, split=args.split, test_size=args.test_size,
                                test_center=args.test_center, seed=args.seed, icc_threshold=args.icc_threshold,
                                icc_kind=args.icc_kind, mwu_p=args.mwu_p, cv_folds=args.cv_folds,
                                lambda_rule=args.lambda_rule, **extra)


def extended_options(args: argparse.Namespace) -> dict:
    """The checked issue-15a options (classifier, selector, variance and correlation filters) of train/study."""
    from her2radiomics.classifiers import CLASSIFIERS, SVM_KERNELS
    from her2radiomics.feature_filters import SELECTIONS

    clf = getattr(args, "classifier", "lr")
    kernel = getattr(args, "svm_kernel", "rbf")
    sel = getattr(args, "selection", "lasso")
    var = getattr(args, "variance_threshold", None)
    corr = getattr(args, "max_correlation", None)
    if clf not in CLASSIFIERS:
        raise UserError(f"--classifier must be one of {', '.join(CLASSIFIERS)}, got {clf!r}")
    if kernel not in SVM_KERNELS:
        raise UserError(f"--svm-kernel must be one of {', '.join(SVM_KERNELS)}, got {kernel!r}")
    if kernel != "rbf" and clf != "svm":
        raise UserError("--svm-kernel is used only with --classifier svm; add --classifier svm or drop --svm-kernel")
    if sel not in SELECTIONS:
        raise UserError(f"--selection must be one of {', '.join(SELECTIONS)}, got {sel!r}")
    if var is not None and not (var >= 0.0 and var < float("inf")):
        raise UserError(f"--variance-threshold must be a finite number >= 0, got {var}")
    if corr is not None and not 0.0 < corr <= 1.0:
        raise UserError(f"--max-correlation must be in (0, 1], got {corr}")
    return {"classifier": clf, "svm_kernel": kernel, "selection": sel, "variance_threshold": var,
            "max_correlation": corr}


def provenance(args: argparse.Namespace, spec: modeling.LabelSpec) -> dict:
    """The card's provenance; refuses an ICC table extracted with another parameter file than the features."""
    from her2radiomics.provenance import check_same, table_hash, table_resample

    phash = table_hash(args.features)
    grid = table_resample(args.features)
    if getattr(args, "icc", None):
        check_same(phash, table_hash(args.icc, what="ICC table"), "features table", "ICC table")
        icc_grid = table_resample(args.icc, what="ICC table")
        if grid and icc_grid and grid != icc_grid:
            raise UserError(f"the ICC table's features were computed on grid {icc_grid!r} but the features table's on "
                            f"{grid!r}; extract both with the same --resample-spacing")
    prov = {
        "parameter_file_hash": phash,
        **({"resample": grid} if grid else {}),
        "training_table_hash": modeling.file_hash(args.features),
        "labels_table_hash": modeling.file_hash(args.labels),
        "training_table": Path(args.features).name,
        "labels": spec.to_json(),
    }
    if getattr(args, "icc", None):
        prov["icc_table_hash"] = modeling.file_hash(args.icc)
    return prov


def read_icc(args: argparse.Namespace):
    if not args.icc:
        return None
    return modeling.read_table(args.icc, "ICC table", text_columns=[args.id_column, "reader"])


def fmt_auc(m: dict) -> str:
    lo, hi = m["auc_ci"]
    return f"{m['auc']:.3f} ({lo:.3f}-{hi:.3f})"


def print_notes(notes: list[str]) -> None:
    for n in notes:
        print(f"note: {n}")


# ------------------------------------------------------------------------------------------- command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_table_arguments(parser)
    parser.add_argument("-o", "--output", required=True, metavar="MODEL.json", help="model card to write (JSON)")
    parser.add_argument("--feature-set", default="intra",
                        help="one of intra, intra+peri1, intra+peri3, intra+peri5, all (default intra); 'all' = every numeric "
                             "column")
    add_training_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from her2radiomics.io import check_output

    check_output(args.output, "model card", inputs=[args.features, args.labels, args.icc])
    config = training_config(args, args.feature_set)
    spec = label_spec(args)
    cohort = load_cohort(args, args.task, spec)
    result = modeling.train(cohort, config, icc_table=read_icc(args), id_column=args.id_column,
                            provenance=provenance(args, spec), center_column=args.center_column)
    modeling.save_model_card(result.card, args.output)
    print_notes(result.notes)
    card = result.card
    sel = card["selection"]
    icc = f"{sel['n_after_icc']} after ICC" if sel.get("icc_threshold") is not None else "no ICC table"
    mwu = (f"{sel['n_after_mwu']} after MWU" if sel.get("mwu_p") is not None else
           f"{sel['n_after_mwu']} not constant (no MWU filter)" if sel["n_after_mwu"] < sel["n_after_icc"] else
           "no MWU filter")
    how = (f"LASSO C={sel['C']:.4g}" if sel.get("C") is not None else
           {"rfe": "RFE", "none": "no selector"}.get(sel.get("selector"), "LASSO"))
    model = f", {sel['classifier']}" if sel.get("classifier") not in (None, "lr") else ""
    print(f"{card['task']} {card['feature_set']}: {sel['candidates']} candidates -> {icc} -> {mwu} -> "
          f"{sel['n_selected']} selected ({how}{', FALLBACK' if sel['fallback'] else ''}{model}); "
          f"cut-off {card['cutoff']:.3f}")
    for split, m in card["metrics"].items():
        g = card["gdi"].get(split)
        gtxt = f"  GDI {100 * g['value']:.1f}% ({g['zone']})" if g else ""
        print(f"  {split:<9} n={m['n']:<4} events={m['n_event']:<4} AUC {fmt_auc(m)}  acc {m['accuracy']:.3f}  "
              f"sens {m['sensitivity']:.3f}  spec {m['specificity']:.3f}{gtxt}")
    print(f"wrote {args.output}")
    return 0
