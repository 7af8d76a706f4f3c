"""Regenerate the golden outputs: ``python tests/golden/make_golden.py [NAME ...]`` (default: every tiny model).

Run it only when a model's numerics change on purpose, and say why in the commit.
Each file holds the logits of one tiny registered model (seed 0 initialisation) on a
fixed input (seed 0 uniform noise), in eval mode and in train mode (seed 1), computed in float64
(tests/test_golden.py says why).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from test_golden import GOLDEN_MODELS, golden_logits  # noqa: E402


def main() -> None:
    names = sys.argv[1:] or GOLDEN_MODELS
    unknown = sorted(set(names) - set(GOLDEN_MODELS))
    if unknown:
        sys.exit(f"not a tiny registered model: {', '.join(unknown)} (known: {', '.join(GOLDEN_MODELS)})")
    for name in names:
        logits, shape = golden_logits(name)
        (HERE / f"{name}.json").write_text(json.dumps({"model": name, "input_shape": shape, "dtype": "float64",
                                                      "logits": logits}, indent=1) + "\n")
        print(name, logits)


if __name__ == "__main__":
    main()
