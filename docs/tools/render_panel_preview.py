"""Render a layout preview of the HER2Radiomics module panel without 3D Slicer.

Usage (from the repository root)::

    pip install -e ".[docs]"
    python docs/tools/render_panel_preview.py            # writes docs/figures/slicer_panel.png

The panel is described by ``Resources/UI/HER2Radiomics.ui``. Outside Slicer its Slicer/CTK widgets
(``ctkCollapsibleButton``, ``qMRMLNodeComboBox``, ``qMRMLSegmentEditorWidget``...) cannot be created, so this
script rewrites a copy of the .ui XML in memory, replacing each of them by a plain Qt stand-in (collapsible
sections become expanded group boxes, node selectors combo boxes showing a plausible node name, the Segment
Editor and the plot a framed placeholder, table views tables with the column headers the module fills in),
keeps every real Qt widget and layout, loads the result with PySide6's ``QUiLoader`` on the offscreen
platform and saves a PNG with an honest caption at its top. The .ui file and the module are not modified.
Parameter-node defaults (``HER2Radiomics.py``) and table columns (``HER2RadiomicsLib/logic.py``,
``her2radiomics/prediction.py``) are read from the sources with ``ast``, so the preview follows the code.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

try:
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QFont
    from PySide6.QtUiTools import QUiLoader
    from PySide6.QtWidgets import (
        QApplication,
        QHBoxLayout,
        QHeaderView,
        QLabel,
        QTableWidget,
        QVBoxLayout,
        QWidget,
    )
except ImportError:
    sys.exit('error: PySide6 is missing; run `pip install -e ".[docs]"` (or `pip install PySide6-Essentials`) first')

ROOT = Path(__file__).resolve().parents[2]
UI_PATH = ROOT / "Resources" / "UI" / "HER2Radiomics.ui"
MODULE_PATH = ROOT / "HER2Radiomics" / "HER2Radiomics.py"
LOGIC_PATH = ROOT / "HER2Radiomics" / "HER2RadiomicsLib" / "logic.py"
PREDICTION_PATH = ROOT / "HER2Radiomics" / "her2radiomics" / "prediction.py"
DEFAULT_OUT = ROOT / "docs" / "figures" / "slicer_panel.png"
CAPTION = "Layout preview rendered from HER2Radiomics.ui outside Slicer; Slicer widgets shown as stand-ins"

#: plausible node names shown by the node selectors (the segmentation name follows logic.setupSegmentation)
NODE_NAMES = {
    "vtkMRMLScalarVolumeNode": "phantom_001 DCE phase 2",
    "vtkMRMLSegmentationNode": "phantom_001 DCE phase 2 HER2 segments",
}
#: properties kept on a stand-in (all others belong to the Slicer class and would not apply)
COMMON_PROPERTIES = {"toolTip", "minimumSize", "maximumSize", "geometry", "sizePolicy", "enabled"}
FRAME_STYLE = "border: 1px solid #8a8a8a; background: #f3f3f3; color: #444;"
SPIN_BOXES = {"ctkDoubleSpinBox", "ctkSpinBox", "qMRMLSpinBox", "ctkSliderWidget", "ctkRangeWidget"}


def _module_constants(path: Path, names: set[str]) -> dict[str, object]:
    """Literal module-level constants of a source file, read with ``ast`` (nothing is imported)."""
    found: dict[str, object] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in names:
                found[name] = ast.literal_eval(node.value)
    return found


def _parameter_defaults(path: Path) -> dict[str, object]:
    """Literal defaults of the module's parameter node (``HER2RadiomicsParameterNode``)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ClassDef) and node.name.endswith("ParameterNode"):
            return {
                item.target.id: ast.literal_eval(item.value)
                for item in node.body
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value is not None
            }
    return {}


def table_columns() -> dict[str, tuple[str, ...]]:
    """Column headers the module writes into each table view (see ``HER2RadiomicsLib/logic.py``)."""
    logic = _module_constants(LOGIC_PATH, {"REGION_STAT_COLUMNS", "FEATURE_COLUMNS"})
    prediction = _module_constants(PREDICTION_PATH, {"CONTRIBUTION_COLUMNS"})
    # logic.predict adds a readable "label" column to the core's contributions table
    contributions = tuple(prediction.get("CONTRIBUTION_COLUMNS", ())) + ("label",)
    return {
        "featuresTableView": tuple(logic.get("FEATURE_COLUMNS", ())),
        "contributionsTableView": contributions,
        "regionStatsTableView": tuple(logic.get("REGION_STAT_COLUMNS", ())),
    }


# ------------------------------------------------------------------------------------------------
# XML rewriting
# ------------------------------------------------------------------------------------------------
def _prop(name: str, kind: str, value: str, **attrs: str) -> ET.Element:
    """A ``<property name=...><kind>value</kind></property>`` element."""
    prop = ET.Element("property", {"name": name, **attrs})
    ET.SubElement(prop, kind).text = value
    return prop


def _size_prop(name: str, width: int, height: int) -> ET.Element:
    prop = ET.Element("property", {"name": name})
    size = ET.SubElement(prop, "size")
    ET.SubElement(size, "width").text = str(width)
    ET.SubElement(size, "height").text = str(height)
    return prop


def _get(widget: ET.Element, name: str) -> ET.Element | None:
    return next((p for p in widget.findall("property") if p.get("name") == name), None)


def _string(widget: ET.Element, name: str) -> str:
    prop = _get(widget, name)
    node = prop.find("string") if prop is not None else None
    return (node.text or "") if node is not None else ""


def _strip_to(widget: ET.Element, keep: set[str]) -> None:
    """Remove the properties a stand-in does not have (layouts and child widgets are kept)."""
    for prop in list(widget.findall("property")):
        if prop.get("name") not in keep:
            widget.remove(prop)


def _framed_label(widget: ET.Element, text: str, min_height: int) -> None:
    """Turn ``widget`` into a framed, centred placeholder QLabel at least ``min_height`` px tall."""
    min_prop = _get(widget, "minimumSize")
    height = int(min_prop.findtext("size/height") or 0) if min_prop is not None else 0
    _strip_to(widget, COMMON_PROPERTIES - {"minimumSize"})
    widget.set("class", "QLabel")
    widget.append(_size_prop("minimumSize", 0, max(height, min_height)))
    widget.append(_prop("text", "string", text))
    widget.append(_prop("alignment", "set", "Qt::AlignCenter"))
    widget.append(_prop("wordWrap", "bool", "true"))
    widget.append(_prop("styleSheet", "string", FRAME_STYLE))


def substitute(root: ET.Element, defaults: dict[str, object], columns: dict[str, tuple[str, ...]]) -> list[str]:
    """Replace every non-Qt widget class in the parsed .ui by a Qt stand-in; returns what was replaced."""
    replaced: list[str] = []
    for widget in root.iter("widget"):
        cls, name = widget.get("class", ""), widget.get("name", "")
        if cls == "qMRMLWidget":
            widget.set("class", "QWidget")
        elif cls == "ctkCollapsibleButton":
            title = _string(widget, "text")
            _strip_to(widget, COMMON_PROPERTIES)
            widget.set("class", "QGroupBox")
            widget.append(_prop("title", "string", title))  # ctk sections are all shown expanded
        elif cls == "qMRMLNodeComboBox":
            node_types = [s.text or "" for s in widget.iterfind("property[@name='nodeTypes']/stringlist/string")]
            _strip_to(widget, COMMON_PROPERTIES)
            widget.set("class", "QComboBox")
            item = ET.SubElement(widget, "item")
            item.append(_prop("text", "string", NODE_NAMES.get(node_types[0] if node_types else "", "node")))
        elif cls == "qMRMLSegmentEditorWidget":
            _framed_label(widget, "Segment Editor (Slicer widget)\n\nsegment list: lesion, peri1, peri3, peri5, "
                          "air, pectoralis\neffects: Paint, Draw, Erase, Threshold, Grow from seeds...", 300)
        elif cls == "ctkPathLineEdit":
            _strip_to(widget, COMMON_PROPERTIES)
            widget.set("class", "QLineEdit")
            widget.append(_prop("placeholderText", "string", "path... (ctkPathLineEdit with browse button)"))
        elif cls == "ctkDirectoryButton":
            _strip_to(widget, COMMON_PROPERTIES)
            widget.set("class", "QPushButton")
            widget.append(_prop("text", "string", "Select a folder... (ctkDirectoryButton)"))
        elif cls == "qMRMLTableView":
            _strip_to(widget, COMMON_PROPERTIES)
            widget.set("class", "QTableWidget")
            for header in columns.get(name, ()):
                column = ET.SubElement(widget, "column")
                column.append(_prop("text", "string", header))
        elif cls == "qMRMLPlotWidget":
            _framed_label(widget, "Plot (Slicer qMRMLPlotWidget)\nbar chart: feature contributions (log-odds)", 0)
        elif cls in SPIN_BOXES:
            _strip_to(widget, COMMON_PROPERTIES)
            widget.set("class", "QDoubleSpinBox")
        elif cls.startswith(("ctk", "qMRML", "qSlicer")):
            _framed_label(widget, cls, 24)
        else:
            continue
        replaced.append(f"{name}: {cls} -> {widget.get('class')}")
    # parameter-node defaults the module shows in its real Qt widgets
    for widget in root.iter("widget"):
        default = defaults.get(_string(widget, "SlicerParameterName"))
        if default is None:
            continue
        if widget.get("class") == "QLineEdit" and _get(widget, "text") is None:
            widget.append(_prop("text", "string", str(default)))
        elif widget.get("class") == "QCheckBox" and _get(widget, "checked") is None:
            widget.append(_prop("checked", "bool", "true" if default else "false"))
    return replaced


def rewritten_ui(ui_path: Path) -> tuple[bytes, list[str]]:
    """The .ui XML with Qt stand-ins and no Slicer-only sections (custom widgets, connections)."""
    root = ET.parse(ui_path).getroot()
    replaced = substitute(root, _parameter_defaults(MODULE_PATH), table_columns())
    for tag in ("customwidgets", "connections"):
        for element in root.findall(tag):
            root.remove(element)
    return ET.tostring(root, encoding="utf-8"), replaced


# ------------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------------
def render(ui_path: Path, out: Path, width: int, columns: int = 2) -> tuple[int, int]:
    """Load the rewritten .ui with QUiLoader, add the caption and save a PNG; returns its (width, height)."""
    app = QApplication.instance() or QApplication(["render_panel_preview"])
    app.setStyle("Fusion")
    app.setFont(QFont("DejaVu Sans", 9))
    data, replaced = rewritten_ui(ui_path)
    for line in replaced:
        print(f"stand-in  {line}")
    buffer = QBuffer()
    buffer.setData(QByteArray(data))
    buffer.open(QIODevice.OpenModeFlag.ReadOnly)
    panel = QUiLoader().load(buffer)
    buffer.close()
    if panel is None:
        raise SystemExit(f"error: QUiLoader could not load the rewritten {ui_path.name}")

    for table in panel.findChildren(QTableWidget):  # show every column header the module fills in
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    sections = [panel.layout().itemAt(i).widget() for i in range(panel.layout().count())]
    sections = [w for w in sections if w is not None]
    if width <= 0:  # auto: the panel's own minimum width (below it Qt clips labels), at least 480 px
        width = max(480, panel.minimumSizeHint().width())
    page = QWidget()
    page.setObjectName("page")
    page.setStyleSheet("#page { background: palette(window); }")
    layout = QVBoxLayout(page)
    layout.setContentsMargins(4, 4, 4, 4)
    text = CAPTION + ("" if columns == 1 else f" (sections in {columns} columns; Slicer stacks them in one)")
    caption = QLabel(text)
    caption.setWordWrap(True)
    caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
    caption.setStyleSheet("background: #fff4c2; border: 1px solid #c9a400; padding: 4px; font-style: italic;")
    layout.addWidget(caption)
    if columns == 1:
        panel.setFixedWidth(width)
        layout.addWidget(panel)
    else:  # move the sections, in order, into columns of about equal height (the .ui is not changed)
        heights = [w.heightForWidth(width) if w.hasHeightForWidth() else w.sizeHint().height() for w in sections]
        # split after the section that makes the taller column the shortest
        split = min(range(1, len(sections)), key=lambda k: max(sum(heights[:k]), sum(heights[k:])))
        row = QHBoxLayout()
        layout.addLayout(row)
        for part in (sections[:split], sections[split:]):
            holder = QWidget()
            holder.setFixedWidth(width)
            col = QVBoxLayout(holder)
            col.setContentsMargins(panel.layout().contentsMargins())
            for section in part:
                col.addWidget(section)
            col.addStretch(1)
            row.addWidget(holder, 0, Qt.AlignmentFlag.AlignTop)
    page.adjustSize()
    page.resize(page.sizeHint())
    page.show()
    app.processEvents()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.png")
    if not page.grab().save(str(tmp), "PNG"):
        raise SystemExit(f"error: could not write {out}")
    tmp.replace(out)
    return page.width(), page.height()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ui", type=Path, default=UI_PATH, help="the module's .ui file")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="PNG to write")
    parser.add_argument("--width", type=int, default=0,
                        help="panel width in px; 0: the panel's minimum width, at least 480 (Slicer panels: ~450-500)")
    parser.add_argument("--columns", type=int, default=2, choices=(1, 2),
                        help="1: one tall strip as in Slicer; 2: the sections split into two columns (default)")
    args = parser.parse_args(argv)
    width, height = render(args.ui, args.out, args.width, args.columns)
    print(f"wrote {args.out} ({width} x {height} px)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
