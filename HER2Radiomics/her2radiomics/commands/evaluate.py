"""`her2radiomics evaluate`: a model card's AUC (95% DeLong CI), accuracy, sensitivity, specificity and GDI."""

from __future__ import annotations

import argparse

from her2radiomics.commands import lazy_module
from her2radiomics.commands.options import add_table_arguments, card_label_spec, load_table, print_notes

evaluation = lazy_module("her2radiomics.evaluation")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_table_arguments(parser, task_required=False, label_defaults_from_card=True)
    parser.add_argument("--model", required=True, metavar="MODEL.json", help="model card written by 'train'")
    parser.add_argument("--cases", default=None, metavar="SPLIT",
                        help="evaluate only the card's recorded cases of SPLIT (e.g. test, internal, external)")
    parser.add_argument("-o", "--output", default=None, metavar="METRICS.json",
                        help="write the metrics and per-case probabilities as JSON")


def run(args: argparse.Namespace) -> int:
    from her2radiomics.io import check_output, write_json

    if args.output:
        check_output(args.output, "metrics file", inputs=[args.features, args.labels, args.model])
    from her2radiomics.modelcard import load_model_card

    card = load_model_card(args.model)
    evaluation.check_card_features(card, args.features)
    spec = card_label_spec(args, card)
    data = load_table(args, card["task"], spec)
    if args.cases is not None:
        data = evaluation.restrict_to_split(data, card, args.cases)
    result = evaluation.evaluate(card, data)
    print_notes(result["notes"])
    m, g = result["metrics"], result["gdi"]
    print(f"{card['task']} {card['feature_set']} ({len(card['features'])} features), cut-off {card['cutoff']:.3f}")
    print(f"  n={m['n']} events={m['n_event']}  AUC {evaluation.format_auc(m)}  accuracy {m['accuracy']:.3f}  "
          f"sensitivity {m['sensitivity']:.3f}  specificity {m['specificity']:.3f}")
    print(f"  GDI vs training AUC {result['train_auc']:.3f}: {100 * g['value']:.1f}% ({g['zone']})")
    if args.output:
        write_json(result, args.output)
        print(f"wrote {args.output}")
    return 0
