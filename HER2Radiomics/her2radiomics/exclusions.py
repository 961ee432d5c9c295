"""Automatic extramammary-air and pectoralis-major masks for prone axial breast DCE-MRI.

Both detectors work in physical millimetres (every smoothing sigma, radius and thickness below is
in mm and converted per axis with the image spacing) and return an :class:`Exclusion`: a uint8
{0, 1} mask on the image grid plus human-readable notes (why a mask is empty, which assumption did
not hold). They never raise for "nothing found"; only a lesion that is not on the image grid is a
:class:`~her2radiomics.errors.UserError`.

Air (extramammary background)
    In-plane block mean to ~1.4 mm and Gaussian smoothing (sigma 1 mm) -> Otsu threshold on log
    intensity (Otsu 1979; the log makes a multiplicative coil-shading field additive and keeps bright
    enhancing tissue from pulling the threshold up) -> in-plane opening (thin dark channels do not
    connect) -> 3D components of dark voxels seeded on the faces where outside air can enter in a prone
    acquisition (anterior face, anterior half of the left / right faces; chosen from the direction
    matrix) -> grown back, small body specks absorbed, boundary refined at full resolution. Anything
    enclosed by the body (suppressed fat, lungs, a necrotic lesion core) is never reached from a seed, and
    the lesion mask is never air. The result is rejected (empty mask + note) when the candidate region is
    tissue rather than background noise (mean/std, relative intensity), e.g. on a crop inside the breast.

Pectoralis major
    Assumes a (near-)axial acquisition; anterior/posterior is taken from the direction matrix.
    Tissue intensities are calibrated on the image itself: fat as the modal intensity of the layer
    2-5 mm under anterior-facing skin (valid for fat-suppressed and non-suppressed images alike), muscle
    as the modal intensity of the first homogeneous, non-fat, non-dark layer behind the breast in each
    A-P column (all such tissue would let a large organ such as the heart set the level). Muscle-like
    voxels (intensity within +-30 % of the muscle level in log space, local coefficient of variation low
    at a 1.5 mm or a ~1-voxel window, so that a muscle only a few mm thick stays homogeneous)
    are then scanned along each anterior-to-posterior column: the first run is the pectoralis when it
    is thicker than 2 mm (the next layers - fat plane, ribs, lungs - break the run; a thinner first run,
    e.g. the tapering muscle end, gives nothing rather than the intercostal layer behind it). Small components are
    dropped. With a lesion, only a box around it (lesion + reach + 30 mm) is analysed.

References: N. Otsu, IEEE Trans. SMC 1979;9:62-66 (threshold); Gudbjartsson & Patz, MRM 1995;34:910
(Rician background statistics); Rosenfeld & Pfaltz 1966 (connected components / hole filling).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from her2radiomics.errors import UserError
from her2radiomics.geometry import check_same_grid, image_from_array

#: parameters (mm unless stated); documented in docs/exclusions.md
#: the version of the automatic detectors (part of the batch runner's cache key: change it when a detector's output
#: changes, so cached cases made by another detector are recomputed, never mixed with new ones)
DETECTOR_VERSION = "2026.11-first-layer"
AIR_SMOOTH_MM = 1.0
AIR_BLOCK_MM = 2.2  # in-plane block size of the coarse grid
AIR_MAX_RELATIVE_INTENSITY = 0.5  # candidate air median / tissue median above this -> "no air"
AIR_MIN_FRACTION = 0.002
#: background noise is Rayleigh (mean/std 1.91) or, for multi-coil magnitude images, non-central chi (Duke:
#: 2.7); tissue, even suppressed fat, has a higher mean/std. Above this the candidate region is tissue.
AIR_MAX_MEAN_OVER_STD = 4.5
AIR_REFINE_MARGIN_MM = 40.0  # with a lesion: voxel-level air boundary within its box + this (blocks elsewhere)
AIR_MIN_MEAN_OVER_STD = 1.3  # robust median / (IQR / 1.349) below this (or signed values): not magnitude noise
#: confidence of an empty air mask ("no air in this field of view"): plausible for a crop, worth a look otherwise
AIR_EMPTY_CONFIDENCE = 0.6
AIR_MIN_BODY_MM3 = 50.0  # smaller islands of non-air inside the air are air  # less air than this fraction of the image -> treated as none
AXIAL_MAX_TILT_DEG = 30.0
PECT_SMOOTH_MM = 0.7
PECT_TEXTURE_MM = 1.5
PECT_TEXTURE_FINE_MM = 0.75  # second, finer CV window (thin muscle); at least one in-plane voxel
PECT_GROW_MM = 2.5  # geodesic growth of the homogeneous core into partial-volume boundary voxels
PECT_MAX_CV = 0.2
PECT_WINDOW = 0.3  # +-log window around the muscle level
PECT_MIN_LOG_CONTRAST = 0.2  # |log(muscle / fat)| below this: no usable muscle-fat contrast
PECT_MIN_THICKNESS_MM = 2.0
PECT_MIN_VOLUME_MM3 = 300.0
PECT_ROI_MARGIN_MM = 30.0
PECT_NEAR_MM = 15.0  # lesion distances are computed on the lesion's box + this (speed; farther: whole region)
PECT_WHOLE_IMAGE_BLOCK_VOXELS = 4_000_000  # larger images without a lesion: work on ~2 mm blocks
PECT_COARSE_MM = 2.0  # in-plane block size of the whole-image anatomy stage
PECT_BEHIND_TOL_MM = 3.0  # confidence: the muscle near the lesion lies behind its posterior edge (less this)
#: confidence ramps (fraction -> 0 at the first value, 1 at the second): set on the issue-11 quick sweep
PECT_BEHIND_FRACTION = (0.7, 0.9)  # mask near the lesion lying behind it
PECT_THICK_FRACTION = (0.7, 1.0)  # runs within the 2-25 mm thickness prior
PECT_MIN_SPAN = 0.6  # confidence 1 when the mask spans this fraction of the box's L-R extent on the lesion's slices
PECT_LEVEL_CANDIDATES = 3
PECT_LEVEL_SWITCH = 1.5  # another candidate level wins only with a sheet score this many times larger  # histogram peaks tried as the muscle level
PECT_SHEET_STEP_MM = 2.5  # neighbouring columns of a sheet start within this depth step
PECT_SHEET_MIN_SMOOTH = 0.6  # fraction of such steps for a component to be a sheet
PECT_SHEET_MIN_COVER = 0.25  # sheets covering less than this x the largest sheet's columns are dropped
PECT_MAX_THICKNESS_MM = 25.0  # thickness prior: no pectoralis run is thicker along A-P
SUBTRACTION_MIN_NEGATIVE = 0.01  # more negative voxels than this: a (signed) subtraction image
SUBTRACTION_MIN_AIR_BEHIND_SKIN = 0.25  # more "air" than this behind the skin: fat as dark as background
#: confidence (0-1) below this: the mask is flagged "review" (regions.json, panel, QC overlay)
REVIEW_BELOW = 0.5
SUBCUT_DEPTH_MM = (2.0, 5.0)
SUBCUT_SLICE_MM = 9.6  # slices of the calibration at most this far apart
SUBCUT_GRID_MM = 1.5  # in-plane grid of the subcutaneous-fat calibration
SUBCUT_MIN_MM3 = 2000.0  # less of the 2-5 mm layer under anterior skin: no usable skin surface


@dataclass
class Exclusion:
    """An exclusion mask (uint8 0/1 on the image grid) with notes and the detector's numbers."""

    mask: sitk.Image
    notes: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- helpers
def _lesion_array(image: sitk.Image, lesion: sitk.Image | None) -> np.ndarray | None:
    if lesion is None:
        return None
    check_same_grid(lesion, image, what="lesion")
    les = sitk.GetArrayViewFromImage(lesion) != 0
    return les if les.any() else None


def _extent(mask: np.ndarray) -> tuple[list[int], list[int]]:
    """Per-axis first and last index of a non-empty mask (from any() projections: cheaper than nonzero).

    The first axis is projected over the whole array, the others only over the slab of its first to last
    non-zero slice (a lesion spans a few slices: one pass over the volume instead of one per axis).
    """
    w = np.nonzero(mask.any(axis=tuple(range(1, mask.ndim))))[0]
    lo, hi = [int(w[0])], [int(w[-1])]
    slab = mask[lo[0]:hi[0] + 1]
    for ax in range(1, mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != ax)
        w = np.nonzero(slab.any(axis=other))[0]
        lo.append(int(w[0]))
        hi.append(int(w[-1]))
    return lo, hi


def _smooth_array(arr: np.ndarray, spacing_zyx, sigma_mm: float) -> np.ndarray:
    """Gaussian smoothing with a physical sigma (mm); axes with spacing > 2 sigma are not smoothed."""
    out = np.asarray(arr, np.float32)
    sig = [sigma_mm / sp if sp <= 2 * sigma_mm else 0.0 for sp in spacing_zyx]
    if any(v > 0 for v in sig):
        out = ndimage.gaussian_filter(out, sig, mode="nearest", truncate=3.0)
    return out


def _smooth(image: sitk.Image, sigma_mm: float) -> np.ndarray:
    return _smooth_array(sitk.GetArrayViewFromImage(image), image.GetSpacing()[::-1], sigma_mm)


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold (maximum between-class variance) of a 1D sample (Otsu 1979)."""
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist).astype(float)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centres[int(np.argmax(between[:-1]))])


def _sample(arr: np.ndarray, n: int = 400_000) -> np.ndarray:
    """Every ``size // n``-th value in C order; a strided view is indexed, not copied whole."""
    step = max(1, arr.size // n)
    if arr.flags.c_contiguous:
        return arr.reshape(-1)[::step]
    return arr[np.unravel_index(np.arange(0, arr.size, step), arr.shape)]


def dark_threshold(smoothed: np.ndarray) -> float:
    """Air / tissue threshold: Otsu on log(1 + intensity) of a subsample (robust to shading)."""
    return _dark_threshold_of_sample(_sample(smoothed))


def _dark_threshold_of_sample(v: np.ndarray) -> float:
    v = np.log1p(np.clip(v, 0, None))
    return float(np.expm1(_otsu(v)))


@dataclass
class Orientation:
    """How the array axes (z, y, x) relate to the patient's physical axes (LPS)."""

    si_axis: int  # array axis (0, 1, 2) closest to superior-inferior
    ap_axis: int  # array axis closest to anterior-posterior
    lr_axis: int
    ap_sign: int  # +1: index increases towards posterior (LPS +y)
    tilt_deg: float  # angle between the slice normal (array axis 0) and the S-I axis
    axial: bool


def orientation(image: sitk.Image) -> Orientation:
    """Array axes of the S-I, A-P and L-R directions, from the direction matrix (not the array order)."""
    d = np.array(image.GetDirection(), float).reshape(3, 3)  # columns: index axes i, j, k in LPS
    # array axis of index axis a is 2 - a
    phys_of_index = [int(np.argmax(np.abs(d[:, a]))) for a in range(3)]
    axis_of_phys = {p: 2 - a for a, p in enumerate(phys_of_index)}
    if len(axis_of_phys) != 3:  # degenerate (45 degree) matrices
        order = np.argsort(-np.abs(d), axis=None)
        used_p, used_a, axis_of_phys = set(), set(), {}
        for flat in order:
            p, a = divmod(int(flat), 3)
            if p not in used_p and a not in used_a:
                axis_of_phys[p] = 2 - a
                used_p.add(p)
                used_a.add(a)
    k_dir = d[:, 2]
    tilt = float(np.degrees(np.arccos(min(1.0, abs(k_dir[2]) / max(np.linalg.norm(k_dir), 1e-12)))))
    ap_index = 2 - axis_of_phys[1]
    ap_sign = 1 if d[1, ap_index] > 0 else -1
    return Orientation(si_axis=axis_of_phys[2], ap_axis=axis_of_phys[1], lr_axis=axis_of_phys[0],
                       ap_sign=ap_sign, tilt_deg=tilt, axial=axis_of_phys[2] == 0 and tilt <= AXIAL_MAX_TILT_DEG)


_INPLANE = np.array([[[0, 0, 0], [0, 0, 0], [0, 0, 0]],
                     [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
                     [[0, 0, 0], [0, 0, 0], [0, 0, 0]]], bool)


def _erode_sq(m: np.ndarray) -> np.ndarray:
    """Binary erosion by a 3 x 3 in-plane square (separable; outside the array counts as foreground)."""
    e = m.copy()
    e[:, 1:, :] &= m[:, :-1, :]
    e[:, :-1, :] &= m[:, 1:, :]
    out = e.copy()
    out[:, :, 1:] &= e[:, :, :-1]
    out[:, :, :-1] &= e[:, :, 1:]
    return out


def _dilate_sq(m: np.ndarray) -> np.ndarray:
    """Binary dilation by a 3 x 3 in-plane square (separable)."""
    d = m.copy()
    d[:, 1:, :] |= m[:, :-1, :]
    d[:, :-1, :] |= m[:, 1:, :]
    out = d.copy()
    out[:, :, 1:] |= d[:, :, :-1]
    out[:, :, :-1] |= d[:, :, 1:]
    return out


def _to_canonical_inplane(arr: np.ndarray, ori: Orientation) -> np.ndarray:
    """(z, y, x) -> (slice, A-P, L-R) when the image is axial; unchanged otherwise."""
    if ori.axial and ori.ap_axis == 2:
        return np.swapaxes(arr, 1, 2)
    return arr


def _from_canonical_inplane(arr: np.ndarray, ori: Orientation) -> np.ndarray:
    return _to_canonical_inplane(arr, ori)


# ---------------------------------------------------------------------------------------------- air
def detect_air(image: sitk.Image, lesion: sitk.Image | None = None) -> Exclusion:
    """Extramammary air: dark background reaching the anterior / lateral field-of-view faces.

    Robust to multiplicative coil shading (log-domain Otsu), to dark fat-suppressed fat and dark
    (necrotic) lesion cores (anything enclosed by the body is not reached from a seed), and the
    lesion mask is never air. A field of view without air gives an empty mask and a note.
    ``info`` holds the threshold, the air fraction and the air / tissue intensity statistics.

    Steps: :func:`_air_dark_blocks`, :func:`_air_grow_from_seeds`, :func:`_air_statistics`,
    :func:`_air_subtraction_check`.
    """
    les = _lesion_array(image, lesion)
    ori = orientation(image)
    notes: list[str] = []
    arr = sitk.GetArrayViewFromImage(image)
    spacing_zyx = np.array(image.GetSpacing()[::-1], float)
    # work on ~1.5 mm in-plane blocks (block mean = first smoothing), refine the boundary at full resolution
    f = [1, max(1, int(round(AIR_BLOCK_MM / spacing_zyx[1]))), max(1, int(round(AIR_BLOCK_MM / spacing_zyx[2])))]
    coarse, thr, dark = _air_dark_blocks(arr, les, spacing_zyx, f)
    air = _air_grow_from_seeds(dark, ori, spacing_zyx, f)
    air_blocks = air
    if f != [1, 1, 1]:
        air = _refine_upsampled(air, f, arr, thr, _refine_box(les, spacing_zyx))
    if les is not None:  # on the lesion's box only (the rest of ~les is all True)
        lo, hi = _extent(les)
        box = tuple(slice(a, b + 1) for a, b in zip(lo, hi, strict=True))
        air[box] &= ~les[box]
    frac = float(np.count_nonzero(air) / air.size)
    info: dict[str, Any] = {"threshold": round(thr, 3), "air_fraction": round(frac, 5)}
    if not air.any():
        notes.append("no extramammary air in this field of view; air mask left empty")
        return _empty_exclusion(image, notes, info, {"empty": AIR_EMPTY_CONFIDENCE})
    parts = _air_statistics(arr, air, coarse, f, frac, info, notes)
    if parts is None:
        return _empty_exclusion(image, notes, info, {"empty": AIR_EMPTY_CONFIDENCE})
    _air_subtraction_check(air_blocks, ori, info, parts)
    if parts.get("magnitude_image", 1.0) == 0.0:
        # never take breast tissue: where air and fat look alike, leave the mask empty and ask for a review
        notes.append("air and fat look alike in this image (subtraction?): the air mask is left empty rather than "
                     "taking breast fat; review it, draw it (--air), or detect on another phase with --exclusion-image")
        return _empty_exclusion(image, notes, info, parts)
    vox = float(np.prod(image.GetSpacing()))
    info["volume_mm3"] = float(np.count_nonzero(air)) * vox
    return _with_confidence(Exclusion(image_from_array(air.view(np.uint8), image), notes, info), parts)


def _empty_exclusion(image: sitk.Image, notes: list[str], info: dict[str, Any], parts: dict[str, float]) -> Exclusion:
    """An empty (all-zero uint8) mask on ``image``'s grid with the notes, numbers and confidence parts."""
    empty = image_from_array(np.zeros(image.GetSize()[::-1], np.uint8), image)
    return _with_confidence(Exclusion(empty, notes, info), parts)


def _air_dark_blocks(arr: np.ndarray, les: np.ndarray | None, spacing_zyx: np.ndarray,
                     f: list[int]) -> tuple[np.ndarray, float, np.ndarray]:
    """Block means, the log-domain dark threshold and the dark blocks (never the lesion's blocks)."""
    coarse = _block_mean(arr, f)
    sm = _smooth_array(coarse, spacing_zyx * f, AIR_SMOOTH_MM)
    thr = dark_threshold(sm)
    dark = sm < thr
    if les is not None:
        # block-any of the lesion, computed on its (block-aligned) box only
        e_lo, e_hi = _extent(les)
        les_c = np.zeros(coarse.shape, bool)
        b0 = [e_lo[0], e_lo[1] // f[1], e_lo[2] // f[2]]
        b1 = [e_hi[0] + 1, e_hi[1] // f[1] + 1, e_hi[2] // f[2] + 1]
        sub_les = les[b0[0]:b1[0], b0[1] * f[1]:b1[1] * f[1], b0[2] * f[2]:b1[2] * f[2]]
        blk = _block_any(sub_les, f)
        les_c[b0[0]:b1[0], b0[1]:b0[1] + blk.shape[1], b0[2]:b0[2] + blk.shape[2]] = blk[:, : b1[1] - b0[1], : b1[2] - b0[2]]
        dark &= ~les_c
    return coarse, thr, dark


def _air_grow_from_seeds(dark: np.ndarray, ori: Orientation, spacing_zyx: np.ndarray, f: list[int]) -> np.ndarray:
    """Air blocks: the opened dark components touching the seed faces, grown back, with small body specks filled."""
    # thin dark channels (a zero-filled FOV edge, a signal-void strip) must not connect outside air to dark
    # tissue: open the candidates in-plane (~2 blocks), grow the kept components back by the same amount
    opened = _dilate_sq(_erode_sq(dark))  # 3 x 3 in-plane opening
    seeds = _air_seeds(opened, ori)
    cc = sitk.ConnectedComponent(sitk.GetImageFromArray(opened.view(np.uint8)), False)
    lab = sitk.GetArrayViewFromImage(cc)
    keep = np.zeros(int(lab.max()) + 1 if lab.size else 1, bool)
    keep[np.unique(lab[seeds])] = True
    keep[0] = False
    air = keep[lab]
    del cc, lab
    if air.any():
        for _ in range(2):  # geodesic growth inside the dark voxels
            air = _dilate_sq(air) & dark
        # specks of "body" inside the air (noise, ghosting) smaller than AIR_MIN_BODY_MM3 are air
        body_cc = sitk.ConnectedComponent(sitk.GetImageFromArray((~air).view(np.uint8)), False)
        body_lab = sitk.GetArrayViewFromImage(body_cc)
        nb = int(body_lab.max()) if body_lab.size else 0
        if nb > 1:
            sizes = np.bincount(body_lab.ravel())
            sizes[0] = 0
            small = sizes * float(np.prod(spacing_zyx * f)) < AIR_MIN_BODY_MM3
            small[0] = False
            air |= small[body_lab]
        del body_lab, body_cc
    return air


def _air_statistics(arr: np.ndarray, air: np.ndarray, coarse: np.ndarray, f: list[int], frac: float,
                    info: dict[str, Any], notes: list[str]) -> dict[str, float] | None:
    """Air / tissue intensity and noise statistics into ``info``; the confidence parts, or None (no real air)."""
    sub = tuple(slice(0, None, max(1, n // 64)) for n in air.shape)
    a_s, m_s = arr[sub], air[sub]
    air_med = float(np.median(a_s[m_s])) if m_s.any() else float(np.median(arr[air]))
    tissue_med = float(np.median(a_s[~m_s])) if (~m_s).any() else 0.0
    # noise statistics without zero-filled regions (whole blocks exactly 0, e.g. the corners of a rotated
    # field of view): they are not noise; scattered zeros (a subtraction clipped at 0) still count
    zero_blocks = coarse == 0
    ks, js, is_ = (np.arange(n)[sl] for n, sl in zip(arr.shape, sub, strict=True))
    filled = zero_blocks[np.ix_(ks, np.minimum(js // f[1], zero_blocks.shape[1] - 1),
                                np.minimum(is_ // f[2], zero_blocks.shape[2] - 1))]
    m_n = m_s & ~filled
    vals = a_s[m_n].astype(np.float64) if m_n.sum() > 100 else arr[air].astype(np.float64)
    mean, sd = float(vals.mean()), float(vals.std())
    snr = mean / sd if sd > 0 else (np.inf if mean > 1e-3 else 0.0)
    info.update(air_median=air_med, tissue_median=tissue_med, air_mean_over_std=round(snr, 3))
    rel = air_med / max(tissue_med, 1e-6)
    parts = {"noise": float(np.clip((AIR_MAX_MEAN_OVER_STD - snr) / 1.0, 0, 1)) if np.isfinite(snr) else 1.0,
             "darkness": float(np.clip((AIR_MAX_RELATIVE_INTENSITY - rel) / 0.25, 0, 1))}
    neg = float(np.mean(a_s < 0))
    # robust version of mean/std (median over IQR / 1.349), insensitive to the heavy tail of motion ghosts:
    # Rayleigh background 1.75, half-normal (|difference| noise) 1.09, clipped or signed subtraction ~0
    q1, q2, q3 = np.percentile(vals, [25, 50, 75])
    robust = float(q2 / ((q3 - q1) / 1.349)) if q3 > q1 else (np.inf if q2 > 0 else 0.0)
    info["air_median_over_iqr"] = round(robust, 3) if np.isfinite(robust) else None
    if neg > SUBTRACTION_MIN_NEGATIVE or (sd > 0 and robust < AIR_MIN_MEAN_OVER_STD):
        # background of a magnitude image is Rician (mean/std >= 1.91); signed values or a lower ratio: a
        # subtraction (or otherwise processed) image, where fat is as dark as air
        parts["magnitude_image"] = 0.0
        notes.append(f"the background is not magnitude-image noise (median/IQR-sigma {robust:.2f}, {100 * neg:.1f}% negative "
                     "voxels): a subtraction image? air and fat look alike; review the air mask, or detect on "
                     "another phase with --exclusion-image")
    if snr > AIR_MAX_MEAN_OVER_STD:
        notes.append(f"no extramammary air in this field of view (the darkest region reaching the anterior/lateral "
                     f"border has mean/std {snr:.1f}: tissue, not background noise); air mask left empty")
        return None
    if rel > AIR_MAX_RELATIVE_INTENSITY:
        notes.append(f"no extramammary air in this field of view (darkest border-connected region is "
                     f"{100 * rel:.0f}% of tissue intensity); air mask left empty")
        return None
    if frac < AIR_MIN_FRACTION:
        notes.append(f"only {100 * frac:.2f}% of the field of view looks like air; treated as no air")
        return None
    return parts


def _air_subtraction_check(air_blocks: np.ndarray, ori: Orientation, info: dict[str, Any],
                           parts: dict[str, float]) -> None:
    """Mark ``parts["magnitude_image"] = 0`` when the "air" spreads behind the skin (axial images only)."""
    if ori.axial and "magnitude_image" not in parts:
        # fat as dark as the background (subtraction): the "air" then spreads behind the skin into the breast
        frac_behind = _air_behind_skin(_canon(air_blocks, ori))
        info["air_behind_skin"] = round(frac_behind, 3)
        if frac_behind > SUBTRACTION_MIN_AIR_BEHIND_SKIN:
            parts["magnitude_image"] = 0.0


def _air_seeds(dark: np.ndarray, ori: Orientation) -> np.ndarray:
    """Dark voxels on the faces of the volume where outside air can enter, chosen by physical direction.

    Prone breast MRI: air lies anterior and lateral to the body; the posterior face cuts the body (its
    coil-shaded, signal-poor tissue and the lungs touch it) and so do the superior / inferior faces. Seeds
    are the whole anterior face and the anterior half of the left / right faces, wherever those axes lie
    in the array (axial, sagittal or coronal acquisition alike).
    """
    seeds = np.zeros(dark.shape, bool)
    n_ap = dark.shape[ori.ap_axis]
    ant_face = 0 if ori.ap_sign > 0 else n_ap - 1
    sl = [slice(None)] * 3
    sl[ori.ap_axis] = ant_face
    seeds[tuple(sl)] = dark[tuple(sl)]
    half = slice(0, (n_ap + 1) // 2) if ori.ap_sign > 0 else slice(n_ap // 2, None)
    for face in (0, dark.shape[ori.lr_axis] - 1):
        sl = [slice(None)] * 3
        sl[ori.lr_axis] = face
        sl[ori.ap_axis] = half
        seeds[tuple(sl)] = dark[tuple(sl)]
    return seeds


# ---------------------------------------------------------------------------------------------- pectoralis
def detect_pectoralis(image: sitk.Image, lesion: sitk.Image | None = None, reach_mm: float = 5.0, *,
                      air: sitk.Image | None = None) -> Exclusion:
    """Pectoralis major: the first homogeneous muscle-intensity layer behind the breast, per A-P column.

    ``reach_mm`` is the largest shell distance: with a lesion only a box of lesion + reach + 30 mm is
    analysed (the muscle matters only where the shells reach it). ``air`` may pass a precomputed
    :func:`detect_air` mask to avoid computing it twice. Non-axial images give an empty mask and a note.
    """
    if not (isinstance(reach_mm, (int, float)) and np.isfinite(reach_mm) and reach_mm >= 0):
        raise UserError(f"reach_mm={reach_mm!r} must be a non-negative number of millimetres")
    if lesion is None and int(np.prod(image.GetSize())) > PECT_WHOLE_IMAGE_BLOCK_VOXELS:
        return _pectoralis_on_blocks(image, reach_mm, air)
    return _pectoralis_core(image, lesion, reach_mm, air)


def _pectoralis_core(image: sitk.Image, lesion: sitk.Image | None, reach_mm: float,
                     air: sitk.Image | None) -> Exclusion:
    """Steps: :func:`_pect_roi`, :func:`_pect_fat_level`, :func:`_pect_maps`, :func:`_pect_best_level`,
    :func:`_pect_grow`."""
    les = _lesion_array(image, lesion)
    ori = orientation(image)
    notes: list[str] = []
    if not ori.axial:
        notes.append(f"pectoralis detection assumes an axial acquisition; this image's slice normal is "
                     f"{ori.tilt_deg:.0f} deg from superior-inferior (or slices are not the first array axis); "
                     "mask left empty: draw it or pass --pectoralis")
        return _empty_exclusion(image, notes, {"axial": False, "contrast": "unknown"}, {"axial": 0.0})
    if air is None:
        air_arr = _coarse_air(image, les)
    else:
        check_same_grid(air, image, what="air mask")
        air_arr = sitk.GetArrayViewFromImage(air)  # any non-zero is air; compared after slicing (no full copy)
    spacing_zyx = np.array(image.GetSpacing()[::-1], float)
    arr = sitk.GetArrayViewFromImage(image)
    roi = _pect_roi(les, arr.shape, spacing_zyx, reach_mm)
    cs, fat_level, info, failed = _pect_fat_level(arr, air_arr, les, spacing_zyx, ori, notes)
    if failed is not None:
        return _empty_exclusion(image, notes, info, failed)
    parts: dict[str, float] = {"calibration": cs["calibration_conf"]}
    m = _pect_maps(arr, roi, image.GetSpacing(), spacing_zyx, air_arr, les, cs["threshold"], fat_level, ori)
    vals = m.log_sm[_first_run(m.cand_level, ori, spacing_zyx)]
    if vals.size < 50:
        notes.append("no homogeneous non-fat tissue behind the breast in the analysed region; pectoralis mask left empty")
        return _empty_exclusion(image, notes, info, {"muscle": 0.0})
    levels, best = _pect_best_level(m, vals, fat_level, ori, spacing_zyx)
    if best is None:
        muscle_level = float(np.exp(levels[0]))
        info["muscle_level"] = muscle_level
        info["muscle_to_fat"] = round(muscle_level / fat_level, 3)
        info["contrast"] = "fat-suppressed" if muscle_level > fat_level else "non-fat-suppressed"
        notes.append(f"muscle and fat have similar intensity here (ratio {muscle_level / fat_level:.2f}); pectoralis "
                     "mask left empty")
        return _empty_exclusion(image, notes, info, dict(parts, contrast=0.0))
    sheet_score, lv, run = best
    muscle_level = float(np.exp(lv))
    info["muscle_level"] = muscle_level
    info["muscle_level_candidates"] = [round(float(np.exp(v)), 1) for v in levels]
    info["sheet_score"] = round(float(sheet_score), 1)
    ratio = muscle_level / fat_level
    info["muscle_to_fat"] = round(ratio, 3)
    info["contrast"] = "fat-suppressed" if ratio > 1 else "non-fat-suppressed"
    parts["contrast"] = float(np.clip((abs(np.log(ratio)) - PECT_MIN_LOG_CONTRAST) / 0.25, 0, 1))
    run = _pect_grow(run, m, muscle_level, fat_level, spacing_zyx)
    run &= m.body  # never air (the mask is zero outside the region: work on the region only)
    info["volume_mm3"] = float(np.count_nonzero(run)) * float(np.prod(spacing_zyx))
    sp_c = _canon_spacing(spacing_zyx, ori)
    parts.update(_pectoralis_parts(_canon(run, ori), m.les_roi, ori, sp_c, reach_mm))
    if not run.any():
        notes.append("no muscle band found behind the breast in the analysed region; pectoralis mask left empty")
        return _empty_exclusion(image, notes, info, parts)
    if les is not None:
        dmin = _distance_to_lesion(run, m, spacing_zyx)
        info["distance_to_lesion_mm"] = round(dmin, 2)
        if dmin > reach_mm:
            notes.append(f"pectoralis is {dmin:.1f} mm from the lesion, beyond the {reach_mm:g} mm shells")
    out = np.zeros(arr.shape, np.uint8)
    out[roi] = run
    return _with_confidence(Exclusion(image_from_array(out, image), notes, info), parts)


def _near_lesion_distance(les: np.ndarray, sampling: np.ndarray, margin_mm: float
                          ) -> tuple[tuple[slice, ...], np.ndarray]:
    """Euclidean distance (mm) to the lesion on its box + ``margin_mm`` (+ 1 voxel): (the box, the distances).

    Bit-identical to the whole array's distance transform inside the box (every lesion voxel is in it, so the
    exact feature transform sees the same sites; verified on random masks), and every voxel outside the box is
    farther than ``margin_mm`` from the lesion. 5-15x fewer voxels than the analysed region.
    """
    lo, hi = _extent(les)
    box = tuple(slice(max(0, a - int(np.ceil(margin_mm / sp)) - 1), min(n, b + int(np.ceil(margin_mm / sp)) + 2))
                for a, b, sp, n in zip(lo, hi, sampling, les.shape, strict=True))
    return box, ndimage.distance_transform_edt(~les[box], sampling=sampling)


def _distance_to_lesion(mask: np.ndarray, m: _PectMaps, spacing_zyx: np.ndarray) -> float:
    """Smallest distance (mm) from the lesion to a voxel of ``mask`` (region arrays): on the near box when a mask
    voxel lies within its margin (then it is the minimum), else from the whole region's distance transform."""
    d_near = m.les_dist_near[mask[m.les_box]]
    if d_near.size and float(d_near.min()) <= PECT_NEAR_MM:
        return float(d_near.min())
    return float(ndimage.distance_transform_edt(~m.les_roi, sampling=spacing_zyx)[mask].min())


def _pect_roi(les: np.ndarray | None, shape: tuple[int, ...], spacing_zyx: np.ndarray,
              reach_mm: float) -> tuple[slice, ...]:
    """Region of interest (full arrays, z y x): lesion box + reach + PECT_ROI_MARGIN_MM, or the whole image."""
    if les is None:
        return tuple(slice(0, n) for n in shape)
    e_lo, e_hi = _extent(les)
    margin = (reach_mm + PECT_ROI_MARGIN_MM) / spacing_zyx
    lo = [max(0, int(a - m)) for a, m in zip(e_lo, margin, strict=True)]
    hi = [min(n, int(b + m) + 1) for b, n, m in zip(e_hi, shape, margin, strict=True)]
    return tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))


_SUBTRACTION_NOTE = ("this looks like a subtraction image (fat as dark as the background); the pectoralis cannot be "
                     "told from fat here: mask left empty - review it, or detect on another phase with "
                     "--exclusion-image")


def _pect_fat_level(arr: np.ndarray, air_arr: np.ndarray, les: np.ndarray | None, spacing_zyx: np.ndarray,
                    ori: Orientation, notes: list[str]
                    ) -> tuple[dict[str, Any], float | None, dict[str, Any], dict[str, float] | None]:
    """Fat level: subcutaneous layer 2-5 mm below the skin (whole image, ~2 mm blocks), subtraction check.

    Returns the coarse stage, the fat level, ``info`` and, when the detection must stop, its confidence parts.
    """
    cs = _coarse_stage(arr, air_arr, les, spacing_zyx, ori)
    fat_level = (_subcutaneous_level(arr, air_arr, spacing_zyx, ori, cs["threshold"])
                 if cs["fat_level"] is not None else None)
    info: dict[str, Any] = {"fat_level": fat_level, **cs["info"], "contrast": "subtraction" if cs["subtraction"] else "unknown"}
    if fat_level is None and cs["subtraction"]:
        notes.append(_SUBTRACTION_NOTE)
        return cs, fat_level, info, {"contrast": 0.0}
    if fat_level is None:
        notes.append("no anterior skin surface (air in front of the body) in the field of view to calibrate the fat "
                     "intensity; pectoralis mask left empty")
        return cs, fat_level, info, {"calibration": 0.0}
    if cs["subtraction"]:
        info["contrast"] = "subtraction"
        notes.append(_SUBTRACTION_NOTE)
        return cs, fat_level, info, {"contrast": 0.0}
    return cs, fat_level, info, None


@dataclass
class _PectMaps:
    """Voxel maps of the region of interest that the muscle search works on."""

    sm: np.ndarray                 # smoothed intensity
    log_sm: np.ndarray             # its log
    body: np.ndarray               # not air
    homog: np.ndarray              # homogeneous, bright enough, not next to the lesion
    cand_level: np.ndarray         # homogeneous non-fat tissue behind the lesion: where the muscle can be
    behind: np.ndarray | None      # posterior of the lesion's centre (None without a lesion)
    les_roi: np.ndarray | None     # the lesion in the region of interest
    les_box: tuple[slice, ...] | None  # the lesion's box + PECT_NEAR_MM in the region (``les_dist_near``'s box)
    les_dist_near: np.ndarray | None  # distance to the lesion (mm) on ``les_box``
    grow: np.ndarray | None        # within 2 mm of the lesion
    thr_dark: float                # the air / dark threshold
    roi_image: sitk.Image          # the region's image: ``sm`` may be a view of its buffer (no axis smoothed)


def _pect_maps(arr: np.ndarray, roi: tuple[slice, ...], spacing_xyz: tuple[float, ...], spacing_zyx: np.ndarray,
               air_arr: np.ndarray, les: np.ndarray | None, thr_dark: float, fat_level: float,
               ori: Orientation) -> _PectMaps:
    """Smoothing, local texture (coefficient of variation) and the candidate muscle voxels of the region."""
    sub_img = sitk.GetImageFromArray(np.ascontiguousarray(arr[roi], dtype=np.float32))
    sub_img.SetSpacing(spacing_xyz)
    sm = _smooth(sub_img, PECT_SMOOTH_MM)
    raw = sitk.GetArrayViewFromImage(sub_img)
    # local coefficient of variation at two window sizes: the 1.5 mm window measures texture reliably but,
    # on a muscle thinner than ~6 mm, it straddles the fat on both sides and the two edges alone push the CV
    # over the limit; the ~1-voxel window (when the in-plane spacing allows one finer than 1.5 mm) keeps
    # such a thin homogeneous layer homogeneous.
    cv = _local_cv(raw, spacing_zyx, PECT_TEXTURE_MM)
    fine_mm = max(PECT_TEXTURE_FINE_MM, float(max(spacing_zyx[1:])))
    if fine_mm < PECT_TEXTURE_MM:
        cv = np.minimum(cv, _local_cv(raw, spacing_zyx, fine_mm))
    body = air_arr[roi] == 0
    log_sm = np.log(np.maximum(sm, 1e-3))
    homog = body & (cv < PECT_MAX_CV) & (sm > 2.0 * thr_dark)
    nonfat = np.abs(log_sm - np.log(fat_level)) > 0.35
    les_roi = les_box = les_dist_near = grow = None
    if les is not None:
        les_roi = les[roi]
        les_box, les_dist_near = _near_lesion_distance(les_roi, spacing_zyx, PECT_NEAR_MM)
        grow = np.zeros(les_roi.shape, bool)
        grow[les_box] = les_dist_near <= 2.0
        homog &= ~grow
    # posterior of the lesion (or anywhere without one): where the muscle can be
    cand_level = homog & nonfat
    behind = None
    if les_roi is not None:
        ap_coord = _ap_coordinate(cand_level.shape, ori)
        les_ap = np.median(ap_coord[les_roi])
        behind = ap_coord > les_ap
        cand_level &= behind
    return _PectMaps(sm, log_sm, body, homog, cand_level, behind, les_roi, les_box, les_dist_near, grow, thr_dark,
                     sub_img)


def _pect_best_level(m: _PectMaps, vals: np.ndarray, fat_level: float, ori: Orientation, spacing_zyx: np.ndarray
                     ) -> tuple[list[float], tuple[float, float, np.ndarray] | None]:
    """Candidate muscle levels (log) and the best (sheet score, level, first muscle-like run), or None."""
    # the pectoralis is the FIRST non-fat layer behind the breast: ``vals`` is calibrated on the first such run
    # per A-P column, so every column counts once and a large homogeneous organ further back (heart,
    # mediastinum), which holds more voxels than the thin muscle when the box reaches it, cannot set the level.
    # Candidate muscle levels: the mode of the first non-fat layer (the pectoralis when the retromammary fat is
    # behind the parenchyma) and the main peaks of all homogeneous non-fat tissue behind the lesion (the
    # pectoralis when fibroglandular tissue of another intensity comes first). Each candidate is tried and
    # the one whose first muscle-like layer best matches the anatomical prior of a sheet wins (sheet score:
    # columns with a 2-25 mm run x fraction of neighbouring runs starting within 3 mm of each other).
    levels = [_peaks(vals, 1)[0]]
    for lv in _peaks(m.log_sm[m.cand_level], PECT_LEVEL_CANDIDATES):
        if all(abs(lv - q) > PECT_WINDOW for q in levels):
            levels.append(lv)
    best = None
    for lv in levels:
        if abs(lv - np.log(fat_level)) < PECT_MIN_LOG_CONTRAST:
            continue
        like_l = m.homog & (np.abs(m.log_sm - lv) < PECT_WINDOW)
        if m.behind is not None:  # the muscle lies behind the breast: never in front of the lesion's centre
            like_l &= m.behind
        # a thin muscle-like first layer still ends the search in its column (thin_blocks): where the
        # pectoralis tapers out it is thinner than 2 mm, and the next layer behind it is intercostal muscle
        run_l = _first_run(like_l, ori, spacing_zyx, thin_blocks=True)
        score = _sheet_score(_canon(run_l, ori), _canon_spacing(spacing_zyx, ori))
        if best is not None:  # the first-layer mode is the default; another level must be a clearly better sheet
            score /= PECT_LEVEL_SWITCH
        if best is None or score > best[0]:
            best = (score, lv, run_l)
    return levels, best


def _pect_grow(run: np.ndarray, m: _PectMaps, muscle_level: float, fat_level: float,
               spacing_zyx: np.ndarray) -> np.ndarray:
    """Drop small components of the muscle run, grow it into its partial-volume boundary, never the lesion."""
    # ---- drop small components
    lab, n = ndimage.label(run, structure=np.ones((3, 3, 3), bool))
    vox = float(np.prod(spacing_zyx))
    if n:
        sizes = np.bincount(lab.ravel())[1:] * vox
        keep = np.zeros(n + 1, bool)
        keep[1:] = sizes >= max(PECT_MIN_VOLUME_MM3, 0.1 * sizes.max())
        run = keep[lab]
    # grow the homogeneous core into its partial-volume boundary: voxels closer (log) to muscle than to fat
    mid = 0.5 * (np.log(muscle_level) + np.log(fat_level))
    closer = (m.log_sm > mid) if muscle_level > fat_level else (m.log_sm < mid)
    loose = m.body & closer & (np.abs(m.log_sm - np.log(muscle_level)) < 1.5 * PECT_WINDOW) & (m.sm > 2.0 * m.thr_dark)
    if m.les_roi is not None:
        loose &= ~m.grow
    steps = max(1, int(round(PECT_GROW_MM / float(min(spacing_zyx[1:])))))
    if run.any():
        run = ndimage.binary_dilation(run, structure=_INPLANE, iterations=steps, mask=loose | run)
    if m.les_roi is not None:
        run &= ~m.les_roi
    return run


def _canon(a: np.ndarray, ori: Orientation) -> np.ndarray:
    """View of an axial (z, y, x) array as (slice, A->P, L-R): A-P index increasing towards posterior."""
    c = np.swapaxes(a, 1, 2) if ori.ap_axis == 2 else a
    return c[:, ::-1, :] if ori.ap_sign < 0 else c


def _uncanon(c: np.ndarray, ori: Orientation) -> np.ndarray:
    if ori.ap_sign < 0:
        c = c[:, ::-1, :]
    return np.swapaxes(c, 1, 2) if ori.ap_axis == 2 else c


def _canon_spacing(spacing_zyx: np.ndarray, ori: Orientation) -> np.ndarray:
    return np.array([spacing_zyx[0], spacing_zyx[ori.ap_axis], spacing_zyx[ori.lr_axis]], float)


def _canon_slices(lo: list[int], hi: list[int], ori: Orientation, shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """A (z, y, x) box as canonical (slice, A-P, L-R) index ranges."""
    out = [(lo[0], hi[0]), (lo[ori.ap_axis], hi[ori.ap_axis]), (lo[ori.lr_axis], hi[ori.lr_axis])]
    if ori.ap_sign < 0:
        n = shape[ori.ap_axis]
        out[1] = (n - out[1][1], n - out[1][0])
    return out


def _first_run_canon(c: np.ndarray, sp_ap: float) -> np.ndarray:
    """Per canonical column, the first (most anterior) run of ``c`` at least PECT_MIN_THICKNESS_MM thick."""
    min_len = max(1, int(round(PECT_MIN_THICKNESS_MM / sp_ap)))
    if min_len > 1:
        c = _open_ap(c, min_len)
    has = c.any(axis=1)
    first = np.argmax(c, axis=1)
    after = np.arange(c.shape[1])[None, :, None] >= first[:, None, :]
    ended = np.logical_or.accumulate(after & ~c, axis=1)
    return after & ~ended & has[:, None, :]


def _mode(values: np.ndarray, bins: int = 64, log: bool = False) -> float:
    """Mode of a smoothed histogram (linear bins between the 1st and 99th percentiles, or log bins)."""
    v = np.log(np.maximum(values, 1e-3)) if log else values.astype(np.float64)
    lo, hi = np.percentile(v, [1, 99])
    if hi <= lo:
        m = float(np.median(v))
    else:
        hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
        hist = ndimage.gaussian_filter1d(hist.astype(float), 1.5)
        j = int(np.argmax(hist))
        m = float((edges[j] + edges[j + 1]) / 2)
    return float(np.exp(m)) if log else m


def _air_behind_skin(air_c: np.ndarray) -> float:
    """Fraction of "air" between each canonical column's first and last body voxel (enclosed along A-P).

    Trailing background (e.g. the zero-filled corners of a rotated field of view) does not count. Native
    images: a few %; a subtraction, where fat is as dark as the background: much more.
    """
    # counted per column, not voxel by voxel: between the first and last body voxel lie j_last - j_skin - 1
    # voxels, of which all but the column's other body voxels are air (integers: the same fraction)
    body = ~air_c
    nap = body.shape[1]
    n_body = np.count_nonzero(body, axis=1)
    has_body = n_body > 0
    j_skin = np.argmax(body, axis=1)[has_body]
    j_last = nap - 1 - np.argmax(body[:, ::-1, :], axis=1)[has_body]
    n_behind = int(np.maximum(j_last - j_skin - 1, 0).sum())
    n_air = int((j_last - j_skin + 1 - n_body[has_body]).sum())
    return float(n_air / max(n_behind, 1))


def _coarse_stage(arr: np.ndarray, air_arr: np.ndarray, les: np.ndarray | None, spacing_zyx: np.ndarray,
                  ori: Orientation) -> dict[str, Any]:
    """Whole-image calibration on ~2 mm in-plane blocks, canonical (slice, A->P, L-R) arrays.

    Returns the air / tissue threshold, the fat level (mode of the layer 2-5 mm under anterior-facing skin:
    the skin is the first body voxel of each A-P column behind anterior air, facing anterior where its
    depth changes by at most 1 mm per mm along L-R) and whether the image looks like a subtraction (signed
    values, or "air" spread behind the skin: fat as dark as the background).
    """
    sp_c = _canon_spacing(spacing_zyx, ori)
    fb = [1, max(1, int(round(PECT_COARSE_MM / sp_c[1]))), max(1, int(round(PECT_COARSE_MM / sp_c[2])))]
    # every fb-th voxel in-plane (a strided view: this stage only calibrates and checks, so no block mean)
    img = _canon(arr, ori)[:, ::fb[1], ::fb[2]]  # not copied: only a subsample and the band are read (as float32)
    air_c = _canon(air_arr, ori)[:, ::fb[1], ::fb[2]] != 0
    spc = sp_c * np.array(fb)
    nk, nap, nlr = img.shape
    thr = _dark_threshold_of_sample(np.asarray(_sample(img), np.float32))
    body = ~air_c
    out: dict[str, Any] = {"threshold": thr, "shape": img.shape, "block": fb, "fat_level": None, "subtraction": False,
                           "muscle_level": None, "calibration_conf": 0.0, "info": {}}
    # ---- skin per column (first body voxel behind anterior air) and the 2-5 mm subcutaneous layer
    has_body = body.any(axis=1)
    j_skin = np.argmax(body, axis=1)
    col_ok = air_c[:, 0, :] & has_body
    slope = np.abs(np.gradient(j_skin.astype(float) * spc[1], spc[2], axis=1)) if nlr > 1 else np.zeros_like(j_skin, float)
    facing = col_ok & (slope <= 1.0)
    v = float(max(sp_c[1:]))
    g = float(max(spc[1:]))
    lo_d, hi_d = max(SUBCUT_DEPTH_MM[0] + v, 1.01 * g), SUBCUT_DEPTH_MM[1] + v + g
    band = _depth_band(facing, j_skin, body, np.float32(spc[1]), lo_d, hi_d)
    band_mm3 = float(band.sum() * np.prod(spc))
    out["info"]["subcutaneous_mm3"] = round(band_mm3, 1)
    # ---- subtraction-like image: signed values, or air spread behind the skin (fat as dark as the background)
    sub = tuple(slice(0, None, max(1, n // 48)) for n in arr.shape)
    neg = float(np.mean(arr[sub] < 0))
    inside_air = _air_behind_skin(air_c)
    out["info"].update(negative_fraction=round(neg, 4), air_behind_skin=round(inside_air, 3))
    if neg > SUBTRACTION_MIN_NEGATIVE or inside_air > SUBTRACTION_MIN_AIR_BEHIND_SKIN:
        out["subtraction"] = True
    if band_mm3 < SUBCUT_MIN_MM3:
        return out
    fat = _mode(np.asarray(img[band], np.float32))
    if out["subtraction"] or fat <= 0:
        out["fat_level"] = max(fat, 1e-3)
        out["subtraction"] = True
        return out
    out["fat_level"] = fat
    out["calibration_conf"] = float(np.clip(band_mm3 / (2 * SUBCUT_MIN_MM3), 0, 1))
    return out


def _depth_band(facing: np.ndarray, j_skin: np.ndarray, body: np.ndarray, step: np.float32, lo: float,
                hi: float) -> np.ndarray:
    """Body voxels of the facing columns whose depth under the skin (float32 (j - j_skin) x step) is in (lo, hi].

    Same as comparing a full float32 depth array, but written column by column for the few depths that qualify
    (the depth only depends on the integer j - j_skin).
    """
    nap = body.shape[1]
    ks = np.arange(-nap, nap)
    d = ks.astype(np.float32) * step
    ok = ks[(d > lo) & (d <= hi)]   # step > 0: the depth grows with k
    band = np.zeros(body.shape, bool)
    if ok.size == 0:
        return band
    kk, ll = np.nonzero(facing)
    j0 = j_skin[kk, ll]
    for k in ok:
        j = j0 + k
        inside = (j >= 0) & (j < nap)
        ki, ji, li = kk[inside], j[inside], ll[inside]
        band[ki, ji, li] = body[ki, ji, li]
    return band


def _pectoralis_parts(run_c: np.ndarray, les_roi: np.ndarray | None, ori: Orientation, sp_c: np.ndarray,
                      reach_mm: float) -> dict[str, float]:
    """Confidence components (0-1) of a pectoralis mask (canonical run array), near the lesion where it matters.

    Computed when the mask comes within ``reach_mm`` + 10 mm of the lesion (else the muscle is too far to
    matter and the components are 1): ``coverage``, the fraction of the columns within ``reach_mm`` + 5 mm of
    the lesion's columns that hold a muscle run; ``continuity``, the fraction of neighbouring columns whose
    runs start within 3 mm; ``thickness``, the fraction of runs 2-25 mm thick; ``behind_lesion``, the
    fraction of mask voxels within 15 mm of the lesion that lie behind its posterior edge (less 3 mm): a
    layer beside or in front of the lesion is parenchyma, not muscle; ``span``, the fraction of the analysed
    box's L-R extent the mask covers on the lesion's slices, over PECT_MIN_SPAN (a sheet spans the box).
    """
    nk, nap, nlr = run_c.shape
    parts: dict[str, float] = {}
    has = run_c.any(axis=1)
    if les_roi is None:
        cols = np.ones((nk, nlr), bool)
    else:
        lc = _canon(les_roi, ori)
        if run_c.any():
            # distances only matter up to reach + 10 mm and 15 mm: computed on the lesion's box + that margin
            box, d = _near_lesion_distance(lc, sp_c, max(reach_mm + 10.0, 15.0))
            run_b = run_c[box]
            if not (run_b & (d <= reach_mm + 10.0)).any():
                return {"coverage": 1.0}
            # the muscle lies behind the whole lesion: mask voxels within 15 mm of the lesion at or in front of
            # the lesion's posterior edge (less PECT_BEHIND_TOL_MM) are parenchyma taken for muscle
            ap_back = np.nonzero(lc)[1].max() - PECT_BEHIND_TOL_MM / sp_c[1]
            close = run_b & (d <= 15.0)
            frac = float((np.nonzero(close)[1] + box[1].start >= ap_back).mean()) if close.any() else 1.0
            parts["behind_lesion"] = float(np.clip((frac - PECT_BEHIND_FRACTION[0]) / np.diff(PECT_BEHIND_FRACTION)[0], 0, 1))
        else:
            return {"coverage": 1.0}
        cols = ndimage.binary_dilation(lc.any(axis=1), iterations=max(1, int(round((reach_mm + 5.0) / sp_c[2]))))
        # the pectoralis is a sheet across the chest wall: on the lesion's slices it spans the analysed box from
        # side to side, a patch of parenchyma does not
        ks = np.nonzero(lc.any(axis=(1, 2)))[0]
        span = float(has[ks].any(axis=0).mean()) if ks.size else 1.0
        parts["span"] = float(np.clip(span / PECT_MIN_SPAN, 0, 1))
    parts["coverage"] = float(has[cols].mean()) if cols.any() else 0.0
    first = np.argmax(run_c, axis=1).astype(float)
    thick = run_c.sum(axis=1) * sp_c[1]
    m = has & cols
    if m.sum() >= 5:
        d1 = np.abs(np.diff(first, axis=1))[m[:, 1:] & m[:, :-1]] * sp_c[1]
        parts["continuity"] = float(np.mean(d1 <= 3.0)) if d1.size else 1.0
        frac = float(np.mean((thick[m] >= PECT_MIN_THICKNESS_MM) & (thick[m] <= PECT_MAX_THICKNESS_MM)))
        parts["thickness"] = float(np.clip((frac - PECT_THICK_FRACTION[0]) / np.diff(PECT_THICK_FRACTION)[0], 0, 1))
    return parts


def confidence_record(ex: Exclusion) -> dict[str, Any]:
    """The ``regions.json`` record of an automatic exclusion: confidence, review flag, components, contrast.

    ``{"confidence": 0-1, "review": bool, "review_below": REVIEW_BELOW, "confidence_parts": {...},
    "contrast": "fat-suppressed" | "non-fat-suppressed" | "subtraction" | "unknown"}`` (contrast: what the
    detector assumed, from the measured muscle / fat levels; see docs/exclusions.md "Confidence").
    """
    info = ex.info
    rec: dict[str, Any] = {"confidence": float(info.get("confidence", 0.0)), "review": bool(info.get("review", True)),
                           "review_below": REVIEW_BELOW,
                           "confidence_parts": {k: float(v) for k, v in info.get("confidence_parts", {}).items()}}
    if "contrast" in info:
        rec["contrast"] = str(info["contrast"])
    return rec


def _with_confidence(ex: Exclusion, parts: dict[str, float]) -> Exclusion:
    """Attach ``confidence`` (the weakest component, 0-1), its components and the review flag to ``ex.info``."""
    parts = {k: round(float(np.clip(v, 0, 1)), 3) for k, v in parts.items()}
    conf = min(parts.values()) if parts else 0.0
    ex.info["confidence"] = round(conf, 3)
    ex.info["confidence_parts"] = parts
    ex.info["review"] = bool(conf < REVIEW_BELOW)
    return ex


def _peaks(values: np.ndarray, n: int, bins: int = 64) -> list[float]:
    """The ``n`` highest local maxima of a smoothed histogram of ``values`` (bin centres), highest first."""
    if values.size == 0:
        return []
    hist, edges = np.histogram(values, bins=bins)
    hist = ndimage.gaussian_filter1d(hist.astype(float), 1.5)
    centres = (edges[:-1] + edges[1:]) / 2
    pad = np.concatenate([[-1.0], hist, [-1.0]])
    is_max = (pad[1:-1] >= pad[:-2]) & (pad[1:-1] > pad[2:]) & (hist >= 0.05 * hist.max())
    idx = np.nonzero(is_max)[0]
    idx = idx[np.argsort(-hist[idx])][:n]
    return [float(centres[i]) for i in idx] or [float(centres[int(np.argmax(hist))])]


def _sheet_score(run_c: np.ndarray, sp_c: np.ndarray) -> float:
    """How much a first-layer mask (canonical) looks like one muscle sheet: area (mm2) of the columns holding a
    run 2-25 mm thick x the fraction of neighbouring such columns whose runs start within 3 mm."""
    thick = run_c.sum(axis=1) * sp_c[1]
    ok = (thick >= PECT_MIN_THICKNESS_MM) & (thick <= PECT_MAX_THICKNESS_MM)
    if ok.sum() < 5:
        return 0.0
    first = np.argmax(run_c, axis=1).astype(float) * sp_c[1]
    num = den = 0
    for axis in (0, 1):
        pair = np.diff(ok.astype(np.int8), axis=axis) == 0
        both = pair & np.take(ok, np.arange(1, ok.shape[axis]), axis=axis)
        d = np.abs(np.diff(first, axis=axis))[both]
        num += int((d <= 3.0).sum())
        den += int(d.size)
    smooth = num / den if den else 0.0
    return float(ok.sum() * sp_c[0] * sp_c[2] * smooth)


def _local_cv(raw: np.ndarray, spacing_zyx: np.ndarray, sigma_mm: float) -> np.ndarray:
    """Local coefficient of variation (std / mean) in a Gaussian window of ``sigma_mm`` (slices thicker than
    2 sigma are not mixed)."""
    sig_vox = [sigma_mm / sp for sp in spacing_zyx]
    sig_vox[0] = sig_vox[0] if spacing_zyx[0] <= 2 * sigma_mm else 0.0
    mean = ndimage.gaussian_filter(raw, sig_vox, mode="nearest", truncate=2.5)
    sq = ndimage.gaussian_filter(raw * raw, sig_vox, mode="nearest", truncate=2.5)
    return np.sqrt(np.clip(sq - mean * mean, 0, None)) / np.maximum(mean, 1e-3)


def _first_run(mask: np.ndarray, ori: Orientation, spacing_zyx: np.ndarray, thin_blocks: bool = False) -> np.ndarray:
    """Per (slice, L-R) column, the first run (anterior -> posterior) of ``mask`` at least
    ``PECT_MIN_THICKNESS_MM`` thick along A-P. Thinner runs are opened away first, or, with
    ``thin_blocks``, a thinner first run is the column's first run and is then dropped (nothing behind it
    is taken)."""
    c = _to_canonical_inplane(mask, ori)
    flip = ori.ap_sign < 0
    if flip:
        c = c[:, ::-1, :]
    min_len = max(1, int(round(PECT_MIN_THICKNESS_MM / spacing_zyx[ori.ap_axis])))
    thick = c
    if min_len > 1:
        thick = _open_ap(c, min_len)
        if not thin_blocks:
            c = thick
    has = c.any(axis=1)
    first = np.argmax(c, axis=1)
    ap_idx = np.arange(c.shape[1])[None, :, None]
    after = ap_idx >= first[:, None, :]
    ended = np.logical_or.accumulate(after & ~c, axis=1)
    run = after & ~ended & has[:, None, :]
    if thin_blocks:
        run &= thick
    if flip:
        run = run[:, ::-1, :]
    return _from_canonical_inplane(run, ori)


def _open_ap(c: np.ndarray, n: int) -> np.ndarray:
    """Binary opening along axis 1 by a line of ``n`` voxels: the voxels of runs at least ``n`` long.

    Identical to ``ndimage.binary_opening(c, structure=np.ones((1, n, 1)))`` (outside the array is background;
    checked on random masks) at a fraction of its cost: n - 1 shifted ANDs (erosion), n ORs (dilation back).
    """
    na = c.shape[1]
    out = np.zeros(c.shape, bool)
    if n > na:
        return out
    w = na - n + 1
    e = c[:, :w, :].copy()
    for k in range(1, n):
        e &= c[:, k:k + w, :]
    for k in range(n):
        out[:, k:k + w, :] |= e
    return out


def _ap_coordinate(shape: tuple[int, ...], ori: Orientation) -> np.ndarray:
    """Index along the A-P array axis, increasing towards posterior, broadcastable to ``shape``."""
    n = shape[ori.ap_axis]
    v = np.arange(n) if ori.ap_sign > 0 else np.arange(n)[::-1]
    sh = [1, 1, 1]
    sh[ori.ap_axis] = n
    return np.broadcast_to(v.reshape(sh), shape)


def _subcutaneous_level(arr: np.ndarray, air: np.ndarray, spacing_zyx: np.ndarray, ori: Orientation,
                        dark_thr: float | None = None) -> float | None:
    """Modal intensity 2-5 mm under the anterior skin (subcutaneous fat), on a ~1.5 mm grid for speed.

    Only skin facing anterior air counts (the breasts and chest in a prone acquisition), found per A-P
    column: body voxels with air 2-5 mm (+ one grid step) anterior to them in the same column. ``air``: a
    bool or integer mask, non-zero = air (as are all ``air_arr`` arguments of the pectoralis stages).
    """
    if not air.any() or air.all():
        return None
    step = [max(1, int(round(SUBCUT_GRID_MM / sp))) for sp in spacing_zyx]
    step[0] = max(1, int(round(SUBCUT_SLICE_MM / spacing_zyx[0])))  # thin slices: every n-th (speed)
    sl = tuple(slice(0, None, s) for s in step)
    a, body = arr[sl], air[sl] == 0
    sp = spacing_zyx * np.array(step)
    d = np.stack([ndimage.distance_transform_edt(b, sampling=sp[1:]) for b in body])  # per axial slice
    n_ap = max(1, int(np.ceil((SUBCUT_DEPTH_MM[1] + sp[ori.ap_axis]) / sp[ori.ap_axis])))
    air_s = ~body
    ap_depth = np.full(body.shape, np.inf, np.float32)  # distance (mm) to the first air anterior in the column
    for k in range(n_ap, 0, -1):  # is there air k steps anterior of the voxel? (nearest k written last)
        src = [slice(None)] * 3
        dst = [slice(None)] * 3
        if ori.ap_sign > 0:  # anterior = lower index
            src[ori.ap_axis], dst[ori.ap_axis] = slice(0, -k), slice(k, None)
        else:
            src[ori.ap_axis], dst[ori.ap_axis] = slice(k, None), slice(0, -k)
        ap_depth[tuple(dst)][air_s[tuple(src)]] = k * sp[ori.ap_axis]
    # skin that faces anterior: the A-P depth is at most sqrt(2) x the (in-plane) depth under the skin (+ one
    # grid step), i.e. the surface normal is within ~45 degrees of anterior. On the steep lateral sides of the
    # breast the in-plane distance runs through a tangentially cut, thicker-looking skin.
    anterior_air = ap_depth <= np.sqrt(2.0) * d + sp[ori.ap_axis]
    # 2-5 mm under the skin surface, shifted by one image voxel: the detected air can end one voxel short of
    # the skin (the boundary voxel's 3 x 3 mean includes bright skin), and depths are measured from it;
    # widened by one grid step so every column keeps at least one sample; the skin itself stays out
    g = float(max(sp[1:]))
    v = float(max(spacing_zyx[1:]))
    lo = max(SUBCUT_DEPTH_MM[0] + v, 1.01 * g)
    hi = SUBCUT_DEPTH_MM[1] + v + g
    band = body & anterior_air & (d > lo) & (d <= hi)
    if dark_thr is not None:
        # background the air mask missed (zero-filled corners of a rotated field of view, motion ghosts) is not fat
        band &= a > dark_thr
    # enough skin surface to be a body outline, not a dark corner of a crop (volume of the 2-5 mm layer)
    if band.sum() * float(np.prod(sp)) < SUBCUT_MIN_MM3:
        return None
    # the mode (not the median) of the intensity: the dominant tissue under the skin is fat, and a minority
    # of skin, glandular tissue or muscle in the band does not shift it (on a thin chest wall the muscle
    # starts ~4 mm under the skin; with the median a 3 mm grid gave 146 for a fat of 70 there). Linear, not
    # log, bins: in log space the narrow peak of bright skin (the detected air may end one voxel outside
    # it) out-counts the broader fat peak.
    v = a[band].astype(np.float64)
    hist, edges = np.histogram(v, bins=64, range=tuple(np.percentile(v, [1, 99])))
    hist = ndimage.gaussian_filter1d(hist.astype(float), 1.5)
    j = int(np.argmax(hist))
    return float((edges[j] + edges[j + 1]) / 2)


def _pectoralis_on_blocks(image: sitk.Image, reach_mm: float, air: sitk.Image | None) -> Exclusion:
    """Whole-image pectoralis (no lesion) on ~2 mm in-plane blocks, expanded back (nearest) to the grid."""
    spacing = np.array(image.GetSpacing(), float)
    f = [1, max(1, int(round(AIR_BLOCK_MM / spacing[1]))), max(1, int(round(AIR_BLOCK_MM / spacing[0])))]
    arr = sitk.GetArrayViewFromImage(image)
    small = sitk.GetImageFromArray(_block_mean(arr, f))
    small.SetSpacing((float(spacing[0] * f[2]), float(spacing[1] * f[1]), float(spacing[2])))
    small.SetOrigin(image.TransformContinuousIndexToPhysicalPoint(((f[2] - 1) / 2, (f[1] - 1) / 2, 0.0)))
    small.SetDirection(image.GetDirection())
    # air from the full-resolution noise statistics (block means would hide the background's Rayleigh noise)
    if air is not None:
        check_same_grid(air, image, what="air mask")
        air_full = sitk.GetArrayViewFromImage(air) != 0
    else:
        air_full = _coarse_air(image, None)
    air_small = sitk.GetImageFromArray((~_block_any(~air_full, f)).view(np.uint8))  # air where the block is all air
    air_small.CopyInformation(small)
    res = _pectoralis_core(small, None, reach_mm, air_small)
    full = _upsample(sitk.GetArrayViewFromImage(res.mask) != 0, f, arr.shape) & ~air_full
    notes = res.notes + [f"whole image without a lesion: pectoralis detected on a {f[2] * spacing[0]:.2g} x "
                         f"{f[1] * spacing[1]:.2g} mm in-plane grid"]
    return Exclusion(image_from_array(np.ascontiguousarray(full).astype(np.uint8), image), notes, dict(res.info, block=f))


def _coarse_air(image: sitk.Image, les: np.ndarray | None) -> np.ndarray:
    """detect_air on a ~2 mm grid (every n-th voxel), expanded back to the full grid (nearest)."""
    spacing = np.array(image.GetSpacing(), float)
    step = [max(1, int(round(2.0 / sp))) for sp in spacing]  # x y z
    if step == [1, 1, 1] or int(np.prod(image.GetSize())) <= 4_000_000:
        full = sitk.GetArrayFromImage(detect_air(image).mask) != 0
        return full & ~les if les is not None else full
    arr = sitk.GetArrayViewFromImage(image)
    sl = tuple(slice(0, None, st) for st in reversed(step))
    small = sitk.GetImageFromArray(np.ascontiguousarray(arr[sl]))
    small.SetSpacing(tuple(float(v) for v in spacing * step))
    small.SetOrigin(image.GetOrigin())
    small.SetDirection(image.GetDirection())
    air_s = sitk.GetArrayFromImage(detect_air(small).mask) != 0  # a copy: a view would outlive its temporary image
    full = air_s
    for axis, st in enumerate(reversed(step)):
        full = np.repeat(full, st, axis=axis)
    full = full[: arr.shape[0], : arr.shape[1], : arr.shape[2]]
    if les is not None:
        full = full & ~les
    return full


def _block_mean(arr: np.ndarray, f: list[int]) -> np.ndarray:
    """Mean over f[1] x f[2] in-plane blocks (edge-padded to a multiple of the block)."""
    if f[1] == 1 and f[2] == 1:
        return np.asarray(arr, np.float32)
    if arr.dtype.kind in "iu" and arr.dtype.itemsize <= 2 and f[1] * f[2] <= 256:
        return _block_mean_int(arr, f)
    a = arr
    nz, ny, nx = a.shape
    py, px = (-ny) % f[1], (-nx) % f[2]
    if py or px:
        a = np.pad(a, ((0, 0), (0, py), (0, px)), mode="edge")
    out = np.zeros((nz, a.shape[1] // f[1], a.shape[2] // f[2]), np.float32)
    for dj in range(f[1]):
        for di in range(f[2]):
            out += a[:, dj::f[1], di::f[2]]
    out *= np.float32(1.0 / (f[1] * f[2]))
    return out


def _block_mean_int(arr: np.ndarray, f: list[int]) -> np.ndarray:
    """:func:`_block_mean` of a (u)int8/16 array, bit-identical and ~2x faster: separable int32 block sums.

    The float32 sum of at most 256 values below 2**16 is an integer below 2**24, i.e. exact in any order, so the
    int32 sum converted to float32 equals the float32 running sum; the edge padding is the last row / column
    added again for the missing members of the last block.
    """
    nz, ny, nx = arr.shape
    cy, cx = -(-ny // f[1]), -(-nx // f[2])
    rows = np.zeros((nz, ny, cx), np.int32)
    for di in range(f[2]):
        src = arr[:, :, di::f[2]]
        rows[:, :, : src.shape[2]] += src
        if src.shape[2] < cx:
            rows[:, :, src.shape[2]:] += arr[:, :, -1:]
    total = np.zeros((nz, cy, cx), np.int32)
    for dj in range(f[1]):
        src = rows[:, dj::f[1], :]
        total[:, : src.shape[1], :] += src
        if src.shape[1] < cy:
            total[:, src.shape[1]:, :] += rows[:, -1:, :]
    out = total.astype(np.float32)
    out *= np.float32(1.0 / (f[1] * f[2]))
    return out


def _block_any(mask: np.ndarray, f: list[int]) -> np.ndarray:
    nz, ny, nx = mask.shape
    py, px = (-ny) % f[1], (-nx) % f[2]
    m = np.pad(mask, ((0, 0), (0, py), (0, px))) if (py or px) else mask
    out = np.zeros((nz, m.shape[1] // f[1], m.shape[2] // f[2]), bool)
    for dj in range(f[1]):
        for di in range(f[2]):
            out |= m[:, dj::f[1], di::f[2]]
    return out


def _upsample(mask: np.ndarray, f: list[int], shape: tuple[int, ...]) -> np.ndarray:
    """Nearest expansion of a block-grid mask by f[1] x f[2] in-plane, cut to ``shape`` (a C-contiguous array).

    Rows are repeated once along x, then written into every f[1]-th row of the output: one pass over the full
    grid (a broadcast-reshape copy and a contiguous copy of the cut cost 8x more on 448 x 448 x 160).
    """
    nz = mask.shape[0]
    ny, nx = shape[1], shape[2]
    rows = np.repeat(mask, f[2], axis=2)[:, :, :nx] if f[2] > 1 else mask[:, :, :nx]
    out = np.empty((nz, ny, nx), mask.dtype)
    for dj in range(f[1]):
        dst = out[:, dj::f[1], :]
        dst[...] = rows[:, : dst.shape[1], :]
    return out


def _refine_box(les: np.ndarray | None, spacing_zyx: np.ndarray) -> tuple[slice, ...] | None:
    """The lesion's box + AIR_REFINE_MARGIN_MM (z, y, x), where the air boundary is refined per voxel."""
    if les is None:
        return None
    e_lo, e_hi = _extent(les)
    m = AIR_REFINE_MARGIN_MM / spacing_zyx
    return tuple(slice(max(0, int(a - mm)), min(n, int(b + mm) + 1))
                 for a, b, mm, n in zip(e_lo, e_hi, m, les.shape, strict=True))


def _refine_upsampled(air_c: np.ndarray, f: list[int], arr: np.ndarray, thr: float,
                      box: tuple[slice, ...] | None = None) -> np.ndarray:
    """Full-resolution air from the block-grid air: interior blocks as they are, boundary blocks per voxel.

    A voxel of a block on the air/body boundary (in-plane) is air when its 3x3 in-plane median is below the
    threshold; blocks away from the boundary keep their coarse label. With ``box`` (full-resolution slices)
    only boundary blocks inside it are refined (speed: the shells only reach the lesion's neighbourhood),
    the others keep the block boundary.
    """
    edge = np.zeros_like(air_c)
    dy = air_c[:, 1:, :] != air_c[:, :-1, :]
    edge[:, 1:, :] |= dy
    edge[:, :-1, :] |= dy
    dx = air_c[:, :, 1:] != air_c[:, :, :-1]
    edge[:, :, 1:] |= dx
    edge[:, :, :-1] |= dx
    if box is not None:
        keep_edge = np.zeros_like(edge)
        cb = (box[0], slice(box[1].start // f[1], -(-box[1].stop // f[1])), slice(box[2].start // f[2], -(-box[2].stop // f[2])))
        keep_edge[cb] = edge[cb]
        air = np.ascontiguousarray(_upsample(air_c & ~keep_edge, f, arr.shape))
        edge = keep_edge
    else:
        air = np.ascontiguousarray(_upsample(air_c & ~edge, f, arr.shape))
    ck, cj, ci = np.nonzero(edge)
    if ck.size:
        ny, nx = arr.shape[1:]
        oj, oi = np.meshgrid(np.arange(f[1]), np.arange(f[2]), indexing="ij")
        kk = np.repeat(ck, f[1] * f[2])
        jj = (cj[:, None] * f[1] + oj.ravel()[None, :]).ravel()
        ii = (ci[:, None] * f[2] + oi.ravel()[None, :]).ravel()
        inside = (jj < ny) & (ii < nx)
        kk, jj, ii = kk[inside], jj[inside], ii[inside]
        nb = np.empty((9, kk.size), np.float32)
        n = 0
        for dj in (-1, 0, 1):
            j2 = np.clip(jj + dj, 0, ny - 1)
            for di in (-1, 0, 1):
                nb[n] = arr[kk, j2, np.clip(ii + di, 0, nx - 1)]
                n += 1
        # the 3 x 3 median, not the mean: edge-preserving, so an air voxel touching bright skin stays air
        # (with the mean, 3 skin voxels of 220 lifted it over the threshold: air ended one voxel short)
        air[kk, jj, ii] = np.median(nb, axis=0) < thr
    return air


# ---------------------------------------------------------------------------------------------- evaluation
def evaluation_region(lesion: sitk.Image, shell_mm: float = 5.0, margin_mm: float = 10.0) -> np.ndarray:
    """Voxels (z, y, x) whose Euclidean distance (mm, physical spacing) to the lesion is <= shell + margin.

    The region where an exclusion matters: the largest shell (5 mm) plus 10 mm. Lesion voxels are
    included (distance 0); used for the Dice figures of docs/exclusions.md.
    """
    les = sitk.GetArrayViewFromImage(lesion) != 0
    out = np.zeros(les.shape, bool)
    if not les.any():
        return out
    sp = np.array(lesion.GetSpacing()[::-1], float)
    reach = shell_mm + margin_mm
    idx = np.nonzero(les)
    box = tuple(slice(max(0, int(i.min() - np.ceil(reach / s)) - 1), min(n, int(i.max() + np.ceil(reach / s)) + 2))
                for i, s, n in zip(idx, sp, les.shape, strict=True))
    sub = les[box]
    out[box] = ndimage.distance_transform_edt(~sub, sampling=sp) <= reach
    return out


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice similarity 2|A & B| / (|A| + |B|) (Dice 1945); 1.0 when both are empty."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total
