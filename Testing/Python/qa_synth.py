"""A small phantom cohort for the QA-session tests (3 cases, ~0.4 s each) and a fixed clock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

QA_SIZE = (96, 96, 32)
QA_SPACING = (1.5, 1.5, 2.0)
QA_DISTANCES = (3.0, 5.0)


def write_qa_cohort(folder: Path, n: int = 3, exclusions: bool = False) -> Path:
    """Phantoms c0..c{n-1} (image, lesion, air, pectoralis) and manifest.csv (case_id,image,lesion[,air,pectoralis])."""
    from her2radiomics.phantom import make_phantom, write_phantom

    folder.mkdir(parents=True, exist_ok=True)
    lines = ["case_id,image,lesion" + (",air,pectoralis" if exclusions else "")]
    for i in range(n):
        ph = make_phantom(seed=i, size=QA_SIZE, spacing=QA_SPACING, lesion_radius_mm=6, lesion_gap_mm=4)
        write_phantom(ph, folder / f"c{i}")
        row = f"c{i},c{i}/image.nrrd,c{i}/lesion.nrrd"
        lines.append(row + (f",c{i}/air.nrrd,c{i}/pectoralis.nrrd" if exclusions else ""))
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    return folder / "manifest.csv"


class FixedClock:
    """A clock advancing by ``step`` seconds per call from a fixed start (UTC)."""

    def __init__(self, step: float = 7.0) -> None:
        self.t = dt.datetime(2026, 1, 2, 9, 0, 0, tzinfo=dt.timezone.utc)
        self.step = dt.timedelta(seconds=step)

    def __call__(self) -> dt.datetime:
        self.t += self.step
        return self.t


def eroded(mask: sitk.Image, iterations: int = 1) -> sitk.Image:
    arr = ndimage.binary_erosion(sitk.GetArrayFromImage(mask).astype(bool), iterations=iterations)
    out = sitk.GetImageFromArray(arr.astype(np.uint8))
    out.CopyInformation(mask)
    return out


def erased_near(mask: sitk.Image, lesion: sitk.Image, mm: float, half: bool = False) -> sitk.Image:
    """``mask`` with its voxels within ``mm`` of the lesion erased (``half``: only those with x index from the
    lesion's centre), as a reviewer's eraser stroke around the lesion."""
    arr = sitk.GetArrayFromImage(mask).astype(bool)
    les = sitk.GetArrayFromImage(lesion).astype(bool)
    near = ndimage.distance_transform_edt(~les, sampling=tuple(reversed(lesion.GetSpacing()))) <= mm
    if half:
        near[:, :, :int(np.nonzero(les.any(axis=(0, 1)))[0].mean())] = False
    out = sitk.GetImageFromArray((arr & ~near).astype(np.uint8))
    out.CopyInformation(mask)
    return out


def brute_excluded_mm3(lesion: sitk.Image, exclusion: sitk.Image, d: float) -> float:
    """mm3 of the exact d-mm shell (Euclidean distance from the lesion, scipy EDT) inside ``exclusion``."""
    les = sitk.GetArrayFromImage(lesion).astype(bool)
    ex = sitk.GetArrayFromImage(exclusion).astype(bool)
    dist = ndimage.distance_transform_edt(~les, sampling=tuple(reversed(lesion.GetSpacing())))
    shell = (dist > 0) & (dist <= d + 1e-6)
    return float(np.count_nonzero(shell & ex)) * float(np.prod(lesion.GetSpacing()))
