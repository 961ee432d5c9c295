"""The ``her2radiomics`` command line: one sub-command per pipeline step.

Each sub-command lives in ``her2radiomics.commands.<name>`` and exposes ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only when needed, so
``her2radiomics --help`` stays fast and a broken optional dependency affects only its command.
A :class:`UserError` becomes one ``error: ...`` line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from her2radiomics import NOT_FOR_CLINICAL_USE, __version__
from her2radiomics.errors import UserError

COMMANDS: dict[str, str] = {
    "phantom": "generate a synthetic breast DCE-MRI phantom (image, lesion, air, pectoralis)",
    "regions": "lesion + peritumoral shells (1/3/5 mm) with air/pectoralis exclusions",
    "extract": "pyradiomics features for a cohort manifest (lesion and every shell)",
    "train": "train one stage's LASSO + logistic regression model card",
    "evaluate": "evaluate a model card on a features + labels table",
    "compare": "DeLong comparison of two or more model cards on the same cases",
    "study": "train and evaluate all four feature sets for a stage (the paper's table)",
    "predict": "stage-wise P(positive), P(low), P(zero) with feature contributions",
    "report": "self-contained HTML report of a study and its predictions",
    "qa": "QA sessions over a cohort: init, status, add-reader, set, manifest (docs/qa.md)",
    "demo": "the demonstration on embedded data (synthetic model, not for clinical use)",
    "web": "review a QA session in a browser (trame-slicer; optional extra: pip install .[web])",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line + exit 2, as for every user mistake
        self.exit(2, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def build_parser(only: str | None = None, *, every: bool = False) -> argparse.ArgumentParser:
    """The parser with the options of command ``only`` (or of every command when ``every``); the other commands
    get their one-line help only, so ``her2radiomics --help`` imports no command module (and no numpy)."""
    parser = _Parser(
        prog="her2radiomics",
        description=f"HER2Radiomics {__version__}: stage-wise HER2 prediction from DCE-MRI radiomics. {NOT_FOR_CLINICAL_USE}",
    )
    parser.add_argument("--version", action="version", version=f"her2radiomics {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if every or name == only:
            mod = importlib.import_module(f"her2radiomics.commands.{name}")
            mod.add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    mod = None
    try:
        mod = importlib.import_module(f"her2radiomics.commands.{args.command}")
        return int(mod.run(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        # a command may say what an interruption keeps (INTERRUPTED); outputs are atomic, so by default nothing
        after = getattr(mod, "INTERRUPTED", "no output was written")
        print(f"\nerror: interrupted (Ctrl-C); {after}", file=sys.stderr)
        return 130
