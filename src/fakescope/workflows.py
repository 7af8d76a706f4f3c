"""The jobs that chain the library's steps: an experiment (train, then evaluate the test sets) and the quickstart
(synthetic benchmark -> training -> cross-generator report). ``fakescope train`` and ``fakescope quickstart`` run
them; so can a script.

>>> from fakescope.config import load_config
>>> from fakescope.workflows import run_experiment
>>> result, evaluation = run_experiment(load_config("quickstart"))
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

from fakescope.config import ExperimentConfig, load_config
from fakescope.train.engine import TrainResult, train


def evaluate_test_sets(cfg: ExperimentConfig, result: TrainResult,
                       echo: Callable[[str], None] = print) -> dict[str, Any] | None:
    """Evaluate the selected checkpoint of ``result`` on ``cfg.data.test`` into ``RUN/eval``; adds the mean test
    metrics to ``RUN/summary.json``. ``None`` when there is nothing to evaluate."""
    from fakescope.eval.evaluate import evaluate
    from fakescope.train.data import resolve_sources

    if result.checkpoint is None or not cfg.data.test:
        return None
    evaluation = evaluate(
        result.checkpoint, resolve_sources(cfg.data, cfg.data.test), result.run_dir / "eval",
        batch_size=cfg.data.eval_batch_size or cfg.data.batch_size, num_workers=cfg.data.num_workers,
        threshold=cfg.eval.threshold, robustness=cfg.eval.robustness_levels if cfg.eval.robustness else None,
        echo=echo)
    summary_file = result.run_dir / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    summary["test_mean"] = evaluation.get("mean")
    summary_file.write_text(json.dumps(summary, indent=2, default=str))
    return evaluation


def calibrate_after_training(cfg: ExperimentConfig, result: TrainResult,
                             echo: Callable[[str], None] = print) -> dict[str, Any] | None:
    """Fit the selected checkpoint's calibration and operating points on the validation data (``data.val``), as
    ``fakescope calibrate`` does; a validation set that cannot give them (one class only) is a warning."""
    from fakescope.errors import FakescopeError
    from fakescope.eval.calibrate import calibrate_checkpoint
    from fakescope.train.data import resolve_sources

    if result.checkpoint is None or not cfg.data.val:
        return None
    try:
        return calibrate_checkpoint(result.checkpoint, resolve_sources(cfg.data, cfg.data.val),
                                    batch_size=cfg.data.eval_batch_size or cfg.data.batch_size,
                                    num_workers=cfg.data.num_workers, name="validation data (data.val)", echo=echo)
    except FakescopeError as exc:
        echo(f"warning: no operating points fitted: {exc}")
        return None


def run_experiment(cfg: ExperimentConfig, *, resume: bool = False, overwrite: bool = False,
                   extra_callbacks: list | None = None, evaluate_after: bool | None = None,
                   echo: Callable[[str], None] = print) -> tuple[TrainResult, dict[str, Any] | None]:
    """Train ``cfg``, then (``eval.after_training``, or ``evaluate_after``) evaluate its test sets.

    Returns the training result and the evaluation (``None`` when not evaluated).
    """
    result = train(cfg, resume=resume, overwrite=overwrite, extra_callbacks=extra_callbacks, echo=echo)
    calibrate_after_training(cfg, result, echo)
    do_eval = cfg.eval.after_training if evaluate_after is None else evaluate_after
    evaluation = evaluate_test_sets(cfg, result, echo) if do_eval else None
    return result, evaluation


def run_quickstart(data_dir: str = "data/synth", output_dir: str = "runs", config: str = "quickstart",
                   overrides: list[str] | None = None, synth=None, echo: Callable[[str], None] = print) -> dict:
    """Generate (or reuse) the benchmark, train, evaluate on every generator; returns the summary."""
    from fakescope.eval.report import markdown_table, metrics_table
    from fakescope.synth import SynthConfig, generate

    t0 = time.time()
    cfg = load_config(config, [f"data.root={data_dir}", f"output_dir={output_dir}", *(overrides or [])])
    synth = synth or SynthConfig(out=data_dir)
    echo(f"[1/3] synthetic benchmark -> {data_dir}")
    generate(synth, log=echo)
    echo(f"[2/3] training {cfg.model.name} on '{synth.train_generator}' fakes (run folder {cfg.run_dir})")
    result = train(cfg, overwrite=True, echo=echo)
    calibrate_after_training(cfg, result, echo)
    echo("[3/3] cross-generator evaluation")
    ev = evaluate_test_sets(cfg, result, echo) or {}
    minutes = (time.time() - t0) / 60
    if ev:
        echo(markdown_table(*metrics_table(ev)))
        unseen = [m["auc"] for n, m in ev["sets"].items() if n != synth.train_generator and m["auc"] is not None]
        if unseen:
            echo(f"trained on '{synth.train_generator}'; mean AUC over the {len(unseen)} unseen generators: "
                 f"{sum(unseen) / len(unseen):.4f}")
    echo(f"quickstart finished in {minutes:.1f} min")
    model = result.checkpoint
    echo("next: score your own files, or serve the model with its web page (a demonstration model: it was trained "
         "on the synthetic benchmark only)\n"
         f"  fakescope detect YOUR_FILES_OR_FOLDERS -m {model} --explain explain/\n"
         f"  fakescope serve {model}        # then open http://127.0.0.1:8000/\n"
         f"  report: {result.run_dir / 'eval' / 'report.html'}")
    return {"minutes": minutes, "evaluation": ev, "checkpoint": str(result.checkpoint)}
