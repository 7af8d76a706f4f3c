"""Mutation check of the full-depth parity tests (tests/test_pretrained_parity.py): each converter is broken on
purpose (two blocks of the same shape swapped in its key map, or the head read in the wrong order) and the parity
function must then report a difference above the tolerance. A key map that orders blocks wrongly passes at one
block per stage; this shows that at the released depth it does not.

    .venv/bin/python tests/mutation_check.py            # every converter (CLIP ViT-L/14 included: about 1 minute)
    .venv/bin/python tests/mutation_check.py --quick    # without the CLIP ViT-L/14 one

Prints a table (converter, mutation, parity max abs diff in float64, caught) and exits non-zero if a mutation is
not caught, or if a converter left intact does not pass its parity test.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

import test_pretrained_parity as parity  # noqa: E402
from fakescope.zoo import convert as convert_module  # noqa: E402
from fakescope.models.layers import xception  # noqa: E402
from fakescope.models.sdr import resnet3d  # noqa: E402


def swap_prefixes(state: dict, a: str, b: str) -> dict:
    """``state`` with the keys under prefix ``a`` and those under ``b`` exchanged (two blocks swapped)."""
    out = {}
    for k, v in state.items():
        if k.startswith(a):
            k = b + k[len(a):]
        elif k.startswith(b):
            k = a + k[len(b):]
        out[k] = v
    return out


@contextmanager
def converter_patched(name: str, post: Callable[[dict], dict]) -> Iterator[None]:
    """The registered converter ``name`` with its mapped state passed through ``post``."""
    original = convert_module.CONVERTERS.get(name)

    def mutated(official, model):
        state, used, dropped = original(official, model)
        return post(state), used, dropped

    convert_module.CONVERTERS._objects[name] = mutated
    try:
        yield
    finally:
        convert_module.CONVERTERS._objects[name] = original


@contextmanager
def function_patched(module, attr: str, post: Callable) -> Iterator[None]:
    """``module.attr`` (a key-map function) with its result passed through ``post``."""
    original = getattr(module, attr)
    setattr(module, attr, lambda *a, **kw: post(original(*a, **kw)))
    try:
        yield
    finally:
        setattr(module, attr, original)


def flip_head(state: dict) -> dict:
    state = dict(state)
    state["head.weight"] = state["head.weight"].flip(1)  # the embedding read in reverse order
    return state


# converter -> (what is broken, context manager that breaks it)
MUTATIONS: dict[str, tuple[str, Callable[[], object]]] = {
    "torchvision_resnet": ("layer3 blocks 1 <-> 2", lambda: converter_patched(
        "torchvision_resnet", lambda s: swap_prefixes(s, "backbone.encoder.stages.2.layers.1.",
                                                      "backbone.encoder.stages.2.layers.2."))),
    "npr": ("layer2 blocks 1 <-> 2", lambda: converter_patched(
        "npr", lambda s: swap_prefixes(s, "stages.4.", "stages.5."))),
    "deepfakebench_xception": ("middle blocks 5 <-> 6", lambda: converter_patched(
        "deepfakebench_xception", lambda s: swap_prefixes(s, "block5.", "block6."))),
    "imagenet_xception (cadene)": ("middle blocks 7 <-> 8", lambda: function_patched(
        xception, "map_imagenet_xception_keys", lambda r: (swap_prefixes(r[0], "block7.", "block8."), r[1]))),
    "imagenet_xception (timm)": ("middle blocks 10 <-> 11", lambda: function_patched(
        xception, "map_imagenet_xception_keys", lambda r: (swap_prefixes(r[0], "block10.", "block11."), r[1]))),
    # blocks 12 and 13 of B4: the same stage (112 channels), identical shapes
    "deepfakebench_efficientnet": ("blocks 12 <-> 13", lambda: converter_patched(
        "deepfakebench_efficientnet", lambda s: swap_prefixes(s, "backbone.encoder.blocks.12.",
                                                              "backbone.encoder.blocks.13."))),
    "icpr2020_efficientnet": ("blocks 25 <-> 26", lambda: converter_patched(
        "icpr2020_efficientnet", lambda s: swap_prefixes(s, "backbone.encoder.blocks.25.",
                                                         "backbone.encoder.blocks.26."))),
    "linear_head": ("head weight reversed along the embedding", lambda: converter_patched(
        "linear_head", flip_head)),
    "i3d (slowfast)": ("res4 blocks 1 <-> 3", lambda: function_patched(
        resnet3d, "convert_state", lambda r: (swap_prefixes(r[0], "stages.2.1.", "stages.2.3."), r[1]))),
    "i3d (torchvision)": ("res4 blocks 2 <-> 4", lambda: function_patched(
        resnet3d, "convert_state", lambda r: (swap_prefixes(r[0], "stages.2.2.", "stages.2.4."), r[1]))),
    "i3d (transformers)": ("res3 blocks 1 <-> 2", lambda: function_patched(
        resnet3d, "convert_state", lambda r: (swap_prefixes(r[0], "stages.1.1.", "stages.1.2."), r[1]))),
}


def run(name: str, mutate: Callable[[], object] | None) -> float:
    """The float64 max abs diff of ``name``'s parity function (``mutate``: broken first); inf if it raised."""
    import huggingface_hub.constants as constants

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        os.environ["FAKESCOPE_HOME"] = str(tmp_path / "home")
        old_cache = constants.HF_HUB_CACHE
        constants.HF_HUB_CACHE = str(tmp_path / "hf-cache")
        try:
            if mutate is None:
                return parity.PARITY[name](tmp_path / "run", tmp_path / "hf-cache")[0]
            with mutate():
                return parity.PARITY[name](tmp_path / "run", tmp_path / "hf-cache")[0]
        except Exception as exc:  # a mutation may also break the load (a shape that no longer fits)
            print(f"  {name}: raised {type(exc).__name__}: {str(exc).splitlines()[0][:120]}", file=sys.stderr)
            return float("inf")
        finally:
            constants.HF_HUB_CACHE = old_cache


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="leave out the CLIP ViT-L/14 converter (linear_head)")
    args = ap.parse_args(argv)
    assert set(MUTATIONS) == set(parity.PARITY), "every parity function needs a mutation"
    torch.set_num_threads(max(1, torch.get_num_threads()))
    names = [n for n in MUTATIONS if not (args.quick and n == "linear_head")]
    rows, failed = [], False
    start = time.perf_counter()
    for name in names:
        what, mutate = MUTATIONS[name]
        intact = run(name, None)
        broken = run(name, mutate)
        ok_intact = intact <= parity.TOL64
        caught = broken > parity.TOL64
        failed |= not (ok_intact and caught)
        rows.append((name, what, intact, broken, "yes" if caught else "NO", "" if ok_intact else "intact FAILS"))
    print(f"| converter | mutation | max abs diff, intact | max abs diff, mutated | caught |")
    print("|---|---|---|---|---|")
    for name, what, intact, broken, caught, note in rows:
        print(f"| {name} | {what} | {intact:.2e} | {broken:.3g} | {caught}{' (' + note + ')' if note else ''} |")
    print(f"tolerance (float64): {parity.TOL64:g}; {len(rows)} converters in {time.perf_counter() - start:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
