"""Foundation: image/mask reading, grid checks, CLI error contract."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import run_cli

from her2radiomics import geometry, io
from her2radiomics.errors import UserError


def _img(size=(6, 5, 4), spacing=(0.7, 0.8, 2.0)) -> sitk.Image:
    img = sitk.GetImageFromArray(np.arange(np.prod(size[::-1]), dtype=np.int16).reshape(size[::-1]))
    img.SetSpacing(spacing)
    img.SetOrigin((10.0, -5.0, 3.0))
    return img


def test_read_mask_rejects_other_grid(tmp_path):
    ref = _img()
    other = _img(spacing=(0.7, 0.8, 2.5))
    sitk.WriteImage(other, str(tmp_path / "m.nrrd"))
    with pytest.raises(UserError, match="spacing"):
        io.read_mask(tmp_path / "m.nrrd", ref, what="lesion")


def test_read_mask_multilabel_needs_label(tmp_path):
    ref = _img()
    arr = np.zeros(ref.GetSize()[::-1], np.uint8)
    arr[1, 1, 1], arr[2, 2, 2] = 1, 2
    m = geometry.image_from_array(arr, ref)
    with pytest.raises(UserError, match="--label"):
        io.to_binary_mask(m, ref)
    out = sitk.GetArrayFromImage(io.to_binary_mask(m, ref, label=2))
    assert out.sum() == 1 and out[2, 2, 2] == 1


def test_read_image_rejects_2d_and_missing(tmp_path):
    sitk.WriteImage(sitk.Image(4, 4, sitk.sitkUInt8), str(tmp_path / "a.nrrd"))
    with pytest.raises(UserError, match="2D"):
        io.read_image(tmp_path / "a.nrrd")
    with pytest.raises(UserError, match="not found"):
        io.read_image(tmp_path / "missing.nrrd")


def test_crop_keeps_physical_position():
    img = _img()
    c = geometry.crop(img, ((1, 3), (2, 4), (3, 5)))
    assert c.GetOrigin() == pytest.approx(img.TransformIndexToPhysicalPoint((3, 2, 1)))
    assert sitk.GetArrayFromImage(c)[0, 0, 0] == sitk.GetArrayFromImage(img)[1, 2, 3]


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    dest = tmp_path / "x.json"
    with pytest.raises(RuntimeError), io.atomic_path(dest) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_cli_unknown_and_help():
    r = run_cli("--help")
    assert r.returncode == 0 and "not for clinical use" in r.stdout.lower()
    r = run_cli("nosuchcommand")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_slicer_core_is_the_slicer_package_when_installed():
    """When slicer-core is installed (the `test` extra), `import slicer` must be *its* package with real MRML.

    Another distribution shipping a top-level `slicer` package (shap's dependency `slicer` 0.0.8 does) would
    overwrite it, and every MRML test would then skip silently instead of running."""
    from importlib import metadata

    try:
        metadata.version("slicer-core")
    except metadata.PackageNotFoundError:
        pytest.skip("slicer-core is not installed (outside the `test` extra)")
    others = [d.metadata["Name"] for d in metadata.distributions()
              if d.metadata["Name"] and d.metadata["Name"].lower() != "slicer-core"
              and "slicer/__init__.py" in {str(f) for f in (d.files or [])}]
    assert not others, f"{others} install a top-level 'slicer' package over slicer-core's"
    import slicer

    assert hasattr(slicer, "vtkMRMLScene"), f"'import slicer' is not slicer-core ({slicer.__file__})"
