"""Intratumoral region and exact peritumoral shells in physical millimetres, with exclusions.

Definition (METHOD.md; Gao et al. 2026, BMC Cancer): ``peri{d}`` is the set of voxels *outside* the
lesion whose Euclidean distance, in physical millimetres, to the nearest lesion voxel is at most
``d``. Distances are measured between voxel centres. The shells are nested (``peri1`` within
``peri3`` within ``peri5``), never overlap the lesion, and are clipped to the image. Extramammary
air and the pectoralis major are removed from the shells only, never from the lesion.

Boundary convention: a voxel belongs to ``peri{d}`` when ``distance <= d + BOUNDARY_EPS_MM``
(1e-6 mm). The epsilon only absorbs floating-point rounding, so that a voxel lying exactly ``d`` away
on the lattice (for example two slices of 1.5 mm from a 3 mm shell's lesion) is always inside,
whatever order the arithmetic was done in. The brute-force reference in the tests uses the same
rule.

Exactness: the image direction matrix is a rotation (orthonormal; reflections allowed), so the
physical distance between two voxel centres equals the index difference scaled by the spacing,
``|| D (Δi * s) || = || Δi * s ||``. An exact Euclidean distance transform in index space with
``sampling = spacing`` (Maurer, Qi & Raghavan 2003, IEEE TPAMI 25(2):265-270, as implemented by
``scipy.ndimage.distance_transform_edt``) therefore gives exact physical distances on anisotropic
grids. This is the opposite of the "dilate by a voxel radius assuming isotropic spacing" shortcut,
which is wrong on 0.7 x 0.7 x 2 mm DCE-MRI. A sheared (non-orthogonal) direction matrix is refused.

Crop: the transform runs only on the lesion bounding box grown by ``ceil(d_max / spacing) + 1``
voxels per axis, which contains every voxel within ``d_max`` of the lesion, so the result equals a
whole-volume transform at a tiny fraction of the cost. The box is *not* clipped to the image at
this stage: the part outside the image is padded virtually with background, which lets us count
the ideal shell's voxels that fall beyond the image border (``clipped_mm3``) on the same lattice.
The shells are then cut back to the image.

2D: a 2D image and mask give in-plane rings by the same rule and method (2D EDT with the pixel spacing); the
automatic exclusions are off there (masks only) and the ``*_mm3`` statistics hold mm2 (docs/regions.md; the
lesion's largest cross-section of a 3D volume: :mod:`her2radiomics.planar`).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from her2radiomics import __version__
from her2radiomics.errors import UserError
from her2radiomics.geometry import bbox_zyx, check_same_grid, image_from_array, paste, voxel_volume_mm3
from her2radiomics.io import check_finite

DEFAULT_DISTANCES: tuple[float, ...] = (1.0, 3.0, 5.0)
EXCLUSIONS: tuple[str, ...] = ("air", "pectoralis")
#: a voxel is in peri{d} when its distance is <= d + BOUNDARY_EPS_MM (absorbs float rounding only)
BOUNDARY_EPS_MM = 1e-6
#: the largest shell distance accepted (the literature uses 1-10 mm; this bounds the crop size)
MAX_DISTANCE_MM = 50.0
#: refuse crops larger than this many voxels (a lesion mask covering most of a big image)
MAX_CROP_VOXELS = 60_000_000   # ~1.5 GB of EDT work arrays
_AXES_ZYX = ("z", "y", "x")
_AXIS_NOTE = {
    "z": "(slice axis); it has no voxels directly above/below the lesion",
    "y": "(in-plane j axis); it has no voxels directly beside the lesion along j",
    "x": "(in-plane i axis); it has no voxels directly beside the lesion along i",
}


def shell_name(d: float) -> str:
    """Region name of the ``d`` mm shell: ``1 -> "peri1"``, ``2.5 -> "peri2.5"`` (``peri{d:g}``)."""
    return f"peri{float(d):g}"


def validate_distances(distances: Iterable[float]) -> tuple[float, ...]:
    """Check shell distances (positive, finite, <= MAX_DISTANCE_MM, unique) and return them sorted."""
    try:
        values = [float(d) for d in distances]
    except (TypeError, ValueError):
        raise UserError(f"shell distances must be numbers in mm, got {distances!r}; e.g. --distances 1 3 5") from None
    if not values:
        raise UserError("no shell distance given; e.g. --distances 1 3 5")
    for d in values:
        if not math.isfinite(d) or d <= 0:
            raise UserError(f"shell distance {d:g} mm is not a positive finite number; e.g. --distances 1 3 5")
        if d > MAX_DISTANCE_MM:
            raise UserError(f"shell distance {d:g} mm is larger than {MAX_DISTANCE_MM:g} mm; choose peritumoral distances up to {MAX_DISTANCE_MM:g} mm")
    names = [shell_name(d) for d in values]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise UserError(f"shell distances repeat ({', '.join(dup)}); give each distance once")
    return tuple(sorted(values))


def _check_rotation(img: sitk.Image) -> None:
    n = img.GetDimension()
    d = np.asarray(img.GetDirection(), float).reshape(n, n)
    if not np.allclose(d.T @ d, np.eye(n), atol=1e-4):
        raise UserError("image direction matrix is not a rotation (sheared grid); resample the image onto an orthogonal grid first")


def _spacing_zyx(img: sitk.Image) -> tuple[float, ...]:
    """Spacing in array order: (z, y, x) for a 3D image, (y, x) for a 2D one."""
    return tuple(float(s) for s in reversed(img.GetSpacing()))


def _axes(ndim: int) -> tuple[str, ...]:
    """Axis names in array order."""
    return _AXES_ZYX[-ndim:]


def _unit(ndim: int) -> str:
    """Measure unit of a region: mm3 in 3D, mm2 (pixel area) in 2D."""
    return "mm3" if ndim == 3 else "mm2"


def _binary_array(mask: sitk.Image, reference: sitk.Image, what: str) -> np.ndarray:
    """Boolean (z, y, x) array of a mask on ``reference``'s grid; UserError if it holds several labels.

    Linear-time check (no sort), so that whole-volume masks stay cheap.
    """
    check_same_grid(mask, reference, what=what)
    if mask.GetNumberOfComponentsPerPixel() != 1:
        raise UserError(f"{what} has several components per voxel; give a scalar 0/1 mask")
    arr = sitk.GetArrayViewFromImage(mask)
    nz = arr != 0
    values = arr[nz]
    if values.size and np.any(values != values[0]):
        labels = np.unique(values)[:10].tolist()
        fix = "pass --label N to choose the lesion label" if what.startswith("lesion") else "give a 0/1 mask"
        raise UserError(f"{what} is not binary (labels {labels}); {fix}")
    return nz


@dataclass
class _ShellGeometry:
    """Shells on the in-image crop plus what the virtual padding revealed."""

    bbox: tuple[tuple[int, int], ...]   # in-image crop box (z, y, x), inclusive-exclusive
    lesion: np.ndarray                  # bool, crop
    shells: dict[str, np.ndarray]       # bool, crop, before exclusions
    clipped_voxels: dict[str, int]      # ideal shell voxels outside the image
    lesion_bbox: tuple[tuple[int, int], ...]


def _shell_geometry(lesion: np.ndarray, spacing_zyx: tuple[float, ...], distances: tuple[float, ...]) -> _ShellGeometry:
    """Exact shells on a crop, with the ideal shells' out-of-image voxels counted by virtual padding.

    ``lesion`` is the whole-image boolean array (3D (z, y, x), or 2D (y, x) with in-plane distances). The crop
    box is the lesion bounding box grown by ``ceil(d_max / s) + 1`` voxels per axis *without* clipping to the
    image (the region beyond the border is padded with background, i.e. it extends the voxel lattice). The
    Euclidean distance transform of the non-lesion voxels (sampling = spacing, exact) then gives every lattice
    point's distance to the lesion, inside or outside the image. Voxels of an ideal shell whose index lies
    outside the image are counted as clipped; the rest, cut to the image, form the shell.
    """
    lbox = bbox_zyx(lesion)
    if lbox is None:
        raise UserError("lesion mask is empty (no non-zero voxel); draw the lesion or choose the right --label")
    dmax = max(distances)
    shape = lesion.shape
    virt = []   # unclipped box in image index coordinates (may be negative / beyond the size)
    for (lo, hi), sp in zip(lbox, spacing_zyx, strict=True):
        m = int(math.ceil(dmax / sp - 1e-9)) + 1
        virt.append((lo - m, hi + m))
    n_virtual = int(np.prod([hi - lo for lo, hi in virt]))
    if n_virtual > MAX_CROP_VOXELS:
        raise UserError(
            f"the lesion and its {dmax:g} mm margin span {n_virtual} voxels; check that the lesion mask is the tumour, not the whole image"
        )
    clip = tuple((max(0, lo), min(n, hi)) for (lo, hi), n in zip(virt, shape, strict=True))
    padded = np.zeros(tuple(hi - lo for lo, hi in virt), dtype=bool)
    inner = tuple(slice(c0 - v0, c1 - v0) for (c0, c1), (v0, _) in zip(clip, virt, strict=True))
    padded[inner] = lesion[tuple(slice(c0, c1) for c0, c1 in clip)]
    # distance of every background lattice point to the nearest lesion voxel centre, in mm
    from scipy import ndimage  # here, not at import: `extract` validates its options before it needs SciPy

    dist = ndimage.distance_transform_edt(~padded, sampling=spacing_zyx)
    in_image = np.zeros(padded.shape, dtype=bool)
    in_image[inner] = True
    shells: dict[str, np.ndarray] = {}
    clipped: dict[str, int] = {}
    for d in distances:
        ideal = (dist <= d + BOUNDARY_EPS_MM) & ~padded
        name = shell_name(d)
        clipped[name] = int(np.count_nonzero(ideal & ~in_image))
        shells[name] = ideal[inner]
    return _ShellGeometry(clip, padded[inner].copy(), shells, clipped, lbox)


def compute_shells(lesion: sitk.Image, distances: Iterable[float] = DEFAULT_DISTANCES) -> dict[str, sitk.Image]:
    """Exact peritumoral shells ``{"peri1": mask, ...}`` (uint8 0/1 on the lesion's grid), nested.

    ``peri{d}`` = voxels outside the lesion whose centre lies at most ``d`` mm (+1e-6 mm rounding
    slack) from the centre of a lesion voxel, clipped to the image. See the module docstring for
    the method (exact EDT with sampling = spacing on a crop; Maurer et al. 2003). A 2D mask gives in-plane rings.
    """
    dists = validate_distances(distances)
    _check_rotation(lesion)
    arr = _binary_array(lesion, lesion, "lesion")
    geo = _shell_geometry(arr, _spacing_zyx(lesion), dists)
    return {name: paste(m.view(np.uint8), lesion, geo.bbox) for name, m in geo.shells.items()}


@dataclass
class Regions:
    """Result of :func:`build_regions`: masks, statistics and warnings (see docs/regions.md)."""

    masks: dict[str, sitk.Image]        # intra, peri{d}... (after exclusion), air, pectoralis
    stats: dict[str, dict]              # per feature region (intra + shells)
    warnings: list[str]
    exclusion_source: dict[str, str]    # "air"/"pectoralis" -> "auto" | "user" | "none"
    distances: tuple[float, ...]
    exclusions: dict[str, dict] = field(default_factory=dict)   # per exclusion: source, voxels, volume_mm3, notes
    image_info: dict[str, Any] = field(default_factory=dict)    # size, spacing, origin, direction

    @property
    def shell_names(self) -> list[str]:
        return [shell_name(d) for d in self.distances]

    def feature_masks(self) -> dict[str, sitk.Image]:
        """The regions features are extracted from, in order intra, peri1, peri3, peri5 (exclusions applied)."""
        return {name: self.masks[name] for name in ["intra", *self.shell_names]}

    def to_json(self) -> dict:
        """Content of regions.json (ARCHITECTURE.md contract plus provenance keys)."""
        return {
            "regions": {k: dict(v) for k, v in self.stats.items()},
            "warnings": list(self.warnings),
            "exclusion_source": dict(self.exclusion_source),
            "exclusions": {k: dict(v) for k, v in self.exclusions.items()},
            "distances": [float(d) for d in self.distances],
            "boundary": f"peri{{d}} = voxels outside the lesion with centre-to-centre distance <= d + {BOUNDARY_EPS_MM:g} mm",
            "image": dict(self.image_info),
            "software": {"name": "her2radiomics", "version": __version__},
        }


def _image_info(image: sitk.Image) -> dict[str, Any]:
    info: dict[str, Any] = {
        "size": [int(v) for v in image.GetSize()],
        "spacing": [float(v) for v in image.GetSpacing()],
        "origin": [float(v) for v in image.GetOrigin()],
        "direction": [float(v) for v in image.GetDirection()],
    }
    if image.GetDimension() == 2:   # (3D output unchanged) 2D: the *_mm3 statistics hold areas in mm2
        info["dimension"] = 2
        info["measure_unit"] = "mm2"
    return info


def _fmt_mm3(v: float) -> str:
    return f"{v:.1f}" if v >= 1 else f"{v:.3g}"


def _resolve_exclusion(
    name: str, user: sitk.Image | None, image: sitk.Image, detect_on: sitk.Image, lesion_img: sitk.Image, auto: bool,
    reach_mm: float, auto_air: sitk.Image | None = None,
) -> tuple[np.ndarray, str, list[str], dict]:
    """Exclusion mask array, its source, notes and confidence record: user mask > automatic detection > empty.

    ``auto_air``: the automatic air mask, handed to ``detect_pectoralis(air=...)`` so air is not computed
    twice (same or better pectoralis Dice over the 31-configuration sweep of docs/exclusions.md). A
    user-drawn air mask is not handed over: it may cover only the region near the lesion, while the
    pectoralis detector needs the whole anterior skin surface to calibrate the fat intensity.
    """
    if user is not None:
        return _binary_array(user, image, f"{name} mask"), "user", [], {}
    if not auto:
        return np.zeros(tuple(reversed(image.GetSize())), bool), "none", [], {}
    from her2radiomics import exclusions

    if name == "air":
        res = exclusions.detect_air(detect_on, lesion_img)
    else:
        res = exclusions.detect_pectoralis(detect_on, lesion_img, reach_mm=reach_mm, air=auto_air)
    return (_binary_array(res.mask, image, f"automatic {name} mask"), "auto", [str(n) for n in res.notes],
            exclusions.confidence_record(res))


def _thin_ring_warnings(distances: tuple[float, ...], spacing_zyx: tuple[float, ...]) -> list[str]:
    out = []
    for d in distances:
        for axis, sp in zip(reversed(_axes(len(spacing_zyx))), reversed(spacing_zyx), strict=True):   # x, y, z
            if d + BOUNDARY_EPS_MM < sp:
                out.append(f"{shell_name(d)}: {d:g} mm ring is thinner than the {sp:.3g} mm voxel along {axis} {_AXIS_NOTE[axis]}")
    return out


def _empty_shell_reason(name: str, d: float, n_ideal: int, n_clipped: int, st: Mapping[str, Any],
                        spacing_zyx: tuple[float, ...], vv: float) -> str:
    """Why a shell has no voxel: thinner than the voxel, beyond the image border, or all in the exclusions."""
    unit = _unit(len(spacing_zyx))
    if n_ideal == 0 and n_clipped == 0:
        thin = [(axis, sp) for axis, sp in zip(reversed(_axes(len(spacing_zyx))), reversed(spacing_zyx), strict=True)
                if d + BOUNDARY_EPS_MM < sp]
        if thin:
            axes = ", ".join(f"{sp:.3g} mm along {axis}" for axis, sp in thin)
            return (f"{name} is empty: the {d:g} mm ring is thinner than the voxel ({axes}), so no voxel centre lies "
                    f"within {d:g} mm of the lesion; use a larger distance or resample the cohort to a finer common "
                    "grid (--resample-spacing)")
    if n_ideal == 0:
        return (f"{name} is empty: the whole {d:g} mm ring lies beyond the image border ({_fmt_mm3(n_clipped * vv)} "
                f"{unit} clipped); the lesion sits at the edge of the field of view")
    parts = ", ".join(f"{ex} {_fmt_mm3(st[f'excluded_{ex}_mm3'])} {unit}" for ex in EXCLUSIONS
                      if st.get(f"excluded_{ex}_mm3"))
    return (f"{name} is empty: all of its {n_ideal} voxels ({_fmt_mm3(n_ideal * vv)} {unit}) lie in the exclusion "
            f"masks ({parts}); check the air/pectoralis masks or use --no-auto-exclusions")


# ------------------------------------------------------------------------------------ build_regions steps
def _check_inputs(image: sitk.Image, lesion: sitk.Image, distances: Iterable[float],
                  exclusion_image: sitk.Image | None) -> tuple[tuple[float, ...], np.ndarray, sitk.Image]:
    """Validated distances, the lesion array and the image the automatic exclusions are detected on."""
    dists = validate_distances(distances)
    if image.GetDimension() not in (2, 3):
        raise UserError(f"image is {image.GetDimension()}D; give one 3D volume (or one 2D image)")
    _check_rotation(image)
    check_finite(image, "image")
    les = _binary_array(lesion, image, "lesion")
    detect_on = image
    if exclusion_image is not None:
        if exclusion_image.GetDimension() != image.GetDimension():
            raise UserError(f"exclusion image is {exclusion_image.GetDimension()}D but the image is "
                            f"{image.GetDimension()}D; give one volume on the image grid")
        check_same_grid(exclusion_image, image, what="exclusion image")
        check_finite(exclusion_image, "exclusion image")
        detect_on = exclusion_image
    return dists, les, detect_on


def _exclusion_masks(image: sitk.Image, detect_on: sitk.Image, lesion_img: sitk.Image, user: Mapping[str, Any],
                     auto: bool, reach_mm: float, vv: float, detected_on: str
                     ) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, dict], list[str]]:
    """Air and pectoralis arrays (user > automatic > none), their sources, records and warnings."""
    excl_arrays: dict[str, np.ndarray] = {}
    source: dict[str, str] = {}
    excl_info: dict[str, dict] = {}
    warnings: list[str] = []
    for name in EXCLUSIONS:
        auto_air = (image_from_array(excl_arrays["air"].view(np.uint8), image)
                    if name == "pectoralis" and source.get("air") == "auto" else None)
        arr, src, notes, conf = _resolve_exclusion(name, user.get(name), image, detect_on, lesion_img, auto,
                                                   reach_mm, auto_air)
        excl_arrays[name], source[name] = arr, src
        n = int(np.count_nonzero(arr))
        excl_info[name] = {"source": src, "voxels": n, "volume_mm3": n * vv, "notes": notes, **conf}
        if src == "auto":
            excl_info[name]["detected_on"] = detected_on
        warnings.extend(f"{name} ({src}): {n}" for n in notes)
        if conf.get("review"):
            warnings.append(f"{name} (auto): confidence {conf['confidence']:.2f} is below {conf['review_below']:g}: "
                            "review this mask (qc_overlay.png), erase or redraw it and pass it with "
                            f"--{name}, or detect on another phase with --exclusion-image")
    return excl_arrays, source, excl_info, warnings


def _lesion_stats(geo: _ShellGeometry, excl_crop: Mapping[str, np.ndarray], excl_info: dict[str, dict],
                  shape: tuple[int, ...], vv: float) -> tuple[dict, list[str]]:
    """``intra`` statistics (voxels, volume, components) and the lesion's warnings (components, overlap with
    the exclusions, image border)."""
    ndim, unit = len(shape), _unit(len(shape))
    warnings: list[str] = []
    n_lesion = int(np.count_nonzero(geo.lesion))
    from scipy import ndimage

    labels, n_comp = ndimage.label(geo.lesion, structure=np.ones((3,) * ndim, bool))
    sizes = np.bincount(labels.ravel())[1:] if n_comp else np.zeros(0, int)
    largest = int(sizes.max()) if n_comp else 0
    stats = {"voxels": n_lesion, "volume_mm3": n_lesion * vv, "components": int(n_comp),
             "largest_component_voxels": largest}
    if n_comp > 1:
        warnings.append(
            f"lesion has {n_comp} separate components ({3 ** ndim - 1}-connected); all are kept as one region; "
            f"the largest has {largest} voxels ({_fmt_mm3(largest * vv)} {unit}) of {n_lesion}"
        )
    for name, arr in excl_crop.items():
        overlap = int(np.count_nonzero(arr & geo.lesion))
        excl_info[name]["lesion_overlap_voxels"] = overlap
        if overlap:
            warnings.append(
                f"lesion overlaps {name} by {overlap} voxels ({_fmt_mm3(overlap * vv)} {unit}); the lesion is never trimmed, only the shells are"
            )
    border_axes = [axis for axis, (lo, hi), n in zip(_axes(ndim), geo.lesion_bbox, shape, strict=True)
                   if lo == 0 or hi == n]
    if border_axes:
        warnings.append(
            f"lesion touches the image border along {', '.join(border_axes)}; it may be cut off and its shells are clipped there"
        )
    return stats, warnings


def _shell_masks(image: sitk.Image, geo: _ShellGeometry, dists: tuple[float, ...],
                 excl_crop: Mapping[str, np.ndarray], spacing: tuple[float, ...], vv: float
                 ) -> tuple[dict[str, sitk.Image], dict[str, dict], list[str]]:
    """Each shell minus the union of the exclusions: masks on the image grid, statistics, empty-shell warnings."""
    union = np.zeros(geo.lesion.shape, bool)
    for arr in excl_crop.values():
        union |= arr
    masks: dict[str, sitk.Image] = {}
    stats: dict[str, dict] = {}
    warnings: list[str] = []
    for d in dists:
        name = shell_name(d)
        ideal = geo.shells[name]
        kept = ideal & ~union
        n_kept = int(np.count_nonzero(kept))
        st = {
            "voxels": n_kept,
            "volume_mm3": n_kept * vv,
            "excluded_mm3": int(np.count_nonzero(ideal & union)) * vv,
        }
        for ex, arr in excl_crop.items():
            st[f"excluded_{ex}_mm3"] = int(np.count_nonzero(ideal & arr)) * vv
        st["clipped_mm3"] = geo.clipped_voxels[name] * vv
        stats[name] = st
        masks[name] = paste(kept.view(np.uint8), image, geo.bbox)
        if n_kept == 0:
            st["empty_reason"] = _empty_shell_reason(name, d, int(np.count_nonzero(ideal)), geo.clipped_voxels[name],
                                                     st, spacing, vv)
            warnings.append(f"{st['empty_reason']}; its features cannot be computed")
    return masks, stats, warnings


def _final_warnings(warnings: list[str], stats: Mapping[str, dict], dists: tuple[float, ...], unit: str) -> list[str]:
    """Drop an empty shell's per-axis thin-ring lines (its message names the thin axes) and add the border-clip
    line (the image border clips the rings: how much of each ring lies beyond it)."""
    names = [shell_name(d) for d in dists]
    empty = {n for n in names if "empty_reason" in stats[n]}
    out = [w for w in warnings if not (w.split(":", 1)[0] in empty and " ring is thinner than the " in w)]
    clipped = [(n, stats[n]["clipped_mm3"]) for n in names if stats[n]["clipped_mm3"] > 0]
    if clipped:
        out.append("shells reach beyond the image border: "
                   + ", ".join(f"{n} loses {_fmt_mm3(v)} {unit}" for n, v in clipped) + " (clipped_mm3)")
    return out


def build_regions(
    image: sitk.Image,
    lesion: sitk.Image,
    distances: Iterable[float] = DEFAULT_DISTANCES,
    *,
    air: sitk.Image | None = None,
    pectoralis: sitk.Image | None = None,
    auto_exclusions: bool = True,
    exclusion_image: sitk.Image | None = None,
) -> Regions:
    """Lesion, exact shells minus exclusions, statistics and warnings for one case.

    Parameters
    ----------
    image : the 3D image (defines the grid; used by the automatic exclusion detectors), or a 2D image (in-plane
        rings; the automatic exclusions are off in 2D, air / pectoralis apply only when given as masks; the
        ``*_mm3`` statistics then hold areas in mm2, ``image.measure_unit`` says so).
    lesion : binary mask on the image grid (any single non-zero value is the lesion).
    distances : shell distances in mm (positive, finite, unique; sorted here).
    air, pectoralis : user masks on the image grid; they replace the automatic ones (source "user").
    auto_exclusions : when a mask is not given, detect it automatically (source "auto"); otherwise
        leave it empty (source "none").
    exclusion_image : another image on the same grid (e.g. a non-subtracted or pre-contrast phase) on which
        the automatic air / pectoralis masks are detected instead of ``image`` (a subtraction image has air
        and fat both near zero); recorded as ``"detected_on": "exclusion_image"`` per exclusion.

    Statistics (volumes are voxel counts x voxel volume, Sec. "Statistics" of docs/regions.md):
    ``intra``: voxels, volume_mm3, components, largest_component_voxels. Each shell: voxels and
    volume_mm3 *after* exclusion; excluded_mm3 (shell voxels in the union of the exclusions);
    excluded_air_mm3 / excluded_pectoralis_mm3 (shell voxels in each mask; they may add up to
    more than excluded_mm3 where the masks overlap); clipped_mm3 (ideal shell beyond the image
    border, counted on the virtually padded lattice, see :func:`_shell_geometry`).

    Steps: :func:`_check_inputs`, :func:`_shell_geometry`, :func:`_exclusion_masks`, :func:`_lesion_stats`,
    :func:`_thin_ring_warnings`, :func:`_shell_masks`, :func:`_final_warnings`.
    """
    dists, les, detect_on = _check_inputs(image, lesion, distances, exclusion_image)
    ndim = image.GetDimension()
    spacing = _spacing_zyx(image)
    vv = voxel_volume_mm3(image)
    geo = _shell_geometry(les, spacing, dists)
    lesion_img = image_from_array(les.view(np.uint8), image)
    warnings: list[str] = []
    if ndim == 2 and auto_exclusions and (air is None or pectoralis is None):
        warnings.append("2D image: the automatic air / pectoralis detection is off; pass --air / --pectoralis masks "
                        "to exclude them from the rings")
    excl_arrays, source, excl_info, excl_warn = _exclusion_masks(
        image, detect_on, lesion_img, {"air": air, "pectoralis": pectoralis}, auto_exclusions and ndim == 3,
        max(dists), vv, "exclusion_image" if exclusion_image is not None else "image")
    warnings.extend(excl_warn)
    crop = tuple(slice(lo, hi) for lo, hi in geo.bbox)
    excl_crop = {name: arr[crop] for name, arr in excl_arrays.items()}
    intra, les_warn = _lesion_stats(geo, excl_crop, excl_info, les.shape, vv)
    warnings.extend(les_warn)
    warnings.extend(_thin_ring_warnings(dists, spacing))
    shell_masks, shell_stats, shell_warn = _shell_masks(image, geo, dists, excl_crop, spacing, vv)
    warnings.extend(shell_warn)
    stats: dict[str, dict] = {"intra": intra, **shell_stats}
    masks: dict[str, sitk.Image] = {"intra": lesion_img, **shell_masks}
    for name, arr in excl_arrays.items():
        masks[name] = image_from_array(arr.view(np.uint8), image)
    return Regions(
        masks=masks,
        stats=stats,
        warnings=_final_warnings(warnings, stats, dists, _unit(ndim)),
        exclusion_source=source,
        distances=dists,
        exclusions=excl_info,
        image_info=_image_info(image),
    )


def write_regions(regions: Regions, outdir: str | os.PathLike[str], json_extra: Mapping[str, Any] | None = None,
                  qc_image: sitk.Image | None = None) -> None:
    """Write intra.nrrd, peri{d}.nrrd, air.nrrd, pectoralis.nrrd (uint8) and regions.json into ``outdir``.

    All-or-nothing: everything is first written into a temporary folder beside ``outdir``. When
    ``outdir`` does not exist the folder is renamed into place (one atomic rename); otherwise each
    file replaces its namesake with ``os.replace``. ``json_extra`` adds keys to regions.json. With
    ``qc_image`` (the image the regions were built on) the QC overlay ``qc_overlay.png`` is written too
    (:mod:`her2radiomics.qc`: axial slices through the lesion with lesion, shells, air and pectoralis).
    """
    import json

    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise UserError(f"output {out} exists and is not a folder; choose another -o")
    parent = out.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)   # mkdtemp makes 0700; give the folder the user's usual mode
    try:
        for name in ["intra", *regions.shell_names, *EXCLUSIONS]:
            img = regions.masks[name]
            if img.GetPixelID() != sitk.sitkUInt8:
                img = sitk.Cast(img, sitk.sitkUInt8)
            sitk.WriteImage(img, str(tmp / f"{name}.nrrd"), True)
        payload = regions.to_json()
        if json_extra:
            payload.update(json_extra)
        if qc_image is not None:
            from her2radiomics import qc

            qc.write_overlay(tmp / qc.QC_FILENAME, qc_image, regions.masks, regions.exclusions)
            payload["qc_overlay"] = qc.QC_FILENAME
        (tmp / "regions.json").write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        if not out.exists():
            try:
                os.rename(tmp, out)
                return
            except OSError:
                out.mkdir(parents=True, exist_ok=True)
        for f in sorted(tmp.iterdir()):
            os.replace(f, out / f.name)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
