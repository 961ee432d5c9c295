"""`her2radiomics predict FEATURES.csv --stage1 M1.json [--stage2 M2.json] -o PRED.csv`.

Writes ``PRED.csv`` (``case_id,p_positive,p_low,p_zero,stage1_call,stage2_call`` then extra columns) and
``PRED.contributions.csv`` (``case_id,stage,feature,value,z,coefficient,contribution,label``) and prints a
per-case summary. The features' parameter-file hash (the table's ``parameter_file_hash`` column written by
``extract``, else a ``FEATURES.meta.json`` beside it) is checked against the cards; floats are written at full
(repr round-trip) precision, with a ``stage1_logit`` / ``stage2_logit`` column so that intercept + contributions =
logit can be checked from the files.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from her2radiomics.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

HELP = "stage-wise P(positive), P(low), P(zero) with feature contributions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("features", type=Path, help="features table (case_id + feature columns), e.g. from 'extract'")
    parser.add_argument("--stage1", type=Path, required=True, help="stage-1 model card (positive vs negative)")
    parser.add_argument("--stage2", type=Path, help="stage-2 model card (low vs zero among negatives)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="PRED.csv (contributions go to PRED.contributions.csv)")
    parser.add_argument("--id-column", default="case_id", help="case id column of the features table (default case_id)")
    parser.add_argument("--top", type=int, default=5, help="contributions shown per stage in the summary (default 5)")
    parser.add_argument("--max-cases", type=int, default=20, help="cases summarised on screen (default 20; all are written)")


def read_features(path: Path, id_column: str = "case_id") -> tuple[pd.DataFrame, str | None]:
    """Read a features CSV through the shared table reader (io.read_table: separator, repeated headers,
    empty tables) and its parameter-file hash (the ``parameter_file_hash`` column, else the ``.meta.json`` sidecar;
    provenance.table_hash); ids go to ``case_id``."""
    from her2radiomics.io import read_table
    from her2radiomics.provenance import PROVENANCE_COLUMNS, table_hash, table_resample

    df = read_table(path, "features table", text_columns=[id_column, "reader", *PROVENANCE_COLUMNS])
    phash = table_hash(path, df)
    df.attrs["resample"] = table_resample(path, df)
    if id_column not in df.columns:
        raise UserError(f"features table {path} has no {id_column} column; give a table from 'her2radiomics extract' "
                        "or name the id column with --id-column")
    if id_column != "case_id":
        df = df.drop(columns=["case_id"], errors="ignore").rename(columns={id_column: "case_id"})
    df["case_id"] = df["case_id"].astype(str)
    return df, phash


def run(args: argparse.Namespace) -> int:
    from her2radiomics import io
    from her2radiomics.evaluation import training_overlap
    from her2radiomics.prediction import predict

    contrib = io.contributions_path(args.output)
    inputs = [args.features, args.stage1, args.stage2]
    io.check_output(args.output, "predictions table", inputs=inputs)
    io.check_output(contrib, "contributions table", inputs=inputs)
    df, h = read_features(args.features, args.id_column)
    from her2radiomics.prediction import load_card
    from her2radiomics.provenance import check_card_resample

    for path, name in ((args.stage1, "stage-1 card"), (args.stage2, "stage-2 card")):
        if path is not None:
            check_card_resample(load_card(path), df.attrs.get("resample"), name)
    pred = predict(df, args.stage1, args.stage2, features_hash=h)
    # full precision: pandas writes the shortest repr that reads back to the same float64 (no %.6g ties, no p = 1.0)
    with io.atomic_path(args.output) as tmp:
        pred.table.to_csv(tmp, index=False)
    with io.atomic_path(contrib) as tmp:
        pred.contributions.to_csv(tmp, index=False)
    ids = pred.table["case_id"].tolist()
    for cid in ids[: args.max_cases]:
        print(pred.summary(cid, top=args.top))
        print()
    if len(ids) > args.max_cases:
        print(f"({len(ids) - args.max_cases} more cases in {args.output})")
    for stage, res in pred.stages.items():  # as evaluate/compare say: a model's own training cases score optimistically
        n_seen = training_overlap(res.card, [str(i) for i in ids])
        if n_seen:
            print(f"note: {stage} model: {n_seen} of the {len(ids)} predicted cases were used to train it; "
                  "their probabilities are optimistic")
    n_warn = int((pred.table["warnings"] != "").sum())
    print(f"wrote {args.output} ({len(ids)} cases, {n_warn} with warnings) and {contrib}")
    return 0
