"""Scoring harness for the air / pectoralis exclusions against phantom truth (issue 11, "Must show").

Criteria, per case (defaults = the issue's numbers):

- **Evaluation zone** ("within 10 mm of the 5 mm shell", taken literally): the *ideal* 5 mm shell S5 (voxels
  outside the lesion whose centre is <= 5 mm + 1e-6 from a lesion voxel centre, the project's boundary
  rule) together with every voxel whose centre is <= 10 mm from a voxel centre of S5. Outside the lesion this
  is the set of voxels within ~15 mm of the lesion (``exclusions.evaluation_region(lesion, 5, 10)``); it
  differs only inside large lesions (lesion voxels > 10 mm from the shell are not in the zone; no
  exclusion mask may hold lesion voxels anyway).
- **pectoralis Dice** >= 0.85 and **air Dice** >= 0.95 inside the zone (L. R. Dice 1945, Ecology 26:297). Truth: air =
  ``outside_air`` (extramammary background; lungs are not air), pectoralis = ``pectoralis_major``. When both the
  truth and the false detections hold less than ``MIN_TRUTH_MM3`` (50 mm3) in the zone, the Dice is not
  defined (NaN, left out of the distributions); a detection where there is (almost) no truth - e.g.
  "pectoralis" on glandular tissue in front of a superficial lesion - scores Dice ~0. Truth and
  false-positive volumes in the zone are reported (``*_truth_zone_mm3``, ``*_fp_zone_mm3``), and, for
  information only, ``dice_*_band``: the Dice without the one-voxel band on either side of the true
  boundary (6-neighbourhood dilation minus erosion), i.e. ignoring partial-volume voxels.
- **Shell keeps breast tissue**: B5 = truth breast tissue (skin + fat + fibroglandular; the project
  excludes only air and muscle, so skin is tissue the shell must keep) inside the ideal 5 mm shell;
  ``keep`` = |peri5 after exclusions & B5| / |B5| >= 0.97.
- **Shell holds no air or muscle**: ``contamination`` = |peri5 after exclusions & (air or muscle)| / |peri5 after|
  <= 0.03, air or muscle = outside air, pectoralis major and minor, chest wall (intercostal muscle, ribs,
  cartilage, sternum), lung, heart, other (``phantom_b.CONTAMINANT_CLASSES``). Split into ``contam_air``,
  ``contam_muscle`` (pectoralis major + minor + chest wall) and ``contam_other`` (lung, heart, other). The
  fat planes deep to the pectoralis major (``chest_fat``) count neither as breast tissue nor as contamination.

The "after exclusions" peri5 comes from the project's own ``regions.build_regions`` (exact EDT in mm). The
truth side is independent: physical voxel-centre coordinates from origin + direction x (index x spacing)
(SimpleITK's convention) and an exact nearest-neighbour search (``scipy.spatial.cKDTree``) over the lesion's
boundary voxels (the nearest lesion voxel to an outside point is always a boundary voxel). The harness also
reports ``shell_mismatch_voxels``: ideal-shell voxels where build_regions and the brute-force truth disagree
(expected 0), and the same criteria for the *oracle* exclusions (true air + true pectoralis major) so that a
criterion the truth masks themselves cannot meet is visible.

Family A (``her2radiomics.phantom``) exposes only lesion / air / pectoralis truth: there breast tissue is
approximated as "not air, not pectoralis, not lesion" (``score_case(..., breast=...)`` default for A).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import cKDTree

from her2radiomics.regions import BOUNDARY_EPS_MM, build_regions, shell_name

AIR_DICE_MIN = 0.95
PEC_DICE_MIN = 0.85
KEEP_MIN = 0.97
CONTAM_MAX = 0.03
MIN_TRUTH_MM3 = 50.0
_NB6 = ndimage.generate_binary_structure(3, 1)


def _arr(m: sitk.Image | np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if m is None:
        return np.zeros(shape, bool)
    if isinstance(m, sitk.Image):
        return sitk.GetArrayViewFromImage(m) != 0
    return np.asarray(m) != 0


def physical_points(image: sitk.Image, idx_zyx: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """LPS mm of voxel centres (z, y, x index arrays): origin + D @ (index * spacing), SimpleITK's convention."""
    k, j, i = (np.asarray(a, float) for a in idx_zyx)
    sp = np.array(image.GetSpacing(), float)
    D = np.array(image.GetDirection(), float).reshape(3, 3)
    ijk = np.stack([i * sp[0], j * sp[1], k * sp[2]], 1)
    return np.asarray(image.GetOrigin(), float)[None, :] + ijk @ D.T


def truth_distances(lesion: sitk.Image, reach_mm: float) -> tuple[tuple[slice, ...], np.ndarray]:
    """Exact physical distance (mm) of every voxel of a box around the lesion to the nearest lesion voxel centre.

    The box holds every voxel within ``reach_mm``; returns (box slices, distance array over the box).
    Independent of the project's EDT: k-d tree over the lesion's 6-connected boundary voxels.
    """
    les = sitk.GetArrayViewFromImage(lesion) != 0
    idx = np.nonzero(les)
    sp = np.array(lesion.GetSpacing()[::-1], float)
    box = tuple(slice(max(0, int(a.min()) - int(math.ceil(reach_mm / s)) - 1), min(n, int(a.max()) + int(math.ceil(reach_mm / s)) + 2))
                for a, s, n in zip(idx, sp, les.shape, strict=True))
    sub = les[box]
    boundary = sub & ~ndimage.binary_erosion(sub, structure=ndimage.generate_binary_structure(3, 1), border_value=0)
    off = [b.start for b in box]
    bidx = np.nonzero(boundary)
    tree = cKDTree(physical_points(lesion, tuple(b + o for b, o in zip(bidx, off, strict=True))))
    grid = np.indices(sub.shape).reshape(3, -1)
    pts = physical_points(lesion, tuple(g + o for g, o in zip(grid, off, strict=True)))
    d, _ = tree.query(pts, distance_upper_bound=reach_mm + 1.0)
    d = d.reshape(sub.shape)
    d[sub] = 0.0
    return box, d


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    t = int(a.sum()) + int(b.sum())
    return 1.0 if t == 0 else 2.0 * int((a & b).sum()) / t


def score_case(case: Any, regions: Any = None, *, air: Any = None, pectoralis: Any = None, shell_mm: float = 5.0,
               margin_mm: float = 10.0, breast: np.ndarray | None = None, nonbreast: dict[str, np.ndarray] | None = None
               ) -> dict[str, Any]:
    """All issue-11 criteria for one case.

    ``case``: a phantom_b.CaseB (or a family-A ``Phantom``: image, lesion, air, pectoralis). Give either
    ``regions`` (a ``regions.Regions`` from ``build_regions`` with automatic exclusions; its air / pectoralis
    masks and its peri{shell} are scored) or ``air`` / ``pectoralis`` masks (then build_regions is run with
    them as user masks). ``breast`` / ``nonbreast`` override the truth tissue classes (family A).
    """
    image, lesion = case.image, case.lesion
    shape = tuple(reversed(image.GetSize()))
    vv = float(np.prod(image.GetSpacing()))
    name = shell_name(shell_mm)
    if regions is None:
        regions = build_regions(image, lesion, (shell_mm,), air=air, pectoralis=pectoralis)
    det_air = _arr(regions.masks["air"], shape)
    det_pec = _arr(regions.masks["pectoralis"], shape)
    after = _arr(regions.masks[name], shape)
    les = _arr(lesion, shape)
    if hasattr(case, "labels"):
        breast_t = case.array("skin", "fat", "fibroglandular")
        parts = {"air": case.array("outside_air"),
                 "muscle": case.array("pectoralis_major", "pectoralis_minor", "chest_wall"),
                 "other": case.array("lung", "heart", "other")}
        t_air, t_pec = case.array("outside_air"), case.array("pectoralis_major")
        t_pec_any = case.array("pectoralis_major", "pectoralis_minor")
    else:
        t_air, t_pec = _arr(case.air, shape), _arr(case.pectoralis, shape)
        t_pec_any = t_pec
        breast_t = ~(t_air | t_pec | les) if breast is None else breast
        parts = nonbreast or {"air": t_air, "muscle": t_pec, "other": np.zeros(shape, bool)}
    reach = shell_mm + margin_mm
    box, d = truth_distances(lesion, reach + 1.0)
    les_b = les[box]
    shell_t = (d <= shell_mm + BOUNDARY_EPS_MM) & ~les_b
    # literal zone: the ideal shell plus every voxel within margin_mm of a shell voxel centre
    off = [b.start for b in box]
    sidx = np.nonzero(shell_t)
    tree = cKDTree(physical_points(image, tuple(s + o for s, o in zip(sidx, off, strict=True))))
    cand = np.nonzero(d <= reach + 2.0)
    dz, _ = tree.query(physical_points(image, tuple(c + o for c, o in zip(cand, off, strict=True))),
                       distance_upper_bound=margin_mm + 1e-6)
    zone = np.zeros(les_b.shape, bool)
    zone[cand] = np.isfinite(dz)
    zone |= shell_t
    out: dict[str, Any] = {}
    # project's ideal shell (no exclusions) vs the brute-force truth
    ideal_regions = build_regions(image, lesion, (shell_mm,), auto_exclusions=False)
    ideal = _arr(ideal_regions.masks[name], shape)
    ideal_b = ideal[box]
    out["shell_mismatch_voxels"] = int((ideal_b ^ shell_t).sum()) + int(ideal.sum() - ideal_b.sum())

    def dice_zone(det: np.ndarray, truth: np.ndarray, key: str) -> None:
        tz, dzn = truth[box] & zone, det[box] & zone
        out[f"{key}_truth_zone_mm3"] = float(tz.sum()) * vv
        out[f"{key}_fp_zone_mm3"] = float((dzn & ~tz).sum()) * vv
        small = tz.sum() * vv < MIN_TRUTH_MM3 and (dzn & ~tz).sum() * vv < MIN_TRUTH_MM3
        out[f"dice_{key}"] = float("nan") if small else _dice(dzn, tz)
        # the same with a one-voxel "don't care" band around the true boundary (partial-volume voxels), for
        # information: in a zone that only grazes the air, the literal Dice is set by the boundary voxels
        tb = truth[box]
        band = ndimage.binary_dilation(tb, _NB6) & ~ndimage.binary_erosion(tb, _NB6, border_value=1)
        keep = zone & ~band
        out[f"dice_{key}_band"] = float("nan") if small else _dice(det[box] & keep, tb & keep)

    dice_zone(det_air, t_air, "air")
    dice_zone(det_pec, t_pec, "pec")
    dice_zone(det_pec, t_pec_any, "pec_any")
    b5 = shell_t & breast_t[box]
    nb = {k: v[box] for k, v in parts.items()}

    def shell_stats(kept: np.ndarray, prefix: str) -> None:
        n_kept = int(kept.sum())
        out[f"{prefix}keep"] = float((kept & b5).sum() / b5.sum()) if b5.any() else float("nan")
        tot = 0
        for k, v in nb.items():
            c = int((kept & v).sum())
            tot += c
            out[f"{prefix}contam_{k}"] = c / n_kept if n_kept else 0.0
        out[f"{prefix}contamination"] = tot / n_kept if n_kept else 0.0

    shell_stats(after[box], "")
    shell_stats(shell_t, "ideal_")                                     # nothing excluded
    shell_stats(shell_t & ~t_air[box] & ~t_pec[box], "oracle_")        # true air + true pectoralis major
    out["b5_mm3"] = float(b5.sum()) * vv
    out["shell_mm3"] = float(after.sum()) * vv
    conf = {}
    for ex in ("air", "pectoralis"):
        info = getattr(regions, "exclusions", {}).get(ex, {})
        conf[ex] = (info.get("confidence"), info.get("review"))
        out[f"{ex[:3]}_assumed_contrast"] = info.get("contrast")
    out["air_confidence"], out["air_review"] = conf["air"]
    out["pec_confidence"], out["pec_review"] = conf["pectoralis"]
    out["flagged"] = bool(conf["air"][1]) or bool(conf["pectoralis"][1])
    out["violations"] = violations(out)
    return out


def violations(s: dict[str, Any]) -> list[str]:
    """Which issue-11 criteria a scored case fails (NaN Dice = not applicable)."""
    v = []
    if np.isfinite(s["dice_pec"]) and s["dice_pec"] < PEC_DICE_MIN:
        v.append(f"pec Dice {s['dice_pec']:.3f} < {PEC_DICE_MIN}")
    if np.isfinite(s["dice_air"]) and s["dice_air"] < AIR_DICE_MIN:
        v.append(f"air Dice {s['dice_air']:.3f} < {AIR_DICE_MIN}")
    if np.isfinite(s["keep"]) and s["keep"] < KEEP_MIN:
        v.append(f"keep {100 * s['keep']:.1f}% < {100 * KEEP_MIN:.0f}%")
    if s["contamination"] > CONTAM_MAX:
        v.append(f"air/muscle {100 * s['contamination']:.1f}% > {100 * CONTAM_MAX:.0f}%")
    return v
