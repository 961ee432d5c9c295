"""The panel's DCE section: the DCE series from the scene, the radiomics phase, the lesion's TIC (no Qt).

The series comes from one node of the scene:

- a ``vtkMRMLSequenceNode`` (Sequences module) whose data nodes are volumes, one per phase in item order
  (``GetNumberOfDataNodes`` / ``GetNthDataNode`` / ``GetNthIndexValue``, Libs/MRML/Core/vtkMRMLSequenceNode.h);
- a ``vtkMRMLSequenceBrowserNode`` (its master sequence, ``GetMasterSequenceNode``,
  Modules/Loadable/Sequences/MRML/vtkMRMLSequenceBrowserNode.h);
- a multi-volume (MultiVolumeExplorer's ``vtkMRMLMultiVolumeNode``, or any volume node): one component per
  phase, times from its ``MultiVolume.FrameLabels`` attribute.

Item / frame 0 is the pre-contrast phase. Acquisition times are used when the index values are numbers in
s / ms / min (a sequence's index unit, a multi-volume's ``MultiVolume.FrameIdentifyingDICOMTagUnits``);
otherwise the curve is read by phase (the BI-RADS early phase is then the first post-contrast phase, see
``her2radiomics.kinetics``).

Every number comes from the core: :func:`her2radiomics.kinetics.pick_phase` for the phase the radiomics use
(it becomes the panel's source volume, a copy on the scene), :func:`her2radiomics.kinetics.region_kinetics`
for the lesion's mean curve, kinetic features and BI-RADS type, :func:`her2radiomics.sequences.lesion_on_grid`
for another sequence's lesion (nearest neighbour through physical space). The core modules are imported on
first use: nothing here runs before the dependency prompt.
"""

from __future__ import annotations

import math
from typing import Any

from her2radiomics.errors import UserError

from . import mrml_bridge, segments

#: marks the nodes this section made (picked phases, TIC table / series / chart, resampled lesions)
NODE_ATTRIBUTE = "HER2Radiomics.dce"
PREFIX = "HER2Radiomics DCE"
_TIME_SCALE = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "msec": 1e-3, "min": 60.0,
               "minute": 60.0, "minutes": 60.0}


def _times(values: list[str], unit: str) -> tuple[float, ...] | None:
    """Seconds from index values in a known unit, increasing; None when they are not (read by phase then)."""
    scale = _TIME_SCALE.get((unit or "").strip().lower())
    if scale is None:
        return None
    try:
        t = tuple(float(v) * scale for v in values)
    except ValueError:
        return None
    if not all(math.isfinite(v) for v in t) or any(b <= a for a, b in zip(t, t[1:], strict=False)):
        return None
    return t


def sequenceOf(node):
    """The sequence node behind ``node`` (itself, or a browser's master sequence); None for a multi-volume."""
    if node is None:
        raise UserError("select the DCE series (a sequence, a sequence browser or a multi-volume) in the DCE section")
    if node.IsA("vtkMRMLSequenceBrowserNode"):
        seq = node.GetMasterSequenceNode()
        if seq is None:
            raise UserError(f"sequence browser '{node.GetName()}' browses no sequence; choose its sequence in the "
                            "Sequences module")
        return seq
    if node.IsA("vtkMRMLSequenceNode"):
        return node
    if node.IsA("vtkMRMLVolumeNode"):
        return None
    raise UserError(f"'{node.GetName()}' is a {node.GetClassName()}, not a DCE series; select a sequence of "
                    "volumes, a sequence browser or a multi-volume")


def _components(node) -> int:
    data = node.GetImageData()
    return int(data.GetNumberOfScalarComponents()) if data is not None else 0


class DcePanelLogic:
    """The DCE section's actions over a module logic (``HER2RadiomicsLib.logic.PanelLogic``)."""

    def __init__(self, core_logic) -> None:
        self.core = core_logic
        self.reset()

    def reset(self) -> None:
        """Forget the series, the picked phase and the curve (scene closed, another series chosen)."""
        self.series = None          # her2radiomics.kinetics.DceSeries of the last series read
        self.series_node = None
        self.source_node = None     # the picked phase (the panel's source volume)
        self.phase: int | None = None
        self.result: dict[str, dict[str, Any]] | None = None
        self.chart_node = None
        self._grid_node = None

    # ---- the series ----------------------------------------------------------------------------------------
    def phaseCount(self, node) -> int:
        """Number of phases of the series node (0 when it holds none)."""
        seq = sequenceOf(node)
        return int(seq.GetNumberOfDataNodes()) if seq is not None else _components(node)

    def readSeries(self, node):
        """The series as a ``kinetics.DceSeries`` (phases on one grid, LPS geometry, times in s or None)."""
        import numpy as np
        import SimpleITK as sitk

        from her2radiomics import kinetics

        seq = sequenceOf(node)
        name = node.GetName()
        if seq is not None:
            n = int(seq.GetNumberOfDataNodes())
            phases = []
            for k in range(n):
                data = seq.GetNthDataNode(k)
                if data is None or not data.IsA("vtkMRMLScalarVolumeNode"):
                    what = data.GetClassName() if data is not None else "nothing"
                    raise UserError(f"item {k} of sequence '{seq.GetName()}' is {what}, not a scalar volume; the DCE "
                                    "series must be a sequence of volumes (one per phase, pre-contrast first)")
                phases.append(mrml_bridge.image_from_volume_node(data))
            times = _times([seq.GetNthIndexValue(k) for k in range(n)], seq.GetIndexUnit())
        else:
            n = _components(node)
            if n < 2:
                raise UserError(f"volume '{name}' has one phase; select a sequence or a multi-volume with the "
                                "pre-contrast and the post-contrast phases")
            from vtk.util import numpy_support

            data = node.GetImageData()
            dims = tuple(reversed(data.GetDimensions()))
            arr = numpy_support.vtk_to_numpy(data.GetPointData().GetScalars()).reshape(*dims, n)
            ref = mrml_bridge.empty_image_like_node(node)
            phases = []
            for k in range(n):
                img = sitk.GetImageFromArray(np.ascontiguousarray(arr[..., k]))
                img.CopyInformation(ref)
                phases.append(img)
            labels = (node.GetAttribute("MultiVolume.FrameLabels") or "").split(",")
            unit = node.GetAttribute("MultiVolume.FrameIdentifyingDICOMTagUnits") or ""
            times = _times([v.strip() for v in labels], unit) if len(labels) == n else None
        if len(phases) < 3:
            raise UserError(f"'{name}' has {len(phases)} phase(s); a DCE series needs the pre-contrast phase and at "
                            "least 2 post-contrast phases")
        from her2radiomics.geometry import check_same_grid

        for k, ph in enumerate(phases[1:], start=1):
            check_same_grid(ph, phases[0], what=f"DCE phase {k} of '{name}'")
        series = kinetics.DceSeries(phases, times, name)
        self.series, self.series_node = series, node
        self._grid_node = seq.GetNthDataNode(0) if seq is not None else node   # a volume node on the series grid
        return series

    def pickPhase(self, node, phase: int, subtraction: bool = False):
        """Phase ``phase`` of the series (0 = pre-contrast) as a volume node in the scene: the panel's source
        volume. The same node is reused when the same series' phase is picked again."""
        from her2radiomics import kinetics

        series = self.readSeries(node)
        img = kinetics.pick_phase(series, int(phase), subtraction)
        label = f"{node.GetName()} phase {int(phase)}" + (" minus pre-contrast" if subtraction else "")
        reuse = self.source_node if (self.source_node is not None and self.source_node.GetScene() is not None) else None
        vol = mrml_bridge.volume_node_from_image(img, label, node=reuse, scene=self.core.scene)
        vol.SetName(label)
        vol.SetAttribute(NODE_ATTRIBUTE, "phase")
        if node.IsA("vtkMRMLSequenceBrowserNode"):
            node.SetSelectedItemNumber(int(phase))   # the views browse to the same phase
        self.source_node, self.phase = vol, int(phase)
        return vol

    # ---- the curve -----------------------------------------------------------------------------------------
    def computeTic(self, node, segmentation_node, segment: str = segments.LESION) -> dict[str, dict[str, Any]]:
        """The lesion's kinetic features and BI-RADS type (``kinetics.region_kinetics``) and the TIC chart."""
        import SimpleITK as sitk

        from her2radiomics import kinetics

        if segmentation_node is None:
            raise UserError("select the segmentation holding the lesion (or 'Prepare segmentation' and paint it)")
        series = self.readSeries(node)
        mask = mrml_bridge.mask_from_segment(segmentation_node, segment, self._grid_node)   # on phase 0's grid
        if not sitk.GetArrayViewFromImage(mask).any():
            raise UserError(f"the '{segment}' segment is empty on the DCE grid; paint the lesion before 'Show TIC'")
        self.result = kinetics.region_kinetics(series, {"intra": mask})
        self.chart_node = self.ticChart(self.result["intra"], series.times_s)
        return self.result

    def _node(self, cls: str, name: str):
        scene = self.core.scene
        node = scene.GetFirstNodeByName(name)
        if node is None or not node.IsA(cls):
            node = scene.AddNewNodeByClass(cls, name)
            node.SetAttribute(NODE_ATTRIBUTE, "tic")
        return node

    def ticChart(self, rec: dict[str, Any], times_s=None):
        """Line chart of the lesion's mean curve: relative enhancement 100 (S_k - S_0) / S_0 per phase, over
        the acquisition time when known (else the phase number), titled with the BI-RADS type."""
        from .logic import _slicer, fill_table

        slicer = _slicer()
        curve = rec.get("curve") or []
        s0 = curve[0] if curve else math.nan
        rows = [{"phase": k, "time_s": (float(times_s[k]) if times_s is not None else float(k)), "mean_signal": v,
                 "enhancement_pct": (100.0 * (v - s0) / s0 if s0 else math.nan)} for k, v in enumerate(curve)]
        table = self._node("vtkMRMLTableNode", f"{PREFIX} TIC table")
        fill_table(table, rows, ("phase", "time_s", "mean_signal", "enhancement_pct"))
        series = self._node("vtkMRMLPlotSeriesNode", f"{PREFIX} lesion TIC")
        series.SetAndObserveTableNodeID(table.GetID())
        series.SetXColumnName("time_s")
        series.SetYColumnName("enhancement_pct")
        series.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
        series.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleSolid)
        series.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle)
        series.SetColor(0.85, 0.35, 0.10)
        chart = self._node("vtkMRMLPlotChartNode", f"{PREFIX} TIC chart")
        chart.RemoveAllPlotSeriesNodeIDs()
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
        chart.SetTitle(f"Lesion TIC: {rec.get('initial_type') or '?'} / {rec.get('delayed_type') or '?'}")
        chart.SetXAxisTitle("time after injection (s)" if times_s is not None else "phase (0 = pre-contrast)")
        chart.SetYAxisTitle("enhancement (%) = 100 (S - S0) / S0")
        return chart

    def resultText(self) -> str:
        """One line for the result label (``kinetics.summary_text``)."""
        if not self.result:
            return ""
        from her2radiomics import kinetics

        return kinetics.summary_text(self.result, "intra")

    # ---- other sequences -----------------------------------------------------------------------------------
    def sequenceLesion(self, volume_node, segmentation_node, reference_node, segment: str = segments.LESION):
        """A segmentation for another sequence's volume (T2, ADC...) holding the lesion brought onto its grid
        through physical space (``sequences.lesion_on_grid``, nearest neighbour). Returns (segmentation node,
        ``LesionTransfer``: volumes and warnings). Draw the lesion on that sequence instead when it moved."""
        from her2radiomics import sequences

        if volume_node is None:
            raise UserError("select the other sequence's volume (T2, ADC...) to bring the lesion onto")
        if segmentation_node is None or reference_node is None:
            raise UserError("select the DCE volume and its segmentation with the lesion first")
        lesion = mrml_bridge.mask_from_segment(segmentation_node, segment, reference_node)
        target = mrml_bridge.empty_image_like_node(volume_node)
        transfer = sequences.lesion_on_grid(lesion, target, what=volume_node.GetName())
        name = f"{volume_node.GetName()} lesion (resampled)"
        seg = self.core.scene.GetFirstNodeByName(name)
        if seg is None or not seg.IsA("vtkMRMLSegmentationNode"):
            seg = self.core.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
            seg.CreateDefaultDisplayNodes()
            seg.SetAttribute(NODE_ATTRIBUTE, "lesion")
        seg.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
        mrml_bridge.set_segment_from_mask(seg, segment, transfer.mask)
        return seg, transfer
