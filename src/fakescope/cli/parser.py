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

# in the order `fakescope --help` lists them
SUBCOMMANDS = (add_train_parser, add_eval_parser, add_calibrate_parser, add_fuse_parser, add_synth_parser,
               add_prepare_parser, add_detect_parser, add_export_parser, add_serve_parser, add_models_parser, add_push_parser,
               add_config_parser, add_quickstart_parser)


def build_parser() -> argparse.ArgumentParser:
    """The command line; choices come from the registries and defaults from the option classes."""
    p = argparse.ArgumentParser(
        prog="fakescope",
        description="Generalizable deepfake and AI-generated image detection (SFCL-HCMF, FSSNet, SDR).",
    )
    p.add_argument("--version", action="version", version=f"fakescope {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add_parser in SUBCOMMANDS:
        add_parser(sub)
    for command in sub.choices.values():  # every option's help ends with its default
        command.formatter_class = HelpFormatter
    return p
