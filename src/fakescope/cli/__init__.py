"""The ``fakescope`` command: a thin layer over the library.

Each subcommand imports what it needs when it runs, so a missing optional
extra only affects the command that needs it.
"""

from __future__ import annotations

import logging
import sys

from fakescope.cli.parser import build_parser
from fakescope.errors import FakescopeError
from fakescope.utils import console

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", force=True)
    console.VERBOSE = args.verbose
    try:
        return int(args.func(args) or 0)
    except FakescopeError as exc:
        print(f"fakescope: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fakescope: interrupted", file=sys.stderr)
        return 130
