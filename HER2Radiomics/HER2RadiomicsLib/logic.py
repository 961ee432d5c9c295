"""HER2Radiomics module logic: MRML nodes in, core functions, MRML nodes out (no Qt).

The logic holds no science of its own (ARCHITECTURE.md): shells and statistics come from
``her2radiomics.regions.build_regions``, the automatic exclusions from ``her2radiomics.exclusions``,
features from ``her2radiomics.features.extract_case`` and predictions from
``her2radiomics.prediction.predict``. What it adds is the MRML side:

* one segmentation node with the fixed segments (``segments.segment_plan``) on the source volume's
  geometry (``mrml_bridge``: LPS <-> RAS, voxel-exact);
* user edits to ``air``/``pectoralis`` (Segment Editor) are passed to ``build_regions`` as user
  masks every time the shells are recomputed, so an erased exclusion voxel returns to every shell
  whose distance reaches it;
* undo: a segment-state snapshot is taken before every step that rewrites segments
  (``vtkSegmentationHistory``, the mechanism of Slicer's Segment Editor; in the GUI the editor
  widget's own history is used so that its Undo button covers these steps too);
* results as ``vtkMRMLTableNode`` (features, predictions, contributions, region statistics) and the
  contributions bar chart as ``vtkMRMLPlotSeriesNode`` + ``vtkMRMLPlotChartNode``;
* results are tied to the nodes they were computed from (:class:`InputKey`: volume and segmentation
  node ids plus a digest of the voxels they hold): predicting or saving with other inputs is refused
  with one message instead of showing one patient's numbers under another's name.

Importing this module loads numpy and SimpleITK (bundled with Slicer) and nothing Slicer does not
bundle: PyYAML, pandas and pyradiomics are imported only by the steps that need them, after the
panel's dependency prompt.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import SimpleITK as sitk

from her2radiomics import DEMO_MODEL_NOTICE, NOT_FOR_CLINICAL_USE
from her2radiomics.errors import UserError

from . import mrml_bridge, segments

log = logging.getLogger(__name__)

TABLE_PREFIX = "HER2Radiomics"
EDITOR_SINGLETON_TAG = "HER2Radiomics"
REGION_STAT_COLUMNS = (
    "region", "voxels", "volume_mm3", "excluded_mm3", "excluded_air_mm3", "excluded_pectoralis_mm3", "clipped_mm3",
)
FEATURE_COLUMNS = ("region", "feature", "value", "name")
GDI_COLORS = {"safe": "#2e7d32", "warning": "#ef6c00", "high": "#c62828"}


def _slicer():
    import slicer

    return slicer


def parse_distances(text: str | Iterable[float]) -> tuple[float, ...]:
    """Shell distances from '1 3 5' / '1,3,5' (or numbers); validated by the core."""
    from her2radiomics.regions import validate_distances

    if isinstance(text, str):
        parts = [p for p in text.replace(",", " ").replace(";", " ").split() if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise UserError(f"shell distances must be numbers in mm separated by spaces, got '{text}'; e.g. 1 3 5") from None
        return validate_distances(values)
    return validate_distances(text)


# --------------------------------------------------------------------------------------------
# Undo
# --------------------------------------------------------------------------------------------
class UndoStack(Protocol):
    """What the logic needs for undo; the GUI passes the Segment Editor widget's history."""

    def save_state(self, segmentation_node) -> None: ...
    def undo(self, segmentation_node) -> bool: ...
    def can_undo(self, segmentation_node) -> bool: ...


class SegmentationUndo:
    """Segment-state snapshots with ``vtkSegmentationHistory`` (one history per segmentation node)."""

    def __init__(self, max_states: int = 10) -> None:
        self.max_states = max_states
        self._histories: dict[str, Any] = {}

    def _history(self, segmentation_node):
        key = segmentation_node.GetID() or str(id(segmentation_node))
        hist = self._histories.get(key)
        if hist is None or hist.GetSegmentation() is not segmentation_node.GetSegmentation():
            hist = _slicer().vtkSegmentationHistory()
            hist.SetMaximumNumberOfStates(self.max_states)
            hist.SetSegmentation(segmentation_node.GetSegmentation())
            self._histories[key] = hist
        return hist

    def save_state(self, segmentation_node) -> None:
        self._history(segmentation_node).SaveState()

    def undo(self, segmentation_node) -> bool:
        hist = self._history(segmentation_node)
        if not hist.IsRestorePreviousStateAvailable():
            return False
        return bool(hist.RestorePreviousState())

    def can_undo(self, segmentation_node) -> bool:
        return bool(self._history(segmentation_node).IsRestorePreviousStateAvailable())


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
@dataclass
class PredictionResult:
    """One case's prediction, its table nodes and chart, and the cards it came from."""

    row: dict[str, Any]                       # case_id, p_positive, p_low, p_zero, stage1_call, stage2_call
    contributions: list[dict[str, Any]]       # long format, sorted by stage then |contribution|
    warnings: list[str]
    gdi: dict[str, list[tuple[str, float | None, str]]]   # stage -> [(split, value, zone)]
    cards: dict[str, dict]                    # stage -> {path, checksum, intended_use, task, feature_set}
    table_node: Any = None
    contributions_node: Any = None
    chart_node: Any = None


@dataclass(frozen=True)
class InputKey:
    """The inputs a result was computed from: node ids and a digest of their content."""

    volume_id: str | None
    segmentation_id: str | None
    stamp: str
    volume_name: str = ""

    def same_nodes(self, other: InputKey | None) -> bool:
        return other is not None and (self.volume_id, self.segmentation_id) == (other.volume_id, other.segmentation_id)


def input_key(volume_node, segmentation_node) -> InputKey:
    """Ids of the two nodes and a digest (BLAKE2b) of the image voxels + geometry and of the lesion / air /
    pectoralis segments: exactly what ``build_regions`` and the features are computed from."""
    from her2radiomics.regions import EXCLUSIONS

    h = hashlib.blake2b(digest_size=16)
    if volume_node is not None:
        img = mrml_bridge.image_from_volume_node(volume_node)
        h.update(repr((img.GetSize(), img.GetSpacing(), img.GetOrigin(), img.GetDirection(), img.GetPixelIDValue())).encode())
        h.update(np.ascontiguousarray(sitk.GetArrayViewFromImage(img)).tobytes())
        if segmentation_node is not None:
            for name in (segments.LESION, *EXCLUSIONS):
                h.update(name.encode())
                if mrml_bridge.segment_id(segmentation_node, name):
                    m = mrml_bridge.mask_from_segment(segmentation_node, name, volume_node)
                    h.update(np.packbits(sitk.GetArrayViewFromImage(m).astype(bool)).tobytes())
    return InputKey(
        volume_node.GetID() if volume_node is not None else None,
        segmentation_node.GetID() if segmentation_node is not None else None,
        h.hexdigest(),
        volume_node.GetName() if volume_node is not None else "",
    )


#: the one message shown when results belong to other inputs than the ones selected
STALE_RESULTS = (
    "the results shown were computed from {was}, not from the image and segmentation selected now ({now}); "
    "press Extract features to compute them for the selected case"
)


@dataclass
class SessionState:
    """What the panel accumulated (saved by ``session.save_session``), and the inputs it belongs to."""

    case_id: str = "case"
    distances: tuple[float, ...] = (1.0, 3.0, 5.0)
    auto_exclusions: bool = True
    regions: Any = None                       # her2radiomics.regions.Regions of the last Generate
    exclusion_states: dict[str, str] = field(default_factory=dict)
    exclusion_notes: dict[str, list[str]] = field(default_factory=dict)
    parameter_file: str | None = None
    parameter_hash: str | None = None
    features: dict[str, float] | None = None
    features_info: dict[str, Any] = field(default_factory=dict)
    prediction: PredictionResult | None = None
    warnings: list[str] = field(default_factory=list)
    inputs: InputKey | None = None            # what regions / features / prediction were computed from

    def has_results(self) -> bool:
        return self.regions is not None or bool(self.features) or self.prediction is not None


class HER2RadiomicsLogic:
    """Batch-mode logic of the module (usable from the Python console, scripts and tests)."""

    def __init__(self, scene=None, undo: UndoStack | None = None) -> None:
        self._scene = scene
        self.undo_stack: UndoStack = undo or SegmentationUndo()
        self.state = SessionState()
        self._undo_states: list[dict[str, Any]] = []   # module state before each undoable step

    # ---------------------------------------------------------------- results <-> inputs
    def reset(self) -> None:
        """Forget every result (scene closed, another case): keeps only the shell settings."""
        keep = {"distances": self.state.distances, "auto_exclusions": self.state.auto_exclusions}
        self.state = SessionState(**keep)
        self._undo_states.clear()

    def results_match(self, volume_node, segmentation_node, key: InputKey | None = None) -> bool:
        """True when there are no results, or they were computed from these nodes with this content."""
        st = self.state
        if not st.has_results() or st.inputs is None:
            return True
        key = key or input_key(volume_node, segmentation_node)
        return key == st.inputs

    def check_inputs(self, volume_node, segmentation_node) -> None:
        """UserError (one line) when the results belong to other nodes or other content than these."""
        st = self.state
        if not st.has_results() or st.inputs is None:
            return
        key = input_key(volume_node, segmentation_node)
        if key == st.inputs:
            return
        was = f"'{st.inputs.volume_name or st.inputs.volume_id}'"
        now = f"'{key.volume_name or key.volume_id}'"
        if key.same_nodes(st.inputs):
            was += " before its image or lesion/exclusion segments changed"
        raise UserError(STALE_RESULTS.format(was=was, now=now))

    def _bind(self, key: InputKey) -> None:
        """Results now come from ``key``: anything computed from other inputs is dropped first."""
        if self.state.inputs is not None and key != self.state.inputs:
            self.state.features, self.state.prediction = None, None
            self.state.parameter_file = self.state.parameter_hash = None
            self.state.features_info = {}
        self.state.inputs = key

    def _save_undo(self, segmentation_node) -> None:
        """Snapshot the module state with the segments, so that undo restores both."""
        import copy

        st = self.state
        self._undo_states.append({
            "regions": st.regions, "exclusion_states": dict(st.exclusion_states),
            "exclusion_notes": copy.deepcopy(st.exclusion_notes), "warnings": list(st.warnings),
            "distances": st.distances, "auto_exclusions": st.auto_exclusions, "inputs": st.inputs,
            "features": st.features, "prediction": st.prediction, "parameter_file": st.parameter_file,
            "parameter_hash": st.parameter_hash, "features_info": st.features_info,
        })
        del self._undo_states[:-20]
        self.undo_stack.save_state(segmentation_node)

    # ---------------------------------------------------------------- scene / nodes
    @property
    def scene(self):
        return self._scene if self._scene is not None else _slicer().mrmlScene

    def _table_node(self, name: str, node=None):
        if node is None:
            node = self.scene.GetFirstNodeByName(name)
            if node is None or not node.IsA("vtkMRMLTableNode"):
                node = self.scene.AddNewNodeByClass("vtkMRMLTableNode", name)
        return node

    def setup_segmentation(self, volume_node, segmentation_node=None, distances: Iterable[float] | None = None):
        """Segmentation node (created when None) on ``volume_node``'s geometry with every HER2 segment present."""
        if volume_node is None:
            raise UserError("no input image selected; choose the DCE phase in the Input section")
        dists = parse_distances(distances if distances is not None else self.state.distances)
        if segmentation_node is None:
            segmentation_node = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{volume_node.GetName()} HER2 segments")
        if segmentation_node.GetDisplayNode() is None:
            segmentation_node.CreateDefaultDisplayNodes()
        segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
        segments.ensure_segments(segmentation_node, dists)
        return segmentation_node

    def segment_editor_node(self, segmentation_node=None, volume_node=None):
        """The module's own segment editor node, in 'allow overlap' mode (editing never erases other segments).

        A singleton node (tag ``HER2Radiomics``), as Slicer's Segment Editor module keeps its own
        (Modules/Scripted/SegmentEditor/SegmentEditor.py ``selectParameterNode``): loading a scene saved
        with it merges into the existing node instead of adding a second one.
        """
        node = self.scene.GetSingletonNode(EDITOR_SINGLETON_TAG, "vtkMRMLSegmentEditorNode")
        if node is None:
            node = self.scene.CreateNodeByClass("vtkMRMLSegmentEditorNode")
            node.UnRegister(None)  # CreateNodeByClass returns a new reference (as SegmentEditor.py does)
            node.SetSingletonTag(EDITOR_SINGLETON_TAG)
            node.SetName(f"{TABLE_PREFIX} segment editor")
            node = self.scene.AddNode(node)
        enforce_overlap_mode(node)
        if segmentation_node is not None and node.GetSegmentationNode() is not segmentation_node:
            node.SetAndObserveSegmentationNode(segmentation_node)
        if volume_node is not None and node.GetSourceVolumeNode() is not volume_node:
            node.SetAndObserveSourceVolumeNode(volume_node)
        return node

    # ---------------------------------------------------------------- masks
    def image(self, volume_node) -> sitk.Image:
        return mrml_bridge.image_from_volume_node(volume_node)

    def lesion_mask(self, volume_node, segmentation_node) -> sitk.Image:
        """The ``lesion`` segment on the image grid; UserError when missing or empty."""
        if segmentation_node is None or not mrml_bridge.segment_id(segmentation_node, segments.LESION):
            raise UserError("no 'lesion' segment; press 'Prepare segmentation' and paint the lesion first")
        mask = mrml_bridge.mask_from_segment(segmentation_node, segments.LESION, volume_node)
        if not sitk.GetArrayViewFromImage(mask).any():
            raise UserError("the 'lesion' segment is empty; paint the lesion in the Lesion section first")
        return mask

    def exclusion_masks(self, volume_node, segmentation_node) -> dict[str, sitk.Image | None]:
        """Current air/pectoralis segments as user masks; None for never-detected empty placeholders."""
        from her2radiomics.regions import EXCLUSIONS

        out: dict[str, sitk.Image | None] = {}
        for name in EXCLUSIONS:
            if not mrml_bridge.segment_id(segmentation_node, name):
                out[name] = None
                continue
            mask = mrml_bridge.mask_from_segment(segmentation_node, name, volume_node)
            out[name] = None if segments.exclusion_state(segmentation_node, name, mask) == "none" else mask
        return out

    def _write_exclusion(self, segmentation_node, name: str, mask: sitk.Image, source: str) -> None:
        sid = mrml_bridge.set_segment_from_mask(segmentation_node, name, mask)
        seg = segmentation_node.GetSegmentation().GetSegment(sid)
        seg.SetTag(segments.SOURCE_TAG, source)
        seg.SetTag(segments.AUTO_HASH_TAG, segments.mask_digest(mask) if source == "auto" else "")

    # ---------------------------------------------------------------- exclusions
    def detect_exclusion(self, volume_node, segmentation_node, name: str) -> list[str]:
        """Replace the ``air`` or ``pectoralis`` segment by the automatic mask; returns the detector's notes."""
        from her2radiomics import exclusions

        if name not in ("air", "pectoralis"):
            raise UserError(f"unknown exclusion '{name}'; use air or pectoralis")
        segmentation_node = self.setup_segmentation(volume_node, segmentation_node)
        image = self.image(volume_node)
        lesion = mrml_bridge.mask_from_segment(segmentation_node, segments.LESION, volume_node)
        lesion_arg = lesion if sitk.GetArrayViewFromImage(lesion).any() else None
        if name == "air":
            res = exclusions.detect_air(image, lesion_arg)
        else:
            reach = max(self.state.distances) if self.state.distances else 5.0
            res = exclusions.detect_pectoralis(image, lesion_arg, reach_mm=reach)
        self._save_undo(segmentation_node)
        self._write_exclusion(segmentation_node, name, res.mask, "auto")
        self.state.exclusion_states[name] = "auto"
        self.state.exclusion_notes[name] = [str(n) for n in res.notes]
        if self.state.has_results():
            self._bind(input_key(volume_node, segmentation_node))  # features of the old exclusion are dropped
        return self.state.exclusion_notes[name]

    # ---------------------------------------------------------------- shells
    def generate_shells(
        self,
        volume_node,
        segmentation_node,
        distances: Iterable[float] | str | None = None,
        auto_exclusions: bool | None = None,
    ):
        """Compute the shells from the lesion minus the exclusions and write them as segments.

        The current ``air``/``pectoralis`` segments (automatic, edited or painted) are passed to
        ``build_regions`` as user masks; only never-detected placeholders are detected automatically
        (when ``auto_exclusions``). Shell segments of distances no longer configured are removed.
        Returns the core ``Regions`` (also kept in ``self.state.regions``).
        """
        from her2radiomics.regions import EXCLUSIONS, build_regions

        dists = parse_distances(distances if distances is not None else self.state.distances)
        auto = self.state.auto_exclusions if auto_exclusions is None else bool(auto_exclusions)
        segmentation_node = self.setup_segmentation(volume_node, segmentation_node, dists)
        image = self.image(volume_node)
        lesion = self.lesion_mask(volume_node, segmentation_node)
        user = self.exclusion_masks(volume_node, segmentation_node)
        regions = build_regions(image, lesion, dists, air=user["air"], pectoralis=user["pectoralis"], auto_exclusions=auto)

        self._save_undo(segmentation_node)
        seg = segmentation_node.GetSegmentation()
        keep = {segments.shell_name(d) for d in dists}
        for i in reversed(range(seg.GetNumberOfSegments())):
            s = seg.GetNthSegment(i)
            if segments.get_tag(s, segments.ROLE_TAG) == "shell" and s.GetName() not in keep:
                seg.RemoveSegment(seg.GetNthSegmentID(i))
        for name in regions.shell_names:
            mrml_bridge.set_segment_from_mask(segmentation_node, name, regions.masks[name])
        for name in EXCLUSIONS:
            src = regions.exclusion_source[name]
            if src == "auto":
                self._write_exclusion(segmentation_node, name, regions.masks[name], "auto")
                self.state.exclusion_notes[name] = list(regions.exclusions.get(name, {}).get("notes", []))
            elif src == "none":
                self._write_exclusion(segmentation_node, name, regions.masks[name], "none")
            self.state.exclusion_states[name] = segments.exclusion_state(segmentation_node, name, regions.masks[name])
        segments.ensure_segments(segmentation_node, dists)  # names/colours/roles (never voxels)
        self._bind(input_key(volume_node, segmentation_node))
        self.state.distances, self.state.auto_exclusions, self.state.regions = dists, auto, regions
        self.state.warnings = list(regions.warnings)
        return regions

    def undo(self, segmentation_node) -> bool:
        """Restore the segments and the module's regions / exclusion states as before the last step."""
        if segmentation_node is None:
            return False
        done = self.undo_stack.undo(segmentation_node)
        if done and self._undo_states:
            for k, v in self._undo_states.pop().items():
                setattr(self.state, k, v)
        return done

    def can_undo(self, segmentation_node) -> bool:
        return segmentation_node is not None and self.undo_stack.can_undo(segmentation_node)

    # ---------------------------------------------------------------- region statistics
    def region_stats_rows(self, regions=None) -> list[dict[str, Any]]:
        regions = regions or self.state.regions
        if regions is None:
            return []
        rows = []
        for name, st in regions.stats.items():
            row = {"region": name}
            for col in REGION_STAT_COLUMNS[1:]:
                v = st.get(col)
                row[col] = float(v) if v is not None else float("nan")
            rows.append(row)
        return rows

    def region_stats_table(self, regions=None, node=None):
        """Region statistics (voxels, mm3, excluded and clipped mm3) as a table node."""
        node = self._table_node(f"{TABLE_PREFIX} region statistics", node)
        fill_table(node, self.region_stats_rows(regions), REGION_STAT_COLUMNS)
        return node

    # ---------------------------------------------------------------- features
    def feature_regions(self, volume_node, segmentation_node, distances=None):
        """The regions features are computed from: ``build_regions`` on the lesion and exclusion segments.

        Identical to what ``her2radiomics extract`` builds from a manifest row with the same image,
        lesion, air and pectoralis files. Warns when the shell segments on screen differ from them
        (edited by hand or not regenerated after a change).
        """
        from her2radiomics.regions import build_regions

        dists = parse_distances(distances if distances is not None else self.state.distances)
        image = self.image(volume_node)
        lesion = self.lesion_mask(volume_node, segmentation_node)
        user = self.exclusion_masks(volume_node, segmentation_node)
        regions = build_regions(image, lesion, dists, air=user["air"], pectoralis=user["pectoralis"],
                                auto_exclusions=self.state.auto_exclusions)
        for name in regions.shell_names:
            if not mrml_bridge.segment_id(segmentation_node, name):
                continue
            shown = mrml_bridge.mask_from_segment(segmentation_node, name, volume_node)
            if not np.array_equal(sitk.GetArrayViewFromImage(shown), sitk.GetArrayViewFromImage(regions.masks[name])):
                regions.warnings.append(
                    f"the '{name}' segment differs from the shell recomputed from the lesion and exclusions; "
                    "features use the recomputed shell (press Generate shells to refresh the display)"
                )
        return image, regions

    def extract_features(self, volume_node, segmentation_node, parameter_file=None, distances=None) -> dict[str, float]:
        """Synchronous feature extraction (scripts, tests; the GUI runs ``runner.FeatureJob`` instead)."""
        from her2radiomics import features

        params = features.load_params(parameter_file or None)
        image, regions = self.feature_regions(volume_node, segmentation_node, distances)
        info: dict[str, Any] = {}
        values = features.extract_case(image, regions.feature_masks(), params, info=info)
        self.set_features(values, parameter_file, features.parameter_file_hash(params), info, regions,
                          inputs=input_key(volume_node, segmentation_node))
        return values

    def set_features(self, values: Mapping[str, float], parameter_file=None, parameter_hash=None, info=None, regions=None,
                     inputs: InputKey | None = None):
        """Store extracted features; ``inputs`` is the :class:`InputKey` they were computed from."""
        if inputs is not None:
            self._bind(inputs)
        self.state.prediction = None  # a prediction belongs to the features it was computed from
        self.state.features = dict(values)
        self.state.parameter_file = str(parameter_file) if parameter_file else None
        self.state.parameter_hash = parameter_hash
        self.state.features_info = dict(info or {})
        if regions is not None:
            self.state.regions = regions
            self.state.warnings = list(regions.warnings)

    def features_table(self, values: Mapping[str, float] | None = None, node=None, regions: Iterable[str] | None = None):
        """Long-format feature table (region, feature, value, name): one row per feature."""
        values = values if values is not None else (self.state.features or {})
        names = list(regions) if regions is not None else None
        if names is None:
            dists = self.state.distances
            names = ["intra", *(segments.shell_name(d) for d in dists)]
        rows = []
        for key, v in values.items():
            region = next((r for r in sorted(names, key=len, reverse=True) if key.startswith(r + "_")), "")
            rows.append({"region": region, "feature": key[len(region) + 1:] if region else key, "value": float(v), "name": key})
        node = self._table_node(f"{TABLE_PREFIX} features", node)
        fill_table(node, rows, FEATURE_COLUMNS)
        return node

    # ---------------------------------------------------------------- prediction
    def load_card(self, path) -> dict:
        from her2radiomics.modelcard import load_model_card

        if not path or not Path(str(path)).is_file():
            raise UserError(f"model card not found: {path}; choose a model card JSON in the Prediction section")
        return load_model_card(str(path))

    def predict(self, stage1_path, stage2_path=None, values: Mapping[str, float] | None = None, case_id: str | None = None,
                volume_node=None, segmentation_node=None) -> PredictionResult:
        """Stage-wise P(positive)/P(low)/P(zero), calls and contributions into table nodes and a bar chart.

        With ``volume_node`` (the panel passes the selected nodes) the stored features must have been
        computed from those nodes and their current content, else UserError (:data:`STALE_RESULTS`).
        """
        import pandas as pd

        from her2radiomics.prediction import feature_label, predict

        if values is None and volume_node is not None:
            self.check_inputs(volume_node, segmentation_node)
        values = values if values is not None else self.state.features
        if not values:
            raise UserError("no features yet; run Extract features first")
        case_id = case_id or self.state.case_id
        paths = {"stage1": stage1_path, **({"stage2": stage2_path} if stage2_path else {})}
        cards = {stage: self.load_card(p) for stage, p in paths.items()}
        df = pd.DataFrame([{"case_id": case_id, **values}])
        kwargs = {}
        if self.state.parameter_hash and "features_hash" in inspect.signature(predict).parameters:
            kwargs["features_hash"] = self.state.parameter_hash  # the core refuses cards from another parameter file
        pred = predict(df, cards["stage1"], cards.get("stage2"), **kwargs)
        row = {k: _plain(v) for k, v in pred.table.iloc[0].to_dict().items()}
        contrib = pred.contributions.copy()
        contrib["label"] = [feature_label(f) for f in contrib["feature"]]
        contrib["abs"] = contrib["contribution"].abs()
        contrib = contrib.sort_values(["stage", "abs"], ascending=[True, False]).drop(columns="abs")
        contributions = [{k: _plain(v) for k, v in r.items()} for r in contrib.to_dict("records")]
        warnings = [str(w) for w in pred.warnings]
        result = PredictionResult(
            row=row,
            contributions=contributions,
            warnings=warnings,
            gdi={stage: gdi_badges(card) for stage, card in cards.items()},
            cards={stage: {"path": str(paths[stage]), **card_summary(card)} for stage, card in cards.items()},
        )
        result.table_node = self._table_node(f"{TABLE_PREFIX} predictions")
        pred_cols = list(row.keys())
        fill_table(result.table_node, [row], pred_cols)
        result.contributions_node = self._table_node(f"{TABLE_PREFIX} contributions")
        contrib_cols = list(contrib.columns)
        fill_table(result.contributions_node, contributions, contrib_cols)
        result.chart_node = self.contributions_chart(contributions)
        self.state.case_id = case_id
        self.state.prediction = result
        return result

    def contributions_chart(self, contributions: list[dict[str, Any]], top: int = 15):
        """Bar chart of the largest contributions (log-odds) per stage: one series per stage."""
        slicer = _slicer()
        chart = self.scene.GetFirstNodeByName(f"{TABLE_PREFIX} contributions chart")
        if chart is None or not chart.IsA("vtkMRMLPlotChartNode"):
            chart = self.scene.AddNewNodeByClass("vtkMRMLPlotChartNode", f"{TABLE_PREFIX} contributions chart")
        chart.RemoveAllPlotSeriesNodeIDs()
        chart.SetTitle("Feature contributions (log-odds)")
        chart.SetXAxisTitle("feature (rank)")
        chart.SetYAxisTitle("contribution = coefficient x z")
        colors = {"stage1": (0.80, 0.25, 0.25), "stage2": (0.25, 0.45, 0.85)}
        for stage in ("stage1", "stage2"):
            rows = [r for r in contributions if r["stage"] == stage][:top]
            if not rows:
                continue
            table = self._table_node(f"{TABLE_PREFIX} contributions {stage} (chart)")
            fill_table(table, [{"rank": i + 1, "contribution": r["contribution"], "label": r["label"]} for i, r in enumerate(rows)],
                       ("rank", "contribution", "label"))
            name = f"{TABLE_PREFIX} {stage} contributions"
            series = self.scene.GetFirstNodeByName(name)
            if series is None or not series.IsA("vtkMRMLPlotSeriesNode"):
                series = self.scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", name)
            series.SetAndObserveTableNodeID(table.GetID())
            series.SetXColumnName("rank")
            series.SetYColumnName("contribution")
            series.SetLabelColumnName("label")
            series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeBar)
            series.SetColor(*colors[stage])
            chart.AddAndObservePlotSeriesNodeID(series.GetID())
        return chart


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def enforce_overlap_mode(editor_node) -> bool:
    """Set 'allow overlap' (OverwriteNone); True when the node had another mode."""
    if editor_node.GetOverwriteMode() != editor_node.OverwriteNone:
        editor_node.SetOverwriteMode(editor_node.OverwriteNone)
        return True
    return False


def _plain(v):
    """numpy/pandas scalars -> JSON-friendly Python values (NaN -> None)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def fill_table(node, rows: list[Mapping[str, Any]], columns: Iterable[str]) -> None:
    """Replace a table node's content: numeric columns as vtkDoubleArray, others as vtkStringArray."""
    import vtk

    columns = list(columns)
    table = vtk.vtkTable()
    for col in columns:
        vals = [r.get(col) for r in rows]
        numeric = all(v is None or (isinstance(v, (int, float, np.number)) and not isinstance(v, bool)) for v in vals)
        if numeric and rows:
            arr = vtk.vtkDoubleArray()
            for v in vals:
                arr.InsertNextValue(float("nan") if v is None else float(v))
        else:
            arr = vtk.vtkStringArray()
            for v in vals:
                arr.InsertNextValue("" if v is None else str(v))
        arr.SetName(col)
        table.AddColumn(arr)
    node.SetAndObserveTable(table)
    node.SetUseColumnTitleAsColumnHeader(True)
    node.Modified()


def table_rows(node) -> list[dict[str, Any]]:
    """A table node's content as a list of dicts (numbers as float, strings as str)."""
    table = node.GetTable()
    cols = [table.GetColumn(c) for c in range(table.GetNumberOfColumns())]
    out = []
    for r in range(table.GetNumberOfRows()):
        row = {}
        for col in cols:
            v = col.GetValue(r)
            row[col.GetName()] = float(v) if col.IsNumeric() else str(v)
        out.append(row)
    return out


def gdi_badges(card: Mapping[str, Any]) -> list[tuple[str, float | None, str]]:
    """(split, GDI value, zone) for every non-training split of a model card (METHOD.md zones)."""
    out = []
    for split, g in (card.get("gdi") or {}).items():
        if isinstance(g, Mapping):
            v = g.get("value")
            out.append((str(split), float(v) if v is not None else None, str(g.get("zone", ""))))
    return out


def gdi_html(badges: list[tuple[str, float | None, str]]) -> str:
    """Coloured GDI zone badges for a QLabel (rich text)."""
    if not badges:
        return "no GDI in this model card"
    parts = []
    for split, value, zone in badges:
        color = GDI_COLORS.get(zone, "#555555")
        pct = "n/a" if value is None else f"{100 * value:.0f}%"
        parts.append(f'<span style="background-color:{color}; color:white; padding:2px 6px;">&nbsp;{split}: GDI {pct} ({zone})&nbsp;</span>')
    return " ".join(parts)


def card_summary(card: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "task": card.get("task"),
        "feature_set": card.get("feature_set"),
        "checksum": card.get("checksum"),
        "intended_use": card.get("intended_use"),
        "n_features": len(card.get("features") or []),
    }


def card_notice(card: Mapping[str, Any] | None) -> str:
    """The line shown under the model selectors: the card's intended use (always with 'not for clinical use')."""
    if not card:
        return NOT_FOR_CLINICAL_USE
    text = str(card.get("intended_use") or DEMO_MODEL_NOTICE)
    if "not for clinical use" not in text.lower():
        text = f"{text} {NOT_FOR_CLINICAL_USE}"
    return text


def default_session_folder() -> Path:
    """Per-user folder for saved sessions: $HER2RADIOMICS_SESSION_DIR, else ~/Documents/HER2Radiomics sessions
    (~/HER2Radiomics sessions when there is no Documents folder). Never the shared system temp folder."""
    env = os.environ.get("HER2RADIOMICS_SESSION_DIR")
    if env:
        return Path(env).expanduser()
    home = Path.home()
    docs = home / "Documents"
    return (docs if docs.is_dir() else home) / "HER2Radiomics sessions"


def read_model_card(path) -> tuple[dict | None, str | None]:
    """(card, None) for a valid card, (None, reason) for a refused one: only through
    ``her2radiomics.modelcard.load_model_card``, the one validated loader (checksum, schema)."""
    from her2radiomics.modelcard import load_model_card

    try:
        return load_model_card(str(path)), None
    except UserError as exc:
        return None, str(exc)


def default_model_cards(models_dir: Path | None = None) -> dict[str, Path]:
    """The shipped demo cards in Resources/Models, by task ('stage1', 'stage2'); refused cards are skipped."""
    from her2radiomics.resources import resources_dir

    try:
        folder = Path(models_dir) if models_dir else resources_dir() / "Models"
    except UserError:
        return {}
    found: dict[str, Path] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        card, _refused = read_model_card(path)
        if card is None:
            continue
        task = card.get("task")
        if task in ("stage1", "stage2") and task not in found:
            found[task] = path
    return found


def features_importable() -> bool:
    """True when the parameter files can be read and checked here (PyYAML and pyradiomics installed)."""
    from .deps import module_available

    return all(module_available(m) for m in ("yaml", "radiomics"))


def parameter_file_for_card(card: Mapping[str, Any] | str | Path, folder: Path | None = None,
                            verify: bool | None = None) -> Path | None:
    """The shipped pyradiomics parameter file a model card was trained with.

    Cards record ``provenance.parameter_file_hash`` (``features.parameter_file_hash``) and the file's name
    (``provenance.parameter_file``). With PyYAML and pyradiomics installed (``verify``, default: when
    importable) the first file of Resources/Parameters with that hash is returned. Before they are
    installed (a fresh Slicer, before the dependency prompt) nothing is imported: the file named by the
    card is returned when it exists, and the hash is checked later (the features carry their parameter
    hash and ``predict`` refuses a card trained with another one). None when nothing matches. Cards are
    read through ``modelcard.load_model_card`` (a refused card gives None).
    """
    from her2radiomics.resources import resources_dir

    if not isinstance(card, Mapping):
        card, _refused = read_model_card(card)
        if card is None:
            return None
    prov = card.get("provenance") or {}
    want = prov.get("parameter_file_hash")
    if not want:
        return None
    try:
        folder = Path(folder) if folder else resources_dir() / "Parameters"
    except UserError:
        return None
    if not (features_importable() if verify is None else verify):
        named = prov.get("parameter_file")
        path = folder / Path(str(named)).name if named else None
        return path if path is not None and path.is_file() else None
    from her2radiomics.features import load_params, parameter_file_hash

    for path in sorted(folder.glob("*")):
        if path.suffix.lower() not in (".yaml", ".yml", ".json"):
            continue
        try:
            if parameter_file_hash(load_params(path)) == want:
                return path
        except UserError:
            continue
    return None


ProgressCallback = Callable[[float, str], None]
