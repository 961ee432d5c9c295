"""`her2radiomics qa`: QA sessions over a cohort (init, status, add-reader, set, manifest); see docs/qa.md."""

from __future__ import annotations

import argparse

HELP = "QA sessions over a cohort: init, status, add-reader, set, manifest (docs/qa.md)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="qa_command", metavar="ACTION", parser_class=type(parser))
    p = sub.add_parser("init", help="create a QA session folder from a cohort manifest")
    p.add_argument("manifest", help="cohort manifest CSV (case_id,image,lesion[,air,pectoralis,label,series])")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="new (or empty) session folder")
    p.add_argument("--reader", default=None, metavar="NAME", help="first reader's name (default reader1)")
    p.add_argument("--distances", type=float, nargs="+", default=[1.0, 3.0, 5.0], metavar="MM",
                   help="shell distances for the excluded-volume statistics (default 1 3 5, as extract)")
    p.add_argument("--no-auto-exclusions", action="store_true",
                   help="excluded volumes without automatic air/pectoralis detection (as extract --no-auto-exclusions)")
    p = sub.add_parser("status", help="print the review progress per reader")
    p.add_argument("session", metavar="DIR")
    p.add_argument("--reader", default=None, metavar="NAME", help="only this reader")
    p.add_argument("--cases", action="store_true", help="also one line per case: case, reader, status, reviewer, note")
    p = sub.add_parser("add-reader", help="add a (by default blind) second reader for all cases or a subset")
    p.add_argument("session", metavar="DIR")
    p.add_argument("reader", metavar="NAME")
    p.add_argument("--cases", nargs="+", default=None, metavar="ID", help="only these cases (default: all)")
    p.add_argument("--not-blind", action="store_true", help="show this reader the manifest's lesion (default: hidden)")
    p = sub.add_parser("set", help="record a decision for a case without a viewer")
    p.add_argument("session", metavar="DIR")
    p.add_argument("case_id", metavar="CASE_ID")
    p.add_argument("status", choices=("pending", "approved", "edited", "rejected"))
    p.add_argument("--reader", default=None, metavar="NAME", help="reader (default: the session's first)")
    p.add_argument("--note", default="", help="note (required to reject)")
    p = sub.add_parser("manifest", help="manifest with a reader column and the reviewed masks (for extract / ICC)")
    p.add_argument("session", metavar="DIR")
    p.add_argument("-o", "--output", required=True, metavar="MANIFEST.csv")
    p.add_argument("--all", action="store_true", help="every reviewed-or-not case (default: approved/edited only)")


def run(args: argparse.Namespace) -> int:
    from her2radiomics.errors import UserError
    from her2radiomics.qa import QASession

    cmd = args.qa_command
    if cmd is None:
        raise UserError("qa needs an action: init, status, add-reader, set or manifest; see 'her2radiomics qa --help'")
    if cmd == "init":
        s = QASession.create(args.manifest, args.output, reader=args.reader, distances=args.distances,
                             auto_exclusions=not args.no_auto_exclusions)
        print(f"QA session {s.path}: {len(s.cases())} case(s), reader {s.first_reader}")
        return 0
    s = QASession.open(args.session)
    if cmd == "status":
        print(f"QA session {s.path}: {len(s.cases())} case(s)")
        for p in s.status(args.reader):
            print(p.text())
        if args.cases:
            for rev in s.reviews(args.reader):
                print(f"  {rev.case_id}\t{rev.reader}\t{rev.status}\t{rev.reviewer}\t{rev.note}")
        return 0
    if cmd == "add-reader":
        s.add_reader(args.reader, blind=not args.not_blind, cases=args.cases)
        n = len(s.cases(args.reader))
        print(f"reader {args.reader} added ({'blind' if s.is_blind(args.reader) else 'sees the manifest lesion'}, "
              f"{n} case(s))")
        return 0
    if cmd == "set":
        reader = args.reader or s.first_reader
        rev = s.set_status(args.case_id, reader, args.status, note=args.note)
        print(f"{rev.case_id} ({reader}): {rev.status}")
        return 0
    if cmd == "manifest":
        n = s.write_manifest(args.output, only_approved=not args.all)
        print(f"{n} row(s) written to {args.output}")
        return 0
    raise UserError(f"unknown qa action {cmd!r}")
