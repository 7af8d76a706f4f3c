"""Weights in local files: reading a state dict safely, and loading it strictly with an error that lists what
does not match. Every loader of fakescope (checkpoints, backbones, converted releases) goes through here."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch
from torch import nn

from fakescope.errors import CheckpointError, WeightsUnavailableError


def load_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch pickle (read with ``weights_only=True``)."""
    import pickle

    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsUnavailableError(
            f"{path}: refused: the file is a pickle that asks to run code or build objects other than tensors "
            f"(read with weights_only=True: {(str(exc).splitlines() or [''])[0][:200]})") from None
    except Exception as exc:  # truncated, not a weights file, a safetensors header that lies
        raise WeightsUnavailableError(f"{path}: cannot be read as a weights file ({type(exc).__name__}: "
                                      f"{(str(exc).splitlines() or [''])[0][:200]})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightsUnavailableError(f"{path}: expected a state dict, found {type(obj).__name__}")
    return obj


def check_state_shapes(own: dict[str, tuple[int, ...]], given: dict[str, tuple[int, ...]], source: str,
                       model: str) -> None:
    """Raise :class:`CheckpointError` listing the missing, unexpected and mis-shaped keys when the shapes
    ``given`` (a weights file's) are not exactly the shapes ``own`` (the model's)."""
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(given[k])} vs model {tuple(own[k])}"
        for k in set(own) & set(given) if tuple(own[k]) != tuple(given[k])
    )
    if missing or unexpected or mismatched:
        def _fmt(title: str, items: list[str]) -> str:
            if not items:
                return ""
            shown = ", ".join(items[:10]) + (f", ... ({len(items)} in all)" if len(items) > 10 else "")
            return f"\n  {title} ({len(items)}): {shown}"

        raise CheckpointError(
            f"{source}: the weights do not match the model {model}"
            + _fmt("missing keys", missing) + _fmt("unexpected keys", unexpected) + _fmt("shape mismatches", mismatched)
        )


def load_state_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with an error that lists what does not match."""
    check_state_shapes({k: tuple(v.shape) for k, v in module.state_dict().items()},
                       {k: tuple(v.shape) for k, v in state.items()}, source, type(module).__name__)
    module.load_state_dict(state, strict=True)


@contextlib.contextmanager
def meta_init_skipped():
    """Within it, ``torch.nn.init``'s functions leave meta tensors as they are (for a model built on the meta
    device, as :func:`fakescope.zoo.checkpoint.load` first builds one to check its shapes).

    A meta tensor holds no values, so drawing them does nothing; but torch draws them through its Python
    reference implementations, whose first call imports ``torch._dynamo`` (1.5-2 s of every ``load``).
    Other tensors are initialised as before (the functions are put back afterwards; should another thread
    build a model meanwhile, it gets the same results)."""
    from torch.nn import init

    def skipping(fn):
        @functools.wraps(fn)
        def inner(tensor, *args, **kwargs):
            return tensor if getattr(tensor, "is_meta", False) else fn(tensor, *args, **kwargs)
        return inner

    saved = {n: getattr(init, n) for n in dir(init) if n.endswith("_") and not n.startswith("_")
             and callable(getattr(init, n))}
    try:
        for n, fn in saved.items():
            setattr(init, n, skipping(fn))
        yield
    finally:
        for n, fn in saved.items():
            setattr(init, n, fn)
