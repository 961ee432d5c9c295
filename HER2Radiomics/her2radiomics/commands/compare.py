"""`her2radiomics compare`: paired DeLong tests of two or more model cards on the same cases."""

from __future__ import annotations

import argparse
from pathlib import Path

from her2radiomics.commands import lazy_module
from her2radiomics.commands.options import add_table_arguments, card_label_spec, load_table, print_notes
from her2radiomics.errors import UserError

evaluation = lazy_module("her2radiomics.evaluation")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_table_arguments(parser, task_required=False, label_defaults_from_card=True)
    parser.add_argument("--models", nargs="+", required=True, metavar="MODEL.json", help="two or more model cards")
    parser.add_argument("--cases", default=None, metavar="SPLIT",
                        help="compare only the first card's recorded cases of SPLIT (e.g. test, internal, external)")
    parser.add_argument("-o", "--output", default=None, metavar="COMPARE.json", help="write the table as JSON")


def run(args: argparse.Namespace) -> int:
    from her2radiomics.io import check_output, write_json

    if len(args.models) < 2:
        raise UserError("compare needs at least two model cards (--models A.json B.json ...)")
    if args.output:
        check_output(args.output, "comparison file", inputs=[args.features, args.labels, *args.models])
    from her2radiomics.modelcard import load_model_card

    cards = [load_model_card(p) for p in args.models]
    first = cards[0]
    for path, c in zip(args.models[1:], cards[1:], strict=True):
        if c["task"] != first["task"] or c["classes"] != first["classes"]:
            raise UserError(f"{path} predicts {c['task']} {c['classes']['event']!r}, {args.models[0]} predicts "
                            f"{first['task']} {first['classes']['event']!r}; compare models of the same target")
    for path, c in zip(args.models, cards, strict=True):
        evaluation.check_card_features(c, args.features, f"model card {path}")
    names = unique_names(args.models)
    data = load_table(args, first["task"], card_label_spec(args, first))
    if args.cases is not None:  # the cards of one study share their splits; the first card's ids are used
        data = evaluation.restrict_to_split(data, first, args.cases)
    result = evaluation.compare(cards, names, data)
    notes = list(data.notes)
    for name, card in zip(names, cards, strict=True):
        notes += [f"{name}: {n}" for n in evaluation.missing_value_notes(card, data.X)]
        overlap = evaluation.training_overlap(card, data.ids)
        if overlap:  # a model is favoured on the cases it was fitted on: the comparison is then biased
            notes.append(f"{name}: {overlap} of the {len(data.ids)} compared cases were used to train this model; "
                         "its AUC is optimistic (compare on held-out cases only)")
    result["notes"] = notes
    result["cases"] = args.cases or "all"
    print_notes(notes)
    print(evaluation.format_delong(result))
    if args.output:
        write_json(result, args.output)
        print(f"wrote {args.output}")
    return 0


def unique_names(paths: list[str]) -> list[str]:
    names = [Path(p).stem for p in paths]
    if len(set(names)) < len(names):
        names = [str(p) for p in paths]
    return names
