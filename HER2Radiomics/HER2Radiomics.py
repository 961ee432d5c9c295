"""HER2Radiomics: stage-wise HER2 status prediction from intra- and peritumoral DCE-MRI radiomics (3D Slicer module).

Thin GUI shell (Slicer's scripted-module template): module metadata, the panel (Resources/UI/HER2Radiomics.ui)
bound to a parameter node, and the self-test. Everything that computes lives in ``HER2RadiomicsLib`` (Qt-free,
tested headless) and in the core package ``her2radiomics``. Research software, not for clinical use.

Supported: 3D Slicer 5.10 and 5.12 (Python 3.12). Nothing imported before the dependency prompt needs a
package Slicer does not bundle; the computing modules (SimpleITK, scipy, the core) are imported on first
use, not at every Slicer start.
"""

from __future__ import annotations

import logging
import os
import pathlib
import sys
import time

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

#: the path fields; bound by hand (not with SlicerParameterName): ctkPathLineEdit emits currentPathChanged only
#: for text matching its name filters, so a cleared field would never reach the parameter node, and the
#: wrapper's pathlib.Path connector shows an unset path as "." (CTK ctkPathLineEdit::updateHasValidInput,
#: Slicer parameterNodeWrapper/guiConnectors.py ctkPathLineEditToPathConnector)
PATH_FIELDS = {
    "parameterFile": "parameterFilePathLineEdit",
    "stage1Model": "stage1ModelPathLineEdit",
    "stage2Model": "stage2ModelPathLineEdit",
}


def _path(pn, name: str) -> str:
    """A path parameter as text; '' when unset (also '.', what older scenes stored for an unset pathlib.Path)."""
    value = str(getattr(pn, name) or "").strip() if pn is not None else ""
    return "" if value == "." else value


def _resource(relative: str) -> str:
    """Path in Resources/, in the source tree (Resources at the repository root) and in an installed extension.

    Slicer's default ``resourcePath`` only looks beside the module file, which is right once installed
    (qt-scripted-modules/Resources) but not when HER2Radiomics/ is added to the module paths from a checkout.
    """
    from her2radiomics.resources import resources_dir

    return str(resources_dir() / relative)


def _testing() -> bool:
    app = getattr(slicer, "app", None)
    return bool(app is not None and app.testingEnabled())


def _slicer_version() -> str | None:
    app = getattr(slicer, "app", None)
    return str(app.applicationVersion) if app is not None and hasattr(app, "applicationVersion") else None


def installRequirements(missing: list[str]) -> None:
    """Install requirement strings with the bundled numpy / scipy / SimpleITK pinned (pip constraints file).

    Slicer >= 5.12: ``slicer.packaging.pip_ensure`` (Base/Python/slicer/packaging.py; our own dialog has
    already asked, so ``prompt_install=False``); Slicer 5.10 has no ``slicer.packaging`` and gets
    ``slicer.util.pip_install`` with pip's command-line arguments (Base/Python/slicer/util.py).
    """
    import importlib

    from HER2RadiomicsLib import deps

    constraints = deps.write_constraints()
    try:
        packaging = importlib.import_module("slicer.packaging")
    except ImportError:
        packaging = None
    if packaging is not None and hasattr(packaging, "pip_ensure"):
        packaging.pip_ensure(list(missing), constraints=str(constraints), prompt_install=False,
                             requester="HER2Radiomics", skip_in_testing=True)
    else:  # Slicer 5.10
        slicer.util.pip_install(["-c", str(constraints), *missing])


def ensureRuntimeDependencies(confirm, needRadiomics: bool = True, testing: bool | None = None) -> None:
    """Install the missing packages of Resources/requirements.txt with Slicer's pip once ``confirm`` agreed.

    In testing mode nothing is installed (``deps.DependenciesSkipped`` names what is missing).
    """
    from HER2RadiomicsLib import deps

    deps.ensure(deps.read_requirements(_resource("requirements.txt")), confirm=confirm, install=installRequirements,
                need_radiomics=needRadiomics, testing=_testing() if testing is None else testing)


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
            "Supported: 3D Slicer 5.10 and 5.12. "
            "<b>Research software, not for clinical use.</b> See docs/user_guide.md."
        )
        self.parent.acknowledgementText = _(
            "Method: Gao Y, Gong J, et al. BMC Cancer 26(1), 2026, doi:10.1186/s12885-026-15688-x. "
            "Features: pyradiomics (van Griethuysen et al., Cancer Res 2017) via SlicerRadiomics."
        )
        from HER2RadiomicsLib.deps import slicer_version_message

        self.versionMessage = slicer_version_message(_slicer_version())
        if self.versionMessage:
            logging.error(self.versionMessage)
            self.parent.helpText = f"<b>{self.versionMessage}</b><br>" + self.parent.helpText
        if pathlib.Path(_resource("Icons/HER2Radiomics.png")).is_file():
            self.parent.icon = qt.QIcon(_resource("Icons/HER2Radiomics.png"))

    def resourcePath(self, filename: str) -> str:
        return _resource(filename)


#
# Parameter node (widgets carry the SlicerParameterName property in the .ui; PATH_FIELDS are bound by hand)
#
@parameterNodeWrapper
class HER2RadiomicsParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    segmentation: vtkMRMLSegmentationNode
    caseId: str = "case"
    distances: str = "1 3 5"
    autoExclusions: bool = True
    parameterFile: str = ""
    runInBackground: bool = True
    stage1Model: str = ""
    stage2Model: str = ""
    sessionDirectory: pathlib.Path


class EditorUndo:
    """Undo through the embedded Segment Editor's history, so its Undo button also undoes shells/exclusions."""

    def __init__(self, editor_widget) -> None:
        self.editor = editor_widget

    def saveState(self, segmentation_node) -> None:
        self.editor.saveStateForUndo()

    def undo(self, segmentation_node) -> bool:
        self.editor.undo()
        return True

    def canUndo(self, segmentation_node) -> bool:
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
        self._jobInputs = None
        self._timer = None
        self._editorNode = None
        self._updatingPaths = False
        self._autoParameterFile = None   # the parameter file the panel chose for the card (the user's choice wins)
        self._nomogramStage = "stage1"   # whose card's nomogram the Prediction section shows (the last one chosen)

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
        self.logic.core.undoStack = EditorUndo(self.ui.segmentEditorWidget)
        self._setupEditorNode()

        from HER2RadiomicsLib.deps import slicer_version_message

        version_message = slicer_version_message(_slicer_version())
        self.ui.clinicalUseLabel.text = (f"{version_message} " if version_message else "") + _(
            "Research software: not for clinical use.")
        self.ui.extractProgressBar.setRange(0, 100)
        self.ui.extractProgressBar.value = 0
        self._timer = qt.QTimer()
        self._timer.setInterval(200)
        self._timer.connect("timeout()", self.onPollJob)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneEndImport)

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
        self.ui.saveSessionButton.connect("clicked(bool)", self.onSaveSession)
        self._setupQA()
        self._setupDCE()
        for param, widgetName in PATH_FIELDS.items():
            widget = getattr(self.ui, widgetName)
            widget.connect("currentPathChanged(QString)", lambda path, p=param: self.onPathEdited(p))
            widget.connect("validInputChanged(bool)", lambda valid, p=param: self.onPathEdited(p))

        self.initializeParameterNode()

    def _setupQA(self) -> None:
        """The QA section: a cohort QA session reviewed case by case (HER2RadiomicsLib.qa_panel, docs/qa.md)."""
        from HER2RadiomicsLib.qa_panel import SHORTCUTS, QAPanelLogic

        self.qa = QAPanelLogic(self.logic.core)
        slots = {"previous": self.onQAPrevious, "next": self.onQANext, "approve": self.onQAApprove,
                 "needs_edit": self.onQANeedsEdit, "reject": self.onQAReject}
        self.ui.qaOpenSessionButton.connect("clicked(bool)", self.onQAOpen)
        self.ui.qaPreviousButton.connect("clicked(bool)", self.onQAPrevious)
        self.ui.qaNextButton.connect("clicked(bool)", self.onQANext)
        self.ui.qaApproveButton.connect("clicked(bool)", self.onQAApprove)
        self.ui.qaNeedsEditButton.connect("clicked(bool)", self.onQANeedsEdit)
        self.ui.qaRejectButton.connect("clicked(bool)", self.onQAReject)
        self.ui.qaCaseListWidget.connect("currentRowChanged(int)", self.onQACaseSelected)
        self._qaShortcuts = {}
        for action, keys in SHORTCUTS.items():
            shortcut = qt.QShortcut(qt.QKeySequence(keys), self.parent)
            shortcut.connect("activated()", slots[action])
            self._qaShortcuts[action] = shortcut
        self._qaRefresh()

    def cleanup(self) -> None:
        self._cancelJob(wait=True)
        if self._timer is not None:
            self._timer.stop()
        self.removeObservers()

    def _setupEditorNode(self) -> None:
        """The module's own segment editor node ('allow overlap'), observed so that the mode stays so."""
        node = self.logic.core.segmentEditorNode()
        if node is self._editorNode:
            return
        if self._editorNode is not None:
            self.removeObserver(self._editorNode, vtk.vtkCommand.ModifiedEvent, self.onEditorNodeModified)
        self._editorNode = node
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
        """The case is being closed: stop its extraction and forget its results before the next case loads."""
        self._cancelJob()
        self._resetResults()
        self.dce.reset()
        self.ui.dceResultLabel.text = _("Select a DCE series.")
        self.setParameterNode(None)
        self._showNomogram("stage1")  # no parameter node: the closed scene's card nomogram is cleared

    def onSceneEndClose(self, caller, event) -> None:
        self._setupEditorNode()
        if self.parent.isEntered:
            self.initializeParameterNode()

    def onSceneEndImport(self, caller, event) -> None:
        """A loaded scene may bring its own editor node: keep the module's singleton and its overlap mode."""
        self._setupEditorNode()
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        from HER2RadiomicsLib.logic import default_model_cards, default_session_folder

        self.setParameterNode(self.logic.getParameterNode())
        pn = self._parameterNode
        if not pn.inputVolume:
            pn.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
        if not _path(pn, "stage1Model"):
            cards = default_model_cards()
            if "stage1" in cards:
                pn.stage1Model = str(cards["stage1"])
            if "stage2" in cards:
                pn.stage2Model = str(cards["stage2"])
        if str(pn.sessionDirectory) in ("", "."):
            pn.sessionDirectory = default_session_folder()
        self.onModelChanged()
        self._showNomogram()

    def setParameterNode(self, parameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            if self.hasObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onInputsChanged):
                self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onInputsChanged)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onInputsChanged)
            self.onInputsChanged()

    # ---------------------------------------------------------------- helpers
    def _inputs(self):
        from HER2RadiomicsLib.logic import parse_distances

        pn = self._parameterNode
        volume, seg = pn.inputVolume, pn.segmentation
        if volume is None:
            raise ValueError(_("Select the input image (Input section)."))
        core = self.logic.core
        core.state.case_id = pn.caseId or "case"
        core.state.distances = parse_distances(pn.distances)
        core.state.auto_exclusions = bool(pn.autoExclusions)
        if seg is None:
            seg = core.setupSegmentation(volume, None, core.state.distances)
            pn.segmentation = seg
        return volume, seg

    def _ensureDependencies(self, needRadiomics: bool) -> None:
        ensureRuntimeDependencies(
            confirm=lambda question: slicer.util.confirmOkCancelDisplay(question, windowTitle="HER2Radiomics"),
            needRadiomics=needRadiomics,
        )

    def _clearStaleResults(self) -> None:
        """After a step that changed the lesion or an exclusion the logic dropped its features: so does the panel."""
        core = self.logic.core
        if core.state.features is None:
            ui = self.ui
            for label in (ui.pPositiveLabel, ui.pLowLabel, ui.pZeroLabel, ui.stage1CallLabel, ui.stage2CallLabel):
                label.text = "-"
            ui.featuresTableView.setMRMLTableNode(None)
            ui.contributionsTableView.setMRMLTableNode(None)
            if ui.extractProgressBar.value == 100:
                ui.extractProgressBar.value = 0
                ui.extractStatusLabel.text = _("Segments changed: extract the features again.")

    def _showRegions(self) -> None:
        self._clearStaleResults()
        core = self.logic.core
        self.ui.regionStatsTableView.setMRMLTableNode(core.regionStatsTable())
        self.ui.warningsTextEdit.setPlainText("\n".join(core.state.warnings) or _("No warnings."))
        states = ", ".join(f"{k}: {v}" for k, v in core.state.exclusion_states.items())
        shells = ", ".join(core.state.regions.shell_names) if core.state.regions is not None else ""
        self.ui.shellsStatusLabel.text = _("Shells") + f" {shells} ({states})"

    def _selectSegment(self, name: str) -> None:
        from HER2RadiomicsLib import mrml_bridge

        seg = self._parameterNode.segmentation
        if seg is not None:
            self.ui.segmentEditorWidget.setCurrentSegmentID(mrml_bridge.segment_id(seg, name))

    def _cancelJob(self, wait: bool = False) -> None:
        job, self._job, self._jobInputs = self._job, None, None
        if job is not None:
            job.cancel(wait=wait, cleanup=True)  # the job folder goes once its process group has ended
        if self._timer is not None:
            self._timer.stop()
        if getattr(self, "ui", None) is not None:
            self.ui.extractButton.text = _("Extract features")

    def _resetResults(self, message: str = "") -> None:
        """Forget the results and clear everything the panel shows of them."""
        if self.logic is not None:
            self.logic.core.reset()
        ui = self.ui
        for label in (ui.pPositiveLabel, ui.pLowLabel, ui.pZeroLabel, ui.stage1CallLabel, ui.stage2CallLabel):
            label.text = "-"
        ui.gdiStage1Label.text = ui.gdiStage2Label.text = ""
        ui.extractProgressBar.value = 0
        ui.extractStatusLabel.text = message
        ui.shellsStatusLabel.text = ""
        ui.sessionStatusLabel.text = ""
        ui.warningsTextEdit.setPlainText("")
        for view in (ui.featuresTableView, ui.regionStatsTableView, ui.contributionsTableView):
            view.setMRMLTableNode(None)

    # ---------------------------------------------------------------- reactions
    def onEditorNodeModified(self, caller=None, event=None) -> None:
        from HER2RadiomicsLib.logic import enforce_overlap_mode

        if enforce_overlap_mode(self._editorNode):
            slicer.util.showStatusMessage(_("HER2Radiomics keeps 'Allow overlap': editing never erases other segments."), 4000)

    def onInputsChanged(self, caller=None, event=None) -> None:
        pn = self._parameterNode
        if pn is None:
            return
        if self.ui.segmentEditorWidget.segmentationNode() is not pn.segmentation:
            self.ui.segmentEditorWidget.setSegmentationNode(pn.segmentation)
        # the editor takes a source volume only once it has a segmentation (vtkSlicerSegmentEditorLogic::
        # SetSourceVolumeNode logs an error otherwise)
        if pn.segmentation is not None and self.ui.segmentEditorWidget.sourceVolumeNode() is not pn.inputVolume:
            self.ui.segmentEditorWidget.setSourceVolumeNode(pn.inputVolume)
        ready = pn.inputVolume is not None
        for button in (self.ui.prepareSegmentationButton, self.ui.generateShellsButton, self.ui.detectAirButton,
                       self.ui.detectPectoralisButton, self.ui.applyExclusionsButton, self.ui.extractButton):
            button.enabled = ready
        selected = (pn.inputVolume.GetID() if pn.inputVolume else None, pn.segmentation.GetID() if pn.segmentation else None)
        inputs = self.logic.core.state.inputs or (self._jobInputs[0] if self._jobInputs else None)
        if inputs is not None and selected != (inputs.volume_id, inputs.segmentation_id):
            # another image or segmentation: the results on screen (and a running job) belong to the previous one
            self._cancelJob()
            self._resetResults(_("Inputs changed: results cleared."))
        self._updatePathWidgets()
        where = _("Sessions are saved in {folder}").format(folder=pathlib.Path(str(pn.sessionDirectory)) / (pn.caseId or "case"))
        self.ui.sessionStatusLabel.toolTip = where
        if not self.ui.sessionStatusLabel.text or self.ui.sessionStatusLabel.text.startswith(_("Sessions are saved in")):
            self.ui.sessionStatusLabel.text = where

    def _updatePathWidgets(self) -> None:
        """Parameter node -> path fields (an unset path is an empty field, never '.')."""
        pn = self._parameterNode
        self._updatingPaths = True
        try:
            for param, widgetName in PATH_FIELDS.items():
                widget = getattr(self.ui, widgetName)
                value = _path(pn, param)
                if widget.currentPath != value:
                    widget.currentPath = value
        finally:
            self._updatingPaths = False

    def onPathEdited(self, param: str) -> None:
        """Path field -> parameter node, also when the field was cleared (no currentPathChanged then)."""
        pn = self._parameterNode
        if pn is None or self._updatingPaths:
            return
        text = str(getattr(self.ui, PATH_FIELDS[param]).currentPath or "").strip()
        if text != _path(pn, param):
            setattr(pn, param, text)
        if param == "stage1Model":
            self.onModelChanged()
        if param in ("stage1Model", "stage2Model"):  # the card chosen last; back to stage 1 when a field is cleared
            self._showNomogram(param.removesuffix("Model") if text else "stage1")

    def _showNomogram(self, stage: str | None = None) -> None:
        """The nomogram of the ``stage`` card (default: the one shown) under its caption and the card's notice; a
        card trained without --clinical gets one line and no image (HER2RadiomicsLib.nomogram_panel)."""
        from HER2RadiomicsLib.nomogram_panel import nomogram_view, png_file

        self._nomogramStage = stage or self._nomogramStage
        view = nomogram_view(_path(self._parameterNode, f"{self._nomogramStage}Model"), self._nomogramStage)
        self.ui.nomogramImageLabel.clear()
        self.ui.nomogramCaptionLabel.text = view.text()
        if view.png is not None:
            with png_file(view.png) as png:
                pixmap = qt.QPixmap(str(png))  # QPixmap(fileName) reads the file here
            if pixmap.isNull():
                self.ui.nomogramCaptionLabel.text = view.text() + "\n" + _("(the nomogram image could not be read)")
            else:
                self.ui.nomogramImageLabel.setPixmap(pixmap)

    def onModelChanged(self, *args) -> None:
        """Show the stage-1 card's intended use (or why it is refused) and pick its parameter file."""
        from her2radiomics.errors import UserError
        from her2radiomics.modelcard import card_notice, load_model_card, parameter_file_for_card

        pn = self._parameterNode
        path = _path(pn, "stage1Model")
        try:
            card = load_model_card(path) if path else None
        except UserError as refused:
            self.ui.modelNoticeLabel.text = "<b>" + _("Model card refused: {reason}").format(reason=refused) + "</b>"
            return
        self.ui.modelNoticeLabel.text = f"<b>{card_notice(card)}</b>"
        current = _path(pn, "parameterFile") if pn is not None else ""
        if card is not None and pn is not None and (not current or current == self._autoParameterFile):
            # extract with the parameter file the model was trained with: by the name the card records before
            # PyYAML / pyradiomics are installed, by the card's parameter hash once they are (re-checked here)
            matching = parameter_file_for_card(card)
            if matching is not None:
                self._autoParameterFile = str(matching)
                if str(matching) != current:
                    pn.parameterFile = str(matching)

    def onPrepareSegmentation(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to prepare the segmentation."), waitCursor=True):
            volume, seg = self._inputs()
            self.logic.core.setupSegmentation(volume, seg, self.logic.core.state.distances)
            self.logic.core.segmentEditorNode(seg, volume)
            self.onInputsChanged()
            self._selectSegment("lesion")

    def onGenerateShells(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to generate the shells."), waitCursor=True):
            volume, seg = self._inputs()
            self.onInputsChanged()
            self.logic.core.generateShells(volume, seg)
            self._showRegions()

    def onUndo(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Undo failed."), waitCursor=True):
            if self.logic.core.undo(self._parameterNode.segmentation) and self.logic.core.state.regions is not None:
                self._showRegions()

    def onDetect(self, name: str) -> None:
        with slicer.util.tryWithErrorDisplay(_("Automatic detection failed."), waitCursor=True):
            volume, seg = self._inputs()
            self.onInputsChanged()
            notes = self.logic.core.detectExclusion(volume, seg, name)
            self._clearStaleResults()
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
            self._cancelJob()
            self.ui.extractProgressBar.value = 0
            self.ui.extractStatusLabel.text = _("Cancelled.")
            return
        with slicer.util.tryWithErrorDisplay(_("Feature extraction failed."), waitCursor=True):
            from HER2RadiomicsLib import runner
            from HER2RadiomicsLib.logic import input_key

            self._ensureDependencies(needRadiomics=True)
            self.onModelChanged()  # the card's parameter file, now checked by its hash (PyYAML is installed)
            volume, seg = self._inputs()
            params = _path(self._parameterNode, "parameterFile") or None
            core = self.logic.core
            if not self._parameterNode.runInBackground:
                self.ui.extractStatusLabel.text = _("Extracting (Slicer is busy)...")
                slicer.app.processEvents()
                core.extractFeatures(volume, seg, params)
                self._featuresDone()
                return
            image, regions = core.featureRegions(volume, seg)
            self._jobInputs = (input_key(volume, seg), regions, params)
            self._job = runner.BackgroundJob(runner.prepare_job(image, regions.feature_masks(), params)).start()
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
        key, regions, params = self._jobInputs
        self._job, self._jobInputs = None, None
        self.ui.extractButton.text = _("Extract features")
        with slicer.util.tryWithErrorDisplay(_("Feature extraction failed."), waitCursor=False):
            try:
                out = job.result()
            finally:
                job.cleanup()
            from HER2RadiomicsLib.logic import STALE_RESULTS, input_key

            pn = self._parameterNode
            now = input_key(pn.inputVolume, pn.segmentation) if pn is not None else None
            if now != key:  # the inputs changed while the worker ran: its numbers are not this case's
                self.ui.extractProgressBar.value = 0
                self.ui.extractStatusLabel.text = _("Discarded: ") + STALE_RESULTS.format(
                    was=f"'{key.volume_name}'", now=f"'{now.volume_name if now else None}'")
                return
            core = self.logic.core
            core.setFeatures(out["features"], params, out.get("parameter_file_hash"), out.get("info"), regions, inputs=key)
            self._featuresDone()

    def _featuresDone(self) -> None:
        core = self.logic.core
        self.ui.featuresTableView.setMRMLTableNode(core.featuresTable())
        self.ui.extractProgressBar.value = 100
        self.ui.extractStatusLabel.text = _("{n} features").format(n=len(core.state.features or {}))
        self._showRegions()

    def _plotViewNode(self, tag: str = "HER2Radiomics"):
        """The panel's own plot view, owned by the module's editor node so the layout manager leaves it alone
        (qMRMLLayoutManager builds a view widget for every view node without a parent layout node). One view
        per plot widget (``tag``: "HER2Radiomics" for the contributions, "HER2RadiomicsDCE" for the TIC)."""
        viewNode = slicer.mrmlScene.GetSingletonNode(tag, "vtkMRMLPlotViewNode")
        if viewNode is None:
            viewNode = slicer.mrmlScene.CreateNodeByClass("vtkMRMLPlotViewNode")
            viewNode.UnRegister(None)
            viewNode.SetLayoutName(tag)  # a view node's layout name is its singleton tag
            viewNode.SetName(f"{tag} plot view")
            viewNode.SetAndObserveParentLayoutNodeID(self._editorNode.GetID())
            viewNode = slicer.mrmlScene.AddNode(viewNode)
        return viewNode

    def onPredict(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Prediction failed."), waitCursor=True):
            from her2radiomics.modelcard import card_notice
            from HER2RadiomicsLib.logic import gdi_html

            self._ensureDependencies(needRadiomics=False)
            pn = self._parameterNode
            stage2 = _path(pn, "stage2Model") or None
            res = self.logic.core.predict(_path(pn, "stage1Model"), stage2, case_id=pn.caseId or "case",
                                          volume_node=pn.inputVolume, segmentation_node=pn.segmentation)
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
            viewNode = self._plotViewNode()
            viewNode.SetPlotChartNodeID(res.chart_node.GetID())
            self.ui.contributionsPlotWidget.setMRMLPlotViewNode(viewNode)
            notices = {card_notice(c) for c in res.cards.values()}
            self.ui.modelNoticeLabel.text = "<b>" + " ".join(sorted(notices)) + "</b>"
            self.ui.warningsTextEdit.setPlainText("\n".join([*self.logic.core.state.warnings, *res.warnings]) or _("No warnings."))

    # ---------------------------------------------------------------- QA session
    def _qaShow(self, nodes) -> None:
        """A QA case was loaded: the panel's inputs become its nodes, nothing of the previous case is shown."""
        volume, seg = nodes
        self._cancelJob()
        self._resetResults()
        pn = self._parameterNode
        session = self.qa.session
        pn.distances = " ".join(f"{d:g}" for d in session.distances)
        pn.autoExclusions = bool(session.meta.get("auto_exclusions", True))
        pn.caseId = self.qa.currentCaseId
        pn.inputVolume = volume
        pn.segmentation = seg
        self.logic.core.segmentEditorNode(seg, volume)
        layout = getattr(slicer.app, "layoutManager", None)
        if layout is not None and layout() is not None:
            slicer.util.setSliceViewerLayers(background=volume, fit=True)
        self._qaRefresh()

    def _qaRefresh(self) -> None:
        rows = self.qa.rows()
        listWidget = self.ui.qaCaseListWidget
        listWidget.clear()
        listWidget.addItems([r.text() for r in rows])
        if self.qa.currentCaseId is not None:
            listWidget.setCurrentRow(self.qa.index)  # its currentRowChanged finds the case already loaded
        self.ui.qaProgressLabel.text = self.qa.progressText() or _("No QA session open.")
        current = next((r for r in rows if r.case_id == self.qa.currentCaseId), None)
        self.ui.qaNoteLineEdit.text = current.note if current is not None else ""
        loaded = current is not None
        for button in (self.ui.qaPreviousButton, self.ui.qaNextButton, self.ui.qaApproveButton,
                       self.ui.qaNeedsEditButton, self.ui.qaRejectButton):
            button.enabled = loaded

    def onQAOpen(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cannot open the QA session."), waitCursor=True):
            self.qa.open(self.ui.qaSessionDirectoryButton.directory, self.ui.qaReaderLineEdit.text)
            self._qaShow(self.qa.first())

    def onQACaseSelected(self, row: int) -> None:
        if self.qa.session is None or row < 0 or row == self.qa.index:
            return
        with slicer.util.tryWithErrorDisplay(_("Cannot load the case."), waitCursor=True):
            self._qaShow(self.qa.loadIndex(row))

    def onQAPrevious(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cannot load the case."), waitCursor=True):
            self._qaShow(self.qa.previous())

    def onQANext(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cannot load the case."), waitCursor=True):
            self._qaShow(self.qa.next())

    def _qaDecided(self, review) -> None:
        self.ui.sessionStatusLabel.text = _("{case}: {status}").format(case=review.case_id, status=review.status)
        if self.qa.index + 1 < len(self.qa.caseIds):
            self._qaShow(self.qa.next())
        else:
            self._qaRefresh()

    def onQAApprove(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Approving the case failed."), waitCursor=True):
            self._qaDecided(self.qa.approve(note=self.ui.qaNoteLineEdit.text))

    def onQANeedsEdit(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Marking the case failed."), waitCursor=True):
            self.qa.needsEdit(self.ui.qaNoteLineEdit.text)
            self.ui.lesionCollapsibleButton.collapsed = False
            self._selectSegment("lesion")
            self._qaRefresh()

    def onQAReject(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Rejecting the case failed."), waitCursor=True):
            self._qaDecided(self.qa.reject(self.ui.qaNoteLineEdit.text))

    # ---------------------------------------------------------------- DCE series
    def _setupDCE(self) -> None:
        """The DCE section: the phase from a sequence / multi-volume, the lesion's TIC (HER2RadiomicsLib.dce_panel;
        the kinetics are imported on first use, not at set-up)."""
        from HER2RadiomicsLib.dce_panel import DcePanelLogic

        self.dce = DcePanelLogic(self.logic.core)
        self.ui.dceSequenceSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onDCESeriesChanged)
        self.ui.dcePickPhaseButton.connect("clicked(bool)", self.onDCEPickPhase)
        self.ui.dceShowTicButton.connect("clicked(bool)", self.onDCEShowTic)
        self.ui.dceAddSequenceButton.connect("clicked(bool)", self.onDCEAddSequence)
        self.onDCESeriesChanged(self.ui.dceSequenceSelector.currentNode())

    def onDCESeriesChanged(self, node) -> None:
        """Another series: the phase range is its phases (default the 2nd post-contrast phase, as in the paper)."""
        self.dce.reset()
        n = 0
        if node is not None:
            from her2radiomics.errors import UserError

            try:
                n = self.dce.phaseCount(node)
            except UserError as exc:
                self.ui.dceResultLabel.text = str(exc)
                n = -1
        for button in (self.ui.dcePickPhaseButton, self.ui.dceShowTicButton):
            button.enabled = n >= 3
        if n >= 0:
            self.ui.dcePhaseSpinBox.setRange(0, max(n - 1, 0))
            self.ui.dcePhaseSpinBox.value = min(2, max(n - 1, 0))
            self.ui.dceResultLabel.text = (_("Select a DCE series.") if node is None else
                                           _("{n} phases (0 = pre-contrast).").format(n=n))

    def onDCEPickPhase(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cannot use this phase."), waitCursor=True):
            node = self.ui.dceSequenceSelector.currentNode()
            volume = self.dce.pickPhase(node, int(self.ui.dcePhaseSpinBox.value))
            if self._parameterNode is not None:
                self._parameterNode.inputVolume = volume
            self.ui.dceResultLabel.text = _("Phase {k} of {name} is the input image.").format(
                k=self.dce.phase, name=node.GetName())

    def onDCEShowTic(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cannot compute the lesion's TIC."), waitCursor=True):
            pn = self._parameterNode
            self.dce.computeTic(self.ui.dceSequenceSelector.currentNode(), pn.segmentation if pn else None)
            self.ui.dceResultLabel.text = self.dce.resultText()
            viewNode = self._plotViewNode("HER2RadiomicsDCE")
            viewNode.SetPlotChartNodeID(self.dce.chart_node.GetID())
            self.ui.dcePlotWidget.setMRMLPlotViewNode(viewNode)

    def onDCEAddSequence(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cannot bring the lesion onto this sequence."), waitCursor=True):
            pn = self._parameterNode
            _seg, transfer = self.dce.sequenceLesion(self.ui.dceOtherVolumeSelector.currentNode(),
                                                     pn.segmentation if pn else None, pn.inputVolume if pn else None)
            self.ui.dceResultLabel.text = "\n".join(transfer.warnings)

    def onSaveSession(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Saving the session failed."), waitCursor=True):
            from HER2RadiomicsLib import session

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
        from HER2RadiomicsLib.logic import PanelLogic

        ScriptedLoadableModuleLogic.__init__(self)
        self.core = PanelLogic()

    def getParameterNode(self):
        return HER2RadiomicsParameterNode(super().getParameterNode())


#
# Test
#
class HER2RadiomicsTest(ScriptedLoadableModuleTest):
    """Whole workflow on a generated phantom (HER2RadiomicsLib.selftest.run_workflow, also run headless by pytest).

    On the extension build servers (testing mode) nothing is installed: when PyYAML / pandas / pyradiomics
    are missing, the part that needs only Slicer's bundled packages runs (segments, shells, exclusions,
    erase, undo, session) and the feature / prediction steps are skipped with a message.
    HER2RADIOMICS_TEST_PYTHONPATH (set by CMakeLists.txt to SlicerRadiomics' build tree) is added to sys.path.
    """

    def setUp(self):
        slicer.mrmlScene.Clear()
        for extra in filter(None, os.environ.get("HER2RADIOMICS_TEST_PYTHONPATH", "").split(os.pathsep)):
            if extra not in sys.path:
                sys.path.append(extra)

    def runTest(self):
        self.setUp()
        self.test_HER2Radiomics_workflow()

    def test_HER2Radiomics_workflow(self):
        from HER2RadiomicsLib.deps import DependenciesSkipped
        from HER2RadiomicsLib.selftest import run_workflow

        self.delayDisplay("Starting the HER2Radiomics workflow test")
        full = True
        try:
            ensureRuntimeDependencies(confirm=lambda question: True)  # outside testing mode: installs what is missing
        except DependenciesSkipped as exc:
            full = False
            self.delayDisplay(f"{exc}: running the part that needs only Slicer's bundled packages")
        result = run_workflow(say=self.delayDisplay, scene=slicer.mrmlScene, app_logic=slicer.app.applicationLogic(),
                              full=full)
        self.assertGreater(result["regained_voxels"], 0)
        self.assertIn("not for clinical use", result["audit"]["intended_use"].lower())
        if full:
            self.assertGreater(result["n_features"], 100)
        self.delayDisplay("Test passed")
