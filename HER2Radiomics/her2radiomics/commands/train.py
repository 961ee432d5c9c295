"""`her2radiomics train` (not implemented yet)."""

from __future__ import annotations

import argparse

from her2radiomics.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise UserError("'train' is not implemented yet")
