"""Options shared by ``train``, ``evaluate``, ``compare`` and ``study`` (the tables, labels and training flags), and
their translation into the core's objects (targets.LabelSpec, fitting.TrainConfig). Not a command itself."""

from __future__ import annotations

import argparse

from her2radiomics.commands import lazy_module

targets = lazy_module("her2radiomics.targets")  # imported on first use, not by --help
fitting = lazy_module("her2radiomics.fitting")


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
    parser.add_argument("--mwu-p", type=float, default=None, metavar="P",
                        help="optional Mann-Whitney U filter: keep features with p < P (e.g. 0.05)")
    parser.add_argument("--cv-folds", type=int, default=10, help="LASSO cross-validation folds (default 10)")
    parser.add_argument("--lambda-rule", choices=("min", "1se"), default="min",
                        help="LASSO penalty: lowest CV deviance (min, default) or the 1-SE rule")
    parser.add_argument("--seed", type=int, default=0, help="random seed for the split and the CV folds (default 0)")


def label_spec(args: argparse.Namespace) -> targets.LabelSpec:
    return targets.LabelSpec(id_column=args.id_column, label_column=args.label_column,
                             positive=tuple(args.positive or ()), negative=tuple(args.negative or ()),
                             center_column=args.center_column, labels_id_column=args.labels_id_column,
                             ihc_column=args.ihc_column, fish_column=args.fish_column,
                             drop_unresolved=bool(args.drop_unresolved))


def card_label_spec(args: argparse.Namespace, card: dict) -> targets.LabelSpec:
    """Label options for evaluating a card: command-line values, else those the card was trained with."""
    return targets.card_label_spec(card, id_column=args.id_column, label_column=args.label_column,
                                   positive=args.positive, negative=args.negative, center_column=args.center_column,
                                   labels_id_column=args.labels_id_column, ihc_column=args.ihc_column,
                                   fish_column=args.fish_column, drop_unresolved=args.drop_unresolved)


def load_table(args: argparse.Namespace, task: str, spec: targets.LabelSpec | None = None) -> targets.LabelledTable:
    """The features table joined to the labels (targets.load_labelled_table) as the flags say."""
    return targets.load_labelled_table(args.features, args.labels, task, spec or label_spec(args), reader=args.reader)


def training_config(args: argparse.Namespace, feature_set: str) -> fitting.TrainConfig:
    return fitting.TrainConfig(task=args.task, feature_set=feature_set, split=args.split, test_size=args.test_size,
                               test_center=args.test_center, seed=args.seed, icc_threshold=args.icc_threshold,
                               icc_kind=args.icc_kind, mwu_p=args.mwu_p, cv_folds=args.cv_folds,
                               lambda_rule=args.lambda_rule).check()


def print_notes(notes: list[str]) -> None:
    for n in notes:
        print(f"note: {n}")
