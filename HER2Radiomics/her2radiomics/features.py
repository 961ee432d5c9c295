"""pyradiomics feature extraction: one crop and one filter pass per case, reused for every region.

The numbers are pyradiomics' own: every feature is computed by pyradiomics' feature classes
(:class:`radiomics.featureextractor.RadiomicsFeatureExtractor` ``computeShape`` / ``computeFeatures``) on the
same inputs that ``RadiomicsFeatureExtractor.execute`` would build. What changes is the order of work:

1. the image and every region mask are cropped ONCE to the bounding box of the union of the regions plus a margin
   (``max(25 mm, 5 x largest LoG sigma)`` plus the wavelet's support in voxels), so filters never run on the whole
   field of view (SlicerRadiomics-style calls filter the full 448 x 448 x 160 volume for every region);
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
import time
from collections.abc import Callable, Iterable, Mapping
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


def params_hash(params: Mapping[str, Any]) -> str:
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
        box = bbox_zyx(a)  # any non-zero value is inside the region
        if box is None:
            raise UserError(
                f"region {name!r} is empty (0 voxels); check the lesion mask, the shell distances and the "
                "air/pectoralis exclusions"
            )
        arrays[name] = a
        boxes.append(box)
    union_box = tuple((min(b[ax][0] for b in boxes), max(b[ax][1] for b in boxes)) for ax in range(3))
    shape = next(iter(arrays.values())).shape
    margin, extra = crop_margin(params)
    if margin_mm is not None:
        margin = float(margin_mm)
    if extra * max(image.GetSpacing()) <= margin:
        extra = 0  # the mm margin already covers the wavelet / small-kernel support on every axis
    bbox = expand_bbox_mm(union_box, image.GetSpacing(), margin, shape, extra_voxels=extra)
    img_c = crop(image, bbox)
    sl = tuple(slice(lo, hi) for lo, hi in bbox)
    out: dict[str, sitk.Image] = {}
    for name, a in arrays.items():
        mc = sitk.GetImageFromArray((a[sl] != 0).astype(np.uint8))
        mc.CopyInformation(img_c)
        out[name] = mc
    return img_c, out, bbox


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
    arr = sitk.GetArrayViewFromImage(mask) != 0
    if not arr.any():
        return "0 voxels"
    try:
        _check_mask(arr, (params or {}).get("setting") or {})
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


def extract_cropped(
    image: sitk.Image,
    masks: Mapping[str, sitk.Image],
    params: Mapping[str, Any],
    progress: Callable[[float, str], None] | None = None,
) -> dict[str, dict[str, float]]:
    """Features per region for an image and masks that are already cropped (no further cropping here).

    Returns {region: {pyradiomics feature name: value}} with pyradiomics' own feature order; equal to
    ``RadiomicsFeatureExtractor(params).execute(image, mask)`` without its diagnostics, for every mask.
    ``progress(fraction, message)`` is called after each derived image (raise from it to cancel).
    """
    from radiomics import imageoperations

    params = _as_params(params)
    ext = _extractor(params)
    settings = ext.settings.copy()
    types = list(ext.enabledImagetypes)

    # Settings under which the derived images depend on the mask: per-region execute (exact by construction).
    per_region = (settings.get("interpolator") is not None and settings.get("resampledPixelSpacing") is not None) or bool(
        settings.get("preCrop")
    )
    results: dict[str, dict[str, float]] = {}
    if per_region:
        for name, m in masks.items():
            try:
                fv = ext.execute(image, m, label=1)
            except ValueError as exc:
                raise _region_error(name, exc) from None
            results[name] = {k: float(v) for k, v in fv.items() if not k.startswith("diagnostics_")}
        return results

    # execute(): loadImage -> normalize (mask-independent; done once)
    if settings.get("normalize", False):
        image = imageoperations.normalizeImage(image, **settings)

    prepared: dict[str, tuple[sitk.Image, np.ndarray]] = {}
    for name, m in masks.items():
        try:
            mask = sitk.Cast(m, sitk.sitkUInt32)  # getMask(): UInt32 labelmap (values 0/1, label 1)
            bbox = _check_mask(sitk.GetArrayViewFromImage(mask) == 1, settings)
            shape_mask = mask
            if settings.get("resegmentRange") is not None:
                reseg = imageoperations.resegmentMask(image, mask, **settings)
                bbox, _ = imageoperations.checkMask(image, reseg, **settings)
                if settings.get("resegmentShape", False):
                    shape_mask = reseg
                mask = reseg
            fv = ext.computeShape(image, shape_mask, bbox, **settings)
        except ValueError as exc:
            raise _region_error(name, exc) from None
        results[name] = {k: float(v) for k, v in fv.items()}
        prepared[name] = (mask, bbox)

    first_mask = next(iter(prepared.values()))[0]
    # cropToTumorMask(padDistance=0) bounds per region; the cropped mask is the same for every derived image
    bounds: dict[str, tuple[list[int], list[int]]] = {}
    mask_crops: dict[str, sitk.Image] = {}
    for name, (mask, bbox) in prepared.items():
        size = np.array(mask.GetSize())
        lower = np.maximum(bbox[0::2], 0)
        upper = np.maximum(size - bbox[1::2] - 1, 0)
        bounds[name] = ([int(v) for v in lower], [int(v) for v in upper])
        mask_crops[name] = sitk.Crop(mask, *bounds[name])
    n_derived = max(1, _count_derived(ext))
    done = 0

    def tick(name: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(min(1.0, done / n_derived), name)

    for image_type in types:
        if image_type in _MASK_DEPENDENT_TYPES:
            for name, (mask, bbox) in prepared.items():
                for derived, tname, kw in _filtered_images(ext, image, mask, settings, [image_type]):
                    img_r, mask_r = imageoperations.cropToTumorMask(derived, mask, bbox, padDistance=0)
                    results[name].update({k: float(v) for k, v in ext.computeFeatures(img_r, mask_r, tname, **kw).items()})
                    tick(tname)
            continue
        # LoG / wavelet / original / ... do not look at the mask: one pass, shared by every region
        for derived, tname, kw in _filtered_images(ext, image, first_mask, settings, [image_type]):
            for name, (lower, upper) in bounds.items():
                img_r = sitk.Crop(derived, lower, upper)  # == cropToTumorMask(derived, mask, bbox, padDistance=0)
                results[name].update({k: float(v) for k, v in ext.computeFeatures(img_r, mask_crops[name], tname, **kw).items()})
            tick(tname)
    return results


def _count_derived(ext) -> int:
    n = 0
    for image_type, custom in ext.enabledImagetypes.items():
        if image_type == "LoG":
            k = len(custom.get("sigma", ext.settings.get("sigma", [])))
        elif image_type == "Wavelet":
            k = 8 * int(custom.get("level", ext.settings.get("level", 1)))
        else:
            k = 1
        n += k
    return n


def extract_case(
    image: sitk.Image,
    masks: Mapping[str, sitk.Image],
    params: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    margin_mm: float | None = None,
    info: dict | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> dict[str, float]:
    """pyradiomics features for every region of one case, as ``{"{region}_{pyradiomics name}": value}``.

    ``masks`` maps region names (``intra``, ``peri1``, ...) to uint8 0/1 masks on ``image``'s grid (e.g.
    ``regions.build_regions(...).feature_masks()``). The image and masks are cropped once to the union of the
    regions plus :func:`crop_margin`, each derived image is computed once and reused for every region
    (:func:`extract_cropped`). Keys follow the order of ``masks`` and, within a region, pyradiomics' order.
    Diagnostics are not returned; pass ``info={}`` to receive the crop box, margin, voxel counts and timing.
    ``progress(fraction, message)`` is called after each derived image (for GUIs; raise from it to cancel).
    Raises UserError for a mask off the image grid, an empty region, or a region pyradiomics rejects.
    """
    t0 = time.perf_counter()
    params = _as_params(params)
    img_c, masks_c, bbox = prepare_crop(image, masks, params, margin_mm)
    per_region = extract_cropped(img_c, masks_c, params, progress)
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
                "seconds": time.perf_counter() - t0,
            }
        )
    return out


def extract_cohort(manifest, output, params=None, distances=(1.0, 3.0, 5.0), jobs=1, backend="loky", scheduler=None,
                   progress=True, **kwargs):
    """Cohort run (manifest -> FEATURES.csv); see :func:`her2radiomics.cohort.extract_cohort`."""
    from her2radiomics.cohort import extract_cohort as _extract_cohort

    return _extract_cohort(manifest, output, params, distances, jobs, backend, scheduler, progress, **kwargs)
