"""Automatic air and pectoralis masks: phantom ground truth, real Duke slices, the breast1 crop, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import shared_path
from scipy import ndimage

from her2radiomics import io
from her2radiomics.errors import UserError
from her2radiomics.exclusions import (
    REVIEW_BELOW,
    confidence_record,
    detect_air,
    detect_pectoralis,
    dice,
    evaluation_region,
    orientation,
)
from her2radiomics.geometry import same_grid
from her2radiomics.phantom import make_phantom

DUKE_DIRECTION = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


def arr(img: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(img)


# (seed, size, spacing, breast_scale, lesion gap to the muscle, direction): several seeds, spacings, breast sizes
CASES = [
    (11, (160, 160, 48), (2.07, 2.07, 4.0), 1.0, 4.0, None),
    (12, (160, 160, 48), (2.07, 2.07, 4.0), 1.3, 8.0, None),
    (13, (224, 224, 64), (1.48, 1.48, 3.0), 0.7, 6.0, None),
    (14, (128, 128, 48), (2.6, 2.6, 4.0), 1.0, 10.0, DUKE_DIRECTION),
    (15, (192, 160, 40), (1.73, 2.07, 4.8), 1.15, 5.0, None),
]


@pytest.mark.parametrize(("seed", "size", "spacing", "scale", "gap", "direction"), CASES)
def test_phantom_dice(seed, size, spacing, scale, gap, direction):
    ph = make_phantom(seed, size, spacing, breast_scale=scale, lesion_gap_mm=gap, direction=direction, rim=0.8)
    air = detect_air(ph.image, ph.lesion)
    pec = detect_pectoralis(ph.image, ph.lesion, 5.0)
    assert same_grid(air.mask, ph.image) and same_grid(pec.mask, ph.image)
    assert dice(arr(air.mask), arr(ph.air)) >= 0.95
    region = evaluation_region(ph.lesion, 5.0, 10.0)
    truth = arr(ph.pectoralis).astype(bool) & region
    assert truth.sum() > 20  # the lesion is close enough for the muscle to matter
    assert dice(arr(pec.mask).astype(bool) & region, truth) >= 0.85
    les = arr(ph.lesion).astype(bool)
    assert not (arr(air.mask).astype(bool) & les).any() and not (arr(pec.mask).astype(bool) & les).any()


@pytest.mark.parametrize("kw", [
    {"noise": 20.0, "lesion_gap_mm": 5.0},  # fat SNR 3.5
    {"bias": 0.6, "lesion_gap_mm": 5.0},  # strong coil shading
    {"peritumoral_enhancement": 2.0, "rim": 1.0, "heterogeneity": 1.0, "lesion_gap_mm": 6.0},  # oedema at the muscle
    {"noise": 0.0, "lesion_gap_mm": 2.0},
])
def test_phantom_dice_hard_variants(kw):
    ph = make_phantom(31, (224, 224, 80), (1.48, 1.48, 2.4), **kw)
    air = detect_air(ph.image, ph.lesion)
    pec = detect_pectoralis(ph.image, ph.lesion, 5.0)
    region = evaluation_region(ph.lesion, 5.0, 10.0)
    assert dice(arr(air.mask), arr(ph.air)) >= 0.95
    assert dice(arr(pec.mask).astype(bool) & region, arr(ph.pectoralis).astype(bool) & region) >= 0.85


# Hardest configurations of benchmarks/sweep_exclusions.py (0.6-0.8 mm in-plane: anatomy scaled to a small field
# of view, a thin pectoralis, the heart inside the analysed box). Before the fix every one of them gave pectoralis
# Dice 0 (the heart or a fat level taken from the skin); (seed, size, spacing, breast_scale, gap, lesion radius).
SWEEP_HARD = [
    (4, (256, 256, 80), (0.7, 0.7, 1.5), 1.0, None, 8.0),  # reviewer's case: "muscle" found on the heart, 21.7 mm away
    (8533, (229, 320, 25), (0.799, 0.799, 2.81), 1.16, 8.5, 6.4),  # thick skin: fat level was calibrated on skin
    (7721, (287, 205, 38), (0.618, 0.618, 2.88), 1.05, 2.1, 5.8),  # lesion 2 mm from a thin muscle
    (3213, (246, 202, 40), (0.651, 0.651, 1.56), 1.03, 4.3, 8.6),
    (6390, (253, 209, 46), (0.693, 0.693, 2.2), 1.07, 6.0, 10.4),
]


@pytest.mark.parametrize(("seed", "size", "spacing", "scale", "gap", "radius"), SWEEP_HARD)
def test_phantom_dice_sweep_hard_cases(seed, size, spacing, scale, gap, radius):
    ph = make_phantom(seed, size, spacing, breast_scale=scale, lesion_gap_mm=gap, lesion_radius_mm=radius)
    air = detect_air(ph.image, ph.lesion)
    assert dice(arr(air.mask), arr(ph.air)) >= 0.95
    region = evaluation_region(ph.lesion, 5.0, 10.0)
    truth = arr(ph.pectoralis).astype(bool) & region
    assert truth.sum() > 20
    for pec in (detect_pectoralis(ph.image, ph.lesion, 5.0), detect_pectoralis(ph.image, ph.lesion, 5.0, air=air.mask)):
        assert dice(arr(pec.mask).astype(bool) & region, truth) >= 0.85
        # the subcutaneous fat calibration finds the phantom's fat (70 before shading), not skin (220) / muscle (160)
        assert 50 < pec.info["fat_level"] < 95


def test_evaluation_region_is_the_brute_force_distance():
    img = sitk.Image(9, 8, 7, sitk.sitkUInt8)
    img.SetSpacing((0.8, 1.1, 2.5))
    a = arr(img)
    a[3, 4, 4] = a[3, 4, 5] = 1
    les = sitk.GetImageFromArray(a)
    les.CopyInformation(img)
    got = evaluation_region(les, 1.0, 1.5)
    zz, yy, xx = np.indices(a.shape)
    pts = np.stack([zz * 2.5, yy * 1.1, xx * 0.8], -1)
    d = np.min([np.linalg.norm(pts - np.array([z * 2.5, y * 1.1, x * 0.8]), axis=-1) for z, y, x in np.argwhere(a)], 0)
    assert np.array_equal(got, d <= 2.5)
    assert dice(np.zeros(3), np.zeros(3)) == 1.0 and dice([1, 1, 0], [1, 0, 0]) == pytest.approx(2 / 3)


def test_dark_lesion_core_and_shading_never_make_air():
    ph = make_phantom(21, (160, 160, 48), (2.07, 2.07, 4.0), rim=1.0, bias=0.6, lesion_radius_mm=12.0)
    les = arr(ph.lesion).astype(bool)
    img = arr(ph.image)
    img[les] = 0  # a completely signal-void lesion, darker than any fat
    dark = sitk.GetImageFromArray(img)
    dark.CopyInformation(ph.image)
    for lesion in (ph.lesion, None):  # with and without the lesion mask: enclosed by the body -> never air
        air = arr(detect_air(dark, lesion).mask).astype(bool)
        assert not (air & les).any()
        assert dice(air, arr(ph.air)) >= 0.95


def test_crop_without_air_gives_empty_mask_and_note():
    ph = make_phantom(22, (160, 160, 48), (2.07, 2.07, 4.0))
    les = arr(ph.lesion)
    z, y, x = (int(v) for v in np.argwhere(les).mean(0))
    box = [x - 6, y - 6, z - 3]
    crop = sitk.RegionOfInterest(ph.image, [12, 12, 6], box)
    assert not arr(sitk.RegionOfInterest(ph.air, [12, 12, 6], box)).any()
    ex = detect_air(crop)
    assert not arr(ex.mask).any() and same_grid(ex.mask, crop)
    assert any("no extramammary air" in n for n in ex.notes)


def test_non_axial_image_gives_note_and_empty_pectoralis():
    ph = make_phantom(23, (48, 160, 160), (4.0, 2.07, 2.07), direction=(0, 0, 1, 0, 1, 0, 1, 0, 0), lesion_gap_mm=5.0)
    ori = orientation(ph.image)
    assert not ori.axial and ori.tilt_deg == pytest.approx(90.0)
    pec = detect_pectoralis(ph.image, ph.lesion)
    assert not arr(pec.mask).any() and any("axial" in n for n in pec.notes)
    air = detect_air(ph.image, ph.lesion)  # air still works (per acquired slice, all borders)
    assert dice(arr(air.mask), arr(ph.air)) >= 0.95


def test_lesion_off_grid_is_a_user_error():
    ph = make_phantom(24, (96, 96, 40), (3.45, 3.45, 4.8), lesion_radius_mm=6.0)
    other = sitk.Image(10, 10, 10, sitk.sitkUInt8)
    with pytest.raises(UserError, match="lesion"):
        detect_air(ph.image, other)
    with pytest.raises(UserError, match="reach_mm"):
        detect_pectoralis(ph.image, ph.lesion, reach_mm=-1)


def test_pectoralis_is_restricted_to_the_lesion_neighbourhood():
    ph = make_phantom(25, (160, 160, 48), (2.07, 2.07, 4.0), lesion_gap_mm=5.0)
    pec = arr(detect_pectoralis(ph.image, ph.lesion, 5.0).mask).astype(bool)
    assert pec.any()
    d = ndimage.distance_transform_edt(~arr(ph.lesion).astype(bool), sampling=ph.image.GetSpacing()[::-1])
    # analysed box: lesion bounding box + (reach + 30 mm) per axis, so no voxel is farther than its diagonal
    assert d[pec].max() <= np.sqrt(3) * (5.0 + 30.0) + 4.0


# ---------------------------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def duke():
    folder = shared_path("duke_dicom")
    img = io.read_image(folder)
    air = detect_air(img)
    pec = detect_pectoralis(img, None, 5.0, air=air.mask)
    return img, air, pec


def _ap_mm(img: sitk.Image) -> np.ndarray:
    """Physical LPS y (mm, + = posterior) of every array row j, from the direction matrix."""
    return np.array([img.TransformContinuousIndexToPhysicalPoint((0.0, float(j), 0.0))[1]
                     for j in range(img.GetSize()[1])])


def _outline(a: np.ndarray, ap: np.ndarray) -> np.ndarray:
    """Physical y of the most anterior clearly-bright voxel (skin / subcutaneous fat > 200) per (k, i) column."""
    bright = ndimage.median_filter(a, size=(1, 3, 3)) > 200
    y = np.where(bright, ap[None, :, None], np.inf)
    return y.min(axis=1)  # anterior = smallest LPS y


def test_duke_geometry(duke):
    img = duke[0]
    assert img.GetSize() == (512, 512, 3)
    assert np.allclose(img.GetSpacing(), (0.5859, 0.5859, 3.0), atol=1e-3)
    assert np.allclose(img.GetDirection(), DUKE_DIRECTION, atol=1e-6)
    ori = orientation(img)
    assert ori.axial and ori.ap_axis == 1 and ori.ap_sign == -1  # rows run posterior -> anterior


def test_duke_air_is_the_dark_region_below_the_body(duke):
    img, air_ex, _ = duke
    a, air = arr(img).astype(float), arr(air_ex.mask).astype(bool)
    ap = _ap_mm(img)
    outline = _outline(a, ap)
    y = np.broadcast_to(ap[None, :, None], a.shape)
    has_body = np.isfinite(outline)[:, None, :]
    below = has_body & (y < outline[:, None, :] - 3.0)  # >= 3 mm anterior of the skin
    inside = has_body & (y > outline[:, None, :] + 3.0)  # >= 3 mm posterior of the skin
    assert below.sum() > 100_000
    assert air[below].mean() > 0.99  # the dark region below the body is air
    assert air[inside].mean() < 0.002  # none of the body is
    assert not (air & (ndimage.median_filter(a, size=(1, 3, 3)) > 200)).any()
    # air looks like background: as dark as the region below the body, far darker than tissue
    assert np.median(a[air]) < 0.2 * np.median(a[inside])
    assert air_ex.notes == []


def test_duke_pectoralis_lies_on_the_chest_wall_muscle(duke):
    img, air_ex, pec_ex = duke
    a, pec = arr(img).astype(float), arr(pec_ex.mask).astype(bool)
    ap = _ap_mm(img)
    outline = _outline(a, ap)
    y = np.broadcast_to(ap[None, :, None], a.shape)
    vol = pec.sum() * np.prod(img.GetSpacing()) / 1000
    assert 10 < vol < 120  # cm3 over three 3-mm slices: two pectoral muscles
    # intensity: muscle on T1 is far darker than subcutaneous fat and far brighter than air
    fat = np.median(a[(y > outline[:, None, :] + 2) & (y < outline[:, None, :] + 6)])
    assert np.median(a[pec]) < 0.5 * fat
    assert np.median(a[pec]) > 4 * np.median(a[arr(air_ex.mask).astype(bool)])
    # position along the physical A-P axis: behind the skin, in front of the deep chest
    depth = y - outline[:, None, :]
    assert np.percentile(depth[pec], 5) > 5.0 and np.percentile(depth[pec], 95) < 80.0
    # and not in the lungs / deep dark structures: muscle voxels are homogeneous tissue, not signal voids
    assert np.percentile(a[pec], 5) > 2 * np.median(a[arr(air_ex.mask).astype(bool)])
    # in front of the muscle is fat: within 6 mm anterior of each column's most anterior muscle voxel
    k, i = np.nonzero(pec.any(axis=1))
    first_y = np.where(pec, y, np.inf).min(axis=1)[k, i]
    ok = []
    for kk, ii, fy in zip(k, i, first_y, strict=True):
        rows = (ap < fy) & (ap >= fy - 6.0)
        ok.append(a[kk, rows, ii].max() > 0.6 * fat)
    assert np.mean(ok) > 0.7  # measured 0.77; misses are partial-volume fascia and shoulder muscles
    # both pectoral muscles: mask on both sides of the body's left-right centre
    xs = np.nonzero(pec)[2]
    body_x = np.nonzero(np.isfinite(outline))[1]
    centre = (body_x.min() + body_x.max()) / 2
    assert min((xs < centre).mean(), (xs > centre).mean()) > 0.2


def test_breast1_crop_does_not_crash_and_explains(breast1):
    image_path, label_path = breast1
    img = io.read_image(image_path)
    les = io.read_mask(label_path, img, "lesion")
    air = detect_air(img, les)
    pec = detect_pectoralis(img, les, 5.0)
    a = arr(air.mask).astype(bool)
    # little air: a dark corner outside the skin in the last slices only, far from the lesion
    assert a.mean() < 0.03
    assert not (a & arr(les).astype(bool)).any()
    if a.any():
        assert np.median(arr(img)[a]) < 0.3 * np.median(arr(img)[~a])
        assert np.nonzero(a)[0].min() >= 15  # lesion is on slices 8-10
    assert not arr(pec.mask).any() and len(pec.notes) == 1 and "left empty" in pec.notes[0]
    no_les = detect_pectoralis(img)  # whole crop: no skin to calibrate fat, or no muscle/fat contrast
    assert not arr(no_les.mask).any() and "left empty" in no_les.notes[0]


def test_separable_inplane_morphology_matches_scipy():
    from her2radiomics.exclusions import _dilate_sq, _erode_sq

    m = np.random.default_rng(0).random((4, 30, 40)) > 0.3
    square = np.zeros((3, 3, 3), bool)
    square[1] = True
    assert np.array_equal(_dilate_sq(m), ndimage.binary_dilation(m, square))
    assert np.array_equal(_erode_sq(m), ndimage.binary_erosion(m, square, border_value=1))


def test_whole_image_without_lesion_uses_blocks_and_finds_the_muscle():
    ph = make_phantom(26, (400, 400, 28), (0.83, 0.83, 6.8))  # > 4 M voxels: ~1.4 mm block path
    pec = detect_pectoralis(ph.image)
    assert same_grid(pec.mask, ph.image)
    assert any("whole image without a lesion" in n for n in pec.notes)
    got, truth = arr(pec.mask).astype(bool), arr(ph.pectoralis).astype(bool)
    assert (got & truth).sum() / truth.sum() > 0.8  # recall; extra muscle-like tissue is a documented limit
    assert not (got & arr(ph.air).astype(bool)).any()


# ---------------------------------------------------------------------------------------------- confidence (issue 11)
def test_confidence_and_review_flag_on_a_clear_case():
    ph = make_phantom(11, (160, 160, 48), (2.07, 2.07, 4.0), lesion_gap_mm=4.0, rim=0.8)
    air = detect_air(ph.image, ph.lesion)
    pec = detect_pectoralis(ph.image, ph.lesion, 5.0, air=air.mask)
    for ex in (air, pec):
        rec = confidence_record(ex)
        assert 0.0 <= rec["confidence"] <= 1.0 and rec["review_below"] == REVIEW_BELOW
        assert rec["review"] is (rec["confidence"] < REVIEW_BELOW)
        assert rec["confidence"] == pytest.approx(min(rec["confidence_parts"].values()), abs=1e-3)
    assert not confidence_record(air)["review"] and not confidence_record(pec)["review"]
    assert pec.info["contrast"] == "fat-suppressed"  # muscle brighter than the suppressed fat, and said so


def test_non_axial_and_subtraction_are_flagged_for_review():
    ph = make_phantom(23, (48, 160, 160), (4.0, 2.07, 2.07), direction=(0, 0, 1, 0, 1, 0, 1, 0, 0), lesion_gap_mm=5.0)
    assert confidence_record(detect_pectoralis(ph.image, ph.lesion))["review"]
    # a signed subtraction-like image (background below zero): air and fat cannot be told apart -> review
    ph = make_phantom(11, (160, 160, 48), (2.07, 2.07, 4.0), lesion_gap_mm=4.0)
    sub = sitk.Cast(ph.image, sitk.sitkFloat32) - 60.0
    air = detect_air(sub, ph.lesion)
    pec = detect_pectoralis(sub, ph.lesion, 5.0, air=air.mask)
    assert confidence_record(air)["review"] and any("--exclusion-image" in n for n in air.notes)
    assert confidence_record(pec)["review"] and pec.info["contrast"] == "subtraction"
    assert not arr(pec.mask).any()


def test_pectoralis_beside_the_lesion_is_flagged():
    """Issue 11: a 'muscle' layer at the lesion's depth (parenchyma) is reported with low confidence.

    Family A with the fibroglandular tissue at muscle intensity and touching the lesion: on main the mask was
    returned with no confidence at all; now either it lies behind the lesion or confidence_parts flags it."""
    from her2radiomics import phantom as P

    old = P.BASE_INTENSITY.copy()
    P.BASE_INTENSITY[P.GLAND] = 165.0
    try:
        ph = make_phantom(1, (224, 224, 80), (1.48, 1.48, 2.4), lesion_gap_mm=4.0)
    finally:
        P.BASE_INTENSITY[:] = old
    pec = detect_pectoralis(ph.image, ph.lesion, 5.0)
    region = evaluation_region(ph.lesion, 5.0, 10.0)
    d = dice(arr(pec.mask).astype(bool) & region, arr(ph.pectoralis).astype(bool) & region)
    assert d >= 0.85 or confidence_record(pec)["review"]


# Hardest cases of the independent phantom family B (Testing/Python/phantom_b.py, issue 11), from
# benchmarks/sweep_exclusions_b.py --quick. On main every one of them violated the shell criteria (5 mm shell
# keeps >= 97 % of the breast tissue within 5 mm, <= 3 % air / muscle) with no warning at all; now each
# case either meets them or its masks are flagged for review (the promise: never silently wrong).
_ID = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
_DUKE = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
FAMILY_B_HARD = [
    # fat-suppressed, deep lesion, fibroglandular tissue at muscle intensity, oblique: parenchyma taken for muscle
    (1001, dict(contrast="fs", density="a", lesion_kind="deep", pec_thickness_mm=15.0, spacing=(0.7, 0.7, 1.5),
                direction=_ID, oblique_deg=17.52, fgt_like_muscle=True, bias=0.35, ghosting=0.18,
                lesion_radius_mm=8.72)),
    # fat-suppressed, lesion under thickened skin, thin muscle: 12-19 % of the shell's breast tissue removed
    (1002, dict(contrast="fs", density="b", lesion_kind="superficial", pec_thickness_mm=3.0, spacing=(0.7, 0.7, 1.5),
                direction=_ID, oblique_deg=20.69, skin_thickening_mm=2.89, bias=0.13, ghosting=0.07,
                lesion_radius_mm=7.92)),
    # clipped subtraction: air and fat both ~0, the air took most of the breast (keep 28 % on main)
    (1016, dict(contrast="sub", density="a", lesion_kind="mid", pec_thickness_mm=3.0, spacing=(0.7, 0.7, 1.5),
                direction=_DUKE, bias=0.16, ghosting=0.17, lesion_radius_mm=9.15)),
    # non-fat-suppressed, dense breast, deep lesion on a thick muscle: must be found (Dice >= 0.85 now)
    (1007, dict(contrast="nonfs", density="d", lesion_kind="deep", pec_thickness_mm=15.0, spacing=(0.7, 0.7, 1.5),
                direction=_DUKE, fgt_like_muscle=True, bias=0.23, lesion_radius_mm=8.42)),
]


@pytest.mark.parametrize(("seed", "kw"), FAMILY_B_HARD, ids=["fs-deep-fgt", "fs-superficial", "sub", "nonfs-deep"])
def test_family_b_hard_cases_meet_the_shell_criteria_or_are_flagged(seed, kw):
    import exclusion_scoring as es
    import phantom_b as pb

    from her2radiomics.regions import build_regions

    case = pb.make_case_b(seed, pec_minor=True, **kw)
    reg = build_regions(case.image, case.lesion, (1.0, 3.0, 5.0))
    s = es.score_case(case, reg)
    shell_ok = s["keep"] >= 0.97 and s["contamination"] <= 0.03
    assert shell_ok or s["flagged"], s["violations"]
    if seed == 1007:
        assert s["dice_pec"] >= 0.85 and shell_ok
    if kw["contrast"] == "sub":  # the air is not allowed to eat the breast: empty and flagged instead
        assert s["keep"] >= 0.97 and reg.exclusions["air"]["review"]
