"""`her2radiomics report [--study STUDY.json ...] [--predictions PRED.csv] -o report.html`.

One self-contained HTML file (figures embedded as PNG): per study ROC, DeLong, calibration, decision curves,
GDI zones and coefficients; per predicted case the probabilities and a contributions chart.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from her2radiomics.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

HELP = "self-contained HTML report of a study and its predictions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", type=Path, nargs="+", default=[], help="study.json file(s) from 'her2radiomics study'")
    parser.add_argument("--predictions", type=Path, help="PRED.csv from 'her2radiomics predict' (its .contributions.csv beside it)")
    parser.add_argument("--labels", type=Path, default=None, metavar="LABELS.csv",
                        help="labels table (her2, or ihc + fish): adds each predicted case's true class")
    parser.add_argument("--labels-id-column", default="case_id", metavar="COL",
                        help="id column of --labels (default case_id)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="report.html")
    parser.add_argument("--title", default="HER2Radiomics report")
    parser.add_argument("--max-cases", type=int, default=50, help="per-case sections (default 50)")
    parser.add_argument("--qa", default=None, metavar="SESSION",
                        help="QA session folder: adds the segmentation-QA summary (reviewed, edited, by whom, median time)")


PREDICTION_COLUMNS = ("case_id", "p_positive", "p_low", "p_zero", "stage1_call", "stage2_call")
CONTRIBUTION_COLUMNS = ("case_id", "stage", "feature", "contribution")
_TEXT = ("case_id", "stage1_call", "stage2_call", "cascade_call", "most_likely", "warnings", "stage1_gdi_zone",
         "stage2_gdi_zone", "intended_use", "parameter_file_hash")


def read_predictions(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PRED.csv and PRED.contributions.csv (written by 'predict'), read and checked by the shared table reader."""
    from her2radiomics.io import contributions_path, read_table

    cpath = contributions_path(path)
    for p in (path, cpath):
        if not Path(p).exists():
            raise UserError(f"{p} not found; run 'her2radiomics predict' first (it writes both files)")
    table = read_table(path, "predictions table", text_columns=_TEXT, keep_default_na=False)
    contrib = read_table(cpath, "contributions table", text_columns=("case_id", "stage", "feature", "label"))
    for t, p, what, need in ((table, path, "predictions table", PREDICTION_COLUMNS),
                             (contrib, cpath, "contributions table", CONTRIBUTION_COLUMNS)):
        missing = [c for c in need if c not in t.columns]
        if missing:
            raise UserError(f"{what} {p} lacks column(s) {', '.join(missing)}; give the files written by "
                            "'her2radiomics predict'")
    for c in _TEXT[1:]:
        if c in table.columns:
            table[c] = table[c].fillna("").astype(str)
    return table, contrib


def check_parameter_files(studies: list[dict], table: pd.DataFrame, path: Path) -> None:
    """Refuse (one line) predictions whose features came from another parameter file than the studies' models."""
    from her2radiomics.provenance import PARAMETER_FILE_HASH_COLUMN, card_hash, column_hashes, short

    if PARAMETER_FILE_HASH_COLUMN not in table.columns:
        return  # predictions written before the column existed: nothing to check
    hashes = column_hashes(table[PARAMETER_FILE_HASH_COLUMN])
    for study in studies:
        for m in study.get("models", []):
            h = card_hash(m.get("card") or {})
            bad = [x for x in hashes if h and x != h]
            if bad:
                raise UserError(f"the predictions {path} were computed from features of parameter file {short(bad[0])} "
                                f"but the study's {m['name']} model was trained with {short(h)}; report predictions "
                                "and studies made from the same features")


def run(args: argparse.Namespace) -> int:
    from her2radiomics.io import check_output, contributions_path
    from her2radiomics.report import load_study, write_report

    preds_in = [args.predictions, contributions_path(args.predictions)] if args.predictions else []
    check_output(args.output, "report", inputs=[*args.study, *preds_in, args.labels])
    if args.labels is not None and not args.predictions:
        raise UserError("--labels adds the true class to the predictions table; give --predictions PRED.csv too")
    studies = [load_study(p) for p in args.study]
    preds = read_predictions(args.predictions) if args.predictions else None
    if preds is not None:
        check_parameter_files(studies, preds[0], args.predictions)
    labels = None
    if args.labels is not None:
        from her2radiomics.labels import load_labels

        labels = load_labels(args.labels, id_column=args.labels_id_column)
        if "her2" not in labels.columns:
            raise UserError(f"{args.labels} gives no HER2 categories; give a table with her2 or ihc + fish columns")
    qa_html = ""
    if args.qa:
        from her2radiomics.qa import QASession

        qa_html = QASession.open(args.qa).summary_html()
    write_report(args.output, studies, preds, title=args.title, labels=labels, max_cases=args.max_cases,
                 extra_html=qa_html)
    print(f"wrote {args.output}")
    from her2radiomics.report import write_nomograms  # issue 15 hook: nomograms of cards with clinical models

    out = Path(args.output)
    for p in write_nomograms(studies, out.with_name(out.stem)):
        print(f"wrote {p}")
    return 0
