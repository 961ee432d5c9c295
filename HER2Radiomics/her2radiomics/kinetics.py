"""DCE-MRI series and kinetic (time-intensity curve) features per region, with the BI-RADS curve type.

The series: a pre-contrast phase followed by post-contrast phases on one grid, read from a 4D image, an ordered
list of 3D phase files, or a folder (:func:`read_series`). :func:`pick_phase` gives the phase the radiomics use
(default the 2nd post-contrast phase, as in the paper) or its subtraction image (phase minus pre-contrast).

Kinetic features of one curve S_0 (pre-contrast), S_1 (first post-contrast), ..., S_n (last phase), with
acquisition times t_k (s after injection; optional), following the BI-RADS MRI lexicon (ACR BI-RADS Atlas,
5th ed., 2013, Magnetic Resonance Imaging: kinetic curve assessment) and Kuhl et al., Radiology 1999;211:101-110:

- ``initial_enhancement_pct`` = 100 (S_1 - S_0) / S_0: enhancement at the first post-contrast phase;
- ``peak_enhancement_pct`` = 100 (S_peak - S_0) / S_0, S_peak = max over the post-contrast phases;
- ``ser`` (signal enhancement ratio; Hylton, Radiology 2006;239:42-55 / Esserman et al. 1999) =
  (S_1 - S_0) / (S_n - S_0): early over late enhancement (> 1 washout, ~1 plateau, < 1 persistent);
  NaN when S_n = S_0;
- ``washout_pct`` = 100 (S_peak - S_n) / S_peak: signal lost from the peak to the last phase (0 when the
  peak is the last phase);
- ``time_to_peak_s`` = t_peak - t_0 (NaN when the times are unknown) and ``peak_phase`` (index of the peak);
- ``delayed_change_pct`` = 100 (S_n - S_early) / S_early, where S_early is the *initial-phase* signal: the
  highest post-contrast signal acquired within ``early_window_s`` = 120 s of injection (BI-RADS: the initial
  phase is the first 2 minutes), or the first post-contrast phase when no phase lies in that window or the
  times are unknown.

Curve type (BI-RADS 2013): initial phase **slow** (< 50 %), **medium** (50-100 %), **fast** (> 100 %) from
``initial_enhancement_pct``; delayed phase from ``delayed_change_pct`` measured *from the initial-phase (early)
signal*, not from the overall peak: **persistent** (> +10 %, the signal keeps rising), **plateau** (within
+-10 %), **washout** (< -10 %). The +-10 % band is the one of Kuhl et al. 1999 used by computer-aided
evaluation systems of the BI-RADS lexicon. Curve type codes (ordinal, least to most suspicious): persistent 1,
plateau 2, washout 3.

Per region (:func:`region_kinetics`): the features of the region's *mean* curve (the curve a radiologist's ROI
gives) and the voxel-wise curve-type map: each voxel whose initial enhancement is at least
``min_enhancement_pct`` (default 50 %, "enhancing") gets its delayed type; ``washout_fraction`` (and the
persistent / plateau ones) are fractions of the enhancing voxels, ``enhancing_fraction`` of all region voxels.
``worst_type`` is the most suspicious type held by at least ``worst_min_fraction`` (10 %) of the enhancing
voxels (BI-RADS recommends reporting the most suspicious curve; Wang et al., AJR 2009;193:826-831).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from her2radiomics.errors import UserError
from her2radiomics.geometry import check_same_grid

INITIAL_TYPES = ("slow", "medium", "fast")
DELAYED_TYPES = ("persistent", "plateau", "washout")
TYPE_CODE = {"persistent": 1, "plateau": 2, "washout": 3}
#: initial phase: slow < 50 % <= medium <= 100 % < fast (BI-RADS 2013)
INITIAL_THRESHOLDS_PCT = (50.0, 100.0)
#: delayed phase: persistent > +10 %, plateau within +-10 %, washout < -10 % (Kuhl et al. 1999)
DELAYED_THRESHOLD_PCT = 10.0
#: the initial phase is the first 2 minutes after injection (BI-RADS 2013)
EARLY_WINDOW_S = 120.0
MIN_ENHANCEMENT_PCT = 50.0
WORST_MIN_FRACTION = 0.10
#: the paper's radiomics phase: the 2nd post-contrast phase (index 2 with the pre-contrast phase at 0)
DEFAULT_PHASE = 2
FEATURES = ("initial_enhancement_pct", "peak_enhancement_pct", "ser", "washout_pct", "time_to_peak_s",
            "peak_phase", "delayed_change_pct", "initial_type", "delayed_type")
_IMAGE_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")


# ------------------------------------------------------------------------------------------------ series
@dataclass
class DceSeries:
    """Phases on one grid (``phases[0]`` pre-contrast) and optional acquisition times (s after injection)."""

    phases: list[sitk.Image]
    times_s: tuple[float, ...] | None = None
    source: str = ""

    @property
    def n_post(self) -> int:
        return len(self.phases) - 1

    def array(self) -> np.ndarray:
        """(phases, z, y, x) float64 stack."""
        return np.stack([sitk.GetArrayViewFromImage(p).astype(np.float64) for p in self.phases])


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _is_image_file(p: Path) -> bool:
    return p.is_file() and p.name.lower().endswith(_IMAGE_SUFFIXES)


def parse_times(text: str | Sequence[float] | None, n_phases: int | None = None) -> tuple[float, ...] | None:
    """Acquisition times from ``"0;90;180"`` (s after injection) or a sequence; None when empty."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    if isinstance(text, str):
        parts = [t.strip() for t in re.split(r"[;,\s]+", text.strip()) if t.strip()]
        if not parts:
            return None
        try:
            times = tuple(float(t) for t in parts)
        except ValueError:
            raise UserError(f"DCE phase times {text!r} are not numbers; give seconds after injection separated by "
                            "';', e.g. 0;90;180;270") from None
    else:
        times = tuple(float(t) for t in text)
    if not all(math.isfinite(t) for t in times) or any(b <= a for a, b in zip(times, times[1:], strict=False)):
        raise UserError(f"DCE phase times {times} must be finite and increasing (s after injection, pre-contrast first)")
    if n_phases is not None and len(times) != n_phases:
        raise UserError(f"{len(times)} DCE phase times given for {n_phases} phases; give one time per phase")
    return times


def _split_4d(img: sitk.Image) -> list[sitk.Image]:
    size = list(img.GetSize())
    n = size[3]
    size[3] = 0
    out = []
    for k in range(n):
        out.append(sitk.Extract(img, size, [0, 0, 0, k], sitk.ExtractImageFilter.DIRECTIONCOLLAPSETOSUBMATRIX))
    return out


def _dicom_phases(folder: Path) -> list[tuple[Path, str | None]]:
    """The DICOM series of one folder as phases, ordered by SeriesNumber (then SeriesInstanceUID)."""
    from her2radiomics.io import describe_series, series_files

    found = series_files(folder)
    if len(found) <= 1:
        return [(folder, None)]
    descs = [describe_series(u, f) for u, f in found.items()]

    def key(d: dict) -> tuple:
        n = d["number"]
        return (0, float(n), d["uid"]) if n not in (None, "") and n.lstrip("-").replace(".", "", 1).isdigit() \
            else (1, 0.0, d["uid"])
    return [(folder, d["uid"]) for d in sorted(descs, key=key)]


def _phase_paths(src: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[tuple[Path, str | None]]:
    """(path, DICOM series or None) of every phase, pre-contrast first."""
    if isinstance(src, (list, tuple)):
        return [(Path(p), None) for p in src]
    text = str(src)
    if ";" in text:
        return [(Path(t.strip()), None) for t in text.split(";") if t.strip()]
    p = Path(text)
    if p.is_dir():
        files = sorted((f for f in p.iterdir() if _is_image_file(f)), key=lambda f: _natural_key(f.name))
        if files:
            return [(f, None) for f in files]
        subdirs = sorted((d for d in p.iterdir() if d.is_dir()), key=lambda d: _natural_key(d.name))
        if subdirs:
            return [(d, None) for d in subdirs]   # one DICOM series per sub-folder, in name order
        return _dicom_phases(p)   # one folder holding several DICOM series: SeriesNumber order
    return [(p, None)]


def read_series(src: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                times_s: str | Sequence[float] | None = None) -> DceSeries:
    """Read a DCE series: a 4D image (4th axis = phase), phase files separated by ';' or given as a list, or a
    folder of phase files (natural name order: phase2 before phase10), of one DICOM series per sub-folder (name
    order), or holding several DICOM series itself (SeriesNumber order).
    The pre-contrast phase comes first. All phases must share one grid (UserError naming the phase otherwise).
    """
    from her2radiomics.io import check_finite, read_image

    paths = _phase_paths(src)
    phases: list[sitk.Image] = []
    for k, (p, dicom_series) in enumerate(paths):
        if not p.exists():
            raise UserError(f"DCE phase {k} file not found: {p}; check the dce_phases entry")
        if p.is_file() and len(paths) == 1:
            try:
                img = sitk.ReadImage(str(p))
            except RuntimeError as exc:
                raise UserError(f"cannot read DCE series {p}: {str(exc).strip().splitlines()[-1]}") from None
            if img.GetDimension() == 4:
                phases = _split_4d(img)
                for j, ph in enumerate(phases):
                    check_finite(ph, f"DCE phase {j} of {p}")
                break
        phases.append(read_image(p, f"DCE phase {k}", series=dicom_series))
    if len(phases) < 3:
        raise UserError(f"the DCE series {src} has {len(phases)} phase(s); give the pre-contrast phase and at least 2 "
                        "post-contrast phases (a 4D image, ';'-separated files or a folder)")
    for k, ph in enumerate(phases[1:], start=1):
        if ph.GetDimension() != 3:
            raise UserError(f"DCE phase {k} is {ph.GetDimension()}D; every phase must be one 3D volume")
        check_same_grid(ph, phases[0], what=f"DCE phase {k}")
    return DceSeries(phases, parse_times(times_s, len(phases)), str(src))


def pick_phase(series: DceSeries, phase: int = DEFAULT_PHASE, subtraction: bool = False) -> sitk.Image:
    """Phase ``phase`` of the series (0 = pre-contrast, 1 = first post-contrast, ...; default 2, the paper's
    2nd post-contrast phase), or with ``subtraction`` that phase minus the pre-contrast phase (float32)."""
    n = len(series.phases)
    if not isinstance(phase, (int, np.integer)) or not 0 <= phase < n:
        raise UserError(f"--phase {phase} is outside the series (phases 0..{n - 1}, 0 = pre-contrast)")
    if subtraction:
        if phase == 0:
            raise UserError("--subtraction needs a post-contrast --phase (1 or more); phase 0 is the pre-contrast")
        a = sitk.Cast(series.phases[phase], sitk.sitkFloat32)
        b = sitk.Cast(series.phases[0], sitk.sitkFloat32)
        return sitk.Subtract(a, b)
    return series.phases[phase]


# ------------------------------------------------------------------------------------------------ curves
def initial_type(initial_pct: float) -> str | None:
    """BI-RADS initial phase: slow < 50 %, medium 50-100 %, fast > 100 % (None for NaN)."""
    if not math.isfinite(initial_pct):
        return None
    lo, hi = INITIAL_THRESHOLDS_PCT
    return "slow" if initial_pct < lo else "medium" if initial_pct <= hi else "fast"


def delayed_type(change_pct: float) -> str | None:
    """BI-RADS delayed phase from the change since the initial phase: persistent > +10 %, washout < -10 %."""
    if not math.isfinite(change_pct):
        return None
    t = DELAYED_THRESHOLD_PCT
    return "persistent" if change_pct > t else "washout" if change_pct < -t else "plateau"


def _early_index(times_s: Sequence[float] | None, n_phases: int, early_window_s: float) -> list[int]:
    """Post-contrast phase indices of the initial phase (within ``early_window_s`` of injection; else [1])."""
    if times_s is None:
        return [1]
    idx = [k for k in range(1, n_phases) if times_s[k] - times_s[0] <= early_window_s + 1e-9]
    return idx or [1]


def curve_arrays(stack: np.ndarray, times_s: Sequence[float] | None = None,
                 early_window_s: float = EARLY_WINDOW_S) -> dict[str, np.ndarray]:
    """Kinetic features of curves ``stack[k, ...]`` (k = phase, pre-contrast first), vectorised over voxels.

    Returns float arrays of the numeric features (see the module docstring); division by a zero signal gives
    NaN (a voxel with no pre-contrast signal has no relative enhancement).
    """
    s = np.asarray(stack, dtype=np.float64)
    if s.shape[0] < 3:
        raise UserError("a kinetic curve needs the pre-contrast phase and at least 2 post-contrast phases")
    s0, s1, sn = s[0], s[1], s[-1]
    post = s[1:]
    peak_i = np.argmax(post, axis=0) + 1
    peak = np.take_along_axis(s, peak_i[None], axis=0)[0]
    early = s[_early_index(times_s, s.shape[0], early_window_s)].max(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        def ratio(a, b):
            return np.where(b != 0, a / np.where(b != 0, b, 1.0), np.nan)
        out = {
            "initial_enhancement_pct": 100 * ratio(s1 - s0, s0),
            "peak_enhancement_pct": 100 * ratio(peak - s0, s0),
            "ser": ratio(s1 - s0, sn - s0),
            "washout_pct": 100 * ratio(peak - sn, peak),
            "time_to_peak_s": (np.asarray(times_s, float)[peak_i] - float(times_s[0]) if times_s is not None
                               else np.full(peak_i.shape, np.nan)),
            "peak_phase": peak_i.astype(np.float64),
            "delayed_change_pct": 100 * ratio(sn - early, early),
        }
    return out


def curve_features(curve: Sequence[float], times_s: Sequence[float] | None = None,
                   early_window_s: float = EARLY_WINDOW_S) -> dict[str, Any]:
    """Kinetic features and BI-RADS types of one curve (pre-contrast first)."""
    arr = curve_arrays(np.asarray(curve, float), times_s, early_window_s)
    out: dict[str, Any] = {k: float(v) for k, v in arr.items()}
    out["peak_phase"] = int(arr["peak_phase"])
    out["initial_type"] = initial_type(out["initial_enhancement_pct"])
    out["delayed_type"] = delayed_type(out["delayed_change_pct"])
    return out


def curve_type_map(stack: np.ndarray, times_s: Sequence[float] | None = None,
                   min_enhancement_pct: float = MIN_ENHANCEMENT_PCT,
                   early_window_s: float = EARLY_WINDOW_S) -> np.ndarray:
    """Voxel-wise delayed curve type, uint8: 0 not enhancing (initial enhancement < ``min_enhancement_pct`` or
    undefined), 1 persistent, 2 plateau, 3 washout (:data:`TYPE_CODE`)."""
    f = curve_arrays(stack, times_s, early_window_s)
    ini, dc = f["initial_enhancement_pct"], f["delayed_change_pct"]
    t = DELAYED_THRESHOLD_PCT
    out = np.where(dc > t, 1, np.where(dc < -t, 3, 2)).astype(np.uint8)
    enhancing = np.isfinite(ini) & np.isfinite(dc) & (ini >= min_enhancement_pct)
    out[~enhancing] = 0
    return out


# ------------------------------------------------------------------------------------------------ regions
def region_kinetics(series: DceSeries, masks: Mapping[str, sitk.Image], *,
                    min_enhancement_pct: float = MIN_ENHANCEMENT_PCT, early_window_s: float = EARLY_WINDOW_S,
                    worst_min_fraction: float = WORST_MIN_FRACTION) -> dict[str, dict[str, Any]]:
    """Kinetic features per region: those of the region's mean curve, the BI-RADS types, and the voxel-wise
    curve-type fractions (module docstring). Masks must be on the series grid; an empty region gives NaN."""
    ref = series.phases[0]
    stack_views = [sitk.GetArrayViewFromImage(p) for p in series.phases]
    out: dict[str, dict[str, Any]] = {}
    for name, mask in masks.items():
        check_same_grid(mask, ref, what=f"{name} mask")
        m = sitk.GetArrayViewFromImage(mask) != 0
        n = int(np.count_nonzero(m))
        if n == 0:
            out[name] = {k: math.nan for k in FEATURES if not k.endswith("_type")} | {
                "initial_type": None, "delayed_type": None, "voxels": 0, "enhancing_fraction": math.nan,
                "persistent_fraction": math.nan, "plateau_fraction": math.nan, "washout_fraction": math.nan,
                "worst_type": None, "curve": []}
            continue
        vox = np.stack([v[m].astype(np.float64) for v in stack_views])   # (phases, voxels)
        mean_curve = vox.mean(axis=1)
        rec: dict[str, Any] = curve_features(mean_curve, series.times_s, early_window_s)
        cmap = curve_type_map(vox, series.times_s, min_enhancement_pct, early_window_s)
        n_enh = int(np.count_nonzero(cmap))
        rec["voxels"] = n
        rec["enhancing_fraction"] = n_enh / n
        for t, code in TYPE_CODE.items():
            rec[f"{t}_fraction"] = (int(np.count_nonzero(cmap == code)) / n_enh) if n_enh else math.nan
        rec["worst_type"] = next((t for t in reversed(DELAYED_TYPES)
                                  if n_enh and rec[f"{t}_fraction"] >= worst_min_fraction), None)
        rec["curve"] = [float(v) for v in mean_curve]
        out[name] = rec
    return out


def curve_type_image(series: DceSeries, mask: sitk.Image | None = None,
                     min_enhancement_pct: float = MIN_ENHANCEMENT_PCT) -> sitk.Image:
    """The voxel-wise curve-type map as a uint8 image on the series grid (0 outside ``mask`` when given).

    Computed slice by slice (array axis 0), so memory stays at a few slices whatever the volume size."""
    views = [sitk.GetArrayViewFromImage(p) for p in series.phases]
    m = None
    if mask is not None:
        check_same_grid(mask, series.phases[0], what="mask")
        m = sitk.GetArrayViewFromImage(mask) != 0
    cmap = np.zeros(views[0].shape, np.uint8)
    for k in range(cmap.shape[0]):
        if m is not None and not m[k].any():
            continue
        cmap[k] = curve_type_map(np.stack([v[k].astype(np.float64) for v in views]), series.times_s,
                                 min_enhancement_pct)
    if m is not None:
        cmap[~m] = 0
    img = sitk.GetImageFromArray(cmap)
    img.CopyInformation(series.phases[0])
    return img


#: numeric kinetic columns written to the features table per region
COLUMN_FEATURES = ("initial_enhancement_pct", "peak_enhancement_pct", "ser", "washout_pct", "time_to_peak_s",
                   "delayed_change_pct", "enhancing_fraction", "persistent_fraction", "plateau_fraction",
                   "washout_fraction")


def kinetic_columns(result: Mapping[str, Mapping[str, Any]], lesion_region: str = "intra") -> dict[str, Any]:
    """Features-table columns: ``{region}_kinetic_{name}`` (numeric), ``{region}_kinetic_tic_code`` (1/2/3) and
    ``{lesion}_tic_type`` (persistent / plateau / washout, the lesion's BI-RADS delayed type; usable as a
    clinical covariate), ``{lesion}_tic_initial`` (slow / medium / fast)."""
    cols: dict[str, Any] = {}
    for region, rec in result.items():
        for k in COLUMN_FEATURES:
            cols[f"{region}_kinetic_{k}"] = rec.get(k, math.nan)
        t = rec.get("delayed_type")
        cols[f"{region}_kinetic_tic_code"] = TYPE_CODE.get(t, math.nan) if t else math.nan
    if lesion_region in result:
        cols[f"{lesion_region}_tic_type"] = result[lesion_region].get("delayed_type") or ""
        cols[f"{lesion_region}_tic_initial"] = result[lesion_region].get("initial_type") or ""
    return cols


def is_kinetic_column(name: str) -> bool:
    """True for the kinetic columns of :func:`kinetic_columns` (kept out of the radiomics feature sets)."""
    return "_kinetic_" in name or name.endswith(("_tic_type", "_tic_initial"))


def summary_text(result: Mapping[str, Mapping[str, Any]], region: str = "intra") -> str:
    """One line: the region's curve type and main numbers."""
    r = result.get(region)
    if not r or not r.get("voxels"):
        return f"{region}: no kinetic curve (empty region)"
    return (f"{region} TIC: {r['initial_type']} / {r['delayed_type']} (initial {r['initial_enhancement_pct']:.0f} %, "
            f"delayed {r['delayed_change_pct']:+.0f} %, SER {r['ser']:.2f}, washout voxels "
            f"{100 * r['washout_fraction']:.0f} % of enhancing)")


# ------------------------------------------------------------------------------------------------ batch hooks
@dataclass(frozen=True)
class DceOptions:
    """How the batch runner uses a case's DCE series: the radiomics phase and whether to subtract."""

    phase: int = DEFAULT_PHASE
    subtraction: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"phase": int(self.phase), "subtraction": bool(self.subtraction)}


def check_options(phase: int | None, subtraction: bool) -> DceOptions:
    """``--phase N`` (>= 0; default 2) and ``--subtraction`` (needs a post-contrast phase)."""
    p = DEFAULT_PHASE if phase is None else phase
    if not isinstance(p, (int, np.integer)) or p < 0:
        raise UserError(f"--phase {phase} must be a phase index >= 0 (0 = pre-contrast, 2 = 2nd post-contrast)")
    if subtraction and p == 0:
        raise UserError("--subtraction needs a post-contrast --phase (1 or more); phase 0 is the pre-contrast")
    return DceOptions(int(p), bool(subtraction))


def case_images(series: DceSeries, opts: DceOptions) -> tuple[sitk.Image, sitk.Image | None]:
    """The image the regions and radiomics use, and the image the automatic exclusions are detected on (the
    un-subtracted phase when subtracting: air and fat are both near zero on a subtraction image; else None)."""
    image = pick_phase(series, opts.phase, opts.subtraction)
    return image, (series.phases[opts.phase] if opts.subtraction else None)


def resample_series(series: DceSeries, spacing: Sequence[float], interpolator: str = "linear") -> DceSeries:
    """Every phase onto ``spacing`` (``io.resample_image``, the same grid for all phases)."""
    from her2radiomics.io import resample_image

    return DceSeries([resample_image(p, spacing, interpolator) for p in series.phases], series.times_s,
                     series.source)


def case_kinetic_columns(series: DceSeries, feature_masks: Mapping[str, sitk.Image]) -> dict[str, Any]:
    """Kinetic columns of one case for the features table (:func:`kinetic_columns` of :func:`region_kinetics`)."""
    return kinetic_columns(region_kinetics(series, feature_masks))


def add_tic_to_labels(labels: Any, features: Any, id_column: str = "case_id",
                      lesion_region: str = "intra") -> Any:
    """The labels table with the lesion's curve type from a features table: columns ``tic_type`` (persistent /
    plateau / washout) and ``tic_initial`` (slow / medium / fast), joined on ``id_column`` (first reader's row of a
    case). For clinical covariates read from the labels table (e.g. ``--clinical tic_type:cat``); an existing
    ``tic_type`` column (a radiologist's reading) is kept and the computed one is named ``tic_type_computed``."""
    import pandas as pd

    lab = pd.DataFrame(labels).copy()
    feat = pd.DataFrame(features)
    src = {f"{lesion_region}_tic_type": "tic_type", f"{lesion_region}_tic_initial": "tic_initial"}
    missing = [c for c in src if c not in feat.columns]
    if missing:
        raise UserError(f"the features table has no {missing[0]} column; extract a manifest with a dce_phases column "
                        "first (docs/kinetics.md)")
    if id_column not in lab.columns or id_column not in feat.columns:
        raise UserError(f"both tables need the id column {id_column!r}")
    tic = feat[[id_column, *src]].drop_duplicates(id_column).rename(columns=src)
    tic[id_column] = tic[id_column].astype(str)
    lab[id_column] = lab[id_column].astype(str)
    clash = {c: f"{c}_computed" for c in ("tic_type", "tic_initial") if c in lab.columns}
    return lab.merge(tic.rename(columns=clash), on=id_column, how="left")
