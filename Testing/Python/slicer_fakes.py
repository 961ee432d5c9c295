"""Stand-ins for the Qt/CTK/Slicer-application parts of 3D Slicer that slicer-core lacks, for driving the panel.

The MRML scene, the node classes, ``slicer.util`` and the module's own code are real; what is faked is what
only a Slicer application has, built from ``Resources/UI/HER2Radiomics.ui`` and made to behave like the real
widgets where the module depends on it (each behaviour names the source it follows):

* signals: ``connect(signal, slot)``; a slot gets as many of the signal's arguments as it accepts (PythonQt);
* ``QLineEdit.text`` emits ``textChanged(QString)``, ``QCheckBox.checked`` emits ``toggled(bool)``,
  ``qMRMLNodeComboBox.setCurrentNode`` emits ``currentNodeChanged(vtkMRMLNode*)`` and the combo box drops a
  node removed from the scene (qMRMLNodeComboBox), ``ctkDirectoryButton.directory`` emits
  ``directoryChanged(QString)``;
* ``ctkPathLineEdit`` emits ``currentPathChanged(QString)`` only for text matching its name filters and
  ``validInputChanged(bool)`` when that changes (CTK Libs/Widgets/ctkPathLineEdit.cpp updateHasValidInput);
* the segment editor widget refuses a source volume before it has a segmentation and logs the error that
  vtkSlicerSegmentEditorLogic::SetSourceVolumeNode logs (Slicer 5.10);
* the parameter node is built from the module's ``HER2RadiomicsParameterNode`` declaration; ``connectGui``
  binds the widgets that carry ``SlicerParameterName``, writes every bound widget on every ModifiedEvent and
  reads a widget back when it emits its change signal, as Slicer's parameterNodeWrapper does
  (Base/Python/slicer/parameterNodeWrapper/wrapper.py _connectParametersToGui / _updateGUIFromParameterNode,
  guiConnectors.py); a widget/type pair Slicer has no connector for raises, as in Slicer. After a scene close
  the module's singleton parameter node comes back with its defaults (vtkMRMLScene::Clear resets singletons).
* ``QLabel`` shows text or a pixmap (``setPixmap`` / ``clear``), ``qt.QPixmap(fileName)`` reads the file when
  constructed (qtbase qlabel.cpp, qpixmap.cpp);
* the modules slicer-core does not have and the module file imports: ``qt`` (QTimer, QIcon, QShortcut,
  QKeySequence, QPixmap), ``slicer.ScriptedLoadableModule`` (the four base classes, constructed as in
  Base/Python/slicer/ScriptedLoadableModule.py), ``slicer.parameterNodeWrapper`` (the decorator; the wrapper's
  behaviour is ``FakeParameterNode``'s) and ``slicer.i18n`` (``tr`` returns the text untranslated), installed by
  :func:`install_module_fakes` (conftest's ``slicer_module`` fixture, and :class:`Panel`);
* ``slicer.app`` (version, testing mode, cursor), ``confirmOkCancelDisplay`` (answers and records the
  question), ``errorDisplay`` (records), ``slicer.util.pip_install`` as Slicer 5.10 has it and
  ``slicer.packaging.pip_ensure`` as Slicer 5.12 has it, both installing with pip into a temporary target.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import logging
import pathlib
import re
import subprocess
import sys
import types
import typing
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

import slicer

REPO = Path(__file__).resolve().parents[2]
UI_FILE = REPO / "Resources" / "UI" / "HER2Radiomics.ui"


def _call_slot(slot, args):
    """Call ``slot`` with as many of ``args`` as it takes (PythonQt drops the signal arguments a slot cannot take)."""
    try:
        sig = inspect.signature(slot)
    except (TypeError, ValueError):
        return slot(*args)
    params = list(sig.parameters.values())
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return slot(*args)
    n = sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty)
    return slot(*args[:n])


# What each widget class of the .ui offers, as declared in Qt, CTK and Slicer (Slicer/Slicer 583e9b37d50e, tags
# v5.10.0 / v5.12.x; CTK 868d56c72d28; file:line of each in docs/developer/slicer_api_check.md). The fakes refuse
# anything else, so a panel calling a method its widget does not have fails the test that drives that code.
_BUTTON = {"text", "checked"}                                           # QAbstractButton properties
WIDGET_API: dict[str, set[str]] = {
    "QWidget": {"enabled", "toolTip"},                                  # QWidget properties, every class below
    "QLabel": {"text", "setPixmap", "clear"},                           # qlabel.h: property text, slots setPixmap, clear
    "QLineEdit": {"text"},
    "QCheckBox": _BUTTON,
    "QPushButton": _BUTTON,
    "QToolButton": _BUTTON,
    "QProgressBar": {"value", "setRange"},
    "QSpinBox": {"value", "minimum", "maximum", "setRange"},            # QSpinBox properties + setRange (qspinbox.h)
    "QPlainTextEdit": {"setPlainText"},
    "QListWidget": {"clear", "addItems", "setCurrentRow"},
    "QVBoxLayout": {"addWidget"},
    "ctkCollapsibleButton": {"text", "collapsed"},                      # CTK Libs/Widgets/ctkCollapsibleButton.h
    "ctkPathLineEdit": {"currentPath"},                                 # CTK Libs/Widgets/ctkPathLineEdit.h
    "ctkDirectoryButton": {"directory"},                                # CTK Libs/Widgets/ctkDirectoryButton.h
    "qMRMLWidget": {"setMRMLScene"},                                    # Libs/MRML/Widgets/qMRMLWidget.h
    "qMRMLNodeComboBox": {"setMRMLScene", "currentNode", "setCurrentNode"},
    "qMRMLTableView": {"setMRMLScene", "setMRMLTableNode"},             # Libs/MRML/Widgets/qMRMLTableView.h
    "qMRMLPlotWidget": {"setMRMLScene", "setMRMLPlotViewNode"},         # Libs/MRML/Widgets/qMRMLPlotWidget.h
    "qMRMLSegmentEditorWidget": {                                       # Modules/Loadable/Segmentations/Widgets/
        "setMRMLScene", "setMRMLSegmentEditorNode", "setSegmentationNode", "setSourceVolumeNode",  # qMRMLSegmentEditorWidget.h
        "setCurrentSegmentID", "setActiveEffectByName", "setActiveEffect", "saveStateForUndo", "undo", "redo",
        "setupViewObservations", "removeViewObservations", "segmentationNode", "sourceVolumeNode"},
}
#: the signals each class emits that the module or the parameter node connects to
WIDGET_SIGNALS: dict[str, set[str]] = {
    "QPushButton": {"clicked(bool)", "toggled(bool)"},
    "QToolButton": {"clicked(bool)", "toggled(bool)"},
    "QCheckBox": {"clicked(bool)", "toggled(bool)"},
    "QLineEdit": {"textChanged(QString)"},
    "QListWidget": {"currentRowChanged(int)"},
    "QSpinBox": {"valueChanged(int)"},
    "qMRMLNodeComboBox": {"currentNodeChanged(vtkMRMLNode*)"},
    "ctkPathLineEdit": {"currentPathChanged(QString)", "validInputChanged(bool)"},
    "ctkDirectoryButton": {"directoryChanged(QString)"},
}
#: the properties among them (read and written as attributes); the rest are methods
WIDGET_PROPERTIES = {"enabled", "toolTip", "text", "checked", "value", "collapsed", "currentPath", "directory",
                     "minimum", "maximum"}
_DEFAULTS = {"text": "", "enabled": True, "value": 0, "collapsed": True, "toolTip": "", "checked": False}


def widget_api(cls: str) -> set[str]:
    return WIDGET_API["QWidget"] | WIDGET_API.get(cls, set())


class FakeWidget:
    """Any widget: recorded calls, signals, the .ui properties; only the API its class has (:data:`WIDGET_API`)."""

    def __init__(self, name: str, cls: str, props: dict | None = None) -> None:
        self.__dict__.update(name=name, cls=cls, props=dict(props or {}), calls=[], slots={})

    def _refuse(self, attr: str) -> AttributeError:
        return AttributeError(f"{self.cls} {self.name} has no '{attr}' (not in the API of {self.cls} read in "
                              "Qt's / CTK's / Slicer's source: slicer_fakes.WIDGET_API)")

    def connect(self, signal, slot):
        if signal not in WIDGET_SIGNALS.get(self.cls, set()):
            raise AttributeError(f"{self.cls} {self.name} has no signal {signal} (slicer_fakes.WIDGET_SIGNALS)")
        self.slots.setdefault(signal, []).append(slot)

    def disconnect(self, signal, slot):
        if slot in self.slots.get(signal, []):
            self.slots[signal].remove(slot)

    def emit(self, signal, *args):
        for slot in list(self.slots.get(signal, [])):
            _call_slot(slot, args)

    def click(self):
        self.emit("clicked(bool)", False)

    def property(self, name):
        return self.props.get(name)

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        if attr not in widget_api(self.cls):
            raise self._refuse(attr)
        if attr in WIDGET_PROPERTIES:
            return _DEFAULTS.get(attr)

        def record(*args, **kwargs):
            self.calls.append((attr, args))

        return record

    def __setattr__(self, name, value):
        if not name.startswith("_") and (name not in WIDGET_PROPERTIES or name not in widget_api(self.cls)):
            raise self._refuse(name)
        object.__setattr__(self, name, value)


class FakeLabel(FakeWidget):
    """QLabel: shows text or a pixmap, never both. ``setPixmap`` and a new ``text`` clear the previous content,
    ``clear()`` clears both (Qt qtbase src/widgets/widgets/qlabel.cpp: QLabel::setText / setPixmap / clear call
    clearContents; "Setting the pixmap clears any previous content"). ``shownPixmap`` is the test's view of
    it (Qt's own ``pixmap()`` differs between Qt 5 and 6, so the module does not read it)."""

    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self.__dict__["shownPixmap"] = None

    def setPixmap(self, pixmap) -> None:
        self.calls.append(("setPixmap", (pixmap,)))
        self.__dict__.update(shownPixmap=pixmap, text="")

    def clear(self) -> None:
        self.calls.append(("clear", ()))
        self.__dict__.update(shownPixmap=None, text="")

    def __setattr__(self, name, value):
        old = self.__dict__.get(name)
        FakeWidget.__setattr__(self, name, value)
        if name == "text" and value != old:  # QLabel::setText returns early for the same text
            self.__dict__["shownPixmap"] = None


class FakePixmap:
    """``qt.QPixmap(fileName)``: reads the file when constructed (QPixmap::QPixmap(const QString &fileName, ...)
    calls load(), qtbase src/gui/image/qpixmap.cpp); a missing file or one that is no image gives a null pixmap
    (``isNull()``); ``width()`` / ``height()`` in pixels. Read here with pillow (bundled with Slicer too)."""

    def __init__(self, fileName: str | None = None) -> None:
        self.fileName, self._size, self.format = fileName, None, None
        if fileName:
            from PIL import Image

            try:
                with Image.open(fileName) as im:
                    im.load()
                    self._size, self.format = im.size, im.format
            except (OSError, ValueError):
                pass

    def isNull(self) -> bool:
        return self._size is None

    def width(self) -> int:
        return self._size[0] if self._size else 0

    def height(self) -> int:
        return self._size[1] if self._size else 0


class FakeLineEdit(FakeWidget):
    def __setattr__(self, name, value):
        old = self.__dict__.get(name)
        FakeWidget.__setattr__(self, name, value)
        if name == "text" and value != old:
            self.emit("textChanged(QString)", value)


class FakeCheckBox(FakeWidget):
    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self.__dict__["checked"] = str(self.props.get("checked", "false")).lower() == "true"

    def __setattr__(self, name, value):
        old = self.__dict__.get(name)
        FakeWidget.__setattr__(self, name, value)
        if name == "checked" and bool(value) != bool(old):
            self.emit("toggled(bool)", bool(value))


class FakeNodeComboBox(FakeWidget):
    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self.__dict__.update(_node=None, _scene=None, _tag=None)

    def setMRMLScene(self, scene):
        self.calls.append(("setMRMLScene", (scene,)))
        self._scene = scene
        self._tag = scene.AddObserver(scene.NodeRemovedEvent, self._onNodeRemoved)

    def _onNodeRemoved(self, caller, event):
        if self._node is not None and self._scene is not None and self._scene.GetNodeByID(self._node.GetID() or "") is None:
            self.setCurrentNode(None)

    def currentNode(self):
        return self._node

    def setCurrentNode(self, node):
        if node is not self._node:
            self._node = node
            self.emit("currentNodeChanged(vtkMRMLNode*)", node)


class FakeSpinBox(FakeWidget):
    """QSpinBox: value kept inside [minimum, maximum] (setRange and the setters clamp, as Qt's does); a changed
    value emits valueChanged(int)."""

    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        lo, hi = int(self.props.get("minimum") or 0), int(self.props.get("maximum") or 99)
        self.__dict__.update(minimum=lo, maximum=hi, value=min(max(int(self.props.get("value") or 0), lo), hi))

    def setRange(self, lo, hi):
        self.calls.append(("setRange", (lo, hi)))
        self.__dict__.update(minimum=int(lo), maximum=max(int(lo), int(hi)))
        self.value = self.value

    def __setattr__(self, name, value):
        if name == "value":
            value = min(max(int(value), self.minimum), self.maximum)
            changed = value != self.__dict__.get("value")
            object.__setattr__(self, name, value)
            if changed:
                self.emit("valueChanged(int)", value)
            return
        super().__setattr__(name, value)


class FakePathLineEdit(FakeWidget):
    """ctkPathLineEdit: currentPathChanged only for text its name filters accept; validInputChanged on change."""

    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        filters = self.props.get("nameFilters") or []
        pats = [p for f in filters for p in (re.findall(r"\(([^)]*)\)", f) or [f])]
        self.__dict__.update(patterns=[p for pat in pats for p in pat.split()], _valid=False, currentPath="")

    def accepts(self, text: str) -> bool:
        return bool(text) and any(fnmatch.fnmatch(text, p) for p in self.patterns)

    def __setattr__(self, name, value):
        FakeWidget.__setattr__(self, name, value)
        if name == "currentPath":
            valid = self.accepts(str(value))
            if valid:
                self.emit("currentPathChanged(QString)", str(value))
            if valid != self._valid:
                self.__dict__["_valid"] = valid
                self.emit("validInputChanged(bool)", valid)


class FakeDirectoryButton(FakeWidget):
    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self.__dict__["directory"] = ""

    def __setattr__(self, name, value):
        old = self.__dict__.get(name)
        FakeWidget.__setattr__(self, name, value)
        if name == "directory" and value != old:
            self.emit("directoryChanged(QString)", value)


#: qMRMLSegmentEditorWidget's master -> source names (renamed in Slicer 5.1): the old ones still work but each
#: use logs "... is deprecated" (Modules/Loadable/Segmentations/Widgets/qMRMLSegmentEditorWidget.h)
EDITOR_DEPRECATED = {
    "masterVolumeNode": "sourceVolumeNode", "masterVolumeNodeID": "sourceVolumeNodeID",
    "setMasterVolumeNode": "setSourceVolumeNode", "setMasterVolumeNodeID": "setSourceVolumeNodeID",
    "masterVolumeNodeSelectorVisible": "sourceVolumeNodeSelectorVisible",
    "setMasterVolumeNodeSelectorVisible": "setSourceVolumeNodeSelectorVisible",
    "autoShowMasterVolumeNode": "autoShowSourceVolumeNode", "setAutoShowMasterVolumeNode": "setAutoShowSourceVolumeNode",
    "showMasterVolumeInSliceViewers": "showSourceVolumeInSliceViewers",
    "toggleMasterVolumeIntensityMaskEnabled": "toggleSourceVolumeIntensityMaskEnabled",
}


class FakeSegmentEditorWidget(FakeWidget):
    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self.__dict__.update(_seg=None, _source=None, errors=[], deprecated=[])
        for prop in self.props:  # the .ui sets its properties when it is loaded
            if prop in EDITOR_DEPRECATED:
                self._deprecated(prop)

    def _deprecated(self, name: str) -> None:
        self.deprecated.append(f"qMRMLSegmentEditorWidget::{name} is deprecated, use {EDITOR_DEPRECATED[name]} instead")

    def __getattr__(self, attr):
        if attr in EDITOR_DEPRECATED:
            self._deprecated(attr)
            target = EDITOR_DEPRECATED[attr]
            if hasattr(type(self), target):
                return getattr(self, target)
            return lambda *args: self.calls.append((target, args))
        return FakeWidget.__getattr__(self, attr)

    def __setattr__(self, name, value):
        if name in EDITOR_DEPRECATED:
            self._deprecated(name)
            object.__setattr__(self, name, value)
        else:
            FakeWidget.__setattr__(self, name, value)

    def segmentationNode(self):
        return self._seg

    def sourceVolumeNode(self):
        return self._source

    def setSegmentationNode(self, node):
        self.calls.append(("setSegmentationNode", (node,)))
        self._seg = node

    def setSourceVolumeNode(self, node):
        self.calls.append(("setSourceVolumeNode", (node,)))
        if self._seg is None:
            if node is not None:  # vtkSlicerSegmentEditorLogic::SetSourceVolumeNode
                self.errors.append("SetSourceVolumeNode: need to set segment editor and segmentation nodes first")
            return
        self._source = node


WIDGET_CLASSES = {
    "QLabel": FakeLabel,
    "QLineEdit": FakeLineEdit,
    "QCheckBox": FakeCheckBox,
    "QSpinBox": FakeSpinBox,
    "qMRMLNodeComboBox": FakeNodeComboBox,
    "ctkPathLineEdit": FakePathLineEdit,
    "ctkDirectoryButton": FakeDirectoryButton,
    "qMRMLSegmentEditorWidget": FakeSegmentEditorWidget,
}


def _props(w: ET.Element) -> dict:
    out = {}
    for p in w.findall("property"):
        child = list(p)[0] if len(p) else None
        if child is None:
            continue
        if child.tag == "stringlist":
            out[p.get("name")] = [s.text or "" for s in child.iter("string")]
        else:
            out[p.get("name")] = child.text
    return out


def load_ui(path: Path = UI_FILE) -> types.SimpleNamespace:
    root = ET.parse(path).getroot()
    widgets = {}
    for w in root.iter("widget"):
        cls = w.get("class")
        widgets[w.get("name")] = WIDGET_CLASSES.get(cls, FakeWidget)(w.get("name"), cls, _props(w))
    return types.SimpleNamespace(**widgets)


class FakeTimer:
    def __init__(self) -> None:
        self.active, self.slot = False, None

    def setInterval(self, ms):
        pass

    def connect(self, signal, slot):
        self.slot = slot

    def start(self):
        self.active = True

    def stop(self):
        self.active = False


class FakeShortcut:
    """qt.QShortcut: the key sequence, its parent, and activated() -> the connected slots (``made``: every one made)."""

    made: list[FakeShortcut] = []

    def __init__(self, keys, parent) -> None:
        self.keys, self.parent, self.slots = keys, parent, []
        FakeShortcut.made.append(self)

    def connect(self, signal, slot):
        assert signal == "activated()"
        self.slots.append(slot)

    def activate(self):
        for slot in self.slots:
            slot()


# ------------------------------------------------------------------------------------------------ modules
class FakeScriptedLoadableModule:
    """slicer.ScriptedLoadableModule.ScriptedLoadableModule: the module keeps its ``parent`` (the application's
    module object, whose title / categories / helpText the module sets)."""

    def __init__(self, parent) -> None:
        self.parent = parent


class FakeScriptedLoadableModuleWidget:
    """...ScriptedLoadableModuleWidget: ``parent`` and ``moduleName`` (the class name without 'Widget'); ``setup``
    builds nothing here (Slicer's adds the Reload & Test section; the test gives the widget its ``layout``)."""

    def __init__(self, parent=None) -> None:
        self.moduleName = type(self).__name__.removesuffix("Widget")
        self.parent = parent

    def setup(self) -> None:
        pass

    def cleanup(self) -> None:
        pass


class FakeScriptedLoadableModuleLogic:
    """...ScriptedLoadableModuleLogic: ``getParameterNode`` returns the scene's singleton vtkMRMLScriptedModuleNode
    tagged with the module name (the class name without 'Logic'), created when absent, as Slicer's does."""

    def __init__(self, parent=None) -> None:
        self.moduleName = type(self).__name__.removesuffix("Logic")
        self.isSingletonParameterNode = True

    def getParameterNode(self):
        scene = slicer.mrmlScene
        node = scene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
        if node is None:
            node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
            node.SetSingletonTag(self.moduleName)
            node.SetAttribute("ModuleName", self.moduleName)
        return node


class FakeScriptedLoadableModuleTest(unittest.TestCase):
    """...ScriptedLoadableModuleTest: a TestCase whose ``delayDisplay`` logs the message (no pause, no dialog)."""

    def delayDisplay(self, message, requestedDelay=None, msec=None):
        logging.info(message)


def module_fakes() -> dict[str, types.ModuleType]:
    """The modules ``HER2Radiomics.py`` imports that slicer-core lacks, by their import name."""
    qt = types.ModuleType("qt")
    qt.QTimer, qt.QShortcut, qt.QPixmap = FakeTimer, FakeShortcut, FakePixmap
    qt.Qt = types.SimpleNamespace(WaitCursor=0)
    qt.QIcon = lambda path: ("icon", path)
    qt.QKeySequence = lambda keys: keys
    slm = types.ModuleType("slicer.ScriptedLoadableModule")
    slm.ScriptedLoadableModule = FakeScriptedLoadableModule
    slm.ScriptedLoadableModuleWidget = FakeScriptedLoadableModuleWidget
    slm.ScriptedLoadableModuleLogic = FakeScriptedLoadableModuleLogic
    slm.ScriptedLoadableModuleTest = FakeScriptedLoadableModuleTest
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper = lambda cls: cls  # the declaration stays readable: FakeParameterNode builds on it
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    return {"qt": qt, slm.__name__: slm, wrapper.__name__: wrapper, i18n.__name__: i18n}


def install_module_fakes(monkeypatch=None) -> dict[str, types.ModuleType]:
    """Put :func:`module_fakes` into ``sys.modules`` (and onto the ``slicer`` package), undone by ``monkeypatch``
    at the end of the test; without one (a subprocess that only imports the module) they stay."""
    mods = module_fakes()
    for name, mod in mods.items():
        attr = name.split(".", 1)[1] if name.startswith("slicer.") else None
        if monkeypatch is not None:
            monkeypatch.setitem(sys.modules, name, mod)
            if attr:
                monkeypatch.setattr(slicer, attr, mod, raising=False)
        else:
            sys.modules[name] = mod
            if attr:
                setattr(slicer, attr, mod)
    return mods


# ------------------------------------------------------------------------------------------------ parameter node
class _Connector:
    """One of Slicer's GUI connectors (guiConnectors.py): which widget class represents which type, how."""

    def __init__(self, widget, typ) -> None:
        self.widget, self.typ = widget, typ
        cls = widget.cls
        node_type = isinstance(typ, type) and issubclass(typ, slicer.vtkMRMLNode)
        path_type = typ in (pathlib.Path, pathlib.PosixPath, pathlib.WindowsPath, pathlib.PurePath)
        table = {
            ("qMRMLNodeComboBox", "node"): ("currentNodeChanged(vtkMRMLNode*)", lambda w: w.currentNode(), lambda w, v: w.setCurrentNode(v)),
            ("QLineEdit", str): ("textChanged(QString)", lambda w: w.text, lambda w, v: setattr(w, "text", v)),
            ("QCheckBox", bool): ("toggled(bool)", lambda w: bool(w.checked), lambda w, v: setattr(w, "checked", bool(v))),
            ("ctkPathLineEdit", "path"): ("currentPathChanged(QString)", lambda w: typ(w.currentPath), lambda w, v: setattr(w, "currentPath", str(v))),
            ("ctkDirectoryButton", "path"): ("directoryChanged(QString)", lambda w: typ(w.directory), lambda w, v: setattr(w, "directory", str(v))),
        }
        key = (cls, "node" if node_type else "path" if path_type else typ)
        if key not in table:  # Slicer: "Unable to create GUI connector from widget ... to type ..."
            raise RuntimeError(f"Unable to create GUI connector from {cls} {widget.name} to {typ}")
        self.signal, self.read, self._write = table[key]

    def write(self, value):
        self._write(self.widget, value)


class FakeParameterNode:
    """The module's parameterNodeWrapper class, as Slicer builds it, over a dict instead of a scripted module node."""

    def __init__(self, spec_cls, module_globals) -> None:
        hints = typing.get_type_hints(spec_cls, globalns=module_globals)
        defaults = {}
        for name, typ in hints.items():
            if hasattr(spec_cls, name):
                defaults[name] = getattr(spec_cls, name)
            elif isinstance(typ, type) and issubclass(typ, slicer.vtkMRMLNode):
                defaults[name] = None
            else:
                defaults[name] = typ()  # Slicer's default default: pathlib.Path() -> '.', str -> '', bool -> False
        self.__dict__.update(_hints=hints, _defaults=defaults, _values=dict(defaults), _observers={}, _next=1,
                             _guis={}, _updating=False, modified_count=0)

    def __getattr__(self, name):
        values = self.__dict__.get("_values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    def __setattr__(self, name, value):
        if name not in self._values:
            raise AttributeError(f"{name} is not a parameter of the module's parameter node")
        typ = self._hints[name]
        if value is not None and not (isinstance(typ, type) and issubclass(typ, slicer.vtkMRMLNode)) and typ is not typing.Any:
            value = typ(value)  # the serializer stores the declared type
        if self._values[name] == value and (not isinstance(value, slicer.vtkMRMLNode) or self._values[name] is value):
            return  # vtkMRMLScriptedModuleNode::SetParameter does not fire for an unchanged value
        self._values[name] = value
        self.Modified()

    def Modified(self):
        self.__dict__["modified_count"] += 1
        for tag in sorted(self._observers):
            if tag in self._observers:
                self._observers[tag](self, "ModifiedEvent")

    def reset(self) -> None:
        """vtkMRMLScene::Clear on a singleton: back to its defaults."""
        self._values.update(self._defaults)
        self.Modified()

    def AddObserver(self, event, method, priority=0.0):
        tag = self._next
        self.__dict__["_next"] = tag + 1
        self._observers[tag] = method
        return tag

    def RemoveObserver(self, tag):
        self._observers.pop(tag, None)

    # connectGui / disconnectGui as in parameterNodeWrapper/wrapper.py
    def connectGui(self, ui):
        mapping = {}
        for widget in vars(ui).values():
            name = widget.property("SlicerParameterName")
            if name:
                if name not in self._values:
                    raise ValueError(f"Cannot find parameter {name}")
                mapping[name] = _Connector(widget, self._hints[name])
        tag = self._next
        self.__dict__["_next"] = tag + 1
        self._guis[tag] = mapping
        for param, conn in mapping.items():
            conn.write(self._values[param])
            conn.widget.connect(conn.signal, self._gui_to_param(tag, param, conn))
        self.AddObserver("ModifiedEvent", lambda caller, event: self._update_gui())
        return tag

    def _gui_to_param(self, tag, param, conn):
        def callback(*args):
            if tag in self._guis and not self._updating:
                setattr(self, param, conn.read(conn.widget))
        return callback

    def _update_gui(self):
        if self._updating:
            return
        self.__dict__["_updating"] = True
        try:
            for mapping in list(self._guis.values()):
                for param, conn in mapping.items():
                    conn.write(self._values[param])
        finally:
            self.__dict__["_updating"] = False

    def disconnectGui(self, tag):
        self._guis.pop(tag, None)


# ------------------------------------------------------------------------------------------------ installers
def pip_into(target: Path, args: list[str]) -> None:
    """``python -m pip install --target TARGET ARGS`` (what Slicer's pip does, but into a temporary folder)."""
    target.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet",
           "--target", str(target), *args]
    proc = subprocess.run(cmd, capture_output=True, encoding="utf-8", timeout=900)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout, proc.stderr)
    if str(target) not in sys.path:
        sys.path.insert(0, str(target))
    importlib.invalidate_caches()


def slicer_510_pip_install(target: Path, log: list):
    """Slicer 5.10's ``slicer.util.pip_install(requirements)``: a string or a list of pip arguments
    (Base/Python/slicer/util.py v5.10.0)."""

    def pip_install(requirements):
        if type(requirements) is str:
            import shlex

            args = shlex.split(requirements)
        elif type(requirements) is list:
            args = list(requirements)
        else:
            raise ValueError("pip_install requirement input must be string or list")
        log.append(("pip_install", args))
        pip_into(target, args)

    return pip_install


def slicer_512_packaging(target: Path, log: list, testing: bool):
    """Slicer 5.12's ``slicer.packaging`` module with ``pip_ensure`` (Base/Python/slicer/packaging.py v5.12.x):
    same signature; skips in testing mode when ``skip_in_testing``; ``-c constraints`` passed to pip."""

    def pip_ensure(requirements, constraints=None, skip_packages=None, prompt_install=True, prompt_restart=True,
                   requester=None, skip_in_testing=True, show_progress=True):
        reqs = requirements.split() if isinstance(requirements, str) else [str(r) for r in requirements]
        log.append(("pip_ensure", reqs, {"constraints": constraints, "prompt_install": prompt_install,
                                         "requester": requester, "skip_in_testing": skip_in_testing}))
        if skip_in_testing and testing:
            return None
        if prompt_install:
            raise AssertionError("the module asks itself; pip_ensure must not prompt a second time")
        pip_into(target, [*(["-c", str(constraints)] if constraints else []), *reqs])
        return None

    mod = types.ModuleType("slicer.packaging")
    mod.pip_ensure = pip_ensure
    return mod


# ------------------------------------------------------------------------------------------------ the panel
class Panel:
    """The module's widget set up on the fakes, in a Slicer of ``version`` ('5.10.x' or '5.12.x').

    ``installer``: '5.10' (``slicer.util.pip_install``, no ``slicer.packaging``) or '5.12' (``pip_ensure``);
    packages go to ``target`` (added to sys.path). ``answer``: what the user answers to the dependency prompt.
    """

    def __init__(self, scene_ctx, monkeypatch, *, version: str = "5.12.3", testing: bool = True,
                 target: Path | None = None, answer: bool = True) -> None:
        self.scene_ctx, self.scene = scene_ctx, scene_ctx.scene
        self.questions: list[str] = []
        self.errors: list[str] = []
        self.status: list[str] = []
        self.installs: list = []
        self.answer = answer
        self.ui = load_ui()
        major, minor = (int(x) for x in version.split(".")[:2])
        self.app = types.SimpleNamespace(
            testingEnabled=lambda: testing, setOverrideCursor=lambda c: None, restoreOverrideCursor=lambda: None,
            processEvents=lambda: None, applicationLogic=lambda: scene_ctx.app_logic, topLevelWidgets=lambda: [],
            applicationVersion=version, repositoryRevision="fake", majorVersion=major, minorVersion=minor)
        fake_qt = install_module_fakes(monkeypatch)["qt"]
        monkeypatch.setattr(slicer, "app", self.app, raising=False)
        monkeypatch.setattr(slicer.util, "loadUI", lambda path: FakeWidget("HER2Radiomics", "qMRMLWidget"))
        monkeypatch.setattr(slicer.util, "childWidgetVariables", lambda w: self.ui)
        monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", self._confirm, raising=False)
        monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **kw: self.errors.append(str(text)), raising=False)
        monkeypatch.setattr(slicer.util, "showStatusMessage", lambda text, *a: self.status.append(text), raising=False)
        self.target = target
        if major == 5 and minor < 12:  # 5.10: no slicer.packaging
            monkeypatch.delitem(sys.modules, "slicer.packaging", raising=False)
            monkeypatch.delattr(slicer, "packaging", raising=False)
            monkeypatch.setattr(slicer.util, "pip_install", slicer_510_pip_install(target or Path("/nonexistent"), self.installs))
        else:
            packaging = slicer_512_packaging(target or Path("/nonexistent"), self.installs, testing)
            monkeypatch.setitem(sys.modules, "slicer.packaging", packaging)
            monkeypatch.setattr(slicer, "packaging", packaging, raising=False)
            monkeypatch.setattr(slicer.util, "pip_install", lambda *a, **k: pytest_fail("5.12 must use pip_ensure"))
        self.module = importlib.import_module("HER2Radiomics")
        monkeypatch.setattr(self.module, "qt", fake_qt)  # a module imported by an earlier test keeps its own qt
        self._pn = None
        monkeypatch.setattr(self.module.HER2RadiomicsLogic, "getParameterNode", lambda logic: self.parameter_node())
        self._sceneTag = self.scene.AddObserver(self.scene.EndCloseEvent, self._reset_singleton, 10.0)  # first
        self.widget = self.module.HER2RadiomicsWidget()
        self.widget.layout = FakeWidget("layout", "QVBoxLayout")
        self.widget.parent = types.SimpleNamespace(isEntered=True)

    def _confirm(self, text, *args, **kwargs):
        self.questions.append(str(text))
        return self.answer

    def parameter_node(self) -> FakeParameterNode:
        """The module's singleton parameter node (kept across getParameterNode calls, reset by a scene close)."""
        if self._pn is None:
            self._pn = FakeParameterNode(self.module.HER2RadiomicsParameterNode, vars(self.module))
        return self._pn

    def _reset_singleton(self, caller, event):
        if self._pn is not None:
            self._pn.reset()

    @property
    def pn(self) -> FakeParameterNode:
        return self.parameter_node()

    def start(self) -> Panel:
        self.widget.setup()
        self.widget.enter()
        return self

    def close_scene(self) -> None:
        """File > Close scene: vtkMRMLScene::Clear(0) fires StartCloseEvent / EndCloseEvent."""
        self.scene.Clear(False)

    def wait_job(self, timeout: float = 300.0) -> None:
        """Let the panel's QTimer poll the background job until it has finished."""
        import time

        deadline = time.monotonic() + timeout
        while self.widget._timer.active and time.monotonic() < deadline:
            self.widget.onPollJob()
            time.sleep(0.05)
        assert not self.widget._timer.active, "the background extraction did not finish in time"

    def cleanup(self) -> None:
        """Cancel a running job and drop every observer (the scene outlives the panel in the fixtures)."""
        self.widget.cleanup()
        self.scene.RemoveObserver(self._sceneTag)


def pytest_fail(message: str):
    import pytest

    pytest.fail(message)
