"""Where the scoring runs: PyTorch (a fakescope checkpoint) or onnxruntime (a model made by ``fakescope export``).

Both offer what :class:`fakescope.Detector` uses of a model: ``predict_proba`` on uint8 pixels, ``preprocess``
(face stage included) and ``modality``. The ONNX graph takes float32 pixels in [0, 255], shape ``[B, 3, S, S]``,
and returns P(fake), shape ``[B]``; the checkpoint config is the ``.json`` file beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fakescope.errors import CheckpointError, ConfigError
from fakescope.zoo.checkpoint import (WEIGHTS, checkpoint_preprocess, load, read_config, read_config_file,
                                         weights_sha256)
from fakescope.zoo.pretrained import resolve_checkpoint
from fakescope.utils.optional import require

ONNX_INPUT = "pixels"
ONNX_OUTPUT = "p_fake"


def resolve_device(device: str | None) -> str:
    """``auto`` (or nothing): a GPU when there is one; otherwise the device asked for, checked."""
    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"device '{device}': {exc}") from None
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}': CUDA is not available on this machine (use --device cpu)")
    return str(device)


class OnnxImageModel:
    """onnxruntime in place of the PyTorch detector (``fakescope detect --backend onnx``)."""

    modality = "image"

    def __init__(self, onnx_path: str | Path, device: str = "cpu") -> None:
        ort = require("onnxruntime", extra="onnx", purpose="ONNX inference")
        self.path = Path(onnx_path)
        if not self.path.is_file():
            raise CheckpointError(f"{self.path}: ONNX file not found (make it with: fakescope export CHECKPOINT "
                                  "--format onnx)")
        meta = self.path.with_suffix(".json")
        if not meta.is_file():
            raise CheckpointError(f"{self.path}: the config {meta.name} exported beside it is missing")
        self.config: dict[str, Any] = read_config_file(meta)
        self.preprocess = checkpoint_preprocess(self.config, str(meta))
        if self.config.get("model", {}).get("modality", "image") != "image":
            raise CheckpointError(f"{meta}: ONNX inference covers image detectors only")
        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(self.path), providers=providers)
        except Exception as exc:
            raise CheckpointError(f"{self.path}: onnxruntime cannot load it ({exc})") from None
        self.providers = self.session.get_providers()

    def set_threads(self, threads: int) -> None:
        """onnxruntime's threads a call (0: its default), for lanes that each make their own calls: a new session."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:  # one thread a lane, that sleeps when idle rather than spin against the other lanes
            opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.path), opts, providers=self.providers)

    def predict_proba(self, pixels: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(pixels.float().cpu().numpy())
        return torch.from_numpy(self.session.run([ONNX_OUTPUT], {ONNX_INPUT: x})[0])


@dataclass
class Loaded:
    """A model ready to score, and what the records say of it."""

    model: Any  # a DetectorModel, or an OnnxImageModel
    config: dict[str, Any]
    source: str
    backend: str
    device: str
    version: str  # fakescope version + the first 12 hex digits of the weights' SHA-256


def load_model(path: str | Path, *, backend: str | None = None, onnx: str | Path | None = None,
               device: str | None = "auto", weights_file: str | Path | None = None) -> Loaded:
    """A checkpoint folder (or training run folder), a pretrained name (``ARCH.TAG``) or a Hub id
    (``hf-hub:user/name``) for PyTorch, or an exported ``.onnx`` file.

    ``backend='onnx'`` with a checkpoint folder uses its ``model.onnx`` (or ``onnx=FILE``), which must have been
    exported from the weights now in the folder. ``weights_file``: the official weights of a pretrained name,
    downloaded by hand. Raises :class:`CheckpointError` for a missing or broken one.
    """
    device = resolve_device(device)
    if str(path).endswith(".onnx"):
        path = Path(path)
    else:
        path = resolve_checkpoint(path, weights_file=weights_file)
    if onnx is not None or path.suffix == ".onnx" or backend == "onnx":
        folder = None if path.suffix == ".onnx" else path
        if onnx is None:
            onnx = path if folder is None else folder / "model.onnx"
        model = OnnxImageModel(onnx, device=device)
        exported_from = (model.config.get("export") or {}).get("weights_sha256")
        if folder is not None:
            if exported_from != weights_sha256(folder / WEIGHTS):
                raise CheckpointError(f"{onnx} was not exported from the weights now in {folder} (export it "
                                      f"again: fakescope export {folder} --format onnx)")
        digest = exported_from[:12] if exported_from else weights_sha256(Path(onnx))[:12]
        version = f"{model.config.get('fakescope_version', 'unknown')}+{digest}"
        return Loaded(model, model.config, str(onnx), "onnx", device, version)
    if backend not in (None, "torch"):
        raise ConfigError(f"backend '{backend}': choose torch or onnx")
    folder = path
    config = read_config(folder)
    model = load(folder, device=device).eval()
    version = f"{config.get('fakescope_version', 'unknown')}+{weights_sha256(folder / WEIGHTS)[:12]}"
    return Loaded(model, config, str(folder), "torch", device, version)
