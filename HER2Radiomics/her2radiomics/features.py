"""pyradiomics feature extraction: one crop and one filter pass per case, reused for every region.

The numbers are pyradiomics' own: every feature is computed by pyradiomics' feature classes
(:class:`radiomics.featureextractor.RadiomicsFeatureExtractor` ``computeShape`` / ``computeFeatures``) on the
same inputs that ``RadiomicsFeatureExtractor.execute`` would build. What changes is the order of work:

1. the image and every region mask are cropped ONCE to the bounding box of the union of the regions plus a margin
   (``max(25 mm, 5 x largest LoG sigma)`` plus the wavelet's support in voxels), so filters never run on the whole
   field of view (SlicerRadiomics-style calls filter the full 448 x 448 x 160 volume for every region). For a case
   built from a lesion (:func:`extract_case_from_lesion`, the command line; :func:`extract_case` with ``reach_mm``,
   the Slicer panel) the box is that of every voxel within the largest shell distance of the lesion, known before
   the shells and exclusions are computed, so the lesion's filters and features run while they are built;
2. each derived image (original, each LoG sigma, each wavelet band) is computed ONCE on that crop;
3. for each region, exactly the steps of ``execute`` follow: ``getMask`` (UInt32 cast), ``checkMask`` (bounding
   box and ROI checks; re-implemented with numpy for on-grid masks, see :func:`_check_mask`), optional ``resegmentMask``, shape on the unfiltered crop, then ``cropToTumorMask`` of each
   derived image to the region's bounding box (``padDistance`` 0, as ``execute`` uses for segment-based extraction)
   and the enabled feature classes.

The result therefore equals ``RadiomicsFeatureExtractor(params).execute(cropped_image, cropped_mask)`` feature by
feature (tested to a relative difference <= 1e-9). Settings that make the filtered image depend on the mask
(resampling, ``preCrop``, mask-based image types such as LBP3D) are handled by running those parts per region,
so exactness never depends on the parameter file. Whole-image filtering differs from filtering on the crop only
through the filters' boundary handling; docs/features.md reports how small that difference is at the default
margin.

References:
    van Griethuysen JJM et al. Computational Radiomics System to Decode the Radiographic Phenotype.
    Cancer Res 2017;77(21):e104-e107 (pyradiomics).
    Zwanenburg A et al. The Image Biomarker Standardization Initiative. Radiology 2020;295:328-338 (IBSI).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import yaml

from her2radiomics.errors import UserError
from her2radiomics.geometry import bbox_zyx, check_same_grid, crop, expand_bbox_mm
from her2radiomics.resources import resource

#: minimum crop margin around the union of regions (mm), ARCHITECTURE.md
DEFAULT_MARGIN_MM = 25.0
#: the margin is at least this many times the largest LoG sigma
SIGMA_MARGIN_FACTOR = 5.0

_TOP_LEVEL = ("imageType", "featureClass", "setting", "voxelSetting")
#: image types whose output depends on the mask (computed per region, never shared)
_MASK_DEPENDENT_TYPES = frozenset({"LBP3D"})



def _quiet_radiomics() -> None:
    """pyradiomics sets its logger to INFO on import; its binCount warning is our documented choice."""
    import radiomics  # noqa: F401

    logging.getLogger("radiomics").setLevel(logging.ERROR)


# --------------------------------------------------------------------------------------------------------------
# parameter files
# --------------------------------------------------------------------------------------------------------------
def default_params_path() -> Path:
    """Path of the shipped default parameter file (``Resources/Parameters/her2radiomics_default.yaml``)."""
    return resource("Parameters", "her2radiomics_default.yaml")


def _radiomics_catalogue() -> tuple[list[str], dict[str, Any]]:
    import radiomics

    _quiet_radiomics()
    return list(radiomics.getImageTypes()), dict(radiomics.getFeatureClasses())


def load_params(path: str | os.PathLike[str] | Mapping[str, Any] | None = None) -> dict:
    """Read and validate a pyradiomics parameter file (YAML or JSON) and return it as a plain dict.

    ``path`` may be None (the default file), a file path, or an already-parsed mapping (e.g. from Slicer).
    Validation: the file exists and parses; top-level keys are pyradiomics' (imageType, featureClass, setting,
    voxelSetting); every image type and feature class is known to the installed pyradiomics and every listed
    feature name exists in its class; the settings pass pyradiomics' own schema (``radiomics/schemas``).
    Any problem raises :class:`UserError` with one line. Empty ``imageType`` means Original only and an empty
    ``featureClass`` means all classes, as in pyradiomics.
    """
    where = "parameter dictionary"
    if path is None:
        path = default_params_path()
    if isinstance(path, Mapping):
        raw: Any = copy.deepcopy(dict(path))
    else:
        p = Path(path)
        where = f"parameter file {p}"
        if not p.is_file():
            raise UserError(f"parameter file not found: {p}; give a pyradiomics YAML parameter file (--params)")
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read {where}: {exc}; give a readable UTF-8 YAML file") from None
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise UserError(f"{where} is not valid YAML{at}: {problem}; fix the syntax") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"{where} must be a mapping with imageType / featureClass / setting sections")
    unknown = [k for k in raw if k not in _TOP_LEVEL]
    if unknown:
        raise UserError(f"{where}: unknown section {unknown[0]!r}; use only {', '.join(_TOP_LEVEL)}")

    image_types, feature_classes = _radiomics_catalogue()
    params: dict[str, Any] = {}

    it = raw.get("imageType") or {"Original": {}}
    if not isinstance(it, dict):
        raise UserError(f"{where}: imageType must be a mapping such as 'Original: {{}}'")
    params["imageType"] = {}
    for name, custom in it.items():
        if name not in image_types:
            raise UserError(f"{where}: unknown image type {name!r}; use one of {', '.join(sorted(image_types))}")
        if custom is None:
            custom = {}
        if not isinstance(custom, dict):
            raise UserError(f"{where}: settings of image type {name!r} must be a mapping (e.g. 'sigma: [1.0, 3.0]')")
        params["imageType"][name] = custom
    if "LoG" in params["imageType"]:
        sig = params["imageType"]["LoG"].get("sigma", (raw.get("setting") or {}).get("sigma"))
        if not sig:
            raise UserError(f"{where}: image type LoG needs 'sigma' (list of mm values, e.g. [1.0, 3.0, 5.0])")

    fc = raw.get("featureClass") or {k: None for k in feature_classes if k != "shape2D"}
    if not isinstance(fc, dict):
        raise UserError(f"{where}: featureClass must be a mapping such as 'glcm:' or 'glcm: [Contrast]'")
    params["featureClass"] = {}
    for name, feats in fc.items():
        if name not in feature_classes:
            raise UserError(
                f"{where}: unknown feature class {name!r}; use one of {', '.join(sorted(feature_classes))}"
            )
        if feats is not None:
            if isinstance(feats, str):
                feats = [feats]
            if not isinstance(feats, list):
                raise UserError(f"{where}: features of class {name!r} must be a list of names or empty (all)")
            known = feature_classes[name].getFeatureNames()
            bad = [f for f in feats if f not in known]
            if bad:
                raise UserError(f"{where}: unknown feature {bad[0]!r} in class {name!r}; see pyradiomics' feature list")
            feats = list(feats) or None
        params["featureClass"][name] = feats

    setting = raw.get("setting") or {}
    if not isinstance(setting, dict):
        raise UserError(f"{where}: setting must be a mapping of pyradiomics settings")
    params["setting"] = dict(setting)
    if raw.get("voxelSetting"):
        params["voxelSetting"] = dict(raw["voxelSetting"])
    _schema_check(params, where)
    return params


def _schema_check(params: dict, where: str) -> None:
    """pyradiomics' own pykwalify schema (setting types and ranges, wavelet names, interpolators)."""
    import pykwalify.core
    from radiomics import getParameterValidationFiles

    logging.getLogger("pykwalify").setLevel(logging.CRITICAL)
    schema_file, schema_funcs = getParameterValidationFiles()
    try:
        core = pykwalify.core.Core(source_data=copy.deepcopy(params), schema_files=[schema_file], extensions=[schema_funcs])
        core.validate(raise_exception=True)
    except Exception as exc:  # pykwalify raises SchemaError / ValueError / TypeError with multi-line text
        msg = " ".join(str(getattr(exc, "msg", None) or exc).split())
        msg = msg.replace("<SchemaError: error code 2: ", "").rstrip(">: ")
        raise UserError(f"{where}: invalid setting ({msg[:300]}); see pyradiomics' parameter documentation") from None


def parameter_file_hash(params: Mapping[str, Any]) -> str:
    """``"sha256:<hex>"`` of the canonical JSON of a (validated) parameter dict.

    Canonical = ``json.dumps(params, sort_keys=True, separators=(",", ":"))``, so formatting, comments and key
    order of the YAML file do not matter; any setting, image type or feature change does.
    """
    canon = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canon.encode("utf-8")).hexdigest()


def n_features_per_region(params: Mapping[str, Any]) -> int:
    """Number of non-diagnostic features pyradiomics returns per region for ``params`` (3D, segment-based)."""
    _, classes = _radiomics_catalogue()
    n_images = 0
    for name, custom in params["imageType"].items():
        if name == "Original":
            n_images += 1
        elif name == "LoG":
            n_images += len(custom.get("sigma", params["setting"].get("sigma", [])))
        elif name == "Wavelet":
            n_images += 8 * int(custom.get("level", params["setting"].get("level", 1)))
        else:
            n_images += 1
    total = 0
    for cls, feats in params["featureClass"].items():
        count = len(feats) if feats else sum(1 for d in classes[cls].getFeatureNames().values() if not d)
        if cls == "shape":
            total += count
        elif cls != "shape2D":
            total += count * n_images
    return total


def crop_margin(params: Mapping[str, Any]) -> tuple[float, int]:
    """(margin_mm, extra_voxels) for the case crop.

    margin_mm = max(25 mm, 5 x the largest LoG sigma): a Gaussian's weight beyond 5 sigma is < 3e-6 of its peak,
    so the recursive LoG of the crop matches the whole-image LoG inside the regions (see docs/features.md for the
    measured differences). extra_voxels covers the stationary wavelet's support: at decomposition level j the
    filter (length L) is dilated by 2^(j-1), so n levels reach (L - 1)(2^n - 1) voxels; plus 2 voxels for the
    small-kernel filters (gradient, LBP).
    """
    setting = params.get("setting", {})
    sigmas: list[float] = []
    extra = 2
    for name, custom in params.get("imageType", {}).items():
        if name == "LoG":
            sigmas += [float(s) for s in custom.get("sigma", setting.get("sigma", []))]
        if name == "Wavelet":
            import pywt

            wname = custom.get("wavelet", setting.get("wavelet", "coif1"))
            n = int(custom.get("start_level", setting.get("start_level", 0))) + int(custom.get("level", setting.get("level", 1)))
            extra = max(extra, (pywt.Wavelet(wname).dec_len - 1) * (2**n - 1) + 2)
    margin = max(DEFAULT_MARGIN_MM, SIGMA_MARGIN_FACTOR * max(sigmas, default=0.0))
    return margin, extra


def set_threads(n: int) -> None:
    """Limit ITK (SimpleITK filters used by pyradiomics) to ``n`` threads in this process."""
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, int(n)))


# --------------------------------------------------------------------------------------------------------------
# per-case extraction
# --------------------------------------------------------------------------------------------------------------
def _as_params(params: Any) -> dict:
    if params is None or isinstance(params, (str, os.PathLike)):
        return load_params(params)
    if isinstance(params, Mapping):
        p = dict(params)
        if set(p) <= set(_TOP_LEVEL) and "imageType" in p and "featureClass" in p and "setting" in p:
            return copy.deepcopy(p)  # already validated by load_params
        return load_params(p)
    raise UserError(f"parameters must be a file path or a mapping, not {type(params).__name__}")


def _extractor(params: dict):
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    _quiet_radiomics()
    ext = RadiomicsFeatureExtractor(copy.deepcopy(params))
    ext.settings["additionalInfo"] = False  # diagnostics stay out of the table
    ext.settings["label"] = 1  # region masks are 0/1
    return ext


def _mask_view(mask: sitk.Image, image: sitk.Image, name: str) -> np.ndarray:
    if not isinstance(mask, sitk.Image):
        raise UserError(f"region {name!r} must be a SimpleITK image on the image grid")
    check_same_grid(mask, image, what=f"region {name!r} mask")
    return sitk.GetArrayViewFromImage(mask)


def _bbox_nonzero(a: np.ndarray) -> tuple[tuple[int, int], ...] | None:
    """:func:`geometry.bbox_zyx` (box of the non-zero voxels) of a whole-image 3D mask in one pass over the array.

    Unsigned / boolean masks: the per-slice maximum finds the slab, the in-plane box comes from that slab only
    (a lesion's region covers a few of the 160 slices), so a 448 x 448 x 160 mask costs ~1 ms instead of ~12 ms.
    """
    if a.ndim != 3 or a.dtype.kind not in "ub" or not a.flags.c_contiguous:
        return bbox_zyx(a)
    z = np.flatnonzero(a.reshape(a.shape[0], -1).max(axis=1))
    if z.size == 0:
        return None
    slab = a[z[0]:z[-1] + 1].max(axis=0)
    y, x = np.flatnonzero(slab.max(axis=1)), np.flatnonzero(slab.max(axis=0))
    return (int(z[0]), int(z[-1]) + 1), (int(y[0]), int(y[-1]) + 1), (int(x[0]), int(x[-1]) + 1)


def prepare_crop(
    image: sitk.Image, masks: Mapping[str, sitk.Image], params: Mapping[str, Any], margin_mm: float | None = None
) -> tuple[sitk.Image, dict[str, sitk.Image], tuple[tuple[int, int], ...]]:
    """Crop the image and every mask once to the union of the regions plus the crop margin.

    Returns (cropped image, {region: cropped uint8 0/1 mask}, bbox in (z, y, x) full-image indices). An empty
    region raises UserError naming it.
    """
    if not masks:
        raise UserError("no region masks given; pass at least the lesion ('intra')")
    arrays: dict[str, np.ndarray] = {}
    boxes = []
    for name, m in masks.items():
        a = _mask_view(m, image, name)
        box = _bbox_nonzero(a)  # any non-zero value is inside the region
        if box is None:
            raise UserError(
                f"region {name!r} is empty (0 voxels); check the lesion mask, the shell distances and the "
                "air/pectoralis exclusions"
            )
        arrays[name] = a
        boxes.append(box)
    union_box = tuple((min(b[ax][0] for b in boxes), max(b[ax][1] for b in boxes)) for ax in range(3))
    return _crop_to_box(image, arrays, union_box, params, margin_mm)


def _crop_to_box(image: sitk.Image, arrays: Mapping[str, np.ndarray], union_box: tuple[tuple[int, int], ...],
                 params: Mapping[str, Any], margin_mm: float | None
                 ) -> tuple[sitk.Image, dict[str, sitk.Image], tuple[tuple[int, int], ...]]:
    """Crop the image and the masks to ``union_box`` grown by the crop margin (see :func:`prepare_crop`)."""
    shape = tuple(reversed(image.GetSize()))
    margin, extra = crop_margin(params)
    if margin_mm is not None:
        margin = float(margin_mm)
    if extra * max(image.GetSpacing()) <= margin:
        extra = 0  # the mm margin already covers the wavelet / small-kernel support on every axis
    bbox = expand_bbox_mm(union_box, image.GetSpacing(), margin, shape, extra_voxels=extra)
    img_c = crop(image, bbox)
    return img_c, _crop_masks(arrays, bbox, img_c), bbox


def _crop_masks(arrays: Mapping[str, np.ndarray], bbox: tuple[tuple[int, int], ...], img_c: sitk.Image
                ) -> dict[str, sitk.Image]:
    sl = tuple(slice(lo, hi) for lo, hi in bbox)
    out: dict[str, sitk.Image] = {}
    for name, a in arrays.items():
        mc = sitk.GetImageFromArray((a[sl] != 0).astype(np.uint8))
        mc.CopyInformation(img_c)
        out[name] = mc
    return out


#: the crop rule of a case built from its lesion (part of the batch cache key: change it when the crop changes)
CROP_RULE = "lesion-reach+margin/1"


def reach_box(lesion: np.ndarray, spacing_xyz: tuple[float, ...], reach_mm: float) -> tuple[tuple[int, int], ...] | None:
    """(z, y, x) box of every voxel within ``reach_mm`` of the lesion (clipped to the array), or None if empty.

    Contains every shell ``peri{d}`` with d <= reach_mm (voxels at distance <= d + 1e-6 mm, regions.py), whatever
    the exclusions remove from it, so the case crop is known from the lesion alone (:func:`extract_case_from_lesion`).
    """
    box = _bbox_nonzero(lesion)
    if box is None:
        return None
    return expand_bbox_mm(box, spacing_xyz, float(reach_mm) + 1e-6, lesion.shape) if reach_mm > 0 else box


def _crop_case_to_reach(image: sitk.Image, masks: Mapping[str, sitk.Image], box: tuple[tuple[int, int], ...] | None,
                        reach_mm: float, params: Mapping[str, Any], margin_mm: float | None, lesion_name: str
                        ) -> tuple[sitk.Image, dict[str, sitk.Image], tuple[tuple[int, int], ...]]:
    """Crop the image and every region to the lesion's reach box plus the margin (empty / out-of-reach regions refused)."""
    if box is None:
        raise UserError(f"region {lesion_name!r} is empty (0 voxels); check the lesion mask")
    arrays: dict[str, np.ndarray] = {}
    for name, m in masks.items():
        a = _mask_view(m, image, name)
        b = _bbox_nonzero(a)
        if b is None:
            raise UserError(
                f"region {name!r} is empty (0 voxels); check the lesion mask, the shell distances and the "
                "air/pectoralis exclusions"
            )
        if any(lo < r0 or hi > r1 for (lo, hi), (r0, r1) in zip(b, box, strict=True)):
            raise ValueError(f"region {name!r} reaches beyond {reach_mm:g} mm of the lesion; pass the largest "
                             "shell distance as reach_mm")
        arrays[name] = a
    if not arrays:
        raise UserError("no region masks given; pass at least the lesion ('intra')")
    return _crop_to_box(image, arrays, box, params, margin_mm)


def _region_error(name: str, exc: Exception) -> UserError:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return UserError(f"region {name!r} cannot be used by pyradiomics: {msg}; check that region's mask")


def _check_mask(roi: np.ndarray, settings: Mapping[str, Any]) -> np.ndarray:
    """``imageoperations.checkMask`` for a mask already on the image grid, without its label-statistics pass.

    Returns the same bounding box, ``numpy.array([L_x, U_x, L_y, U_y, L_z, U_z])`` (inclusive index bounds as
    ``LabelStatisticsImageFilter.GetBoundingBox``), and raises the same ValueErrors for too few dimensions or
    voxels (``minimumROIDimensions``, ``minimumROISize``).
    """
    bb = bbox_zyx(roi)
    if bb is None:
        raise ValueError("Label (1) not present in mask")
    bounding = np.array([v for lo, hi in reversed(bb) for v in (lo, hi - 1)])
    ndims = int(np.sum((bounding[1::2] - bounding[0::2] + 1) > 1))
    min_dims = settings.get("minimumROIDimensions", 2)
    if ndims == 0:
        raise ValueError("mask only contains 1 segmented voxel! Cannot extract features for a single voxel.")
    if ndims < min_dims:
        raise ValueError(f"mask has too few dimensions (number of dimensions {ndims}, minimum required {min_dims})")
    min_size = settings.get("minimumROISize")
    if min_size is not None and int(np.count_nonzero(roi)) <= min_size:
        raise ValueError(f"Size of the ROI is too small (minimum size: {min_size:g}, ROI size: {int(np.count_nonzero(roi))}")
    return bounding


def region_problem(mask: sitk.Image, params: Mapping[str, Any]) -> str | None:
    """Why pyradiomics would refuse a region mask (no voxel, one voxel, too few dimensions, too small), or None.

    The same checks as :func:`_check_mask` (pyradiomics' ``checkMask``) with the parameter file's
    ``minimumROIDimensions`` / ``minimumROISize``; lets a cohort run drop an unusable shell instead of the case.
    """
    arr = sitk.GetArrayViewFromImage(mask)
    box = _bbox_nonzero(arr)
    if box is None:
        return "0 voxels"
    try:
        _check_mask(arr[tuple(slice(lo, hi) for lo, hi in box)] != 0, (params or {}).get("setting") or {})
    except ValueError as exc:
        return " ".join(str(exc).split())
    return None


def _filtered_images(ext, image: sitk.Image, mask: sitk.Image, settings: dict, types: Iterable[str]):
    """Yield (derived image, image type name, settings) exactly as ``execute`` builds its generators."""
    from radiomics import imageoperations

    for image_type in types:
        args = settings.copy()
        args.update(ext.enabledImagetypes[image_type])
        yield from getattr(imageoperations, f"get{image_type}Image")(image, mask, **args)


# --------------------------------------------------------------------------------------------------------------
# within-case parallelism: the case is split into units of work, spread over a persistent pool of helpers
# --------------------------------------------------------------------------------------------------------------
#: cost model used to split one case over workers (seconds on one core of the 2-core benchmark machine, fitted
#: with cProfile on the 6, 8 and 15 mm phantoms of benchmarks/bench_case.py; only the ratios matter)
_COST_SHAPE_PER_BBOX_VOXEL = 2.6e-6  # calculate_coefficients (marching cubes over the region's bounding box)
_COST_LOG_PER_CROP_VOXEL = 1.5e-7  # one LaplacianRecursiveGaussian on the crop
_COST_WAVELET_PER_CROP_VOXEL = 2.4e-7  # one stationary wavelet transform (all bands) on the crop
_COST_OTHER_FILTER_PER_CROP_VOXEL = 5e-8  # square, gradient, LBP, ...
_COST_FEATURES_PER_REGION = 0.0106  # all feature classes of one derived image, fixed part per region
_COST_FEATURES_PER_VOXEL = 2.0e-6  # ... and the part that grows with the region's voxels

_EXTRACTORS: dict[str, Any] = {}  # params hash -> RadiomicsFeatureExtractor (validated once per process)
_POOL: dict[str, Any] = {}  # {"pool": multiprocessing pool, "n": helper processes, "pid": owner}
_POOL_ATEXIT: list[bool] = []  # the atexit hook is registered once per process
_DERIVED: dict[str, Any] = {}  # {"token": case token, "items": {(image type, output index): (image, name, kwargs)}}


def available_cores() -> int:
    """Cores this process may run on (the CPU affinity mask where the OS has one, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _fork_available() -> bool:
    """Helpers are forked (no re-import, nothing re-read) on Linux; elsewhere they would be spawned."""
    import multiprocessing

    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def resolve_case_workers(case_workers: int | None) -> int:
    """Number of processes one case is spread over.

    ``None`` (the default): all cores on Linux, where helpers are forked from the running process in
    milliseconds; 1 elsewhere, where a spawned helper would first re-import pyradiomics (about 1 s) and a single
    case would not gain, and 1 inside the Slicer application itself (a GUI process is not forked; the panel's
    background worker is a plain Python process and uses all cores). ``-1``: all cores. A positive integer: that
    many processes (this one included).
    """
    if case_workers is None:
        in_slicer_app = getattr(sys.modules.get("slicer"), "app", None) is not None
        return available_cores() if _fork_available() and not in_slicer_app else 1
    if isinstance(case_workers, bool) or not isinstance(case_workers, (int, np.integer)):
        raise UserError(f"--case-workers must be an integer number of processes, not {case_workers!r}")
    n = int(case_workers)
    if n == -1:
        return available_cores()
    if n < 1:
        raise UserError(f"--case-workers must be a positive number of processes (or -1 for all cores), got {n}")
    return n


def _pool_init() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the pool
    set_threads(1)  # the helpers share the cores with the parent; ITK threads would only oversubscribe them
    _quiet_radiomics()


def _ticker(progress: Callable[[float, str], None] | None, total: int) -> Callable[[str], None]:
    """A ``tick(name)`` that reports the fraction of ``total`` work units done so far to ``progress`` (if any)."""
    n = max(1, total)
    done = 0

    def tick(name: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(min(1.0, done / n), name)

    return tick


def case_pool(workers: int):
    """The persistent pool of ``workers - 1`` helper processes for within-case parallelism (None for 1 worker).

    Created on first use and kept for the life of the process, so a cohort or a GUI session pays the start once.
    Call it early (before large images are read) to fork small helpers; :func:`shutdown_case_pool` ends it.
    Returns None (the case then runs in this process) when helpers cannot be started, e.g. inside a daemonic
    worker of another pool.
    """
    n = int(workers) - 1
    if n < 1:
        return None
    if _POOL.get("pool") is not None and _POOL.get("pid") == os.getpid():
        if _POOL["n"] == n:
            return _POOL["pool"]
        shutdown_case_pool()
    _POOL.clear()  # a pool inherited through fork belongs to the parent
    import multiprocessing
    import signal
    import warnings

    ctx = multiprocessing.get_context("fork" if _fork_available() else "spawn")
    # a Ctrl-C (sent to the whole process group by a terminal) must not reach a helper between its fork and its
    # initializer (it would print a KeyboardInterrupt traceback) nor half-build the pool here: SIGINT is blocked
    # while the helpers start, and a Ctrl-C pressed meanwhile is delivered right after, to a complete pool
    block = hasattr(signal, "pthread_sigmask")
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if block else None
    try:
        with warnings.catch_warnings():
            # Python >= 3.12 warns about fork in a process with threads; ITK re-creates its thread pool at fork
            # (pthread_atfork) and the helpers run single-threaded
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                pool = ctx.Pool(n, initializer=_pool_init)
            except (AssertionError, OSError, ValueError):  # daemonic processes may not have children
                return None
        _POOL.update(pool=pool, n=n, pid=os.getpid())
    finally:
        if block:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    if not _POOL_ATEXIT:
        import atexit

        atexit.register(shutdown_case_pool)  # stop the helpers before the interpreter tears its modules down
        _POOL_ATEXIT.append(True)
    return pool


def shutdown_case_pool() -> None:
    """Stop the helper processes of :func:`case_pool` (they are also stopped when this process exits)."""
    pool, pid = _POOL.get("pool"), _POOL.get("pid")
    _POOL.clear()
    if pool is not None and pid == os.getpid():
        pool.terminate()
        pool.join()


def _cached_extractor(params: dict):
    key = parameter_file_hash(params)
    ext = _EXTRACTORS.get(key)
    if ext is None:
        if len(_EXTRACTORS) >= 8:
            _EXTRACTORS.clear()
        ext = _EXTRACTORS[key] = _extractor(params)
    return ext


class _Case:
    """What a worker needs for one case: the cropped image, the prepared masks and the parameters (picklable)."""

    def __init__(self, image: sitk.Image, masks: dict[str, sitk.Image], params: dict,
                 bboxes: dict[str, np.ndarray] | None = None, shape_masks: dict[str, sitk.Image] | None = None):
        self.image = image
        self.masks = masks  # UInt32 feature masks (resegmented when resegmentRange is set)
        self.params = params
        self.bboxes = bboxes or {}  # checkMask bounding boxes
        self.shape_masks = shape_masks or {}  # only where shape uses a different mask (resegmentShape)


class _Unit:
    """One piece of a case: shape of a region, per-region ``execute``, or some outputs of one image type."""

    __slots__ = ("kind", "image_type", "items", "region", "ticks")

    def __init__(self, kind: str, image_type: str = "", items: tuple[int, ...] = (), region: str = "", ticks: int = 0):
        self.kind, self.image_type, self.items, self.region, self.ticks = kind, image_type, items, region, ticks

    def __getstate__(self):
        return (self.kind, self.image_type, self.items, self.region, self.ticks)

    def __setstate__(self, state):
        self.kind, self.image_type, self.items, self.region, self.ticks = state


def _n_outputs(image_type: str, args: Mapping[str, Any], ndim: int = 3) -> int:
    """Number of derived images pyradiomics' ``get<type>Image`` yields (used for progress and planning)."""
    if image_type == "LoG":
        return len(args.get("sigma", []))
    if image_type == "Wavelet":
        axes = ndim - (1 if args.get("force2D", False) else 0)
        return (2**axes - 1) * int(args.get("level", 1)) + 1
    if image_type == "LBP3D":
        return int(args.get("lbp3DLevels", 2)) + 1
    return 1


def _floats(fv: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in fv.items() if not k.startswith("diagnostics_")}


_FEATURE_CLASSES: dict[type, type] = {}  # pyradiomics feature class -> the same class, its names enumerated once


def _named_once(cls: type) -> type:
    """``cls`` with ``getFeatureNames`` computed once per process instead of at every instantiation.

    pyradiomics' ``RadiomicsFeaturesBase.__init__`` enumerates the class's ``get<Name>FeatureValue`` methods with
    ``inspect.getmembers`` each time (7 % of a case's feature time); the subclass returns a copy of that same dict
    and changes nothing else (same module, hence the same logger; same methods, hence the same values).
    """
    sub = _FEATURE_CLASSES.get(cls)
    if sub is None:
        names = dict(cls.getFeatureNames())
        sub = type(cls.__name__, (cls,), {"__module__": cls.__module__, "__doc__": cls.__doc__,
                                          "getFeatureNames": classmethod(lambda _cls, _n=names: dict(_n))})
        _FEATURE_CLASSES[cls] = sub
    return sub


def _compute_features(ext, image: sitk.Image, mask: sitk.Image, image_type_name: str, kwargs: Mapping[str, Any]) -> dict:
    """``RadiomicsFeatureExtractor.computeFeatures(image, mask, image_type_name, **kwargs)``, step for step.

    The enabled classes in the extractor's order (shape skipped, as there), each instantiated on (image, mask,
    settings), the listed features enabled (all non-deprecated ones otherwise), ``execute()``, names
    ``<image type>_<class>_<feature>``; only the classes' feature-name enumeration is done once (:func:`_named_once`).
    """
    from radiomics import getFeatureClasses

    classes = getFeatureClasses()
    out: dict[str, Any] = {}
    for class_name, feature_names in ext.enabledFeatures.items():
        if class_name.startswith("shape") or class_name not in classes:
            continue
        fc = _named_once(classes[class_name])(image, mask, **kwargs)
        if feature_names is not None:
            for feature in feature_names:
                fc.enableFeatureByName(feature)
        for feature, value in fc.execute().items():
            out[f"{image_type_name}_{class_name}_{feature}"] = value
    return out


def _run_units(case: _Case, units: list[_Unit], tick: Callable[[str], None] | None = None, token: str = ""
               ) -> list[tuple[str, tuple[int, int], dict[str, float]]]:
    """Compute units of one case; returns (region, order key, features) with pyradiomics' order as the key.

    Each step is the one ``execute`` takes: ``computeShape`` on the unfiltered crop with the checkMask bounding
    box; every derived image from pyradiomics' own ``get<type>Image`` generator with the settings ``execute``
    passes; ``cropToTumorMask`` (padDistance 0; for mask-independent filters the same ``sitk.Crop`` bounds for
    every derived image) and ``computeFeatures`` with the generator's settings.
    """
    from radiomics import imageoperations

    ext = _cached_extractor(case.params)
    settings = ext.settings.copy()
    types = list(ext.enabledImagetypes)
    out: list[tuple[str, tuple[int, int], dict[str, float]]] = []
    crops: dict[str, tuple[list[int], list[int], sitk.Image]] = {}

    def region_crop(name: str) -> tuple[list[int], list[int], sitk.Image]:
        if name not in crops:
            mask, bbox = case.masks[name], case.bboxes[name]
            size = np.array(mask.GetSize())
            lower = [int(v) for v in np.maximum(bbox[0::2], 0)]
            upper = [int(v) for v in np.maximum(size - bbox[1::2] - 1, 0)]
            crops[name] = (lower, upper, sitk.Crop(mask, lower, upper))
        return crops[name]

    for u in units:
        if u.kind == "execute":
            try:
                fv = ext.execute(case.image, case.masks[u.region], label=1)
            except ValueError as exc:
                raise _region_error(u.region, exc) from None
            out.append((u.region, (-2, 0), _floats(fv)))
            if tick is not None:
                tick(f"region {u.region}")
            continue
        if u.kind == "shape":
            try:
                mask = case.shape_masks.get(u.region, case.masks[u.region])
                fv = ext.computeShape(case.image, mask, case.bboxes[u.region], **settings)
            except ValueError as exc:
                raise _region_error(u.region, exc) from None
            out.append((u.region, (-1, 0), _floats(fv)))
            continue
        t = u.image_type
        pos = types.index(t)
        args = settings.copy()
        args.update(ext.enabledImagetypes[t])
        regions = [u.region] if u.region else list(case.masks)
        filter_mask = case.masks[regions[0]]
        get_images = getattr(imageoperations, f"get{t}Image")
        if t == "LoG" and u.items:
            # each sigma is an independent filter: run only this unit's sigmas; computeFeatures still gets the
            # settings the full generator yields (its own kwargs, i.e. args)
            sigmas = list(args.get("sigma", []))
            gen = ((i, img, name, args) for i in u.items
                   for img, name, _ in get_images(case.image, filter_mask, **dict(args, sigma=[sigmas[i]])))
        else:
            wanted = set(u.items)
            gen = ((i, img, name, kw) for i, (img, name, kw) in enumerate(get_images(case.image, filter_mask, **args))
                   if not wanted or i in wanted)
        if token and t not in _MASK_DEPENDENT_TYPES:
            gen = _cached_derived(token, t, u.items or tuple(range(_n_outputs(t, args, case.image.GetDimension()))), gen)
        for i, derived, name, kw in gen:
            for r in regions:
                if t in _MASK_DEPENDENT_TYPES:
                    img_r, mask_r = imageoperations.cropToTumorMask(derived, case.masks[r], case.bboxes[r], padDistance=0)
                else:
                    lower, upper, mask_r = region_crop(r)
                    img_r = sitk.Crop(derived, lower, upper)  # == cropToTumorMask(derived, mask, bbox, padDistance=0)
                out.append((r, (pos, i), _floats(_compute_features(ext, img_r, mask_r, name, kw))))
            if tick is not None:
                tick(name)
    return out


def _cached_derived(token: str, image_type: str, items: tuple[int, ...], gen: Iterable):
    """The derived images ``items`` of ``image_type`` from this process's cache of case ``token``, else from ``gen``.

    A helper that filtered the crop for the lesion (while the main process built the shells) keeps the derived
    images and reuses them for the shells: the same objects, so the same values bit for bit. One case is kept.
    """
    if _DERIVED.get("token") != token:
        _DERIVED.clear()
        _DERIVED.update(token=token, items={})
    store = _DERIVED["items"]
    if all((image_type, i) in store for i in items):
        yield from ((i, *store[(image_type, i)]) for i in items)
        return
    for i, derived, name, kw in gen:
        store[(image_type, i)] = (derived, name, kw)
        yield i, derived, name, kw


def release_derived() -> None:
    """Drop the derived images this process keeps for the case being extracted (:func:`_cached_derived`)."""
    _DERIVED.clear()


def _run_share(case: _Case, units: list[_Unit], token: str = "", release: bool = False
               ) -> tuple[list[tuple[str, tuple[int, int], dict[str, float]]], float]:
    """A helper's share of a case: its results and the CPU seconds it took (for ``info``).

    ``token``: keep / reuse this case's derived images (:func:`_cached_derived`); ``release``: drop them after.
    """
    c = time.process_time()
    try:
        res = _run_units(case, units, token=token)
    finally:
        if release:
            release_derived()
    return res, time.process_time() - c


def _units(case: _Case, per_region: bool) -> list[tuple[_Unit, float, str]]:
    """Every unit of the case with its estimated cost and its setup group ('' when it has none)."""
    names = list(case.masks)
    if per_region:
        return [(_Unit("execute", region=r, ticks=1), float(sitk.GetArrayViewFromImage(case.masks[r]).sum()), "")
                for r in names]
    ext = _cached_extractor(case.params)
    settings = ext.settings.copy()
    crop_vox = float(np.prod(case.image.GetSize()))
    vox = {r: float(np.count_nonzero(sitk.GetArrayViewFromImage(case.masks[r]))) for r in names}
    feat_all = sum(_COST_FEATURES_PER_REGION + _COST_FEATURES_PER_VOXEL * vox[r] for r in names)
    units: list[tuple[_Unit, float, str]] = []
    for r in names:
        b = case.bboxes[r]
        units.append((_Unit("shape", region=r), _COST_SHAPE_PER_BBOX_VOXEL * float(np.prod(b[1::2] - b[0::2] + 1)), ""))
    for t, custom in ext.enabledImagetypes.items():
        args = dict(settings, **custom)
        n = _n_outputs(t, args, case.image.GetDimension())
        if t in _MASK_DEPENDENT_TYPES:
            for r in names:
                cost = _COST_OTHER_FILTER_PER_CROP_VOXEL * crop_vox + n * (_COST_FEATURES_PER_REGION + _COST_FEATURES_PER_VOXEL * vox[r])
                units.append((_Unit("derived", t, (), r, ticks=n), cost, ""))
        elif t == "LoG":
            for i in range(n):
                units.append((_Unit("derived", t, (i,), ticks=1), _COST_LOG_PER_CROP_VOXEL * crop_vox + feat_all, ""))
        elif t == "Wavelet":
            for i in range(n):
                units.append((_Unit("derived", t, (i,), ticks=1), feat_all, t))  # setup: one transform per worker
        elif t == "Original":
            units.append((_Unit("derived", t, (), ticks=1), feat_all, ""))
        else:
            units.append((_Unit("derived", t, (), ticks=n), _COST_OTHER_FILTER_PER_CROP_VOXEL * crop_vox + n * feat_all, ""))
    return units


def _setup_cost(group: str, case: _Case) -> float:
    return _COST_WAVELET_PER_CROP_VOXEL * float(np.prod(case.image.GetSize())) if group == "Wavelet" else 0.0


def _merge(units: list[_Unit]) -> list[_Unit]:
    """Merge one process's units of the same image type (and region), so each filter runs once there."""
    kept: list[_Unit] = []
    by_type: dict[tuple[str, str], _Unit] = {}
    for u in units:
        if u.kind == "derived" and u.items:
            m = by_type.get((u.image_type, u.region))
            if m is not None:
                m.items = tuple(sorted(m.items + u.items))
                m.ticks += u.ticks
                continue
            u = _Unit(u.kind, u.image_type, u.items, u.region, u.ticks)
            by_type[(u.image_type, u.region)] = u
        kept.append(u)
    return kept


def _greedy(units: list[tuple[_Unit, float, str]], workers: int, case: _Case) -> tuple[list[list[_Unit]], float]:
    """Longest unit first, each to the process where it ends earliest; returns the shares and the largest load."""
    bins: list[list[_Unit]] = [[] for _ in range(max(1, workers))]
    load = [0.0] * len(bins)
    groups: list[set[str]] = [set() for _ in bins]
    for unit, cost, group in sorted(units, key=lambda x: -x[1]):
        def total(k: int, unit_cost: float = cost, unit_group: str = group) -> float:
            extra = _setup_cost(unit_group, case) if unit_group and unit_group not in groups[k] else 0.0
            return load[k] + unit_cost + extra

        k = min(range(len(bins)), key=total)
        load[k] = total(k)
        if group:
            groups[k].add(group)
        bins[k].append(unit)
    return bins, max(load)


def _plan(case: _Case, per_region: bool, workers: int) -> list[list[_Unit]]:
    """Split the case into at most ``workers`` shares of units with the smallest estimated largest share.

    Two greedy splits (longest unit first, each to the process where it ends earliest) are compared: one where the
    wavelet bands are spread (each process that holds any band pays one transform) and one where each setup group
    stays on one process; the one whose largest share is smaller wins (a tie keeps the group whole: less CPU).
    Units of the same image type on one process are then merged, so each filter runs at most once per process.
    The split decides only who computes what; every value is computed the same way.
    """
    units = _units(case, per_region)
    spread, spread_load = _greedy(units, workers, case)
    whole_units: list[tuple[_Unit, float, str]] = []
    grouped: dict[str, list[tuple[_Unit, float, str]]] = {}
    for x in units:
        if x[2]:
            grouped.setdefault(x[2], []).append(x)
        else:
            whole_units.append(x)
    for group, members in grouped.items():
        first = members[0][0]
        items = tuple(sorted(i for u, _, _ in members for i in u.items))
        unit = _Unit(first.kind, first.image_type, items, first.region, sum(u.ticks for u, _, _ in members))
        whole_units.append((unit, sum(c for _, c, _ in members) + _setup_cost(group, case), ""))
    whole, whole_load = _greedy(whole_units, workers, case)
    bins = whole if whole_load <= spread_load else spread
    merged = [_merge(b) for b in bins if b]
    return merged or [[]]


def _prepare_masks(image: sitk.Image, masks: Mapping[str, sitk.Image], settings: dict, params: dict) -> _Case:
    """``execute``'s mask steps per region: getMask (UInt32), checkMask, optional resegmentMask."""
    from radiomics import imageoperations

    feat_masks: dict[str, sitk.Image] = {}
    shape_masks: dict[str, sitk.Image] = {}
    bboxes: dict[str, np.ndarray] = {}
    for name, m in masks.items():
        try:
            mask = sitk.Cast(m, sitk.sitkUInt32)  # getMask(): UInt32 labelmap (values 0/1, label 1)
            bbox = _check_mask(sitk.GetArrayViewFromImage(mask) == 1, settings)
            if settings.get("resegmentRange") is not None:
                reseg = imageoperations.resegmentMask(image, mask, **settings)
                bbox, _ = imageoperations.checkMask(image, reseg, **settings)
                if not settings.get("resegmentShape", False):
                    shape_masks[name] = mask
                mask = reseg
        except ValueError as exc:
            raise _region_error(name, exc) from None
        feat_masks[name] = mask
        bboxes[name] = bbox
    return _Case(image, feat_masks, params, bboxes, shape_masks)


def extract_cropped(
    image: sitk.Image,
    masks: Mapping[str, sitk.Image],
    params: Mapping[str, Any],
    progress: Callable[[float, str], None] | None = None,
    *,
    case_workers: int | None = 1,
    info: dict | None = None,
) -> dict[str, dict[str, float]]:
    """Features per region for an image and masks that are already cropped (no further cropping here).

    Returns {region: {pyradiomics feature name: value}} with pyradiomics' own feature order; equal to
    ``RadiomicsFeatureExtractor(params).execute(image, mask)`` without its diagnostics, for every mask.
    ``progress(fraction, message)`` is called after each derived image (raise from it to cancel); with several
    workers, images computed by the helpers are reported when their share arrives. ``case_workers``: processes
    the case is spread over (:func:`resolve_case_workers`); the values do not depend on it (bit for bit).
    """
    from radiomics import imageoperations

    params = _as_params(params)
    ext = _cached_extractor(params)
    settings = ext.settings.copy()
    workers = resolve_case_workers(case_workers)

    # Settings under which the derived images depend on the mask: per-region execute (exact by construction).
    per_region = (settings.get("interpolator") is not None and settings.get("resampledPixelSpacing") is not None) or bool(
        settings.get("preCrop")
    )
    if per_region:
        case = _Case(image, dict(masks), params)
    else:
        # execute(): loadImage -> normalize (mask-independent; done once)
        if settings.get("normalize", False):
            image = imageoperations.normalizeImage(image, **settings)
        case = _prepare_masks(image, masks, settings, params)

    bins = _plan(case, per_region, workers) if workers > 1 else [_merge([u for u, _, _ in _units(case, per_region)])]
    pool = case_pool(len(bins)) if len(bins) > 1 else None
    if pool is None and len(bins) > 1:
        bins = [_merge([u for b in bins for u in b])]
    tick = _ticker(progress, sum(u.ticks for b in bins for u in b))

    results: list[tuple[str, tuple[int, int], dict[str, float]]] = []
    pending = []
    share_cpu: list[float] = []
    old_threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    try:
        if pool is not None:
            pending = [(pool.apply_async(_run_share, (case, b)), b) for b in bins[1:]]
            set_threads(max(1, available_cores() // len(bins)))
        c0 = time.process_time()
        results += _run_units(case, bins[0], tick)
        share_cpu.append(time.process_time() - c0)
        for res, b in pending:
            part, cpu = res.get()
            results += part
            share_cpu.append(cpu)
            for u in b:
                for _ in range(u.ticks):
                    tick(u.image_type or u.region)
    except BaseException:
        if any(not res.ready() for res, _ in pending):
            shutdown_case_pool()  # a cancelled or failed case: its helpers' unfinished work is of no use
        raise
    finally:
        if pool is not None:
            set_threads(old_threads)
    if info is not None:
        info["case_workers"] = len(bins)
        info["share_cpu_seconds"] = share_cpu  # CPU of each process' share (this process first)
    order = {name: k for k, name in enumerate(case.masks)}
    results.sort(key=lambda x: (order[x[0]], x[1]))
    out: dict[str, dict[str, float]] = {name: {} for name in case.masks}
    for name, _, fv in results:
        out[name].update(fv)
    return out


def _count_derived(ext) -> int:
    """Number of derived images of an extractor's image types (one progress step each)."""
    return sum(_n_outputs(t, dict(ext.settings, **custom)) for t, custom in ext.enabledImagetypes.items())


def extract_case(
    image: sitk.Image,
    masks: Mapping[str, sitk.Image],
    params: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    margin_mm: float | None = None,
    info: dict | None = None,
    progress: Callable[[float, str], None] | None = None,
    case_workers: int | None = None,
    reach_mm: float | None = None,
) -> dict[str, float]:
    """pyradiomics features for every region of one case, as ``{"{region}_{pyradiomics name}": value}``.

    ``masks`` maps region names (``intra``, ``peri1``, ...) to uint8 0/1 masks on ``image``'s grid (e.g.
    ``regions.build_regions(...).feature_masks()``). The image and masks are cropped once to the union of the
    regions plus :func:`crop_margin`, each derived image is computed once and reused for every region
    (:func:`extract_cropped`). Keys follow the order of ``masks`` and, within a region, pyradiomics' order.
    Diagnostics are not returned; pass ``info={}`` to receive the crop box, margin, voxel counts and timing.
    ``progress(fraction, message)`` is called after each derived image (for GUIs; raise from it to cancel).
    ``case_workers``: processes the case's units (shape per region, each derived image for every region) are
    spread over; default all cores on Linux (:func:`resolve_case_workers`), 1 inside a cohort that already runs
    cases in parallel. The values are the same bit for bit for any number of workers.
    ``reach_mm`` (the largest shell distance): crop to every voxel within it of the first region (the lesion) plus
    the margin instead of the union of the regions, the crop of :func:`extract_case_from_lesion` and so of
    ``her2radiomics extract``; the Slicer panel passes it so that its values equal the command line's.
    Raises UserError for a mask off the image grid, an empty region, or a region pyradiomics rejects.
    """
    t0 = time.perf_counter()
    params = _as_params(params)
    if reach_mm is not None and masks:
        first = next(iter(masks))
        box = reach_box(_mask_view(masks[first], image, first), image.GetSpacing(), float(reach_mm))
        img_c, masks_c, bbox = _crop_case_to_reach(image, masks, box, float(reach_mm), params, margin_mm, first)
    else:
        img_c, masks_c, bbox = prepare_crop(image, masks, params, margin_mm)
    run_info: dict[str, Any] = {}
    per_region = extract_cropped(img_c, masks_c, params, progress, case_workers=case_workers, info=run_info)
    out: dict[str, float] = {}
    for name, feats in per_region.items():
        for k, v in feats.items():
            out[f"{name}_{k}"] = v
    if info is not None:
        margin, extra = crop_margin(params)
        info.update(
            {
                "crop_bbox_zyx": [list(b) for b in bbox],
                "crop_size_xyz": list(img_c.GetSize()),
                "margin_mm": float(margin_mm) if margin_mm is not None else margin,
                "extra_voxels": extra,
                "voxels": {n: int(sitk.GetArrayViewFromImage(m).sum()) for n, m in masks_c.items()},
                "n_features": len(out),
                "case_workers": run_info.get("case_workers", 1),
                "share_cpu_seconds": run_info.get("share_cpu_seconds", []),
                "seconds": time.perf_counter() - t0,
            }
        )
    return out


def _derived_filter_cost(unit: _Unit, case: _Case) -> float:
    """Estimated seconds of the filter part of a derived unit (what a helper holding the images saves)."""
    if unit.kind != "derived" or unit.image_type in _MASK_DEPENDENT_TYPES or unit.image_type in ("Original", "Wavelet"):
        return 0.0  # the wavelet transform is the group's setup cost (_setup_cost)
    crop_vox = float(np.prod(case.image.GetSize()))
    if unit.image_type == "LoG":
        return _COST_LOG_PER_CROP_VOXEL * crop_vox * max(1, len(unit.items))
    return _COST_OTHER_FILTER_PER_CROP_VOXEL * crop_vox


def _plan_after_lesion(case: _Case, workers: int, backlog: float) -> list[list[_Unit]]:
    """Split the shells' units over this process (share 0) and the helpers (shares 1...).

    The helpers hold the crop's derived images from the lesion's share (:func:`_cached_derived`), so a filtered
    unit costs them only its features, while this process would filter again; they start ``backlog`` seconds
    late (the lesion's share still running). Filtered units go to the helpers (longest first, each where it ends
    earliest), then the units that need no filter (shapes, the original image, mask-dependent types) to whichever
    process ends earliest; last, a filtered unit moves to this process only while that shortens the case (it pays
    the filter again: CPU is spent only where it saves time).
    """
    loads = [0.0] + [max(0.0, backlog)] * (workers - 1)
    bins: list[list[tuple[_Unit, float, str]]] = [[] for _ in loads]

    def filtered(x: tuple[_Unit, float, str]) -> bool:
        u = x[0]
        return u.kind == "derived" and u.image_type not in _MASK_DEPENDENT_TYPES and u.image_type != "Original"

    units = sorted(_units(case, False), key=lambda x: -x[1])
    for x in [x for x in units if filtered(x)]:
        k = min(range(1, len(loads)), key=lambda k: loads[k])
        loads[k] += x[1] - _derived_filter_cost(x[0], case)
        bins[k].append(x)
    for x in [x for x in units if not filtered(x)]:
        k = min(range(len(loads)), key=lambda k: loads[k])
        loads[k] += x[1]
        bins[k].append(x)
    main_groups: set[str] = set()
    while len(loads) > 1:
        h = max(range(1, len(loads)), key=lambda k: loads[k])
        now = max(loads[0], loads[h])
        best: tuple[float, tuple[_Unit, float, str], float, float] | None = None
        for x in bins[h]:
            if not filtered(x):
                continue
            unit, cost, group = x
            on_main = cost + (_setup_cost(group, case) if group and group not in main_groups else 0.0)
            on_helper = cost - _derived_filter_cost(unit, case)
            after = max(loads[0] + on_main, loads[h] - on_helper)
            if after < now - 1e-6 and (best is None or after < best[0]):
                best = (after, x, on_main, on_helper)
        if best is None:
            break
        _, x, on_main, on_helper = best
        bins[h].remove(x)
        bins[0].append(x)
        loads[0] += on_main
        loads[h] -= on_helper
        if x[2]:
            main_groups.add(x[2])
    return [_merge([u for u, _, _ in b]) for b in bins]


def extract_case_from_lesion(
    image: sitk.Image,
    lesion: sitk.Image,
    reach_mm: float,
    build_masks: Callable[[], Mapping[str, sitk.Image]],
    params: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    lesion_name: str = "intra",
    margin_mm: float | None = None,
    info: dict | None = None,
    progress: Callable[[float, str], None] | None = None,
    case_workers: int | None = None,
) -> dict[str, float]:
    """One case from image and lesion: the lesion's features overlap the building of its shells.

    The case crop is known from the lesion alone: every voxel within ``reach_mm`` (the largest shell distance) of
    the lesion (:func:`reach_box`) plus :func:`crop_margin`. With more than one case worker, the helpers filter
    the crop and compute the lesion's shape and features while this process runs ``build_masks()`` (regions:
    shells and exclusions, which never change the lesion); the helpers keep the derived images and compute the
    shells' features from them, this process takes the shells' shapes and what balances the load
    (:func:`_plan_after_lesion`). ``build_masks()`` returns ``{region: mask on image's grid}`` with
    ``lesion_name`` (the same voxels as ``lesion``) and the shells to extract, each within ``reach_mm`` of the
    lesion. Returns ``{"{region}_{pyradiomics name}": value}`` in the order of ``build_masks()``'s regions.

    The values are those of :func:`extract_cropped` on the same crop (the sequential path, ``case_workers=1``,
    bit for bit), i.e. ``RadiomicsFeatureExtractor.execute`` on that crop for every region. Settings under which a
    derived image depends on the mask (resampling, ``preCrop``) run sequentially. ``info`` / ``progress`` /
    ``case_workers`` as in :func:`extract_case`; ``info["overlap"]`` says whether the lesion's share overlapped.

    Steps: :func:`_start_lesion_share` (before ``build_masks()``), then :func:`_extract_overlapped` when the
    lesion's share is usable, else :func:`extract_cropped`; :func:`_case_from_lesion_info`.
    """
    t0 = time.perf_counter()
    params = _as_params(params)
    workers = resolve_case_workers(case_workers)
    les_arr = _mask_view(lesion, image, lesion_name)
    box = reach_box(les_arr, image.GetSpacing(), float(reach_mm))
    settings = _cached_extractor(params).settings.copy()
    per_region = (settings.get("interpolator") is not None and settings.get("resampledPixelSpacing") is not None) or bool(
        settings.get("preCrop")
    )
    pool = case_pool(workers) if workers > 1 and box is not None and not per_region else None
    share = _start_lesion_share(pool, image, les_arr, box, params, settings, margin_mm, lesion_name, workers)
    share_cpu: list[float] = []
    old_threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    try:
        try:
            masks = dict(build_masks())
        except Exception:
            for res, _ in share.pending:  # let the helpers finish the lesion's share (no fork of this large process)
                res.wait()
            raise
        img_c, masks_c, bbox = _crop_case_to_reach(image, masks, box, float(reach_mm), params, margin_mm, lesion_name)
        lesion_ok = share.case is not None and lesion_name in masks_c and np.array_equal(
            sitk.GetArrayViewFromImage(masks_c[lesion_name]), sitk.GetArrayViewFromImage(share.case.masks[lesion_name]) != 0)
        run_info: dict[str, Any] = {}
        if not lesion_ok:
            for res, _ in share.pending:
                res.wait()
            share.pending = []
            per = extract_cropped(img_c, masks_c, params, progress, case_workers=workers, info=run_info)
            share_cpu = run_info.get("share_cpu_seconds", [])
        else:
            assert pool is not None
            per, share_cpu = _extract_overlapped(share, pool, masks_c, lesion_name, settings, params, workers,
                                                 progress, old_threads)
    except BaseException:
        if any(not res.ready() for res, _ in share.pending):
            shutdown_case_pool()  # a cancelled or failed case: its helpers' unfinished work is of no use
        raise
    out: dict[str, float] = {}
    for name, feats in per.items():
        for k, v in feats.items():
            out[f"{name}_{k}"] = v
    if info is not None:
        info.update(_case_from_lesion_info(bbox, img_c, masks_c, params, margin_mm, len(out),
                                           run_info.get("case_workers", 1) if not lesion_ok else workers,
                                           share_cpu, lesion_ok, t0))
    return out


@dataclass
class _LesionShare:
    """The lesion's share of a case, started on the case pool before its shells exist."""

    image: sitk.Image | None = None     # the cropped (normalised) image the helpers filter
    case: _Case | None = None           # the lesion on that crop (None: no pool, or an unusable lesion)
    pending: list = field(default_factory=list)   # (async result, share) per helper
    token: str = ""                     # names this case's derived images in the helpers
    ticks: int = 0                      # progress ticks of the lesion's share
    backlog_end: float = 0.0            # when the helpers are expected to finish it (perf_counter)


def _start_lesion_share(pool: Any, image: sitk.Image, les_arr: np.ndarray, box: Any, params: Mapping[str, Any],
                        settings: Mapping[str, Any], margin_mm: float | None, lesion_name: str,
                        workers: int) -> _LesionShare:
    """Crop and normalise the case from the lesion alone and send the lesion's units to the helpers (with a pool)."""
    share = _LesionShare()
    if pool is None:
        return share
    from radiomics import imageoperations

    img_c, les_c, _ = _crop_to_box(image, {lesion_name: les_arr}, box, params, margin_mm)
    share.image = imageoperations.normalizeImage(img_c, **settings) if settings.get("normalize", False) else img_c
    try:
        share.case = _prepare_masks(share.image, les_c, settings, params)
    except UserError:
        return share  # an unusable lesion: build_masks() or the sequential path says why
    share.token = f"{os.getpid()}:{time.perf_counter_ns()}"
    shares = [b for b in _plan(share.case, False, workers - 1) if b]
    share.pending = [(pool.apply_async(_run_share, (share.case, b, share.token)), b) for b in shares]
    share.ticks = sum(u.ticks for b in shares for u in b)
    est = sum(c for _, c, _ in _units(share.case, False)) / max(1, workers - 1)
    share.backlog_end = time.perf_counter() + est
    return share


def _extract_overlapped(share: _LesionShare, pool: Any, masks_c: Mapping[str, sitk.Image], lesion_name: str,
                        settings: Mapping[str, Any], params: Mapping[str, Any], workers: int,
                        progress: Callable[[float, str], None] | None,
                        old_threads: int) -> tuple[dict[str, dict[str, float]], list[float]]:
    """The shells' units balanced over this process and the helpers (:func:`_plan_after_lesion`), then all results
    (the lesion's share included) in region order; returns ``{region: features}`` and the CPU seconds per share."""
    assert share.case is not None and share.image is not None
    shells = {k: v for k, v in masks_c.items() if k != lesion_name}
    case_b = _prepare_masks(share.image, shells, settings, params) if shells else _Case(share.image, {}, params)
    backlog = 0.0 if all(res.ready() for res, _ in share.pending) else share.backlog_end - time.perf_counter()
    bins = _plan_after_lesion(case_b, workers, backlog) if shells else [[]]
    tick = _ticker(progress, share.ticks + sum(u.ticks for b in bins for u in b))

    share.pending += [(pool.apply_async(_run_share, (case_b, b, share.token, True)), b) for b in bins[1:] if b]
    results: list[tuple[str, tuple[int, int], dict[str, float]]] = []
    share_cpu: list[float] = []
    set_threads(max(1, available_cores() // workers))
    try:
        c0 = time.process_time()
        results += _run_units(case_b, bins[0], tick)
        share_cpu.append(time.process_time() - c0)
        for res, b in share.pending:
            part, cpu = res.get()
            results += part
            share_cpu.append(cpu)
            for u in b:
                for _ in range(u.ticks):
                    tick(u.image_type or u.region)
    finally:
        set_threads(old_threads)
    order = {name: k for k, name in enumerate(masks_c)}
    results.sort(key=lambda x: (order[x[0]], x[1]))
    per: dict[str, dict[str, float]] = {name: {} for name in masks_c}
    for name, _, fv in results:
        per[name].update(fv)
    return per, share_cpu


def _case_from_lesion_info(bbox: Any, img_c: sitk.Image, masks_c: Mapping[str, sitk.Image], params: Mapping[str, Any],
                           margin_mm: float | None, n_features: int, case_workers: int, share_cpu: list[float],
                           overlap: bool, t0: float) -> dict[str, Any]:
    """The ``info`` record of :func:`extract_case_from_lesion`: crop, margins, voxels, workers, timing."""
    margin, extra = crop_margin(params)
    return {
        "crop_bbox_zyx": [list(b) for b in bbox],
        "crop_size_xyz": list(img_c.GetSize()),
        "margin_mm": float(margin_mm) if margin_mm is not None else margin,
        "extra_voxels": extra,
        "voxels": {n: int(sitk.GetArrayViewFromImage(m).sum()) for n, m in masks_c.items()},
        "n_features": n_features,
        "case_workers": case_workers,
        "share_cpu_seconds": share_cpu,
        "overlap": bool(overlap),
        "seconds": time.perf_counter() - t0,
    }

