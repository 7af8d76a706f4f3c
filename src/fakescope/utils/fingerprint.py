"""SHA-256 fingerprint of weights: where two machines' runs of the same job part ways (the weights a seed drew, or
the training that followed)."""

from __future__ import annotations

import hashlib
from typing import Mapping

import torch


def weights_sha256(weights: torch.nn.Module | Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a model's state dict (or of a state dict): each tensor's name, dtype, shape and raw bytes, in
    name order. Equal on two machines only where every bit of every tensor is."""
    state = weights.state_dict() if isinstance(weights, torch.nn.Module) else weights
    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()

