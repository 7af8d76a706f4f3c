"""MTCNN (Zhang et al., "Joint Face Detection and Alignment using Multi-task Cascaded Convolutional
Networks", 2016) written here with torch ops and batched over the frames of a video.

Its weights are the P-, R- and O-Net state dicts that the ``facenet-pytorch`` wheel ships in
``facenet_pytorch/data/``: nothing is downloaded at run time. That package's own code imports torchvision,
so it is never imported; only its weight files are read (``torch.load(..., weights_only=True)``). Install it
with::

    pip install --no-deps facenet-pytorch==2.6.0

(``--no-deps``: its metadata pins an old torch that would replace the installed one.)
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from fakescope.errors import MissingExtraError, WeightsUnavailableError
from fakescope.faces.boxes import batched_nms, crop_resize, regress, shrink, square
from fakescope.faces.detector import Face, FaceDetector, register_detector

MTCNN_INSTALL = "pip install --no-deps facenet-pytorch==2.6.0"


class _Pyramid:
    """The detection images for P-Net at decreasing scales.

    Levels are made by PIL's area filter in uint8 (several times faster than
    torch's area interpolation on CPU), then normalised for MTCNN.
    """

    def __init__(self, frames: Sequence[np.ndarray], scales: list[float], device: torch.device) -> None:
        h, w = frames[0].shape[:2]
        self.full = _to_input(frames, device)
        self.scales = list(scales)
        self._by_scale: dict[float, torch.Tensor] = {}
        images = [Image.fromarray(f) for f in frames]  # once per frame, not once per level
        for s in scales:
            if s >= 1.0:
                continue
            size = (max(math.ceil(w * s), 1), max(math.ceil(h * s), 1))
            self._by_scale[s] = _to_input([np.asarray(im.resize(size, Image.Resampling.BOX)) for im in images],
                                          device)

    def level(self, scale: float) -> torch.Tensor:
        """P-Net's input at ``scale``."""
        if scale in self._by_scale:
            return self._by_scale[scale]
        h, w = self.full.shape[2:]  # upscaled (smallest face under 12 pixels)
        return F.interpolate(self.full, size=(math.ceil(h * scale), math.ceil(w * scale)), mode="bilinear")


# ------------------------------------------------------------------ MTCNN
class PNet(nn.Module):
    """MTCNN proposal network: fully convolutional, 12x12 windows at stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)  # face / not face
        self.conv4_2 = nn.Conv2d(32, 4, 1)  # box regression

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return torch.softmax(self.conv4_1(x), dim=1)[:, 1], self.conv4_2(x)


def _to_input(frames: Sequence[np.ndarray], device: torch.device) -> torch.Tensor:
    """uint8 RGB frames -> MTCNN's input: float ``[B, 3, H, W]`` scaled to about [-1, 1]."""
    # [B, H, W, C] permuted: channels-last memory, as the networks run; normalised in place
    x = torch.from_numpy(np.stack(frames)).to(device).permute(0, 3, 1, 2).float()
    return x.sub_(127.5).div_(128.0)


def _flatten_transposed(x: torch.Tensor) -> torch.Tensor:
    # the converted weights expect features in (W, H, C) order
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class RNet(nn.Module):
    """MTCNN refinement network on 24x24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu4(self.dense4(_flatten_transposed(self.prelu3(self.conv3(x)))))
        return torch.softmax(self.dense5_1(x), dim=1)[:, 1], self.dense5_2(x)


class ONet(nn.Module):
    """MTCNN output network on 48x48 crops: score, box regression, five landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu5(self.dense5(_flatten_transposed(self.prelu4(self.conv4(x)))))
        return torch.softmax(self.dense6_1(x), dim=1)[:, 1], self.dense6_2(x), self.dense6_3(x)


# R-/O-Net crops per forward pass: the activations stay in the CPU cache (measured: R-Net on 1444 crops
# takes about a third of the time of one pass over all of them)
CROP_CHUNK = 128


def _in_chunks(net: nn.Module, crops: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``net`` over ``crops`` in chunks of :data:`CROP_CHUNK`, outputs concatenated."""
    parts = [net(crops[i:i + CROP_CHUNK].contiguous(memory_format=torch.channels_last))
             for i in range(0, max(len(crops), 1), CROP_CHUNK)]
    return tuple(torch.cat(p) for p in zip(*parts))


def mtcnn_weights_dir() -> Path:
    """The folder of MTCNN weights the facenet-pytorch wheel ships (its code is not imported)."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(
            "face detection with MTCNN needs the weights shipped in the facenet-pytorch wheel, which is not "
            f"installed. Install it with: {MTCNN_INSTALL}  (or give --detector-weights FOLDER holding "
            "pnet.pt, rnet.pt and onet.pt)")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsUnavailableError(f"{path}: MTCNN weight file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsUnavailableError(f"{path}: cannot read MTCNN weights ({type(exc).__name__}: {exc})") from None


@register_detector("mtcnn")
class MTCNN(FaceDetector):
    """MTCNN, batched over frames, on torch ops.

    ``detect_size``: frames whose longer side exceeds it are downscaled to it
    for detection (boxes and landmarks are mapped back to full resolution);
    0 keeps full resolution. ``min_face``: smallest face searched for, in
    pixels of the detection image. ``thresholds``: score thresholds of the
    three stages. ``batch_size``: frames per P-Net pass.
    """

    name = "mtcnn"
    gives_landmarks = True
    takes_min_size = True

    def __init__(self, weights: str | None = None, device: str = "cpu", detect_size: int = 640,
                 min_face: int = 20, thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
                 factor: float = 0.709, batch_size: int = 8) -> None:
        folder = Path(weights) if weights else mtcnn_weights_dir()
        self.device = torch.device(device)
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        for net, stem in ((self.pnet, "pnet"), (self.rnet, "rnet"), (self.onet, "onet")):
            path = next((folder / f"{stem}{ext}" for ext in (".safetensors", ".pt")
                         if (folder / f"{stem}{ext}").is_file()), folder / f"{stem}.pt")
            state = _load_state(path)
            try:
                result = net.load_state_dict(state, strict=False)
            except RuntimeError as exc:  # shape mismatches
                raise WeightsUnavailableError(f"{path}: not MTCNN {stem} weights ({exc})") from None
            if result.missing_keys or result.unexpected_keys:
                raise WeightsUnavailableError(
                    f"{path}: not MTCNN {stem} weights (missing keys: {result.missing_keys}, "
                    f"unexpected keys: {result.unexpected_keys})")
            # channels-last runs these small convolutions and poolings about twice as fast on CPU
            net.to(self.device, memory_format=torch.channels_last).eval()
        self.detect_size = int(detect_size)
        self.min_face = float(min_face)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)
        self.batch_size = int(batch_size)

    # -- public --------------------------------------------------------
    def detect(self, frames: Sequence[np.ndarray], min_size: float | None = None) -> list[list[Face]]:
        """Faces in each frame; ``min_size`` (frame pixels, on top of ``min_face``): the pyramid levels
        whose windows are smaller are skipped, and the others are those of a full search."""
        out: list[list[Face]] = [[] for _ in frames]
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, f in enumerate(frames):
            by_size.setdefault(tuple(f.shape), []).append(i)
        for idx in by_size.values():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start:start + self.batch_size]
                for i, faces in zip(chunk, self._detect_same_size([frames[i] for i in chunk], min_size)):
                    out[i] = faces
        return out

    # -- the three stages ------------------------------------------------
    @torch.inference_mode()
    def _detect_same_size(self, frames: list[np.ndarray], min_size: float | None = None) -> list[list[Face]]:
        frames = [np.ascontiguousarray(f) for f in frames]
        h, w = frames[0].shape[:2]
        sx = sy = 1.0
        if self.detect_size and max(h, w) > self.detect_size:
            # shrink in uint8 (PIL's area filter) before anything becomes float
            size = (max(round(w * self.detect_size / max(h, w)), 1), max(round(h * self.detect_size / max(h, w)), 1))
            frames = [shrink(f, size) for f in frames]
            sx, sy = w / size[0], h / size[1]
        n = len(frames)
        scales = self._scales(*frames[0].shape[:2])
        if min_size:  # P-Net's 12-pixel windows at scale s see faces of about 12 / s detection pixels
            scales = [s for s in scales if 12.0 / s >= min_size / max(sx, sy)]
        pyramid = _Pyramid(frames, scales, self.device)

        boxes, scores, img = self._stage1(pyramid)
        if len(boxes):
            boxes, scores, img = self._stage2(pyramid, boxes, img)
        landmarks = torch.zeros((0, 5, 2))
        if len(boxes):
            boxes, scores, img, landmarks = self._stage3(pyramid, boxes, img)

        back = torch.tensor([sx, sy], dtype=boxes.dtype, device=boxes.device)
        boxes, landmarks = (boxes * back.repeat(2)).cpu().numpy(), (landmarks * back).cpu().numpy()
        scores, img = scores.cpu().numpy(), img.cpu().numpy()
        result: list[list[Face]] = [[] for _ in range(n)]
        for k in range(len(boxes)):
            result[int(img[k])].append(Face(tuple(float(v) for v in boxes[k]), float(scores[k]),
                                            tuple((float(px), float(py)) for px, py in landmarks[k])))
        return result

    def _scales(self, h: int, w: int) -> list[float]:
        scale = 12.0 / self.min_face
        side = min(h, w) * scale
        scales = []
        while side >= 12:
            scales.append(scale)
            scale *= self.factor
            side *= self.factor
        return scales

    def _stage1(self, pyramid: _Pyramid):
        """P-Net over an image pyramid: candidate windows, NMS per scale, then per frame."""
        all_boxes, all_reg, all_scores, all_img = [], [], [], []
        for scale in pyramid.scales:
            xs = pyramid.level(scale)
            prob, reg = self.pnet(xs.contiguous(memory_format=torch.channels_last))
            img, yy, xx = torch.nonzero(prob >= self.thresholds[0], as_tuple=True)
            if len(img) == 0:
                continue
            score, reg = prob[img, yy, xx], reg[img, :, yy, xx]
            cell = torch.stack([xx, yy, xx, yy], dim=1).float() * 2
            cell[:, 2:] += 12  # a 12x12 window every 2 pixels of the scaled image
            boxes = cell / scale
            keep = batched_nms(boxes, score, img, 0.5)
            all_boxes.append(boxes[keep])
            all_reg.append(reg[keep])
            all_scores.append(score[keep])
            all_img.append(img[keep])
        if not all_boxes:
            return torch.zeros((0, 4)), torch.zeros(0), torch.zeros(0, dtype=torch.long)
        boxes, reg, scores, img = (torch.cat(v) for v in (all_boxes, all_reg, all_scores, all_img))
        keep = batched_nms(boxes, scores, img, 0.7)
        return square(regress(boxes[keep], reg[keep])), scores[keep], img[keep]

    def _stage2(self, pyramid: _Pyramid, boxes, img):
        """R-Net on 24x24 crops: reject, regress, NMS."""
        crops = crop_resize(pyramid.full, boxes, img, 24)
        prob, reg = _in_chunks(self.rnet, crops)
        ok = prob > self.thresholds[1]
        boxes, reg, prob, img = boxes[ok], reg[ok], prob[ok], img[ok]
        keep = batched_nms(boxes, prob, img, 0.7)
        return square(regress(boxes[keep], reg[keep])), prob[keep], img[keep]

    def _stage3(self, pyramid: _Pyramid, boxes, img):
        """O-Net on 48x48 crops: final score, box, five landmarks; NMS by overlap of the smaller box."""
        crops = crop_resize(pyramid.full, boxes, img, 48)
        prob, reg, pts = _in_chunks(self.onet, crops)
        ok = prob > self.thresholds[2]
        boxes, reg, prob, img, pts = boxes[ok], reg[ok], prob[ok], img[ok], pts[ok]
        wh = (boxes[:, 2:] - boxes[:, :2])[:, None, :]
        landmarks = boxes[:, None, :2] + torch.stack([pts[:, :5], pts[:, 5:]], dim=2) * wh
        boxes = regress(boxes, reg)
        keep = batched_nms(boxes, prob, img, 0.7, mode="min")
        return boxes[keep], prob[keep], img[keep], landmarks[keep]

