"""The cohort manifest: one row per case (and reader) naming its image and masks (``case_id,image,lesion`` +
optional ``reader,air,pectoralis,label,series``; or pyradiomics' own batch CSV). Read by the batch extraction
(her2radiomics.batch) and by QA sessions (her2radiomics.qa); needs neither pandas nor SimpleITK to import."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from her2radiomics.errors import UserError

#: how to choose one label of a multi-label lesion file in a manifest (extract has no --label option)
MANIFEST_LABEL_HINT = "give the lesion's value in the manifest's 'label' column"


@dataclass(frozen=True)
class CaseSpec:
    """One manifest row: absolute paths (optional masks may be None)."""

    case_id: str
    reader: str
    image: Path
    lesion: Path
    air: Path | None = None
    pectoralis: Path | None = None
    label: int | None = None
    series: str | None = None  # DICOM series of the image folder (number, SeriesInstanceUID or description)
    dce_phases: str | None = None  # issue16: ';'-separated phase files (absolute), a 4D image or a folder
    dce_times: str | None = None   # issue16: ';'-separated acquisition times (s after injection)
    sequences: tuple[SequenceInput, ...] | None = None  # issue16: one per image_<seq> column (several sequences)


# ---------------------------------------------------------------------------------------------- issue 16
_SEQ = re.compile(r"[a-z][a-z0-9]*")


@dataclass(frozen=True)
class SequenceInput:
    """One sequence of a case (manifest ``image_<seq>`` / ``lesion_<seq>``): its image and optional own lesion."""

    name: str
    image: Path
    lesion: Path | None = None


def sequence_columns(columns: Sequence[str]) -> list[str]:
    """Sequence names of a manifest's ``image_<seq>`` columns, in column order (``image_t2`` -> ``t2``)."""
    out = []
    for c in columns:
        if c.startswith("image_"):
            seq = c[len("image_"):]
            if not _SEQ.fullmatch(seq):
                raise UserError(f"manifest column {c!r}: a sequence name is lower-case letters and digits, starting "
                                "with a letter (e.g. image_t2, image_adc)")
            out.append(seq)
    return out


def manifest_sequences(row: Mapping[str, str], base: Path, seqs: Sequence[str]) -> tuple[SequenceInput, ...]:
    """The sequences of one manifest row (``image_<seq>`` cells that are filled; ``lesion`` is the first's)."""
    out = []
    for i, seq in enumerate(seqs):
        img = (row.get(f"image_{seq}") or "").strip()
        if not img:
            continue
        les = (row.get(f"lesion_{seq}") or "").strip() or ((row.get("lesion") or "").strip() if i == 0 else "")
        out.append(SequenceInput(seq, base / img, base / les if les else None))
    return tuple(out)




#: pyradiomics' batch CSV header (``pyradiomics batch.csv out.csv``): ID,Image,Mask[,Label] -> manifest columns
PYRADIOMICS_BATCH = {"ID": "case_id", "Image": "image", "Mask": "lesion", "Label": "label"}


def read_manifest(path: str | os.PathLike[str]) -> list[CaseSpec]:
    """Read a manifest CSV (``case_id,image,lesion`` + optional ``reader,air,pectoralis,label,series``).

    Paths are relative to the manifest's folder. ``series`` (or ``series_uid``) chooses one DICOM series when the
    image folder holds several. pyradiomics' own batch file (header ``ID,Image,Mask[,Label]``, case-sensitive as in
    pyradiomics) is accepted as well; without ``ID`` the rows are numbered 1, 2, ... Raises UserError for a
    missing/unreadable file, missing columns, empty required cells, a non-integer label, or a duplicated
    (case_id, reader) pair. Missing image or mask FILES are not checked here: they fail their own case only.
    """
    from her2radiomics.io import check_csv_header, require_file

    p = require_file(path, "manifest {p} is a folder; give the manifest CSV file (columns case_id,image,lesion)",
                     "manifest not found: {p}; give a CSV with columns case_id,image,lesion")
    try:
        with open(p, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
            columns = [c.strip() for c in (rows[0].keys() if rows else [])]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"cannot read manifest {p}: {exc}; give a UTF-8 CSV file") from None
    check_csv_header(columns or [""], p, "manifest")
    if not rows:
        raise UserError(f"manifest {p} has no rows; give a header case_id,image,lesion and one row per case")
    if {"Image", "Mask"} <= set(columns) and not {"image", "lesion"} & set(columns):
        rename = {k: v for k, v in PYRADIOMICS_BATCH.items() if k in columns and v not in columns}
        rows = [{rename.get((k or "").strip(), k): v for k, v in r.items()} for r in rows]
        if "ID" not in columns and "case_id" not in columns:
            for n, r in enumerate(rows, start=1):
                r["case_id"] = str(n)
        columns = list(dict.fromkeys([rename.get(c, c) for c in columns] + ["case_id"]))
    seq_names = sequence_columns(columns)   # issue16: image_<seq> columns replace image (and lesion_<seq> lesion)
    missing = [c for c in ("case_id", "image", "lesion") if c not in columns
               and not (c == "image" and "dce_phases" in columns) and not (c != "case_id" and seq_names)]
    if missing:
        raise UserError(f"manifest {p} lacks column(s) {', '.join(missing)}; columns found: {', '.join(columns)}")
    base = p.resolve().parent
    specs: list[CaseSpec] = []
    seen: set[tuple[str, str]] = set()
    for i, raw in enumerate(rows, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        for c in ("case_id", "image", "lesion"):
            if not row.get(c) and not (c == "image" and row.get("dce_phases")) and not (c != "case_id" and seq_names):
                raise UserError(f"manifest {p} line {i}: empty {c}; fill it or remove the line")
        label = None
        if row.get("label"):
            try:
                label = int(float(row["label"]))
            except ValueError:
                raise UserError(f"manifest {p} line {i}: label {row['label']!r} is not an integer") from None
        key = (row["case_id"], row.get("reader", ""))
        if key in seen:
            raise UserError(f"manifest {p} line {i}: case {key[0]!r} reader {key[1]!r} appears twice; keep one")
        seen.add(key)
        seqs = manifest_sequences(row, base, seq_names) if seq_names else None
        if seq_names:
            if not seqs:
                raise UserError(f"manifest {p} line {i}: no image_<seq> cell is filled; give at least one sequence")
            row = {**row, "image": row.get("image") or str(seqs[0].image),
                   "lesion": row.get("lesion") or str(next((q.lesion for q in seqs if q.lesion), ""))}
        specs.append(
            CaseSpec(
                case_id=row["case_id"],
                reader=row.get("reader", ""),
                image=base / (row.get("image") or row["dce_phases"].split(";")[0].strip()),
                lesion=base / row["lesion"],
                air=base / row["air"] if row.get("air") else None,
                pectoralis=base / row["pectoralis"] if row.get("pectoralis") else None,
                label=label,
                series=row.get("series_uid") or row.get("series") or None,
                dce_phases=";".join(str(base / t.strip()) for t in row["dce_phases"].split(";") if t.strip())
                if row.get("dce_phases") else None,
                dce_times=row.get("dce_times") or None,
                sequences=seqs,
            )
        )
    return specs
