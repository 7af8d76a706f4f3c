"""The generator families of the synthetic benchmark: each re-synthesises an image's content with its own
fingerprint (see :mod:`fakescope.synth`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fakescope.errors import ConfigError

FAMILIES = ("tconv", "nearest", "bilinear", "pixelshuffle", "diffusion")


def _randn(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=g)


def _zero_mean(w: torch.Tensor) -> torch.Tensor:
    """Remove each kernel's mean (over its spatial taps), scaled to unit RMS per tap."""
    w = w - w.mean(dim=(-2, -1), keepdim=True)
    return w / w.pow(2).mean().sqrt().clamp_min(1e-8) / w.shape[-1]


def _bilinear_kernel_4x4() -> torch.Tensor:
    k = torch.tensor([0.25, 0.75, 0.75, 0.25])
    return torch.outer(k, k)


class Generator:
    """A generator family with weights fixed by ``seed``; ``__call__`` maps images in [0,1] to fakes."""

    def __init__(self, family: str, seed: int, fingerprint: float = 0.04, texture: float = 0.06,
                 width: int = 16) -> None:
        if family not in FAMILIES:
            raise ConfigError(f"unknown generator family '{family}' (known: {', '.join(FAMILIES)})")
        self.family = family
        self.fingerprint = fingerprint
        self.texture = texture
        g = torch.Generator().manual_seed(seed)
        self.stages = {"tconv": 2, "nearest": 2, "bilinear": 1, "pixelshuffle": 1, "diffusion": 1}[family]
        eye = torch.eye(3)
        self.up: list[torch.Tensor] = []
        self.refine: list[tuple[torch.Tensor, torch.Tensor]] = []
        for _ in range(self.stages):
            # Perturbations have zero mean over each kernel, so flat regions keep their colour;
            # what differs between families is how the perturbation varies with the output phase.
            if family == "tconv":  # [in, out, 4, 4]: a bilinear kernel per channel, perturbed
                w = eye[:, :, None, None] * _bilinear_kernel_4x4() + fingerprint * _zero_mean(_randn(g, 3, 3, 4, 4))
            elif family == "pixelshuffle":  # [3*4, 3, 3, 3]: each sub-pixel a perturbed identity
                delta = torch.zeros(3, 3, 3, 3)
                delta[torch.arange(3), torch.arange(3), 1, 1] = 1.0
                w = delta.repeat_interleave(4, dim=0) + fingerprint * _zero_mean(_randn(g, 12, 3, 3, 3))
            else:  # [3, 3, 3, 3]: identity plus a perturbation
                w = torch.zeros(3, 3, 3, 3)
                w[torch.arange(3), torch.arange(3), 1, 1] = 1.0
                w = w + fingerprint * _zero_mean(_randn(g, 3, 3, 3, 3))
            self.up.append(w)
            self.refine.append((_randn(g, width, 3, 3, 3) / math.sqrt(27), _randn(g, 3, width, 3, 3) / math.sqrt(9 * width)))

    def noise_shape(self, n: int, size: int) -> list[tuple[int, ...]]:
        """Shapes of the noise fields that drive the texture of ``n`` images of side ``size``, one per stage."""
        if self.family == "diffusion":
            raise ConfigError("the diffusion family draws its own noise at every step; it takes no noise fields")
        side = size // 2 ** self.stages
        return [(n, self.refine[i][0].shape[0], side * 2 ** (i + 1), side * 2 ** (i + 1)) for i in range(self.stages)]

    def _texture(self, h: torch.Tensor, i: int, g: torch.Generator, noise: torch.Tensor | None = None) -> torch.Tensor:
        w1, w2 = self.refine[i]
        z = F.conv2d(F.pad(h, (1, 1, 1, 1), mode="reflect"), w1)
        z = F.relu(z + 0.5 * (torch.randn(z.shape, generator=g) if noise is None else noise))
        return self.texture * torch.tanh(F.conv2d(F.pad(z, (1, 1, 1, 1), mode="reflect"), w2))

    def _upsample(self, h: torch.Tensor, i: int) -> torch.Tensor:
        w = self.up[i]
        if self.family == "tconv":
            return F.conv_transpose2d(h, w, stride=2, padding=1)
        if self.family == "pixelshuffle":
            return F.pixel_shuffle(F.conv2d(F.pad(h, (1, 1, 1, 1), mode="replicate"), w), 2)
        h = F.interpolate(h, scale_factor=2, mode="nearest" if self.family == "nearest" else "bilinear",
                          align_corners=None if self.family == "nearest" else False)
        return F.conv2d(F.pad(h, (1, 1, 1, 1), mode="replicate"), w)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, g: torch.Generator, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``x``: ``[N, 3, S, S]`` in [0, 1] (S divisible by 4) -> fakes of the same shape.

        The texture is driven by standard normal noise drawn from ``g``, or by the given
        ``noise`` fields (shaped as :meth:`noise_shape` says; not for ``diffusion``).
        """
        if self.family == "diffusion":
            if noise is not None:
                self.noise_shape(len(x), x.shape[-1])  # raises
            return self._diffusion(x, g)
        h = F.avg_pool2d(x, 2 ** self.stages)
        for i in range(self.stages):
            h = self._upsample(h, i)
            h = h + self._texture(h, i, g, None if noise is None else noise[i])
        return h.clamp(0, 1)

    def _diffusion(self, x: torch.Tensor, g: torch.Generator, steps: int = 8, start: float = 0.8) -> torch.Tensor:
        # DDIM (eta = 0) from alpha_bar = start (SDEdit strength) to 1, with a fixed "denoiser":
        # x0_hat = blur(z) + texture(z); eps_hat follows from z and x0_hat.
        ab = torch.linspace(start, 0.999, steps)
        k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
        k = (torch.outer(k, k) / 256.0).expand(3, 1, 5, 5)
        z = ab[0].sqrt() * (2 * x - 1) + (1 - ab[0]).sqrt() * torch.randn(x.shape, generator=g)
        x0 = z
        for t in range(steps):
            x0 = F.conv2d(F.pad(z, (2, 2, 2, 2), mode="reflect"), k, groups=3)
            x0 = x0 + self._texture(x0, 0, g)
            if t == steps - 1:
                break
            eps = (z - ab[t].sqrt() * x0) / (1 - ab[t]).sqrt()
            z = ab[t + 1].sqrt() * x0 + (1 - ab[t + 1]).sqrt() * eps
        return ((x0 + 1) / 2).clamp(0, 1)


