"""Feature engine: exactness against pyradiomics (baseline values and execute on the same crop), parameters."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import shared_path
from features_synth import SMALL_PARAMS, shells, small_phantom_case, textured_case

from her2radiomics import features
from her2radiomics.errors import UserError
from her2radiomics.resources import resource


def _rel(a: float, b: float) -> float:
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    return abs(a - b) / max(abs(a), abs(b))


def _execute(params: dict, image: sitk.Image, mask: sitk.Image) -> dict[str, float]:
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    out = RadiomicsFeatureExtractor(params).execute(image, mask)
    return {k: float(v) for k, v in out.items() if not k.startswith("diagnostics_")}


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


# ---------------------------------------------------------------------------------------------------- exactness
def test_breast1_matches_pyradiomics_baseline(breast1):
    """Every feature of pyradiomics' published breast1 baseline (binWidth 25, original image) through our engine."""
    base_dir = shared_path("pyradiomics_breast1", "baseline")
    expected: dict[str, float] = {}
    for f in sorted(base_dir.glob("baseline_*.csv")):
        if f.name == "baseline_shape2D.csv":  # 2D shape needs force2D, not part of the 3D default configuration
            continue
        with open(f, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                name = row["featureName"]
                if name == "diagnostics_Configuration_Settings":
                    assert "'binWidth': 25" in row["breast1"] and "'voxelArrayShift': 2000" in row["breast1"]
                elif not name.startswith("diagnostics_"):
                    expected[name] = float(row["breast1"])
    assert len(expected) >= 100
    image = sitk.ReadImage(str(breast1[0]))
    lesion = sitk.ReadImage(str(breast1[1]))
    params = features.load_params(resource("Parameters", "pyradiomics_baseline.yaml"))
    got = features.extract_case(image, {"intra": lesion}, params)
    assert set(got) == {f"intra_{k}" for k in expected}
    worst = max(_rel(got[f"intra_{k}"], v) for k, v in expected.items())
    assert worst <= 1e-6, worst


@pytest.mark.slow
def test_default_params_equal_execute_on_crop_for_lesion_and_every_shell():
    """Default file (1,316 features/region): shared filter pass == RadiomicsFeatureExtractor.execute per region."""
    image, masks, _ = small_phantom_case()
    assert list(masks) == ["intra", "peri1", "peri3", "peri5"]
    params = features.load_params()
    got = features.extract_case(image, masks, params, case_workers=2)
    serial = features.extract_case(image, masks, params, case_workers=1)
    assert list(serial) == list(got) and all(_same(serial[k], got[k]) for k in got)  # bit for bit
    img_c, masks_c, _ = features.prepare_crop(image, masks, params)
    n = features.n_features_per_region(params)
    assert n >= 1300 and len(got) == 4 * n
    for region, mask in masks_c.items():
        ref = _execute(params, img_c, mask)
        mine = {k[len(region) + 1:]: v for k, v in got.items() if k.startswith(f"{region}_")}
        assert list(mine) == list(ref), region  # same names, same order
        worst = max(_rel(mine[k], ref[k]) for k in ref)
        assert worst <= 1e-9, (region, worst)
    assert "peri3_wavelet-LLH_glcm_Contrast" in got
    assert "intra_log-sigma-5-0-mm-3D_ngtdm_Busyness" in got
    assert list(got)[0].startswith("intra_original_shape_")


@pytest.mark.parametrize(
    "extra",
    [
        "  normalize: true\n  normalizeScale: 100\n",  # mask-independent preprocessing done once
        "  resampledPixelSpacing: [1.0, 1.0, 1.0]\n  interpolator: sitkBSpline\n",  # mask-dependent: per region
        "  resegmentRange: [-3, 3]\n  resegmentMode: sigma\n",
    ],
    ids=["normalize", "resample", "resegment"],
)
def test_preprocessing_settings_stay_exact(tmp_path, extra):
    image, lesion, _ = textured_case(seed=1, shape_zyx=(24, 48, 48), radius_mm=4.0)
    masks = shells(lesion, (2.0,))
    p = tmp_path / "p.yaml"
    p.write_text(SMALL_PARAMS + extra)
    params = features.load_params(p)
    got = features.extract_case(image, masks, params)
    img_c, masks_c, _ = features.prepare_crop(image, masks, params)
    for region, mask in masks_c.items():
        ref = _execute(params, img_c, mask)
        assert max(_rel(got[f"{region}_{k}"], v) for k, v in ref.items()) <= 1e-9


WAVELET_PARAMS = SMALL_PARAMS.replace("  LoG: {sigma: [1.0, 2.0]}\n", "  LoG: {sigma: [1.0, 2.0, 3.0]}\n  Wavelet: {}\n")


@pytest.mark.parametrize("workers", [2, 3, 5])
def test_case_workers_give_the_serial_values_bit_for_bit_and_execute_on_the_crop(tmp_path, workers):
    """The split over helpers (LoG sigmas, wavelet bands, shapes) changes who computes, never what is computed."""
    image, lesion, _ = textured_case(seed=5, shape_zyx=(28, 56, 56), radius_mm=4.5)
    masks = shells(lesion, (1.0, 3.0))
    p = tmp_path / "p.yaml"
    p.write_text(WAVELET_PARAMS)
    params = features.load_params(p)
    serial = features.extract_case(image, masks, params, case_workers=1)
    info: dict = {}
    par = features.extract_case(image, masks, params, case_workers=workers, info=info)
    assert info["case_workers"] == workers
    assert list(par) == list(serial)  # same names, same (pyradiomics') order
    assert all(_same(par[k], serial[k]) for k in serial)
    img_c, masks_c, _ = features.prepare_crop(image, masks, params)
    for region, mask in masks_c.items():
        ref = _execute(params, img_c, mask)
        mine = {k[len(region) + 1:]: v for k, v in par.items() if k.startswith(f"{region}_")}
        assert list(mine) == list(ref)
        assert max(_rel(mine[k], ref[k]) for k in ref) <= 1e-9


@pytest.mark.parametrize(
    "extra",
    ["  resampledPixelSpacing: [1.0, 1.0, 1.0]\n  interpolator: sitkBSpline\n",
     "  resegmentRange: [-3, 3]\n  resegmentMode: sigma\n",
     "  normalize: true\n  normalizeScale: 100\n"],
    ids=["resample-per-region", "resegment", "normalize"],
)
def test_case_workers_keep_the_preprocessing_paths_bit_for_bit(tmp_path, extra):
    image, lesion, _ = textured_case(seed=1, shape_zyx=(24, 48, 48), radius_mm=4.0)
    masks = shells(lesion, (2.0, 4.0))
    p = tmp_path / "p.yaml"
    p.write_text(SMALL_PARAMS + extra)
    params = features.load_params(p)
    serial = features.extract_case(image, masks, params, case_workers=1)
    par = features.extract_case(image, masks, params, case_workers=2)
    assert list(par) == list(serial) and all(_same(par[k], serial[k]) for k in serial)


def test_each_filter_runs_once_per_case_in_one_process(tmp_path, monkeypatch):
    """The wavelet transform once (not once per band), each LoG sigma once, whatever the split into units."""
    from radiomics import imageoperations

    calls: dict[str, int] = {"Wavelet": 0, "LoG": 0}

    def counting(name):
        real = getattr(imageoperations, f"get{name}Image")

        def wrapper(image, mask, **kw):
            calls[name] += 1 if name == "Wavelet" else len(kw.get("sigma", []))
            yield from real(image, mask, **kw)

        return wrapper

    for name in calls:
        monkeypatch.setattr(imageoperations, f"get{name}Image", counting(name))
    image, lesion, _ = textured_case(seed=3, shape_zyx=(24, 48, 48), radius_mm=4.0)
    p = tmp_path / "p.yaml"
    p.write_text(WAVELET_PARAMS)
    features.extract_case(image, shells(lesion, (2.0,)), features.load_params(p), case_workers=1)
    assert calls == {"Wavelet": 1, "LoG": 3}


def test_error_in_a_helper_reaches_the_caller_and_the_next_case_runs(monkeypatch):
    import os

    from radiomics.base import RadiomicsFeaturesBase

    parent = os.getpid()
    real = RadiomicsFeaturesBase.execute

    def failing_in_helpers(self, *a, **kw):
        if os.getpid() != parent:
            raise RuntimeError("boom in a helper")
        return real(self, *a, **kw)

    image, lesion, _ = textured_case(seed=0, shape_zyx=(20, 40, 40))
    masks = shells(lesion, (2.0,))
    features.shutdown_case_pool()  # the next pool is forked with the patched method
    monkeypatch.setattr(RadiomicsFeaturesBase, "execute", failing_in_helpers)  # every feature class's execute
    with pytest.raises(RuntimeError, match="boom in a helper"):
        features.extract_case(image, masks, SMALL_PARAMS_DICT(), case_workers=2)
    monkeypatch.undo()
    features.shutdown_case_pool()
    got = features.extract_case(image, masks, SMALL_PARAMS_DICT(), case_workers=2)
    assert got == features.extract_case(image, masks, SMALL_PARAMS_DICT(), case_workers=1)


def test_case_workers_default_and_bad_values(monkeypatch):
    import sys
    import types

    n = features.resolve_case_workers(None)
    assert n == (features.available_cores() if sys.platform.startswith("linux") else 1)
    fake = types.ModuleType("slicer")
    fake.app = object()  # inside the Slicer application: the GUI process is never forked
    monkeypatch.setitem(sys.modules, "slicer", fake)
    assert features.resolve_case_workers(None) == 1
    assert features.resolve_case_workers(2) == 2
    monkeypatch.undo()
    assert features.resolve_case_workers(-1) == features.available_cores()
    assert features.resolve_case_workers(3) == 3
    for bad in (0, -2, 1.5, "2", True):
        with pytest.raises(UserError, match="case-workers"):
            features.resolve_case_workers(bad)


def test_region_error_from_a_helper_is_the_same_one_line_error():
    image, lesion, _ = textured_case(seed=0, shape_zyx=(20, 40, 40))
    one = sitk.Image(lesion.GetSize(), sitk.sitkUInt8)
    one.CopyInformation(lesion)
    one[10, 10, 10] = 1
    masks = {"intra": lesion, "peri1": one}
    msgs = []
    for w in (1, 2):
        with pytest.raises(UserError, match="region 'peri1'") as e:
            features.extract_case(image, masks, SMALL_PARAMS_DICT(), case_workers=w)
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1]


def test_crop_keeps_the_margin_and_geometry():
    image, lesion, _ = textured_case(seed=2, shape_zyx=(80, 130, 130), radius_mm=4.0)
    params = features.load_params()
    assert features.crop_margin(params)[0] == 25.0
    masks = shells(lesion)
    img_c, masks_c, bbox = features.prepare_crop(image, masks, params)
    les = sitk.GetArrayFromImage(lesion)
    union = np.logical_or.reduce([sitk.GetArrayFromImage(m) > 0 for m in masks.values()])
    zz, yy, xx = np.nonzero(union)
    sp_zyx = tuple(reversed(image.GetSpacing()))
    for (lo, hi), idx, sp, n in zip(bbox, (zz, yy, xx), sp_zyx, les.shape, strict=True):
        # >= 25 mm between the outermost region voxel and the crop border, unless clipped by the image
        assert (idx.min() - lo) * sp >= 25.0 or lo == 0
        assert (hi - 1 - idx.max()) * sp >= 25.0 or hi == n
        assert (idx.min() - lo) * sp < 25.0 + sp  # and not much more (no wasted filtering)
    # cropped voxels sit at the same physical points
    i0 = tuple(b[0] for b in reversed(bbox))
    assert np.allclose(img_c.GetOrigin(), image.TransformIndexToPhysicalPoint(i0))
    assert sitk.GetArrayFromImage(masks_c["intra"]).sum() == les.sum()


def test_anisotropic_oblique_grid_gives_same_values_as_execute():
    d = (0.0, 0.0, 1.0, 0.6, 0.8, 0.0, -0.8, 0.6, 0.0)  # non-identity direction
    image, lesion, _ = textured_case(seed=4, shape_zyx=(24, 48, 48), direction=d)
    params = features.load_params(None)
    params["imageType"] = {"Original": {}, "Wavelet": {}}
    got = features.extract_case(image, {"intra": lesion}, params)
    img_c, masks_c, _ = features.prepare_crop(image, {"intra": lesion}, params)
    ref = _execute(params, img_c, masks_c["intra"])
    assert max(_rel(got[f"intra_{k}"], v) for k, v in ref.items()) <= 1e-9


# ---------------------------------------------------------------------------------------------------- bad input
def test_empty_region_is_named():
    image, lesion, _ = textured_case(seed=0, shape_zyx=(20, 40, 40))
    empty = sitk.Image(lesion.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(lesion)
    with pytest.raises(UserError, match=r"region 'peri3' is empty"):
        features.extract_case(image, {"intra": lesion, "peri3": empty}, SMALL_PARAMS_DICT())


def test_mask_off_grid_is_rejected():
    image, lesion, _ = textured_case(seed=0, shape_zyx=(20, 40, 40))
    moved = sitk.Image(lesion)
    moved.SetOrigin((0.0, 0.0, 0.0))
    with pytest.raises(UserError, match=r"not on the image grid \(origin"):
        features.extract_case(image, {"intra": moved}, SMALL_PARAMS_DICT())


def test_single_voxel_region_gives_region_named_error():
    image, lesion, _ = textured_case(seed=0, shape_zyx=(20, 40, 40))
    one = sitk.Image(lesion.GetSize(), sitk.sitkUInt8)
    one.CopyInformation(lesion)
    one[20, 20, 10] = 1
    with pytest.raises(UserError, match=r"region 'intra' cannot be used by pyradiomics: .*single"):
        features.extract_case(image, {"intra": one}, SMALL_PARAMS_DICT())


def SMALL_PARAMS_DICT() -> dict:  # noqa: N802 - constant-like helper
    import yaml

    return features.load_params(yaml.safe_load(SMALL_PARAMS))


@pytest.mark.parametrize(
    "text, message",
    [
        ("imageType: {Original: {}\n", r"not valid YAML at line"),
        ("imageType:\n  Sobel: {}\n", r"unknown image type 'Sobel'; use one of .*LoG"),
        ("featureClass:\n  glcmm:\n", r"unknown feature class 'glcmm'; use one of .*glcm"),
        ("featureClass:\n  glcm: [Contrastt]\n", r"unknown feature 'Contrastt' in class 'glcm'"),
        ("imageType:\n  LoG: {}\n", r"LoG needs 'sigma'"),
        ("setting:\n  binCount: many\n", r"invalid setting"),
        ("- just\n- a list\n", r"must be a mapping"),
        ("imageTypes:\n  Original: {}\n", r"unknown section 'imageTypes'"),
    ],
)
def test_bad_parameter_files(tmp_path, text, message):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(UserError, match=message) as exc:
        features.load_params(p)
    assert "\n" not in str(exc.value) and str(p) in str(exc.value)


def test_missing_and_unreadable_parameter_file(tmp_path):
    with pytest.raises(UserError, match="parameter file not found"):
        features.load_params(tmp_path / "nope.yaml")
    p = tmp_path / "binary.yaml"
    p.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(UserError, match="cannot read parameter file"):
        features.load_params(p)


# ---------------------------------------------------------------------------------------------------- parameters
def test_default_parameter_file_content_and_hash(tmp_path):
    params = features.load_params()
    assert features.default_params_path().name == "her2radiomics_default.yaml"
    assert set(params["imageType"]) == {"Original", "LoG", "Wavelet"}
    assert params["imageType"]["LoG"]["sigma"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert set(params["featureClass"]) == {"firstorder", "shape", "glcm", "glrlm", "glszm", "gldm", "ngtdm"}
    assert params["setting"]["binCount"] == 32 and "binWidth" not in params["setting"]
    # 14 shape + 93 x (1 original + 5 LoG + 8 wavelet)
    assert features.n_features_per_region(params) == 14 + 93 * 14 == 1316
    h = features.parameter_file_hash(params)
    assert h.startswith("sha256:") and len(h) == 7 + 64
    # same settings written differently -> same hash; one setting changed -> different hash
    import yaml

    p = tmp_path / "same.yaml"
    p.write_text("# reordered\n" + yaml.safe_dump({k: params[k] for k in reversed(list(params))}))
    assert features.parameter_file_hash(features.load_params(p)) == h
    params["setting"]["binCount"] = 64
    assert features.parameter_file_hash(params) != h


def test_slicer_radiomics_can_load_the_default_file():
    """The shipped file is a plain pyradiomics parameter file (what SlicerRadiomics passes to the extractor)."""
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    ext = RadiomicsFeatureExtractor(str(features.default_params_path()))
    assert ext.enabledImagetypes["LoG"]["sigma"] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert ext.settings["binCount"] == 32


def test_progress_callback_reports_each_derived_image_and_can_cancel():
    image, lesion, _ = textured_case(seed=0, shape_zyx=(20, 40, 40))
    seen: list[tuple[float, str]] = []
    features.extract_case(image, shells(lesion, (2.0,)), SMALL_PARAMS_DICT(), progress=lambda f, m: seen.append((f, m)),
                          case_workers=1)
    assert [m for _, m in seen] == ["original", "log-sigma-1-0-mm-3D", "log-sigma-2-0-mm-3D"]
    assert seen[-1][0] == 1.0
    # with helpers: one call per derived image too (helpers' images reported by type when their share arrives)
    seen.clear()
    features.extract_case(image, shells(lesion, (2.0,)), SMALL_PARAMS_DICT(), progress=lambda f, m: seen.append((f, m)),
                          case_workers=2)
    assert len(seen) == 3 and seen[-1][0] == 1.0 and [f for f, _ in seen] == sorted(f for f, _ in seen)

    class Cancelled(Exception):
        pass

    def cancel(fraction, message):
        raise Cancelled

    for w in (1, 2):
        with pytest.raises(Cancelled):
            features.extract_case(image, {"intra": lesion}, SMALL_PARAMS_DICT(), progress=cancel, case_workers=w)
    # a cancelled case leaves no broken helper behind: the next case runs (and matches the serial values)
    a = features.extract_case(image, {"intra": lesion}, SMALL_PARAMS_DICT(), case_workers=2)
    assert a == features.extract_case(image, {"intra": lesion}, SMALL_PARAMS_DICT(), case_workers=1)


def test_phantom_help_starts_without_the_scientific_stack():
    """``phantom --help`` parses only (CLI start < 0.5 s): no numpy/SciPy/SimpleITK import, same defaults."""
    import subprocess
    import sys

    probe = ("import sys, contextlib, io\nfrom her2radiomics import cli\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n"
             "    try:\n        cli.main(['phantom', '--help'])\n    except SystemExit:\n        pass\n"
             "print(' '.join(m for m in ('numpy', 'scipy', 'SimpleITK') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, encoding="utf-8", check=True)
    assert r.stdout.strip() == ""
    import argparse

    from her2radiomics import phantom
    from her2radiomics.commands import phantom as command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["-o", "x"])
    assert tuple(args.size) == phantom.DEFAULT_SIZE and tuple(args.spacing) == phantom.DEFAULT_SPACING


# ----------------------------------------------------------------------------- one case from image and lesion
def _cut_shells(lesion: sitk.Image, distances=(1.0, 3.0)) -> dict[str, sitk.Image]:
    """Shells with an 'exclusion' (a slab removed on one side), so the regions' union is smaller than the reach."""
    out = {}
    for name, m in shells(lesion, distances).items():
        a = sitk.GetArrayFromImage(m)
        if name != "intra":
            a[:, :, : a.shape[2] // 2 - 2] = 0
        img = sitk.GetImageFromArray(a)
        img.CopyInformation(m)
        out[name] = img
    return out


@pytest.mark.parametrize("workers", [2, 3])
def test_case_from_lesion_overlaps_and_gives_the_sequential_values_bit_for_bit(tmp_path, workers):
    """The lesion's share runs while the shells are built; values = sequential path = execute on the same crop."""
    import os

    image, lesion, _ = textured_case(seed=4, shape_zyx=(30, 60, 60), radius_mm=4.5)
    p = tmp_path / "p.yaml"
    p.write_text(WAVELET_PARAMS)
    params = features.load_params(p)
    built_in: list[int] = []

    def build():
        built_in.append(os.getpid())
        return _cut_shells(lesion)

    seq_info: dict = {}
    serial = features.extract_case_from_lesion(image, lesion, 3.0, build, params, case_workers=1, info=seq_info)
    info: dict = {}
    par = features.extract_case_from_lesion(image, lesion, 3.0, build, params, case_workers=workers, info=info)
    assert built_in == [os.getpid(), os.getpid()]  # the regions are built in this process
    assert info["overlap"] is True and seq_info["overlap"] is False
    assert info["crop_bbox_zyx"] == seq_info["crop_bbox_zyx"]
    assert list(par) == list(serial) and all(_same(par[k], serial[k]) for k in serial)
    # the crop: every voxel within 3 mm of the lesion plus the margin, whatever the exclusions removed
    reach = features.reach_box(sitk.GetArrayViewFromImage(lesion), image.GetSpacing(), 3.0)
    margin, _ = features.crop_margin(params)
    from her2radiomics.geometry import crop, expand_bbox_mm

    box = expand_bbox_mm(reach, image.GetSpacing(), margin, tuple(reversed(image.GetSize())))
    assert [list(b) for b in box] == info["crop_bbox_zyx"]
    for region, mask in _cut_shells(lesion).items():
        ref = _execute(params, crop(image, box), crop(mask, box))
        mine = {k[len(region) + 1:]: v for k, v in par.items() if k.startswith(f"{region}_")}
        assert list(mine) == list(ref)
        assert max(_rel(mine[k], ref[k]) for k in ref) <= 1e-9


def test_case_from_lesion_errors_and_fallbacks():
    """A failing region step reaches the caller and the pool stays usable; a changed lesion falls back."""
    image, lesion, _ = textured_case(seed=6, shape_zyx=(24, 48, 48), radius_mm=4.0)
    params = SMALL_PARAMS_DICT()

    def failing():
        raise UserError("no shells today")

    with pytest.raises(UserError, match="no shells today"):
        features.extract_case_from_lesion(image, lesion, 2.0, failing, params, case_workers=2)
    ok = features.extract_case_from_lesion(image, lesion, 2.0, lambda: shells(lesion, (2.0,)), params, case_workers=2)
    assert ok == features.extract_case_from_lesion(image, lesion, 2.0, lambda: shells(lesion, (2.0,)), params,
                                                   case_workers=1)
    # a region step whose lesion differs from the one given: no overlap, the sequential values
    other = shells(lesion, (1.0,))["peri1"]
    masks = {"intra": other, "peri1": shells(other, (1.0,))["peri1"]}
    info: dict = {}
    got = features.extract_case_from_lesion(image, lesion, 3.0, lambda: masks, params, case_workers=2, info=info)
    assert info["overlap"] is False
    assert got == features.extract_case_from_lesion(image, lesion, 3.0, lambda: masks, params, case_workers=1)
    with pytest.raises(ValueError, match="reaches beyond"):
        features.extract_case_from_lesion(image, lesion, 0.5, lambda: shells(lesion, (2.0,)), params, case_workers=1)
    with pytest.raises(UserError, match="'peri2' is empty"):
        empty = sitk.Image(lesion.GetSize(), sitk.sitkUInt8)
        empty.CopyInformation(lesion)
        features.extract_case_from_lesion(image, lesion, 2.0, lambda: {"intra": lesion, "peri2": empty}, params,
                                          case_workers=2)


def test_fast_bbox_equals_geometry_bbox():
    from her2radiomics.geometry import bbox_zyx

    rng = np.random.default_rng(0)
    for _ in range(100):
        a = np.zeros(tuple(int(v) for v in rng.integers(1, 25, 3)), np.uint8)
        for _ in range(int(rng.integers(0, 4))):
            a[tuple(int(rng.integers(0, s)) for s in a.shape)] = int(rng.integers(1, 255))
        assert features._bbox_nonzero(a) == bbox_zyx(a) and features._bbox_nonzero(a != 0) == bbox_zyx(a)
    assert features._bbox_nonzero(np.full((2, 3, 4), -1.0)) == ((0, 2), (0, 3), (0, 4))  # signed: the generic path


def test_extract_case_with_reach_equals_the_case_from_lesion(tmp_path):
    """The Slicer panel's call (masks given, reach_mm) has the command line's crop, so the same values bit for bit."""
    image, lesion, _ = textured_case(seed=7, shape_zyx=(28, 56, 56), radius_mm=4.0)
    p = tmp_path / "p.yaml"
    p.write_text(WAVELET_PARAMS)
    params = features.load_params(p)
    masks = _cut_shells(lesion)
    a_info: dict = {}
    a = features.extract_case(image, masks, params, reach_mm=3.0, case_workers=2, info=a_info, margin_mm=4.0)
    b_info: dict = {}
    b = features.extract_case_from_lesion(image, lesion, 3.0, lambda: masks, params, case_workers=2, info=b_info,
                                          margin_mm=4.0)
    assert a_info["crop_bbox_zyx"] == b_info["crop_bbox_zyx"]
    assert list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    union_info: dict = {}
    features.extract_case(image, masks, params, case_workers=1, info=union_info, margin_mm=4.0)
    assert union_info["crop_bbox_zyx"] != a_info["crop_bbox_zyx"]  # the cut shells' union is smaller than the reach


def _helper_sigint_state(_: int) -> tuple[bool, bool]:
    import signal

    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN, signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_pool_start_keeps_ctrl_c_for_this_process():
    """Helpers ignore SIGINT from birth (SIGINT blocked while they fork); this process' mask is restored after."""
    import signal

    features.shutdown_case_pool()
    pool = features.case_pool(2)
    assert pool is not None
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])  # Ctrl-C still reaches this process
    ignored, _ = pool.apply(_helper_sigint_state, (0,))
    assert ignored
