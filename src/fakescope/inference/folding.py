"""Batch norms folded into the convolutions before them: the copy of a model that ``fakescope detect`` scores
with (``--batch-size auto``), the same function with one pass over the activations less per batch norm.

Which convolution feeds which batch norm is found by running the model once, with every call that reads a
convolution's output counted (:class:`_Readers`): a pair is folded only where that output has no other reader,
so a residual branch that also reads it keeps its value. Each folded convolution is then checked on its own
against the model's convolution and batch norm on random inputs. (A check of the whole model's logits on random
pixels, as before, said little and refused too much: a model with batch-norm statistics of real images can answer
noise with logits of 1e6, where float32 rounding alone moves them by 1e5; EfficientNet-B4 with such statistics
was scored unfolded.)
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

log = logging.getLogger(__name__)

# calls that read a tensor's description, not its values: not counted as readers
_METADATA = {"__get__", "size", "dim", "stride", "numel", "is_contiguous", "element_size", "__len__",
             "is_floating_point", "get_device", "data_ptr", "storage_offset", "is_complex"}


class _Readers(TorchFunctionMode):
    """During one forward pass: how many torch calls read each tensor given to :meth:`watch` (a call
    that only asks its shape, dtype or layout is not counted)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[int, list] = {}  # id -> [tensor (held: its id is not reused meanwhile), readers]

    def watch(self, t: torch.Tensor) -> None:
        self.counts[id(t)] = [t, 0]

    def readers(self, t: torch.Tensor) -> int:
        entry = self.counts.get(id(t))
        return -1 if entry is None or entry[0] is not t else entry[1]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") not in _METADATA:
            for a in (*args, *kwargs.values()):
                for t in (a if isinstance(a, (list, tuple)) else (a,)):
                    entry = self.counts.get(id(t))
                    if entry is not None and entry[0] is t:
                        entry[1] += 1
        return func(*args, **kwargs)


def _pairs(model, x: torch.Tensor) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]] | None:
    """(convolution, batch norm) for each BatchNorm2d call whose input is the output of the Conv2d run just before
    it, where nothing else reads that output; None where a module of a pair runs more than once (a module used
    twice cannot be changed for one use)."""
    last: list = [None, None]
    runs: dict[int, int] = {}
    found: list[tuple[nn.Conv2d, nn.BatchNorm2d, torch.Tensor]] = []
    mode = _Readers()

    def after_conv(m, i, out):
        runs[id(m)] = runs.get(id(m), 0) + 1
        last[:] = [m, out]
        mode.watch(out)

    def before_norm(m, i):
        runs[id(m)] = runs.get(id(m), 0) + 1
        if i and i[0] is last[1]:
            found.append((last[0], m, i[0]))

    hooks = []
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            hooks.append(mod.register_forward_hook(after_conv))
        elif isinstance(mod, nn.BatchNorm2d):
            hooks.append(mod.register_forward_pre_hook(before_norm))
    try:
        with mode:
            model(x)
    finally:
        for h in hooks:
            h.remove()
    pairs = [(conv, bn) for conv, bn, out in found if mode.readers(out) == 1]  # the batch norm's read alone
    if any(runs[id(conv)] != 1 or runs[id(bn)] != 1 for conv, bn in pairs):
        return None
    return pairs


def _probe(shape: tuple[int, ...], n: int, gen: torch.Generator, device) -> torch.Tensor:
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=gen).to(device)


def _close(got: torch.Tensor, want: torch.Tensor, tolerance: float) -> bool:
    return float((got.float() - want.float()).abs().max()) <= tolerance * (1.0 + float(want.abs().max()))


def _layer_input(conv: nn.Conv2d, gen: torch.Generator) -> torch.Tensor:
    side = max(8, max(d * (k - 1) + 1 for k, d in zip(conv.kernel_size, conv.dilation)) + 2)
    return torch.randn(2, conv.in_channels, side, side, generator=gen).to(conv.weight.device, conv.weight.dtype)


@torch.no_grad()
def fold_batchnorm(model, shape: tuple[int, ...], device: str = "cpu", tolerance: float = 1e-5):
    """A copy of ``model`` in which each BatchNorm2d (in evaluation, with running statistics) whose input is the
    output of the Conv2d run just before it, and read by nothing else, is folded into that convolution's weights
    and bias: the same function, one pass over the activations less. The pairs are found by running the copy
    once on random pixels of ``shape``; each folded convolution is checked against its convolution and batch norm
    in the model on random inputs (within ``tolerance``, relative). ``None`` where there is nothing to fold, or a
    check fails."""
    fast = copy.deepcopy(model).eval()
    gen = torch.Generator().manual_seed(0)
    pairs = _pairs(fast, fast.normalize(_probe(shape, 2, gen, device)))
    if not pairs:
        return None
    pairs = [(c, bn) for c, bn in pairs if bn.track_running_stats and bn.running_var is not None]
    if not pairs:
        return None
    names = {id(m): n for n, m in fast.named_modules()}
    originals = dict(model.named_modules())
    for conv, bn in pairs:
        scale = (bn.weight if bn.affine else 1.0) / torch.sqrt(bn.running_var + bn.eps)  # y = scale*(z-mean)+beta
        shift = (bn.bias if bn.affine else 0.0) - bn.running_mean * scale
        bias = shift if conv.bias is None else conv.bias * scale + shift
        conv.weight = nn.Parameter(conv.weight * scale.reshape(-1, 1, 1, 1), requires_grad=False)
        conv.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)
        bn.forward = nn.Identity().forward  # this copy's instance only: the model's own batch norms are untouched
        z = _layer_input(conv, gen)
        want = originals[names[id(bn)]](originals[names[id(conv)]](z))
        if not _close(conv(z), want, tolerance):
            log.info("batch norms not folded: %s folded into %s gives other values than the two in turn",
                     names[id(bn)], names[id(conv)])
            return None
    return fast
