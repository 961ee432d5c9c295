"""2D regions: in-plane rings equal a brute-force distance computation; maximum cross-section; true 2D images.

The brute-force reference maps every pixel centre to physical space with SimpleITK's own
TransformIndexToPhysicalPoint (so direction and spacing come from ITK, not from our code) and takes the
minimum Euclidean distance to the lesion's pixel centres.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk

from her2radiomics import planar
from her2radiomics.errors import UserError
from her2radiomics.regions import BOUNDARY_EPS_MM, build_regions, compute_shells, shell_name

US_DISTANCES = (3.0, 5.0, 8.0)   # the ultrasound study's rings


def _points(img: sitk.Image, idx_yx: np.ndarray) -> np.ndarray:
    return np.array([img.TransformIndexToPhysicalPoint((int(i[1]), int(i[0]))) for i in idx_yx])


def brute_rings(img: sitk.Image, lesion: np.ndarray, distances, margin: int = 0):
    """Rings on the image and the number of ideal-ring lattice points beyond the border (margin pixels)."""
    les_pts = _points(img, np.argwhere(lesion))
    ny, nx = lesion.shape
    idx = np.indices((ny + 2 * margin, nx + 2 * margin)).reshape(2, -1).T - margin
    sp = np.array(img.GetSpacing())
    d2 = np.asarray(img.GetDirection()).reshape(2, 2)
    pts = np.asarray(img.GetOrigin()) + (idx[:, ::-1] * sp) @ d2.T   # ITK's formula, also for out-of-image indices
    inside = (idx[:, 0] >= 0) & (idx[:, 0] < ny) & (idx[:, 1] >= 0) & (idx[:, 1] < nx)
    assert np.allclose(pts[inside][:5], _points(img, idx[inside][:5]))
    dist = np.sqrt(((pts[:, None, :] - les_pts[None, :, :]) ** 2).sum(-1)).min(1)
    in_les = np.zeros(len(idx), bool)
    in_les[inside] = lesion[idx[inside, 0], idx[inside, 1]]
    rings, clipped = {}, {}
    for d in distances:
        ideal = (dist <= d + BOUNDARY_EPS_MM) & ~in_les
        rings[shell_name(d)] = ideal[inside].reshape(ny, nx)
        clipped[shell_name(d)] = int(np.count_nonzero(ideal & ~inside))
    return rings, clipped


def image_2d(seed: int, shape=(40, 52), spacing=None, border: bool = False) -> tuple[sitk.Image, np.ndarray]:
    rng = np.random.default_rng(seed)
    img = sitk.GetImageFromArray(rng.integers(0, 200, shape).astype(np.int16))
    img.SetSpacing(spacing or tuple(rng.uniform(0.15, 0.9, 2)))
    a = rng.uniform(0, 2 * math.pi)
    img.SetDirection((math.cos(a), -math.sin(a), math.sin(a), math.cos(a)))
    img.SetOrigin(tuple(rng.uniform(-50, 50, 2)))
    yy, xx = np.indices(shape)
    cy, cx = (2, 4) if border else (shape[0] // 2, shape[1] // 2)
    lesion = ((yy - cy) / 5.0) ** 2 + ((xx - cx) / 7.0) ** 2 <= 1
    lesion[cy, min(cx + 9, shape[1] - 1)] = True   # a second component
    return img, lesion


def _mask(arr: np.ndarray, ref: sitk.Image) -> sitk.Image:
    m = sitk.GetImageFromArray(arr.astype(np.uint8))
    m.CopyInformation(ref)
    return m


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rings_on_a_2d_image_equal_brute_force(seed):
    img, les = image_2d(seed, spacing=(0.3, 0.55) if seed == 0 else None)
    regs = build_regions(img, _mask(les, img), US_DISTANCES)
    ref, clipped = brute_rings(img, les, US_DISTANCES, margin=int(8 / min(img.GetSpacing())) + 2)
    for name, want in ref.items():
        got = sitk.GetArrayFromImage(regs.masks[name]).astype(bool)
        assert np.array_equal(got, want), name
        st = regs.stats[name]
        area = float(np.prod(img.GetSpacing()))
        assert st["voxels"] == want.sum() and st["volume_mm3"] == pytest.approx(want.sum() * area)
        assert st["clipped_mm3"] == pytest.approx(clipped[name] * area)
    # compute_shells gives the same rings
    sh = compute_shells(_mask(les, img), US_DISTANCES)
    assert all(np.array_equal(sitk.GetArrayFromImage(sh[n]).astype(bool), ref[n]) for n in ref)
    assert regs.image_info["dimension"] == 2 and regs.image_info["measure_unit"] == "mm2"
    assert regs.stats["intra"]["components"] == 2


def test_border_clips_rings_and_says_so():
    img, les = image_2d(5, spacing=(0.4, 0.4), border=True)
    regs = build_regions(img, _mask(les, img), US_DISTANCES)
    _, clipped = brute_rings(img, les, US_DISTANCES, margin=25)
    assert all(regs.stats[n]["clipped_mm3"] == pytest.approx(c * 0.16) for n, c in clipped.items())
    assert clipped["peri8"] > 0
    text = " | ".join(regs.warnings)
    assert "lesion touches the image border along y" in text
    assert "shells reach beyond the image border" in text and "peri8 loses" in text and "mm2" in text


def test_2d_exclusions_off_unless_given_as_masks():
    img, les = image_2d(3, spacing=(0.4, 0.4))
    regs = build_regions(img, _mask(les, img), US_DISTANCES)
    assert regs.exclusion_source == {"air": "none", "pectoralis": "none"}
    assert any("2D image: the automatic air / pectoralis detection is off" in w for w in regs.warnings)
    air = np.zeros(les.shape, bool)
    air[:, :20] = True
    regs2 = build_regions(img, _mask(les, img), US_DISTANCES, air=_mask(air, img))
    assert regs2.exclusion_source["air"] == "user"
    got = sitk.GetArrayFromImage(regs2.masks["peri5"]).astype(bool)
    full = sitk.GetArrayFromImage(regs.masks["peri5"]).astype(bool)
    assert np.array_equal(got, full & ~air) and regs2.stats["peri5"]["excluded_air_mm3"] > 0


def test_max_area_slice_picks_the_largest_cross_section():
    les = np.zeros((9, 20, 20), np.uint8)
    areas = [0, 3, 10, 25, 18, 25, 4, 0, 0]   # tie at k=3 and k=5: centre of mass 4.03 -> equally far; lower k
    rng = np.random.default_rng(0)
    for k, a in enumerate(areas):
        flat = rng.choice(400, a, replace=False)
        les[k].ravel()[flat] = 1
    img = sitk.GetImageFromArray(les)
    img.SetSpacing((0.7, 0.7, 2.0))
    assert planar.max_area_slice(img) == 3
    areas2 = [0, 3, 10, 22, 18, 25, 4, 0, 0]
    les2 = np.zeros_like(les)
    for k, a in enumerate(areas2):
        les2[k].ravel()[rng.choice(400, a, replace=False)] = 1
    assert planar.max_area_slice(les2) == 5
    with pytest.raises(UserError, match="empty"):
        planar.max_area_slice(np.zeros((3, 4, 4)))


def test_2d_max_mode_on_the_phantom_gives_in_plane_rings():
    from her2radiomics.phantom import make_phantom

    ph = make_phantom(3, (120, 120, 40), (2.76, 2.76, 4.8), lesion_radius_mm=10)
    k = planar.max_area_slice(ph.lesion)
    counts = sitk.GetArrayViewFromImage(ph.lesion).reshape(40, -1).sum(1)
    assert counts[k] == counts.max()
    img2, les2 = planar.extract_slice(ph.image, k), planar.extract_slice(ph.lesion, k)
    assert img2.GetDimension() == 2 and img2.GetSpacing() == (2.76, 2.76)
    assert np.allclose(img2.GetOrigin(), ph.image.TransformIndexToPhysicalPoint((0, 0, k))[:2])
    regs = build_regions(img2, les2, (3.0, 6.0), air=planar.extract_slice(ph.air, k),
                         pectoralis=planar.extract_slice(ph.pectoralis, k))
    ref, _ = brute_rings(img2, sitk.GetArrayFromImage(les2).astype(bool), (3.0, 6.0))
    air = sitk.GetArrayFromImage(planar.extract_slice(ph.air, k)).astype(bool)
    pec = sitk.GetArrayFromImage(planar.extract_slice(ph.pectoralis, k)).astype(bool)
    for n in ref:
        assert np.array_equal(sitk.GetArrayFromImage(regs.masks[n]).astype(bool), ref[n] & ~air & ~pec), n
    info = planar.slice_info(ph.image, k, ph.lesion)
    assert info["lesion_area_mm2"] == pytest.approx(counts[k] * 2.76 * 2.76)


def test_true_2d_images_png_nrrd_dicom(tmp_path):
    img, les = image_2d(7, spacing=(0.25, 0.25))
    arr = sitk.GetArrayFromImage(img).astype(np.uint8)
    png = sitk.GetImageFromArray(np.stack([arr, arr, arr], -1), isVector=True)
    sitk.WriteImage(png, str(tmp_path / "us.png"))
    sitk.WriteImage(sitk.GetImageFromArray(les.astype(np.uint8) * 255), str(tmp_path / "us_lesion.png"))
    with pytest.raises(UserError, match="--pixel-spacing"):
        planar.read_image_2d(tmp_path / "us.png")
    a = planar.read_image_2d(tmp_path / "us.png", (0.1, 0.1))
    assert a.GetDimension() == 2 and a.GetSpacing() == (0.1, 0.1)
    assert np.allclose(sitk.GetArrayFromImage(a), arr, atol=0.51)   # RGB grey -> the same luminance
    m = planar.read_mask_2d(tmp_path / "us_lesion.png", a)
    regs = build_regions(a, m, US_DISTANCES)
    ref, _ = brute_rings(a, les, US_DISTANCES)
    assert all(np.array_equal(sitk.GetArrayFromImage(regs.masks[n]).astype(bool), ref[n]) for n in ref)
    # NRRD keeps its spacing; a one-slice 3D volume is accepted as 2D
    sitk.WriteImage(img, str(tmp_path / "us.nrrd"))
    b = planar.read_image_2d(tmp_path / "us.nrrd")
    assert b.GetSpacing() == (0.25, 0.25)
    sitk.WriteImage(planar.as_volume(img), str(tmp_path / "us3.nrrd"))
    assert planar.read_image_2d(tmp_path / "us3.nrrd").GetSize() == img.GetSize()
    # DICOM: PixelSpacing from the header
    d = sitk.Cast(sitk.GetImageFromArray(sitk.GetArrayFromImage(img)), sitk.sitkInt16)
    d.SetSpacing((0.3, 0.3))
    d.SetMetaData("0028|0030", "0.3\\0.3")
    sitk.WriteImage(d, str(tmp_path / "us.dcm"))
    c = planar.read_image_2d(tmp_path / "us.dcm")
    assert c.GetDimension() == 2 and np.allclose(c.GetSpacing(), (0.3, 0.3))


def test_2d_features_equal_pyradiomics_execute_with_force2d():
    """In-plane features of the phantom's largest slice with 3/5/8 mm rings (the ultrasound recipe): our
    extraction (features.extract_case on the one-slice volume, force2D + shape2D) equals pyradiomics' own
    RadiomicsFeatureExtractor.execute for every region and feature."""
    from radiomics import featureextractor

    from her2radiomics import features
    from her2radiomics.phantom import make_phantom

    ph = make_phantom(3, (120, 120, 40), (2.76, 2.76, 4.8), lesion_radius_mm=10)
    k = planar.max_area_slice(ph.lesion)
    img2, les2 = planar.extract_slice(ph.image, k), planar.extract_slice(ph.lesion, k)
    regs = build_regions(img2, les2, US_DISTANCES)
    params = planar.force2d_params(features.load_params(None))
    vol = planar.as_volume(sitk.Cast(img2, sitk.sitkFloat32), 4.8)
    masks = {n: planar.as_volume(m, 4.8) for n, m in regs.feature_masks().items() if n in ("intra", "peri8")}
    ours = features.extract_case(vol, masks, params, case_workers=1)
    assert "intra_original_shape2D_PixelSurface" in ours and not any("_shape_" in c for c in ours)
    ext = featureextractor.RadiomicsFeatureExtractor(params)
    ext.settings["additionalInfo"] = False
    ext.settings["label"] = 1
    for name, m in masks.items():
        ref = ext.execute(vol, m)
        assert len(ref) > 100
        for key, v in ref.items():
            a, b = float(v), ours[f"{name}_{key}"]
            assert a == b or (math.isnan(a) and math.isnan(b)), (name, key, a, b)
    # shape2D area = lesion pixels x pixel area (pyradiomics' PixelSurface)
    assert ours["intra_original_shape2D_PixelSurface"] == pytest.approx(regs.stats["intra"]["volume_mm3"])


def test_2d_max_on_breast1_equals_pyradiomics_published_shape2d_baseline():
    """pyradiomics' own 2D test case (baseline_shape2D.csv, case breast1_2D: force2D, 82-voxel slice z=9) is the
    breast1 lesion's largest cross-section: --mode 2d-max picks that slice and gives the published shape2D values."""
    import csv

    from conftest import shared_path

    from her2radiomics import features

    breast1 = shared_path("pyradiomics_breast1")
    img = sitk.ReadImage(str(breast1 / "breast1_image.nrrd"))
    les = sitk.ReadImage(str(breast1 / "breast1_label.nrrd"))
    les = sitk.Cast(les == 1, sitk.sitkUInt8)
    k = planar.max_area_slice(les)
    assert k == 9
    img2, les2 = planar.extract_slice(img, k), planar.extract_slice(les, k)
    regs = build_regions(img2, les2, (3.0,))
    params = features.load_params({"imageType": {"Original": {}}, "featureClass": {"shape": None},
                                   "setting": {"label": 1}})
    ours = planar.extract_case_2d(img2, {"intra": regs.masks["intra"]}, params, case_workers=1)
    with open(breast1 / "baseline" / "baseline_shape2D.csv", encoding="utf-8", newline="") as fh:
        base = {r["featureName"]: r["breast1_shape2D"] for r in csv.DictReader(fh)}
    names = [n for n in base if n.startswith("original_shape2D_")]
    assert len(names) == 9
    for n in names:
        assert ours[f"intra_{n}"] == pytest.approx(float(base[n]), rel=1e-9), n
