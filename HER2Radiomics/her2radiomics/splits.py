"""Train/test splits: random stratified, or by centre (train / internal test / external test centre)."""

from __future__ import annotations

import math

import numpy as np

from her2radiomics.errors import UserError
from her2radiomics.targets import LabelledTable, norm_value


def make_splits(y: np.ndarray, *, method: str = "random", test_size: float = 0.3, seed: int = 0,
                center: np.ndarray | None = None, test_center: str | None = None,
                center_column: str = "center") -> dict[str, np.ndarray]:
    """Row indices per split: random stratified (train/test) or by centre (train/internal/external).

    ``method="center"``: cases of ``test_center`` form the external test set; the remaining cases are split
    stratified into train and internal test (``test_size`` of them; 0 = no internal test). Deterministic for a
    given ``seed`` (scikit-learn's ``train_test_split`` with ``random_state=seed``).
    """
    from sklearn.model_selection import train_test_split

    y = np.asarray(y, dtype=int)
    idx = np.arange(y.size)
    if not 0.0 <= test_size < 1.0:
        raise UserError(f"--test-size must be in [0, 1), got {test_size}")

    def strat(rows: np.ndarray, size: float, what: str) -> tuple[np.ndarray, np.ndarray]:
        counts = np.bincount(y[rows], minlength=2)
        n_test = math.ceil(size * rows.size)
        if counts.min() < 2 or n_test < 2 or rows.size - n_test < 2:
            raise UserError(
                f"{what}: {counts[1]} event / {counts[0]} reference case(s) are too few for a stratified "
                f"{size:g} test split; use more cases or another --test-size"
            )
        tr, te = train_test_split(rows, test_size=size, random_state=seed, stratify=y[rows])
        return np.sort(tr), np.sort(te)

    if method == "random":
        if test_size == 0:
            splits = {"train": idx}
        else:
            tr, te = strat(idx, test_size, "random split")
            splits = {"train": tr, "test": te}
    elif method == "center":
        if center is None:
            raise UserError(f"--split center needs a centre column {center_column!r} in the labels or features table; "
                            "pass --center-column")
        if test_center is None:
            raise UserError("--split center needs --test-center VALUE (the centre that forms the external test set)")
        tc = norm_value(test_center)
        is_ext = np.array([c == tc for c in center])
        if not is_ext.any():
            seen = sorted({str(c) for c in center if c is not None})
            raise UserError(f"no case has {center_column} = {test_center!r} (values: {', '.join(seen[:8])}); "
                            "fix --test-center")
        rest = idx[~is_ext & np.array([c is not None for c in center])]
        if rest.size == 0:
            raise UserError(f"every case is in centre {test_center!r}; the training centres have no case")
        if test_size == 0:
            splits = {"train": rest}
        else:
            tr, te = strat(rest, test_size, "training centres")
            splits = {"train": tr, "internal": te}
        splits["external"] = idx[is_ext]
    else:
        raise UserError(f"unknown --split {method!r}; use random or center")
    for name, rows in splits.items():
        counts = np.bincount(y[rows], minlength=2)
        if counts.min() < 2:
            raise UserError(f"the {name} split has {counts[1]} event / {counts[0]} reference case(s); each class needs "
                            "at least 2 cases (choose another split or centre)")
    return splits



def case_table(data: LabelledTable, splits: dict[str, np.ndarray]) -> list[dict]:
    """Cases per split, centre and class: ``[{split, center, n, event, reference}]`` (centre None if unknown)."""
    rows = []
    for split, idx in splits.items():
        centres = data.center[idx] if data.center is not None else np.full(len(idx), None, dtype=object)
        for c in sorted({x for x in centres}, key=lambda x: (x is None, str(x))):
            sel = idx[np.array([x == c for x in centres], dtype=bool)]
            n_ev = int(data.y[sel].sum())
            rows.append({"split": split, "center": data.center_labels.get(c, c) if c is not None else None,
                         "n": int(sel.size), "event": n_ev, "reference": int(sel.size - n_ev)})
    return rows
