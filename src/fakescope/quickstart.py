"""The main job on the embedded default: synthetic benchmark -> training -> cross-generator report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from fakescope.config import load_config


def run_quickstart(data_dir: str = "data/synth", output_dir: str = "runs", config: str = "quickstart",
                   overrides: list[str] | None = None, synth=None, echo: Callable[[str], None] = print) -> dict:
    """Generate (or reuse) the benchmark, train, evaluate on every generator; returns the summary."""
    from fakescope.data.synth import SynthConfig, generate
    from fakescope.eval.report import markdown_table, metrics_table
    from fakescope.train.engine import train

    t0 = time.time()
    cfg = load_config(config, [f"data.root={data_dir}", f"output_dir={output_dir}", *(overrides or [])])
    synth = synth or SynthConfig(out=data_dir)
    echo(f"[1/3] synthetic benchmark -> {data_dir}")
    generate(synth, log=echo)
    echo(f"[2/3] training {cfg.model.name} on '{synth.train_generator}' fakes (run folder {cfg.run_dir})")
    result = train(cfg, overwrite=True, echo=echo)
    echo("[3/3] cross-generator evaluation")
    minutes = (time.time() - t0) / 60
    ev = result.evaluation or {}
    if ev:
        echo(markdown_table(*metrics_table(ev)))
        unseen = [m["auc"] for n, m in ev["sets"].items() if n != synth.train_generator and m["auc"] is not None]
        if unseen:
            echo(f"trained on '{synth.train_generator}'; mean AUC over the {len(unseen)} unseen generators: "
                 f"{sum(unseen) / len(unseen):.4f}")
        echo(f"report: {Path(cfg.run_dir) / 'eval' / 'report.html'}")
    echo(f"quickstart finished in {minutes:.1f} min")
    return {"minutes": minutes, "evaluation": ev, "checkpoint": str(result.checkpoint)}
