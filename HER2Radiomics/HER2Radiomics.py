"""HER2Radiomics: stage-wise HER2 status prediction from intra- and peritumoral DCE-MRI radiomics (3D Slicer module).

Thin GUI shell (Slicer's scripted-module template): module metadata, the panel (Resources/UI/HER2Radiomics.ui)
bound to a parameter node, and the self-test. Everything that computes lives in ``HER2RadiomicsLib`` (Qt-free,
tested headless) and in the core package ``her2radiomics``. Research software, not for clinical use.
"""

from __future__ import annotations

import logging
import pathlib
import tempfile
import time

import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.util import VTKObservationMixin

from HER2RadiomicsLib import deps, runner, session
from HER2RadiomicsLib.logic import (
    HER2RadiomicsLogic as CoreLogic,
)
from HER2RadiomicsLib.logic import (
    card_notice,
    default_model_cards,
    enforce_overlap_mode,
    gdi_html,
    parameter_file_for_card,
    parse_distances,
)

try:  # inside Slicer; slicer-core (headless tests) has none of these
    import qt
    from slicer.parameterNodeWrapper import parameterNodeWrapper
    from slicer.ScriptedLoadableModule import (
        ScriptedLoadableModule,
        ScriptedLoadableModuleLogic,
        ScriptedLoadableModuleTest,
        ScriptedLoadableModuleWidget,
    )
except ImportError:  # headless import (slicer-core) for the tests of the widget against fake Qt widgets
    import unittest

    qt = None

    class _Stub:
        def __init__(self, *args, **kwargs) -> None:
            pass

    ScriptedLoadableModule = type("ScriptedLoadableModule", (_Stub,), {})
    ScriptedLoadableModuleLogic = type("ScriptedLoadableModuleLogic", (_Stub,), {})
    ScriptedLoadableModuleWidget = type("ScriptedLoadableModuleWidget", (_Stub,), {})
    ScriptedLoadableModuleTest = unittest.TestCase

    def parameterNodeWrapper(cls):
        return cls


def _resource(relative: str) -> str:
    """Path in Resources/, in the source tree (Resources at the repository root) and in an installed extension.

    Slicer's default ``resourcePath`` only looks beside the module file, which is right once installed
    (qt-scripted-modules/Resources) but not when HER2Radiomics/ is added to the module paths from a checkout.
    """
    from her2radiomics.resources import resources_dir

    return str(resources_dir() / relative)


def _(text: str) -> str:
    try:
        from slicer.i18n import tr

        return tr(text)
    except ImportError:
        return text


def ensureRuntimeDependencies(confirm, needRadiomics: bool = True) -> None:
    """Install the missing packages of Resources/requirements.txt with Slicer's pip once ``confirm`` agreed."""

    def install(missing):
        try:
            import slicer.packaging

            slicer.packaging.pip_ensure(missing, prompt_install=False, requester="HER2Radiomics", skip_in_testing=False)
        except (ImportError, AttributeError):  # Slicer < 5.12
            slicer.util.pip_install(missing)

    deps.ensure(deps.read_requirements(_resource("requirements.txt")), confirm=confirm, install=install,
                need_radiomics=needRadiomics)


#
# HER2Radiomics
#
class HER2Radiomics(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("HER2 Radiomics")
        self.parent.categories = [_("Quantification")]
        self.parent.dependencies = ["Segmentations", "SegmentEditor"]
        self.parent.contributors = ["HER2Radiomics developers"]
        self.parent.helpText = _(
            "Stage-wise prediction of HER2 status (positive / low / zero) from intratumoral and 1/3/5 mm peritumoral "
            "DCE-MRI radiomics (Gao et al., BMC Cancer 2026). Segment the lesion, generate the shells, check the air and "
            "pectoralis exclusions, extract features, predict, save the QA session. "
            "<b>Research software, not for clinical use.</b> See docs/user_guide.md."
        )
        self.parent.acknowledgementText = _(
            "Method: Gao Y, Gong J, et al. BMC Cancer 26(1), 2026, doi:10.1186/s12885-026-15688-x. "
            "Features: pyradiomics (van Griethuysen et al., Cancer Res 2017) via SlicerRadiomics."
        )
        if qt is not None and pathlib.Path(_resource("Icons/HER2Radiomics.png")).is_file():
            self.parent.icon = qt.QIcon(_resource("Icons/HER2Radiomics.png"))

    def resourcePath(self, filename: str) -> str:
        return _resource(filename)


#
# Parameter node (widgets carry the SlicerParameterName property in the .ui)
#
@parameterNodeWrapper
class HER2RadiomicsParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    segmentation: vtkMRMLSegmentationNode
    caseId: str = "case"
    distances: str = "1 3 5"
    autoExclusions: bool = True
    parameterFile: pathlib.Path
    runInBackground: bool = True
    stage1Model: pathlib.Path
    stage2Model: pathlib.Path
    sessionDirectory: pathlib.Path


class EditorUndo:
    """Undo through the embedded Segment Editor's history, so its Undo button also undoes shells/exclusions."""

    def __init__(self, editor_widget) -> None:
        self.editor = editor_widget

    def save_state(self, segmentation_node) -> None:
        self.editor.saveStateForUndo()

    def undo(self, segmentation_node) -> bool:
        self.editor.undo()
        return True

    def can_undo(self, segmentation_node) -> bool:
        return True


#
# Widget
#
class HER2RadiomicsWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._job = None
        self._timer = None

    def resourcePath(self, filename: str) -> str:
        return _resource(filename)

    # ---------------------------------------------------------------- set-up
    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/HER2Radiomics.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = HER2RadiomicsLogic()
        self.logic.core.undo_stack = EditorUndo(self.ui.segmentEditorWidget)
        self._editorNode = None
        self._setupEditorNode()

        self.ui.clinicalUseLabel.text = _("Research software: not for clinical use.")
        self.ui.extractProgressBar.setRange(0, 100)
        self.ui.extractProgressBar.value = 0
        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.connect("timeout()", self.onPollJob)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        # The selectors are not connected to onInputsChanged directly: their currentNodeChanged reaches this
        # slot before the parameter node's GUI connector has stored the new node (connectGui runs later,
        # slots fire in connection order). The parameter node's ModifiedEvent is observed instead (module
        # template, Utilities/Templates/Modules/Scripted/TemplateKey.py setParameterNode).
        self.ui.prepareSegmentationButton.connect("clicked(bool)", self.onPrepareSegmentation)
        self.ui.generateShellsButton.connect("clicked(bool)", self.onGenerateShells)
        self.ui.undoButton.connect("clicked(bool)", self.onUndo)
        self.ui.detectAirButton.connect("clicked(bool)", lambda: self.onDetect("air"))
        self.ui.detectPectoralisButton.connect("clicked(bool)", lambda: self.onDetect("pectoralis"))
        self.ui.editAirButton.connect("clicked(bool)", lambda: self.onEditExclusion("air"))
        self.ui.editPectoralisButton.connect("clicked(bool)", lambda: self.onEditExclusion("pectoralis"))
        self.ui.applyExclusionsButton.connect("clicked(bool)", self.onGenerateShells)
        self.ui.extractButton.connect("clicked(bool)", self.onExtract)
        self.ui.predictButton.connect("clicked(bool)", self.onPredict)
        self.ui.stage1ModelPathLineEdit.connect("currentPathChanged(QString)", self.onModelChanged)
        self.ui.saveSessionButton.connect("clicked(bool)", self.onSaveSession)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self._job is not None:
            self._job.cancel()
        if self._timer is not None:
            self._timer.stop()
        self.removeObservers()

    def _setupEditorNode(self) -> None:
        """The module's own segment editor node ('allow overlap'), observed so that the mode stays so."""
        if self._editorNode is not None:
            self.removeObserver(self._editorNode, vtk.vtkCommand.ModifiedEvent, self.onEditorNodeModified)
        self._editorNode = self.logic.core.segment_editor_node()
        self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(self._editorNode)
        self.addObserver(self._editorNode, vtk.vtkCommand.ModifiedEvent, self.onEditorNodeModified)

    def enter(self) -> None:
        self.initializeParameterNode()
        self.ui.segmentEditorWidget.setupViewObservations()

    def exit(self) -> None:
        self.ui.segmentEditorWidget.setActiveEffect(None)
        self.ui.segmentEditorWidget.removeViewObservations()
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onInputsChanged)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        self._setupEditorNode()
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        pn = self._parameterNode
        if not pn.inputVolume:
            pn.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
        if not str(pn.stage1Model) or str(pn.stage1Model) == ".":
            cards = default_model_cards()
            if "stage1" in cards:
                pn.stage1Model = cards["stage1"]
            if "stage2" in cards:
                pn.stage2Model = cards["stage2"]
        if not str(pn.sessionDirectory) or str(pn.sessionDirectory) == ".":
            pn.sessionDirectory = pathlib.Path(tempfile.gettempdir()) / "HER2Radiomics"
        self.onModelChanged()

    def setParameterNode(self, parameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onInputsChanged)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onInputsChanged)
            self.onInputsChanged()

    # ---------------------------------------------------------------- helpers
    def _inputs(self):
        pn = self._parameterNode
        volume, seg = pn.inputVolume, pn.segmentation
        if volume is None:
            raise ValueError(_("Select the input image (Input section)."))
        core = self.logic.core
        core.state.case_id = pn.caseId or "case"
        core.state.distances = parse_distances(pn.distances)
        core.state.auto_exclusions = bool(pn.autoExclusions)
        if seg is None:
            seg = core.setup_segmentation(volume, None, core.state.distances)
            pn.segmentation = seg
        return volume, seg

    def _ensureDependencies(self, needRadiomics: bool) -> None:
        ensureRuntimeDependencies(
            confirm=lambda question: slicer.util.confirmOkCancelDisplay(question, windowTitle="HER2Radiomics"),
            needRadiomics=needRadiomics,
        )

    def _showRegions(self) -> None:
        core = self.logic.core
        self.ui.regionStatsTableView.setMRMLTableNode(core.region_stats_table())
        self.ui.warningsTextEdit.setPlainText("\n".join(core.state.warnings) or _("No warnings."))
        states = ", ".join(f"{k}: {v}" for k, v in core.state.exclusion_states.items())
        self.ui.shellsStatusLabel.text = _("Shells") + f" {', '.join(core.state.regions.shell_names)} ({states})"

    def _selectSegment(self, name: str) -> None:
        from HER2RadiomicsLib import mrml_bridge

        seg = self._parameterNode.segmentation
        if seg is not None:
            self.ui.segmentEditorWidget.setCurrentSegmentID(mrml_bridge.segment_id(seg, name))

    # ---------------------------------------------------------------- reactions
    def onEditorNodeModified(self, caller=None, event=None) -> None:
        if enforce_overlap_mode(self._editorNode):
            slicer.util.showStatusMessage(_("HER2Radiomics keeps 'Allow overlap': editing never erases other segments."), 4000)

    def onInputsChanged(self, caller=None, event=None) -> None:
        pn = self._parameterNode
        if pn is None:
            return
        self.ui.segmentEditorWidget.setSegmentationNode(pn.segmentation)
        self.ui.segmentEditorWidget.setSourceVolumeNode(pn.inputVolume)
        ready = pn.inputVolume is not None
        for button in (self.ui.prepareSegmentationButton, self.ui.generateShellsButton, self.ui.detectAirButton,
                       self.ui.detectPectoralisButton, self.ui.applyExclusionsButton, self.ui.extractButton):
            button.enabled = ready

    def onModelChanged(self, *args) -> None:
        import json

        path = self.ui.stage1ModelPathLineEdit.currentPath  # the widget, which may be ahead of the parameter node
        card = None
        try:
            card = json.loads(pathlib.Path(path).read_text(encoding="utf-8")) if path and pathlib.Path(path).is_file() else None
        except (OSError, ValueError):
            card = None
        notice = card_notice(card)
        self.ui.modelNoticeLabel.text = f"<b>{notice}</b>"
        pn = self._parameterNode
        if card is not None and pn is not None and str(pn.parameterFile) in ("", "."):
            matching = parameter_file_for_card(card)  # extract with the parameter file the model was trained with
            if matching is not None:
                pn.parameterFile = matching

    def onPrepareSegmentation(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to prepare the segmentation."), waitCursor=True):
            volume, seg = self._inputs()
            self.logic.core.setup_segmentation(volume, seg, self.logic.core.state.distances)
            self.logic.core.segment_editor_node(seg, volume)
            self.onInputsChanged()
            self._selectSegment("lesion")

    def onGenerateShells(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to generate the shells."), waitCursor=True):
            volume, seg = self._inputs()
            self.onInputsChanged()
            self.logic.core.generate_shells(volume, seg)
            self._showRegions()

    def onUndo(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Undo failed."), waitCursor=True):
            self.logic.core.undo(self._parameterNode.segmentation)

    def onDetect(self, name: str) -> None:
        with slicer.util.tryWithErrorDisplay(_("Automatic detection failed."), waitCursor=True):
            volume, seg = self._inputs()
            self.onInputsChanged()
            notes = self.logic.core.detect_exclusion(volume, seg, name)
            self.ui.exclusionNotesLabel.text = f"{name}: " + ("; ".join(notes) or _("detected"))
            self._selectSegment(name)

    def onEditExclusion(self, name: str) -> None:
        """Select the exclusion segment in the embedded editor with the Erase effect active."""
        with slicer.util.tryWithErrorDisplay(_("Cannot edit the exclusion."), waitCursor=False):
            self._inputs()
            self.onInputsChanged()
            self._selectSegment(name)
            self.ui.segmentEditorWidget.setActiveEffectByName("Erase")
            self.ui.lesionCollapsibleButton.collapsed = False
            self.ui.exclusionNotesLabel.text = _(
                "Erase voxels of '{name}' that are breast tissue, then press 'Apply exclusions'."
            ).format(name=name)

    def onExtract(self) -> None:
        if self._job is not None:  # the button is 'Cancel' while running
            self._job.cancel()
            return
        with slicer.util.tryWithErrorDisplay(_("Feature extraction failed."), waitCursor=True):
            self._ensureDependencies(needRadiomics=True)
            volume, seg = self._inputs()
            params = str(self._parameterNode.parameterFile) if str(self._parameterNode.parameterFile) not in ("", ".") else None
            core = self.logic.core
            if not self._parameterNode.runInBackground:
                self.ui.extractStatusLabel.text = _("Extracting (Slicer is busy)...")
                slicer.app.processEvents()
                core.extract_features(volume, seg, params)
                self._featuresDone()
                return
            image, regions = core.feature_regions(volume, seg)
            core.state.regions = regions
            self._job = runner.BackgroundJob(runner.prepare_job(image, regions.feature_masks(), params)).start()
            self._jobParams = params
            self.ui.extractButton.text = _("Cancel")
            self.ui.extractProgressBar.value = 0
            self.ui.extractStatusLabel.text = _("Started in a background process...")
            self._timer.start()

    def onPollJob(self) -> None:
        job = self._job
        if job is None:
            self._timer.stop()
            return
        job.poll()
        self.ui.extractProgressBar.value = int(100 * job.progress)
        self.ui.extractStatusLabel.text = f"{job.message} ({time.monotonic() - job.started:.0f} s)"
        if job.running:
            return
        self._timer.stop()
        self._job = None
        self.ui.extractButton.text = _("Extract features")
        if job.cancelled:
            job.cleanup()
            self.ui.extractProgressBar.value = 0
            self.ui.extractStatusLabel.text = _("Cancelled.")
            return
        with slicer.util.tryWithErrorDisplay(_("Feature extraction failed."), waitCursor=False):
            try:
                out = job.result()
            finally:
                job.cleanup()
            core = self.logic.core
            core.set_features(out["features"], self._jobParams, out.get("parameter_hash"), out.get("info"), core.state.regions)
            self._featuresDone()

    def _featuresDone(self) -> None:
        core = self.logic.core
        self.ui.featuresTableView.setMRMLTableNode(core.features_table())
        self.ui.extractProgressBar.value = 100
        self.ui.extractStatusLabel.text = _("{n} features").format(n=len(core.state.features or {}))
        self._showRegions()

    def onPredict(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Prediction failed."), waitCursor=True):
            self._ensureDependencies(needRadiomics=False)
            pn = self._parameterNode
            stage2 = str(pn.stage2Model) if str(pn.stage2Model) not in ("", ".") else None
            res = self.logic.core.predict(str(pn.stage1Model), stage2, case_id=pn.caseId or "case")
            row = res.row

            def pct(v):
                return "-" if v is None else f"{100 * v:.1f} %"

            self.ui.pPositiveLabel.text = pct(row.get("p_positive"))
            self.ui.pLowLabel.text = pct(row.get("p_low"))
            self.ui.pZeroLabel.text = pct(row.get("p_zero"))
            self.ui.stage1CallLabel.text = row.get("stage1_call") or "-"
            self.ui.stage2CallLabel.text = row.get("stage2_call") or "-"
            self.ui.gdiStage1Label.text = gdi_html(res.gdi.get("stage1", []))
            self.ui.gdiStage2Label.text = gdi_html(res.gdi.get("stage2", []))
            self.ui.contributionsTableView.setMRMLTableNode(res.contributions_node)
            viewNode = slicer.mrmlScene.GetFirstNodeByName("HER2Radiomics plot view")
            if viewNode is None:
                viewNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLPlotViewNode", "HER2Radiomics plot view")
            viewNode.SetPlotChartNodeID(res.chart_node.GetID())
            self.ui.contributionsPlotWidget.setMRMLPlotViewNode(viewNode)
            notices = {card_notice(c) for c in res.cards.values()}
            self.ui.modelNoticeLabel.text = "<b>" + " ".join(sorted(notices)) + "</b>"
            self.ui.warningsTextEdit.setPlainText("\n".join([*self.logic.core.state.warnings, *res.warnings]) or _("No warnings."))

    def onSaveSession(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Saving the session failed."), waitCursor=True):
            volume, seg = self._inputs()
            folder = pathlib.Path(str(self._parameterNode.sessionDirectory)) / (self._parameterNode.caseId or "case")
            audit = session.save_session(folder, self.logic.core, volume, seg)
            self.ui.sessionStatusLabel.text = _("Saved {n} files to {folder}").format(n=len(audit["files"]) + 1, folder=folder)
            logging.info("HER2Radiomics session saved to %s", folder)


#
# Logic (parameter node + the Qt-free core logic)
#
class HER2RadiomicsLogic(ScriptedLoadableModuleLogic):
    """Slicer-side logic: the parameter node; all computation is in ``HER2RadiomicsLib.logic`` (``self.core``)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.core = CoreLogic()

    def getParameterNode(self):
        return HER2RadiomicsParameterNode(super().getParameterNode())


#
# Test
#
class HER2RadiomicsTest(ScriptedLoadableModuleTest):
    """Whole workflow on a generated phantom (HER2RadiomicsLib.selftest.run_workflow, also run headless by pytest)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_HER2Radiomics_workflow()

    def test_HER2Radiomics_workflow(self):
        from HER2RadiomicsLib.selftest import run_workflow

        self.delayDisplay("Starting the HER2Radiomics workflow test")
        ensureRuntimeDependencies(confirm=lambda question: True)  # a test run installs what it needs
        result = run_workflow(say=self.delayDisplay, scene=slicer.mrmlScene, app_logic=slicer.app.applicationLogic())
        self.assertGreater(result["n_features"], 100)
        self.assertGreater(result["regained_voxels"], 0)
        self.assertIn("not for clinical use", result["audit"]["intended_use"].lower())
        self.delayDisplay("Test passed")
