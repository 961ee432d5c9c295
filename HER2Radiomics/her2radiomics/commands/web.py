"""`her2radiomics web --session DIR [--port N] [--host 127.0.0.1]`: the QA session in a browser.

Serves the radiologist's QA workflow (slice views, segment editor, Generate shells / Detect
exclusions / Apply, Extract + Predict, Approve / Reject / Next) with trame-slicer on Slicer's own
MRML core. The app lives in ``HER2RadiomicsWeb`` and reuses ``HER2RadiomicsLib``'s logic; it is an
optional extra (``pip install .[web]``) and is imported only here, so the core package and every
other command work without trame or slicer-core. See docs/web.md.
"""

from __future__ import annotations

import argparse

HELP = "review a QA session in a browser (trame-slicer; optional extra: pip install .[web])"

#: what a Ctrl-C keeps (cli.main prints it): each decision was written to the session when it was made
INTERRUPTED = "the server stopped; every decision made in the page is already saved in the session"
#: the modules the web extra brings; a missing one gives one error line naming the extra
WEB_MODULES = ("trame", "trame_slicer", "slicer")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--session", required=True, metavar="DIR",
                        help="QA session folder made by 'her2radiomics qa init'")
    parser.add_argument("--port", type=int, default=8080, metavar="N", help="TCP port (default %(default)s; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default %(default)s: this machine only; 0.0.0.0 exposes the page to the network)")
    parser.add_argument("--reader", default=None, metavar="NAME",
                        help="reviewer name recorded with every decision (default: the session's reader)")
    parser.add_argument("--models", nargs="+", default=None, metavar="CARD",
                        help="stage-1 [and stage-2] model card JSON for Predict (default: the shipped demo cards)")
    parser.add_argument("--params", default=None, metavar="FILE",
                        help="pyradiomics parameter file for Extract (default: the one the model card was trained with)")


def missing_web_modules() -> list[str]:
    """Names of the web extra's modules that cannot be imported here."""
    import importlib.util

    out = []
    for name in WEB_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append(name)
    return out


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from her2radiomics.errors import UserError

    missing = missing_web_modules()
    if missing:
        raise UserError(
            f"the browser front end needs the 'web' extra ({', '.join(missing)} not installed); "
            "install it with: pip install .[web]  (or: pip install 'her2radiomics[web]')"
        )
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be 0-65535, got {args.port}")
    session = Path(args.session)
    if not session.is_dir():
        raise UserError(f"QA session folder not found: {session}; create one with 'her2radiomics qa init MANIFEST.csv -o {session}'")
    from her2radiomics.qa import QASession

    qa = QASession.open(session)  # not a session, unknown reader: one error line before any server starts
    if args.reader:
        qa.cases(args.reader)
    from HER2RadiomicsWeb.app import serve

    return serve(session, host=args.host, port=args.port, reader=args.reader, models=args.models, params=args.params)
