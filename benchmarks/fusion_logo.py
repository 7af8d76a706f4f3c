"""Leave-one-generator-out table of a fusion on the built-in synthetic benchmark.

    python benchmarks/fusion_logo.py [--out DIR] [--seed 0]

Two fakescope detectors are trained on one generator's fakes (the quickstart's NPR, and the small ``simple_cnn``
with the same data and schedule), then ``fakescope fuse`` fits a fusion of the two plus the watermark and
provenance signals on the five test sets, with each generator held out in turn: the stacker fitted on the four
others, scored on the held-out one, beside each member alone. The baseline is the best single member on each
held-out generator; the last line is the mean held-out AUC of the fusion over that of the best member (above 1:
the fusion helps on generators it did not see). The figures depend on the seed, the CPU and the thread count.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from common import cpu_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="work folder (default: a new temporary folder)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse", action="store_true", help="keep members already trained in --out (a stopped run)")
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="fakescope-fusion-"))

    import torch
    import yaml

    import fakescope
    from fakescope.config import load_config
    from fakescope.eval.stacking import logo_markdown
    from fakescope.fuse import fuse
    from fakescope.synth import SynthConfig, generate
    from fakescope.train.engine import train

    t0 = time.time()
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.2f}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, seed {args.seed}")
    print(f"command: python benchmarks/fusion_logo.py --seed {args.seed}")
    data = out / "synth"
    synth = SynthConfig(out=str(data))
    generate(synth, log=lambda m: None)
    base = yaml.safe_load((Path(fakescope.__file__).parent / "configs" / "quickstart.yaml").read_text())
    members = []
    for name, model in (("npr", base["model"]), ("simple_cnn", {"name": "simple_cnn",
                                                                "preprocess": {"input_size": 64}})):
        cfg_data = {**base, "name": f"fusion_{name}", "model": model}
        cfg = load_config(data=cfg_data, overrides=[f"data.root={data}", f"output_dir={out / 'runs'}",
                                                    f"seed={args.seed}"])
        done = out / "runs" / f"fusion_{name}" / "model"
        if args.reuse and (done / "model.safetensors").is_file():
            print(f"kept {name} from a stopped run: {done}")
            members.append(str(done))
            continue
        t = time.time()
        result = train(cfg, overwrite=True, echo=lambda m: None)
        print(f"trained {name} on '{synth.train_generator}' fakes in {time.time() - t:.0f} s: {result.checkpoint}")
        members.append(str(result.checkpoint))
    report = fuse(members, [str(p) for p in sorted((data / "test").iterdir())], out / "fusion",
                  names=["npr", "simple_cnn"], echo=lambda m: None)
    table = report["leave_one_generator_out"]
    print()
    print(logo_markdown(table, ["npr", "simple_cnn"]))
    print()
    print(f"fusion beats its best member on {table['fusion_beats_best_member']} of {len(table['rows'])} held-out "
          f"generators; total {time.time() - t0:.0f} s; fusion folder {out / 'fusion'}")
    fused, best = table["mean"]["fusion_auc"], table["mean"]["best_member_auc"]
    print(f"mean held-out AUC, fusion / best single member: {fused:.4f} / {best:.4f} = {fused / best:.4f}")


if __name__ == "__main__":
    main()
