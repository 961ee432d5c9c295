"""MRML <-> SimpleITK geometry bridge (volume nodes and segmentation segments).

Conventions (the source of every sign flip below):

* SimpleITK images live in LPS physical space: ``x_lps = origin + D @ diag(spacing) @ ijk``
  (ITK/DICOM patient coordinates); ``sitk.GetArrayFromImage`` is indexed (k, j, i) = (z, y, x).
* MRML volume nodes live in RAS: ``x_ras = IJKToRAS @ (i, j, k, 1)``; ``slicer.util.arrayFromVolume``
  is also indexed (k, j, i) because vtkImageData stores i fastest, like ITK.
* LPS -> RAS is ``F = diag(-1, -1, 1)``, so ``IJKToRAS = [[F D diag(s), F o], [0, 0, 0, 1]]``.
  The voxel order is therefore identical on both sides; only the index-to-world matrix changes.
  (Slicer coordinate systems: https://slicer.readthedocs.io/en/latest/user_guide/coordinate_systems.html)

Segments are read and written through ``vtkOrientedImageData`` (a vtkImageData with an
image-to-world matrix) and ``vtkSlicerSegmentationsModuleLogic`` so that the segmentation's own
layer/shared-labelmap handling is respected: writing one segment never erases another one.
Everything here works with slicer-core (no Qt) and inside the Slicer application.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from her2radiomics.errors import UserError
from her2radiomics.geometry import bbox_zyx

#: LPS <-> RAS flip (its own inverse)
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def _slicer():
    import slicer  # imported lazily so that the module can be imported without slicer-core

    return slicer


def _vtk_matrix(m: np.ndarray):
    import vtk

    vm = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            vm.SetElement(r, c, float(m[r, c]))
    return vm


def _np_matrix(vm) -> np.ndarray:
    return np.array([[vm.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=float)


# --------------------------------------------------------------------------------------------
# Geometry only
# --------------------------------------------------------------------------------------------
def ijk_to_ras_from_image(img: sitk.Image) -> np.ndarray:
    """4x4 IJK -> RAS matrix of a 3D SimpleITK image (LPS geometry flipped to RAS)."""
    if img.GetDimension() != 3:
        raise UserError(f"expected a 3D image, got {img.GetDimension()}D")
    d = np.array(img.GetDirection(), dtype=float).reshape(3, 3)
    s = np.array(img.GetSpacing(), dtype=float)
    o = np.array(img.GetOrigin(), dtype=float)
    m = np.eye(4)
    m[:3, :3] = LPS_TO_RAS @ d @ np.diag(s)
    m[:3, 3] = LPS_TO_RAS @ o
    return m


def geometry_from_ijk_to_ras(m: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """(origin, spacing, direction) in LPS (SimpleITK order) from a 4x4 IJK -> RAS matrix."""
    m = np.asarray(m, dtype=float)
    lin = LPS_TO_RAS @ m[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    if np.any(spacing <= 0):
        raise UserError("volume has a zero voxel spacing; fix its geometry before using it")
    direction = lin / spacing
    origin = LPS_TO_RAS @ m[:3, 3]
    return tuple(origin.tolist()), tuple(spacing.tolist()), tuple(direction.ravel().tolist())


def _world_ijk_to_ras(node) -> np.ndarray:
    """IJK -> world RAS of a volume node, including a linear parent transform."""
    vm = _vtk_matrix(np.eye(4))
    node.GetIJKToRASMatrix(vm)
    m = _np_matrix(vm)
    parent = node.GetParentTransformNode()
    if parent is not None:
        if not parent.IsTransformToWorldLinear():
            raise UserError(
                f"'{node.GetName()}' is under a non-linear transform; harden the transform (Data module) before using it"
            )
        to_world = _vtk_matrix(np.eye(4))
        parent.GetMatrixTransformToWorld(to_world)
        m = _np_matrix(to_world) @ m
    return m


# --------------------------------------------------------------------------------------------
# Volumes
# --------------------------------------------------------------------------------------------
def _vtk_image_from_array(arr: np.ndarray):
    import vtk
    from vtk.util import numpy_support

    arr = np.ascontiguousarray(arr)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if arr.dtype in (np.int64, np.uint64):  # VTK long long volumes do not display well in Slicer
        raise UserError("64-bit integer images are not supported; cast the image to 32-bit first")
    vimg = vtk.vtkImageData()
    vimg.SetDimensions(arr.shape[2], arr.shape[1], arr.shape[0])
    scalars = numpy_support.numpy_to_vtk(arr.ravel(), deep=True)
    scalars.SetName("ImageScalars")
    vimg.GetPointData().SetScalars(scalars)
    return vimg


def _array_from_vtk_image(vimg) -> np.ndarray:
    from vtk.util import numpy_support

    dims = vimg.GetDimensions()
    scalars = vimg.GetPointData().GetScalars()
    if scalars is None:
        raise UserError("volume has no voxel data; load an image first")
    if scalars.GetNumberOfComponents() != 1:
        raise UserError("volume has several components per voxel; choose one scalar 3D phase")
    return numpy_support.vtk_to_numpy(scalars).reshape(dims[2], dims[1], dims[0]).copy()


def volume_node_from_image(
    img: sitk.Image, name: str = "volume", node=None, scene=None, class_name: str = "vtkMRMLScalarVolumeNode"
):
    """Create (or update ``node``) a volume node holding a copy of ``img`` with the same physical geometry."""
    slicer = _slicer()
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise UserError("only scalar images can become volume nodes")
    if node is None:
        scene = scene or slicer.mrmlScene
        node = scene.AddNewNodeByClass(class_name, name)
    node.SetIJKToRASMatrix(_vtk_matrix(ijk_to_ras_from_image(img)))
    node.SetAndObserveImageData(_vtk_image_from_array(sitk.GetArrayViewFromImage(img)))
    if node.GetScene() is not None and node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    return node


def _check_volume(node) -> None:
    if node is None or node.GetImageData() is None or node.GetImageData().GetPointData().GetScalars() is None:
        raise UserError("no volume selected, or the volume has no voxel data; select an input image")


def empty_image_like_node(node, pixel_id: int = sitk.sitkUInt8) -> sitk.Image:
    """Zero image on a volume node's grid (world LPS geometry) without copying its voxels."""
    _check_volume(node)
    dims = node.GetImageData().GetDimensions()
    img = sitk.Image([int(d) for d in dims], pixel_id)
    origin, spacing, direction = geometry_from_ijk_to_ras(_world_ijk_to_ras(node))
    img.SetOrigin(origin)
    img.SetSpacing(spacing)
    img.SetDirection(direction)
    return img


def image_from_volume_node(node) -> sitk.Image:
    """Copy of a scalar volume node as a SimpleITK image (LPS geometry, world coordinates)."""
    _check_volume(node)
    arr = _array_from_vtk_image(node.GetImageData())
    img = sitk.GetImageFromArray(arr)
    origin, spacing, direction = geometry_from_ijk_to_ras(_world_ijk_to_ras(node))
    img.SetOrigin(origin)
    img.SetSpacing(spacing)
    img.SetDirection(direction)
    return img


# --------------------------------------------------------------------------------------------
# Oriented image data (the segmentation's internal labelmap type)
# --------------------------------------------------------------------------------------------
def reference_oriented_geometry(reference_node):
    """Empty-geometry vtkOrientedImageData (extent + image-to-world) of a volume node, world coordinates."""
    slicer = _slicer()
    oi = slicer.vtkOrientedImageData()
    oi.SetExtent(reference_node.GetImageData().GetExtent())
    oi.SetImageToWorldMatrix(_vtk_matrix(_world_ijk_to_ras(reference_node)))
    return oi


# --------------------------------------------------------------------------------------------
# Segments
# --------------------------------------------------------------------------------------------
def segment_id(segmentation_node, name: str) -> str:
    """ID of the segment named ``name`` ('' when absent)."""
    return segmentation_node.GetSegmentation().GetSegmentIdBySegmentName(name) or ""


def ensure_segment(segmentation_node, name: str, color: tuple[float, float, float] | None = None) -> str:
    """ID of the segment named ``name``, adding an empty one when absent; sets its colour when given."""
    seg = segmentation_node.GetSegmentation()
    sid = segment_id(segmentation_node, name)
    if not sid:
        sid = seg.AddEmptySegment(name, name, list(color) if color else [0.5, 0.5, 0.5])
    if color is not None:
        seg.GetSegment(sid).SetColor(*color)
    return sid


def mask_from_segment(segmentation_node, segment, reference_node) -> sitk.Image:
    """Binary uint8 mask of one segment (ID or name) on the grid of ``reference_node`` (a volume node).

    The segment's binary labelmap (possibly a shared layer holding several segments, told apart by
    their label values) is thresholded at its own label value and resampled (nearest neighbour, no
    interpolation: the grids are normally identical) onto the reference geometry.
    """
    slicer = _slicer()
    seg = segmentation_node.GetSegmentation()
    sid = segment if seg.GetSegment(segment) is not None else segment_id(segmentation_node, segment)
    if not sid:
        raise UserError(f"segment '{segment}' not found in '{segmentation_node.GetName()}'; create it first")
    ref_img = empty_image_like_node(reference_node)  # geometry + error checks, no voxel copy
    shape = tuple(reversed(ref_img.GetSize()))
    out = np.zeros(shape, np.uint8)
    segment_obj = seg.GetSegment(sid)
    labelmap = slicer.vtkOrientedImageData()
    ok = slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentBinaryLabelmapRepresentation(
        segmentation_node, sid, labelmap, True
    )
    if ok and labelmap.GetPointData().GetScalars() is not None and not labelmap.IsEmpty():
        reference = reference_oriented_geometry(reference_node)
        if _same_lattice(labelmap, reference):
            resampled = labelmap  # same voxel lattice: paste its extent, no resampling (the usual case)
        else:
            resampled = slicer.vtkOrientedImageData()
            if not slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
                labelmap, reference, resampled, False, False
            ):
                raise UserError(f"segment '{segment_obj.GetName()}' cannot be resampled onto '{reference_node.GetName()}'")
        ext = resampled.GetExtent()
        if ext[1] >= ext[0] and ext[3] >= ext[2] and ext[5] >= ext[4]:
            arr = _array_from_vtk_image(resampled)
            ref_ext = reference.GetExtent()
            # paste the (possibly smaller or larger) extent at its place in the reference extent
            lo = [ext[0] - ref_ext[0], ext[2] - ref_ext[2], ext[4] - ref_ext[4]]
            sl_src, sl_dst = [], []
            for axis_zyx, axis_xyz in zip(range(3), (2, 1, 0), strict=True):
                start = lo[axis_xyz]
                n = arr.shape[axis_zyx]
                d0, d1 = max(0, start), min(shape[axis_zyx], start + n)
                sl_dst.append(slice(d0, max(d0, d1)))
                sl_src.append(slice(d0 - start, d0 - start + max(0, d1 - d0)))
            out[tuple(sl_dst)] = (arr[tuple(sl_src)] == segment_obj.GetLabelValue()).astype(np.uint8)
    mask = sitk.GetImageFromArray(out)
    mask.CopyInformation(ref_img)
    return mask


def _same_lattice(a, b, tol: float = 1e-6) -> bool:
    """Two oriented images share their voxel lattice (same image-to-world matrix; extents may differ)."""
    ma, mb_ = _vtk_matrix(np.eye(4)), _vtk_matrix(np.eye(4))
    a.GetImageToWorldMatrix(ma)
    b.GetImageToWorldMatrix(mb_)
    return bool(np.allclose(_np_matrix(ma), _np_matrix(mb_), atol=tol))


def set_segment_from_mask(segmentation_node, segment, mask: sitk.Image) -> str:
    """Replace the voxels of one segment (ID or name; created when absent) by a binary mask.

    Other segments are never erased: an overlapping segment sharing the same labelmap layer is
    moved to its own layer by the segmentation modifier (overwrite list empty).
    """
    slicer = _slicer()
    seg = segmentation_node.GetSegmentation()
    sid = segment if seg.GetSegment(segment) is not None else ensure_segment(segmentation_node, segment)
    arr = sitk.GetArrayViewFromImage(mask) != 0
    # only the bounding box is sent (MODE_REPLACE replaces the whole segment: voxels outside it are cleared),
    # which makes writing a shell on a 448 x 448 x 160 grid several times faster
    box = bbox_zyx(arr) or ((0, 1), (0, 1), (0, 1))
    crop = np.ascontiguousarray(arr[tuple(slice(lo, hi) for lo, hi in box)], dtype=np.uint8)
    # the crop keeps the full image's lattice (VTK extent offset, same image-to-world matrix), so that
    # it lands in the segmentation's layers without any resampling
    oi = slicer.vtkOrientedImageData()
    oi.ShallowCopy(_vtk_image_from_array(crop))
    (z0, z1), (y0, y1), (x0, x1) = box
    oi.SetExtent(x0, x1 - 1, y0, y1 - 1, z0, z1 - 1)
    oi.SetImageToWorldMatrix(_vtk_matrix(ijk_to_ras_from_image(mask)))
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    if not logic.SetBinaryLabelmapToSegment(oi, segmentation_node, sid, logic.MODE_REPLACE, oi.GetExtent()):
        raise UserError(f"could not write segment '{seg.GetSegment(sid).GetName()}'")
    return sid
