"""Provenance that travels with a features table: the parameter-file hash and the software version as columns.

``extract`` writes three columns at the end of ``FEATURES.csv``: ``parameter_file_hash`` (``"sha256:<hex>"`` of the
canonical pyradiomics parameters, :func:`her2radiomics.features.parameter_file_hash`), ``resample`` and
``her2radiomics_version``. The parameter-file hash has ONE name everywhere (:data:`PARAMETER_FILE_HASH_COLUMN`): this
column, the ``FEATURES.meta.json`` key and a model card's ``provenance.parameter_file_hash``. A table copied without its sidecar therefore still says how its numbers were
made, and ``train`` / ``evaluate`` / ``predict`` / ``report`` refuse a card, an ICC table or predictions made with
another parameter file (one ``error:`` line). Tables without the column (made by other tools, or before this
column existed) fall back to the sidecar; when neither is there nothing can be checked.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from her2radiomics.errors import UserError

#: the parameter-file hash column (same name as the FEATURES.meta.json key and the card's provenance key)
PARAMETER_FILE_HASH_COLUMN = "parameter_file_hash"
#: the grid the features were computed on: "none" (native) or "X Y Z interpolator" (extract --resample-spacing)
RESAMPLE_COLUMN = "resample"
#: the her2radiomics version that extracted the row
VERSION_COLUMN = "her2radiomics_version"
#: columns that describe a row's provenance, never features
PROVENANCE_COLUMNS = (PARAMETER_FILE_HASH_COLUMN, RESAMPLE_COLUMN, VERSION_COLUMN)


def resample_text(resample: Mapping[str, Any] | None) -> str:
    """``"none"`` or ``"0.8 0.8 0.8 linear"`` for the ``resample`` column."""
    if not resample:
        return "none"
    return " ".join(f"{float(v):g}" for v in resample["spacing"]) + f" {resample['interpolator']}"


def short(h: str) -> str:
    """``sha256:0123456789ab…`` (enough to tell two hashes apart in a message)."""
    return h if len(h) <= 19 else h[:19] + "…"


def sidecar_hash(features_path: str | os.PathLike[str]) -> str | None:
    """``parameter_file_hash`` of the ``FEATURES.meta.json`` sidecar written by ``extract`` (or None)."""
    meta = Path(features_path).with_suffix(".meta.json")
    if not meta.is_file():
        return None
    try:
        value = json.loads(meta.read_text(encoding="utf-8")).get(PARAMETER_FILE_HASH_COLUMN)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise UserError(f"cannot read {meta} (not a readable JSON object); re-run 'extract' or delete the sidecar") from None
    return value if isinstance(value, str) and value else None


def column_hashes(values: Iterable[Any]) -> list[str]:
    """Distinct non-empty hash values of a column, in order of appearance."""
    out: list[str] = []
    for v in values:
        if v is None or (isinstance(v, float) and v != v):
            continue
        s = str(v).strip()
        if s and s.lower() != "nan" and s not in out:
            out.append(s)
    return out


def table_hash(path: str | os.PathLike[str], table: Any = None, what: str = "features table") -> str | None:
    """The parameter-file hash of a features table: its ``parameter_file_hash`` column, else its sidecar.

    ``table``: the table already read (a DataFrame), to avoid reading ``path`` again. UserError when the column holds
    several hashes (tables of two extractions joined) or disagrees with the sidecar.
    """

    p = Path(path)
    column = PARAMETER_FILE_HASH_COLUMN
    if table is None:
        table = _read_column(p, column)
    hashes = column_hashes(table[column]) if table is not None and column in table.columns else []
    if len(hashes) > 1:
        raise UserError(
            f"{what} {p} mixes features from {len(hashes)} parameter files ({', '.join(short(h) for h in hashes[:3])} in "
            f"column {column}); features of one model must come from one parameter file: re-extract the "
            "other cases with the same --params"
        )
    side = sidecar_hash(p)
    if hashes and side and hashes[0] != side:
        raise UserError(
            f"{what} {p}: its {column} column ({short(hashes[0])}) disagrees with its sidecar "
            f"{p.with_suffix('.meta.json').name} ({short(side)}); the sidecar belongs to another extraction: "
            "re-run 'extract' or remove the stale sidecar"
        )
    return hashes[0] if hashes else side


def table_resample(path: str | os.PathLike[str], table: Any = None, what: str = "features table") -> str | None:
    """The ``resample`` column's single value ("none" or "X Y Z interpolator"), None when the table has no such
    column; UserError when it mixes native and resampled (or differently resampled) rows."""

    p = Path(path)
    if table is None:
        table = _read_column(p, RESAMPLE_COLUMN)
    if table is None or RESAMPLE_COLUMN not in table.columns:
        return None
    values = column_hashes(table[RESAMPLE_COLUMN])
    if len(values) > 1:
        raise UserError(f"{what} {p} mixes features computed on different grids (column {RESAMPLE_COLUMN}: "
                        f"{', '.join(values[:3])}); extract every case with the same --resample-spacing (or none)")
    return values[0] if values else None


def check_card_resample(card: Mapping[str, Any], table_value: str | None, card_name: str = "model card",
                        what: str = "features table") -> None:
    """UserError when the card was trained on resampled features and the table is native, or the reverse."""
    prov = card.get("provenance") or {}
    want = prov.get(RESAMPLE_COLUMN) if isinstance(prov, Mapping) else None
    if want and table_value and str(want) != table_value:
        def say(v: str) -> str:
            return "the native grid (no resampling)" if v == "none" else f"a grid resampled to {v}"

        raise UserError(f"the {what}'s features were computed on {say(table_value)} but the {card_name} was trained on "
                        f"{say(str(want))}; extract again with the card's --resample-spacing"
                        + (" (none)" if want == "none" else f" {' '.join(str(want).split()[:3])} --interpolator "
                           f"{str(want).split()[-1]}"))


def card_hash(card: Mapping[str, Any]) -> str | None:
    """The parameter-file hash a model card was trained with (``provenance.parameter_file_hash``)."""
    prov = card.get("provenance") or {}
    h = prov.get(PARAMETER_FILE_HASH_COLUMN) if isinstance(prov, Mapping) else None
    return str(h) if h else None


def check_card(card: Mapping[str, Any], parameter_file_hash: str | None, card_name: str = "model card",
               what: str = "features table") -> None:
    """UserError when the features (``parameter_file_hash``) and the card come from different parameter files."""
    h = card_hash(card)
    if h and parameter_file_hash and h != parameter_file_hash:
        raise UserError(
            f"the {what} was extracted with parameter file {short(parameter_file_hash)} but the {card_name} was trained with "
            f"{short(h)}; re-extract the features with the card's parameter file"
        )


def check_same(h_a: str | None, h_b: str | None, what_a: str, what_b: str) -> None:
    """UserError when two tables carry different parameter-file hashes (both known)."""
    if h_a and h_b and h_a != h_b:
        raise UserError(
            f"the {what_b} was extracted with parameter file {short(h_b)} but the {what_a} with {short(h_a)}; "
            f"extract both with the same --params"
        )


def _read_column(path: Path, column: str) -> Any:
    """Only ``column`` of the table at ``path`` (as str), or None when it has no such column or cannot be read: the
    command's own table reader gives the one-line error for an unreadable table."""
    import pandas as pd

    try:
        head = pd.read_csv(path, nrows=0)
        return pd.read_csv(path, usecols=[column], dtype=str) if column in head.columns else None
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError):
        return None
