"""`her2radiomics study`: train + evaluate every feature set of one stage on the same split (the paper's table;
the work is her2radiomics.study's).

Writes ``DIR/<set>.model.json`` (one model card per feature set) and ``DIR/study.json`` (schema in
docs/modeling.md), and prints the per-set table and the DeLong matrix of every split.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from her2radiomics.commands import lazy_module
from her2radiomics.commands.options import (
    add_table_arguments,
    add_training_arguments,
    label_spec,
    load_table,
    print_notes,
    training_config,
)
from her2radiomics.errors import UserError

study = lazy_module("her2radiomics.study")  # imported on first use, not by --help


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
    parser.add_argument("--recipe", default=None, metavar="NAME",
                        help="a related study's settings (Resources/Recipes/NAME.yaml: gao2026, multiparametric-2025, "
                             "her2low-dce, cao2025, ultrasound-her2low, or a .yaml path); command-line options win")
    for a in parser._actions:  # with --recipe the task may come from the recipe (checked in run)
        if a.dest == "task":
            a.required = False
    _DEFAULTS.update({a.dest: a.default for a in parser._actions if a.dest != "help"})


_DEFAULTS: dict = {}


def run(args: argparse.Namespace) -> int:
    from her2radiomics.evaluation import format_delong
    from her2radiomics.fitting import training_provenance
    from her2radiomics.io import check_output
    from her2radiomics.selection import read_icc_table
    from her2radiomics.targets import check_feature_set

    check_output(args.output, "output folder", folder=True)
    if getattr(args, "recipe", None):  # issue 15 hook: a related study's options
        from her2radiomics import recipes

        recipe = recipes.load(args.recipe)
        for n in recipes.apply(args, recipe, _DEFAULTS) + recipes.check_inputs(recipe, args):
            print(f"note: {n}")
    if not getattr(args, "task", None):
        raise UserError("the following argument is required: --task (or give --recipe NAME)")
    stale = check_study_folder(Path(args.output), args.force)
    args.feature_sets = args.feature_sets or list(study.STUDY_SETS)
    if not 0 <= args.bootstrap <= 100_000:
        raise UserError(f"--bootstrap must be between 0 and 100000 replicates, got {args.bootstrap}")
    for name in args.feature_sets:  # a typo is an error; a known set without columns is skipped below
        check_feature_set(name)
    spec = label_spec(args)
    data = load_table(args, args.task, spec)
    base = training_config(args, args.feature_sets[0])
    splits = study.study_splits(data, base, spec.center_column)
    from her2radiomics.commands import modeloptions

    modeloptions.check(args)
    rec = None
    if modeloptions.active(args):  # issue 15 hook: ComBat on the training split before every feature set
        data, rec = modeloptions.harmonize_training(args, data, splits, spec)
    icc_table = read_icc_table(args.icc, args.id_column)
    prov = training_provenance(args.features, args.labels, spec, args.icc)
    out = Path(args.output)
    notes = list(data.notes)
    results, skipped = study.train_feature_sets(data, [training_config(args, n) for n in args.feature_sets], splits,
                                                icc_table=icc_table, id_column=spec.id_column, provenance=prov,
                                                center_column=spec.center_column)
    for s in skipped:
        print(f"note: skipping feature set {s['name']}: {s['reason']}")
    if modeloptions.active(args):  # issue 15 hook: clinical + combined models beside each set's card
        for _, res in results:
            modeloptions.finish_card(res.card, rec, modeloptions.clinical_section(args, res.card, data, splits, spec),
                                     args)
    study.save_cards(results, out)  # only after every set trained: nothing half-written on an error
    for name, res in results:
        notes += [f"{name}: {n}" for n in res.fit.notes]
    from her2radiomics.splits import case_table

    record = study.build_study(args.task, data.classes, results, study.split_record(base, spec.center_column), prov,
                               notes, skipped, case_rows=case_table(data, splits), bootstrap=args.bootstrap,
                               parameter_file=parameter_file_name(args.features))
    if modeloptions.active(args):
        modeloptions.study_extras(record, results)
    names = [s["name"] for s in record["feature_sets"]]
    delong = record["delong"]
    study.write_study(record, out)
    written = {out / s["model_card"] for s in record["feature_sets"]} | {out / "study.json"}
    for p in stale - written:  # --force: an earlier run's cards that this run did not rewrite
        p.unlink(missing_ok=True)
    print_notes(notes)
    print(format_table(record))
    for split in splits:
        if len(names) > 1:
            print(f"\n[{split}] " + format_delong(delong[split]))
    for name, res in results:
        if "clinical_models" in res.card:
            print(f"\n{name}: " + modeloptions.format_clinical(res.card["clinical_models"]))
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


def format_table(study: dict) -> str:
    """The paper's table: per feature set and split, AUC (95% CI), accuracy, sensitivity, specificity, GDI."""
    from her2radiomics.evaluation import format_auc

    lines = [f"{study['task']}: {study['classes']['event']} vs {', '.join(study['classes']['reference'])}",
             f"{'feature set':<14} {'sel':>4} {'split':<9} {'n':>4} {'AUC (95% CI)':<22} {'acc':>5} {'sens':>5} "
             f"{'spec':>5}  GDI"]
    for s in study["feature_sets"]:
        for k, (split, d) in enumerate(s["splits"].items()):
            m, g = d["metrics"], d["gdi"]
            gtxt = f"{100 * g['value']:.1f}% {g['zone']}" if g else ""
            sel = str(s["selection"]["n_selected"]) + ("!" if s["selection"]["fallback"] else "")
            lines.append(f"{s['name'] if k == 0 else '':<14} {sel if k == 0 else '':>4} {split:<9} {m['n']:>4} "
                         f"{format_auc(m):<22} {m['accuracy']:>5.3f} {m['sensitivity']:>5.3f} {m['specificity']:>5.3f}  {gtxt}")
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
