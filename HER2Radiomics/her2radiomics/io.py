"""Reading images and masks with validation, and atomic writing of outputs.

Every reader raises :class:`~her2radiomics.errors.UserError` (one line) for bad input, and every
writer goes through a temporary file in the destination folder followed by ``os.replace``, so an
interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from her2radiomics.errors import UserError
from her2radiomics.geometry import check_same_grid

_DICOM_SUFFIXES = {".dcm", ".ima", ""}  # one file of a series: refused by _check_not_one_slice
_UMASK = os.umask(0o022)  # read once at import (os.umask can only be read by setting it; not thread-safe later)
os.umask(_UMASK)


def refuse_folder(path: str | os.PathLike[str], message: str) -> Path:
    """``path`` as a Path; UserError ``message`` (``{p}`` = the path) when it is an existing folder."""
    p = Path(path)
    if p.is_dir():
        raise UserError(message.format(p=p))
    return p


def require_file(path: str | os.PathLike[str], folder_message: str, missing_message: str) -> Path:
    """``path`` as a Path when it is an existing file; else the one-line UserError ``folder_message`` (it is a
    folder) or ``missing_message`` (it does not exist); ``{p}`` in either is replaced by the path."""
    p = refuse_folder(path, folder_message)
    if not p.is_file():
        raise UserError(missing_message.format(p=p))
    return p


def _require_file(path: str | os.PathLike[str], what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UserError(f"{what} file not found: {p}; check the path")
    return p


def read_image(path: str | os.PathLike[str], what: str = "image", series: str | None = None) -> sitk.Image:
    """Read a 3D scalar image (NRRD, NIfTI, MHA, or a folder of a DICOM series).

    ``series`` chooses one DICOM series of a folder that holds several (series number, SeriesInstanceUID or
    description; :func:`read_dicom_series`). Raises UserError for a missing or unreadable file, a vector image, an
    image that is not 3D, one file of a DICOM series given instead of its folder, and a series with a missing slice
    or non-uniform slice spacing.
    """
    p = _require_file(path, what)
    if p.is_file() and p.stat().st_size == 0:
        raise UserError(f"{what} file {p} is empty (0 bytes); give a NRRD, NIfTI or DICOM series")
    if series is not None and not p.is_dir():
        raise UserError(f"a DICOM series ({series!r}) was chosen for {what} {p}, which is not a folder; give the folder "
                        "of the DICOM files or leave the series empty")
    try:
        if p.is_dir():
            img = read_dicom_series(p, series, what)
        else:
            _check_not_one_slice(p, what)
            img = sitk.ReadImage(str(p))
    except UserError:
        raise
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reader error"
        raise UserError(f"cannot read {what} {p}: {first}; give a NRRD, NIfTI or DICOM series") from None
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise UserError(f"{what} {p} has {img.GetNumberOfComponentsPerPixel()} components per voxel; give one scalar 3D phase")
    if img.GetDimension() != 3:
        raise UserError(
            f"{what} {p} is {img.GetDimension()}D; give one 3D volume (for a 4D DCE series, extract one post-contrast phase first)"
        )
    if img.GetDimension() == 3 and min(img.GetSize()) < 1:
        raise UserError(f"{what} {p} is empty")
    check_finite(img, f"{what} {p}")
    return img


def check_finite(img: sitk.Image, what: str = "image") -> None:
    """UserError when a floating-point image holds NaN or infinite voxels (exclusion detection, shells and
    pyradiomics all need finite intensities). Integer images are finite by construction (no cost)."""
    if img.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkFloat64):
        return
    arr = sitk.GetArrayViewFromImage(img)
    bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise UserError(f"{what} has {bad} NaN/infinite voxel(s); replace them with a finite value (e.g. 0) first")


#: where a series is chosen (both options exist: extract's manifest column, regions' option)
SERIES_HINT = "choose one with the manifest's 'series' column (series number or SeriesInstanceUID) or regions' --series"
_DICOM_TAGS = ("SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "ImagePositionPatient",
               "ImageOrientationPatient", "InstanceNumber")


def _dicom_header(path: str | os.PathLike[str]):
    """The few header fields used here (pydicom, pixel data not read), or None for a file that is not DICOM."""
    import pydicom

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=list(_DICOM_TAGS))
    except Exception:  # noqa: BLE001 - any parse failure means "not a DICOM file we can describe"
        return None


def series_files(folder: Path) -> dict[str, list[str]]:
    """{SeriesInstanceUID: files ordered by GDCM along the slice normal} of a folder, ITK warnings silenced."""
    reader = sitk.ImageSeriesReader()
    warn = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        return {uid: list(reader.GetGDCMSeriesFileNames(str(folder), uid)) for uid in reader.GetGDCMSeriesIDs(str(folder))}
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warn)


def describe_series(uid: str, files: list[str]) -> dict[str, Any]:
    """{"uid", "number", "description", "slices"} of one DICOM series from its first file's header (None/"" when absent)."""
    hdr = _dicom_header(files[0])
    number = getattr(hdr, "SeriesNumber", None) if hdr is not None else None
    desc = str(getattr(hdr, "SeriesDescription", "") or "") if hdr is not None else ""
    return {"uid": uid, "number": None if number in (None, "") else str(number), "description": desc,
            "slices": len(files)}


def _series_text(d: Mapping[str, Any]) -> str:
    num = f"number {d['number']}" if d["number"] else "no number"
    desc = f" {d['description']!r}" if d["description"] else ""
    return f"{num}{desc} ({d['slices']} slices, uid {d['uid']})"


def _check_not_one_slice(p: Path, what: str) -> None:
    """UserError when ``p`` is one file of a multi-slice DICOM series (its folder must be given instead)."""
    if p.suffix.lower() not in _DICOM_SUFFIXES:
        return
    hdr = _dicom_header(p)
    uid = str(getattr(hdr, "SeriesInstanceUID", "") or "") if hdr is not None else ""
    if not uid:
        return
    files = series_files(p.parent).get(uid, [])
    if len(files) > 1:
        raise UserError(f"{what} {p} is one file of a DICOM series of {len(files)} slices; give its folder {p.parent} "
                        "instead (one series per folder, or choose the series)")


def _check_slice_positions(files: list[str], folder: Path) -> None:
    """UserError for a missing slice or non-uniform slice spacing (positions along the slice normal)."""
    pos = []
    normal = None
    for f in files:
        hdr = _dicom_header(f)
        ipp = getattr(hdr, "ImagePositionPatient", None) if hdr is not None else None
        iop = getattr(hdr, "ImageOrientationPatient", None) if hdr is not None else None
        if ipp is None or iop is None or len(ipp) != 3 or len(iop) != 6:
            return  # no geometry to check (GDCM ordered the files by other means)
        if normal is None:
            normal = np.cross(np.asarray(iop[:3], float), np.asarray(iop[3:], float))
        pos.append(float(np.dot(normal, np.asarray(ipp, float))))
    if len(pos) < 3:
        return
    pos = sorted(pos)
    d = np.diff(pos)
    if np.any(d < 1e-3):
        raise UserError(f"DICOM series in {folder} has {int(np.sum(d < 1e-3))} duplicated slice position(s) (e.g. "
                        f"z = {pos[int(np.argmax(d < 1e-3))]:.2f} mm): several phases or echoes in one series; export "
                        "one phase per folder")
    step = float(np.min(d))
    tol = max(1e-3, 0.01 * step)
    if np.all(np.abs(d - step) <= tol):
        return
    k = d / step
    if np.all(np.abs(k - np.round(k)) <= 0.02):
        missing = [pos[i] + step * j for i in np.flatnonzero(np.round(k) > 1) for j in range(1, int(round(k[i])))]
        where = ", ".join(f"z = {z:.2f} mm" for z in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise UserError(f"DICOM series in {folder} has {len(missing)} missing slice(s) at position {where} (slices "
                        f"are {step:.3g} mm apart along the slice normal); re-export the complete series")
    raise UserError(f"DICOM series in {folder} has non-uniform slice spacing ({float(d.min()):.3g} to {float(d.max()):.3g} mm "
                    "along the slice normal); a 3D grid needs equal spacing: re-export the series, or resample it to "
                    "uniform slices (e.g. Slicer's 'Resample Scalar Volume') and give the NRRD/NIfTI file")


def read_dicom_series(folder: str | os.PathLike[str], series: str | None = None, what: str = "image") -> sitk.Image:
    """Read one DICOM series from a folder as a 3D volume with its patient (LPS) geometry.

    Slices are ordered by ImagePositionPatient along the slice normal (GDCM's sorter), so the image's origin,
    spacing (including the true slice spacing) and direction are physical. A folder with several series needs
    ``series``: its series number, SeriesInstanceUID or description (one match). A missing slice or non-uniform
    spacing is refused with the positions (ITK would otherwise warn and build a grid with the wrong geometry).
    """
    folder = Path(folder)
    found = series_files(folder)
    if not found:
        raise UserError(f"no DICOM series found in {folder}; point to the folder holding one series' slices")
    if series is None and len(found) > 1:
        listed = "; ".join(_series_text(describe_series(u, f)) for u, f in found.items())
        raise UserError(f"{what} folder {folder} holds {len(found)} DICOM series: {listed}; {SERIES_HINT}, or put one "
                        "series per folder")
    if series is None:
        uid = next(iter(found))
    else:
        want = str(series).strip()
        descs = {u: describe_series(u, f) for u, f in found.items()}
        hits = [u for u, d in descs.items() if want in (u, d["number"])]
        if not hits:
            hits = [u for u, d in descs.items() if d["description"] and d["description"].strip().lower() == want.lower()]
        if len(hits) != 1:
            listed = "; ".join(_series_text(d) for d in descs.values())
            which = f"no series {want!r}" if not hits else f"{len(hits)} series matching {want!r}"
            raise UserError(f"{what} folder {folder} has {which} (series there: {listed}); give a series number or "
                            "SeriesInstanceUID from that list")
        uid = hits[0]
    files = found[uid]
    _check_slice_positions(files, folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    warn = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # checked above; ITK's raw warning would only confuse
    try:
        return reader.Execute()
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warn)


#: how a command-line user chooses one label of a multi-label lesion file (``extract`` uses its manifest instead)
LABEL_HINT = "pass --label N to choose the lesion label"
#: a "mask" with more distinct values than this is an image (label maps hold a few labels)
MAX_MASK_LABELS = 64


def read_mask(
    path: str | os.PathLike[str],
    reference: sitk.Image,
    what: str = "mask",
    label: int | None = None,
    label_hint: str | None = None,
) -> sitk.Image:
    """Read a binary mask on the grid of ``reference`` and return it as uint8 {0, 1}.

    ``label`` selects one value of a multi-label file. Without it the file must hold only {0, 1}
    (any single non-zero value is accepted as foreground). ``label_hint``: how the caller's user chooses a label
    (``--label N`` on the command line, the ``label`` column of a manifest); the default names ``--label N`` for a
    lesion and asks for a 0/1 mask otherwise (exclusion masks have no label option).
    """
    if label_hint is None:
        label_hint = LABEL_HINT if what.startswith("lesion") else "give a 0/1 mask (one label)"
    img = read_image(path, what)
    return to_binary_mask(img, reference, what=f"{what} {Path(path)}", label=label, label_hint=label_hint)


def _looks_binary(img: sitk.Image) -> bool:
    """True when an image holds only 0 and 1 (a mask), by one min/max pass."""
    f = sitk.MinimumMaximumImageFilter()
    f.Execute(img)
    return f.GetMinimum() >= 0 and f.GetMaximum() <= 1


def _swap_hint(what: str, values: np.ndarray, reference: sitk.Image) -> str | None:
    """A message when the 'mask' is an image (many or non-integer values) and the image looks like a mask."""
    many = values.size > MAX_MASK_LABELS or not np.all(np.mod(values, 1) == 0)
    if not many:
        return None
    also = " and the image holds only 0/1 values" if _looks_binary(reference) else ""
    return (f"{what} holds {values.size} distinct values{' (not integer labels)' if not np.all(np.mod(values, 1) == 0) else ''}"
            f"{also}: it looks like an image, not a mask; are the image and the mask swapped? Give the image first "
            "(manifest column 'image', or the IMAGE argument) and the lesion mask second")


def to_binary_mask(
    img: sitk.Image, reference: sitk.Image, what: str = "mask", label: int | None = None, label_hint: str = LABEL_HINT
) -> sitk.Image:
    """Validate an in-memory mask against ``reference``'s grid and binarise it (uint8 0/1)."""
    check_same_grid(img, reference, what=what)
    arr = sitk.GetArrayViewFromImage(img)
    choose = "choose --label" if label_hint == LABEL_HINT else "choose the lesion's label in the manifest's 'label' column"
    if label is not None:
        if label == 0:
            raise UserError(f"{what}: label 0 is the background; {choose} with a non-zero value")
        if not np.any(arr == label):
            values = np.unique(arr)
            swap = _swap_hint(what, values, reference)
            if swap:
                raise UserError(swap)
            raise UserError(f"{what} has no voxel with label {label} (values present: {values[:10].tolist()}); {choose} from those")
        out = (arr == label).astype(np.uint8)
    else:
        values = np.unique(arr)
        nonzero = values[values != 0]
        if len(nonzero) > 1:
            swap = _swap_hint(what, values, reference)
            if swap:
                raise UserError(swap)
            raise UserError(f"{what} is not binary (labels {nonzero[:10].tolist()}); {label_hint}")
        out = (arr != 0).astype(np.uint8)
    res = sitk.GetImageFromArray(out)
    res.CopyInformation(reference)
    return res


def check_csv_header(columns: Iterable[Any], path: str | os.PathLike[str], what: str, sep: str = ",") -> None:
    """UserError when a CSV header parsed into one column that holds another separator (a spreadsheet export
    with ';' or tabs): the later 'no column X' message would point the user the wrong way."""
    cols = [str(c) for c in columns]
    if len(cols) == 1:
        for other, name in ((";", "semicolons"), ("\t", "tabs"), (",", "commas")):
            if other != sep and other in cols[0]:
                raise UserError(f"{what} {Path(path)} is separated by {name}, not {'tabs' if sep == chr(9) else 'commas'}; "
                                "save it as a comma-separated CSV (decimal point '.')")


def check_output(path: str | os.PathLike[str], what: str = "output", *, folder: bool = False,
                 inputs: Iterable[str | os.PathLike[str] | None] = ()) -> Path:
    """Fail early, before any work, when ``path`` cannot be created: it names an existing folder where a file
    is expected (or an existing file where a folder is expected), one of its parents is a file or is not
    writable, or it is one of the command's ``inputs`` (``-o`` would overwrite an input). Returns ``path`` as a
    Path. Commands call this at their start so nothing is computed in vain.
    """
    p = Path(path)
    for src in inputs:
        if src is not None and p.exists() and Path(src).exists() and os.path.samefile(p, src):
            raise UserError(f"{what} {p} is also an input of this command and would be overwritten; choose another -o")
    if folder and p.exists() and not p.is_dir():
        raise UserError(f"{what} {p} exists and is not a folder; choose another -o")
    if not folder:
        refuse_folder(p, f"{what} {{p}} is a folder; give a file name inside it (e.g. {p / 'name'}) with -o")
    anc = p.absolute() if folder and p.is_dir() else p.absolute().parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise UserError(f"cannot create {what} {p}: {anc} is a file, not a folder; choose another -o")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise UserError(f"cannot create {what} {p}: folder {anc} is not writable; choose another -o")
    return p


def read_table(path: str | os.PathLike[str], what: str, text_columns: Iterable[str] = (),
               keep_default_na: bool = True) -> Any:
    """Read a CSV table; ``text_columns`` (when present) are read as text, not numbers. With ``keep_default_na``
    False only empty cells are missing (a case id 'NA' stays text). Returns a pandas DataFrame (pandas is imported
    here, so importing this module does not need it)."""
    import csv

    import pandas as pd

    p = require_file(path, f"{what} {{p}} is a folder; give the CSV file", f"{what} file not found: {{p}}; check the path")
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
    """``sha256:<hex>`` of a file's bytes (read in 1 MiB chunks)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def contributions_path(output: str | os.PathLike[str]) -> Path:
    """The per-feature contributions table written beside predictions: ``PRED.csv`` -> ``PRED.contributions.csv``."""
    output = Path(output)
    stem = output.name[: -len(output.suffix)] if output.suffix else output.name
    return output.with_name(stem + ".contributions.csv")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    The temporary file keeps the destination's suffix so that writers choosing a format by
    extension (SimpleITK, pandas) behave the same.
    """
    dest = check_output(path)
    suffix = "".join(dest.suffixes) or ".tmp"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=suffix, dir=dest.parent)
    except OSError as exc:
        raise UserError(f"cannot write {dest}: {exc.strerror or exc}; choose another output location") from None
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the user's usual mode
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_image(img: sitk.Image, path: str | os.PathLike[str], compress: bool = True) -> None:
    """Write an image atomically (format from the extension)."""
    with atomic_path(path) as tmp:
        sitk.WriteImage(img, str(tmp), compress)


def write_text(text: str, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(obj: Any, path: str | os.PathLike[str]) -> None:
    write_text(json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n", path)


# --------------------------------------------------------------------------------------------------------------
# resampling to a common grid (--resample-spacing)
# --------------------------------------------------------------------------------------------------------------
#: image interpolators of --resample-spacing (SimpleITK names); masks are always nearest-neighbour
INTERPOLATORS = {"linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline}


def check_spacing(spacing: Iterable[float] | None) -> tuple[float, float, float] | None:
    """Validate ``--resample-spacing X Y Z`` (three positive finite mm values) or None."""
    if spacing is None:
        return None
    vals = [float(v) for v in spacing]
    if len(vals) != 3 or not all(np.isfinite(v) and v > 0 for v in vals):
        raise UserError(f"--resample-spacing needs three positive spacings in mm (x y z), got {' '.join(f'{v:g}' for v in vals)}; "
                        "e.g. --resample-spacing 0.8 0.8 0.8")
    if min(vals) < 0.05:
        raise UserError(f"--resample-spacing {min(vals):g} mm is finer than 0.05 mm; give the spacing in mm (e.g. 0.8)")
    return vals[0], vals[1], vals[2]


def resample_image(image: sitk.Image, spacing: Iterable[float], interpolator: str = "linear") -> sitk.Image:
    """The image on a grid of ``spacing`` (mm, x y z) with the same direction and the same field of view.

    The field of view is the box the voxels cover (from half a voxel before the first centre to half a voxel after
    the last). New size per axis = round(old size x old spacing / new spacing) (at least 1) and the new origin is
    shifted by (new - old spacing) / 2 along each axis, so the new box starts where the old one did and ends within
    half a new voxel of its end. ``interpolator``: ``linear`` (default) or
    ``bspline`` (cubic B-spline; may over/undershoot at sharp edges). The pixel type is kept, as pyradiomics'
    ``imageoperations.resampleImage`` does; points beyond the old grid get the image minimum.
    """
    sp = check_spacing(spacing)
    if interpolator not in INTERPOLATORS:
        raise UserError(f"unknown interpolator {interpolator!r}; use one of {', '.join(INTERPOLATORS)}")
    old_sp, old_size = image.GetSpacing(), image.GetSize()
    size = [max(1, int(round(n * s / t))) for n, s, t in zip(old_size, old_sp, sp, strict=True)]
    if int(np.prod(size, dtype=np.int64)) > 400_000_000:
        raise UserError(f"--resample-spacing {' '.join(f'{v:g}' for v in sp)} makes a {size[0]} x {size[1]} x {size[2]} "
                        "grid (too large); choose a coarser spacing")
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    origin = np.asarray(image.GetOrigin(), float) + direction @ ((np.asarray(sp) - np.asarray(old_sp)) / 2)
    mm = sitk.MinimumMaximumImageFilter()
    mm.Execute(image)
    return sitk.Resample(image, size, sitk.Transform(), INTERPOLATORS[interpolator], [float(v) for v in origin], sp,
                         image.GetDirection(), float(mm.GetMinimum()), image.GetPixelID())


def resample_mask(mask: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """A 0/1 mask brought onto ``reference``'s grid by nearest-neighbour interpolation (labels never blend)."""
    return sitk.Resample(mask, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, mask.GetPixelID())
