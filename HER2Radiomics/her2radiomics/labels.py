"""HER2 categories (ASCO/CAP 2018) and label tables.

Rules (Wolff AC, Hammond MEH, Allison KH, et al. Human Epidermal Growth Factor Receptor 2 Testing in
Breast Cancer: American Society of Clinical Oncology/College of American Pathologists Clinical
Practice Guideline Focused Update. J Clin Oncol 2018;36(20):2105-2122; Arch Pathol Lab Med
2018;142(11):1364-1382), with the HER2-low definition of Tarantino P, et al. (HER2-low breast
cancer: pathological and clinical landscape. J Clin Oncol 2020;38(17):1951-1962):

========  ================  ==========================================================================
IHC       ISH / FISH        category
========  ================  ==========================================================================
3+        blank / positive  positive   (IHC 3+ is HER2-positive; ISH not required)
2+        positive          positive   (equivocal IHC resolved by ISH)
2+        negative          low
2+        blank             error      (IHC 2+ is equivocal: the guideline requires a reflex ISH test)
1+        blank / negative  low
0         blank / negative  zero
3+        negative          error*     discordant: positive by IHC, not amplified by ISH
0 or 1+   positive          error*     discordant: negative by IHC, amplified by ISH
blank     positive          positive   (ISH-amplified is HER2-positive)
blank     negative          error      HER2-negative, but low vs zero needs the IHC score
========  ================  ==========================================================================

(*) The guideline calls a tumour positive if IHC 3+ **or** ISH amplified and negative if IHC 0/1+ or
ISH not amplified, so these combinations meet both definitions; the tool does not guess. They are
accepted when an explicit ``her2`` category (the pathologist's final call) is given and is one of the
categories the IHC/ISH results allow (IHC 3+ / ISH-negative: positive; IHC 1+ / ISH-positive: positive
or low; IHC 0 / ISH-positive: positive or zero). A "FISH equivocal" value is not a final result under
2018 (ISH groups 2-4 are resolved by concurrent IHC review) and is rejected.

When ``her2`` and IHC/FISH are both given they must agree; ``her2`` may also be ``negative`` (= low or
zero) if the IHC score decides which.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from her2radiomics.errors import UserError
from her2radiomics.io import check_csv_header, require_file
from her2radiomics.modelcard import STAGE_TASKS

__all__ = [
    "CATEGORIES",
    "her2_category",
    "allowed_categories",
    "load_labels",
    "stage_target",
]

CATEGORIES = ("positive", "low", "zero")

_CATEGORY_SYNONYMS = {
    "positive": "positive", "pos": "positive", "her2-positive": "positive", "her2positive": "positive",
    "her2+": "positive", "her2-pos": "positive", "her2pos": "positive",
    "low": "low", "her2-low": "low", "her2low": "low",
    "zero": "zero", "her2-zero": "zero", "her2zero": "zero", "her2-0": "zero", "null": "zero",
    "ultralow": "zero", "her2-ultralow": "zero",
    # HER2-negative = low + zero: resolved only together with an IHC score
    "negative": "negative", "neg": "negative", "her2-negative": "negative", "her2negative": "negative",
    "her2-neg": "negative", "her2-": "negative",
}
_IHC = {"0": "0", "0+": "0", "1": "1+", "1+": "1+", "2": "2+", "2+": "2+", "3": "3+", "3+": "3+"}
_FISH = {
    "positive": "positive", "pos": "positive", "amplified": "positive", "amp": "positive", "+": "positive",
    "negative": "negative", "neg": "negative", "notamplified": "negative", "nonamplified": "negative",
    "non-amplified": "negative", "not-amplified": "negative", "unamplified": "negative", "-": "negative",
}
_BLANK = {"", "na", "n/a", "nan", "none", "not done", "notdone", "nd", "missing", "unknown"}

# categories the IHC/ISH pair allows (see the module docstring); one element = determined
_ALLOWED: dict[tuple[str | None, str | None], tuple[str, ...]] = {
    ("3+", None): ("positive",),
    ("3+", "positive"): ("positive",),
    ("3+", "negative"): ("positive",),
    ("2+", "positive"): ("positive",),
    ("2+", "negative"): ("low",),
    ("2+", None): ("positive", "low"),
    ("1+", None): ("low",),
    ("1+", "negative"): ("low",),
    ("1+", "positive"): ("positive", "low"),
    ("0", None): ("zero",),
    ("0", "negative"): ("zero",),
    ("0", "positive"): ("positive", "zero"),
    (None, "positive"): ("positive",),
    (None, "negative"): ("low", "zero"),
}
_DISCORDANT = {("3+", "negative"), ("1+", "positive"), ("0", "positive")}


def _is_blank(value) -> bool:
    if value is None:
        return True
    if not isinstance(value, str):
        try:
            if bool(pd.isna(value)):  # NaN, pd.NA, NaT
                return True
        except (TypeError, ValueError):
            pass
    return isinstance(value, str) and value.strip().lower() in _BLANK


def _where(case_id) -> str:
    return f"case {case_id}: " if case_id is not None else ""


def _norm_text(value) -> str:
    return re.sub(r"\s+", " ", str(value).strip().lower())


def _parse_category(her2, case_id) -> str | None:
    if _is_blank(her2):
        return None
    key = _norm_text(her2)
    cat = _CATEGORY_SYNONYMS.get(key) or _CATEGORY_SYNONYMS.get(key.replace(" ", "-")) or \
        _CATEGORY_SYNONYMS.get(key.replace(" ", ""))
    if cat is None:
        raise UserError(
            f"{_where(case_id)}unknown HER2 category {her2!r}; use positive, low or zero (or give ihc and fish; "
            "for a 0/1 column use the generic --label-column/--positive/--negative options)"
        )
    return cat


def _parse_ihc(ihc, case_id) -> str | None:
    if _is_blank(ihc):
        return None
    if isinstance(ihc, (int, float, np.integer, np.floating)) and not isinstance(ihc, bool):
        f = float(ihc)
        key = str(int(f)) if f.is_integer() else str(f)
    else:
        key = _norm_text(ihc).replace(" ", "")
        key = re.sub(r"^(ihc|score)[:=]?", "", key)
        if re.fullmatch(r"[0-3]\.0", key):
            key = key[0]
    out = _IHC.get(key)
    if out is None:
        raise UserError(f"{_where(case_id)}unknown IHC score {ihc!r}; use 0, 1+, 2+ or 3+")
    return out


def _parse_fish(fish, case_id) -> str | None:
    if _is_blank(fish):
        return None
    key = _norm_text(fish)
    out = _FISH.get(key) or _FISH.get(key.replace(" ", "")) or _FISH.get(key.replace(" ", "-"))
    if out is None:
        if "equivocal" in key:
            raise UserError(
                f"{_where(case_id)}FISH {fish!r} is not a final result (ASCO/CAP 2018 resolves ISH groups 2-4 "
                "with concurrent IHC review); give the final ISH result: positive or negative"
            )
        raise UserError(
            f"{_where(case_id)}unknown FISH/ISH result {fish!r}; use positive/amplified, negative/not amplified, "
            "or leave it blank"
        )
    return out


def allowed_categories(ihc=None, fish=None) -> tuple[str, ...]:
    """Categories compatible with an IHC score and ISH result under ASCO/CAP 2018 (see module docstring).

    ``()`` when both are blank; one element when the pair determines the category.
    """
    i = _parse_ihc(ihc, None)
    f = _parse_fish(fish, None)
    if i is None and f is None:
        return ()
    return _ALLOWED[(i, f)]


def her2_category(her2=None, ihc=None, fish=None, *, case_id=None) -> str:
    """HER2 category ``"positive" | "low" | "zero"`` from a category and/or IHC score + ISH result.

    ``her2`` accepts positive/low/zero (case-insensitive; synonyms such as ``pos``, ``HER2-low``,
    ``her2 zero``, ``ultralow`` -> zero) and ``negative`` (only with an IHC score that decides low vs
    zero). ``ihc`` accepts 0, 1+, 2+, 3+ (or 0/1/2/3, numbers or strings); ``fish`` accepts
    positive/pos/amplified, negative/neg/not amplified, or blank. Impossible, ambiguous or
    inconsistent inputs raise a one-line UserError naming ``case_id`` (if given) and the values.

    References
    ----------
    Wolff AC, et al. HER2 Testing in Breast Cancer: ASCO/CAP Clinical Practice Guideline Focused
    Update. J Clin Oncol 2018;36(20):2105-2122.
    Tarantino P, et al. HER2-low breast cancer: pathological and clinical landscape. J Clin Oncol
    2020;38(17):1951-1962.
    """
    cat = _parse_category(her2, case_id)
    i = _parse_ihc(ihc, case_id)
    f = _parse_fish(fish, case_id)
    where = _where(case_id)
    shown = f"her2={her2!r}, ihc={ihc!r}, fish={fish!r}"
    if i is None and f is None:
        if cat is None:
            raise UserError(f"{where}no HER2 information (her2, ihc and fish are all blank)")
        if cat == "negative":
            raise UserError(
                f"{where}HER2 'negative' is ambiguous (low or zero) without an IHC score ({shown}); "
                "give low/zero or the IHC score"
            )
        return cat
    allowed = _ALLOWED[(i, f)]
    if cat is None:
        if (i, f) in _DISCORDANT:
            raise UserError(
                f"{where}discordant HER2 tests ({shown}): ASCO/CAP 2018 calls IHC 3+ or ISH-amplified positive and "
                "IHC 0/1+ or ISH-not-amplified negative; give the final category in the her2 column"
            )
        if len(allowed) == 1:
            return allowed[0]
        if i == "2+":
            raise UserError(
                f"{where}IHC 2+ without a FISH/ISH result ({shown}): 2+ is equivocal under ASCO/CAP 2018 and needs "
                "ISH to decide positive vs low; add the FISH result"
            )
        raise UserError(
            f"{where}negative FISH without an IHC score ({shown}) cannot separate HER2-low from zero; "
            "add the IHC score"
        )
    if cat == "negative":
        options = [c for c in allowed if c != "positive"]
        if len(options) == 1:
            return options[0]
        if not options:
            raise UserError(f"{where}HER2 'negative' contradicts the tests ({shown}), which make it positive")
        raise UserError(
            f"{where}HER2 'negative' is ambiguous (low or zero) here ({shown}); give low/zero or the IHC score"
        )
    if cat not in allowed:
        raise UserError(
            f"{where}HER2 category {cat!r} contradicts IHC/FISH ({shown}), which allow "
            f"{' or '.join(allowed)} under ASCO/CAP 2018; fix the labels"
        )
    return cat


# --------------------------------------------------------------------------------------------------
# tables


def _find_column(columns: Sequence[str], name: str, what: str, path: Path, required: bool = True) -> str | None:
    if name in columns:
        return name
    lower = {c.lower(): c for c in columns}
    if name.lower() in lower:
        return lower[name.lower()]
    if required:
        listed = ", ".join(list(columns)[:12]) + (" ..." if len(columns) > 12 else "")
        option = {"id": "--id-column", "centre": "--center-column", "IHC": "--ihc-column",
                  "FISH": "--fish-column"}.get(what, "--label-column")
        raise UserError(f"{path.name}: no {what} column {name!r} (columns: {listed}); choose it with {option}")
    return None


def _value_key(value: str) -> str:
    """Comparable form of a label value: '1', '1.0' and ' 1 ' are the same; text is case-insensitive."""
    s = value.strip()
    try:
        f = float(s)
    except ValueError:
        return s.lower()
    return repr(f) if math.isfinite(f) else s.lower()


def _as_list(values) -> list[str]:
    if values is None:
        return []
    if isinstance(values, (str, int, float)):
        return [str(values)]
    return [str(v) for v in values]


def table_separator(path: str | os.PathLike[str]) -> str:
    """Separator of a labels table: a tab for ``.tsv``/``.txt`` names, else a comma."""
    return "\t" if Path(path).suffix.lower() in (".tsv", ".txt") else ","


def load_labels(
    path: str | os.PathLike[str],
    id_column: str = "case_id",
    label_column: str | None = None,
    positive: Iterable | str | None = None,
    negative: Iterable | str | None = None,
    center_column: str | None = None,
    *,
    ihc_column: str | None = None,
    fish_column: str | None = None,
    drop_unresolved: bool = False,
) -> pd.DataFrame:
    """Read a labels table (CSV; tab-separated if the name ends in .tsv/.txt).

    Two modes:

    - **HER2** (no ``positive``/``negative``): a category column (``label_column``, default ``her2``)
      and/or ``ihc`` + ``fish`` columns (found case-insensitively; ``ish`` also accepted; a pathology
      export's own names with ``ihc_column`` / ``fish_column``) -> column ``her2`` with positive/low/zero
      by :func:`her2_category`. Every case whose category cannot be determined is named in one error
      (grouped by reason, e.g. all IHC 2+ cases without ISH); with ``drop_unresolved`` the cases the
      guideline leaves undetermined (IHC 2+ without ISH, discordant tests, "FISH equivocal", ...) are
      left out instead and listed in ``df.attrs["unresolved"]`` (id -> reason); unreadable values
      (e.g. IHC "4+") stay an error.
    - **generic** (``positive`` and/or ``negative`` given, ``label_column`` required) -> column
      ``label`` (int 1 = event for values in ``positive``, 0 for ``negative``). With only
      ``positive``, every other non-blank value is 0; with both, other values are excluded.
      Numeric values compare as numbers ("1" == "1.0").

    Rows with a blank label are excluded. Returns a DataFrame with ``case_id`` (str), ``her2`` or
    ``label``, and ``center`` (str) when ``center_column`` is given or a ``center`` column exists;
    ``df.attrs["excluded"]`` maps each excluded case id to the reason and ``df.attrs["mode"]`` is
    ``"her2"`` or ``"generic"``. Errors (missing file/columns, duplicate or blank ids, no usable
    rows, unknown values, a listed positive/negative value absent from the column) are one-line
    UserErrors.
    """
    p = Path(path)
    raw = _read_table(p, "labels file")
    cols = list(raw.columns)
    ids = _case_ids(raw, id_column, p)
    if center_column is not None:
        cc = _find_column(cols, center_column, "centre", p)
    else:
        cc = _find_column(cols, "center", "centre", p, required=False) or \
            _find_column(cols, "centre", "centre", p, required=False)
    pos_list = _as_list(positive)
    neg_list = _as_list(negative)
    out = pd.DataFrame({"case_id": ids.to_numpy(dtype=str)})
    unresolved: dict[str, str] = {}
    if pos_list or neg_list:
        mode = "generic"
        out["label"], excluded = _generic_labels(raw, ids, p, label_column, pos_list, neg_list)
        keep = out["label"].to_numpy() >= 0
    else:
        mode = "her2"
        out["her2"], excluded, unresolved = _her2_labels(raw, ids, p, label_column, ihc_column, fish_column,
                                                         drop_unresolved)
        keep = out["her2"].notna().to_numpy()
    if cc is not None:
        out["center"] = _centre_values(raw, ids, cc, keep, p)
    out = out[keep].reset_index(drop=True)
    if out.empty:
        raise UserError(f"{p.name}: no case has a usable label ({len(excluded)} excluded); check the label options")
    out.attrs["excluded"] = excluded
    out.attrs["unresolved"] = unresolved
    out.attrs["mode"] = mode
    return out


# --------------------------------------------------------------------------------------------------
# load_labels' steps: reading the table, case ids, generic labels, HER2 labels, centres


def _read_table(p: Path, what: str) -> pd.DataFrame:
    """The table as stripped text (no NA conversion); one-line errors for a missing/empty/unreadable file."""
    p = require_file(p, f"{what} {{p}} is a folder; give the {what.split()[0]} CSV file",
                     f"{what} not found: {{p}}; check the path")
    sep = table_separator(p)
    try:
        raw = pd.read_csv(p, sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise UserError(f"{what} {p} is empty; it needs a header and one row per case") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"cannot read {what} {p}: {first}; give a comma-separated UTF-8 CSV file") from None
    check_csv_header(raw.columns, p, what, sep)
    raw.columns = [str(c).strip() for c in raw.columns]
    if raw.empty:
        raise UserError(f"{what} {p} has no rows; it needs one row per case")
    return raw.apply(lambda col: col.str.strip())


def _case_ids(raw: pd.DataFrame, id_column: str, p: Path) -> pd.Series:
    """The id column: no blank, no duplicate."""
    idc = _find_column(list(raw.columns), id_column, "id", p)
    ids = raw[idc]
    if (ids == "").any():
        rows = [int(r) + 2 for r in np.flatnonzero((ids == "").to_numpy())[:5]]
        raise UserError(f"{p.name}: blank {idc!r} on line(s) {rows}; every row needs a case id")
    dup = ids[ids.duplicated()].unique().tolist()
    if dup:
        raise UserError(f"{p.name}: duplicate case ids in {idc!r}: {', '.join(dup[:5])}; each case must appear once")
    return ids


def _generic_labels(raw: pd.DataFrame, ids: pd.Series, p: Path, label_column: str | None, pos_list: list[str],
                    neg_list: list[str]) -> tuple[np.ndarray, dict[str, str]]:
    """Generic mode: 1 for ``pos_list`` values, 0 for ``neg_list`` (or every other value), -1 = left out."""
    if label_column is None:
        raise UserError("--positive/--negative need --label-column naming the label column")
    if not pos_list:  # negatives alone would give a target without any event
        raise UserError("--negative needs --positive too: list the event value(s) of the label column")
    lc = _find_column(list(raw.columns), label_column, "label", p)
    keys = raw[lc].map(_value_key)
    present = set(keys[raw[lc] != ""])
    for listed, name in ((pos_list, "positive"), (neg_list, "negative")):
        for v in listed:
            if _value_key(v) not in present:
                shown = ", ".join(sorted(present)[:10])
                raise UserError(f"{p.name}: {name} value {v!r} not found in column {lc!r} (values: {shown})")
    pos_keys = {_value_key(v) for v in pos_list}
    neg_keys = {_value_key(v) for v in neg_list}
    both = pos_keys & neg_keys
    if both:
        raise UserError(f"value(s) {sorted(both)} listed as both positive and negative; fix the options")
    excluded: dict[str, str] = {}
    label = np.full(len(raw), -1, dtype=int)
    for r, (cid, val, key) in enumerate(zip(ids, raw[lc], keys, strict=True)):
        if val == "" or val.lower() in _BLANK:
            excluded[cid] = f"blank {lc}"
        elif key in pos_keys:
            label[r] = 1
        elif key in neg_keys or not neg_keys:
            label[r] = 0
        else:
            excluded[cid] = f"{lc}={val!r} is neither positive nor negative"
    return label, excluded


def _her2_labels(raw: pd.DataFrame, ids: pd.Series, p: Path, label_column: str | None, ihc_column: str | None,
                 fish_column: str | None, drop_unresolved: bool) -> tuple[pd.Series, dict[str, str], dict[str, str]]:
    """HER2 mode: category per case (None = left out), excluded (no HER2 information) and unresolved cases."""
    cols = list(raw.columns)
    lc = _find_column(cols, label_column or "her2", "HER2 category", p, required=label_column is not None)
    ic = _find_column(cols, ihc_column or "ihc", "IHC", p, required=ihc_column is not None)
    fc = (_find_column(cols, fish_column, "FISH", p) if fish_column else
          _find_column(cols, "fish", "FISH", p, required=False) or _find_column(cols, "ish", "ISH", p, required=False))
    if lc is None and ic is None and fc is None:
        listed = ", ".join(cols[:12])
        raise UserError(
            f"{p.name}: no HER2 label columns (need 'her2' or 'ihc'+'fish'; columns: {listed}); for another "
            "label use --label-column with --positive/--negative"
        )
    excluded: dict[str, str] = {}
    cats: list[str | None] = []
    problems: dict[str, tuple[str, bool, str]] = {}   # case id -> (short reason, droppable, message)
    for r, cid in enumerate(ids):
        h = raw[lc].iat[r] if lc else None
        i = raw[ic].iat[r] if ic else None
        f = raw[fc].iat[r] if fc else None
        if all(_is_blank(v) for v in (h, i, f)):
            excluded[cid] = "no HER2 information"
            cats.append(None)
            continue
        try:
            cats.append(her2_category(h, i, f, case_id=cid))
        except UserError as exc:
            cats.append(None)
            problems[cid] = (_short_reason(str(exc), cid), _undetermined(h, i, f), str(exc))
    unresolved = _check_problems(p, problems, drop_unresolved)
    return pd.Series(cats, dtype=object), excluded, unresolved


def _centre_values(raw: pd.DataFrame, ids: pd.Series, cc: str, keep: np.ndarray, p: Path) -> np.ndarray:
    """The centre column; a blank centre of a kept case is an error."""
    centre = raw[cc]
    blank = (centre == "") & keep
    if blank.any():
        bad = ids[blank].tolist()[:5]
        raise UserError(f"{p.name}: blank centre in column {cc!r} for case(s) {', '.join(bad)}")
    return centre.to_numpy(dtype=str)


# --------------------------------------------------------------------------------------------------
# clinical covariates


def load_clinical(path: str | os.PathLike[str], columns: Sequence[str], id_column: str = "case_id",
                  what: str = "clinical") -> pd.DataFrame:
    """The ``columns`` of a labels/clinical table as stripped text, indexed by case id (``--clinical``).

    A column that is not in the table is one line naming it and listing the table's columns (found
    case-insensitively, like the other label columns)."""
    p = Path(path)
    raw = _read_table(p, "labels file")
    ids = _case_ids(raw, id_column, p)
    cols = list(raw.columns)
    found = []
    for c in columns:
        hit = _find_column(cols, c, what, p, required=False)
        if hit is None:
            listed = ", ".join(cols[:20]) + (" ..." if len(cols) > 20 else "")
            raise UserError(f"{p.name}: no {what} column {c!r} (columns: {listed}); fix the --clinical names")
        found.append(hit)
    out = raw[found].copy()
    out.columns = list(columns)
    out.index = pd.Index(ids.to_numpy(dtype=str), name="case_id")
    return out


def _short_reason(message: str, case_id) -> str:
    """'case P02: IHC 2+ without a FISH/ISH result (her2=...): ...' -> 'IHC 2+ without a FISH/ISH result'."""
    text = message.removeprefix(_where(case_id))
    return re.split(r" \(|; ", text, maxsplit=1)[0].strip()


def _undetermined(her2, ihc, fish) -> bool:
    """True when every value is readable and the guideline leaves the category open (not a typing error)."""
    try:
        _parse_category(her2, None)
        _parse_ihc(ihc, None)
    except UserError:
        return False
    try:
        _parse_fish(fish, None)
    except UserError as exc:
        return "not a final result" in str(exc)
    return True


def _check_problems(path: Path, problems: dict[str, tuple[str, bool, str]], drop: bool) -> dict[str, str]:
    """One error naming every case without a category, grouped by reason; with ``drop`` the undetermined cases
    are returned (id -> reason) to be left out instead."""
    if not problems:
        return {}
    if drop and all(ok for _, ok, _ in problems.values()):
        return {cid: reason for cid, (reason, _, _) in problems.items()}
    if len(problems) == 1:  # the full message of her2_category, which says what to add
        (_, ok, message), = problems.values()
        raise UserError(message + ("; or pass --drop-unresolved to leave such cases out" if ok else ""))
    groups: dict[str, list[str]] = {}
    for cid, (reason, _, _) in problems.items():
        groups.setdefault(reason, []).append(str(cid))
    listed = "; ".join(f"{reason}: {', '.join(ids)}" for reason, ids in groups.items())
    unreadable = [cid for cid, (_, ok, _) in problems.items() if not ok]
    if unreadable:
        todo = ("fix the unreadable values (IHC 0, 1+, 2+, 3+; ISH positive/amplified, negative/not amplified or "
                "blank)" + (" and add the missing results, or pass --drop-unresolved for the undetermined cases"
                            if len(unreadable) < len(problems) else ""))
    else:
        todo = ("add the missing ISH results or the final category (her2 column) for these cases, or pass "
                "--drop-unresolved to leave them out")
    raise UserError(f"{path.name}: {len(problems)} case(s) have no HER2 category: {listed}; {todo}")


def stage_target(categories, task: str) -> tuple[np.ndarray, np.ndarray]:
    """Cases and binary target for one stage of the two-stage model.

    ``task="stage1"``: all cases, ``y = 1`` for positive, 0 for low or zero.
    ``task="stage2"``: positives excluded, ``y = 1`` for low, 0 for zero.

    Returns ``(mask, y)``: ``mask`` is a bool array over all input cases (which cases take part) and
    ``y`` an int8 array of length ``mask.sum()`` with the targets of those cases, in input order.
    """
    if task not in STAGE_TASKS:
        raise UserError(f"task must be stage1 or stage2 (got {task!r})")
    cats = np.asarray([str(c) for c in categories], dtype=object)
    bad = sorted({c for c in cats if c not in CATEGORIES})
    if bad:
        raise UserError(f"unknown HER2 categories {bad[:5]}; expected positive, low or zero (see her2_category)")
    if task == "stage1":
        mask = np.ones(cats.size, dtype=bool)
        y = (cats == "positive").astype(np.int8)
    else:
        mask = cats != "positive"
        y = (cats[mask] == "low").astype(np.int8)
    return mask, y
