"""`her2radiomics demo [-o DIR] [--quick]`: the whole pipeline on embedded data (synthetic model, not for clinical use)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "the demonstration on embedded data (synthetic model, not for clinical use)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=Path, default=Path("demo_output"), help="output folder (default demo_output)")
    parser.add_argument("--quick", action="store_true", help="smaller cohort (30 phantoms, 5-fold CV) for tests")
    parser.add_argument("--jobs", type=int, default=2, help="parallel feature-extraction workers (default 2)")
    parser.add_argument("--no-breast1", action="store_true", help="do not look for the real pyradiomics breast1 case")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from her2radiomics.demo import run_demo

    run_demo(args.output, quick=args.quick, jobs=args.jobs, progress=not args.no_progress, use_breast1=not args.no_breast1)
    return 0
