"""Study recipes: one YAML file per related study (Resources/Recipes/NAME.yaml) setting the study's options.

``her2radiomics study --recipe NAME FEATURES.csv LABELS.csv -o DIR`` runs the study with the recipe's task,
feature sets (regions), selection, classifier, clinical variables and split; an option given on the command
line wins over the recipe. A recipe names what it needs that a table or this version may lack:

- ``options``: study options by their command-line name (``feature-sets``, ``mwu-p``, ``classifier``,
  ``selection``, ``clinical`` ...); an option this version does not have (e.g. ``--classifier`` before the
  classifiers land) is refused in one line naming it, never silently dropped;
- ``extract``: how the features (and computed label columns) the recipe needs are made (manifest columns,
  ``extract`` options; text for the reader, shown by the refusals below);
- ``needs_columns``: glob patterns of feature columns the recipe needs (e.g. ``t2_intra_*`` for a
  multi-sequence study): a table without a matching column is refused with the recipe's ``needs_note`` (which
  manifest columns / extract options give them);
- ``needs_mode``: the ``extract --mode`` the features must come from (``2d-max`` for the 2D ultrasound recipe),
  checked against ``FEATURES.meta.json``'s ``case_mode`` when that file is there;
- ``needs_labels_note``: where the labels-table columns of the (effective) ``--clinical`` variables come from
  (e.g. ``tic_type`` via ``kinetics.add_tic_to_labels``); a labels table lacking one is refused before training.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
from pathlib import Path
from typing import Any

from her2radiomics.errors import UserError

KEYS = {"name", "title", "reference", "summary", "sequences", "regions", "options", "extract", "needs_columns",
        "needs_note", "needs_mode", "needs_labels_note", "notes"}


def recipe_dir() -> Path:
    from her2radiomics.resources import resources_dir

    return resources_dir() / "Recipes"


def names() -> list[str]:
    return sorted(p.stem for p in recipe_dir().glob("*.yaml"))


def load(name_or_path: str) -> dict:
    """A recipe by name (Resources/Recipes/NAME.yaml) or path; one line for an unknown name or a bad file."""
    import yaml

    p = Path(name_or_path)
    if not p.suffix:
        p = recipe_dir() / f"{name_or_path}.yaml"
    if not p.is_file():
        raise UserError(f"unknown recipe {name_or_path!r}; use one of {', '.join(names())} or a recipe .yaml path")
    try:
        r = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"recipe {p.name} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(r, dict) or not isinstance(r.get("options", {}), dict):
        raise UserError(f"recipe {p.name} must be a mapping with an 'options' mapping")
    unknown = sorted(set(r) - KEYS)
    if unknown:
        raise UserError(f"recipe {p.name} has unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(KEYS))})")
    r.setdefault("name", p.stem)
    return r


def _dest(option: str) -> str:
    return option.lstrip("-").replace("-", "_")


def apply(args: argparse.Namespace, recipe: dict, defaults: dict[str, Any]) -> list[str]:
    """Set ``args`` from the recipe's options where the command line left the default; returns notes.

    An option the parser does not know is refused (one line); ``needs_columns`` is checked by :func:`check_table`."""
    notes = []
    for opt, value in (recipe.get("options") or {}).items():
        dest = _dest(opt)
        if dest not in defaults:
            raise UserError(f"recipe {recipe['name']} needs --{opt} {value}, which this version of her2radiomics does "
                            f"not have yet ({recipe.get('needs_note') or 'see the recipe file'}); run the study "
                            "without the recipe, or update")
        current = getattr(args, dest, None)
        if current == defaults[dest] or current is None:
            if isinstance(defaults[dest], bool) or isinstance(value, bool):
                value = bool(value)
            elif isinstance(value, list):
                value = [str(v) for v in value]
            elif isinstance(defaults[dest], (int, float)) and not isinstance(defaults[dest], bool):
                value = type(defaults[dest])(value)
            elif isinstance(value, (int, float)) and dest in ("test_center", "positive", "negative"):
                value = str(value)
            setattr(args, dest, value)
        else:
            notes.append(f"recipe {recipe['name']}: --{opt} from the command line ({current}) instead of {value}")
    return notes


def check_table(recipe: dict, columns: list[str]) -> None:
    """Refuse a features table lacking the recipe's ``needs_columns`` (one line with the recipe's ``needs_note``)."""
    for pat in recipe.get("needs_columns") or []:
        if not any(fnmatch.fnmatch(str(c), pat) for c in columns):
            raise UserError(f"recipe {recipe['name']} needs feature columns {pat!r}, which the features table lacks: "
                            f"{recipe.get('needs_note') or 'extract them first'}")


def check_mode(recipe: dict, features: str | Path) -> str | None:
    """Refuse features extracted in another ``--mode`` than the recipe's ``needs_mode`` (read from
    ``FEATURES.meta.json``); returns a note when that file is absent (the mode cannot be checked)."""
    need = recipe.get("needs_mode")
    if not need:
        return None
    meta = Path(features).with_suffix(".meta.json")
    try:
        rec = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"recipe {recipe['name']}: no readable {meta.name}, so the features' --mode {need} is not checked"
    mode = ((rec.get("case_mode") or {}) if isinstance(rec, dict) else {}).get("mode") or "3d"
    if mode != need:
        raise UserError(f"recipe {recipe['name']} needs features extracted with --mode {need}, but {Path(features).name} "
                        f"was extracted in mode {mode}: {recipe.get('needs_note') or 'extract them again'}")
    return None


def check_labels(recipe: dict, clinical: list[str] | None, labels: str | Path) -> None:
    """Refuse a labels table lacking a column of the effective ``--clinical`` variables, before any training, with
    the recipe's ``needs_labels_note`` (where such a column comes from)."""
    if not clinical:
        return
    from her2radiomics.clinical import parse_spec
    from her2radiomics.io import read_table

    have = {str(c).strip().lower() for c in read_table(labels, "labels table").columns}
    missing = [c for c in (parse_spec(v).column for v in clinical) if c.strip().lower() not in have]
    if missing:
        raise UserError(f"recipe {recipe['name']} needs labels column(s) {', '.join(repr(c) for c in missing)}, which "
                        f"{Path(labels).name} lacks: {recipe.get('needs_labels_note') or 'add them'}")


def check_inputs(recipe: dict, args: argparse.Namespace) -> list[str]:
    """Every input check of a recipe after :func:`apply` (features table columns and mode, labels columns);
    returns notes."""
    from her2radiomics.io import read_table

    check_table(recipe, list(read_table(args.features, "features table").columns))
    note = check_mode(recipe, args.features)
    check_labels(recipe, getattr(args, "clinical", None), args.labels)
    return [note] if note else []
