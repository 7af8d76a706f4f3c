"""Console output: progress bars only on a terminal, Lightning's start-up notices only when verbose."""

from __future__ import annotations

import logging
import sys
import warnings

VERBOSE = False  # set by the CLI's --verbose


def show_progress(setting: bool | str) -> bool:
    """``"auto"``: a progress bar only when stderr is a terminal (not in CI logs or batch jobs)."""
    if setting == "auto":
        return sys.stderr.isatty()
    return bool(setting)


def quiet_lightning() -> None:
    """Lightning sets its loggers to INFO on import; keep its notices (GPU available, tips) for --verbose."""
    level = logging.INFO if VERBOSE else logging.WARNING
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(level)
    if not VERBOSE:  # a deprecation inside Lightning itself, not actionable by users
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
