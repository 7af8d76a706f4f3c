"""Optimizers and the per-step learning-rate schedule (linear warm-up, then cosine or constant)."""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from fakescope.config import OptimConfig
from fakescope.errors import ConfigError


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    """Trainable parameters grouped by learning rate (``cfg.param_lr`` prefixes; first match wins)."""
    groups: dict[float, list[torch.nn.Parameter]] = {}
    matched = {prefix: 0 for prefix in cfg.param_lr}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        lr = cfg.lr
        for prefix, prefix_lr in cfg.param_lr.items():
            if name.startswith(prefix):
                lr = prefix_lr
                matched[prefix] += 1
                break
        groups.setdefault(lr, []).append(p)
    if not groups:
        raise ConfigError("the model has no trainable parameters")
    unused = [p for p, n in matched.items() if n == 0]
    if unused:
        raise ConfigError(f"optim.param_lr: no trainable parameter name starts with {', '.join(map(repr, unused))}")
    return [{"params": ps, "lr": lr} for lr, ps in groups.items()]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def lr_factor(step: int, *, total_steps: int, warmup_steps: int, schedule: str, min_ratio: float) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / span, 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = cfg.warmup_steps or int(round(cfg.warmup_epochs * steps_per_epoch))
    if warmup >= total_steps > 0:
        raise ConfigError(f"optim: warm-up ({warmup} steps) is not shorter than training ({total_steps} steps)")
    fn = partial(lr_factor, total_steps=total_steps, warmup_steps=warmup, schedule=cfg.schedule,
                 min_ratio=cfg.min_lr / cfg.lr)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
