"""Several sequences per case: lesion transfer through physical space, feature-set parsing."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from her2radiomics import sequences as S
from her2radiomics.errors import UserError
from her2radiomics.phantom import make_dce_phantom


def arr(img):
    return sitk.GetArrayFromImage(img)


def test_lesion_transferred_to_the_t2_grid_matches_the_lesion_drawn_there():
    ph = make_dce_phantom(5, (120, 120, 40), (2.76, 2.76, 4.8), companion_spacing=(2.0, 2.0, 3.0))
    tr = S.lesion_on_grid(ph.lesion, ph.t2, "t2")
    assert tr.mask.GetSize() == ph.t2.GetSize() and tr.mask.GetSpacing() == ph.t2.GetSpacing()
    a, b = arr(tr.mask).astype(bool), arr(ph.t2_lesion).astype(bool)
    dice = 2 * (a & b).sum() / (a.sum() + b.sum())
    assert dice > 0.75, dice   # both are nearest-neighbour samplings of the same physical lesion
    assert tr.volume_mm3 == pytest.approx(a.sum() * 12.0)
    assert abs(tr.volume_mm3 / tr.source_volume_mm3 - 1) < 0.3
    assert tr.outside_fov_fraction == 0 and "lesion resampled" in tr.warnings[-1]


def test_nearest_neighbour_by_hand_and_fov_warnings():
    src = sitk.Image(10, 10, 10, sitk.sitkUInt8)
    src.SetSpacing((1.0, 1.0, 1.0))
    a = np.zeros((10, 10, 10), np.uint8)
    a[4:6, 4:6, 7:10] = 1        # x 7..9 at the +x edge
    les = sitk.GetImageFromArray(a)
    les.CopyInformation(src)
    tgt = sitk.Image(4, 10, 10, sitk.sitkInt16)   # voxel centres x = 0, 2, 4, 6: extent -1 .. 7 mm
    tgt.SetSpacing((2.0, 1.0, 1.0))
    with pytest.raises(UserError, match="outside the field of view of the t2 image"):
        S.lesion_on_grid(les, tgt, "t2")       # source centres 7, 8, 9 all at / beyond 7 mm
    tgt.SetOrigin((1.0, 0.0, 0.0))   # centres 1, 3, 5, 7 (extent 0 .. 8): the x=7 centre lies in source voxel 7
    tr = S.lesion_on_grid(les, tgt, "t2")
    out = arr(tr.mask)
    assert out[4:6, 4:6, 3].all() and out.sum() == 4 and tr.volume_mm3 == 8.0
    assert tr.outside_fov_fraction == pytest.approx(2 / 3)   # source centres x = 8, 9 lie at / beyond 8 mm
    assert any("% of the lesion lies outside the t2 field of view" in w for w in tr.warnings)
    tgt.SetOrigin((-20.0, 0.0, 0.0))
    with pytest.raises(UserError, match="outside the field of view of the t2 image"):
        S.lesion_on_grid(les, tgt, "t2")


def test_feature_sets_and_sequence_columns():
    from her2radiomics.manifest import sequence_columns

    assert sequence_columns(["case_id", "image_dce", "lesion_dce", "image_t2"]) == ["dce", "t2"]
    with pytest.raises(UserError, match="sequence name"):
        sequence_columns(["image_T2"])
    assert S.parse_feature_set("dce+t2:intra+peri3") == (["dce", "t2"], ["intra", "peri3"])
    cols = ["case_id", "dce_intra_a", "dce_peri3_a", "dce_peri5_a", "t2_intra_a", "t2_peri3_a", "adc_intra_a",
            "dce_intra_kinetic_ser", "intra_tic_type"]
    assert S.feature_columns(cols, "dce+t2:intra+peri3") == ["dce_intra_a", "dce_peri3_a", "t2_intra_a", "t2_peri3_a"]
    with pytest.raises(UserError, match="'adc_peri3_"):
        S.feature_columns(cols, "dce+adc:intra+peri3")
    with pytest.raises(UserError, match="regions are intra"):
        S.parse_feature_set("dce:intra+peri")


def test_targets_feature_sets_leave_kinetic_columns_out_and_accept_sequences():
    from her2radiomics import targets

    cols = ["intra_a", "intra_kinetic_ser", "intra_tic_type", "intra_tic_initial", "peri3_b", "peri3_kinetic_ser"]
    assert targets.feature_columns(cols, "intra+peri3") == ["intra_a", "peri3_b"]
    assert targets.check_feature_set("dce+t2:intra+peri3") == ["intra", "peri3"]
    assert targets.feature_columns(["dce_intra_a", "t2_intra_b", "adc_intra_c"], "dce+t2:intra") == [
        "dce_intra_a", "t2_intra_b"]
