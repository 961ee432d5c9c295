"""`her2radiomics study`: train + evaluate every feature set of one stage on the same split (the paper's table).

Writes ``DIR/<set>.model.json`` (one model card per feature set) and ``DIR/study.json`` (schema in
docs/modeling.md), and prints the per-set table and the DeLong matrix of every split.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
from pathlib import Path

from her2radiomics import NOT_FOR_CLINICAL_USE, __version__
from her2radiomics.commands import lazy_module
from her2radiomics.commands.compare import format_delong
from her2radiomics.commands.train import (
    add_table_arguments,
    add_training_arguments,
    fmt_auc,
    label_spec,
    load_cohort,
    print_notes,
    provenance,
    read_icc,
    training_config,
)
from her2radiomics.errors import UserError

modeling = lazy_module("her2radiomics.modeling")

STUDY_FORMAT = "her2radiomics.study/1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_table_arguments(parser)
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for the model cards and study.json")
    parser.add_argument("--feature-sets", nargs="+", default=None, metavar="SET",
                        help="feature sets to train (default: intra intra+peri1 intra+peri3 intra+peri5; 'all' for a "
                             "table without region prefixes)")
    add_training_arguments(parser)
    parser.add_argument("--bootstrap", type=int, default=0, metavar="N",
                        help="also give stratified percentile-bootstrap 95%% CIs of every AUC from N replicates "
                             "(e.g. 2000; default 0 = DeLong CIs only)")
    parser.add_argument("--force", action="store_true",
                        help="write into a non-empty DIR: replace an earlier study's cards and study.json (other files "
                             "are kept)")


def set_filename(name: str) -> str:
    return name.replace("+", "_") + ".model.json"


def run(args: argparse.Namespace) -> int:
    from her2radiomics.io import check_output, write_json

    check_output(args.output, "output folder", folder=True)
    stale = check_study_folder(Path(args.output), args.force)
    args.feature_sets = args.feature_sets or list(modeling.STUDY_SETS)
    if not 0 <= args.bootstrap <= 100_000:
        raise UserError(f"--bootstrap must be between 0 and 100000 replicates, got {args.bootstrap}")
    for name in args.feature_sets:  # a typo is an error; a known set without columns is skipped below
        modeling.check_feature_set(name)
    spec = label_spec(args)
    cohort = load_cohort(args, args.task, spec)
    base = training_config(args, args.feature_sets[0])
    splits = modeling.make_splits(cohort.y, method=base.split, test_size=base.test_size, seed=base.seed,
                                  center=cohort.center, test_center=base.test_center, center_column=spec.center_column)
    icc_table = read_icc(args)
    prov = provenance(args, spec)
    out = Path(args.output)
    skipped, notes = [], list(cohort.notes)
    results: list[tuple[str, modeling.TrainResult]] = []
    for name in dict.fromkeys(args.feature_sets):
        try:
            modeling.feature_columns(list(cohort.X.columns), name, numeric=cohort.numeric)
        except UserError as exc:
            skipped.append({"name": name, "reason": str(exc)})
            print(f"note: skipping feature set {name}: {exc}")
            continue
        res = modeling.train(cohort, training_config(args, name), splits=splits, icc_table=icc_table,
                             id_column=spec.id_column, provenance=prov, center_column=spec.center_column)
        results.append((name, res))
    if not results:
        raise UserError("no feature set could be trained (see the notes); check --feature-sets against the table's columns")
    for name, res in results:  # write only after every set trained: nothing half-written on an error
        modeling.save_model_card(res.card, out / set_filename(name))
        notes += [f"{name}: {n}" for n in res.fit.notes]
    split_info = {"method": base.split, "test_size": base.test_size, "test_center": base.test_center,
                  "center_column": spec.center_column if base.split == "center" else None, "seed": base.seed}
    study = build_study(args.task, cohort.classes, results, split_info, prov, notes, skipped,
                        cohort_rows=modeling.cohort_table(cohort, splits), bootstrap=args.bootstrap,
                        parameter_file=parameter_file_name(args.features))
    names = [s["name"] for s in study["feature_sets"]]
    delong = study["delong"]
    write_json(modeling.jsonable(study), out / "study.json")
    written = {out / s["model_card"] for s in study["feature_sets"]} | {out / "study.json"}
    for p in stale - written:  # --force: an earlier run's cards that this run did not rewrite
        p.unlink(missing_ok=True)
    print_notes(notes)
    print(format_table(study))
    for split in splits:
        if len(names) > 1:
            print(f"\n[{split}] " + format_delong(delong[split]))
    print(f"\nwrote {len(names)} model card(s) and {out / 'study.json'}")
    return 0


def study_files(folder: Path) -> set[Path]:
    """The files a study writes that are in ``folder``: ``study.json``, the cards it names, every ``*.model.json``."""
    found = set(folder.glob("*.model.json"))
    sj = folder / "study.json"
    if sj.is_file():
        found.add(sj)
        try:
            listed = [s.get("model_card") for s in json.loads(sj.read_text(encoding="utf-8")).get("feature_sets", [])]
        except (OSError, ValueError, AttributeError):
            listed = []
        found |= {folder / Path(n).name for n in listed if isinstance(n, str) and (folder / Path(n).name).is_file()}
    return found


def check_study_folder(folder: Path, force: bool) -> set[Path]:
    """Refuse a non-empty output folder unless ``force``; returns the earlier study files that --force replaces."""
    if not folder.is_dir():
        return set()
    entries = sorted(p.name for p in folder.iterdir())
    if entries and not force:
        shown = ", ".join(entries[:6]) + (f" and {len(entries) - 6} more" if len(entries) > 6 else "")
        raise UserError(f"output folder {folder} is not empty ({shown}); choose a new -o folder, or pass --force to "
                        "replace the study files in it (its *.model.json and study.json; other files are kept)")
    return study_files(folder)


def parameter_file_name(features: str | Path) -> str | None:
    """The pyradiomics parameter file's name recorded by 'extract' in ``FEATURES.meta.json`` (None if absent)."""
    meta = Path(features).with_suffix(".meta.json")
    try:
        name = json.loads(meta.read_text(encoding="utf-8")).get("parameter_file")
    except (OSError, ValueError, AttributeError):
        return None
    return Path(name).name if isinstance(name, str) and name not in ("", "dict") else None


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
    """Calibration (modeling.calibration_record) and, with ``n_boot``, the stratified bootstrap AUC CI."""
    import numpy as np

    from her2radiomics import stats

    yy, pp = np.asarray(y, dtype=int), np.asarray(prob, dtype=float)
    boot = stats.bootstrap_auc_ci(yy, pp, n_boot=n_boot, seed=seed) if n_boot else None
    return {"calibration": modeling.calibration_record(yy, pp), "bootstrap": boot}


def build_study(task: str, classes: dict, results: list[tuple[str, modeling.TrainResult]], split: dict, prov: dict,
                notes: list[str], skipped: list[dict] = (), *, cohort_rows: list[dict] | None = None,
                bootstrap: int = 0, parameter_file: str | None = None) -> dict:
    """The ``her2radiomics.study/1`` record (docs/modeling.md) of feature-set models trained on the same splits
    (cards already saved: their checksums are recorded), with the pairwise DeLong matrix of every split and what
    a methods section quotes: cohort table, parameter file, seed, ICC result, selection funnel, Rad-score
    formula, calibration (slope, intercept, Brier, Hosmer-Lemeshow) and optional bootstrap CIs per split."""
    import numpy as np

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
            "rad_score": modeling.rad_score_formula(card) if card.get("coefficients") is not None else None,
            "splits": {sp: {**res.splits[sp], "metrics": card["metrics"][sp], "gdi": card["gdi"].get(sp),
                            **split_extras(res.splits[sp]["y"], res.splits[sp]["probabilities"], bootstrap, seed)}
                       for sp in res.splits},
        })
    first = results[0][1].splits
    names = [name for name, _ in results]
    delong = {sp: modeling.delong_matrix(np.asarray(first[sp]["y"]),
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
        "cohort_table": list(cohort_rows or []),
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


def format_table(study: dict) -> str:
    """The paper's table: per feature set and split, AUC (95% CI), accuracy, sensitivity, specificity, GDI."""
    lines = [f"{study['task']}: {study['classes']['event']} vs {', '.join(study['classes']['reference'])}",
             f"{'feature set':<14} {'sel':>4} {'split':<9} {'n':>4} {'AUC (95% CI)':<22} {'acc':>5} {'sens':>5} "
             f"{'spec':>5}  GDI"]
    for s in study["feature_sets"]:
        for k, (split, d) in enumerate(s["splits"].items()):
            m, g = d["metrics"], d["gdi"]
            gtxt = f"{100 * g['value']:.1f}% {g['zone']}" if g else ""
            sel = str(s["selection"]["n_selected"]) + ("!" if s["selection"]["fallback"] else "")
            lines.append(f"{s['name'] if k == 0 else '':<14} {sel if k == 0 else '':>4} {split:<9} {m['n']:>4} "
                         f"{fmt_auc(m):<22} {m['accuracy']:>5.3f} {m['sensitivity']:>5.3f} {m['specificity']:>5.3f}  {gtxt}")
    lines.append("selection funnel (candidates -> ICC -> non-constant -> MWU -> LASSO):")
    for s in study["feature_sets"]:
        sel, steps = s["selection"], dict(s["funnel"])
        icc = f"{steps['ICC']} after ICC" if sel.get("icc_threshold") is not None else "no ICC table"
        mwu = f"{steps['MWU']} after MWU" if sel.get("mwu_p") is not None else "no MWU filter"
        last, n_sel = s["funnel"][-1]  # LASSO, or RFE / no selector (issue 15a)
        extra = "".join(f" -> {steps[k]} after {k}" for k, opt in (("variance", "variance_threshold"),
                                                                   ("correlation", "max_correlation"))
                        if sel.get(opt) is not None and k in steps)
        lines.append(f"  {s['name']:<14} {steps['candidates']} candidates -> {icc} -> {steps['non-constant']} "
                     f"non-constant -> {mwu}{extra} -> {n_sel} selected" + ("" if last == "LASSO" else f" ({last})"))
    if any(s["selection"]["fallback"] for s in study["feature_sets"]):
        lines.append("! LASSO selected no feature; the first feature of the L1 path was kept (see the card)")
    return "\n".join(lines)
