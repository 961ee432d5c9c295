"""Study recipes: one YAML file per related study (Resources/Recipes/NAME.yaml) setting the study's options.

``her2radiomics study --recipe NAME FEATURES.csv LABELS.csv -o DIR`` runs the study with the recipe's task,
feature sets (regions), selection, classifier, clinical variables and split; an option given on the command
line wins over the recipe. A recipe names what it needs that a table or this version may lack:

- ``options``: study options by their command-line name (``feature-sets``, ``mwu-p``, ``classifier``,
  ``selection``, ``clinical`` ...); an option this version does not have (e.g. ``--classifier`` before the
  classifiers land) is refused in one line naming it, never silently dropped;
- ``needs_columns``: glob patterns of feature columns the recipe needs (e.g. ``t2fs_intra_*`` for a
  multi-sequence study): a table without a matching column is refused with the recipe's ``needs_note``
  (e.g. that those inputs come with the imaging issue's multi-sequence / 2D / TIC extraction).
"""

from __future__ import annotations

import argparse
import fnmatch
from pathlib import Path
from typing import Any

from her2radiomics.errors import UserError

KEYS = {"name", "title", "reference", "summary", "sequences", "regions", "options", "needs_columns", "needs_note",
        "notes"}


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
