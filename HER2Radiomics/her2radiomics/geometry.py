"""Geometry helpers: images carry their physical (LPS, mm) geometry across every API.

Array convention: ``sitk.GetArrayFromImage`` gives (z, y, x) = (k, j, i) order; spacing, origin
and direction are SimpleITK's (x, y, z) order in LPS physical space.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from her2radiomics.errors import UserError

#: tolerance for comparing grids (mm for origin/spacing, unitless for direction cosines)
GRID_TOLERANCE = 1e-4


def same_grid(a: sitk.Image, b: sitk.Image, tol: float = GRID_TOLERANCE) -> bool:
    """True when two images share size, spacing, origin and direction (within ``tol``)."""
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tol, rtol=0)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tol * max(1.0, max(a.GetSpacing())), rtol=0)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=tol, rtol=0)
    )


def check_same_grid(img: sitk.Image, reference: sitk.Image, what: str = "mask") -> None:
    """Raise a one-line UserError naming the first geometric difference between two grids."""
    if img.GetDimension() != reference.GetDimension():
        raise UserError(f"{what} is {img.GetDimension()}D but the image is {reference.GetDimension()}D; masks must be on the image grid")
    if same_grid(img, reference):
        return
    for name, ga, gb in (
        ("size", img.GetSize(), reference.GetSize()),
        ("spacing", img.GetSpacing(), reference.GetSpacing()),
        ("origin", img.GetOrigin(), reference.GetOrigin()),
        ("direction", img.GetDirection(), reference.GetDirection()),
    ):
        if name == "size" and ga != gb or name != "size" and not np.allclose(ga, gb, atol=GRID_TOLERANCE * 10):
            fa = tuple(round(float(v), 4) for v in ga)
            fb = tuple(round(float(v), 4) for v in gb)
            raise UserError(f"{what} is not on the image grid ({name} {fa} vs image {fb}); resample it onto the image first")
    raise UserError(f"{what} is not on the image grid; resample it onto the image first")


def voxel_volume_mm3(img: sitk.Image) -> float:
    """Physical volume of one voxel in mm^3 (product of spacings)."""
    return float(np.prod(img.GetSpacing()))


def image_from_array(arr: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """Image from a (z, y, x) array with ``reference``'s geometry (origin, spacing, direction)."""
    img = sitk.GetImageFromArray(arr)
    img.CopyInformation(reference)
    return img


def bbox_zyx(mask: np.ndarray) -> tuple[tuple[int, int], ...] | None:
    """Inclusive-exclusive bounding box ((z0, z1), (y0, y1), (x0, x1)) of non-zero voxels, or None (any ndim).

    Cheap projections: the first axis is projected once over the whole array, the others only over the slab
    between its first and last non-zero slice.
    """
    m = np.asarray(mask)
    first = np.flatnonzero(m.any(axis=tuple(range(1, m.ndim))) if m.ndim > 1 else m)
    if first.size == 0:
        return None
    sub = m[first[0]:first[-1] + 1]
    out = [(int(first[0]), int(first[-1]) + 1)]
    for axis in range(1, m.ndim):
        nz = np.flatnonzero(sub.any(axis=tuple(a for a in range(m.ndim) if a != axis)))
        out.append((int(nz[0]), int(nz[-1]) + 1))
    return tuple(out)


def expand_bbox_mm(
    bbox: tuple[tuple[int, int], ...], spacing_xyz: tuple[float, ...], margin_mm: float, shape_zyx: tuple[int, ...], extra_voxels: int = 0
) -> tuple[tuple[int, int], ...]:
    """Grow a (z, y, x) bounding box by ``margin_mm`` (rounded up per axis) plus ``extra_voxels``, clipped to the array."""
    spacing_zyx = tuple(reversed(spacing_xyz))
    out = []
    for (lo, hi), sp, n in zip(bbox, spacing_zyx, shape_zyx, strict=True):
        m = int(np.ceil(margin_mm / sp - 1e-9)) + extra_voxels
        out.append((max(0, lo - m), min(n, hi + m)))
    return tuple(out)


def crop(img: sitk.Image, bbox: tuple[tuple[int, int], ...]) -> sitk.Image:
    """Crop an image to a (z, y, x) box, keeping physical geometry (origin moves, direction unchanged)."""
    (z0, z1), (y0, y1), (x0, x1) = bbox
    return sitk.RegionOfInterest(img, [x1 - x0, y1 - y0, z1 - z0], [x0, y0, z0])


def paste(crop_img: sitk.Image | np.ndarray, reference: sitk.Image, bbox: tuple[tuple[int, int], ...],
          dtype=np.uint8) -> sitk.Image:
    """Place a cropped mask (image or array, any ndim) back on the full grid of ``reference`` (zeros elsewhere)."""
    full = np.zeros(tuple(reversed(reference.GetSize())), dtype=dtype)
    arr = sitk.GetArrayViewFromImage(crop_img) if isinstance(crop_img, sitk.Image) else crop_img
    full[tuple(slice(lo, hi) for lo, hi in bbox)] = arr
    return image_from_array(full, reference)
