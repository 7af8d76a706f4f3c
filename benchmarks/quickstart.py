"""Quickstart benchmark: wall time and cross-generator AUC of the main job, from nothing.

    python benchmarks/quickstart.py [--out DIR] [--seed 0]

Runs the same job as ``fakescope quickstart`` (benchmark generation, training,
evaluation) in a fresh folder and prints the per-generator AUCs, the mean AUC, the
mean over the generators not seen in training and the wall time. The goal is at
most 10 minutes on 2 CPU cores and a mean AUC of at least 0.85; the last line is
the wall time as a ratio of the 10-minute budget (below 1 meets it).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

BUDGET_S = 600.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="work folder (default: a new temporary folder)")
    ap.add_argument("--seed", type=int, default=0, help="seed of training (the benchmark data always uses 0)")
    args = ap.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="fakescope-quickstart-")

    import torch

    from fakescope.workflows import run_quickstart

    t0 = time.perf_counter()
    res = run_quickstart(data_dir=os.path.join(out, "data"), output_dir=os.path.join(out, "runs"),
                         overrides=[f"seed={args.seed}"], echo=lambda m: None)
    wall = time.perf_counter() - t0
    sets = res["evaluation"]["sets"]
    mean = res["evaluation"]["mean"]["auc"]
    unseen = [m["auc"] for n, m in sets.items() if n != "tconv"]
    print(f"machine: {os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, m in sets.items():
        print(f"  {name:<14} AUC {m['auc']:.4f}  AP {m['ap']:.4f}  Acc {m['acc']:.4f}")
    print(f"mean AUC over all {len(sets)} generators: {mean:.4f} (goal >= 0.85)")
    print(f"mean AUC over the {len(unseen)} unseen generators: {sum(unseen) / len(unseen):.4f}")
    print(f"wall time: {wall:.1f} s (budget {BUDGET_S:.0f} s)")
    print(f"ratio wall time / 10-minute budget: {wall / BUDGET_S:.3f}")


if __name__ == "__main__":
    main()
