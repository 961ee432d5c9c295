"""MRML <-> SimpleITK geometry bridge on real MRML classes (slicer-core), issue 2 item 4.

Independent references: Slicer's own NRRD reader (vtkMRMLVolumeArchetypeStorageNode, which does
the LPS -> RAS conversion itself), the volume node's IJKToRAS matrix, SimpleITK's
TransformIndexToPhysicalPoint, and slicer.util's export-through-labelmap-node segment reader.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from her2radiomics.errors import UserError
from HER2RadiomicsLib import mrml_bridge as mb

slicer = pytest.importorskip("slicer")

pytestmark = pytest.mark.slicer
pytest_plugins = ["mrml_scene"]


def _oblique_image(seed: int = 0, size=(11, 9, 7), spacing=(0.7, 0.9, 2.1), flip: bool = False) -> sitk.Image:
    rng = np.random.default_rng(seed)
    arr = rng.integers(-500, 1500, size[::-1]).astype(np.int16)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin(tuple(rng.uniform(-100, 100, 3)))
    rot = np.array(sitk.VersorTransform(tuple(rng.normal(size=3)), float(rng.uniform(0.2, 1.2))).GetMatrix()).reshape(3, 3)
    if flip:  # a left-handed grid (det = -1), e.g. a flipped DICOM series
        rot = rot @ np.diag([1.0, -1.0, 1.0])
    img.SetDirection(tuple(rot.ravel()))
    return img


def _node_ijk_to_ras(node) -> np.ndarray:
    import vtk

    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


@pytest.mark.parametrize("flip", [False, True])
def test_volume_round_trip_voxel_exact_and_physical(mrml_scene, flip):
    img = _oblique_image(seed=3, flip=flip)
    assert not np.allclose(np.array(img.GetDirection()), np.eye(3).ravel())
    node = mb.volume_node_from_image(img, "oblique")
    # voxel order: slicer.util.arrayFromVolume is (k, j, i), like SimpleITK's (z, y, x)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), sitk.GetArrayFromImage(img))
    # physical position of a marked voxel: node IJKToRAS vs SimpleITK LPS point flipped to RAS
    m = _node_ijk_to_ras(node)
    for ijk in [(0, 0, 0), (10, 8, 6), (3, 7, 2)]:
        ras = m @ np.array([*ijk, 1.0])
        lps = np.array(img.TransformIndexToPhysicalPoint(ijk))
        np.testing.assert_allclose(ras[:3], lps * [-1, -1, 1], atol=1e-9)
    back = mb.image_from_volume_node(node)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(img))
    assert back.GetPixelID() == img.GetPixelID()
    np.testing.assert_allclose(back.GetOrigin(), img.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(back.GetSpacing(), img.GetSpacing(), atol=1e-12)
    np.testing.assert_allclose(back.GetDirection(), img.GetDirection(), atol=1e-12)


def test_volume_matches_slicers_own_nrrd_reader(mrml_scene, tmp_path):
    """Slicer's NRRD storage node converts the file's LPS header to RAS on its own: same matrix, same voxels."""
    img = _oblique_image(seed=5)
    path = tmp_path / "oblique.nrrd"
    sitk.WriteImage(img, str(path))
    ours = mb.volume_node_from_image(img, "ours")
    theirs = mrml_scene.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "theirs")
    storage = mrml_scene.scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(theirs)
    np.testing.assert_allclose(_node_ijk_to_ras(ours), _node_ijk_to_ras(theirs), atol=1e-6)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(ours), slicer.util.arrayFromVolume(theirs))
    # and the other way: a node read by Slicer becomes the same SimpleITK image
    back = mb.image_from_volume_node(theirs)
    np.testing.assert_allclose(back.GetOrigin(), img.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(back.GetDirection(), img.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(img))


def test_volume_node_saved_by_slicer_reads_back_in_simpleitk(mrml_scene, tmp_path):
    img = _oblique_image(seed=6, flip=True)
    node = mb.volume_node_from_image(img, "v")
    storage = mrml_scene.scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(tmp_path / "saved.nrrd"))
    assert storage.WriteData(node)
    read = sitk.ReadImage(str(tmp_path / "saved.nrrd"))
    np.testing.assert_allclose(read.GetOrigin(), img.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(read.GetSpacing(), img.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(read.GetDirection(), img.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read), sitk.GetArrayFromImage(img))


def test_parent_linear_transform_is_applied(mrml_scene):
    img = _oblique_image(seed=7)
    node = mb.volume_node_from_image(img, "v")
    tnode = mrml_scene.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    shift = np.eye(4)
    shift[:3, 3] = [5.0, -3.0, 2.0]  # RAS translation
    tnode.SetMatrixTransformToParent(mb._vtk_matrix(shift))
    node.SetAndObserveTransformNodeID(tnode.GetID())
    back = mb.image_from_volume_node(node)
    np.testing.assert_allclose(np.array(back.GetOrigin()) - img.GetOrigin(), [-5.0, 3.0, 2.0], atol=1e-9)


def _masks(img: sitk.Image) -> dict[str, np.ndarray]:
    shape = img.GetSize()[::-1]
    a = np.zeros(shape, np.uint8)
    a[2:5, 3:6, 4:8] = 1
    b = np.zeros(shape, np.uint8)
    b[1:6, 2:7, 3:9] = 1  # overlaps (contains) a
    c = np.zeros(shape, np.uint8)
    c[0, 0, 0] = c[-1, -1, -1] = 1  # corners: extent handling
    return {"a": a, "b": b, "c": c}


def _mask_image(arr: np.ndarray, ref: sitk.Image) -> sitk.Image:
    m = sitk.GetImageFromArray(arr)
    m.CopyInformation(ref)
    return m


def test_segment_round_trip_overlapping_segments(mrml_scene):
    img = _oblique_image(seed=11, flip=True)
    vol = mb.volume_node_from_image(img, "v")
    seg = mrml_scene.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "seg")
    seg.CreateDefaultDisplayNodes()
    seg.SetReferenceImageGeometryParameterFromVolumeNode(vol)
    masks = _masks(img)
    for name, arr in masks.items():
        mb.set_segment_from_mask(seg, name, _mask_image(arr, img))
    for name, arr in masks.items():
        out = mb.mask_from_segment(seg, name, vol)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(out), arr)
        assert out.GetPixelID() == sitk.sitkUInt8
        np.testing.assert_allclose(out.GetDirection(), img.GetDirection())
        # independent reader: slicer.util exports through a labelmap node (ExportSegmentsToLabelmapNode)
        ref = slicer.util.arrayFromSegmentBinaryLabelmap(seg, mb.segment_id(seg, name), vol)
        np.testing.assert_array_equal(ref, arr)
    # marked voxel's RAS position (segment labelmap geometry) equals the flipped LPS point
    lm = slicer.vtkOrientedImageData()
    slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentBinaryLabelmapRepresentation(seg, mb.segment_id(seg, "c"), lm, True)
    import vtk

    m = vtk.vtkMatrix4x4()
    lm.GetImageToWorldMatrix(m)
    ras = np.array(m.MultiplyPoint([10, 8, 6, 1.0]))[:3]
    np.testing.assert_allclose(ras, np.array(img.TransformIndexToPhysicalPoint((10, 8, 6))) * [-1, -1, 1], atol=1e-9)
    # replacing one segment never erases the others
    mb.set_segment_from_mask(seg, "b", _mask_image(np.zeros_like(masks["b"]), img))
    assert sitk.GetArrayFromImage(mb.mask_from_segment(seg, "b", vol)).sum() == 0
    np.testing.assert_array_equal(sitk.GetArrayFromImage(mb.mask_from_segment(seg, "a", vol)), masks["a"])


def test_segment_painted_by_slicer_util_reads_back(mrml_scene):
    """A segment written by slicer.util (import through a labelmap node) is read voxel-exact by the bridge."""
    img = _oblique_image(seed=12)
    vol = mb.volume_node_from_image(img, "v")
    seg = mrml_scene.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "seg")
    seg.SetReferenceImageGeometryParameterFromVolumeNode(vol)
    sid = seg.GetSegmentation().AddEmptySegment("lesion")
    arr = _masks(img)["b"]
    slicer.util.updateSegmentBinaryLabelmapFromArray(arr, seg, sid, vol)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(mb.mask_from_segment(seg, "lesion", vol)), arr)


def test_missing_segment_and_empty_volume_are_user_errors(mrml_scene):
    img = _oblique_image(seed=1)
    vol = mb.volume_node_from_image(img, "v")
    seg = mrml_scene.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "seg")
    with pytest.raises(UserError, match="not found"):
        mb.mask_from_segment(seg, "nope", vol)
    empty = mrml_scene.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    with pytest.raises(UserError, match="no voxel data"):
        mb.image_from_volume_node(empty)


def test_geometry_helpers_are_inverse():
    img = _oblique_image(seed=9, flip=True)
    origin, spacing, direction = mb.geometry_from_ijk_to_ras(mb.ijk_to_ras_from_image(img))
    np.testing.assert_allclose(origin, img.GetOrigin(), atol=1e-12)
    np.testing.assert_allclose(spacing, img.GetSpacing(), atol=1e-12)
    np.testing.assert_allclose(direction, img.GetDirection(), atol=1e-12)


def test_segment_on_another_lattice_is_resampled_nearest_neighbour(mrml_scene):
    """A segment stored on a 2x coarser grid (e.g. made on another series) reads as 2x2x2 blocks on the image grid."""
    fine = _oblique_image(seed=13, size=(12, 10, 8), spacing=(0.7, 0.9, 2.1))
    d = np.array(fine.GetDirection()).reshape(3, 3)
    coarse_arr = np.zeros((4, 5, 6), np.uint8)
    coarse_arr[1:3, 2:4, 1:5] = 1
    coarse_arr[0, 0, 0] = 1
    coarse = sitk.GetImageFromArray(coarse_arr)
    coarse.SetSpacing(tuple(2 * s for s in fine.GetSpacing()))
    coarse.SetDirection(fine.GetDirection())
    coarse.SetOrigin(tuple(np.array(fine.GetOrigin()) + d @ (np.array(fine.GetSpacing()) / 2)))  # block centres
    vol = mb.volume_node_from_image(fine, "fine")
    seg = mrml_scene.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "seg")
    seg.SetReferenceImageGeometryParameterFromVolumeNode(mb.volume_node_from_image(coarse, "coarse"))
    mb.set_segment_from_mask(seg, "s", coarse)
    out = sitk.GetArrayFromImage(mb.mask_from_segment(seg, "s", vol))
    np.testing.assert_array_equal(out, np.kron(coarse_arr, np.ones((2, 2, 2), np.uint8)))
