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
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from her2radiomics.errors import UserError
from her2radiomics.geometry import check_same_grid

_DICOM_SUFFIXES = {".dcm", ".ima", ""}
_UMASK = os.umask(0o022)  # read once at import (os.umask can only be read by setting it; not thread-safe later)
os.umask(_UMASK)


def _require_file(path: str | os.PathLike[str], what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise UserError(f"{what} file not found: {p}; check the path")
    return p


def read_image(path: str | os.PathLike[str], what: str = "image") -> sitk.Image:
    """Read a 3D scalar image (NRRD, NIfTI, MHA, or a folder / file of a DICOM series).

    Raises UserError for a missing or unreadable file, a vector image, or an image that is not 3D.
    """
    p = _require_file(path, what)
    if p.is_file() and p.stat().st_size == 0:
        raise UserError(f"{what} file {p} is empty (0 bytes); give a NRRD, NIfTI or DICOM series")
    try:
        if p.is_dir():
            img = read_dicom_series(p)
        else:
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


def read_dicom_series(folder: str | os.PathLike[str]) -> sitk.Image:
    """Read one DICOM series from a folder as a 3D volume with its patient (LPS) geometry.

    Slices are ordered by ImagePositionPatient along the slice normal (GDCM's sorter), so the
    image's origin, spacing (including the true slice spacing) and direction are physical.
    """
    folder = Path(folder)
    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise UserError(f"no DICOM series found in {folder}; point to the folder holding one series' slices")
    if len(series) > 1:
        raise UserError(f"{folder} holds {len(series)} DICOM series; put one series per folder")
    files = reader.GetGDCMSeriesFileNames(str(folder), series[0])
    reader.SetFileNames(files)
    return reader.Execute()


#: how a command-line user chooses one label of a multi-label lesion file (``extract`` uses its manifest instead)
LABEL_HINT = "pass --label N to choose the lesion label"
#: a "mask" with more distinct values than this is an image (label maps hold a few labels)
MAX_MASK_LABELS = 64


def read_mask(
    path: str | os.PathLike[str],
    reference: sitk.Image,
    what: str = "mask",
    label: int | None = None,
    label_hint: str = LABEL_HINT,
) -> sitk.Image:
    """Read a binary mask on the grid of ``reference`` and return it as uint8 {0, 1}.

    ``label`` selects one value of a multi-label file. Without it the file must hold only {0, 1}
    (any single non-zero value is accepted as foreground). ``label_hint``: how the caller's user chooses a label
    (``--label N`` on the command line, the ``label`` column of a manifest).
    """
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
    choose = "choose the lesion's label in the manifest's 'label' column" if label_hint != LABEL_HINT else "choose --label"
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
    if not folder and p.is_dir():
        raise UserError(f"{what} {p} is a folder; give a file name inside it (e.g. {p / 'name'}) with -o")
    anc = p.absolute() if folder and p.is_dir() else p.absolute().parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise UserError(f"cannot create {what} {p}: {anc} is a file, not a folder; choose another -o")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise UserError(f"cannot create {what} {p}: folder {anc} is not writable; choose another -o")
    return p


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
