"""The QA page: trame-slicer views + the panel's workflow (``PanelLogic``) + the QA session core.

What runs where:

* trame-slicer's ``SlicerApp`` owns the MRML scene, the slice views (rendered server-side, streamed
  to the page as images by trame-rca) and the segment editor (``SegmentationEditor``: Slicer's
  ``vtkSlicerSegmentEditorLogic`` with paint / erase brush effects driven by the mouse in the page).
* ``HER2RadiomicsLib.logic.PanelLogic`` is given that scene and does every step, exactly as
  in the Slicer panel: segments, Generate shells / Apply (``generateShells``: ``build_regions`` with the
  current air / pectoralis segments as user masks), Detect (``detectExclusion``), Extract
  (``extractFeatures``), Predict (``predict``, model cards through ``load_model_card``). The page holds
  no science of its own.
* ``HER2RadiomicsLib.qa_panel.QAPanelLogic`` (the panel's QA section, no Qt) loads a case's image and the
  reader's masks into the scene and hands decisions with the segments' masks to ``her2radiomics.qa.QASession``:
  the page, the panel and the Python API write the same files.

Every control carries a stable ``data-testid`` (docs/web.md lists them).
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from her2radiomics import NOT_FOR_CLINICAL_USE
from her2radiomics.errors import UserError

log = logging.getLogger(__name__)

#: every control's data-testid (the browser test and docs/web.md rely on them)
TEST_IDS = (
    "case-list", "generate-shells", "detect-exclusions", "apply-exclusions", "erase-air", "erase-pectoralis",
    "paint-lesion", "erase-lesion", "extract", "predict", "p-positive", "p-low", "p-zero", "approve", "reject",
    "reject-note", "needs-edit", "previous-case", "next-case", "qa-progress", "message", "undo",
)
#: brush diameter in mm for paint / erase (absolute, so that a drag erases the same voxels at any zoom)
BRUSH_MM = 6.0


def _tid(name: str) -> list[str]:
    """The raw attribute that gives an element its stable test id."""
    return [f'data-testid="{name}"']


class QAWebApp:
    """One reviewer's QA session in a browser page (one case loaded at a time)."""

    def __init__(self, session_dir: str | Path, reader: str | None = None, models: list[str] | None = None,
                 params: str | None = None, server=None) -> None:
        from trame.app import get_server
        from trame_slicer import module as trame_slicer_module
        from trame_slicer.core import LayoutManager, SlicerApp
        from trame_slicer.rca_view import register_rca_factories
        from trame_slicer.views import Layout, LayoutDirection, ViewLayoutDefinition

        from HER2RadiomicsLib.logic import PanelLogic, default_model_cards
        from HER2RadiomicsLib.qa_panel import QAPanelLogic

        cards = default_model_cards() if not models else dict(zip(("stage1", "stage2"), models, strict=False))
        self.cards = {k: str(v) for k, v in cards.items()}
        self.params = params

        self.server = server or get_server(client_type="vue3")
        self.server.enable_module(trame_slicer_module)
        self.slicer_app = SlicerApp()
        register_rca_factories(self.slicer_app.view_manager, self.server)
        self.layout_manager = LayoutManager(self.slicer_app.scene, self.slicer_app.view_manager, self.server)
        axial, coronal = ViewLayoutDefinition.axial_view(), ViewLayoutDefinition.coronal_view()
        self.layout_manager.register_layout_dict({"QA": Layout(LayoutDirection.Horizontal, [axial, coronal])})
        self.layout_manager.set_layout("QA")

        # the panel's logic and its QA section's, on trame-slicer's scene
        self.logic = PanelLogic(scene=self.slicer_app.scene)
        self.qa = QAPanelLogic(self.logic)
        self.session = self.qa.open(session_dir, reader)
        self.reader = self.qa.reader
        self.editor = self.slicer_app.segmentation_editor
        from undo_stack import UndoStack

        self.editor.set_undo_stack(UndoStack(undo_limit=20))  # brush strokes (the Lib's steps have their own)

        st = self.server.state
        st.update({
            "cases": [], "case_id": "", "progress": "", "message": "", "busy": False, "reject_note": "",
            "p_positive": "", "p_low": "", "p_zero": "", "calls": "", "gdi": [], "contributions": [],
            "region_stats": [], "active_tool": "", "exclusion_states": "", "notice": NOT_FOR_CLINICAL_USE,
            "reader": self.reader, "card_names": ", ".join(Path(p).name for p in self.cards.values()) or "none",
        })
        self._build_ui()
        self._refresh_cases()
        self.server.controller.on_server_ready.add(self._on_ready)

    # ------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        from trame.widgets import html
        from trame_vuetify.ui.vuetify3 import SinglePageWithDrawerLayout
        from trame_vuetify.widgets import vuetify3 as v3

        ctrl = self.server.controller
        with SinglePageWithDrawerLayout(self.server) as layout:
            self.ui = layout
            layout.title.set_text("HER2Radiomics QA")
            with layout.toolbar:
                v3.VSpacer()
                html.Span("{{ progress }}", raw_attrs=_tid("qa-progress"), classes="mx-4 text-body-2")
                html.Span("reader: {{ reader }}", classes="mx-2 text-caption")
            with layout.drawer as drawer:
                drawer.width = 420
                with html.Div(classes="pa-2"):
                    html.Div("Cases", classes="text-subtitle-2")
                    with v3.VList(density="compact", raw_attrs=_tid("case-list")):
                        v3.VListItem(
                            v_for="c in cases", key="c.case_id",
                            title=("c.case_id",), subtitle=("c.status",),
                            active=("c.case_id === case_id",),
                            click=(ctrl.open_case, "[c.case_id]"),
                            raw_attrs=[':data-testid="`case-${c.case_id}`"', ':data-status="c.status"'],
                        )
                    v3.VDivider(classes="my-2")
                    html.Div("Regions", classes="text-subtitle-2")
                    with html.Div(classes="d-flex flex-wrap ga-1"):
                        v3.VBtn("Generate shells", click=ctrl.generate_shells, size="small", disabled=("busy",),
                                raw_attrs=_tid("generate-shells"))
                        v3.VBtn("Detect exclusions", click=ctrl.detect_exclusions, size="small", disabled=("busy",),
                                raw_attrs=_tid("detect-exclusions"))
                        v3.VBtn("Apply exclusions", click=ctrl.apply_exclusions, size="small", disabled=("busy",),
                                color="primary", raw_attrs=_tid("apply-exclusions"))
                    html.Div("Edit (drag on a slice view)", classes="text-subtitle-2 mt-2")
                    with html.Div(classes="d-flex flex-wrap ga-1"):
                        for tid, label, seg, mode in (("paint-lesion", "Paint lesion", "lesion", "paint"),
                                                      ("erase-lesion", "Erase lesion", "lesion", "erase"),
                                                      ("erase-air", "Erase air", "air", "erase"),
                                                      ("erase-pectoralis", "Erase pectoralis", "pectoralis", "erase")):
                            v3.VBtn(label, size="small", click=(ctrl.set_tool, f"['{seg}', '{mode}']"),
                                    variant=(f"active_tool === '{seg}:{mode}' ? 'flat' : 'outlined'",),
                                    color=(f"active_tool === '{seg}:{mode}' ? 'warning' : undefined",),
                                    disabled=("busy",), raw_attrs=_tid(tid))
                        v3.VBtn("Stop editing", size="small", click=(ctrl.set_tool, "['', '']"), variant="text")
                        v3.VBtn("Undo", size="small", click=ctrl.undo, variant="text", raw_attrs=_tid("undo"))
                    html.Div("exclusions: {{ exclusion_states }}", classes="text-caption")
                    with v3.VTable(density="compact", v_if="region_stats.length"):
                        with html.Thead(), html.Tr():
                            for h in ("region", "mm3", "excluded mm3", "air", "pectoralis"):
                                html.Th(h)
                        with html.Tbody(), html.Tr(v_for="r in region_stats", key="r.region",
                                                   raw_attrs=[':data-testid="`stats-${r.region}`"']):
                            for k in ("region", "volume_mm3", "excluded_mm3", "excluded_air_mm3", "excluded_pectoralis_mm3"):
                                html.Td(f"{{{{ r.{k} }}}}")
                    v3.VDivider(classes="my-2")
                    html.Div("Features and prediction", classes="text-subtitle-2")
                    html.Div("model cards: {{ card_names }}", classes="text-caption")
                    with html.Div(classes="d-flex flex-wrap ga-1"):
                        v3.VBtn("Extract", click=ctrl.extract, size="small", disabled=("busy",), raw_attrs=_tid("extract"))
                        v3.VBtn("Predict", click=ctrl.predict, size="small", disabled=("busy",), raw_attrs=_tid("predict"))
                    with html.Div(classes="d-flex ga-3 my-1 text-body-2"):
                        for label, key in (("P(positive)", "p_positive"), ("P(low)", "p_low"), ("P(zero)", "p_zero")):
                            with html.Span(f"{label} "):
                                html.B(f"{{{{ {key} }}}}", raw_attrs=_tid(key.replace("_", "-")))
                    html.Div("{{ calls }}", classes="text-caption")
                    with html.Div(classes="d-flex flex-wrap ga-1"):
                        html.Span("{{ g.text }}", v_for="g in gdi", key="g.text", raw_attrs=[':data-testid="`gdi-${g.stage}-${g.split}`"'],
                                  style=("{background: g.color, color: 'white', padding: '1px 6px', borderRadius: '4px', fontSize: '12px'}",))
                    with html.Div(raw_attrs=_tid("contributions"), classes="mt-1"), \
                            html.Div(v_for="c in contributions", key="c.key", classes="d-flex align-center",
                                     style="font-size: 11px; height: 14px"):
                            html.Span("{{ c.label }}", style="width: 220px; overflow: hidden; white-space: nowrap", raw_attrs=[":title=\"c.label\""])
                            with html.Div(style="width: 160px; position: relative; height: 10px; background: #eee"):
                                html.Div(style=("{position: 'absolute', height: '10px', left: c.left + '%', width: c.width + '%', background: c.color}",))
                            html.Span("{{ c.value }}", classes="ml-1")
                    v3.VDivider(classes="my-2")
                    html.Div("Decision", classes="text-subtitle-2")
                    v3.VTextField(v_model=("reject_note",), label="note (required to reject)", density="compact",
                                  hide_details=True, raw_attrs=_tid("reject-note"))
                    with html.Div(classes="d-flex flex-wrap ga-1 mt-1"):
                        v3.VBtn("Approve", click=ctrl.approve, color="success", size="small", disabled=("busy",),
                                raw_attrs=_tid("approve"))
                        v3.VBtn("Reject", click=ctrl.reject, color="error", size="small", disabled=("busy",),
                                raw_attrs=_tid("reject"))
                        v3.VBtn("Needs edit", click=ctrl.needs_edit, size="small", disabled=("busy",),
                                raw_attrs=_tid("needs-edit"))
                        v3.VBtn("Previous", click=ctrl.previous_case, size="small", disabled=("busy",),
                                raw_attrs=_tid("previous-case"))
                        v3.VBtn("Next", click=ctrl.next_case, size="small", disabled=("busy",), raw_attrs=_tid("next-case"))
                    html.Div("{{ message }}", raw_attrs=_tid("message"), classes="text-body-2 mt-2",
                             style="white-space: pre-wrap")
                    html.Div("{{ notice }}", classes="text-caption mt-2")
            with layout.content, html.Div(style="height: calc(100vh - 64px); width: 100%", raw_attrs=_tid("views")):
                    self.layout_manager.initialize_layout_grid(layout)

        ctrl.open_case = self._action(self.open_case)
        ctrl.generate_shells = self._action(self.generate_shells)
        ctrl.detect_exclusions = self._action(self.detect_exclusions)
        ctrl.apply_exclusions = self._action(self.apply_exclusions)
        ctrl.set_tool = self._action(self.set_tool)
        ctrl.undo = self._action(self.undo)
        ctrl.extract = self._action(self.extract)
        ctrl.predict = self._action(self.predict)
        ctrl.approve = self._action(self.approve)
        ctrl.reject = self._action(self.reject)
        ctrl.next_case = self._action(self.next_case)
        ctrl.previous_case = self._action(self.previous_case)
        ctrl.needs_edit = self._action(self.needs_edit)

    def _action(self, fn):
        """Run one button's step: a UserError becomes the page's message line (as the panel's status line)."""
        def run(*args):
            st = self.server.state
            st.busy = True
            st.flush()
            try:
                msg = fn(*args)
                if msg is not None:
                    st.message = msg
            except UserError as exc:
                st.message = f"error: {exc}"
            except Exception as exc:  # a bug: say so on the page and in the server log, keep serving
                log.error("%s failed:\n%s", fn.__name__, traceback.format_exc())
                st.message = f"error: {fn.__name__} failed ({type(exc).__name__}: {exc}); see the server log"
            finally:
                st.busy = False
        return run

    def _on_ready(self, **_):
        cid = self.session.next_pending(self.reader) or (self.session.cases(self.reader)[0].case_id
                                                        if self.session.cases(self.reader) else None)
        if cid:
            self._action(self.open_case)(cid)

    # ------------------------------------------------------------------ session
    @property
    def volume_node(self):
        return self.qa.volume_node

    @property
    def segmentation_node(self):
        return self.qa.segmentation_node

    @property
    def case_id(self) -> str | None:
        return self.qa.currentCaseId if self.qa.volume_node is not None else None

    def _refresh_cases(self) -> None:
        st = self.server.state
        st.cases = [{"case_id": r.case_id, "status": r.status, "note": r.note} for r in self.qa.rows()]
        st.progress = self.session.status(self.reader)[0].text()
        st.case_id = self.case_id or ""

    def _clear_results(self) -> None:
        """The page's view of the last case's results, and its table / chart nodes, go before the next case loads
        (QAPanelLogic.load removes its volume and segmentation and resets the logic)."""
        self.editor.deactivate_effect()
        for cls in ("vtkMRMLTableNode", "vtkMRMLPlotSeriesNode", "vtkMRMLPlotChartNode"):
            for node in list(_nodes(self.slicer_app.scene, cls)):
                self.slicer_app.scene.RemoveNode(node)
        st = self.server.state
        st.update({"p_positive": "", "p_low": "", "p_zero": "", "calls": "", "gdi": [], "contributions": [],
                   "region_stats": [], "reject_note": "", "exclusion_states": "", "active_tool": ""})

    def open_case(self, case_id: str) -> str:
        self._clear_results()
        self.qa.load(case_id)
        self._show_case()
        self._refresh_cases()
        self._refresh_stats()
        sources = self.session.inputs(case_id, self.reader).sources
        shown = ", ".join(f"{k}: {v}" for k, v in sources.items())
        return f"case {case_id} opened ({shown})"

    def _show_case(self) -> None:
        seg, vol = self.segmentation_node, self.volume_node
        dm = self.slicer_app.display_manager
        dm.show_volume_in_slice_background(vol)
        disp = seg.GetDisplayNode()
        disp.SetOpacity2DFill(0.45)
        disp.SetOpacity2DOutline(1.0)
        self.editor.set_active_segmentation(seg, vol)
        self._enforce_overlap()
        dm.reset_views()
        centre = _lesion_centre_ras(seg, vol, self.logic)
        if centre is not None:
            from slicer import vtkMRMLSliceNode

            # centred: every view shows the lesion's slice with the lesion in the middle
            vtkMRMLSliceNode.JumpAllSlices(self.slicer_app.scene, *centre, vtkMRMLSliceNode.CenteredJumpSlice)

    def _enforce_overlap(self) -> None:
        from HER2RadiomicsLib.logic import enforce_overlap_mode

        enforce_overlap_mode(self.editor.editor_node)  # as the panel: editing one segment never erases another

    def _need_case(self) -> None:
        if self.case_id is None or self.volume_node is None:
            raise UserError("no case is open; pick one in the case list")

    def _refresh_stats(self) -> None:
        st = self.server.state
        rows = []
        for r in self.logic.regionStatsRows():
            rows.append({k: (round(v, 1) if isinstance(v, float) and np.isfinite(v) else ("" if isinstance(v, float) else v))
                         for k, v in r.items()})
        st.region_stats = rows
        states = self.logic.state.exclusion_states
        st.exclusion_states = ", ".join(f"{k} {v}" for k, v in states.items()) or "not computed yet"

    # ------------------------------------------------------------------ regions
    def _before_step(self) -> None:
        """A Lib step rewrites segments with its own undo snapshot: brush strokes before it are no longer undone
        separately (one undo order: the last step first)."""
        self._need_case()
        self.editor.deactivate_effect()
        self.server.state.active_tool = ""
        if self.editor.undo_stack is not None:
            self.editor.undo_stack.clear()

    def generate_shells(self) -> str:
        self._before_step()
        regions = self.logic.generateShells(self.volume_node, self.segmentation_node)
        self._refresh_stats()
        warn = f"; {len(regions.warnings)} warning(s): " + " | ".join(regions.warnings) if regions.warnings else ""
        return f"shells {', '.join(regions.shell_names)} generated{warn}"

    def detect_exclusions(self) -> str:
        self._before_step()
        notes = []
        for name in ("air", "pectoralis"):
            notes += [f"{name}: {n}" for n in self.logic.detectExclusion(self.volume_node, self.segmentation_node, name)]
        self._refresh_stats()
        return "air and pectoralis detected" + (" (" + "; ".join(notes) + ")" if notes else "")

    def apply_exclusions(self) -> str:
        """Recompute the shells from the lesion minus the (edited) exclusions, as the panel's Apply exclusions."""
        msg = self.generate_shells()
        return msg.replace("generated", "recomputed with the current air and pectoralis", 1)

    def set_tool(self, segment: str, mode: str) -> str:
        from trame_slicer.segmentation import (
            BrushDiameterMode,
            SegmentationEffectErase,
            SegmentationEffectPaint,
        )

        self._need_case()
        st = self.server.state
        if not segment:
            self.editor.deactivate_effect()
            st.active_tool = ""
            return "editing stopped"
        from HER2RadiomicsLib import mrml_bridge

        sid = mrml_bridge.segment_id(self.segmentation_node, segment)
        if not sid:
            raise UserError(f"no '{segment}' segment yet; press Generate shells or Detect exclusions first")
        self.editor.set_active_segment_id(sid)
        effect = self.editor.set_active_effect_type(SegmentationEffectErase if mode == "erase" else SegmentationEffectPaint)
        effect.set_brush_diameter(BRUSH_MM, BrushDiameterMode.Absolute)
        self._enforce_overlap()
        st.active_tool = f"{segment}:{mode}"
        after = "press Apply exclusions to recompute the shells" if segment != "lesion" else "press Generate shells"
        return f"{mode} '{segment}': drag on a slice view ({BRUSH_MM:g} mm brush), then {after}"

    def undo(self) -> str:
        self._need_case()
        stack = self.editor.undo_stack
        if stack is not None and stack.can_undo():
            stack.undo()
            return "last brush stroke undone"
        if self.logic.undo(self.segmentation_node):
            self._refresh_stats()
            return "last step undone"
        return "nothing to undo"

    # ------------------------------------------------------------------ features / prediction
    def extract(self) -> str:
        from her2radiomics.modelcard import parameter_file_for_card

        self._need_case()
        params = self.params
        if params is None and self.cards.get("stage1"):
            found = parameter_file_for_card(self.cards["stage1"])
            params = str(found) if found else None
        values = self.logic.extractFeatures(self.volume_node, self.segmentation_node, params)
        self._refresh_stats()
        return f"{len(values)} features extracted" + (f" with {Path(params).name}" if params else "")

    def predict(self) -> str:
        from her2radiomics.modelcard import ZONE_COLOURS

        self._need_case()
        if not self.cards.get("stage1"):
            raise UserError("no model card; start with --models STAGE1.json [STAGE2.json]")
        res = self.logic.predict(self.cards["stage1"], self.cards.get("stage2"), volume_node=self.volume_node,
                                 segmentation_node=self.segmentation_node)
        st = self.server.state
        row = res.row

        def fmt(v):
            return "n/a" if v is None else f"{100 * float(v):.1f}%"

        st.p_positive, st.p_low, st.p_zero = fmt(row.get("p_positive")), fmt(row.get("p_low")), fmt(row.get("p_zero"))
        st.calls = " · ".join(f"{k}: {row[k]}" for k in ("stage1_call", "stage2_call") if row.get(k) not in (None, ""))
        st.gdi = [{"stage": stage, "split": split, "color": ZONE_COLOURS.get(zone, ZONE_COLOURS["unknown"]),
                   "text": f"{stage} {split}: GDI {'n/a' if v is None else f'{100 * v:.0f}%'} ({zone})"}
                  for stage, badges in res.gdi.items() for split, v, zone in badges]
        top = [c for c in res.contributions][:12]
        scale = max([abs(float(c["contribution"])) for c in top] + [1e-9])
        bars = []
        for i, c in enumerate(top):
            val = float(c["contribution"])
            w = 50 * abs(val) / scale
            bars.append({"key": f"{i}", "label": f"{c['stage']} {c['label']}", "value": f"{val:+.2f}",
                         "left": 50 if val >= 0 else 50 - w, "width": w,
                         "color": "#c62828" if val >= 0 else "#1565c0"})
        st.contributions = bars
        warn = ("; " + " | ".join(res.warnings)) if res.warnings else ""
        return f"predicted with {', '.join(Path(p).name for p in self.cards.values())}{warn}"

    # ------------------------------------------------------------------ decisions
    def approve(self) -> str:
        """QAPanelLogic.approve: the lesion and the exclusions the reader drew or edited go to the session."""
        self._need_case()
        self.editor.deactivate_effect()
        self.server.state.active_tool = ""
        rev = self.qa.approve(note=self.server.state.reject_note)
        self._refresh_cases()
        saved = f" (saved: {', '.join(sorted(rev.masks))})" if rev.masks else ""
        return f"case {rev.case_id}: {rev.status}{saved}"

    def reject(self) -> str:
        self._need_case()
        rev = self.qa.reject(self.server.state.reject_note)
        self._refresh_cases()
        return f"case {rev.case_id}: {rev.status} ({rev.note})"

    def needs_edit(self) -> str:
        """Keep the case pending with a 'needs edit' note (QAPanelLogic.needsEdit)."""
        self._need_case()
        rev = self.qa.needsEdit(self.server.state.reject_note)
        self._refresh_cases()
        return f"case {rev.case_id}: {rev.status} ({rev.note})"

    def previous_case(self) -> str:
        ids = self.qa.caseIds
        if not ids:
            raise UserError(f"reader {self.reader} has no case in this session")
        i = ids.index(self.case_id) if self.case_id in ids else 0
        return self.open_case(ids[max(0, i - 1)])

    def next_case(self) -> str:
        cid = self.session.next_pending(self.reader, after=self.case_id)
        if cid is None:
            self._refresh_cases()
            return "every case of this reader is reviewed"
        return self.open_case(cid)


# ---------------------------------------------------------------------- helpers
def _nodes(scene, cls: str):
    col = scene.GetNodesByClass(cls)
    return [col.GetItemAsObject(i) for i in range(col.GetNumberOfItems())]


def _lesion_centre_ras(seg, vol, logic) -> tuple[float, float, float] | None:
    """RAS of the lesion's centroid (to centre the slice views on it)."""
    try:
        mask = logic.lesionMask(vol, seg)
    except UserError:
        return None
    arr = sitk.GetArrayViewFromImage(mask)
    idx = np.argwhere(arr > 0)
    if idx.size == 0:
        return None
    z, y, x = idx.mean(axis=0)
    lps = mask.TransformContinuousIndexToPhysicalPoint((float(x), float(y), float(z)))
    return (-lps[0], -lps[1], lps[2])


def serve(session_dir: str | Path, host: str = "127.0.0.1", port: int = 8080, reader: str | None = None,
          models: list[str] | None = None, params: str | None = None) -> int:
    """Start the page and block until the server stops (Ctrl-C)."""
    sys.argv = sys.argv[:1]  # trame parses the command line itself; ours is already parsed
    app = QAWebApp(session_dir, reader=reader, models=models, params=params)

    local = host in ("127.0.0.1", "localhost", "::1")

    def ready(**_):
        bound = "this machine only" if local else "reachable from the network"
        print(f"her2radiomics web: session {session_dir} (reader {app.reader}) at http://{host}:{app.server.port}/ "
              f"- bound to {host} ({bound}); Ctrl-C stops. {NOT_FOR_CLINICAL_USE}", flush=True)
        if not local:
            print(f"warning: --host {host} serves the page and the session's images without authentication to "
                  "anyone who can reach this address; use 127.0.0.1 behind an authenticating proxy", flush=True)

    app.server.controller.on_server_ready.add(ready)
    app.server.start(host=host, port=port, open_browser=False, show_connection_info=False, timeout=0)
    return 0
