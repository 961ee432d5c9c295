"""Label targets and the features table joined to them.

:class:`LabelSpec` says how to read a labels table, :func:`load_targets` turns it into 0/1 targets for a task
(ASCO/CAP 2018 HER2 categories or a generic label column), :func:`join_labels` joins a features table with them
into a :class:`LabelledTable`, and :func:`feature_columns` names the columns of a feature set (``intra``,
``intra+peri3``, ..., ``all``). Method: docs/modeling.md.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from her2radiomics.errors import UserError
from her2radiomics.provenance import PROVENANCE_COLUMNS

FEATURE_SETS = ("intra", "intra+peri1", "intra+peri3", "intra+peri5", "all")

_STAGE_CLASSES = {
    "stage1": {"event": "positive", "reference": ["low", "zero"]},
    "stage2": {"event": "low", "reference": ["zero"]},
}



def norm_value(v: Any) -> str | None:
    """Canonical text of a label/centre value: '1', '1.0' and 1 all become '1'; blanks become None."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    s = str(v).strip()
    if s == "" or s.lower() in ("nan", "na", "none"):
        return None
    try:
        f = float(s)
    except ValueError:
        return s.lower()
    if math.isfinite(f) and f.is_integer():
        return str(int(f))
    return repr(f)



def norm_value_id(v: Any) -> str | None:
    """Case ids as text (ids read as numbers keep their integer form: 7.0 -> '7')."""
    return norm_value(v) if not isinstance(v, str) else (v.strip() or None)



@dataclass
class LabelSpec:
    """How to read the labels table (docs/architecture.md#labels-tables: default HER2 labels or a generic table)."""

    id_column: str = "case_id"
    label_column: str | None = None
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    center_column: str = "center"
    labels_id_column: str | None = None    # the labels table's id column when it differs from ``id_column``
    ihc_column: str | None = None          # a pathology export's IHC / ISH column names (default: ihc, fish/ish)
    fish_column: str | None = None
    drop_unresolved: bool = False          # leave out cases whose HER2 category the tests leave undetermined

    def to_json(self) -> dict:
        return {"id_column": self.id_column, "label_column": self.label_column, "positive": list(self.positive),
                "negative": list(self.negative), "center_column": self.center_column,
                "labels_id_column": self.labels_id_column, "ihc_column": self.ihc_column,
                "fish_column": self.fish_column, "drop_unresolved": self.drop_unresolved}



@dataclass
class Targets:
    """Binary targets per case id (1 = event) with optional centre, the class names and notes."""

    y: pd.Series                      # index: case id (str), values 0/1
    center: pd.Series | None          # index: case id, canonical text values
    classes: dict
    notes: list[str] = field(default_factory=list)
    left_out: set[str] = field(default_factory=set)   # ids already named in a note (blank label, stage-2 positive)
    center_labels: dict[str, str] = field(default_factory=dict)  # canonical centre value -> as written in the table



def load_targets(path: str | os.PathLike[str], task: str, spec: LabelSpec) -> Targets:
    """Read a labels table (labels.load_labels) and turn it into 0/1 targets for ``task``.

    HER2 mode (no ``positive``/``negative``): categories from ``her2`` or ``ihc`` + ``fish`` (ASCO/CAP 2018),
    then labels.stage_target: stage1 = positive vs low + zero, stage2 = low vs zero (positives excluded).
    Generic mode: ``label`` 1 for ``spec.positive`` values, 0 for ``spec.negative`` (other values left out).
    """
    from her2radiomics import labels

    try:
        header = [str(c).strip().lower() for c in pd.read_csv(path, nrows=0, sep=labels.table_separator(path)).columns]
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        header = []
    cc = spec.center_column if spec.center_column and spec.center_column.lower() in header else None
    if cc is None and spec.center_column == "center" and "centre" in header:
        cc = "centre"  # the default also accepts the British spelling
    df = labels.load_labels(path, id_column=spec.labels_id_column or spec.id_column, label_column=spec.label_column,
                            positive=list(spec.positive) or None, negative=list(spec.negative) or None,
                            center_column=cc, ihc_column=spec.ihc_column, fish_column=spec.fish_column,
                            drop_unresolved=spec.drop_unresolved)
    notes: list[str] = []
    excluded = df.attrs.get("excluded", {})
    if excluded:
        reasons = sorted(set(excluded.values()))
        notes.append(f"{len(excluded)} case(s) of the labels table left out ({'; '.join(reasons[:3])})")
    unresolved = df.attrs.get("unresolved", {})
    if unresolved:
        groups: dict[str, list[str]] = {}
        for cid, reason in unresolved.items():
            groups.setdefault(reason, []).append(str(cid))
        notes.append(f"{len(unresolved)} case(s) with unresolved HER2 status left out (--drop-unresolved): "
                     + "; ".join(f"{', '.join(ids)} ({reason})" for reason, ids in groups.items()))
        excluded = {**excluded, **unresolved}
    ids = df["case_id"].astype(str).str.strip().to_numpy(dtype=object)
    if df.attrs.get("mode") == "generic":
        col = spec.label_column
        y = df["label"].to_numpy(dtype=int)
        ref = [f"{col}={v}" for v in spec.negative] or [f"{col}=other"]
        classes = {"event": f"{col}={'|'.join(spec.positive)}", "reference": ref}
        keep = np.ones(len(df), dtype=bool)
    else:
        if task == "custom":
            raise UserError("--task custom needs --label-column and --positive (the event value(s)); --negative is optional "
                            "(default: every other value of the column)")
        keep, y = labels.stage_target(df["her2"].tolist(), task)
        y = np.asarray(y, dtype=int)
        if task == "stage2" and (~keep).any():
            notes.append(f"{int((~keep).sum())} HER2-positive case(s) excluded from stage 2 (low vs zero)")
        classes = {k: (list(v) if isinstance(v, list) else v) for k, v in _STAGE_CLASSES[task].items()}
    center = None
    if cc is not None and "center" in df.columns:  # only the named column (no silent fallback to 'center')
        center = pd.Series(df["center"].map(norm_value).to_numpy(dtype=object)[keep], index=ids[keep])
    left_out = {str(i) for i in excluded} | {str(i) for i in ids[~keep]}
    shown = {} if center is None else {norm_value(v): str(v).strip() for v in df["center"][::-1]}
    return Targets(y=pd.Series(y, index=ids[keep]), center=center, classes=classes, notes=notes, left_out=left_out,
                   center_labels=shown)



def _examples(ids: Iterable, k: int = 3) -> str:
    shown = sorted(str(i) for i in ids)[:k]
    return ", ".join(repr(i) for i in shown) if shown else "none"



def _cols(df: pd.DataFrame, k: int = 8) -> str:
    cols = [str(c) for c in df.columns[:k]]
    return ", ".join(cols) + (", ..." if df.shape[1] > k else "")



def check_feature_set(feature_set: str) -> list[str]:
    """The regions of a feature-set name (``all`` -> []); UserError for a name that is not a feature set."""
    if feature_set == "all":
        return []
    if ":" in feature_set:   # issue16 hook: several sequences, e.g. dce+t2:intra+peri3 (her2radiomics.sequences)
        from her2radiomics.sequences import parse_feature_set

        return parse_feature_set(feature_set)[1]
    regions = [r.strip() for r in feature_set.split("+")]
    if not all(re.fullmatch(r"intra|peri\d+(?:\.\d+)?", r) for r in regions):
        raise UserError(f"unknown feature set {feature_set!r}; use one of {', '.join(FEATURE_SETS)} "
                        "(or regions joined by '+', e.g. intra+peri2)")
    return regions



def feature_columns(columns: Sequence[str], feature_set: str, exclude: Iterable[str] = (),
                    numeric: Iterable[str] | None = None) -> list[str]:
    """Columns of a feature set, in table order.

    ``intra`` -> columns ``intra_*``; ``intra+peri3`` -> ``intra_*`` and ``peri3_*`` (any ``+``-joined list of
    regions works, e.g. ``peri3`` or ``intra+peri2.5``); ``all`` -> every column not in ``exclude`` (and, when
    ``numeric`` is given, only those). Raises UserError when the set has no column.
    """
    excl = set(exclude)
    regions = check_feature_set(feature_set)
    if feature_set == "all":
        keep = set(numeric) if numeric is not None else None
        cols = [c for c in columns if c not in excl and (keep is None or c in keep)]
    elif ":" in feature_set:   # issue16 hook: {seq}_{region}_* columns
        from her2radiomics.sequences import feature_columns as sequence_feature_columns

        cols = sequence_feature_columns(columns, feature_set, excl)
    else:
        from her2radiomics.kinetics import is_kinetic_column  # issue16: kinetic columns are not radiomics

        prefixes = tuple(f"{r}_" for r in regions)
        cols = [c for c in columns if c.startswith(prefixes) and c not in excl and not is_kinetic_column(c)]
        absent = [r for r in regions if not any(c.startswith(f"{r}_") for c in columns)]
        if absent:
            raise UserError(
                f"feature set {feature_set!r} needs columns '{absent[0]}_*' that the features table lacks; "
                "choose another --feature-set (or 'all' for a table without region prefixes)"
            )
    if not cols:
        raise UserError(f"feature set {feature_set!r} selects no column of the features table")
    return cols



@dataclass
class LabelledTable:
    """Features joined with targets, sorted by case id (so results do not depend on row order)."""

    X: pd.DataFrame                 # index: case id; every column of the features table but id/reader/labels
    y: np.ndarray                   # 0/1
    center: np.ndarray | None       # canonical text per case, or None
    classes: dict
    numeric: list[str]              # numeric columns available to 'all'
    notes: list[str]
    center_labels: dict[str, str] = field(default_factory=dict)  # canonical centre -> as written (for tables)

    @property
    def ids(self) -> list[str]:
        return [str(i) for i in self.X.index]



def join_labels(features: pd.DataFrame, targets: Targets, spec: LabelSpec, reader: str | None = None,
                 same_table: bool = False) -> LabelledTable:
    """Join a features table with targets (load_targets) on ``spec.id_column`` (inner join).

    ``same_table`` is informational (labels read from the features file); label, centre, id and reader
    columns are removed from the features in every case.
    """
    notes = list(targets.notes)
    if spec.id_column not in features.columns:
        raise UserError(f"features table has no id column {spec.id_column!r}; pass --id-column (columns: {_cols(features)})")
    feats = features.copy()
    if reader is not None and "reader" not in feats.columns:
        raise UserError(f"--reader {reader} given but the features table has no 'reader' column; drop --reader")
    if "reader" in feats.columns:
        if reader is not None:
            feats = feats[feats["reader"].map(norm_value) == norm_value(reader)]
            if feats.empty:
                raise UserError(f"features table has no row for reader {reader!r}")
        elif feats[spec.id_column].duplicated().any():
            readers = sorted({str(r) for r in features["reader"].dropna().unique()})
            raise UserError(
                f"features table has several readers ({', '.join(readers[:5])}) per case; pass --reader R to train on "
                "one reader's segmentations (use the two-reader table with --icc)"
            )
    ids = feats[spec.id_column].map(norm_value_id)
    if ids.isna().any():
        raise UserError(f"features table has row(s) with an empty {spec.id_column!r}; fill or remove them")
    if ids.duplicated().any():
        raise UserError(f"features table has duplicate case id {ids[ids.duplicated()].iloc[0]!r}; give one row per case")
    feats.index = pd.Index(ids.to_numpy(), name="case_id")
    drop = {spec.id_column, "reader", "case_id", *PROVENANCE_COLUMNS}  # provenance columns are never features
    # label and centre columns never become features (no label leak into 'all'), whether or not the labels
    # come from the same file
    label_like = {spec.label_column, "her2", "ihc", "fish", "ish", spec.center_column, spec.ihc_column,
                  spec.fish_column, spec.labels_id_column}
    lowered = {str(c).lower() for c in label_like if c}
    drop |= {c for c in feats.columns if str(c).lower() in lowered}
    X = feats[[c for c in feats.columns if c not in drop]]
    common = sorted(set(X.index) & set(targets.y.index))
    if len(common) < len(targets.y):
        notes.append(f"{len(targets.y) - len(common)} labelled case(s) have no features and are left out (e.g. "
                     f"{_examples(set(targets.y.index) - set(common))})")
    unlabelled = len(set(X.index) - set(targets.y.index) - targets.left_out)  # the others have their note already
    if unlabelled:
        notes.append(f"{unlabelled} case(s) of the features table have no usable label and are left out")
    if not common:
        raise UserError(
            f"no case id is in both the features and the labels table (features ids e.g. {_examples(X.index)}; "
            f"labels ids e.g. {_examples(targets.y.index)}); check the id columns (--id-column, --labels-id-column)"
        )
    X = X.loc[common]
    center = None
    shown = dict(targets.center_labels)
    if targets.center is not None:
        center = targets.center.reindex(common).to_numpy(dtype=object)
    elif spec.center_column in feats.columns:
        center = feats.loc[common, spec.center_column].map(norm_value).to_numpy(dtype=object)
        shown = {norm_value(v): str(v).strip() for v in feats.loc[common, spec.center_column][::-1]}
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c])]
    return LabelledTable(X=X, y=targets.y.reindex(common).to_numpy(dtype=int), center=center, classes=targets.classes,
                  numeric=numeric, notes=notes, center_labels=shown)


def load_labelled_table(features: str | os.PathLike[str], labels: str | os.PathLike[str], task: str, spec: LabelSpec,
                        reader: str | None = None) -> LabelledTable:
    """Read a features table (``io.read_table``) and a labels table (:func:`load_targets`) and join them
    (:func:`join_labels`); the two may be the same file."""
    from her2radiomics.io import read_table

    text = [spec.id_column, spec.label_column or "her2", "her2", "ihc", "fish", spec.center_column, "reader",
            spec.ihc_column, spec.fish_column]
    table = read_table(features, "features table", text_columns=text)
    targets = load_targets(labels, task, spec)
    return join_labels(table, targets, spec, reader=reader, same_table=_same_file(features, labels))


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def card_label_spec(card: dict, *, id_column: str | None = None, label_column: str | None = None,
                    positive: Sequence[str] | None = None, negative: Sequence[str] | None = None,
                    center_column: str | None = None, labels_id_column: str | None = None,
                    ihc_column: str | None = None, fish_column: str | None = None,
                    drop_unresolved: bool | None = None) -> LabelSpec:
    """Label options for evaluating a card: the given values, else those the card was trained with
    (``provenance.labels``). A given label column or class value replaces the card's whole label definition."""
    saved = card.get("provenance", {}).get("labels") or {}
    given = any(v is not None for v in (label_column, positive, negative))
    if given:
        pos, neg, col = tuple(positive or ()), tuple(negative or ()), label_column
    else:
        pos, neg = tuple(saved.get("positive") or ()), tuple(saved.get("negative") or ())
        col = saved.get("label_column")
    return LabelSpec(id_column=id_column or saved.get("id_column") or "case_id", label_column=col,
                     positive=pos, negative=neg,
                     center_column=center_column or saved.get("center_column") or "center",
                     labels_id_column=labels_id_column or saved.get("labels_id_column"),
                     ihc_column=ihc_column or saved.get("ihc_column"),
                     fish_column=fish_column or saved.get("fish_column"),
                     drop_unresolved=bool(drop_unresolved or saved.get("drop_unresolved")))
