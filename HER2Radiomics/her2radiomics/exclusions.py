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

Pectoralis major (chest wall first, as a reader finds it)
    Assumes a (near-)axial acquisition; anterior/posterior is taken from the direction matrix. Columns
    are physical A-P lines (slice, L-R); the analysed box is the lesion + reach + 20 mm in S-I / L-R and
    from 10 mm in front of the lesion to the posterior face, on ~2 mm L-R blocks (full resolution along
    A-P). 1. fat level: mode of the layer 2-5 mm under anterior-facing skin; lung threshold between the
    background noise and fat. 2. chest wall: per column, the lung is the dark run reaching the posterior
    end of the box (or, over the heart, the most posterior long dark run); its anterior end is the
    chest wall - the dark suppressed fat of the breast lies in front of it and is never reached. 3.
    muscle level: mode of the non-fat tissue 1-14 mm in front of the lung (intercostal muscles,
    pectoralis minor / major), on the side of fat that holds more of it (brighter: fat-suppressed;
    darker: not). 4. walking anteriorly from the lung, muscle-like runs are chained through the thin fat
    planes (<= 5 mm) and one rib gap (<= 14 mm) near the lung; the pectoralis major is the last run
    before the retromammary fat (a wider gap) or the lesion. 5. continuity and the 1.5-22 mm thickness
    prior: outlying columns take their neighbourhood's median. 6. full resolution within one voxel of the
    layer, voxels closer to muscle than to fat. Subtraction images (signed values, clipped zeros, or
    fat as dark as the background): fat, lungs and background are all ~0, and the chest-wall muscles are
    the first tissue in front of them (boundary halfway in intensity). Parenchyma is anterior to the
    retromammary fat and is never reached from the chest wall.

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

#: changes whenever a detector's output can change (batch caches key on it)
DETECTOR_VERSION = "2026.12-chest-wall-1"
#: parameters (mm unless stated); documented in docs/exclusions.md
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
PECT_SMOOTH_AP_MM = 0.35  # along A-P (the fat plane behind the pectoralis is 1.5-3 mm thick)
PECT_WINDOW = 0.3  # +-log window around the muscle level
PECT_MIN_LOG_CONTRAST = 0.2  # |log(muscle / fat)| below this: no usable muscle-fat contrast
PECT_MIN_THICKNESS_MM = 2.0
PECT_ROI_MARGIN_MM = 20.0
PECT_WHOLE_IMAGE_BLOCK_VOXELS = 4_000_000  # larger images without a lesion: work on ~2 mm blocks
PECT_COARSE_MM = 2.0  # in-plane block size of the whole-image anatomy stage
PECT_BEHIND_TOL_MM = 3.0  # confidence: the muscle near the lesion lies behind its posterior edge (less this)
#: confidence ramps (fraction -> 0 at the first value, 1 at the second): set on the issue-11 quick sweep
PECT_BEHIND_FRACTION = (0.7, 0.9)  # mask near the lesion lying behind it
PECT_THICK_FRACTION = (0.7, 1.0)  # runs within the 2-25 mm thickness prior
PECT_MIN_SPAN = 0.6  # confidence 1 when the mask spans this fraction of the box's L-R extent on the lesion's slices
PECT_MAX_THICKNESS_MM = 25.0  # thickness prior: no pectoralis run is thicker along A-P
#: chest-wall-first pectoralis (docs/exclusions.md "Pectoralis major")
PECT_ROI_ANTERIOR_MM = 10.0  # analysed box: from this far in front of the lesion to the posterior face
PECT_LESION_GUARD_MM = 1.0  # lesion + this is never muscle nor lung
PECT_LUNG_RUN_MM = 10.0  # the dark run reaching the posterior end of the box is lung when this long
PECT_LUNG_GAP_MM = 2.0  # non-dark gaps (vessels, noise) up to this inside the lung
PECT_FRONT_FILL_MM = 20.0  # a column without lung takes the nearest lung column's front within this (L-R)
PECT_CALIB_AWAY = 0.5  # ... of the tissue at least this (log) away from fat (bone marrow, partial volume)
PECT_CALIB_DEPTH_MM = 14.0  # muscle level from the tissue this far in front of the lung (chest-wall muscles)
PECT_RIB_GAP_MM = 17.0  # lung -> first muscle run: at most this (fat, rib cortex and marrow)
PECT_RIB_ZONE_MM = 6.0  # ... and it starts at most this far in front of the lung (pleura, soft tissue)
PECT_RIB_ZONE_WIDE_MM = 45.0  # ... or this far, when that reads as a better sheet (soft tissue before the ribs)
PECT_WIDE_SWITCH = 1.15
PECT_SHEET_WINDOW_MM = 15.0  # sheet-quality neighbourhood (slices x L-R)
PECT_PLANE_GAP_MM = 5.0  # between chest-wall muscle runs (fat planes); a wider gap is the retromammary fat
PECT_BEYOND = 0.5  # muscle-like: at most this (log) beyond the muscle level, away from fat
PECT_DIP = 0.3  # a merged run is split at a dip this fraction (log) of the way from muscle to fat
PECT_MIN_RUN_MM = 1.2  # muscle-like runs thinner than this are noise
PECT_MAX_DEPTH_MM = 70.0  # the pectoralis major starts at most this far in front of the lung
PECT_THICKNESS_MM = (1.5, 22.0)  # thickness prior of the pectoralis major along A-P
PECT_CONT_LR_MM = 10.0  # continuity neighbourhood: 3 slices x this along L-R
PECT_STEP_MM = 4.0  # a column's layer boundary this far from its neighbourhood's median is an outlier
PECT_TEXTURE_MM = 1.5  # legacy first-layer detector (fallback)
PECT_TEXTURE_FINE_MM = 0.75
PECT_GROW_MM = 2.5
PECT_MAX_CV = 0.2
PECT_MIN_VOLUME_MM3 = 300.0
PECT_LEVEL_CANDIDATES = 3
PECT_LEVEL_SWITCH = 1.5
SUBTRACTION_MIN_ZERO = 0.05  # more exact zeros than this: a subtraction clipped at 0
SUBTRACTION_MIN_NEGATIVE = 0.01  # more negative voxels than this: a (signed) subtraction image
SUBTRACTION_MIN_AIR_BEHIND_SKIN = 0.25  # more "air" than this behind the skin: fat as dark as background
#: confidence (0-1) below this: the mask is flagged "review" (regions.json, panel, QC overlay)
REVIEW_BELOW = 0.5
#: chest-wall pectoralis less confident than this: the first-layer detector is tried (and used when it is sure
#: and at least 0.2 more confident)
PECT_FALLBACK_BELOW = 0.8
PECT_SUBTRACTION_CONFIDENCE = 0.45  # a subtraction image's pectoralis is always 'review'
SUBCUT_DEPTH_MM = (2.0, 5.0)
SUBCUT_SLICE_MM = 9.6  # slices of the calibration at most this far apart
SUBCUT_GRID_MM = 1.5  # in-plane grid of the subcutaneous-fat calibration
SUBCUT_DEEP_MM = (5.0, 8.0)  # second in-plane layer for the fat level (thickened skin)
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
    """Per-axis first and last index of a non-empty mask (from any() projections: cheaper than nonzero)."""
    lo, hi = [], []
    for ax in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != ax)
        w = np.nonzero(mask.any(axis=other))[0]
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
    step = max(1, arr.size // n)
    return arr.reshape(-1)[::step]


def dark_threshold(smoothed: np.ndarray) -> float:
    """Air / tissue threshold: Otsu on log(1 + intensity) of a subsample (robust to shading)."""
    v = _sample(smoothed)
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
def _air_candidates(arr: np.ndarray, les: np.ndarray | None, spacing_zyx: np.ndarray, ori: Orientation
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int], float]:
    """Dark voxels reached from the anterior / lateral faces: ``(air, air on the blocks, block means, block
    factors, threshold)``, the lesion never air."""
    # work on ~1.5 mm in-plane blocks (block mean = first smoothing), refine the boundary at full resolution
    f = [1, max(1, int(round(AIR_BLOCK_MM / spacing_zyx[1]))), max(1, int(round(AIR_BLOCK_MM / spacing_zyx[2])))]
    coarse = _block_mean(arr, f)
    sm = _smooth_array(coarse, spacing_zyx * f, AIR_SMOOTH_MM)
    thr = dark_threshold(sm)
    dark = sm < thr
    les_c = None
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
    air_blocks = air
    if f != [1, 1, 1]:
        air = _refine_upsampled(air, f, arr, thr, _refine_box(les, spacing_zyx))
    if les is not None:
        air &= ~les
    return air, air_blocks, coarse, f, thr


def _air_noise(arr: np.ndarray, air: np.ndarray, coarse: np.ndarray, f: list[int], info: dict[str, Any]
               ) -> tuple[dict[str, float], float, float, float, float, float]:
    """Background noise statistics of the candidate air (into ``info``): ``(confidence parts, mean/std, air /
    tissue median, fraction of negative voxels, median/IQR-sigma, std)``."""
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
    return parts, snr, rel, neg, robust, sd


def detect_air(image: sitk.Image, lesion: sitk.Image | None = None) -> Exclusion:
    """Extramammary air: dark background reaching the anterior / lateral field-of-view faces.

    Robust to multiplicative coil shading (log-domain Otsu), to dark fat-suppressed fat and dark
    (necrotic) lesion cores (anything enclosed by the body is not reached from a seed), and the
    lesion mask is never air. A field of view without air gives an empty mask and a note.
    ``info`` holds the threshold, the air fraction and the air / tissue intensity statistics.
    """
    les = _lesion_array(image, lesion)
    ori = orientation(image)
    notes: list[str] = []
    arr = sitk.GetArrayViewFromImage(image)
    spacing_zyx = np.array(image.GetSpacing()[::-1], float)
    air, air_blocks, coarse, f, thr = _air_candidates(arr, les, spacing_zyx, ori)
    frac = float(np.count_nonzero(air) / air.size)
    info: dict[str, Any] = {"threshold": round(thr, 3), "air_fraction": round(frac, 5)}
    if air.any():
        parts, snr, rel, neg, robust, sd = _air_noise(arr, air, coarse, f, info)
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
            return _with_confidence(Exclusion(image_from_array(np.zeros(image.GetSize()[::-1], np.uint8), image), notes, info), {"empty": AIR_EMPTY_CONFIDENCE})
        if rel > AIR_MAX_RELATIVE_INTENSITY:
            notes.append(f"no extramammary air in this field of view (darkest border-connected region is "
                         f"{100 * rel:.0f}% of tissue intensity); air mask left empty")
            return _with_confidence(Exclusion(image_from_array(np.zeros(image.GetSize()[::-1], np.uint8), image), notes, info), {"empty": AIR_EMPTY_CONFIDENCE})
        if frac < AIR_MIN_FRACTION:
            notes.append(f"only {100 * frac:.2f}% of the field of view looks like air; treated as no air")
            return _with_confidence(Exclusion(image_from_array(np.zeros(image.GetSize()[::-1], np.uint8), image), notes, info), {"empty": AIR_EMPTY_CONFIDENCE})
    else:
        notes.append("no extramammary air in this field of view; air mask left empty")
        return _with_confidence(Exclusion(image_from_array(np.zeros(image.GetSize()[::-1], np.uint8), image), notes, info), {"empty": AIR_EMPTY_CONFIDENCE})
    if ori.axial and "magnitude_image" not in parts:
        # fat as dark as the background (subtraction): the "air" then spreads behind the skin into the breast
        frac_behind = _air_behind_skin(_canon(air_blocks, ori))
        info["air_behind_skin"] = round(frac_behind, 3)
        if frac_behind > SUBTRACTION_MIN_AIR_BEHIND_SKIN:
            parts["magnitude_image"] = 0.0
    if parts.get("magnitude_image", 1.0) == 0.0:
        # never take breast tissue: where air and fat look alike, leave the mask empty and ask for a review
        notes.append("air and fat look alike in this image (subtraction?): the air mask is left empty rather than "
                     "taking breast fat; review it, draw it (--air), or detect on another phase with --exclusion-image")
        return _with_confidence(Exclusion(image_from_array(np.zeros(image.GetSize()[::-1], np.uint8), image), notes, info), parts)
    vox = float(np.prod(image.GetSpacing()))
    info["volume_mm3"] = float(np.count_nonzero(air)) * vox
    return _with_confidence(Exclusion(image_from_array(air.astype(np.uint8, copy=False), image), notes, info), parts)


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
    if lesion is None:
        # whole image (a convenience, not the validated mode): the first-layer detector, on blocks when large
        if int(np.prod(image.GetSize())) > PECT_WHOLE_IMAGE_BLOCK_VOXELS:
            return _pectoralis_on_blocks(image, reach_mm, air)
        res = _pectoralis_first_layer(image, None, reach_mm, air)
        res.info["method"] = "first-layer"
        return res
    res = _pectoralis_core(image, lesion, reach_mm, air)
    if res.info.get("confidence", 0.0) < PECT_FALLBACK_BELOW and res.info.get("contrast") != "subtraction":
        # the chest-wall reading is unsure (e.g. coarse voxels merge the fat plane behind the muscle, or no lung
        # in the field of view): the pre-issue-11 first-layer detector, when it is sure, takes over
        alt = _pectoralis_first_layer(image, lesion, reach_mm, air)
        if not alt.info.get("review") and alt.info.get("confidence", 0.0) > res.info.get("confidence", 0.0) + 0.2:
            alt.info["method"] = "first-layer (fallback)"
            alt.notes.append(f"chest-wall reading unsure (confidence {res.info.get('confidence', 0.0):.2f}); the "
                             "first-layer detector was used")
            return alt
    res.info["method"] = "chest-wall"
    return res


def _pectoralis_core(image: sitk.Image, lesion: sitk.Image | None, reach_mm: float,
                     air: sitk.Image | None) -> Exclusion:
    """Chest-wall-first pectoralis major (see the module docstring): the steps are the functions below."""
    les = _lesion_array(image, lesion)
    ori = orientation(image)
    if not ori.axial:
        return _not_axial(image, ori)
    air_arr = _air_array(image, les, air)
    spacing_zyx = np.array(image.GetSpacing()[::-1], float)
    arr = sitk.GetArrayViewFromImage(image)
    cal = _pect_calibrate(arr, air_arr, les, spacing_zyx, ori)
    if cal["empty"] is not None:
        return cal["empty"](image)
    g = _pect_grid(arr, air_arr, les, spacing_zyx, ori, reach_mm)
    front = _chest_wall_front(g, cal)
    levels = _muscle_level(g, cal, front)
    if levels["empty"] is not None:
        return levels["empty"](image)
    cols = _pect_layer_choice(g, cal, front)
    cols = _pect_continuity(cols, g)
    out = _pect_full_resolution(arr, les, air_arr, g, cal, cols, ori)
    return _pect_result(image, out, les, g, cal, front, cols, ori, spacing_zyx, reach_mm)


@dataclass
class _PectGrid:
    """The analysed box in canonical (slice, A->P, L-R) order: full resolution along A-P and S-I, L-R blocks."""

    box: tuple[slice, slice, slice]  # canonical full-resolution box
    fl: int  # L-R block factor
    img: np.ndarray  # block-mean intensity (slice, A-P, L-R blocks), float32
    air: np.ndarray  # block mostly air
    les: np.ndarray  # block touches the lesion (dilated by PECT_LESION_GUARD_MM)
    sp: np.ndarray  # grid spacing (mm): slice, A-P, L-R block
    near: np.ndarray  # (slice, L-R) columns within reach + 10 mm of the lesion's columns (all without a lesion)


def _pect_calibrate(arr: np.ndarray, air_arr: np.ndarray, les: np.ndarray | None, spacing_zyx: np.ndarray,
                    ori: Orientation) -> dict[str, Any]:
    """Step 1: fat level (subcutaneous layer), air/tissue and lung thresholds, subtraction check.

    ``empty`` is a function image -> Exclusion when the image cannot be analysed (subtraction, no skin).
    """
    cs = _coarse_stage(arr, air_arr, les, spacing_zyx, ori)
    info_fat = None
    if cs["fat_level"] is not None and not cs["subtraction"]:
        # the layer under the skin by in-plane depth (the A-P depth of the coarse stage reaches the muscle
        # on a thin chest wall between the breasts)
        # three estimates of the subcutaneous fat: in-plane depth 2-5 mm (1.5 mm grid), A-P depth 2-5 mm (coarse
        # stage), in-plane 5-8 mm; thickened skin can fill the 2-5 mm layer (see _fat_from_estimates)
        est = [_subcutaneous_level(arr, air_arr, spacing_zyx, ori, cs["threshold"]), cs["fat_level"],
               _subcutaneous_level(arr, air_arr, spacing_zyx, ori, cs["threshold"], SUBCUT_DEEP_MM)]
        sub = tuple(slice(0, None, max(1, n // 64)) for n in arr.shape)
        a_s = arr[sub]
        body_v = a_s[~air_arr[sub] & (a_s > cs["threshold"])]
        cs["fat_level"] = _fat_from_estimates(est, float(np.median(body_v)) if body_v.size else None)
        info_fat = [None if v is None else round(float(v), 1) for v in est]
    info: dict[str, Any] = {"fat_level": cs["fat_level"], "fat_estimates": info_fat, **cs["info"],
                            "contrast": "subtraction" if cs["subtraction"] else "unknown"}
    out: dict[str, Any] = {"info": info, "empty": None, "fat": cs["fat_level"], "threshold": cs["threshold"],
                           "parts": {"calibration": cs["calibration_conf"]}}

    def empty(note: str, parts: dict[str, float]):
        return lambda image: _with_confidence(Exclusion(image_from_array(np.zeros(image.GetSize()[::-1], np.uint8), image), [note], info), parts)

    sub = tuple(slice(0, None, max(1, n // 64)) for n in arr.shape)
    zero = float(np.mean(arr[sub] == 0))
    info["zero_fraction"] = round(zero, 4)
    if zero > SUBTRACTION_MIN_ZERO:  # a clipped subtraction (no air mask to show the background is not noise)
        cs["subtraction"] = True
    if cs["subtraction"]:
        # fat, lungs and background are all near zero: the chest-wall muscles are the first tissue in front of
        # the dark lung + chest fat + rib marrow, the retromammary fat the dark gap in front of them
        sub = tuple(slice(0, None, max(1, n // 64)) for n in arr.shape)
        v = np.asarray(arr[sub], np.float64)
        dark_v = v[v < cs["threshold"]]
        out["fat"] = max(float(np.median(dark_v)) if dark_v.size else 1.0, 1.0)
        out["lung_threshold"] = cs["threshold"]
        info.update(contrast="subtraction", fat_level=round(out["fat"], 3), lung_threshold=round(cs["threshold"], 2))
        # the mask is offered, but flagged: muscle that does not enhance is invisible here (fat, lungs and
        # background are all ~0), and the air mask is empty anyway
        out["parts"]["calibration"] = PECT_SUBTRACTION_CONFIDENCE
        return out
    if cs["fat_level"] is None:
        out["empty"] = empty("no anterior skin surface (air in front of the body) in the field of view to calibrate "
                             "the fat intensity; pectoralis mask left empty", {"calibration": 0.0})
        return out
    # the lungs: as dark as the background noise (proton density ~0.15, T2* ~1 ms), darker than any fat
    sub = tuple(slice(0, None, max(1, n // 64)) for n in arr.shape)
    a_s, m_s = arr[sub], air_arr[sub]
    air_hi = float(np.percentile(a_s[m_s], 95)) if m_s.sum() > 100 else 0.5 * cs["threshold"]
    lung_thr = min(cs["threshold"], float(np.exp(0.75 * np.log(max(air_hi, 1e-3)) + 0.25 * np.log(cs["fat_level"]))))
    out["lung_threshold"] = lung_thr
    info["lung_threshold"] = round(lung_thr, 2)
    return out


def _fat_from_estimates(est: list[float | None], body_median: float | None) -> float | None:
    """The fat level from three subcutaneous estimates (in-plane 2-5 mm, A-P 2-5 mm, in-plane 5-8 mm).

    The first two agreeing (|log ratio| < 0.25): the first (the validated layer). Otherwise thickened skin, a
    thin chest wall or dense glandular tissue pulled some of them off, and fat is the extreme one: the darkest
    when it lies below the body's median intensity (fat-suppressed: fat is the darkest tissue), else the
    brightest (non-suppressed: fat is the brightest)."""
    a, b = est[0], est[1]
    if a is not None and b is not None and a > 0 and b > 0 and abs(np.log(a / b)) < 0.25:
        return float(a)
    vals = [float(v) for v in est if v is not None and v > 0]
    if not vals:
        return None
    if body_median is None:
        return vals[0]
    return min(vals) if min(vals) < body_median else max(vals)


def _pect_grid(arr: np.ndarray, air_arr: np.ndarray, les: np.ndarray | None, spacing_zyx: np.ndarray,
               ori: Orientation, reach_mm: float) -> _PectGrid:
    """Step 2: the analysed box (lesion + reach + margin in S-I / L-R; from in front of the lesion to
    PECT_ROI_POSTERIOR_MM behind it, where the chest wall must be) on L-R blocks of ~PECT_COARSE_MM."""
    sp_c = _canon_spacing(spacing_zyx, ori)
    arr_c = _canon(arr, ori)
    shape = arr_c.shape
    if les is not None:
        lo, hi = _extent(_canon(les, ori))
        side = (reach_mm + PECT_ROI_MARGIN_MM) / sp_c
        box = (slice(max(0, int(lo[0] - side[0])), min(shape[0], int(hi[0] + side[0]) + 1)),
               slice(max(0, int(lo[1] - PECT_ROI_ANTERIOR_MM / sp_c[1])), shape[1]),
               slice(max(0, int(lo[2] - side[2])), min(shape[2], int(hi[2] + side[2]) + 1)))
    else:
        box = tuple(slice(0, n) for n in shape)
    fl = max(1, int(round(PECT_COARSE_MM / sp_c[2])))
    sub = np.ascontiguousarray(arr_c[box], dtype=np.float32)
    air_b = np.ascontiguousarray(_canon(air_arr, ori)[box])
    img = _block_mean_lr(sub, fl)
    img = ndimage.gaussian_filter1d(img, PECT_SMOOTH_AP_MM / sp_c[1], axis=1, mode="nearest", truncate=2.0)
    air_g = _block_mean_lr(air_b.view(np.uint8), fl) > 0.5
    sp = np.array([sp_c[0], sp_c[1], sp_c[2] * fl], float)
    les_g = np.zeros(img.shape, bool)
    near = np.ones((img.shape[0], img.shape[2]), bool)
    if les is not None:
        les_g = _block_mean_lr(np.ascontiguousarray(_canon(les, ori)[box]).view(np.uint8), fl) > 0
        foot = les_g.any(axis=1)
        dist = ndimage.distance_transform_edt(~foot, sampling=sp[[0, 2]])
        near = dist <= reach_mm + 10.0
        guard = _near_mask(les_g, sp, PECT_LESION_GUARD_MM)
        les_g = guard
    return _PectGrid(box=box, fl=fl, img=img, air=air_g, les=les_g, sp=sp, near=near)


def _mask_distance(mask: np.ndarray, sp: np.ndarray, reach_mm: float) -> np.ndarray:
    """Euclidean distance (mm) to a non-empty ``mask``, computed on its box + ``reach_mm`` (inf beyond)."""
    lo, hi = _extent(mask)
    box = tuple(slice(max(0, int(a - np.ceil(reach_mm / s)) - 1), min(n, int(b + np.ceil(reach_mm / s)) + 2))
                for a, b, s, n in zip(lo, hi, sp, mask.shape, strict=True))
    out = np.full(mask.shape, np.inf, np.float32)
    out[box] = ndimage.distance_transform_edt(~mask[box], sampling=sp)
    return out


def _near_mask(mask: np.ndarray, sp: np.ndarray, reach_mm: float) -> np.ndarray:
    """Voxels within ``reach_mm`` (Euclidean, mm) of a non-empty ``mask``."""
    return _mask_distance(mask, sp, reach_mm) <= reach_mm


def _block_mean_lr(a: np.ndarray, fl: int) -> np.ndarray:
    """Mean over blocks of ``fl`` voxels along the last (L-R) axis (edge-padded), float32."""
    if fl == 1:
        return np.asarray(a, np.float32)
    pad = (-a.shape[2]) % fl
    if pad:
        a = np.pad(a, ((0, 0), (0, 0), (0, pad)), mode="edge")
    out = np.zeros(a.shape[:2] + (a.shape[2] // fl,), np.float32)
    for r in range(fl):
        out += a[:, :, r::fl]
    return out * np.float32(1.0 / fl)


def _chest_wall_front(g: _PectGrid, cal: dict[str, Any]) -> np.ndarray:
    """Step 3: per (slice, L-R) column, the A-P index where the lung starts (the posterior side of the chest
    wall), -1 where no lung is found (medial columns over the heart get their neighbour's).

    Found from the posterior side, as a reader does: the lung is the dark run (below ``lung_threshold``, as
    dark as the background; gaps up to PECT_LUNG_GAP_MM for vessels and noise) that reaches the posterior end
    of the analysed box and is at least PECT_LUNG_RUN_MM long; its anterior end is the chest wall. Dark
    suppressed fat of the breast lies in front of the chest wall and is never reached.
    """
    dark = (g.img < cal["lung_threshold"]) & ~g.air & ~g.les
    gap = max(1, int(round(PECT_LUNG_GAP_MM / g.sp[1])))
    dark = ndimage.binary_closing(dark, structure=np.ones((1, gap + 1, 1), bool), border_value=1)
    nj = dark.shape[1]
    trailing = np.argmax(~dark[:, ::-1, :], axis=1)
    trailing[dark.all(axis=1)] = nj
    front = np.where(trailing * g.sp[1] >= PECT_LUNG_RUN_MM, nj - trailing, -1)
    # a column ending in the heart or mediastinum: the most posterior long dark run (the lung in front of it)
    min_run = PECT_LUNG_RUN_MM / g.sp[1]
    pad = np.zeros((dark.shape[0], 1, dark.shape[2]), np.int8)
    d = np.diff(np.concatenate([pad, dark.view(np.int8), pad], axis=1), axis=1)
    for k, i in zip(*np.nonzero(front < 0), strict=True):
        starts, ends = np.flatnonzero(d[k, :, i] == 1), np.flatnonzero(d[k, :, i] == -1)
        long_ = np.flatnonzero(ends - starts >= min_run)
        if long_.size:
            front[k, i] = starts[long_[-1]]
    # columns without lung (over the heart, beyond the lung's edge): the nearest lung column on the slice
    reach = max(1, int(round(PECT_FRONT_FILL_MM / g.sp[2])))
    for k in range(front.shape[0]):
        row = front[k]
        ok = row >= 0
        if ok.all() or not ok.any():
            continue
        idx = np.nonzero(ok)[0]
        miss = np.nonzero(~ok)[0]
        pos = np.clip(np.searchsorted(idx, miss), 1, idx.size) - 1
        cand = np.stack([idx[pos], idx[np.minimum(pos + 1, idx.size - 1)]])
        best = cand[np.argmin(np.abs(cand - miss[None, :]), axis=0), np.arange(miss.size)]
        close = np.abs(best - miss) <= reach
        row[miss[close]] = row[best[close]]
    return front


def _muscle_level(g: _PectGrid, cal: dict[str, Any], front: np.ndarray) -> dict[str, Any]:
    """Step 4: the muscle level: mode (log intensity) of the non-fat, non-dark tissue of the chest-wall layer
    (PECT_CALIB_DEPTH_MM in front of the lung: intercostal muscles, pectoralis minor / major), never of the
    breast. Sets ``cal["muscle"]``, the log window and the assumed contrast."""
    nk, nj, nl = g.img.shape
    jj = np.arange(nj)[None, :, None]
    f = front[:, None, :]
    lf = np.log(cal["fat"])
    out: dict[str, Any] = {"empty": None}
    info = cal["info"]
    vals = np.empty(0)
    for depth in (PECT_CALIB_DEPTH_MM, 2 * PECT_CALIB_DEPTH_MM):
        band = (f >= 0) & (jj < f - 1.0 / g.sp[1]) & (jj >= f - depth / g.sp[1])
        band &= ~g.air & ~g.les & (g.img > cal["lung_threshold"])
        v = np.log(np.maximum(g.img[band], 1e-3))
        # the chest-wall muscles are the non-fat tissue of the band; which side of fat they lie on (brighter:
        # fat-suppressed, darker: not) is the side holding more of it (the rest: fat planes, marrow)
        hi, lo = v[v > lf + PECT_CALIB_AWAY], v[v < lf - PECT_CALIB_AWAY]
        vals = hi if hi.size >= lo.size else lo
        if vals.size >= 30:
            break

    def empty(note: str, parts: dict[str, float]):
        return lambda image: _with_confidence(Exclusion(image_from_array(np.zeros(image.GetSize()[::-1], np.uint8), image), [note], info), dict(cal["parts"], **parts))

    if vals.size < 30:
        info["chest_wall_columns"] = int((front >= 0).sum())
        out["empty"] = empty("no chest wall (lung behind a muscle layer) found in the analysed region; pectoralis "
                             "mask left empty - review it or draw it", {"chest_wall": 0.0})
        return out
    lm = _peaks(vals, 1)[0]
    muscle = float(np.exp(lm))
    ratio = muscle / cal["fat"]
    info.update(muscle_level=round(muscle, 3), muscle_to_fat=round(ratio, 3),
                contrast=info.get("contrast") if info.get("contrast") == "subtraction" else
                "fat-suppressed" if ratio > 1 else "non-fat-suppressed")
    contrast = abs(np.log(ratio))
    cal["parts"]["contrast"] = float(np.clip((contrast - PECT_MIN_LOG_CONTRAST) / 0.25, 0, 1))
    if contrast < PECT_MIN_LOG_CONTRAST:
        out["empty"] = empty(f"muscle and fat have similar intensity here (ratio {ratio:.2f}); pectoralis mask "
                             "left empty", {"contrast": 0.0})
        return out
    cal["muscle"] = muscle
    cal["window"] = min(PECT_WINDOW, 0.5 * contrast)
    # muscle / fat boundary: halfway in log, or, on a subtraction (fat ~ 0), halfway in intensity
    sub_img = info.get("contrast") == "subtraction"
    cal["mid_log"] = float(np.log(0.5 * (muscle + cal["fat"]))) if sub_img else 0.5 * (lm + lf)
    return out


def _pect_layer(g: _PectGrid, cal: dict[str, Any], front: np.ndarray, rib_zone_mm: float) -> dict[str, np.ndarray]:
    """Step 5: per column, walk anteriorly from the lung through the chest-wall muscle layers: gaps up to
    PECT_PLANE_GAP_MM (the thin fat planes between intercostal muscle, pectoralis minor and major), and once
    a gap up to PECT_RIB_GAP_MM (the ribs: cortex and marrow) starting within PECT_RIB_ZONE_MM of the lung;
    the pectoralis major is the last muscle-like run before the retromammary fat (a wider gap) or the lesion.
    Runs thinner than PECT_MIN_RUN_MM are noise."""
    log_img = np.log(np.maximum(g.img, 1e-3))
    # muscle-like: closer (log) to the muscle level than to fat, and not much beyond it (enhancing lesion,
    # heart, skin)
    lm, lf = np.log(cal["muscle"]), np.log(cal["fat"])
    sgn = 1.0 if lm > lf else -1.0
    like = (sgn * (log_img - cal["mid_log"]) > 0) & (sgn * (log_img - lm) < PECT_BEYOND) & ~g.air & ~g.les
    like &= g.img > cal["lung_threshold"]
    nk, nj, nl = g.img.shape
    sap = g.sp[1]
    gap0, gap1, rib_zone = PECT_RIB_GAP_MM / sap, PECT_PLANE_GAP_MM / sap, rib_zone_mm / sap
    min_run, max_depth = PECT_MIN_RUN_MM / sap, PECT_MAX_DEPTH_MM / sap
    max_thick = PECT_THICKNESS_MM[1] / sap
    dip_min = PECT_DIP * abs(lm - lf)
    first = np.full((nk, nl), np.nan)
    last = np.full((nk, nl), np.nan)
    pad = np.zeros((nk, 1, nl), np.int8)
    d = np.diff(np.concatenate([pad, like.view(np.int8), pad], axis=1), axis=1)
    for k, i in zip(*np.nonzero(front > 0), strict=True):
        a = int(front[k, i])
        col = d[k, : a + 1, i]
        starts = np.flatnonzero(col == 1)
        ends = np.flatnonzero(col == -1)
        if starts.size == 0:
            continue
        if ends.size < starts.size:  # run reaching the lung front
            ends = np.append(ends, a)
        lescol = g.les[k, :a, i]
        boundary, wide_left, chosen = a, True, None
        for s, e in zip(starts[::-1], ends[::-1], strict=True):
            if e - s < min_run:
                continue
            gap = boundary - e
            # one wide gap (the rib layer), starting at most PECT_RIB_ZONE_MM in front of the lung
            wide = wide_left and a - boundary <= rib_zone
            if gap > (gap0 if wide else gap1) or a - e > max_depth or lescol[e:boundary].any():
                break
            if gap > gap1:
                wide_left = False
            chosen, boundary = (s, e), s
        if chosen is not None:
            s0, e0 = chosen
            if e0 - s0 > max_thick:
                # thicker than the prior: the muscle merged with the layer behind it through a fat plane
                # thinner than a voxel; end it at the first partial-volume dip towards fat
                dip = sgn * (lm - log_img[k, s0:e0, i])
                cand = np.flatnonzero((dip[1:-1] > dip_min) & (dip[1:-1] >= dip[:-2]) & (dip[1:-1] >= dip[2:])) + 1
                cand = cand[(cand >= min_run) & (cand <= max_thick)]
                if cand.size:
                    e0 = s0 + int(cand[0])
            first[k, i], last[k, i] = s0, e0
    return {"first": first, "last": last, "found": np.isfinite(first)}


def _sheet_quality(cols: dict[str, np.ndarray], g: _PectGrid) -> float:
    """How sheet-like a per-column layer is: fraction of the near-lesion columns holding a layer within the
    thickness prior whose front lies within 3 mm of the median front of its PECT_SHEET_WINDOW_MM neighbourhood
    (slices x L-R): a layer that jumps between two depths (rib and intercostal slices) or follows irregular
    glandular tissue scores low."""
    first, last = cols["first"], cols["last"]
    thick = (last - first) * g.sp[1]
    ok = np.isfinite(first) & (thick >= PECT_THICKNESS_MM[0]) & (thick <= PECT_THICKNESS_MM[1])
    if ok.sum() < 5:
        return 0.0
    size = tuple(max(3, 2 * int(round(PECT_SHEET_WINDOW_MM / sp / 2)) + 1) for sp in (g.sp[0], g.sp[2]))
    med = _nan_median_filter(np.where(ok, first, np.nan), size)
    good = ok & (np.abs(first - med) * g.sp[1] <= 3.0)
    sel = g.near if g.near.any() else np.ones_like(ok)
    return float(good[sel].mean())


def _nan_median_filter(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Median of the finite values in a ``size`` window, edge-replicated (NaN where the window holds none)."""
    import warnings
    pk, pl = size[0] // 2, size[1] // 2
    padded = np.pad(a, ((pk, pk), (pl, pl)), mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(padded, size).reshape(a.shape[0], a.shape[1], -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(win, axis=2)


def _pect_layer_choice(g: _PectGrid, cal: dict[str, Any], front: np.ndarray) -> dict[str, np.ndarray]:
    """Step 5b: the rib gap either right in front of the lung (PECT_RIB_ZONE_MM) or, when soft tissue lies
    between lung and ribs, up to PECT_RIB_ZONE_WIDE_MM in front of it: the reading that gives the better sheet
    (_sheet_quality; the wide one must be PECT_WIDE_SWITCH x better, since it may jump the retromammary fat)."""
    near = _pect_layer(g, cal, front, PECT_RIB_ZONE_MM)
    wide = _pect_layer(g, cal, front, PECT_RIB_ZONE_WIDE_MM)
    qn, qw = _sheet_quality(near, g), _sheet_quality(wide, g)
    cal["info"]["sheet_quality"] = [round(qn, 3), round(qw, 3)]
    return wide if qw > PECT_WIDE_SWITCH * qn else near


def _pect_continuity(cols: dict[str, np.ndarray], g: _PectGrid) -> dict[str, np.ndarray]:
    """Step 6: slice-to-slice / column-to-column continuity and the thickness prior. A column whose layer
    boundaries lie more than PECT_STEP_MM from the median of its neighbourhood (3 slices x PECT_CONT_LR_MM),
    or whose layer is outside PECT_THICKNESS_MM, takes the neighbourhood's median when at least half of the
    neighbourhood has a layer, else is dropped."""
    first, last = cols["first"].copy(), cols["last"].copy()
    thick = (last - first) * g.sp[1]
    ok_thick = (thick >= PECT_THICKNESS_MM[0]) & (thick <= PECT_THICKNESS_MM[1])
    fin = np.isfinite(first)
    valid = fin & ok_thick
    size = (3, max(3, 2 * int(round(PECT_CONT_LR_MM / g.sp[2] / 2)) + 1))
    fv = np.where(valid, first, np.nan)
    lv = np.where(valid, last, np.nan)
    mf, ml = _nan_median_filter(fv, size), _nan_median_filter(lv, size)
    frac = ndimage.uniform_filter(valid.astype(float), size=size, mode="nearest")
    step = PECT_STEP_MM / g.sp[1]
    outlier = fin & (~ok_thick | (np.abs(first - mf) > step) | (np.abs(last - ml) > step))
    repair = outlier & (frac >= 0.5) & np.isfinite(mf)
    first[repair], last[repair] = mf[repair], ml[repair]
    drop = outlier & ~repair
    first[drop], last[drop] = np.nan, np.nan
    return {"first": first, "last": last, "found": np.isfinite(first), "found_raw": fin, "outlier": outlier,
            "thick_ok": ok_thick}


def _pect_full_resolution(arr: np.ndarray, les: np.ndarray | None, air_arr: np.ndarray, g: _PectGrid,
                          cal: dict[str, Any], cols: dict[str, np.ndarray], ori: Orientation) -> np.ndarray:
    """Step 7: the mask at full resolution in the box: voxels within one voxel of their column's layer that
    are closer (log) to muscle than to fat (partial-volume boundary), never lesion or air."""
    out_c = np.zeros(_canon(arr, ori).shape, bool)
    if not np.isfinite(cols["first"]).any():
        return np.ascontiguousarray(_uncanon(out_c, ori))
    # only the A-P range the layer occupies (+- 2 voxels) is looked at in full resolution
    j0 = max(0, int(np.nanmin(cols["first"])) - 2)
    j1 = min(g.img.shape[1], int(np.nanmax(cols["last"])) + 2)
    box = (g.box[0], slice(g.box[1].start + j0, g.box[1].start + j1), g.box[2])
    nk, nj, nlf = (s.stop - s.start for s in box)
    first = np.repeat(np.nan_to_num(cols["first"], nan=-10) - j0, g.fl, axis=1)[:, :nlf]
    last = np.repeat(np.nan_to_num(cols["last"], nan=-10) - j0, g.fl, axis=1)[:, :nlf]
    jj = np.arange(nj)[None, :, None]
    inside = (jj >= first[:, None, :] - 1) & (jj < last[:, None, :] + 1)
    sub = np.asarray(_canon(arr, ori)[box], np.float32)
    sm = ndimage.gaussian_filter(sub, (0, PECT_SMOOTH_AP_MM / g.sp[1], PECT_SMOOTH_MM * g.fl / g.sp[2]),
                                 mode="nearest", truncate=2.0)
    mid = cal["mid_log"]
    log_sm = np.log(np.maximum(sm, 1e-3))
    closer = (log_sm > mid) if cal["muscle"] > cal["fat"] else (log_sm < mid)
    m = inside & closer & (sm > cal["lung_threshold"]) & ~np.asarray(_canon(air_arr, ori)[box])
    if les is not None:
        m &= ~np.asarray(_canon(les, ori)[box])
    out_c[box] = m
    return np.ascontiguousarray(_uncanon(out_c, ori))


def _pect_result(image: sitk.Image, out: np.ndarray, les: np.ndarray | None, g: _PectGrid, cal: dict[str, Any],
                 front: np.ndarray, cols: dict[str, np.ndarray], ori: Orientation, spacing_zyx: np.ndarray,
                 reach_mm: float) -> Exclusion:
    """Step 8: info, notes and the confidence of the mask (see _pectoralis_parts and docs/exclusions.md)."""
    info, notes = cal["info"], []
    vox = float(np.prod(spacing_zyx))
    info["volume_mm3"] = float(out.sum()) * vox
    parts = dict(cal["parts"])
    near = g.near
    if near.any():
        parts["chest_wall"] = float(np.clip(((front >= 0)[near].mean() - 0.5) / 0.4, 0, 1))
    found = cols["found_raw"] & near
    if found.sum() >= 5:
        parts["layer_continuity"] = float(np.clip((1 - cols["outlier"][found].mean() - 0.6) / 0.3, 0, 1))
    info["chest_wall_columns"] = round(float((front >= 0)[near].mean()) if near.any() else 0.0, 3)
    if les is not None and out.any():
        lc = np.ascontiguousarray(_canon(les, ori)[g.box])
        run_c = np.ascontiguousarray(_canon(out, ori)[g.box])
        parts.update(_pectoralis_parts(run_c, lc, _canon_spacing(spacing_zyx, ori), reach_mm))
    elif out.any():
        parts.update(_pectoralis_parts(np.ascontiguousarray(_canon(out, ori)), None,
                                       _canon_spacing(spacing_zyx, ori), reach_mm))
    if not out.any():
        notes.append("no muscle layer found on the chest wall in the analysed region; pectoralis mask left empty")
        return _with_confidence(Exclusion(image_from_array(np.zeros(image.GetSize()[::-1], np.uint8), image), notes, info), parts)
    if les is not None:
        lc = np.ascontiguousarray(_canon(les, ori)[g.box])
        d = _mask_distance(lc, _canon_spacing(spacing_zyx, ori), reach_mm + 20.0)
        dmin = float(d[np.ascontiguousarray(_canon(out, ori)[g.box])].min())
        info["distance_to_lesion_mm"] = round(dmin, 2)
        if dmin > reach_mm:
            notes.append(f"pectoralis is {dmin:.1f} mm from the lesion, beyond the {reach_mm:g} mm shells")
    return _with_confidence(Exclusion(image_from_array(out.astype(np.uint8, copy=False), image), notes, info), parts)


# ---------------------------------------------------------------------------------------------- legacy first-layer pectoralis (fallback)
def _empty_exclusion(image: sitk.Image, notes: list[str], info: dict[str, Any], parts: dict[str, float]) -> Exclusion:
    """An empty mask on ``image``'s grid with its notes, numbers and confidence parts."""
    return _with_confidence(Exclusion(image_from_array(np.zeros(image.GetSize()[::-1], np.uint8), image), notes, info), parts)


def _not_axial(image: sitk.Image, ori: Orientation) -> Exclusion:
    """The empty pectoralis mask of a non-axial image (both detectors assume axial slices)."""
    notes = [f"pectoralis detection assumes an axial acquisition; this image's slice normal is "
             f"{ori.tilt_deg:.0f} deg from superior-inferior (or slices are not the first array axis); "
             "mask left empty: draw it or pass --pectoralis"]
    return _empty_exclusion(image, notes, {"axial": False, "contrast": "unknown"}, {"axial": 0.0})


def _air_array(image: sitk.Image, les: np.ndarray | None, air: sitk.Image | None) -> np.ndarray:
    """The air mask (z y x, bool) the pectoralis detectors work with: the given one (on the image grid), else a
    coarse detection that leaves the lesion out."""
    if air is None:
        return _coarse_air(image, les)
    check_same_grid(air, image, what="air mask")
    return sitk.GetArrayViewFromImage(air) != 0


def _pectoralis_first_layer(image: sitk.Image, lesion: sitk.Image | None, reach_mm: float,
                            air: sitk.Image | None) -> Exclusion:
    """The pre-issue-11 detector (first homogeneous muscle-intensity layer behind the lesion), kept as the
    fallback of :func:`detect_pectoralis` where the chest-wall reading is unsure (see docs/exclusions.md)."""
    les = _lesion_array(image, lesion)
    ori = orientation(image)
    if not ori.axial:
        return _not_axial(image, ori)
    air_arr = _air_array(image, les, air)
    spacing_zyx = np.array(image.GetSpacing()[::-1], float)
    arr = sitk.GetArrayViewFromImage(image)
    roi = _first_layer_roi(arr.shape, les, spacing_zyx, reach_mm)
    cal = _first_layer_calibrate(image, arr, air_arr, les, spacing_zyx, ori)
    if isinstance(cal, Exclusion):
        return cal
    cs, fat_level, info = cal
    notes: list[str] = []
    parts: dict[str, float] = {"calibration": cs["calibration_conf"]}
    m = _first_layer_maps(image, arr, air_arr, les, roi, spacing_zyx, ori, cs["threshold"], fat_level)
    chosen = _first_layer_level(m, ori, spacing_zyx, fat_level)
    if chosen is None:
        notes.append("no homogeneous non-fat tissue behind the breast in the analysed region; pectoralis mask left empty")
        return _empty_exclusion(image, notes, info, {"muscle": 0.0})
    levels, best = chosen
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
    out = _first_layer_mask(run, m, roi, air_arr, spacing_zyx, muscle_level, fat_level)
    return _first_layer_result(image, out, m, roi, ori, spacing_zyx, reach_mm, info, notes, parts)


@dataclass
class _FirstLayerMaps:
    """The maps of the legacy first-layer detector on its region of interest (z y x)."""

    sm: np.ndarray  # smoothed intensity
    log_sm: np.ndarray  # log of the smoothed intensity
    body: np.ndarray  # not air
    homog: np.ndarray  # homogeneous (low local CV), brighter than the dark threshold, off the grown lesion
    cand_level: np.ndarray  # homogeneous, non-fat, behind the lesion: where the muscle can be
    behind: np.ndarray | None  # posterior of the lesion's median A-P coordinate (None without a lesion)
    les_roi: np.ndarray | None  # the lesion (None without one)
    les_dist: np.ndarray | None  # distance to the lesion (mm)
    grow: np.ndarray | None  # within 2 mm of the lesion
    thr_dark: float  # air / tissue threshold


def _first_layer_roi(shape: tuple[int, ...], les: np.ndarray | None, spacing_zyx: np.ndarray,
                     reach_mm: float) -> tuple[slice, ...]:
    """Region of interest (full arrays, z y x): the lesion's extent plus reach + margin, the whole image without one."""
    if les is None:
        return tuple(slice(0, n) for n in shape)
    e_lo, e_hi = _extent(les)
    margin = (reach_mm + PECT_ROI_MARGIN_MM) / spacing_zyx
    lo = [max(0, int(a - m)) for a, m in zip(e_lo, margin, strict=True)]
    hi = [min(n, int(b + m) + 1) for b, n, m in zip(e_hi, shape, margin, strict=True)]
    return tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))


def _first_layer_calibrate(image: sitk.Image, arr: np.ndarray, air_arr: np.ndarray, les: np.ndarray | None,
                           spacing_zyx: np.ndarray, ori: Orientation
                           ) -> tuple[dict[str, Any], float, dict[str, Any]] | Exclusion:
    """Fat level: subcutaneous layer 2-5 mm below the skin (whole image, ~2 mm blocks), subtraction check.

    ``(coarse stage, fat level, info)``, or the empty Exclusion when the image cannot be calibrated.
    """
    cs = _coarse_stage(arr, air_arr, les, spacing_zyx, ori)
    fat_level = (_subcutaneous_level(arr, air_arr, spacing_zyx, ori, cs["threshold"])
                 if cs["fat_level"] is not None else None)
    info: dict[str, Any] = {"fat_level": fat_level, **cs["info"], "contrast": "subtraction" if cs["subtraction"] else "unknown"}
    if cs["subtraction"]:
        notes = ["this looks like a subtraction image (fat as dark as the background); the pectoralis cannot be "
                 "told from fat here: mask left empty - review it, or detect on another phase with "
                 "--exclusion-image"]
        return _empty_exclusion(image, notes, info, {"contrast": 0.0})
    if fat_level is None:
        notes = ["no anterior skin surface (air in front of the body) in the field of view to calibrate the fat "
                 "intensity; pectoralis mask left empty"]
        return _empty_exclusion(image, notes, info, {"calibration": 0.0})
    return cs, fat_level, info


def _first_layer_maps(image: sitk.Image, arr: np.ndarray, air_arr: np.ndarray, les: np.ndarray | None,
                      roi: tuple[slice, ...], spacing_zyx: np.ndarray, ori: Orientation, thr_dark: float,
                      fat_level: float) -> _FirstLayerMaps:
    """Smoothing, local texture and the homogeneous non-fat candidates behind the lesion, on the region of interest."""
    sub_img = sitk.GetImageFromArray(np.ascontiguousarray(arr[roi], dtype=np.float32))
    sub_img.SetSpacing(image.GetSpacing())
    # a copy: where the spacing is too coarse to smooth, _smooth returns a view of sub_img, freed on return
    sm = np.array(_smooth(sub_img, PECT_SMOOTH_MM))
    raw = sitk.GetArrayViewFromImage(sub_img)
    # local coefficient of variation at two window sizes: the 1.5 mm window measures texture reliably but,
    # on a muscle thinner than ~6 mm, it straddles the fat on both sides and the two edges alone push the CV
    # over the limit; the ~1-voxel window (when the in-plane spacing allows one finer than 1.5 mm) keeps
    # such a thin homogeneous layer homogeneous.
    cv = _local_cv(raw, spacing_zyx, PECT_TEXTURE_MM)
    fine_mm = max(PECT_TEXTURE_FINE_MM, float(max(spacing_zyx[1:])))
    if fine_mm < PECT_TEXTURE_MM:
        cv = np.minimum(cv, _local_cv(raw, spacing_zyx, fine_mm))
    body = ~air_arr[roi]
    log_sm = np.log(np.maximum(sm, 1e-3))
    homog = body & (cv < PECT_MAX_CV) & (sm > 2.0 * thr_dark)
    nonfat = np.abs(log_sm - np.log(fat_level)) > 0.35
    les_roi = les_dist = grow = None
    if les is not None:
        les_roi = les[roi]
        les_dist = ndimage.distance_transform_edt(~les_roi, sampling=spacing_zyx)
        grow = les_dist <= 2.0
        homog &= ~grow
    # posterior of the lesion (or anywhere without one): where the muscle can be
    cand_level = homog & nonfat
    behind = None
    if les_roi is not None:
        ap_coord = _ap_coordinate(cand_level.shape, ori)
        les_ap = np.median(ap_coord[les_roi])
        behind = ap_coord > les_ap
        cand_level &= behind
    return _FirstLayerMaps(sm, log_sm, body, homog, cand_level, behind, les_roi, les_dist, grow, thr_dark)


def _first_layer_level(m: _FirstLayerMaps, ori: Orientation, spacing_zyx: np.ndarray, fat_level: float
                       ) -> tuple[list[float], tuple[float, float, np.ndarray] | None] | None:
    """The muscle level: ``(candidate log levels, (sheet score, log level, first-layer run) or None when no
    candidate differs enough from fat)``; None when too little homogeneous non-fat tissue is behind the breast."""
    # the pectoralis is the FIRST non-fat layer behind the breast: calibrate on the first such run per A-P
    # column, so every column counts once and a large homogeneous organ further back (heart, mediastinum),
    # which holds more voxels than the thin muscle when the box reaches it, cannot set the level
    vals = m.log_sm[_first_run(m.cand_level, ori, spacing_zyx)]
    if vals.size < 50:
        return None
    # candidate muscle levels: the mode of the first non-fat layer (the pectoralis when the retromammary fat is
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


def _first_layer_mask(run: np.ndarray, m: _FirstLayerMaps, roi: tuple[slice, ...], air_arr: np.ndarray,
                      spacing_zyx: np.ndarray, muscle_level: float, fat_level: float) -> np.ndarray:
    """The full-image mask: the first layer without small components, grown into its partial-volume boundary."""
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
    log_sm = m.log_sm
    closer = (log_sm > mid) if muscle_level > fat_level else (log_sm < mid)
    loose = m.body & closer & (np.abs(log_sm - np.log(muscle_level)) < 1.5 * PECT_WINDOW) & (m.sm > 2.0 * m.thr_dark)
    if m.les_roi is not None:
        loose &= ~m.grow
    steps = max(1, int(round(PECT_GROW_MM / float(min(spacing_zyx[1:])))))
    if run.any():
        run = ndimage.binary_dilation(run, structure=_INPLANE, iterations=steps, mask=loose | run)
    if m.les_roi is not None:
        run &= ~m.les_roi
    out = np.zeros(air_arr.shape, bool)
    out[roi] = run
    out &= ~air_arr
    return out


def _first_layer_result(image: sitk.Image, out: np.ndarray, m: _FirstLayerMaps, roi: tuple[slice, ...],
                        ori: Orientation, spacing_zyx: np.ndarray, reach_mm: float, info: dict[str, Any],
                        notes: list[str], parts: dict[str, float]) -> Exclusion:
    """Volume, confidence parts, distance to the lesion and notes of the legacy mask."""
    info["volume_mm3"] = float(out.sum()) * float(np.prod(spacing_zyx))
    sp_c = _canon_spacing(spacing_zyx, ori)
    parts.update(_pectoralis_parts(_canon(out[roi], ori), None if m.les_roi is None else _canon(m.les_roi, ori), sp_c, reach_mm))
    if not out.any():
        notes.append("no muscle band found behind the breast in the analysed region; pectoralis mask left empty")
        return _empty_exclusion(image, notes, info, parts)
    if m.les_dist is not None:
        dmin = float(m.les_dist[out[roi]].min())
        info["distance_to_lesion_mm"] = round(dmin, 2)
        if dmin > reach_mm:
            notes.append(f"pectoralis is {dmin:.1f} mm from the lesion, beyond the {reach_mm:g} mm shells")
    return _with_confidence(Exclusion(image_from_array(out.astype(np.uint8), image), notes, info), parts)


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
        thick = ndimage.binary_opening(c, structure=np.ones((1, min_len, 1), bool))
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

def _ap_coordinate(shape: tuple[int, ...], ori: Orientation) -> np.ndarray:
    """Index along the A-P array axis, increasing towards posterior, broadcastable to ``shape``."""
    n = shape[ori.ap_axis]
    v = np.arange(n) if ori.ap_sign > 0 else np.arange(n)[::-1]
    sh = [1, 1, 1]
    sh[ori.ap_axis] = n
    return np.broadcast_to(v.reshape(sh), shape)


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
    body = ~air_c
    nap = body.shape[1]
    has_body = body.any(axis=1)
    j_skin = np.argmax(body, axis=1)
    j_last = nap - 1 - np.argmax(body[:, ::-1, :], axis=1)
    jj = np.arange(nap)[None, :, None]
    behind = has_body[:, None, :] & (jj > j_skin[:, None, :]) & (jj < j_last[:, None, :])
    return float(np.count_nonzero(air_c & behind) / max(np.count_nonzero(behind), 1))


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
    img = np.asarray(_canon(arr, ori)[:, ::fb[1], ::fb[2]], np.float32)
    air_c = np.ascontiguousarray(_canon(air_arr, ori)[:, ::fb[1], ::fb[2]])
    spc = sp_c * np.array(fb)
    nk, nap, nlr = img.shape
    thr = dark_threshold(img)
    body = ~air_c
    out: dict[str, Any] = {"threshold": thr, "shape": img.shape, "block": fb, "fat_level": None, "subtraction": False,
                           "muscle_level": None, "calibration_conf": 0.0, "info": {}}
    # ---- skin per column (first body voxel behind anterior air) and the 2-5 mm subcutaneous layer
    has_body = body.any(axis=1)
    j_skin = np.argmax(body, axis=1)
    col_ok = air_c[:, 0, :] & has_body
    slope = np.abs(np.gradient(j_skin.astype(float) * spc[1], spc[2], axis=1)) if nlr > 1 else np.zeros_like(j_skin, float)
    facing = col_ok & (slope <= 1.0)
    depth = (np.arange(nap)[None, :, None] - j_skin[:, None, :]).astype(np.float32) * np.float32(spc[1])
    v = float(max(sp_c[1:]))
    g = float(max(spc[1:]))
    lo_d, hi_d = max(SUBCUT_DEPTH_MM[0] + v, 1.01 * g), SUBCUT_DEPTH_MM[1] + v + g
    band = facing[:, None, :] & (depth > lo_d) & (depth <= hi_d) & body
    # background the air mask missed (zero-filled corners of a rotated field of view, motion ghosts) is not fat
    band &= img > thr
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
    fat = _mode(img[band])
    if out["subtraction"] or fat <= 0:
        out["fat_level"] = max(fat, 1e-3)
        out["subtraction"] = True
        return out
    out["fat_level"] = fat
    out["calibration_conf"] = float(np.clip(band_mm3 / (2 * SUBCUT_MIN_MM3), 0, 1))
    return out


def _pectoralis_parts(run_c: np.ndarray, lc: np.ndarray | None, sp_c: np.ndarray,
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
    if lc is None:
        cols = np.ones((nk, nlr), bool)
    else:
        if run_c.any():
            d = _mask_distance(lc, sp_c, reach_mm + 20.0)
            near_mask = run_c & (d <= reach_mm + 10.0)
            if not near_mask.any():
                return {"coverage": 1.0}
            # the muscle lies behind the whole lesion: mask voxels within 15 mm of the lesion at or in front of
            # the lesion's posterior edge (less PECT_BEHIND_TOL_MM) are parenchyma taken for muscle
            ap_back = np.nonzero(lc)[1].max() - PECT_BEHIND_TOL_MM / sp_c[1]
            close = run_c & (d <= 15.0)
            frac = float((np.nonzero(close)[1] >= ap_back).mean()) if close.any() else 1.0
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


def _subcutaneous_level(arr: np.ndarray, air: np.ndarray, spacing_zyx: np.ndarray, ori: Orientation,
                        dark_thr: float | None = None, depth_mm: tuple[float, float] = SUBCUT_DEPTH_MM) -> float | None:
    """Modal intensity 2-5 mm under the anterior skin (subcutaneous fat), on a ~1.5 mm grid for speed.

    Only skin facing anterior air counts (the breasts and chest in a prone acquisition), found per A-P
    column: body voxels with air 2-5 mm (+ one grid step) anterior to them in the same column.
    """
    if not air.any() or air.all():
        return None
    step = [max(1, int(round(SUBCUT_GRID_MM / sp))) for sp in spacing_zyx]
    step[0] = max(1, int(round(SUBCUT_SLICE_MM / spacing_zyx[0])))  # thin slices: every n-th (speed)
    sl = tuple(slice(0, None, s) for s in step)
    a, body = arr[sl], ~air[sl]
    sp = spacing_zyx * np.array(step)
    d = np.stack([ndimage.distance_transform_edt(b, sampling=sp[1:]) for b in body])  # per axial slice
    n_ap = max(1, int(np.ceil((depth_mm[1] + sp[ori.ap_axis]) / sp[ori.ap_axis])))
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
    lo = max(depth_mm[0] + v, 1.01 * g)
    hi = depth_mm[1] + v + g
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
    air_full = _air_array(image, None, air)
    air_small = sitk.GetImageFromArray((~_block_any(~air_full, f)).view(np.uint8))  # air where the block is all air
    air_small.CopyInformation(small)
    res = _pectoralis_first_layer(small, None, reach_mm, air_small)
    full = _upsample(sitk.GetArrayViewFromImage(res.mask) != 0, f, arr.shape) & ~air_full
    notes = res.notes + [f"whole image without a lesion: pectoralis detected on a {f[2] * spacing[0]:.2g} x "
                         f"{f[1] * spacing[1]:.2g} mm in-plane grid"]
    return Exclusion(image_from_array(np.ascontiguousarray(full).astype(np.uint8, copy=False), image), notes, dict(res.info, block=f))


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
    air_s = sitk.GetArrayFromImage(detect_air(small).mask) != 0  # a copy: a view would outlive the temporary image
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
    """Nearest-neighbour expansion of an in-plane block grid to ``shape`` (one write pass; a view)."""
    nz, cy, cx = mask.shape
    out = np.empty((nz, cy * f[1], cx * f[2]), mask.dtype)
    out.reshape(nz, cy, f[1], cx, f[2])[...] = mask[:, :, None, :, None]
    return out[:, : shape[1], : shape[2]]


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
        air = _upsample(air_c & ~keep_edge, f, arr.shape)
        edge = keep_edge
    else:
        air = _upsample(air_c & ~edge, f, arr.shape)
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
