"""The ``fakescope`` command line: each subcommand's options are declared beside the command (``add_*_parser``);
choices come from the registries, defaults from the option classes."""

from __future__ import annotations

import argparse

from fakescope._version import __version__
from fakescope.cli.detect import add_detect_parser, add_export_parser
from fakescope.cli.evaluate import add_calibrate_parser, add_eval_parser
from fakescope.cli.fuse import add_fuse_parser
from fakescope.cli.models import add_models_parser, add_push_parser
from fakescope.cli.options import HelpFormatter
from fakescope.cli.prepare import add_prepare_parser
from fakescope.cli.serve import add_serve_parser
from fakescope.cli.synth import add_synth_parser
from fakescope.cli.train import add_config_parser, add_quickstart_parser, add_train_parser

# command -> the function that declares it, in the order `fakescope --help` lists them
COMMANDS = {"train": add_train_parser, "eval": add_eval_parser, "calibrate": add_calibrate_parser,
            "fuse": add_fuse_parser, "synth": add_synth_parser, "prepare": add_prepare_parser,
            "detect": add_detect_parser, "export": add_export_parser, "serve": add_serve_parser,
            "models": add_models_parser, "push": add_push_parser, "config": add_config_parser,
            "quickstart": add_quickstart_parser}


def command_in(argv: list[str]) -> str | None:
    """The subcommand that ``argv`` runs (its first word that is not an option), when it names one."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line; choices come from the registries and defaults from the option classes.

    ``command``: declare that subcommand alone (what running it needs). Some commands take their defaults from
    library functions whose modules are slow to import (``eval`` imports scikit-learn): declaring every command
    made each run of any one of them pay for all. Without it (``fakescope --help``, a misspelt command), all."""
    p = argparse.ArgumentParser(
        prog="fakescope",
        description="Generalizable deepfake and AI-generated image detection (SFCL-HCMF, FSSNet, SDR).",
    )
    p.add_argument("--version", action="version", version=f"fakescope {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add_parser in (COMMANDS[command],) if command in COMMANDS else COMMANDS.values():
        add_parser(sub)
    for command in sub.choices.values():  # every option's help ends with its default
        command.formatter_class = HelpFormatter
    return p
