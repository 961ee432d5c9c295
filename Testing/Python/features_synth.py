"""Small synthetic textured cases for the feature-engine tests (deterministic, a few hundred kB each)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

SMALL_PARAMS = """\
imageType:
  Original: {}
  LoG: {sigma: [1.0, 2.0]}
featureClass:
  shape: [VoxelVolume, Sphericity]
  firstorder: [Mean, Entropy, Kurtosis]
  glcm: [Contrast, Correlation]
  glszm: [ZoneEntropy]
setting:
  binCount: 16
"""


def textured_case(seed: int = 0, shape_zyx=(36, 72, 72), spacing_xyz=(0.74, 0.74, 1.2), radius_mm: float = 5.0,
                  direction=None) -> tuple[sitk.Image, sitk.Image, np.ndarray]:
    """Correlated-noise 'parenchyma' (int16) with a brighter heterogeneous spherical lesion.

    Returns (image, lesion mask, distance-to-centre array in mm) on an anisotropic grid.
    """
    rng = np.random.default_rng(seed)
    sz, sy, sx = reversed(spacing_xyz)
    tex = ndimage.gaussian_filter(rng.normal(size=shape_zyx), (1.0, 1.6, 1.6))
    z, y, x = np.indices(shape_zyx)
    c = np.array(shape_zyx) / 2 + rng.uniform(-2, 2, 3)
    r = np.sqrt(((z - c[0]) * sz) ** 2 + ((y - c[1]) * sy) ** 2 + ((x - c[2]) * sx) ** 2)
    lesion = r <= radius_mm
    arr = 400 + 900 * tex + lesion * (500 + 1500 * tex) + 80 * np.exp(-r / 6.0)
    img = sitk.GetImageFromArray(np.clip(arr, 0, 4000).astype(np.int16))
    img.SetSpacing(spacing_xyz)
    img.SetOrigin((-20.0, 15.5, -7.25))
    if direction is not None:
        img.SetDirection(direction)
    les = sitk.GetImageFromArray(lesion.astype(np.uint8))
    les.CopyInformation(img)
    return img, les, r


def shells(lesion: sitk.Image, distances=(1.0, 3.0, 5.0)) -> dict[str, sitk.Image]:
    """intra + peri{d} by exact Euclidean distance (mm) from the lesion (brute-force reference for the tests)."""
    les = sitk.GetArrayFromImage(lesion).astype(bool)
    dist = ndimage.distance_transform_edt(~les, sampling=tuple(reversed(lesion.GetSpacing())))
    out = {"intra": lesion}
    for d in distances:
        m = sitk.GetImageFromArray(((dist > 0) & (dist <= d)).astype(np.uint8))
        m.CopyInformation(lesion)
        out[f"peri{d:g}"] = m
    return out


def write_cohort(folder: Path, n: int, *, readers: bool = False, shape_zyx=(24, 48, 48)) -> Path:
    """n small cases (image + lesion NRRD) and manifest.csv in ``folder``; returns the manifest path."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["case_id,reader,image,lesion" if readers else "case_id,image,lesion"]
    for i in range(n):
        img, les, _ = textured_case(seed=i, shape_zyx=shape_zyx, radius_mm=4.0 + 0.3 * i)
        sitk.WriteImage(img, str(folder / f"case{i}_image.nrrd"), True)
        sitk.WriteImage(les, str(folder / f"case{i}_lesion.nrrd"), True)
        if readers:
            lines.append(f"case{i},R1,case{i}_image.nrrd,case{i}_lesion.nrrd")
        else:
            lines.append(f"case{i},case{i}_image.nrrd,case{i}_lesion.nrrd")
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def small_phantom_case() -> tuple[sitk.Image, dict[str, sitk.Image], str]:
    """A small phantom case (image + regions after exclusions) when her2radiomics.phantom exists, else textured.

    Returns (image, {intra, peri1, peri3, peri5}, description).
    """
    try:
        from her2radiomics.phantom import make_phantom
        from her2radiomics.regions import build_regions
    except ImportError:
        image, lesion, _ = textured_case(seed=3, shape_zyx=(30, 64, 64), radius_mm=4.0)
        return image, shells(lesion), "textured"
    ph = make_phantom(seed=1, size=(128, 128, 48), spacing=(1.0, 1.0, 1.6), breast_scale=0.6, lesion_radius_mm=4.0)
    regions = build_regions(ph.image, ph.lesion, air=ph.air, pectoralis=ph.pectoralis)
    return ph.image, regions.feature_masks(), "phantom"
