"""`her2radiomics compare`: paired DeLong tests of two or more model cards on the same cases."""

from __future__ import annotations

import argparse
from pathlib import Path

from her2radiomics import modeling
from her2radiomics.commands.train import (
    add_table_arguments,
    card_label_spec,
    check_card_features,
    load_cohort,
    print_notes,
)
from her2radiomics.errors import UserError
from her2radiomics.io import check_output, write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_table_arguments(parser, task_required=False, label_defaults_from_card=True)
    parser.add_argument("--models", nargs="+", required=True, metavar="MODEL.json", help="two or more model cards")
    parser.add_argument("-o", "--output", default=None, metavar="COMPARE.json", help="write the table as JSON")


def run(args: argparse.Namespace) -> int:
    if len(args.models) < 2:
        raise UserError("compare needs at least two model cards (--models A.json B.json ...)")
    if args.output:
        check_output(args.output, "comparison file", inputs=[args.features, args.labels, *args.models])
    cards = [modeling.load_model_card(p) for p in args.models]
    first = cards[0]
    for path, c in zip(args.models[1:], cards[1:], strict=True):
        if c["task"] != first["task"] or c["classes"] != first["classes"]:
            raise UserError(f"{path} predicts {c['task']} {c['classes']['event']!r}, {args.models[0]} predicts "
                            f"{first['task']} {first['classes']['event']!r}; compare models of the same target")
    for path, c in zip(args.models, cards, strict=True):
        check_card_features(c, args.features, f"model card {path}")
    names = unique_names(args.models)
    cohort = load_cohort(args, first["task"], card_label_spec(args, first))
    result = modeling.compare(cards, names, cohort)
    notes = list(cohort.notes)
    for name, card in zip(names, cards, strict=True):
        notes += [f"{name}: {n}" for n in modeling.missing_value_notes(card, cohort.X)]
        overlap = modeling.training_overlap(card, cohort.ids)
        if overlap:  # a model is favoured on the cases it was fitted on: the comparison is then biased
            notes.append(f"{name}: {overlap} of the {len(cohort.ids)} compared cases were used to train this model; "
                         "its AUC is optimistic (compare on held-out cases only)")
    result["notes"] = notes
    print_notes(notes)
    print(format_delong(result))
    if args.output:
        write_json(result, args.output)
        print(f"wrote {args.output}")
    return 0


def unique_names(paths: list[str]) -> list[str]:
    names = [Path(p).stem for p in paths]
    if len(set(names)) < len(names):
        names = [str(p) for p in paths]
    return names


def format_delong(result: dict) -> str:
    """AUC per model, then every pair: AUC difference (row - column) and DeLong p-value."""
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
