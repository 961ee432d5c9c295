"""The panel's QA section: review a cohort's QA session (``her2radiomics.qa``) case by case in the scene (no Qt).

One case at a time is in the scene: Previous / Next remove the previous case's volume and segmentation nodes
and forget every result the module logic holds for it (``PanelLogic.reset``), then load the next case's
image and the reader's masks (their own edited ones, else the manifest's; no lesion for a blind reader) from
:meth:`QASession.load`. A decision goes through the core's :meth:`QASession.approve` / ``set_status`` with the
masks taken from the segments, so the panel writes exactly the files a review through the Python API writes
(docs/qa.md). The science stays in the core: this module only moves masks between segments and the session.

Exclusions handed to ``approve``: the segments whose provenance (``segments.exclusion_state``) is ``user``
(loaded from the manifest or the reader's earlier edit, painted) or ``auto, edited``; an untouched automatic
detection is not an edit (``extract`` detects it again the same way).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from her2radiomics.errors import UserError

from . import mrml_bridge, segments

#: keyboard shortcuts of the QA section (the widget binds them with QShortcut)
SHORTCUTS = {
    "previous": "Ctrl+Alt+Left",
    "next": "Ctrl+Alt+Right",
    "approve": "Ctrl+Alt+A",
    "needs_edit": "Ctrl+Alt+E",
    "reject": "Ctrl+Alt+R",
}
NODE_ATTRIBUTE = "HER2Radiomics.qaCase"   # marks the nodes a QA case loaded (removed when the next loads)
NEEDS_EDIT = "needs edit"


@dataclass(frozen=True)
class CaseRow:
    """One line of the case list."""

    case_id: str
    status: str
    reviewer: str
    note: str

    def text(self) -> str:
        return f"{self.case_id}  [{self.status}]" + (f"  {self.note}" if self.note else "")


class QAPanelLogic:
    """The QA section's state and actions over a module logic (``HER2RadiomicsLib.logic.PanelLogic``)."""

    def __init__(self, core_logic, clock: Callable[[], Any] | None = None) -> None:
        self.core = core_logic
        self.clock = clock
        self.session = None
        self.reader: str | None = None
        self.index = -1
        self.volume_node = None
        self.segmentation_node = None

    # ---- session -------------------------------------------------------------------------------------------
    def open(self, folder: str | Path, reader: str | None = None):
        """Open a session folder for ``reader`` (default: the session's first reader); no case is loaded yet."""
        from her2radiomics.qa import QASession

        if not str(folder or "").strip():
            raise UserError("choose the QA session folder (created with 'her2radiomics qa init MANIFEST.csv -o DIR')")
        session = QASession.open(folder, clock=self.clock)
        reader = (reader or "").strip() or session.first_reader
        session.cases(reader)  # UserError for an unknown reader
        self.closeCase()
        self.session, self.reader, self.index = session, reader, -1
        return session

    @property
    def caseIds(self) -> list[str]:
        return [c.case_id for c in self.session.cases(self.reader)] if self.session else []

    @property
    def currentCaseId(self) -> str | None:
        ids = self.caseIds
        return ids[self.index] if 0 <= self.index < len(ids) else None

    def rows(self) -> list[CaseRow]:
        if self.session is None:
            return []
        return [CaseRow(r.case_id, r.status, r.reviewer, r.note) for r in self.session.reviews(self.reader)]

    def progressText(self) -> str:
        """'Case i of N: ID (status) | reader: n of N reviewed (...)'."""
        if self.session is None:
            return ""
        (prog,) = self.session.status(self.reader)
        cid = self.currentCaseId
        head = (f"Case {self.index + 1} of {len(self.caseIds)}: {cid} ({self.session.review(cid, self.reader).status})"
                if cid else f"{len(self.caseIds)} case(s)")
        blind = " - blind reader: reader 1's lesion is not shown" if self.session.is_blind(self.reader) else ""
        return f"{head} | {prog.text()}{blind}"

    # ---- navigation ----------------------------------------------------------------------------------------
    def closeCase(self) -> None:
        """Remove the current case's nodes from the scene and forget every result computed from them."""
        scene = self.core.scene
        for node in (self.segmentation_node, self.volume_node):
            if node is not None and node.GetScene() is not None:
                scene.RemoveNode(node)
        self.volume_node = self.segmentation_node = None
        self.core.reset()

    def load(self, case_id: str):
        """Load a case: its image as a volume node and the reader's masks as segments; returns (volume, seg)."""
        if self.session is None:
            raise UserError("open a QA session first (QA section: session folder, then 'Open')")
        ids = self.caseIds
        if case_id not in ids:
            raise UserError(f"case {case_id!r} is not one of reader {self.reader}'s cases in this session")
        self.session.start_review(case_id, self.reader)
        image, masks = self.session.load(case_id, self.reader)   # read before the old case goes (errors keep it)
        self.closeCase()
        scene = self.core.scene
        volume = mrml_bridge.volume_node_from_image(image, case_id, scene=scene)
        volume.SetAttribute(NODE_ATTRIBUTE, case_id)
        self.core.state.case_id = case_id
        self.core.state.distances = tuple(self.session.distances)
        self.core.state.auto_exclusions = bool(self.session.meta.get("auto_exclusions", True))
        seg = self.core.setupSegmentation(volume, None, self.session.distances)
        seg.SetName(f"{case_id} HER2 segments")
        seg.SetAttribute(NODE_ATTRIBUTE, case_id)
        if masks["lesion"] is not None:
            mrml_bridge.set_segment_from_mask(seg, segments.LESION, masks["lesion"])
        for name in ("air", "pectoralis"):
            if masks[name] is not None:   # a given mask (manifest or the reader's edit) is a user mask
                self.core._writeExclusion(seg, name, masks[name], "user")
                self.core.state.exclusion_states[name] = "user"
        self.volume_node, self.segmentation_node, self.index = volume, seg, ids.index(case_id)
        return volume, seg

    def loadIndex(self, index: int):
        ids = self.caseIds
        if not ids:
            raise UserError(f"reader {self.reader} has no case in this session")
        return self.load(ids[max(0, min(index, len(ids) - 1))])

    def first(self):
        """The first pending case (or the first case when all are reviewed)."""
        cid = self.session.next_pending(self.reader) if self.session else None
        return self.load(cid) if cid else self.loadIndex(0)

    def next(self):
        return self.loadIndex(self.index + 1)

    def previous(self):
        return self.loadIndex(self.index - 1)

    # ---- decisions -----------------------------------------------------------------------------------------
    def _current(self):
        if self.session is None or self.currentCaseId is None or self.volume_node is None:
            raise UserError("load a case of the QA session first (Previous / Next)")
        if self.volume_node.GetScene() is None or self.segmentation_node.GetScene() is None:
            raise UserError(f"case {self.currentCaseId}'s image or segmentation left the scene (scene closed?); "
                            "load the case again (Previous / Next or the case list) before deciding")
        return self.currentCaseId, self.volume_node, self.segmentation_node

    def sceneMasks(self) -> dict[str, Any]:
        """The masks to hand to ``approve``: the lesion segment and the edited/user exclusions (see module doc)."""
        cid, volume, seg = self._current()
        out: dict[str, Any] = {}
        lesion = mrml_bridge.mask_from_segment(seg, segments.LESION, volume)
        import SimpleITK as sitk

        if not sitk.GetArrayViewFromImage(lesion).any():
            raise UserError(f"the 'lesion' segment of case {cid} is empty; paint the lesion before approving")
        out["lesion"] = lesion
        for name in ("air", "pectoralis"):
            if mrml_bridge.segment_id(seg, name):
                mask = mrml_bridge.mask_from_segment(seg, name, volume)
                if segments.exclusion_state(seg, name, mask) in ("user", "auto, edited"):
                    out[name] = mask
        return out

    def approve(self, note: str = ""):
        """Accept the case with the segments as they are (``edited`` when the reader changed a mask)."""
        cid, _, _ = self._current()
        return self.session.approve(cid, self.reader, note=note, **self.sceneMasks())

    def needsEdit(self, note: str = ""):
        """Keep the case pending with a 'needs edit' note (edit the segments, then Approve)."""
        cid, _, _ = self._current()
        text = NEEDS_EDIT + (f": {note.strip()}" if note and note.strip() else "")
        return self.session.set_status(cid, self.reader, "pending", note=text)

    def reject(self, note: str):
        cid, _, _ = self._current()
        return self.session.set_status(cid, self.reader, "rejected", note=note)
