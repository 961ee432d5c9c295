"""DCE phantom series: same anatomy as the single-phase phantom, planted lesion kinetics, companion T2/ADC grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from her2radiomics.errors import UserError
from her2radiomics.phantom import (
    ADC_VALUE,
    DCE_TIMES_S,
    GLAND,
    LESION,
    make_dce_phantom,
    make_phantom,
    write_dce_phantom,
)

GRID = {"size": (120, 120, 40), "spacing": (2.76, 2.76, 4.8)}


def arr(img: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(img)


@pytest.mark.parametrize("direction", [None, (-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0)])
def test_same_anatomy_as_single_phase_phantom(direction):
    dce = make_dce_phantom(4, **GRID, direction=direction, kinetic="plateau")
    single = make_phantom(4, **GRID, direction=direction)
    for name in ("lesion", "air", "pectoralis"):
        assert np.array_equal(arr(getattr(dce, name)), arr(getattr(single, name))), name
    assert len(dce.phases) == len(DCE_TIMES_S) == 6
    for ph in dce.phases:
        assert ph.GetPixelID() == sitk.sitkInt16
        assert ph.GetSize() == single.image.GetSize() and ph.GetDirection() == single.image.GetDirection()
    assert dce.meta["lesion"] == single.meta["lesion"]


@pytest.mark.parametrize("kinetic,initial,delayed", [("persistent", 80.0, 25.0), ("plateau", 150.0, 0.0),
                                                      ("washout", 40.0, -25.0)])
def test_planted_lesion_curve_without_noise(kinetic, initial, delayed):
    """noise 0 and bias 0: every enhancing lesion voxel carries exactly the planted curve (int16 rounding only)."""
    ph = make_dce_phantom(1, **GRID, kinetic=kinetic, initial_enhancement_pct=initial, noise=0, bias=0)
    les = arr(ph.lesion).astype(bool)
    s = np.stack([arr(p)[les].astype(float) for p in ph.phases])
    ok = s[0] >= 50   # rounding to integers: relative error <= 1 %
    assert ok.mean() > 0.8
    init = (s[1, ok] - s[0, ok]) / s[0, ok] * 100
    late = (s[-1, ok] - s[1, ok]) / s[1, ok] * 100
    assert np.allclose(init, initial, atol=2.5), (init.min(), init.max())
    assert np.allclose(late, delayed, atol=1.5), (late.min(), late.max())
    d = ph.meta["dce"]
    assert d["kinetic"] == kinetic and d["times_s"] == list(DCE_TIMES_S) and d["delayed_change_pct"] == delayed
    assert d["expected_initial"] == ("medium" if initial == 80 else "fast" if initial > 100 else "slow")


def test_reference_phase_is_the_single_phantom_image():
    """The 2nd post-contrast phase is make_phantom's image for the same seed, noise and shading included."""
    ph = make_dce_phantom(2, **GRID, rim=0.8, peritumoral_enhancement=0.5)
    single = make_phantom(2, **GRID, rim=0.8, peritumoral_enhancement=0.5)
    assert np.array_equal(arr(ph.phases[2]), arr(single.image))
    # fat does not enhance; parenchyma enhances slowly through the series (no noise, no shading)
    quiet = make_dce_phantom(2, **GRID, noise=0, bias=0)
    fat = arr(quiet.phases[0]) == 70
    assert fat.sum() > 1000 and all((arr(p)[fat] == 70).mean() > 0.95 for p in quiet.phases)


def test_companion_volumes_on_another_grid():
    ph = make_dce_phantom(5, **GRID, companion_spacing=(2.0, 2.0, 3.0))
    ref = ph.phases[0]
    assert ph.t2.GetSpacing() == (2.0, 2.0, 3.0) and ph.adc.GetSpacing() == (2.0, 2.0, 3.0)
    assert ph.t2.GetSize() != ref.GetSize() and not np.allclose(ph.t2.GetOrigin(), ref.GetOrigin())
    les_t2 = arr(ph.t2_lesion).astype(bool)
    v_dce = arr(ph.lesion).sum() * np.prod(ref.GetSpacing())
    v_t2 = les_t2.sum() * 12.0
    assert 0.6 * v_dce < v_t2 < 1.5 * v_dce
    adc = arr(ph.adc)
    assert abs(np.median(adc[les_t2]) - ADC_VALUE[LESION]) < 100
    assert np.median(adc[les_t2]) < ADC_VALUE[GLAND] - 500
    # the lesion centre is the same physical point on both grids (resampled through physical space)
    def centre(img, mask):
        idx = np.argwhere(mask)[:, ::-1].mean(0)
        return np.array(img.TransformContinuousIndexToPhysicalPoint(idx.tolist()))
    assert np.linalg.norm(centre(ph.t2, les_t2) - centre(ref, arr(ph.lesion).astype(bool))) < 3.0


def test_write_and_errors(tmp_path):
    ph = make_dce_phantom(6, **GRID)
    paths = write_dce_phantom(ph, tmp_path / "case")
    meta = json.loads(paths["meta"].read_text(encoding="utf-8"))
    assert meta["dce"]["phases"] == [f"dce/phase{k}.nrrd" for k in range(6)]
    back = sitk.ReadImage(str(tmp_path / "case" / meta["dce"]["phases"][3]))
    assert np.array_equal(arr(back), arr(ph.phases[3]))
    for f in ("lesion", "air", "pectoralis", "t2", "adc", "t2_lesion"):
        assert (tmp_path / "case" / f"{f}.nrrd").exists()
    with pytest.raises(UserError, match="kinetic type"):
        make_dce_phantom(0, **GRID, kinetic="fast")
    with pytest.raises(UserError, match="must start at 0 s"):
        make_dce_phantom(0, **GRID, times_s=(10, 20, 30))


def test_cli_writes_the_series(tmp_path):
    from conftest import run_cli

    r = run_cli("phantom", "-o", tmp_path / "p", "--seed", "3", "--size", "96", "96", "32", "--spacing", "3.45",
                "3.45", "6", "--dce", "washout")
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / "p" / "phantom.json").read_text(encoding="utf-8"))
    assert meta["dce"]["kinetic"] == "washout" and (tmp_path / "p" / "dce" / "phase5.nrrd").exists()
    assert not (tmp_path / "p" / "image.nrrd").exists()
