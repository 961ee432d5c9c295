"""`her2radiomics train`: one stage's ICC -> LASSO -> logistic regression model card."""

from __future__ import annotations

import argparse

from her2radiomics.commands import lazy_module
from her2radiomics.commands.options import (
    add_table_arguments,
    add_training_arguments,
    label_spec,
    load_table,
    print_notes,
    training_config,
)

fitting = lazy_module("her2radiomics.fitting")  # imported on first use, not by --help


# ------------------------------------------------------------------------------------------- command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_table_arguments(parser)
    parser.add_argument("-o", "--output", required=True, metavar="MODEL.json", help="model card to write (JSON)")
    parser.add_argument("--feature-set", default="intra",
                        help="one of intra, intra+peri1, intra+peri3, intra+peri5, all (default intra); 'all' = every numeric "
                             "column")
    add_training_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from her2radiomics.evaluation import format_auc
    from her2radiomics.io import check_output

    check_output(args.output, "model card", inputs=[args.features, args.labels, args.icc])
    config = training_config(args, args.feature_set)
    spec = label_spec(args)
    data = load_table(args, args.task, spec)
    from her2radiomics.modelcard import save_model_card
    from her2radiomics.selection import read_icc_table

    result = fitting.train(data, config, icc_table=read_icc_table(args.icc, args.id_column), id_column=args.id_column,
                           provenance=fitting.training_provenance(args.features, args.labels, spec, args.icc),
                           center_column=args.center_column)
    save_model_card(result.card, args.output)
    print_notes(result.notes)
    card = result.card
    sel = card["selection"]
    icc = f"{sel['n_after_icc']} after ICC" if sel.get("icc_threshold") is not None else "no ICC table"
    mwu = (f"{sel['n_after_mwu']} after MWU" if sel.get("mwu_p") is not None else
           f"{sel['n_after_mwu']} not constant (no MWU filter)" if sel["n_after_mwu"] < sel["n_after_icc"] else
           "no MWU filter")
    print(f"{card['task']} {card['feature_set']}: {sel['candidates']} candidates -> {icc} -> {mwu} -> "
          f"{sel['n_selected']} selected (LASSO C={sel['C']:.4g}"
          f"{', FALLBACK' if sel['fallback'] else ''}); cut-off {card['cutoff']:.3f}")
    for split, m in card["metrics"].items():
        g = card["gdi"].get(split)
        gtxt = f"  GDI {100 * g['value']:.1f}% ({g['zone']})" if g else ""
        print(f"  {split:<9} n={m['n']:<4} events={m['n_event']:<4} AUC {format_auc(m)}  acc {m['accuracy']:.3f}  "
              f"sens {m['sensitivity']:.3f}  spec {m['specificity']:.3f}{gtxt}")
    print(f"wrote {args.output}")
    return 0
