"""2D regions: the lesion's maximum cross-section of a 3D volume, and true 2D images (e.g. ultrasound).

- ``--mode 2d-max`` (:func:`max_area_slice`, :func:`extract_slice`): the slice (along the acquisition slice axis,
  array axis 0 = index k) where the lesion's cross-section has the most voxels, i.e. the largest area (the
  in-plane pixel area is the same on every slice); ties go to the slice nearest the lesion's centre of mass along
  k, then to the lower k. The multiparametric study draws its ROI there. Regions are then built in-plane
  (:func:`her2radiomics.regions.build_regions` on the 2D slice: rings = pixels within d mm *in the plane*).
- True 2D images (:func:`read_image_2d`): PNG / JPEG / BMP (colour converted to luminance, ITU-R BT.601 weights),
  2D NRRD / NIfTI / MHA, a one-slice 3D volume, or one DICOM file; pixel spacing from the file (NRRD, DICOM
  PixelSpacing) or given (``pixel_spacing``); PNG has no reliable pixel spacing, so it must be given.
- pyradiomics in 2D (:func:`force2d_params`, :func:`as_volume`): the slice becomes a one-slice 3D volume and the
  features are computed with ``force2D: true, force2Ddimension: 0`` (in-plane texture matrices) and the 2D
  shape class ``shape2D`` instead of ``shape`` (van Griethuysen et al., Cancer Res 2017;77:e104; pyradiomics
  documentation "Customizing the extraction": force2D).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from her2radiomics.errors import UserError

MODES = ("3d", "2d-max")
_RASTER = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def max_area_slice(lesion: sitk.Image | np.ndarray) -> int:
    """Index k (array axis 0) of the slice where the lesion has the largest cross-section (module docstring)."""
    arr = sitk.GetArrayViewFromImage(lesion) if isinstance(lesion, sitk.Image) else np.asarray(lesion)
    if arr.ndim != 3:
        raise UserError(f"--mode 2d-max needs a 3D lesion mask, got {arr.ndim}D")
    counts = np.count_nonzero(arr.reshape(arr.shape[0], -1), axis=1)
    if counts.max() == 0:
        raise UserError("lesion mask is empty (no non-zero voxel); draw the lesion or choose the right --label")
    best = np.flatnonzero(counts == counts.max())
    centre = float((counts * np.arange(arr.shape[0])).sum() / counts.sum())
    return int(min(best, key=lambda k: (abs(k - centre), k)))


def extract_slice(img: sitk.Image, k: int) -> sitk.Image:
    """Slice ``k`` (array axis 0) of a 3D image as a 2D image with the in-plane spacing.

    The 2D direction is the in-plane 2 x 2 block of the 3D direction when that block is a rotation (axial
    acquisitions), else the identity (in-plane distances depend on the spacing only, so the rings are the same).
    """
    if img.GetDimension() != 3:
        raise UserError(f"expected a 3D image to take a slice from, got {img.GetDimension()}D")
    nx, ny, nz = img.GetSize()
    if not 0 <= k < nz:
        raise UserError(f"slice {k} is outside the image (0..{nz - 1})")
    d = np.asarray(img.GetDirection(), float).reshape(3, 3)
    sub = d[:2, :2]
    mode = (sitk.ExtractImageFilter.DIRECTIONCOLLAPSETOSUBMATRIX if np.allclose(sub.T @ sub, np.eye(2), atol=1e-4)
            else sitk.ExtractImageFilter.DIRECTIONCOLLAPSETOIDENTITY)
    return sitk.Extract(img, [nx, ny, 0], [0, 0, int(k)], mode)


def as_volume(img2d: sitk.Image, slice_spacing: float = 1.0) -> sitk.Image:
    """A 2D image as a one-slice 3D volume (same in-plane spacing / origin / direction) for pyradiomics force2D."""
    if img2d.GetDimension() == 3:
        return img2d
    vol = sitk.JoinSeries([img2d], 0.0, float(slice_spacing))
    d2 = np.asarray(img2d.GetDirection(), float).reshape(2, 2)
    d3 = np.eye(3)
    d3[:2, :2] = d2
    vol.SetDirection([float(v) for v in d3.ravel()])
    return vol


def force2d_params(params: dict) -> dict:
    """pyradiomics parameters for in-plane (2D) features: force2D on axis 0 and shape2D (all its features)
    instead of shape."""
    p = copy.deepcopy(params)
    setting = dict(p.get("setting") or {})
    setting["force2D"] = True
    setting["force2Ddimension"] = 0
    p["setting"] = setting
    fc = dict(p.get("featureClass") or {})
    if "shape" in fc:   # a 3D shape list does not carry over (VoxelVolume has no 2D name): every shape2D feature
        del fc["shape"]
        fc["shape2D"] = None
    p["featureClass"] = fc
    return p


def _luminance(img: sitk.Image) -> sitk.Image:
    n = img.GetNumberOfComponentsPerPixel()
    if n == 1:
        return img
    arr = sitk.GetArrayFromImage(img).astype(np.float32)
    if n in (3, 4):   # RGB(A): ITU-R BT.601 luma
        lum = 0.299 * arr[..., 0] + 0.587 * arr[..., 1] + 0.114 * arr[..., 2]
    elif n == 2:      # grey + alpha
        lum = arr[..., 0]
    else:
        raise UserError(f"2D image has {n} components per pixel; give a grey-scale or RGB image")
    out = sitk.GetImageFromArray(lum)
    out.CopyInformation(img)
    return out


def read_image_2d(path: str | os.PathLike[str], pixel_spacing: Sequence[float] | None = None,
                  what: str = "image") -> sitk.Image:
    """Read a true 2D image (module docstring); ``pixel_spacing`` (x, y mm) replaces the file's spacing."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{what} file not found: {p}; check the path")
    raster = p.suffix.lower() in _RASTER
    if raster and pixel_spacing is None:
        raise UserError(f"{what} {p} is a {p.suffix.lower()[1:].upper()} file without a reliable pixel spacing; give "
                        "the pixel spacing in mm (--pixel-spacing SX SY)")
    try:
        img = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        raise UserError(f"cannot read {what} {p}: {str(exc).strip().splitlines()[-1]}") from None
    img = _luminance(img)
    if img.GetDimension() == 3:
        if img.GetSize()[2] != 1:
            raise UserError(f"{what} {p} is a 3D volume of {img.GetSize()[2]} slices; give a 2D image, or use "
                            "--mode 2d-max to take the lesion's largest slice")
        img = extract_slice(img, 0)
    if img.GetDimension() != 2:
        raise UserError(f"{what} {p} is {img.GetDimension()}D; give a 2D image")
    if pixel_spacing is not None:
        sp = [float(v) for v in pixel_spacing]
        if len(sp) != 2 or not all(np.isfinite(sp)) or min(sp) <= 0:
            raise UserError(f"pixel spacing {pixel_spacing} must be two positive numbers in mm (x y)")
        img.SetSpacing(sp)
    if img.GetPixelID() not in (sitk.sitkFloat32, sitk.sitkFloat64) and raster:
        img = sitk.Cast(img, sitk.sitkFloat32)
    return img


def read_mask_2d(path: str | os.PathLike[str], reference: sitk.Image, what: str = "lesion") -> sitk.Image:
    """A 2D mask for a 2D image: read like :func:`read_image_2d`, any non-zero pixel is in the mask, put on the
    reference grid when only the (unreliable) raster spacing / origin differ and the size matches."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{what} file not found: {p}; check the path")
    try:
        img = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        raise UserError(f"cannot read {what} {p}: {str(exc).strip().splitlines()[-1]}") from None
    img = _luminance(img)
    if img.GetDimension() == 3 and img.GetSize()[2] == 1:
        img = extract_slice(img, 0)
    if img.GetSize() != reference.GetSize():
        raise UserError(f"{what} {p} is {img.GetSize()} pixels but the image is {reference.GetSize()}; give the mask "
                        "drawn on this image")
    out = sitk.GetImageFromArray((sitk.GetArrayViewFromImage(img) != 0).astype(np.uint8))
    if p.suffix.lower() in _RASTER:
        out.CopyInformation(reference)
    else:
        out.CopyInformation(img)
    return out


def slice_info(img: sitk.Image, k: int, lesion: sitk.Image) -> dict[str, Any]:
    """Where the 2D slice came from (for regions.json / provenance)."""
    arr = sitk.GetArrayViewFromImage(lesion)
    counts = np.count_nonzero(arr.reshape(arr.shape[0], -1), axis=1)
    sx, sy = img.GetSpacing()[:2]
    return {"mode": "2d-max", "slice_index": int(k), "slice_origin_lps_mm":
            [float(v) for v in img.TransformIndexToPhysicalPoint((0, 0, int(k)))],
            "lesion_area_mm2": float(counts[k] * sx * sy), "lesion_slices": int(np.count_nonzero(counts))}


# ------------------------------------------------------------------------------------------------ batch hooks
def is_2d_file(path: str | os.PathLike[str]) -> bool:
    """True for a raster picture (PNG, JPEG, ...) or a file whose image is 2D or a single slice."""
    p = Path(path)
    if p.suffix.lower() in _RASTER:
        return True
    if not p.is_file():
        return False
    r = sitk.ImageFileReader()
    r.SetFileName(str(p))
    try:
        r.ReadImageInformation()
    except RuntimeError:
        return False
    return r.GetDimension() == 2 or (r.GetDimension() == 3 and r.GetSize()[2] == 1)


def read_case_2d(image: str | os.PathLike[str], lesion: str | os.PathLike[str],
                 air: str | os.PathLike[str] | None, pectoralis: str | os.PathLike[str] | None,
                 pixel_spacing: Sequence[float] | None = None, label: int | None = None
                 ) -> tuple[sitk.Image, sitk.Image, sitk.Image | None, sitk.Image | None]:
    """A true 2D case: image (:func:`read_image_2d`), lesion and optional exclusion masks on its grid.
    ``label`` selects one value of a multi-label lesion picture."""
    img = read_image_2d(image, pixel_spacing)
    if label is not None:
        raw = read_mask_2d_values(lesion, img)
        les = sitk.GetImageFromArray((sitk.GetArrayViewFromImage(raw) == label).astype(np.uint8))
        les.CopyInformation(img)
    else:
        les = read_mask_2d(lesion, img)
    a = read_mask_2d(air, img, "air mask") if air else None
    pm = read_mask_2d(pectoralis, img, "pectoralis mask") if pectoralis else None
    return img, les, a, pm


def read_mask_2d_values(path: str | os.PathLike[str], reference: sitk.Image) -> sitk.Image:
    """The mask's values (grey level of a picture) on the reference grid."""
    img = _luminance(sitk.ReadImage(str(path)))
    if img.GetDimension() == 3:
        img = extract_slice(img, 0)
    if img.GetSize() != reference.GetSize():
        raise UserError(f"lesion {path} is {img.GetSize()} pixels but the image is {reference.GetSize()}")
    img.CopyInformation(reference)
    return img


def case_slices(image: sitk.Image, lesion: sitk.Image, air: sitk.Image | None, pectoralis: sitk.Image | None,
                exclusion_image: sitk.Image | None = None, series: Any = None) -> tuple[Any, ...]:
    """``--mode 2d-max`` for a 3D case: every input's slice at the lesion's largest cross-section, and where it
    came from. A 2D case is returned as is."""
    if image.GetDimension() == 2:
        return image, lesion, air, pectoralis, exclusion_image, series, {"mode": "2d", "slice_index": None}
    k = max_area_slice(lesion)
    info = slice_info(image, k, lesion)

    def cut(img: sitk.Image | None) -> sitk.Image | None:
        return extract_slice(img, k) if img is not None else None

    if series is not None:
        from her2radiomics.kinetics import DceSeries

        series = DceSeries([extract_slice(p, k) for p in series.phases], series.times_s, series.source)
    return cut(image), cut(lesion), cut(air), cut(pectoralis), cut(exclusion_image), series, info


def extract_case_2d(image: sitk.Image, masks: dict[str, sitk.Image], params: dict, **kwargs: Any) -> dict[str, float]:
    """In-plane pyradiomics features of a 2D case (:func:`force2d_params` on :func:`as_volume`)."""
    from her2radiomics.features import extract_case

    return extract_case(as_volume(image), {n: as_volume(m) for n, m in masks.items()}, force2d_params(params),
                        **kwargs)


def slice_note(info: dict[str, Any]) -> str:
    """One line for the case's warnings: which 2D plane the regions and features were computed on."""
    if info.get("slice_index") is None:
        return "2D: regions (in-plane rings) and features (force2D, shape2D) on the 2D image"
    return (f"2D: regions (in-plane rings) and features (force2D, shape2D) on slice k={info['slice_index']}, the "
            f"lesion's largest cross-section ({info['lesion_area_mm2']:.1f} mm2 of {info['lesion_slices']} slices)")
