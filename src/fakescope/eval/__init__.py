"""Evaluation: metrics, test-set scoring, robustness sweeps and reports."""
