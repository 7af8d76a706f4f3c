"""Evaluation: test-set scoring, robustness sweeps, reports, and the papers' tables."""

# the papers' tables, registered in fakescope.eval.tables.TABLES
from fakescope.eval import paper_fssnet, paper_sdr, paper_sfcl  # noqa: F401
