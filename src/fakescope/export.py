"""ONNX export of image detectors, with a parity check against PyTorch.

The exported graph takes float32 pixels in [0, 255], shape ``[B, 3, S, S]`` (already resized and
cropped as the checkpoint's preprocessing says), normalises them itself, and returns P(fake), shape ``[B]``.
The batch dimension is dynamic. The checkpoint's ``config.json`` is written beside the ``.onnx`` file
(``model.onnx`` -> ``model.json``), with an ``export`` section (opset, parity figure, SHA-256 of the
weights it came from), so the input size, crop policy, label map and model name travel with it;
:class:`fakescope.Detector` reads both (``Detector.from_pretrained("model.onnx")``, through
:class:`fakescope.inference.backends.OnnxImageModel`).

Export goes through ``torch.export`` and the ONNX exporter of PyTorch (``dynamo=True``). Operators
that the exporter does not translate are decomposed first, with the same arithmetic:
``adaptive_avg_pool3d`` (the band pooling of SFCL-HCMF) into slices and means,
``scaled_dot_product_attention`` on 3-D inputs into matmul-softmax-matmul, and oneDNN's linear
(FSSNet's CPU inference path) into a plain linear. Tensors that a model
caches on its first call (FSSNet's frequency masks) are made by one call before export, so they
enter the graph as constants. The parity check then runs onnxruntime and PyTorch on random inputs
and refuses the file if they differ by more than :data:`PARITY_TOLERANCE`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fakescope.errors import CheckpointError, ConfigError
from fakescope.inference.backends import ONNX_INPUT, ONNX_OUTPUT
from fakescope.zoo.checkpoint import WEIGHTS, load, read_config, weights_sha256
from fakescope.zoo.pretrained import resolve_checkpoint
from fakescope.utils.optional import require

PARITY_TOLERANCE = 1e-4

log = logging.getLogger(__name__)


class ProbabilityHead(nn.Module):
    """pixels in [0, 255] -> P(fake): normalisation, the detector and the sigmoid in one graph."""

    def __init__(self, detector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # pixels are 0..255 floats; Detector.normalize takes floats as 0..1
        return torch.sigmoid(self.detector(self.detector.normalize(pixels / 255.0)).float())


@dataclass
class ExportResult:
    path: Path
    config_path: Path
    max_abs_diff: float
    batch_sizes: tuple[int, ...]
    input_size: int

    def summary(self) -> str:
        return (f"{self.path}: ONNX export of a {self.input_size} px image detector; parity with PyTorch on random "
                f"inputs (batches {', '.join(map(str, self.batch_sizes))}): max |diff| = {self.max_abs_diff:.3e} "
                f"(limit {PARITY_TOLERANCE:g})")


# ---------------------------------------------------------------- decompositions
def _adaptive_avg_pool(x: torch.Tensor, output_size) -> torch.Tensor:
    """Adaptive average pooling over the trailing dims as slices and means (windows as PyTorch defines them)."""
    dims = range(x.dim() - len(output_size), x.dim())
    for dim, out in zip(dims, output_size):
        n = x.shape[dim]
        if out is None or out == n:
            continue
        parts = []
        for i in range(out):
            start, end = (i * n) // out, -(-((i + 1) * n) // out)
            parts.append(x.narrow(dim, start, end - start).mean(dim, keepdim=True))
        x = torch.cat(parts, dim)
    return x


def _attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """scaled_dot_product_attention without dropout (inference), for any number of leading dims."""
    s = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    a = torch.matmul(q, k.transpose(-2, -1)) * s
    if is_causal:
        keep = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
        a = a.masked_fill(~keep, float("-inf"))
    if attn_mask is not None:
        a = a.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else a + attn_mask
    return torch.matmul(a.softmax(-1), v)


def _onednn_linear(x, weight, bias, attr="none", scalars=(), algorithm=""):
    """oneDNN's fused linear (a CPU fast path some models take at inference) as a plain linear."""
    if attr not in ("none", ""):
        raise NotImplementedError(f"ONNX export of oneDNN linear with fused '{attr}'")
    return torch.nn.functional.linear(x, weight, bias)


def _decompositions() -> dict:
    aten = torch.ops.aten
    table = {
        aten.adaptive_avg_pool3d.default: _adaptive_avg_pool,
        aten._adaptive_avg_pool3d.default: _adaptive_avg_pool,
        aten.scaled_dot_product_attention.default: _attention,
    }
    if hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        table[torch.ops.mkldnn._linear_pointwise.default] = _onednn_linear
    return table


# ------------------------------------------------------------------------ export
def export_onnx(checkpoint: str | Path, out: str | Path | None = None, *, opset: int = 18,
                check_batches: tuple[int, ...] = (1, 4), seed: int = 0, quiet: bool = True) -> ExportResult:
    """Export ``checkpoint`` to ``out`` (a ``.onnx`` file; default ``CHECKPOINT/model.onnx``) and verify it.

    Raises :class:`CheckpointError` when export fails or the parity check exceeds :data:`PARITY_TOLERANCE`
    (the file is then removed), :class:`ConfigError` for clip models.
    """
    require("onnx", extra="onnx", purpose="ONNX export")
    require("onnxscript", extra="onnx", purpose="ONNX export")
    require("onnxruntime", extra="onnx", purpose="the ONNX parity check")
    folder = resolve_checkpoint(checkpoint)
    model = load(folder, device="cpu").eval()
    if model.modality != "image":
        raise ConfigError(f"{checkpoint}: ONNX export covers image detectors; this one takes "
                          f"{model.modality}s (use the PyTorch backend for it)")
    out = folder / "model.onnx" if out is None else Path(out)
    if out.suffix != ".onnx":
        out = out / "model.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    size = model.preprocess.input_size
    wrapper = ProbabilityHead(model).eval()
    example = torch.randint(0, 256, (2, 3, size, size), generator=torch.Generator().manual_seed(seed)).float()
    with torch.no_grad():
        wrapper(example)  # tensors a model caches on first use become constants of the graph
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(), \
                (contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext()):
            warnings.simplefilter("ignore")
            program = torch.export.export(wrapper, (example,), dynamic_shapes={"pixels": {0: torch.export.Dim.DYNAMIC}},
                                          strict=False)
            program = program.run_decompositions(_decompositions())
            torch.onnx.export(program, (example,), str(out), dynamo=True, opset_version=opset,
                              input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT], verbose=False,
                              external_data=False)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        detail = next((ln.strip() for ln in str(exc).splitlines() if "No ONNX function found" in ln), first)
        raise CheckpointError(f"{checkpoint}: ONNX export failed ({type(exc).__name__}: {detail})") from exc
    diff = parity(out, model, size, check_batches, seed + 1)
    if not diff <= PARITY_TOLERANCE:  # also catches NaN
        out.unlink(missing_ok=True)
        raise CheckpointError(f"{out}: ONNX output differs from PyTorch by {diff:.2e} (> {PARITY_TOLERANCE:g}); "
                              "the file was removed")
    config = read_config(folder)
    config["export"] = {"format": "onnx", "opset": opset, "input": ONNX_INPUT, "output": ONNX_OUTPUT,
                        "weights_sha256": weights_sha256(folder / WEIGHTS), "parity_max_abs_diff": diff,
                        "parity_batches": list(check_batches)}
    config_path = out.with_suffix(".json")
    config_path.write_text(json.dumps(config, indent=2))
    return ExportResult(out, config_path, diff, tuple(check_batches), size)


def parity(onnx_path: str | Path, model, size: int, batches: tuple[int, ...], seed: int) -> float:
    """Largest absolute difference of P(fake) between onnxruntime and PyTorch on random images.

    The reference is the PyTorch inference path itself (``model.predict_proba`` on uint8 pixels, as
    :class:`fakescope.Detector` calls it); the ONNX model gets the same pixels as float32.
    """
    ort = require("onnxruntime", extra="onnx", purpose="ONNX inference")
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for b in batches:
        x = torch.randint(0, 256, (b, 3, size, size), generator=g, dtype=torch.uint8)
        with torch.no_grad():
            ref = model.predict_proba(x).float().numpy()
        got = sess.run([ONNX_OUTPUT], {ONNX_INPUT: x.float().numpy()})[0]
        if got.shape != ref.shape:
            raise CheckpointError(f"{onnx_path}: ONNX output shape {got.shape} != PyTorch {ref.shape} for batch {b}")
        worst = max(worst, float(np.abs(got.astype(np.float64) - ref.astype(np.float64)).max()))
    return worst
