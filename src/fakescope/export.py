"""ONNX export of image detectors, with a parity check against PyTorch.

The exported graph takes float32 pixels in [0, 255], shape ``[B, 3, S, S]`` (already resized and
cropped as the checkpoint's preprocessing says), normalises them itself, and returns P(fake), shape ``[B]``.
The checkpoint's ``config.json`` is copied beside the ``.onnx`` file so the input size, crop policy
and label map travel with it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fakescope.errors import CheckpointError, ConfigError
from fakescope.utils.optional import require

ONNX_INPUT = "pixels"
ONNX_OUTPUT = "p_fake"
PARITY_TOLERANCE = 1e-4


class ProbabilityHead(nn.Module):
    """pixels in [0, 255] -> P(fake): normalisation, the detector and the sigmoid in one graph."""

    def __init__(self, detector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.detector(self.detector.normalize(pixels)).float())


@dataclass
class ExportResult:
    path: Path
    max_abs_diff: float
    batch_sizes: tuple[int, ...]


def export_onnx(checkpoint: str | Path, out: str | Path, *, opset: int = 18, check_batches: tuple[int, ...] = (1, 4),
                seed: int = 0) -> ExportResult:
    """Export ``checkpoint`` to ``out`` (a ``.onnx`` file) and verify it against PyTorch on random inputs."""
    from fakescope.checkpoint import CONFIG, _resolve, load

    require("onnx", extra="onnx", purpose="ONNX export")
    require("onnxscript", extra="onnx", purpose="ONNX export")
    model = load(checkpoint, device="cpu").eval()
    if model.modality != "image":
        raise ConfigError(f"{checkpoint}: ONNX export covers image detectors; this one takes {model.modality}s")
    out = Path(out)
    if out.suffix != ".onnx":
        out = out / "model.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    size = model.preprocess.input_size
    wrapper = ProbabilityHead(model).eval()
    example = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 255
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        torch.onnx.export(wrapper, (example,), str(out), dynamo=True, opset_version=opset,
                          input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
                          dynamic_shapes={"pixels": {0: batch}}, verbose=False)
    except Exception as exc:
        raise CheckpointError(f"{checkpoint}: ONNX export failed ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else exc!r})") from exc
    shutil.copyfile(_resolve(checkpoint) / CONFIG, out.with_suffix(".json"))
    diff = parity(out, wrapper, size, check_batches, seed + 1)
    if diff > PARITY_TOLERANCE:
        raise CheckpointError(f"{out}: ONNX output differs from PyTorch by {diff:.2e} (> {PARITY_TOLERANCE:g})")
    return ExportResult(out, diff, tuple(check_batches))


def parity(onnx_path: str | Path, wrapper: nn.Module, size: int, batches: tuple[int, ...], seed: int) -> float:
    """Largest absolute difference of P(fake) between onnxruntime and PyTorch on random inputs."""
    ort = require("onnxruntime", extra="onnx", purpose="ONNX inference")
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for b in batches:
        x = torch.rand(b, 3, size, size, generator=g) * 255
        with torch.no_grad():
            ref = wrapper(x).numpy()
        got = sess.run([ONNX_OUTPUT], {ONNX_INPUT: x.numpy()})[0]
        worst = max(worst, float(np.abs(got - ref).max()))
    return worst


class OnnxImageModel:
    """onnxruntime in place of the PyTorch detector, for ``fakescope detect --backend onnx``."""

    def __init__(self, onnx_path: str | Path, providers: list[str] | None = None) -> None:
        ort = require("onnxruntime", extra="onnx", purpose="ONNX inference")
        self.path = Path(onnx_path)
        meta = self.path.with_suffix(".json")
        if not meta.is_file():
            raise CheckpointError(f"{self.path}: the config {meta.name} exported beside it is missing")
        self.config = json.loads(meta.read_text())
        self.session = ort.InferenceSession(str(self.path), providers=providers or ["CPUExecutionProvider"])

    def predict_proba(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.float().cpu().numpy()
        return torch.from_numpy(self.session.run([ONNX_OUTPUT], {ONNX_INPUT: x})[0])
