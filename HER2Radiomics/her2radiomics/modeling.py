"""Training one stage model: feature sets, splits, ICC/Mann-Whitney/LASSO selection, logistic regression.

Pipeline (METHOD.md, Gao et al. 2026), all fitted on the training split only:

1. candidates = the feature set's columns (``intra``, ``intra+peri{d}``, or ``all`` numeric columns);
2. ICC filter from a two-reader features table (keep ICC >= 0.75; ICC(2,1) by default, Shrout & Fleiss 1979);
3. non-finite values -> missing; median imputation with the *training* medians (stored in the card);
   columns constant on the training split are dropped;
4. optional Mann-Whitney U filter (keep p < ``mwu_p``; Mann & Whitney 1947);
5. z-score with the training mean and standard deviation (ddof = 0, as scikit-learn's StandardScaler);
6. LASSO: L1-penalised logistic regression (the binomial-family LASSO of glmnet; Tibshirani 1996,
   Friedman, Hastie & Tibshirani 2010) on a path of 20 penalties, 10-fold stratified CV, the penalty with
   the lowest mean held-out deviance (glmnet's ``lambda.min``; ``lambda_rule="1se"`` for the 1-SE rule);
   features with non-zero coefficients at that penalty on the whole training split are selected;
7. logistic regression refit on the selected z-scored features with a weak ridge (C = 10);
8. cut-off = maximum Youden index on the training probabilities (Youden 1950).

Why these choices is explained in ``docs/modeling.md``.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import math
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from her2radiomics import __version__, stats
from her2radiomics.errors import UserError
from her2radiomics.io import check_csv_header
from her2radiomics.modelcard import (  # noqa: F401  (re-exported: api.md names them in modeling)
    FORMAT,
    INTENDED_USE,
    card_checksum,
    jsonable,
    linear_predictor,
    load_model_card,
    predict_proba,
    save_model_card,
    validate_model_card,
)
from her2radiomics.provenance import PROVENANCE_COLUMNS

FEATURE_SETS = ("intra", "intra+peri1", "intra+peri3", "intra+peri5", "all")
STUDY_SETS = ("intra", "intra+peri1", "intra+peri3", "intra+peri5")
REFIT_C = 10.0
#: fewer cases read by both readers than this -> a warning that the ICC filter is imprecise
MIN_ICC_CASES = 10
N_PENALTIES = 20
INTERCEPT_SCALING = 100.0   # liblinear penalises the intercept; a large scaling makes that penalty negligible
_STAGE_CLASSES = {
    "stage1": {"event": "positive", "reference": ["low", "zero"]},
    "stage2": {"event": "low", "reference": ["zero"]},
}


# ============================================================================================ tables
def read_table(path: str | os.PathLike[str], what: str, text_columns: Iterable[str] = (),
               keep_default_na: bool = True) -> pd.DataFrame:
    """Read a CSV table; ``text_columns`` (when present) are read as text, not numbers. With ``keep_default_na``
    False only empty cells are missing (a case id 'NA' stays text)."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{what} {p} is a folder; give the CSV file")
    if not p.is_file():
        raise UserError(f"{what} file not found: {p}; check the path")
    try:
        head = pd.read_csv(p, nrows=0)
        dtypes = {c: str for c in text_columns if c in head.columns}
        df = pd.read_csv(p, dtype=dtypes, keep_default_na=keep_default_na, na_values=None if keep_default_na else [""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {what} {p} as CSV: {str(exc).splitlines()[0]}; give a comma-separated UTF-8 "
                        "CSV file (not a spreadsheet)") from None
    check_csv_header(df.columns, p, what)
    with open(p, newline="", encoding="utf-8-sig", errors="replace") as fh:  # pandas renames repeats to "X.1"
        header = [c.strip() for c in next(csv.reader(fh), [])]
    seen: set[str] = set()
    dups = [c for c in header if c in seen or seen.add(c)]
    if dups:
        raise UserError(f"{what} {p} has column {dups[0]!r} more than once; keep one (e.g. after joining tables)")
    if df.empty:
        raise UserError(f"{what} {p} has no rows")
    return df


def file_hash(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def parameter_file_hash(features_path: str | os.PathLike[str]) -> str | None:
    """``parameter_file_hash`` of the ``FEATURES.meta.json`` sidecar written by ``extract`` (or None); the table's own
    column is read by :func:`her2radiomics.provenance.table_hash`."""
    from her2radiomics.provenance import sidecar_hash

    return sidecar_hash(features_path)


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


# ============================================================================================ labels
@dataclass
class LabelSpec:
    """How to read the labels table (ARCHITECTURE.md: default HER2 labels or a generic table)."""

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
            raise UserError("--task custom needs --label-column with --positive and --negative values")
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


def norm_value_id(v: Any) -> str | None:
    """Case ids as text (ids read as numbers keep their integer form: 7.0 -> '7')."""
    return norm_value(v) if not isinstance(v, str) else (v.strip() or None)


def _examples(ids: Iterable, k: int = 3) -> str:
    shown = sorted(str(i) for i in ids)[:k]
    return ", ".join(repr(i) for i in shown) if shown else "none"


def _cols(df: pd.DataFrame, k: int = 8) -> str:
    cols = [str(c) for c in df.columns[:k]]
    return ", ".join(cols) + (", ..." if df.shape[1] > k else "")


# ============================================================================================ feature sets


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


# ============================================================================================ cohort
@dataclass
class Cohort:
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


def build_cohort(features: pd.DataFrame, targets: Targets, spec: LabelSpec, reader: str | None = None,
                 same_table: bool = False) -> Cohort:
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
    return Cohort(X=X, y=targets.y.reindex(common).to_numpy(dtype=int), center=center, classes=targets.classes,
                  numeric=numeric, notes=notes, center_labels=shown)


# ============================================================================================ splits
def make_splits(y: np.ndarray, *, method: str = "random", test_size: float = 0.3, seed: int = 0,
                center: np.ndarray | None = None, test_center: str | None = None,
                center_column: str = "center") -> dict[str, np.ndarray]:
    """Row indices per split: random stratified (train/test) or by centre (train/internal/external).

    ``method="center"``: cases of ``test_center`` form the external test set; the remaining cases are split
    stratified into train and internal test (``test_size`` of them; 0 = no internal test). Deterministic for a
    given ``seed`` (scikit-learn's ``train_test_split`` with ``random_state=seed``).
    """
    from sklearn.model_selection import train_test_split

    y = np.asarray(y, dtype=int)
    idx = np.arange(y.size)
    if not 0.0 <= test_size < 1.0:
        raise UserError(f"--test-size must be in [0, 1), got {test_size}")

    def strat(rows: np.ndarray, size: float, what: str) -> tuple[np.ndarray, np.ndarray]:
        counts = np.bincount(y[rows], minlength=2)
        n_test = math.ceil(size * rows.size)
        if counts.min() < 2 or n_test < 2 or rows.size - n_test < 2:
            raise UserError(
                f"{what}: {counts[1]} event / {counts[0]} reference case(s) are too few for a stratified "
                f"{size:g} test split; use more cases or another --test-size"
            )
        tr, te = train_test_split(rows, test_size=size, random_state=seed, stratify=y[rows])
        return np.sort(tr), np.sort(te)

    if method == "random":
        if test_size == 0:
            splits = {"train": idx}
        else:
            tr, te = strat(idx, test_size, "random split")
            splits = {"train": tr, "test": te}
    elif method == "center":
        if center is None:
            raise UserError(f"--split center needs a centre column {center_column!r} in the labels or features table; "
                            "pass --center-column")
        if test_center is None:
            raise UserError("--split center needs --test-center VALUE (the centre that forms the external test set)")
        tc = norm_value(test_center)
        is_ext = np.array([c == tc for c in center])
        if not is_ext.any():
            seen = sorted({str(c) for c in center if c is not None})
            raise UserError(f"no case has {center_column} = {test_center!r} (values: {', '.join(seen[:8])}); "
                            "fix --test-center")
        rest = idx[~is_ext & np.array([c is not None for c in center])]
        if rest.size == 0:
            raise UserError(f"every case is in centre {test_center!r}; the training centres have no case")
        if test_size == 0:
            splits = {"train": rest}
        else:
            tr, te = strat(rest, test_size, "training centres")
            splits = {"train": tr, "internal": te}
        splits["external"] = idx[is_ext]
    else:
        raise UserError(f"unknown --split {method!r}; use random or center")
    for name, rows in splits.items():
        counts = np.bincount(y[rows], minlength=2)
        if counts.min() < 2:
            raise UserError(f"the {name} split has {counts[1]} event / {counts[0]} reference case(s); each class needs "
                            "at least 2 cases (choose another split or centre)")
    return splits


# ============================================================================================ ICC
def icc_filter(icc_table: pd.DataFrame, candidates: Sequence[str], id_column: str, threshold: float = 0.75,
               kind: str = "2,1") -> tuple[list[str], dict[str, float], list[str]]:
    """Features with inter-reader ICC >= ``threshold`` from a two-reader table (column ``reader``).

    Cases read by both readers are matched on ``id_column``; a feature's ICC is computed on the cases where both
    readers' values are finite (stats.icc_columns; Shrout & Fleiss 1979, Koo & Li 2016). Candidates absent from
    the ICC table or with an undefined ICC are dropped. Returns (kept, icc per candidate, notes).
    """
    if "reader" not in icc_table.columns or id_column not in icc_table.columns:
        raise UserError(f"the ICC table needs columns {id_column!r} and 'reader' (one row per case and reader)")
    readers = [r for r in pd.unique(icc_table["reader"].map(norm_value)) if r is not None]
    if not readers:
        raise UserError("the ICC table's 'reader' column is empty; give each row its reader (e.g. A / B)")
    if len(readers) != 2:
        raise UserError(f"the ICC table must hold exactly two readers, found {len(readers)} ({', '.join(map(str, readers[:5]))})")
    tabs = []
    for r in readers:
        t = icc_table[icc_table["reader"].map(norm_value) == r].copy()
        t.index = t[id_column].map(norm_value_id)
        if t.index.duplicated().any():
            raise UserError(f"the ICC table has case {t.index[t.index.duplicated()][0]!r} twice for reader {r!r}")
        tabs.append(t)
    both = sorted(set(tabs[0].index) & set(tabs[1].index))
    if len(both) < 3:
        raise UserError(f"only {len(both)} case(s) are read by both readers in the ICC table; ICC needs at least 3")
    present = [c for c in candidates if c in icc_table.columns]
    if not present:
        raise UserError(f"the ICC table has none of the {len(candidates)} candidate feature columns (e.g. "
                        f"{candidates[0]!r}); extract it with the same parameters and regions as the features table")
    notes = [f"ICC computed on {len(both)} cases read by both readers ({readers[0]}, {readers[1]}), ICC({kind})"]
    if len(both) < MIN_ICC_CASES:
        # Koo & Li 2016 (J Chiropr Med 15:155-163) advise >= 30 heterogeneous cases: a handful gives a wide ICC CI
        notes[0] = (f"ICC computed on only {len(both)} cases read by both readers ({readers[0]}, {readers[1]}), "
                    f"ICC({kind}): fewer than {MIN_ICC_CASES}, so each feature's ICC is imprecise and the filter "
                    "may keep or drop features by chance; have more cases read twice (>= 30 is advised)")
    if len(present) < len(candidates):
        notes.append(f"{len(candidates) - len(present)} candidate feature(s) absent from the ICC table were dropped")
    a = tabs[0].loc[both, present].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    b = tabs[1].loc[both, present].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    values = np.asarray(stats.icc_columns(a, b, kind=kind), dtype=float)
    # columns with missing values: ICC on the cases where both readers have a finite value
    for j in np.flatnonzero(~(np.isfinite(a).all(0) & np.isfinite(b).all(0))):
        ok = np.isfinite(a[:, j]) & np.isfinite(b[:, j])
        if ok.sum() >= 3:
            values[j] = float(stats.icc_columns(a[ok, j], b[ok, j], kind=kind)[0])
    iccs = {c: float(v) for c, v in zip(present, values, strict=True)}
    kept = [c for c in present if np.isfinite(iccs[c]) and iccs[c] >= threshold]
    return kept, iccs, notes


# ============================================================================================ fitting
@dataclass
class TrainConfig:
    """Options of one training run (the CLI's flags)."""

    task: str = "stage1"
    feature_set: str = "intra"
    split: str = "random"
    test_size: float = 0.3
    test_center: str | None = None
    seed: int = 0
    icc_threshold: float = 0.75
    icc_kind: str = "2,1"
    mwu_p: float | None = None
    cv_folds: int = 10
    lambda_rule: str = "min"

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Fit:
    """A fitted selection + logistic regression (arrays refer to the ``features`` order)."""

    features: list[str]
    mean: np.ndarray
    scale: np.ndarray
    median: np.ndarray
    coefficients: np.ndarray
    intercept: float
    selection: dict
    sklearn_model: Any = None          # in memory only (tests); never saved
    notes: list[str] = field(default_factory=list)


def _l1_logistic(C: float, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, l1_ratio=1.0, solver="liblinear", intercept_scaling=INTERCEPT_SCALING, max_iter=1000,
                              tol=1e-4, random_state=seed)


def _refit_logistic() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=REFIT_C, l1_ratio=0.0, solver="lbfgs", max_iter=5000, tol=1e-10)


def _deviance(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-2.0 * np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def lasso_select(Z: np.ndarray, y: np.ndarray, *, folds: int = 10, seed: int = 0, rule: str = "min",
                 n_penalties: int = N_PENALTIES) -> dict:
    """LASSO selection by L1-penalised logistic regression with stratified K-fold CV of the penalty.

    Penalty grid: ``C = C0 * 10**linspace(-0.3, 2, n)`` where ``C0 = 1 / max_j |z_j^T (y - mean y)|`` is the smallest
    C giving a non-null model on the full training data (intercept unpenalised), so the grid starts at the null model (lambda_max) and
    spans 2 decades like glmnet's ``lambda.min.ratio = 0.01`` for n < p. CV criterion: mean held-out binomial
    deviance (glmnet's default ``type.measure``); ``rule="min"`` takes its minimum, ``"1se"`` the strongest
    penalty within one standard error of it. Ties go to the stronger penalty. The path stops early once the
    mean deviance has been above (minimum + its SE) for 3 penalties past the minimum (saves the slow, weakly
    penalised end of the path; the choice of either rule is unaffected). Features with non-zero
    coefficients when refitting at the chosen C on all training rows are returned.

    References: Tibshirani R. J R Stat Soc B 1996;58:267-288. Friedman J, Hastie T, Tibshirani R.
    J Stat Softw 2010;33(1):1-22 (glmnet, cv.glmnet).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y, dtype=int)
    n_min = int(np.bincount(y, minlength=2).min())
    k = min(folds, n_min)
    if k < 2:
        raise UserError(f"the training split has {n_min} case(s) of one class; LASSO cross-validation needs at least 2")
    # smallest C with a non-null model when the intercept is (nearly) unpenalised: 1 / max_j |z_j^T (y - mean y)|
    c0 = 1.0 / float(np.max(np.abs(Z.T @ (y - y.mean()))))
    Cs = c0 * 10.0 ** np.linspace(-0.3, 2.0, n_penalties)
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    dev = np.zeros((k, Cs.size))
    auc = np.full((k, Cs.size), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        folds_idx = list(skf.split(Z, y))
        n_done = Cs.size
        for j, C in enumerate(Cs):
            for f, (tr, te) in enumerate(folds_idx):
                m = _l1_logistic(C, seed).fit(Z[tr], y[tr])
                p = m.predict_proba(Z[te])[:, 1]
                dev[f, j] = _deviance(y[te], p)
                if np.ptp(p) > 0 and 0 < y[te].sum() < y[te].size:
                    auc[f, j] = stats.roc_auc(y[te], p)
            # early stop (as glmnet stops its path): 3 penalties past the minimum and clearly worse
            mean = dev[:, : j + 1].mean(0)
            b = int(np.argmin(mean))
            se_b = dev[:, b].std(ddof=1) / math.sqrt(k)
            if j - b >= 3 and mean[j] > mean[b] + se_b:
                n_done = j + 1
                break
        Cs, dev, auc = Cs[:n_done], dev[:, :n_done], auc[:, :n_done]
        mean, se = dev.mean(0), dev.std(0, ddof=1) / math.sqrt(k)
        best = int(np.argmin(mean))
        if rule == "1se":
            best = int(np.flatnonzero(mean <= mean[best] + se[best])[0])
        elif rule != "min":
            raise UserError(f"unknown LASSO rule {rule!r}; use min or 1se")
        # coefficient path on all training rows (the chosen penalty's fit is its column ``best``)
        path = np.vstack([_l1_logistic(C, seed).fit(Z, y).coef_.ravel() for C in Cs])
    coef = path[best]
    return {"C": float(Cs[best]), "Cs": Cs.tolist(), "cv_deviance": mean.tolist(), "cv_deviance_se": se.tolist(),
            "cv_auc": auc.mean(0).tolist(), "folds": k, "selected": np.flatnonzero(coef != 0).tolist(),
            "lasso_coefficients": coef[coef != 0].tolist(), "path": path}


def lasso_path_record(Cs: Sequence[float], path: np.ndarray, names: Sequence[str]) -> dict:
    """The L1 coefficient path for the card: ``C`` per penalty and, for every feature that is non-zero at some
    penalty, its coefficients (per SD) along the path."""
    on = np.flatnonzero((np.asarray(path) != 0).any(axis=0))
    return {"C": [float(c) for c in Cs], "features": [names[j] for j in on],
            "coefficients": [[float(v) for v in path[:, j]] for j in on]}


def icc_summary(iccs: dict[str, float], kept: Sequence[str], threshold: float, kind: str, n_cases: int) -> dict:
    """The ICC filter's result for reports: distribution (histogram, quantiles), threshold and how many kept."""
    v = np.array([x for x in iccs.values() if np.isfinite(x)], dtype=float)
    edges = [-1.0, *np.round(np.arange(0.0, 1.0001, 0.05), 2).tolist()]
    counts = np.histogram(np.clip(v, -1.0, 1.0), bins=edges)[0].tolist() if v.size else [0] * (len(edges) - 1)
    q = np.quantile(v, [0.0, 0.25, 0.5, 0.75, 1.0]).tolist() if v.size else [None] * 5
    return {"kind": kind, "threshold": threshold, "n_cases": n_cases, "n_features": len(iccs),
            "n_kept": len(kept), "n_undefined": int(len(iccs) - v.size),
            "quantiles": dict(zip(("min", "q25", "median", "q75", "max"), q, strict=True)),
            "histogram": {"edges": edges, "counts": counts}}


def rad_score_formula(card: dict, digits: int = 4) -> str:
    """The card's linear predictor written out: ``Rad-score = b0 + b1 * (x1 - mean1) / sd1 + ...`` with the raw
    feature columns, their training means and SDs (missing values are imputed with the card's training medians);
    P(event) = 1 / (1 + exp(-Rad-score))."""
    terms = [f"{float(card['intercept']):.{digits}f}"]
    for f, b, m, sd in zip(card["features"], card["coefficients"], card["scaler"]["mean"], card["scaler"]["scale"],
                           strict=True):
        sign = "-" if b < 0 else "+"
        terms.append(f"{sign} {abs(float(b)):.{digits}f} * ({f} - {float(m):.{digits}g}) / {float(sd):.{digits}g}")
    return "Rad-score = " + " ".join(terms)


def calibration_record(y: np.ndarray, prob: np.ndarray) -> dict:
    """Calibration of one split: slope and intercept (stats.calibration_slope_intercept), Brier score, and the
    Hosmer-Lemeshow test with 10 groups (5 below 50 cases), whose p-value depends on that grouping."""
    y = np.asarray(y, dtype=int)
    prob = np.asarray(prob, dtype=float)
    cal = stats.calibration_slope_intercept(y, prob)
    out = {"slope": cal["slope"] if math.isfinite(cal["slope"]) else None, "intercept": cal["intercept"],
           "separation": cal["separation"], "brier": stats.brier_score(y, prob)}
    groups = 10 if y.size >= 50 else 5
    try:
        hl = stats.hosmer_lemeshow(y, prob, groups=groups)
        out["hosmer_lemeshow"] = {"statistic": hl["statistic"] if math.isfinite(hl["statistic"]) else None,
                                  "df": hl["df"], "p": hl["p"], "groups": hl["groups"], "groups_asked": groups}
    except UserError as exc:
        out["hosmer_lemeshow"] = {"statistic": None, "df": None, "p": None, "groups": 0, "groups_asked": groups,
                                  "reason": str(exc)}
    return out


def cohort_table(cohort: Cohort, splits: dict[str, np.ndarray]) -> list[dict]:
    """Cases per split, centre and class: ``[{split, center, n, event, reference}]`` (centre None if unknown)."""
    rows = []
    for split, idx in splits.items():
        centres = cohort.center[idx] if cohort.center is not None else np.full(len(idx), None, dtype=object)
        for c in sorted({x for x in centres}, key=lambda x: (x is None, str(x))):
            sel = idx[np.array([x == c for x in centres], dtype=bool)]
            n_ev = int(cohort.y[sel].sum())
            rows.append({"split": split, "center": cohort.center_labels.get(c, c) if c is not None else None,
                         "n": int(sel.size), "event": n_ev, "reference": int(sel.size - n_ev)})
    return rows


def fit_model(X: pd.DataFrame, y: np.ndarray, candidates: Sequence[str], *, config: TrainConfig,
              icc_kept: Sequence[str] | None = None) -> Fit:
    """Fit the selection pipeline + logistic regression on training rows ``X`` (raw values) and ``y``."""
    from scipy.stats import mannwhitneyu

    y = np.asarray(y, dtype=int)
    notes: list[str] = []
    sel: dict[str, Any] = {
        "method": "ICC filter -> median imputation -> constant filter -> Mann-Whitney U -> z-score -> "
                  "LASSO (L1 logistic regression, 10-fold stratified CV) -> logistic regression",
        "estimator": "L1-penalised logistic regression (liblinear), binomial-family LASSO",
        "candidates": len(candidates),
        "icc_threshold": config.icc_threshold if icc_kept is not None else None,
        "icc_kind": config.icc_kind if icc_kept is not None else None,
    }
    cols = list(candidates)
    if icc_kept is not None:
        keep = set(icc_kept)
        cols = [c for c in cols if c in keep]
        if not cols:
            raise UserError(f"no candidate feature has ICC >= {config.icc_threshold}; check the ICC table or lower --icc-threshold")
    sel["n_after_icc"] = len(cols)
    A = np.array(X[cols].apply(pd.to_numeric, errors="coerce"), dtype=float)
    A[~np.isfinite(A)] = np.nan
    n_missing = int(np.isnan(A).sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(A, axis=0)
    ok = np.isfinite(med)
    A = np.where(np.isnan(A), med[None, :], A)
    ok &= np.ptp(np.where(np.isfinite(A), A, 0.0), axis=0) > 0
    n_const = int((~ok).sum())
    cols = [c for c, k in zip(cols, ok, strict=True) if k]
    A, med = A[:, ok], med[ok]
    if n_missing:
        notes.append(f"{n_missing} missing/non-finite training value(s) imputed with training medians")
    if n_const:
        notes.append(f"{n_const} feature(s) constant (or empty) on the training split dropped")
    if not cols:
        raise UserError("every candidate feature is constant or empty (all values missing) on the training split; "
                        "check the features table or choose another --feature-set")
    sel["n_missing_imputed"] = n_missing
    sel["n_constant_dropped"] = n_const
    sel["mwu_p"] = config.mwu_p
    if config.mwu_p is not None:
        p = mannwhitneyu(A[y == 1], A[y == 0], axis=0, alternative="two-sided").pvalue
        keep = np.asarray(p) < config.mwu_p
        if not keep.any():
            raise UserError(f"no feature passes the Mann-Whitney U filter p < {config.mwu_p}; raise --mwu-p or drop it")
        cols = [c for c, k in zip(cols, keep, strict=True) if k]
        A, med = A[:, keep], med[keep]
    sel["n_after_mwu"] = len(cols)
    mean = A.mean(axis=0)
    scale = A.std(axis=0)
    Z = (A - mean) / scale
    lasso = lasso_select(Z, y, folds=config.cv_folds, seed=config.seed, rule=config.lambda_rule)
    chosen = lasso["selected"]
    sel["fallback"] = None
    if not chosen:
        score = np.abs(Z.T @ (y - y.mean()))
        chosen = [int(np.argmax(score))]
        sel["fallback"] = (
            "LASSO selected no feature at the CV-chosen penalty (the null model had the best CV deviance: no "
            "reliable signal); kept the single feature that enters the L1 path first (largest |z^T (y - mean y)|)"
        )
        notes.append("LASSO selected no feature; fell back to the first feature of the L1 path (see the card)")
    sel.update({
        "C": lasso["C"], "alpha": 1.0 / (lasso["C"] * len(y)), "lambda_rule": config.lambda_rule,
        "cv_folds": lasso["folds"], "cv_curve": {"C": lasso["Cs"], "deviance": lasso["cv_deviance"],
                                                  "deviance_se": lasso["cv_deviance_se"], "auc": lasso["cv_auc"]},
        "n_selected": len(chosen),
        "refit": f"logistic regression, L2 penalty C={REFIT_C:g} on z-scored features (lbfgs)",
        "lasso_path": lasso_path_record(lasso["Cs"], lasso["path"], cols),
    })
    model = _refit_logistic().fit(Z[:, chosen], y)
    feats = [cols[j] for j in chosen]
    return Fit(features=feats, mean=mean[chosen], scale=scale[chosen], median=med[chosen],
               coefficients=model.coef_.ravel().copy(), intercept=float(model.intercept_[0]), selection=sel,
               sklearn_model=model, notes=notes)


# ============================================================================================ metrics
def split_metrics(y: np.ndarray, prob: np.ndarray, cutoff: float) -> dict:
    """n, n_event, AUC with 95% DeLong CI, and accuracy/sensitivity/specificity at ``cutoff``."""
    y = np.asarray(y, dtype=int)
    auc, lo, hi = stats.delong_ci(y, prob)
    bm = stats.binary_metrics(y, prob, cutoff)
    return {"n": int(y.size), "n_event": int(y.sum()), "auc": float(auc), "auc_ci": [float(lo), float(hi)],
            "accuracy": float(bm["accuracy"]), "sensitivity": float(bm["sensitivity"]),
            "specificity": float(bm["specificity"])}


def gdi_entry(auc_train: float, auc_test: float) -> dict:
    """{"value": GDI fraction, "zone": safe|warning|high} (stats.gdi, stats.gdi_zone)."""
    g = float(stats.gdi(auc_train, auc_test))
    return {"value": g, "zone": stats.gdi_zone(g)}


# ============================================================================================ training
@dataclass
class TrainResult:
    card: dict
    fit: Fit
    splits: dict[str, dict]     # split -> {"case_ids", "y", "probabilities"}
    notes: list[str]


def train(cohort: Cohort, config: TrainConfig, *, splits: dict[str, np.ndarray] | None = None,
          icc_table: pd.DataFrame | None = None, id_column: str = "case_id", provenance: dict | None = None,
          center_column: str = "center") -> TrainResult:
    """Train one model card for ``config.feature_set`` on ``cohort`` (splits computed unless given)."""
    if splits is None:
        splits = make_splits(cohort.y, method=config.split, test_size=config.test_size, seed=config.seed,
                             center=cohort.center, test_center=config.test_center, center_column=center_column)
    candidates = feature_columns(list(cohort.X.columns), config.feature_set, numeric=cohort.numeric)
    non_numeric = [c for c in candidates if c not in set(cohort.numeric)]
    if non_numeric:
        raise UserError(f"feature column {non_numeric[0]!r} is not numeric; remove it or fix the features table")
    notes = list(cohort.notes)
    if config.feature_set == "all":
        text_cols = [c for c in cohort.X.columns if c not in set(cohort.numeric)]
        if text_cols:
            notes.append(f"{len(text_cols)} non-numeric column(s) left out of 'all' (e.g. {text_cols[0]!r})")
    icc_kept = None
    sel_extra: dict[str, Any] = {}
    if icc_table is not None:
        icc_kept, iccs, icc_notes = icc_filter(icc_table, candidates, id_column, config.icc_threshold, config.icc_kind)
        notes += icc_notes
        sel_extra["icc_cases"] = icc_notes[0]
        readers = icc_table["reader"].map(norm_value)
        ids = icc_table[id_column].map(norm_value_id)
        n_both = len(set.intersection(*[set(ids[readers == r]) for r in readers.dropna().unique()]))
        sel_extra["icc"] = icc_summary({c: iccs.get(c, float("nan")) for c in candidates}, icc_kept,
                                       config.icc_threshold, config.icc_kind, n_both)
    tr = splits["train"]
    fit = fit_model(cohort.X.iloc[tr], cohort.y[tr], candidates, config=config, icc_kept=icc_kept)
    fit.selection.update(sel_extra)
    lacking = missing_regions(cohort.X, candidates, tr)
    if lacking:  # e.g. peri1 of a centre whose voxels are thicker than the ring (extract's FEATURES.notes.csv)
        fit.selection["missing_regions"] = lacking
        fit.notes[:0] = [missing_region_note(r, v, len(cohort.ids)) for r, v in lacking.items()]
    notes += fit.notes
    card: dict[str, Any] = {
        "format": FORMAT,
        "task": config.task,
        "classes": cohort.classes,
        "feature_set": config.feature_set,
        "features": fit.features,
        "scaler": {"mean": fit.mean.tolist(), "scale": fit.scale.tolist()},
        "coefficients": fit.coefficients.tolist(),
        "intercept": fit.intercept,
        "cutoff": 0.5,
        "imputation": {"strategy": "median", "values": fit.median.tolist()},
        "selection": fit.selection,
    }
    probs = {name: predict_proba(card, cohort.X.iloc[rows]) for name, rows in splits.items()}
    card["cutoff"] = float(stats.youden_cutoff(cohort.y[tr], probs["train"]))
    metrics = {name: split_metrics(cohort.y[rows], probs[name], card["cutoff"]) for name, rows in splits.items()}
    card["metrics"] = metrics
    card["gdi"] = {name: gdi_entry(metrics["train"]["auc"], m["auc"]) for name, m in metrics.items() if name != "train"}
    raw = np.array(cohort.X.iloc[tr][fit.features].apply(pd.to_numeric, errors="coerce"), dtype=float)
    raw[~np.isfinite(raw)] = np.nan
    card["training_range"] = {"min": np.nanmin(raw, axis=0).tolist(), "max": np.nanmax(raw, axis=0).tolist()}
    ids = np.asarray(cohort.ids, dtype=object)
    prov = {
        "software": f"her2radiomics {__version__} (scikit-learn {_sklearn_version()})",
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "parameter_file_hash": None,
        "training_table_hash": None,
        "seed": config.seed,
        "options": config.to_json(),
        "case_ids": {name: ids[rows].tolist() for name, rows in splits.items()},
    }
    prov.update(provenance or {})
    card["provenance"] = prov
    card["intended_use"] = INTENDED_USE
    card["notes"] = notes
    out_splits = {name: {"case_ids": ids[rows].tolist(), "y": cohort.y[rows].tolist(),
                         "probabilities": probs[name].tolist()} for name, rows in splits.items()}
    return TrainResult(card=card, fit=fit, splits=out_splits, notes=notes)


_REGION_PREFIX = re.compile(r"^(intra|peri\d+(?:\.\d+)?)_")


def missing_regions(X: pd.DataFrame, candidates: Sequence[str], train_rows: np.ndarray) -> dict[str, dict]:
    """Regions that some cases lack entirely (every column of the region missing), among the candidate columns.

    Returns ``{region: {"case_ids": [...], "n_train": k, "n_other": m, "n_features": f}}``; those cases' values are
    imputed with the training medians like any missing value (step 3 of the pipeline), which this makes explicit.
    """
    by_region: dict[str, list[str]] = {}
    for c in candidates:
        m = _REGION_PREFIX.match(str(c))
        if m:
            by_region.setdefault(m.group(1), []).append(c)
    is_train = np.zeros(len(X), dtype=bool)
    is_train[np.asarray(train_rows, dtype=int)] = True
    out: dict[str, dict] = {}
    for region, cols in by_region.items():
        A = X[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        empty = ~np.isfinite(A).any(axis=1)
        if empty.any():
            out[region] = {"case_ids": [str(X.index[i]) for i in np.flatnonzero(empty)],
                           "n_train": int((empty & is_train).sum()), "n_other": int((empty & ~is_train).sum()),
                           "n_features": len(cols)}
    return out


def missing_region_note(region: str, info: dict, n_cases: int) -> str:
    """One line: which cases lack ``region`` and how their values are handled."""
    ids = info["case_ids"]
    shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
    return (f"{region} is missing for {len(ids)} of {n_cases} case(s) ({shown}; {info['n_train']} in the training "
            f"split): their {info['n_features']} {region} feature(s) are imputed with the training medians")


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__


# ============================================================================================ evaluation
def missing_value_notes(card: dict, X: pd.DataFrame) -> list[str]:
    """Notes on the card's feature values that prediction imputes (missing, non-numeric or non-finite), so a
    table with a wrongly named or empty column does not give a quietly degraded AUC."""
    feats = [f for f in card["features"] if f in X.columns]
    A = X[feats].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(A)
    if not bad.any():
        return []
    notes = [f"{int(bad.sum())} missing/non-numeric value(s) of the model's features imputed with the card's training "
             "medians"]
    empty = [f for f, col in zip(feats, bad.T, strict=True) if col.all()]
    if empty:
        notes.append(f"feature(s) {', '.join(empty[:3])} have no usable value in this table, so every case got the "
                     "training median (the model runs without them); check the features table")
    return notes


def evaluate(card: dict, cohort: Cohort) -> dict:
    """Metrics of a card on every case of ``cohort`` at the card's cut-off, with the GDI vs its training AUC."""
    prob = predict_proba(card, cohort.X)
    y = cohort.y
    if np.bincount(y, minlength=2).min() < 2:
        raise UserError(f"the evaluation cases hold {int(y.sum())} event / {int((1 - y).sum())} reference case(s); "
                        "each class needs at least 2")
    m = split_metrics(y, prob, float(card["cutoff"]))
    train_auc = float(card["metrics"]["train"]["auc"])
    ids = cohort.ids
    overlap = training_overlap(card, ids)
    out = {"model": {"task": card["task"], "feature_set": card["feature_set"], "classes": card["classes"],
                     "n_features": len(card["features"]), "cutoff": card["cutoff"], "checksum": card.get("checksum")},
           "metrics": m, "train_auc": train_auc, "gdi": gdi_entry(train_auc, m["auc"]),
           "n_training_cases_evaluated": overlap,
           "predictions": {"case_ids": ids, "y": y.tolist(), "probabilities": prob.tolist()},
           "notes": list(cohort.notes) + missing_value_notes(card, cohort.X)}
    if overlap:
        out["notes"].append(f"{overlap} of the {len(ids)} evaluated cases were used to train this model; "
                            "their AUC is optimistic")
    return out


def training_overlap(card: dict, ids: Sequence[str]) -> int:
    """How many of ``ids`` the card was trained on (``provenance.case_ids.train``): metrics on them are optimistic."""
    train_ids = set((card.get("provenance") or {}).get("case_ids", {}).get("train", []))
    return sum(1 for i in ids if i in train_ids)


def restrict_cohort(cohort: Cohort, card: dict, split: str) -> Cohort:
    """The cases of ``cohort`` that the card recorded for ``split`` (provenance.case_ids)."""
    recorded = card["provenance"]["case_ids"]
    if split not in recorded:
        raise UserError(f"the model card has no split {split!r} (it has {', '.join(recorded)}); fix --cases")
    want = set(recorded[split])
    rows = np.array([i in want for i in cohort.ids], dtype=bool)
    missing = len(want) - int(rows.sum())
    notes = list(cohort.notes)
    if missing:
        notes.append(f"{missing} of the card's {split} cases are not in these tables")
    if not rows.any():
        raise UserError(f"none of the card's {split} cases is in these tables; check the tables and --id-column")
    return Cohort(X=cohort.X[rows], y=cohort.y[rows], center=None if cohort.center is None else cohort.center[rows],
                  classes=cohort.classes, numeric=cohort.numeric, notes=notes)


def compare(cards: Sequence[dict], names: Sequence[str], cohort: Cohort) -> dict:
    """Pairwise DeLong tests (stats.delong_test) of the cards' AUCs on the same cases."""
    y = cohort.y
    probs = [predict_proba(c, cohort.X) for c in cards]
    return delong_matrix(y, probs, names)


def delong_matrix(y: np.ndarray, probs: Sequence[np.ndarray], names: Sequence[str]) -> dict:
    """AUC per model and the matrices of AUC differences (row - column) and two-sided DeLong p-values."""
    k = len(probs)
    aucs = [float(stats.roc_auc(y, p)) for p in probs]
    diff = [[0.0] * k for _ in range(k)]
    pval = [[1.0] * k for _ in range(k)]
    for i in range(k):
        for j in range(i + 1, k):
            t = stats.delong_test(y, probs[i], probs[j])
            d = float(t["diff"])
            p = float(t["p"]) if math.isfinite(float(t["p"])) else 1.0
            diff[i][j], diff[j][i] = d, -d
            pval[i][j] = pval[j][i] = p
    return {"models": list(names), "n": int(len(y)), "n_event": int(np.sum(y)), "auc": aucs, "diff": diff, "p": pval}


# ============================================================================================ synthetic data
def synthetic_cohort(n_cases: int = 210, n_per_region: int = 50, regions: Sequence[str] = ("intra", "peri1", "peri3", "peri5"),
                     n_signal: int = 3, effect: float = 1.0, event_rate: float = 0.4, seed: int = 0,
                     missing_rate: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A features table ``case_id, {region}_f{j}`` and a labels table ``case_id, label, center`` (tests, benchmarks).

    Features are correlated Gaussians (a shared latent factor per case plus noise, on varied scales). The first
    ``n_signal`` features of the first region and of ``peri3`` (when present) are shifted by ``effect`` standard
    deviations in events: the planted signal a correct pipeline must find. ``center`` alternates A/B/C.
    """
    rng = np.random.default_rng(seed)
    y = (rng.random(n_cases) < event_rate).astype(int)
    y[:2], y[2:4] = 1, 0
    data: dict[str, np.ndarray] = {}
    latent = rng.standard_normal(n_cases)
    for r in regions:
        block = 0.5 * latent[:, None] + rng.standard_normal((n_cases, n_per_region))
        if r == regions[0] or r == "peri3":
            block[:, :n_signal] += effect * y[:, None]
        scales = 10.0 ** rng.uniform(-2, 3, n_per_region)
        block = block * scales + rng.uniform(-5, 5, n_per_region) * scales
        for j in range(n_per_region):
            data[f"{r}_f{j}"] = block[:, j]
    ids = [f"case{i:04d}" for i in range(n_cases)]
    feats = pd.DataFrame(data)
    if missing_rate > 0:
        mask = rng.random(feats.shape) < missing_rate
        feats = feats.mask(mask)
    feats.insert(0, "case_id", ids)
    labels = pd.DataFrame({"case_id": ids, "label": y, "center": np.array(["A", "B", "C"])[np.arange(n_cases) % 3]})
    return feats, labels
