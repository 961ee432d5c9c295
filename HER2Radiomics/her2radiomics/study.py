"""The study: every feature set of one stage trained on the same splits, compared by DeLong (the paper's table).

:func:`train_feature_sets` trains one model per feature set on shared splits (:func:`study_splits`),
:func:`save_cards` writes their cards as ``DIR/<set>.model.json``, and :func:`build_study` makes the
``her2radiomics.study/1`` record (schema in docs/modeling.md) that ``report`` reads, with the pairwise DeLong
matrix of every split (``stats.delong_matrix``; DeLong, DeLong & Clarke-Pearson 1988). ``her2radiomics study``
and the demo are thin callers.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from her2radiomics import NOT_FOR_CLINICAL_USE, __version__, stats
from her2radiomics.errors import UserError
from her2radiomics.evaluation import calibration_record
from her2radiomics.fitting import TrainConfig, TrainResult, rad_score_formula, train
from her2radiomics.splits import make_splits
from her2radiomics.targets import LabelledTable, feature_columns

STUDY_FORMAT = "her2radiomics.study/1"
#: the four feature sets of the paper's table (lesion, lesion + 1/3/5 mm peritumoral shell)
STUDY_SETS = ("intra", "intra+peri1", "intra+peri3", "intra+peri5")


def set_filename(name: str) -> str:
    """``intra+peri3`` -> ``intra_peri3.model.json``; ``dce+t2:intra`` -> ``dce_t2-intra.model.json`` (no ':', which
    Windows file names cannot hold)."""
    return name.replace("+", "_").replace(":", "-") + ".model.json"


def study_splits(data: LabelledTable, config: TrainConfig, center_column: str = "center") -> dict[str, np.ndarray]:
    """The splits every feature set of a study shares (``splits.make_splits`` with ``config``'s options)."""
    return make_splits(data.y, method=config.split, test_size=config.test_size, seed=config.seed, center=data.center,
                       test_center=config.test_center, center_column=center_column)


def split_record(config: TrainConfig, center_column: str = "center") -> dict:
    """The study's ``split`` entry: method, test size, test centre, centre column (split by centre only), seed."""
    return {"method": config.split, "test_size": config.test_size, "test_center": config.test_center,
            "center_column": center_column if config.split == "center" else None, "seed": config.seed}


def train_feature_sets(data: LabelledTable, configs: Sequence[TrainConfig], splits: dict[str, np.ndarray], *,
                       icc_table: pd.DataFrame | None = None, id_column: str = "case_id",
                       provenance: dict | None = None,
                       center_column: str = "center") -> tuple[list[tuple[str, TrainResult]], list[dict]]:
    """Train one model per config (``fitting.train``) on the same ``splits``; a feature set whose columns the table
    lacks is skipped. Returns ``([(feature set, result), ...], [{"name", "reason"}, ...])``; UserError when no set
    could be trained. Nothing is written."""
    results: list[tuple[str, TrainResult]] = []
    skipped: list[dict] = []
    seen: set[str] = set()
    for config in configs:
        name = config.feature_set
        if name in seen:
            continue
        seen.add(name)
        try:
            feature_columns(list(data.X.columns), name, numeric=data.numeric)
        except UserError as exc:
            skipped.append({"name": name, "reason": str(exc)})
            continue
        results.append((name, train(data, config, splits=splits, icc_table=icc_table, id_column=id_column,
                                    provenance=provenance, center_column=center_column)))
    if not results:
        raise UserError("no feature set could be trained (see the notes); check --feature-sets against the table's columns")
    return results, skipped


def save_cards(results: Sequence[tuple[str, TrainResult]], folder: str | Path) -> None:
    """Write every result's card to ``folder/<set>.model.json`` (``modelcard.save_model_card`` adds its checksum)."""
    from her2radiomics.modelcard import save_model_card

    for name, res in results:
        save_model_card(res.card, Path(folder) / set_filename(name))


def write_study(study: dict, folder: str | Path) -> Path:
    """Write ``folder/study.json`` (plain JSON: NaN/inf become null, ``modelcard.jsonable``); returns its path."""
    from her2radiomics.io import write_json
    from her2radiomics.modelcard import jsonable

    path = Path(folder) / "study.json"
    write_json(jsonable(study), path)
    return path


def funnel(selection: dict) -> list[list]:
    """The selection funnel ``[[step, features left], ...]``: candidates -> ICC -> non-constant -> MWU -> LASSO; a
    step that was not applied keeps the previous count (``selection.icc_threshold`` / ``mwu_p`` are then None)."""
    if selection.get("funnel"):  # issue 15a: filters/selectors beside LASSO record their own funnel
        return [list(step) for step in selection["funnel"]]
    after_icc = selection["n_after_icc"]
    return [["candidates", selection["candidates"]], ["ICC", after_icc],
            ["non-constant", after_icc - int(selection.get("n_constant_dropped") or 0)],
            ["MWU", selection["n_after_mwu"]], ["LASSO", selection["n_selected"]]]


def split_extras(y: list, prob: list, n_boot: int, seed: int) -> dict:
    """Calibration (calibration_record) and, with ``n_boot``, the stratified bootstrap AUC CI."""
    yy, pp = np.asarray(y, dtype=int), np.asarray(prob, dtype=float)
    boot = stats.bootstrap_auc_ci(yy, pp, n_boot=n_boot, seed=seed) if n_boot else None
    return {"calibration": calibration_record(yy, pp), "bootstrap": boot}


def build_study(task: str, classes: dict, results: list[tuple[str, TrainResult]], split: dict, prov: dict,
                notes: list[str], skipped: list[dict] = (), *, case_rows: list[dict] | None = None,
                bootstrap: int = 0, parameter_file: str | None = None) -> dict:
    """The ``her2radiomics.study/1`` record (docs/modeling.md) of feature-set models trained on the same splits
    (cards already saved: their checksums are recorded), with the pairwise DeLong matrix of every split and what
    a methods section quotes: cohort table, parameter file, seed, ICC result, selection funnel, Rad-score
    formula, calibration (slope, intercept, Brier, Hosmer-Lemeshow) and optional bootstrap CIs per split."""
    seed = int(split.get("seed") or 0)
    sets = []
    for name, res in results:
        card = res.card
        sel = card["selection"]
        sets.append({
            "name": name,
            "model_card": set_filename(name),
            "checksum": card["checksum"],
            "features": card["features"],
            "coefficients": card["coefficients"],
            "cutoff": card["cutoff"],
            "selection": {k: sel.get(k) for k in ("candidates", "n_after_icc", "n_constant_dropped", "n_after_mwu",
                                                  "n_selected", "C", "fallback", "icc_threshold", "mwu_p",
                                                  "lambda_rule", "cv_folds")
                          # issue 15a: recorded only by runs that use them (default studies unchanged)
                          } | {k: sel[k] for k in ("variance_threshold", "max_correlation", "selector", "classifier")
                               if k in sel},
            "funnel": funnel(sel),
            "icc": sel.get("icc"),
            "rad_score": rad_score_formula(card) if card.get("coefficients") is not None else None,
            "splits": {sp: {**res.splits[sp], "metrics": card["metrics"][sp], "gdi": card["gdi"].get(sp),
                            **split_extras(res.splits[sp]["y"], res.splits[sp]["probabilities"], bootstrap, seed)}
                       for sp in res.splits},
        })
    first = results[0][1].splits
    names = [name for name, _ in results]
    delong = {sp: stats.delong_matrix(np.asarray(first[sp]["y"]),
                                      [np.asarray(r.splits[sp]["probabilities"]) for _, r in results], names)
              for sp in first}
    return {
        "format": STUDY_FORMAT,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "software": f"her2radiomics {__version__}",
        "intended_use": NOT_FOR_CLINICAL_USE,
        "task": task,
        "classes": classes,
        "split": split,
        "split_names": list(first),
        "seed": seed,
        "parameter_file": {"name": parameter_file, "sha256": prov.get("parameter_file_hash")},
        "cohort_table": list(case_rows or []),
        "icc": max((fs["icc"] for fs in sets if fs["icc"]), key=lambda i: i["n_features"], default=None),
        "bootstrap": {"n_boot": bootstrap, "seed": seed, "method": "stratified percentile"} if bootstrap else None,
        "case_ids": {sp: first[sp]["case_ids"] for sp in first},
        "y": {sp: first[sp]["y"] for sp in first},
        "feature_sets": sets,
        "skipped": list(skipped),
        "delong": delong,
        "provenance": prov,
        "notes": notes,
    }
