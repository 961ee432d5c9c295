"""The Prediction section's nomogram: the chosen model card's nomogram as a PNG and its caption (no Qt).

A card trained with ``--clinical`` carries clinical and combined models (``clinical_models``); the panel shows
the combined model's nomogram (points per variable, total points -> probability) read with
:func:`her2radiomics.nomogram.card_scales` and drawn with :func:`her2radiomics.nomogram.render_png` (pillow,
bundled with 3D Slicer): nothing here needs matplotlib or pandas, so it works in a fresh Slicer before the
dependency prompt. The caption names the card and the model; the card's intended-use notice comes from its
one owner, :func:`her2radiomics.modelcard.card_notice` (the shipped demo cards: "Synthetic demonstration
model, not for clinical use.").
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from her2radiomics import nomogram
from her2radiomics.errors import UserError
from her2radiomics.modelcard import card_notice, load_model_card

NO_NOMOGRAM = "this card has no nomogram (trained without --clinical)"
STAGE_NAMES = {"stage1": "Stage-1", "stage2": "Stage-2"}


@dataclass(frozen=True)
class NomogramView:
    """What the section shows: a one-line caption, the card's notice, the PNG (None: no image) and its layout."""

    caption: str = ""
    notice: str = ""
    png: bytes | None = None
    layout: dict | None = None

    def text(self) -> str:
        """Caption and notice, one line each (a plain-text label)."""
        return "\n".join(t for t in (self.caption, self.notice) if t)


def nomogram_view(path: str | os.PathLike[str] | None, stage: str = "stage1", model: str = "combined",
                  width: int = nomogram.PNG_WIDTH) -> NomogramView:
    """The nomogram of the card at ``path`` (the ``stage`` field's card): image + caption for a card with
    clinical models, the :data:`NO_NOMOGRAM` line (and no image) otherwise, nothing for no card."""
    if not path:
        return NomogramView()
    label = f"{STAGE_NAMES.get(stage, stage)} card {Path(path).name}"
    try:
        card = load_model_card(path)
    except UserError as refused:
        return NomogramView(f"{label}: no nomogram ({refused})")
    notice = card_notice(card)
    sc = nomogram.card_scales(card, model)
    if sc is None:
        return NomogramView(f"{label}: {NO_NOMOGRAM}", notice)
    png, layout = nomogram.render_png(sc, title=f"Nomogram: {model} model ({Path(path).name})", width=width)
    return NomogramView(f"{label}: nomogram of its {model} model (rad-score + clinical variables)", notice,
                        png, layout)


@contextlib.contextmanager
def png_file(data: bytes) -> Iterator[Path]:
    """``data`` in a temporary .png file for as long as the block runs (Qt's ``QPixmap(fileName)`` reads the file
    when constructed); the file is removed afterwards."""
    fd, name = tempfile.mkstemp(prefix="her2radiomics-nomogram-", suffix=".png")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield Path(name)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)
