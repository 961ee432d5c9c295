"""Save and reload a QA session: segmentation, features, predictions and an audit record.

A session folder holds

* ``segmentation.seg.nrrd``: every segment (lesion, shells, air, pectoralis and any other), written by
  Slicer's own ``vtkMRMLSegmentationStorageNode`` so that Slicer reopens it as is;
* ``features.csv``: one row, the CLI's columns (``case_id, reader, {region}_{feature}...``);
* ``regions.json``: the core's region statistics and warnings (``Regions.to_json``);
* ``predictions.json``: probabilities, calls, contributions, warnings, model card checksums;
* ``audit.json``: who (OS user), when (UTC), what parameters, excluded mm3 per shell and per
  exclusion, exclusion provenance (auto / auto, edited / user / none), software versions, model card
  checksums, the intended-use line, and the SHA-256 of every file above.

Every file is written atomically (temporary file + rename, ``her2radiomics.io``) and the audit
record last, so a folder with an ``audit.json`` is complete.
"""

from __future__ import annotations

import csv
import datetime as _dt
import getpass
import io as _io
import json
import platform
import sys
from pathlib import Path
from typing import Any

from her2radiomics import NOT_FOR_CLINICAL_USE, __version__
from her2radiomics.errors import UserError
from her2radiomics.io import atomic_path, file_hash, write_json, write_text

AUDIT_FORMAT = "her2radiomics.session/1"
SEGMENTATION_FILE = "segmentation.seg.nrrd"
FEATURES_FILE = "features.csv"
REGIONS_FILE = "regions.json"
PREDICTIONS_FILE = "predictions.json"
AUDIT_FILE = "audit.json"
#: keys every audit record has (load_session checks them)
AUDIT_KEYS = (
    "format", "case_id", "who", "when", "intended_use", "parameters", "regions", "exclusions",
    "software", "model_cards", "files", "warnings",
)


def _who() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): still record something explicit
        return "unknown"


def software_versions() -> dict[str, str | None]:
    """Versions of everything that shapes the numbers (None when a package is absent)."""
    from importlib import metadata

    out: dict[str, str | None] = {"her2radiomics": __version__, "python": platform.python_version()}
    for dist in ("pyradiomics", "pyradiomics-bhklab", "SimpleITK", "numpy", "scipy", "scikit-learn", "pandas", "PyWavelets", "slicer-core"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    try:
        import radiomics

        out["radiomics"] = str(radiomics.__version__)
    except Exception:  # pyradiomics missing: recorded as absent
        out["radiomics"] = None
    slicer = sys.modules.get("slicer")
    app = getattr(slicer, "app", None) if slicer else None
    if app is not None:
        out["3D Slicer"] = f"{app.applicationVersion} ({app.repositoryRevision})"
    return out


def _features_csv(case_id: str, reader: str, values: dict[str, float]) -> str:
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["case_id", "reader", *values.keys()])
    w.writerow([case_id, reader, *(repr(float(v)) for v in values.values())])
    return buf.getvalue()


def write_segmentation(segmentation_node, path: Path) -> None:
    """Write a segmentation node to ``.seg.nrrd`` with Slicer's storage node, atomically."""
    import slicer

    storage = slicer.vtkMRMLSegmentationStorageNode()
    with atomic_path(path) as tmp:
        storage.SetFileName(str(tmp))
        if not storage.WriteData(segmentation_node):
            raise UserError(f"could not write the segmentation to {path}; check the folder is writable")


def read_segmentation(path: Path, scene=None, name: str | None = None):
    """Load a ``.seg.nrrd`` into a new segmentation node of ``scene`` (slicer.mrmlScene by default)."""
    import slicer

    path = Path(path)
    if not path.is_file():
        raise UserError(f"segmentation file not found: {path}")
    scene = scene or slicer.mrmlScene
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name or path.name.split(".")[0])
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(path))
    if not storage.ReadData(node):
        scene.RemoveNode(node)
        raise UserError(f"cannot read segmentation {path}; is it a Slicer .seg.nrrd?")
    node.SetAndObserveStorageNodeID(storage.GetID())
    return node


def save_session(outdir, logic, volume_node, segmentation_node) -> dict[str, Any]:
    """Write the session files into ``outdir``; returns the audit record (also in audit.json).

    Refused (UserError, nothing written) when the logic's results were computed from other nodes or other
    content than ``volume_node`` / ``segmentation_node``: a session never mixes two cases.
    """
    state = logic.state
    if segmentation_node is None:
        raise UserError("no segmentation to save; prepare the segmentation and generate the shells first")
    if hasattr(logic, "check_inputs"):
        logic.check_inputs(volume_node, segmentation_node)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}

    write_segmentation(segmentation_node, out / SEGMENTATION_FILE)
    files[SEGMENTATION_FILE] = file_hash(out / SEGMENTATION_FILE)
    who = _who()
    if state.features:
        write_text(_features_csv(state.case_id, who, state.features), out / FEATURES_FILE)
        files[FEATURES_FILE] = file_hash(out / FEATURES_FILE)
    if state.regions is not None:
        write_json(state.regions.to_json(), out / REGIONS_FILE)
        files[REGIONS_FILE] = file_hash(out / REGIONS_FILE)
    pred = state.prediction
    if pred is not None:
        write_json(
            {
                "case_id": state.case_id,
                "prediction": pred.row,
                "contributions": pred.contributions,
                "warnings": pred.warnings,
                "gdi": {s: [{"split": a, "value": b, "zone": c} for a, b, c in v] for s, v in pred.gdi.items()},
                "model_cards": pred.cards,
                "intended_use": NOT_FOR_CLINICAL_USE,
            },
            out / PREDICTIONS_FILE,
        )
        files[PREDICTIONS_FILE] = file_hash(out / PREDICTIONS_FILE)

    regions = state.regions
    region_stats = {k: dict(v) for k, v in regions.stats.items()} if regions is not None else {}
    excluded = {
        name: {k: v for k, v in st.items() if k.startswith("excluded")}
        for name, st in region_stats.items() if name != "intra"
    }
    exclusions = {}
    for name in ("air", "pectoralis"):
        info = dict(regions.exclusions.get(name, {})) if regions is not None else {}
        exclusions[name] = {
            "state": state.exclusion_states.get(name, "none"),
            "voxels": info.get("voxels"),
            "volume_mm3": info.get("volume_mm3"),
            "notes": state.exclusion_notes.get(name, info.get("notes", [])),
        }
    audit = {
        "format": AUDIT_FORMAT,
        "case_id": state.case_id,
        "who": who,
        "when": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "intended_use": NOT_FOR_CLINICAL_USE,
        "image": {
            "node": volume_node.GetName() if volume_node is not None else None,
            "file": _storage_file(volume_node),
            **(regions.image_info if regions is not None else {}),
        },
        "parameters": {
            "distances_mm": [float(d) for d in state.distances],
            "auto_exclusions": bool(state.auto_exclusions),
            "parameter_file": state.parameter_file,
            "parameter_file_hash": state.parameter_hash,
            "crop": {k: v for k, v in state.features_info.items() if k in ("crop_bbox_zyx", "crop_size_xyz", "margin_mm")},
        },
        "regions": region_stats,
        "excluded_mm3_per_shell": excluded,
        "exclusions": exclusions,
        "segments": _segment_summary(segmentation_node),
        "software": software_versions(),
        "model_cards": pred.cards if pred is not None else {},
        "prediction": pred.row if pred is not None else None,
        "warnings": list(dict.fromkeys([*state.warnings, *(pred.warnings if pred is not None else [])])),
        "files": files,
    }
    write_json(audit, out / AUDIT_FILE)
    return audit


def _storage_file(node) -> str | None:
    if node is None:
        return None
    storage = node.GetStorageNode()
    return storage.GetFileName() if storage is not None else None


def _segment_summary(segmentation_node) -> list[dict[str, Any]]:
    from . import segments

    seg = segmentation_node.GetSegmentation()
    out = []
    for i in range(seg.GetNumberOfSegments()):
        s = seg.GetNthSegment(i)
        out.append({
            "name": s.GetName(),
            "color": [round(float(c), 4) for c in s.GetColor()],
            "role": segments.get_tag(s, segments.ROLE_TAG) or None,
            "source": segments.get_tag(s, segments.SOURCE_TAG) or None,
        })
    return out


def load_session(folder, scene=None) -> tuple[Any, dict[str, Any]]:
    """Reload a saved session: (segmentation node, audit record). UserError when incomplete or altered."""
    folder = Path(folder)
    audit_path = folder / AUDIT_FILE
    if not audit_path.is_file():
        raise UserError(f"{folder} has no {AUDIT_FILE}; choose a folder written by 'Save session'")
    audit = json.loads(audit_path.read_text(encoding="utf-8"))
    missing = [k for k in AUDIT_KEYS if k not in audit]
    if missing:
        raise UserError(f"{audit_path} lacks {', '.join(missing)}; the session is incomplete")
    for name, digest in audit["files"].items():
        p = folder / name
        if not p.is_file():
            raise UserError(f"session file {p} is missing")
        if file_hash(p) != digest:
            raise UserError(f"session file {p} was modified after the session was saved (checksum mismatch)")
    node = read_segmentation(folder / SEGMENTATION_FILE, scene, name=f"{audit['case_id']} HER2 segments")
    return node, audit
