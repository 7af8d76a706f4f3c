"""The ``fakescope`` command: a thin layer over the library.

Each subcommand imports what it needs when it runs, so a missing optional
extra only affects the command that needs it.
"""

from __future__ import annotations

import logging
import os
import sys

from fakescope.cli.parser import build_parser, command_in
from fakescope.errors import FakescopeError
from fakescope.utils import console
from fakescope.utils.memory import huge_pages_for_large_tensors

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    huge_pages_for_large_tensors()  # before anything imports torch (fakescope.utils.memory)
    parser = build_parser(command_in(sys.argv[1:] if argv is None else list(argv)))
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also come after the options (`train CONFIG --resume k=v`), which argparse leaves
    # over once it has filled the positional list
    if extra and isinstance(getattr(args, "overrides", None), list):
        overrides = [a for a in extra if "=" in a and not a.startswith("-")]
        args.overrides += overrides
        extra = [a for a in extra if a not in overrides]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", force=True)
    # huggingface_hub prints through a handler of its own: its records must not reach the root handler too
    logging.getLogger("huggingface_hub").propagate = False
    console.VERBOSE = args.verbose
    _bytes_safe_stdout()
    try:
        _pixel_budget(getattr(args, "max_megapixels", None))
        return int(args.func(args) or 0)
    except FakescopeError as exc:
        print(f"fakescope: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM where a command turns it into a clean stop
        signum = getattr(exc, "signum", 2)
        print(f"fakescope: interrupted ({exc.args[0] if exc.args else 'SIGINT'})", file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:  # the reader of our output went away (`fakescope detect ... | head -1`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # as a program killed by SIGPIPE


def _pixel_budget(value: float | None) -> None:
    """``--max-megapixels``: for this process, and (through the environment) for the processes it starts."""
    if value is None:
        return
    from fakescope.media.limits import ENV_VAR, set_max_megapixels

    set_max_megapixels(value, "--max-megapixels")
    os.environ[ENV_VAR] = repr(float(value))


def _bytes_safe_stdout() -> None:
    """File names that are not valid UTF-8 (surrogate escapes in Python) are printed as their own bytes."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and (getattr(stream, "errors", "") or "strict") == "strict":
            try:
                reconfigure(errors="surrogateescape")
            except (ValueError, OSError):  # pragma: no cover - an unusual stream
                pass
