"""QA sessions over a cohort: per case and reader a review status, edited masks, excluded volumes and an audit trail.

A QA session is a folder of plain files (layout and rules in docs/qa.md)::

    DIR/session.json                       format, manifest (path + sha256), distances, readers, cases (absolute paths)
    DIR/reviews/<case>/<reader>.json       one review record per case and reader (absent = pending, never opened)
    DIR/masks/<case>/<reader>/<kind>-<sha12>.nrrd   edited lesion / air / pectoralis (uint8 0/1, image grid)
    DIR/status.csv                         one row per case and reader (a view of the records, rewritten on change)
    DIR/audit.jsonl                        append-only event log, one JSON object per line
    DIR/.lock                              the writers' lock file

Writers: every change holds an exclusive lock on ``DIR/.lock`` (``fcntl.flock``; on systems without it the
documented rule is one writer per session). Every file but the audit log is written to a temporary file beside it
and renamed into place (``os.replace``); the audit line of a change is appended (one ``write`` + fsync) *before*
the record is replaced, and a mask file is named by its content hash and written before the record that points to
it, so a crash at any point leaves a session that opens and resumes: at worst an unreferenced mask file or an audit
line for a change the record does not show (the reviewer redoes it).

Statuses: ``pending`` (not decided), ``approved`` (accepted as it is), ``edited`` (accepted with the reviewer's
edited masks, which replace the manifest's in extraction) and ``rejected`` (not usable). Readers after the first
may be *blind*: they are given no lesion but their own, to segment the lesion independently for the inter-reader
ICC (Shrout & Fleiss 1979) of ``train --icc``; :meth:`QASession.write_manifest` writes the manifest with a
``reader`` column that ``extract`` turns into the two-reader features table.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import getpass
import hashlib
import io as _io
import json
import os
import re
import statistics
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from her2radiomics import __version__
from her2radiomics.errors import UserError
from her2radiomics.manifest import (
    MANIFEST_LABEL_HINT,  # no pandas: the Slicer panel reviews sessions without it
)

FORMAT = "her2radiomics.qa/1"
SESSION_FILE = "session.json"
STATUS_FILE = "status.csv"
AUDIT_FILE = "audit.jsonl"
LOCK_FILE = ".lock"
STATUSES = ("pending", "approved", "edited", "rejected")
#: statuses whose case is used by ``extract --qa SESSION --only-approved``
ACCEPTED = ("approved", "edited")
MASK_KINDS = ("lesion", "air", "pectoralis")
EXCLUSION_KINDS = ("air", "pectoralis")
STATUS_COLUMNS = ("case_id", "reader", "status", "reviewer", "started", "ended", "seconds", "edited_masks", "note")
_READER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEFAULT_READER = "reader1"
#: seconds a writer waits for another writer's lock before giving up
LOCK_TIMEOUT_S = 30.0


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _iso(t: _dt.datetime) -> str:
    return t.astimezone(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_iso(s: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - containers without a login name
        return "unknown"


def check_reader(name: str) -> str:
    """A reader name is also a file name: letters, digits, '.', '_' or '-' (1-64 characters)."""
    name = str(name or "").strip()
    if not _READER_RE.match(name):
        raise UserError(f"reader name {name!r} is not usable; use 1-64 letters, digits, '.', '_' or '-' "
                        "starting with a letter or digit (e.g. --reader R1)")
    return name


def _case_dir(case_id: str, taken: set[str]) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", case_id).strip(".") or "case"
    if safe != case_id or safe.lower() in taken:
        safe = f"{safe[:48]}-{hashlib.sha256(case_id.encode('utf-8')).hexdigest()[:8]}"
    taken.add(safe.lower())
    return safe


# --------------------------------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QACase:
    """One case of the session (a manifest row; absolute paths; optional masks None)."""

    case_id: str
    image: str
    lesion: str
    air: str | None = None
    pectoralis: str | None = None
    label: int | None = None
    series: str | None = None
    dir: str = ""  # folder name of this case under reviews/ and masks/

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("case_id", "image", "lesion", "air", "pectoralis", "label", "series", "dir")}


@dataclass
class Review:
    """One case's review by one reader (``reviews/<case>/<reader>.json``).

    ``masks``: kind -> {"file": path relative to the session, "sha256": of the file}, only for the masks this
    reader saved (the others are the manifest's). ``excluded_before`` / ``excluded_after``: per shell
    {"air", "pectoralis", "total"} excluded mm3 (``regions.build_regions`` statistics excluded_air_mm3,
    excluded_pectoralis_mm3, excluded_mm3) with the original and with the saved masks, plus "intra_mm3".
    """

    case_id: str
    reader: str
    status: str = "pending"
    reviewer: str = ""
    started: str | None = None
    ended: str | None = None
    seconds: float | None = None
    note: str = ""
    masks: dict[str, dict[str, str]] = field(default_factory=dict)
    excluded_before: dict[str, dict[str, float]] | None = None
    excluded_after: dict[str, dict[str, float]] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier statuses: status, note, ended, reviewer

    @property
    def accepted(self) -> bool:
        return self.status in ACCEPTED

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "case_id": self.case_id, "reader": self.reader, "status": self.status,
            "reviewer": self.reviewer, "started": self.started, "ended": self.ended, "seconds": self.seconds,
            "note": self.note, "masks": self.masks, "excluded_before": self.excluded_before,
            "excluded_after": self.excluded_after, "history": self.history,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Review:
        keys = ("case_id", "reader", "status", "reviewer", "started", "ended", "seconds", "note", "masks",
                "excluded_before", "excluded_after", "history")
        return cls(**{k: d[k] for k in keys if k in d})


@dataclass(frozen=True)
class CaseInputs:
    """What a reader is shown for a case: the image and the current masks (paths; None = none to show).

    ``lesion`` is None for a blind reader who has not saved a lesion yet. ``sources``: kind -> "manifest" |
    "edited" | "none" | "hidden" (blind reader).
    """

    case_id: str
    reader: str
    image: str
    lesion: str | None
    air: str | None
    pectoralis: str | None
    label: int | None
    series: str | None
    sources: dict[str, str]


@dataclass(frozen=True)
class Progress:
    """Counts of one reader's assigned cases by status."""

    reader: str
    total: int
    counts: dict[str, int]

    @property
    def reviewed(self) -> int:
        return self.total - self.counts.get("pending", 0)

    def text(self) -> str:
        parts = ", ".join(f"{self.counts.get(s, 0)} {s}" for s in (*STATUSES[1:], STATUSES[0]))
        return f"{self.reader}: {self.reviewed} of {self.total} reviewed ({parts})"


# --------------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------------
def _write_bytes_atomic(data: bytes, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _ends_cleanly(path: Path) -> bool:
    """True when ``path`` is absent, empty or ends with a newline (not with a line torn by a crash)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return True
            f.seek(size - 1)
            return f.read(1) == b"\n"
    except OSError:
        return True


def _write_json_atomic(obj: Any, path: Path) -> None:
    _write_bytes_atomic((json.dumps(obj, indent=2, allow_nan=False) + "\n").encode("utf-8"), path)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Exclusive lock on ``folder/.lock`` for one change (fcntl.flock where available)."""
    import time

    timeout_s = LOCK_TIMEOUT_S
    try:
        import fcntl
    except ImportError:  # Windows: the documented single-writer rule applies
        yield
        return
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        t0 = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - t0 > timeout_s:
                    raise UserError(f"QA session {folder} is being written by another process for more than "
                                    f"{timeout_s:g} s; close the other review of this session and retry") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


_INTEGER_PIXELS = ("sitkUInt8", "sitkInt8", "sitkUInt16", "sitkInt16", "sitkUInt32", "sitkInt32", "sitkUInt64", "sitkInt64")


def _mask_array(img, reference, what: str, label_hint: str = "give a 0/1 mask (one label)"):
    """uint8 0/1 SimpleITK mask on ``reference``'s grid (validated like a manifest mask, ``io.to_binary_mask``).

    An integer mask holding only 0 and 1 (the usual case) is checked by one min/max pass instead of
    ``to_binary_mask``'s ``np.unique`` (seconds on a 448 x 448 x 160 grid); the result is the same.
    """
    import SimpleITK as sitk

    from her2radiomics.geometry import check_same_grid
    from her2radiomics.io import to_binary_mask

    check_same_grid(img, reference, what=what)
    if img.GetNumberOfComponentsPerPixel() == 1 and img.GetPixelID() in {getattr(sitk, t) for t in _INTEGER_PIXELS}:
        f = sitk.MinimumMaximumImageFilter()
        f.Execute(img)
        if f.GetMinimum() >= 0 and f.GetMaximum() <= 1:
            out = sitk.Cast(img, sitk.sitkUInt8)
            out.CopyInformation(reference)
            return out
    return to_binary_mask(img, reference, what=what, label_hint=label_hint)


def _read_mask(path: str, image, what: str, label: int | None = None):
    """``io.read_mask`` with the fast path of :func:`_mask_array` for 0/1 files."""
    from her2radiomics.io import read_image, read_mask

    hint = MANIFEST_LABEL_HINT if what == "lesion" else "give a 0/1 mask (one label)"
    if label is not None:
        return read_mask(path, image, what, label=label, label_hint=hint)
    return _mask_array(read_image(path, what), image, f"{what} {Path(path)}", label_hint=hint)


def _image_bytes_equal(a, b) -> bool:
    import numpy as np
    import SimpleITK as sitk

    return bool(np.array_equal(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b)))


def shell_exclusions(image, lesion, distances: Sequence[float], air=None, pectoralis=None,
                     auto_exclusions: bool = True) -> dict[str, dict[str, float]]:
    """Excluded mm3 per shell for one case: {shell: {"air", "pectoralis", "total"}} and {"intra_mm3": {"total"}}.

    The values are :func:`her2radiomics.regions.build_regions`' statistics (``excluded_air_mm3``,
    ``excluded_pectoralis_mm3``, ``excluded_mm3`` = voxels of the ideal shell in the union of the exclusions x
    voxel volume), with the same automatic detection of a missing exclusion as ``extract``.
    """
    from her2radiomics.regions import build_regions

    regs = build_regions(image, lesion, tuple(distances), air=air, pectoralis=pectoralis,
                         auto_exclusions=auto_exclusions)
    out: dict[str, dict[str, float]] = {"intra": {"volume_mm3": round(float(regs.stats["intra"]["volume_mm3"]), 6)}}
    for name in regs.shell_names:
        st = regs.stats[name]
        out[name] = {"air": round(float(st["excluded_air_mm3"]), 6),
                     "pectoralis": round(float(st["excluded_pectoralis_mm3"]), 6),
                     "total": round(float(st["excluded_mm3"]), 6)}
    return out


# --------------------------------------------------------------------------------------------------------------
# the session
# --------------------------------------------------------------------------------------------------------------
class QASession:
    """A QA session folder (see the module docstring and docs/qa.md). Create with :meth:`create`, open with :meth:`open`.

    ``clock``: a callable returning the current UTC datetime (tests pass a fixed clock so two reviews of the same
    session produce byte-identical files).
    """

    def __init__(self, path: Path, meta: dict[str, Any], clock: Callable[[], _dt.datetime] | None = None) -> None:
        self.path = Path(path).resolve()
        self.meta = meta
        self._clock = clock or _utcnow
        self._cases = [QACase(**c) for c in meta["cases"]]
        self._by_id = {c.case_id: c for c in self._cases}

    # ---- creation / opening ----------------------------------------------------------------------------------
    @classmethod
    def create(cls, manifest: str | os.PathLike[str], out_dir: str | os.PathLike[str], reader: str | None = None, *,
               distances: Sequence[float] = (1.0, 3.0, 5.0), auto_exclusions: bool = True,
               clock: Callable[[], _dt.datetime] | None = None) -> QASession:
        """A new session from a cohort manifest (``cohort.read_manifest``; one row per case, no ``reader`` column
        or a single reader). ``reader``: the first reader's name (default ``reader1``). ``out_dir`` must not
        exist or be empty."""
        from her2radiomics.io import file_hash
        from her2radiomics.manifest import read_manifest
        from her2radiomics.regions import validate_distances

        reader = check_reader(reader or DEFAULT_READER)
        dists = [float(d) for d in validate_distances(distances)]
        out = Path(out_dir)
        if (out / SESSION_FILE).exists():
            raise UserError(f"{out} is already a QA session; open it (her2radiomics qa status {out}) or choose another -o")
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise UserError(f"output {out} exists and is not an empty folder; choose a new folder with -o")
        specs = read_manifest(manifest)
        ids = [s.case_id for s in specs]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise UserError(f"manifest {manifest} has several rows for case(s) {', '.join(dup[:5])} (a 'reader' column?); "
                            "a QA session starts from one row per case; add readers with 'her2radiomics qa add-reader'")
        taken: set[str] = set()
        cases = [QACase(case_id=s.case_id, image=str(s.image), lesion=str(s.lesion),
                        air=str(s.air) if s.air else None, pectoralis=str(s.pectoralis) if s.pectoralis else None,
                        label=s.label, series=s.series, dir=_case_dir(s.case_id, taken)).to_json() for s in specs]
        clock = clock or _utcnow
        meta = {
            "format": FORMAT,
            "created": _iso(clock()),
            "software": {"her2radiomics": __version__},
            "manifest": {"path": str(Path(manifest).resolve()), "sha256": file_hash(manifest)},
            "distances": dists,
            "auto_exclusions": bool(auto_exclusions),
            "readers": {reader: {"blind": False, "cases": None}},
            "cases": cases,
        }
        out.mkdir(parents=True, exist_ok=True)
        session = cls(out, meta, clock)
        with _locked(out):
            session._audit("create", reader=reader, manifest=meta["manifest"], cases=len(cases))
            _write_json_atomic(meta, out / SESSION_FILE)
            session._write_status_csv()
        return session

    @classmethod
    def open(cls, path: str | os.PathLike[str], clock: Callable[[], _dt.datetime] | None = None) -> QASession:
        """Open an existing session folder (UserError when it is not one)."""
        p = Path(path)
        f = p / SESSION_FILE
        if not f.is_file():
            raise UserError(f"{p} is not a QA session (no {SESSION_FILE}); create one with "
                            "'her2radiomics qa init MANIFEST.csv -o DIR'")
        try:
            meta = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read {f}: {exc}; the session file is damaged") from None
        if meta.get("format") != FORMAT:
            raise UserError(f"{f} has format {meta.get('format')!r}, expected {FORMAT!r}; use the matching her2radiomics")
        return cls(p, meta, clock)

    # ---- readers and cases -----------------------------------------------------------------------------------
    @property
    def readers(self) -> list[str]:
        return list(self.meta["readers"])

    @property
    def first_reader(self) -> str:
        return self.readers[0]

    @property
    def distances(self) -> tuple[float, ...]:
        return tuple(self.meta["distances"])

    def is_blind(self, reader: str) -> bool:
        return bool(self._reader_meta(reader)["blind"])

    def _reader_meta(self, reader: str) -> dict[str, Any]:
        try:
            return self.meta["readers"][reader]
        except KeyError:
            raise UserError(f"reader {reader!r} is not in QA session {self.path} (readers: {', '.join(self.readers)}); "
                            "add it with 'her2radiomics qa add-reader'") from None

    def add_reader(self, reader: str, *, blind: bool = True, cases: Sequence[str] | None = None) -> None:
        """Add a reader (by default blind: given no lesion but their own) for all cases or the ``cases`` subset."""
        reader = check_reader(reader)
        if reader in self.meta["readers"]:
            raise UserError(f"reader {reader!r} is already in QA session {self.path}")
        if cases is not None:
            cases = list(dict.fromkeys(str(c) for c in cases))
            unknown = [c for c in cases if c not in self._by_id]
            if unknown:
                raise UserError(f"case(s) {', '.join(unknown[:5])} are not in QA session {self.path}")
        with _locked(self.path):
            self._reload()
            self.meta["readers"][reader] = {"blind": bool(blind), "cases": cases}
            self._audit("add_reader", reader=reader, blind=bool(blind), cases=cases)
            _write_json_atomic(self.meta, self.path / SESSION_FILE)
            self._write_status_csv()

    def cases(self, reader: str | None = None) -> list[QACase]:
        """The session's cases in manifest order (``reader``: only those assigned to that reader)."""
        if reader is None:
            return list(self._cases)
        subset = self._reader_meta(reader)["cases"]
        return list(self._cases) if subset is None else [c for c in self._cases if c.case_id in set(subset)]

    def case(self, case_id: str) -> QACase:
        try:
            return self._by_id[str(case_id)]
        except KeyError:
            raise UserError(f"case {case_id!r} is not in QA session {self.path}") from None

    # ---- reading state ---------------------------------------------------------------------------------------
    def _review_path(self, case: QACase, reader: str) -> Path:
        return self.path / "reviews" / case.dir / f"{reader}.json"

    def review(self, case_id: str, reader: str) -> Review:
        """The review record (a fresh pending one when the case was never opened by this reader)."""
        case = self.case(case_id)
        self._reader_meta(reader)
        p = self._review_path(case, reader)
        if not p.is_file():
            return Review(case_id=case.case_id, reader=reader)
        try:
            return Review.from_json(json.loads(p.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise UserError(f"cannot read review record {p}: {exc}; restore it or delete it to review the case again") from None

    def reviews(self, reader: str | None = None) -> list[Review]:
        """Every (case, reader) review in manifest order, readers in session order."""
        readers = [reader] if reader else self.readers
        return [self.review(c.case_id, r) for r in readers for c in self.cases(r)]

    def status(self, reader: str | None = None) -> list[Progress]:
        """Progress per reader (or for one)."""
        out = []
        for r in ([reader] if reader else self.readers):
            counts = {s: 0 for s in STATUSES}
            revs = self.reviews(r)
            for rev in revs:
                counts[rev.status] += 1
            out.append(Progress(r, len(revs), counts))
        return out

    def next_pending(self, reader: str, after: str | None = None) -> str | None:
        """The first pending case of ``reader`` after ``after`` (wrapping), or None when all are reviewed."""
        ids = [c.case_id for c in self.cases(reader)]
        start = ids.index(after) + 1 if after in ids else 0
        for cid in ids[start:] + ids[:start]:
            if self.review(cid, reader).status == "pending":
                return cid
        return None

    def inputs(self, case_id: str, reader: str) -> CaseInputs:
        """The image and the masks a reader is shown (their own saved masks, else the manifest's; no lesion
        but their own for a blind reader)."""
        case = self.case(case_id)
        rev = self.review(case_id, reader)
        blind = self.is_blind(reader)
        paths: dict[str, str | None] = {}
        sources: dict[str, str] = {}
        for kind in MASK_KINDS:
            if kind in rev.masks:
                paths[kind], sources[kind] = str(self.path / rev.masks[kind]["file"]), "edited"
            elif kind == "lesion" and blind:
                paths[kind], sources[kind] = None, "hidden"
            else:
                p = getattr(case, kind)
                paths[kind], sources[kind] = p, ("manifest" if p else "none")
        return CaseInputs(case_id=case.case_id, reader=reader, image=case.image, lesion=paths["lesion"],
                          air=paths["air"], pectoralis=paths["pectoralis"], label=case.label, series=case.series,
                          sources=sources)

    def load(self, case_id: str, reader: str) -> tuple[Any, dict[str, Any]]:
        """Read the reader's inputs: (image, {kind: uint8 mask or None}) as SimpleITK images."""
        from her2radiomics.io import read_image

        inp = self.inputs(case_id, reader)
        image = read_image(inp.image, "image", series=inp.series)
        masks: dict[str, Any] = {}
        for kind in MASK_KINDS:
            p = getattr(inp, kind)
            label = inp.label if kind == "lesion" and inp.sources[kind] == "manifest" else None
            masks[kind] = _read_mask(p, image, kind if kind == "lesion" else f"{kind} mask", label) if p else None
        return image, masks

    # ---- changes ---------------------------------------------------------------------------------------------
    def start_review(self, case_id: str, reader: str, reviewer: str | None = None) -> CaseInputs:
        """Open a case for review and return what the reader is shown.

        The first opening records the start time (review time = decision - first opening) and the reviewer;
        opening a case again (Previous / Next) changes nothing, so browsing never undoes a decision.
        """
        case = self.case(case_id)
        self._reader_meta(reader)
        with _locked(self.path):
            rev = self.review(case.case_id, reader)
            if rev.started is None:
                rev.started = _iso(self._clock())
                rev.reviewer = reviewer or reader
                self._audit("start", case_id=case.case_id, reader=reader, reviewer=rev.reviewer)
                self._write_review(case, rev)
        return self.inputs(case.case_id, reader)

    def save_masks(self, case_id: str, reader: str, *, lesion=None, air=None, pectoralis=None) -> Review:
        """Save the reader's edited masks (SimpleITK images on the case's image grid; None = unchanged).

        Each mask is written as ``masks/<case>/<reader>/<kind>-<sha12>.nrrd`` (uint8 0/1, compressed) and its
        SHA-256 recorded; excluded mm3 per shell are recomputed with the original masks (before) and the saved
        ones (after). The status is not changed (see :meth:`set_status` / :meth:`approve`).
        """
        case = self.case(case_id)
        given = {k: v for k, v in (("lesion", lesion), ("air", air), ("pectoralis", pectoralis)) if v is not None}
        if not given:
            return self.review(case.case_id, reader)
        with _locked(self.path):
            image, current = self.load(case.case_id, reader)
            return self._save_locked(case, reader, given, image, current)

    def _save_locked(self, case: QACase, reader: str, given: Mapping[str, Any], image, current: dict[str, Any]) -> Review:
        """save_masks' work, with the session locked and the reader's inputs loaded."""
        import SimpleITK as sitk

        rev = self.review(case.case_id, reader)
        written: dict[str, dict[str, str]] = {}
        for kind, img in given.items():
            m = _mask_array(img, image, f"edited {kind} mask")
            buf = self._nrrd_bytes(m, sitk)
            digest = "sha256:" + hashlib.sha256(buf).hexdigest()
            rel = Path("masks") / case.dir / reader / f"{kind}-{digest[7:19]}.nrrd"
            _write_bytes_atomic(buf, self.path / rel)
            written[kind] = {"file": rel.as_posix(), "sha256": digest}
            current[kind] = m
        old = {k: v["file"] for k, v in rev.masks.items() if k in written and v["file"] != written[k]["file"]}
        rev.masks.update(written)
        if rev.started is None:
            rev.started, rev.reviewer = _iso(self._clock()), rev.reviewer or reader
        keep_before = (rev.excluded_before is not None and rev.excluded_after is not None
                       and not (self.is_blind(reader) and "lesion" in written))
        before, after = self._excluded(case, reader, image, current, need_before=not keep_before)
        rev.excluded_before, rev.excluded_after = (rev.excluded_before if keep_before else before), after
        self._audit("save_masks", case_id=case.case_id, reader=reader, masks=written,
                    excluded_before=rev.excluded_before, excluded_after=rev.excluded_after)
        self._write_review(case, rev)
        for f in old.values():   # after the record points to the new files
            with contextlib.suppress(OSError):
                (self.path / f).unlink()
        return rev

    def set_status(self, case_id: str, reader: str, status: str, note: str = "", reviewer: str | None = None) -> Review:
        """Record a decision: status in pending | approved | edited | rejected, with an optional note.

        ``edited`` needs saved masks; a blind reader cannot accept a case without their own lesion; rejecting
        needs a note (why). Ending a review sets ``ended`` and ``seconds`` (from ``started``).
        """
        if status not in STATUSES:
            raise UserError(f"unknown QA status {status!r}; use one of {', '.join(STATUSES)}")
        case = self.case(case_id)
        note = " ".join(str(note or "").split())
        with _locked(self.path):
            rev = self.review(case.case_id, reader)
            if status == "edited" and not rev.masks:
                raise UserError(f"case {case.case_id} has no edited masks of reader {reader}; save them first or approve it")
            if status in ACCEPTED and self.is_blind(reader) and "lesion" not in rev.masks:
                raise UserError(f"reader {reader} reviews blind: draw and save the lesion of case {case.case_id} "
                                "before accepting it")
            if status == "rejected" and not note:
                raise UserError(f"rejecting case {case.case_id} needs a note saying why")
            now = self._clock()
            if rev.started is None:
                rev.started = _iso(now)
            if rev.status != "pending" and (status, note) != (rev.status, rev.note):
                # a decided case decided again: the earlier decision is kept
                rev.history.append({"status": rev.status, "note": rev.note, "ended": rev.ended,
                                    "reviewer": rev.reviewer})
            rev.reviewer = reviewer or rev.reviewer or reader
            rev.status, rev.note = status, note
            if status == "pending":
                rev.ended, rev.seconds = None, None
            else:
                rev.ended = _iso(now)
                rev.seconds = round(max(0.0, (_parse_iso(rev.ended) - _parse_iso(rev.started)).total_seconds()), 3)
            self._audit("status", case_id=case.case_id, reader=reader, reviewer=rev.reviewer, status=status, note=note)
            self._write_review(case, rev)
        return rev

    def approve(self, case_id: str, reader: str, *, lesion=None, air=None, pectoralis=None, note: str = "",
                reviewer: str | None = None) -> Review:
        """Accept a case: the given masks that differ from what the reader was shown are saved; the status is
        ``edited`` when the reader has saved masks (now or earlier), else ``approved``."""
        given = {"lesion": lesion, "air": air, "pectoralis": pectoralis}
        given = {k: v for k, v in given.items() if v is not None}
        case = self.case(case_id)
        if given:
            with _locked(self.path):
                image, current = self.load(case.case_id, reader)
                changed = {}
                for kind, img in given.items():
                    m = _mask_array(img, image, f"{kind} mask")
                    if current[kind] is None or not _image_bytes_equal(m, current[kind]):
                        changed[kind] = m
                if changed:
                    self._save_locked(case, reader, changed, image, current)
        rev = self.review(case.case_id, reader)
        return self.set_status(case_id, reader, "edited" if rev.masks else "approved", note=note, reviewer=reviewer)

    # ---- products --------------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """QA summary for reports: per reader counts, reviewers, median review time (s) of decided cases."""
        out: dict[str, Any] = {"session": str(self.path), "cases": len(self._cases), "readers": {}}
        for r in self.readers:
            revs = self.reviews(r)
            counts = {s: sum(1 for v in revs if v.status == s) for s in STATUSES}
            secs = [v.seconds for v in revs if v.status != "pending" and v.seconds is not None]
            out["readers"][r] = {
                "assigned": len(revs), "reviewed": len(revs) - counts["pending"], **counts,
                "blind": self.is_blind(r),
                "reviewers": sorted({v.reviewer for v in revs if v.status != "pending" and v.reviewer}),
                "median_review_seconds": statistics.median(secs) if secs else None,
            }
        return out

    def summary_html(self) -> str:
        """The report's QA section (``report --qa SESSION``): per reader how many cases were reviewed, approved,
        edited, rejected, by whom, and the median review time (first opening to decision)."""
        import html

        def dur(v: float | None) -> str:
            return "-" if v is None else f"{int(v // 60)} min {v % 60:04.1f} s" if v >= 60 else f"{v:.1f} s"

        summ = self.summary()
        head = ("<tr><th class=l>reader</th><th>assigned</th><th>reviewed</th><th>approved</th><th>edited</th>"
                "<th>rejected</th><th>pending</th><th class=l>reviewed by</th><th>median review time</th></tr>")
        rows = []
        for r, d in summ["readers"].items():
            name = html.escape(r) + (" (blind)" if d["blind"] else "")
            rows.append(f"<tr><td class=l>{name}</td>" + "".join(
                f"<td>{d[k]}</td>" for k in ("assigned", "reviewed", "approved", "edited", "rejected", "pending"))
                + f"<td class=l>{html.escape(', '.join(d['reviewers']) or '-')}</td>"
                + f"<td>{dur(d['median_review_seconds'])}</td></tr>")
        return (f'<section id="qa"><h2>Segmentation QA</h2><p>QA session {html.escape(str(self.path))}: '
                f"{summ['cases']} case(s); approved and edited cases are the ones extracted with "
                "<code>extract --qa SESSION --only-approved</code> (edited masks replace the manifest's).</p>"
                f"<table>{head}{''.join(rows)}</table></section>")

    def manifest_rows(self, only_approved: bool = True, readers: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Manifest rows (case_id, reader, image, lesion, air, pectoralis, label, series) with each reader's final
        masks; ``only_approved``: only approved/edited reviews (default)."""
        rows = []
        for r in (readers or self.readers):
            for c in self.cases(r):
                rev = self.review(c.case_id, r)
                if only_approved and not rev.accepted:
                    continue
                inp = self.inputs(c.case_id, r)
                if inp.lesion is None:
                    continue  # a blind reader without a lesion has nothing to extract
                rows.append({"case_id": c.case_id, "reader": r, "image": inp.image, "lesion": inp.lesion,
                             "air": inp.air or "", "pectoralis": inp.pectoralis or "",
                             "label": "" if inp.sources["lesion"] == "edited" or inp.label is None else inp.label,
                             "series": inp.series or ""})
        return rows

    def write_manifest(self, path: str | os.PathLike[str], only_approved: bool = True,
                       readers: Sequence[str] | None = None) -> int:
        """Write :meth:`manifest_rows` as a manifest CSV with a ``reader`` column (absolute paths) for ``extract``
        (two readers: the ICC table of ``train --icc``). Returns the number of rows."""
        from her2radiomics.io import write_text

        rows = self.manifest_rows(only_approved, readers)
        if not rows:
            raise UserError(f"QA session {self.path} has no {'accepted ' if only_approved else ''}case to write; "
                            "review cases first (her2radiomics qa status shows progress)")
        buf = _io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["case_id", "reader", "image", "lesion", "air", "pectoralis", "label", "series"],
                           lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        write_text(buf.getvalue(), path)
        return len(rows)

    def extraction_specs(self, specs: Sequence[Any], only_approved: bool) -> tuple[list[Any], list[str]]:
        """Apply the session to ``cohort.read_manifest`` rows for ``extract --qa``: reviewed masks replace the
        manifest's; with ``only_approved`` the rows not approved/edited are left out. A row's reader is the
        session reader of that name, or the first reader when the row has none. Returns (rows, note lines)."""
        import dataclasses

        out, notes = [], []
        for s in specs:
            reader = s.reader or self.first_reader
            label = f"{s.case_id}{' (' + s.reader + ')' if s.reader else ''}"
            if s.case_id not in self._by_id or reader not in self.meta["readers"] \
                    or s.case_id not in {c.case_id for c in self.cases(reader)}:
                if only_approved:
                    notes.append(f"skipped {label}: not in QA session {self.path}")
                    continue
                out.append(s)
                continue
            rev = self.review(s.case_id, reader)
            if only_approved and not rev.accepted:
                why = f"rejected ({rev.note})" if rev.status == "rejected" else rev.status
                notes.append(f"skipped {label}: QA status {why}")
                continue
            inp = self.inputs(s.case_id, reader)
            repl = {k: Path(getattr(inp, k)) for k in MASK_KINDS if inp.sources[k] == "edited"}
            if "lesion" in repl:
                repl["label"] = None
            if inp.lesion is None:
                notes.append(f"skipped {label}: blind reader {reader} has saved no lesion")
                continue
            out.append(dataclasses.replace(s, **repl) if repl else s)
        return out, notes

    # ---- internals -------------------------------------------------------------------------------------------
    def _reload(self) -> None:
        fresh = QASession.open(self.path, self._clock)
        self.meta, self._cases, self._by_id = fresh.meta, fresh._cases, fresh._by_id

    @staticmethod
    def _nrrd_bytes(mask, sitk) -> bytes:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            f = Path(d) / "m.nrrd"
            sitk.WriteImage(sitk.Cast(mask, sitk.sitkUInt8), str(f), True)
            return f.read_bytes()

    def _excluded(self, case: QACase, reader: str, image, current: Mapping[str, Any], need_before: bool = True):
        """(before, after) excluded mm3 per shell; ``before`` is None when not ``need_before`` (the caller keeps
        the one recorded: the original masks do not change, nor a non-blind reader's original lesion)."""
        lesion = current["lesion"]
        if lesion is None:
            return None, None
        auto = bool(self.meta.get("auto_exclusions", True))
        before = None
        if need_before:
            orig = {k: (_read_mask(getattr(case, k), image, f"{k} mask") if getattr(case, k) else None)
                    for k in EXCLUSION_KINDS}
            orig_lesion = lesion   # a blind reader had no lesion before: their own, with the original exclusions
            if not self.is_blind(reader):
                orig_lesion = _read_mask(case.lesion, image, "lesion", case.label)
            before = shell_exclusions(image, orig_lesion, self.distances, air=orig["air"],
                                      pectoralis=orig["pectoralis"], auto_exclusions=auto)
        after = shell_exclusions(image, lesion, self.distances, air=current["air"], pectoralis=current["pectoralis"],
                                 auto_exclusions=auto)
        return before, after

    def _write_review(self, case: QACase, rev: Review) -> None:
        _write_json_atomic(rev.to_json(), self._review_path(case, rev.reader))
        self._write_status_csv()

    def _write_status_csv(self) -> None:
        buf = _io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(STATUS_COLUMNS)
        for rev in self.reviews():
            w.writerow([rev.case_id, rev.reader, rev.status, rev.reviewer, rev.started or "", rev.ended or "",
                        "" if rev.seconds is None else f"{rev.seconds:g}", ";".join(sorted(rev.masks)), rev.note])
        _write_bytes_atomic(buf.getvalue().encode("utf-8"), self.path / STATUS_FILE)

    def _audit(self, event: str, **details: Any) -> None:
        line = json.dumps({"time": _iso(self._clock()), "event": event, "os_user": _os_user(), **details},
                          allow_nan=False, separators=(",", ":")) + "\n"
        p = self.path / AUDIT_FILE
        if not _ends_cleanly(p):
            line = "\n" + line   # a line torn by a crash stays alone (and is skipped by audit())
        fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def audit(self) -> list[dict[str, Any]]:
        """The audit trail's events (a torn last line from a crash is skipped)."""
        p = self.path / AUDIT_FILE
        if not p.is_file():
            return []
        out = []
        for line in p.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out
