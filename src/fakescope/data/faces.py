"""Face detection for data preparation: a backend interface, MTCNN, and face tracks over a video.

The default backend is MTCNN (Zhang et al., "Joint Face Detection and Alignment
using Multi-task Cascaded Convolutional Networks", 2016) written here with
torch ops and batched over the frames of a video. Its weights are the P-, R-
and O-Net state dicts that the ``facenet-pytorch`` wheel ships in
``facenet_pytorch/data/``: nothing is downloaded at run time. That package's
own code imports torchvision, so it is never imported; only its weight files
are read (``torch.load(..., weights_only=True)``). Install it with::

    pip install --no-deps facenet-pytorch==2.6.0

(``--no-deps``: its metadata pins an old torch that would replace the installed one.)

Other detectors plug in through :func:`register_detector` or as
``module:Class`` (see :func:`create_detector`); a backend implements
:meth:`FaceDetector.detect` on a list of RGB frames. :class:`DlibDetector` is
an example that takes the user's own weight files.
"""

from __future__ import annotations

import abc
import importlib
import importlib.util
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from fakescope.errors import DataError, MissingExtraError, WeightsUnavailableError

MTCNN_INSTALL = "pip install --no-deps facenet-pytorch==2.6.0"


@dataclass(frozen=True)
class Face:
    """One detected face in frame pixel coordinates.

    ``box`` is ``(x1, y1, x2, y2)``; ``landmarks`` are five ``(x, y)`` points in
    image order: left eye, right eye, nose tip, left mouth corner, right mouth
    corner ("left" = left side of the image), or ``None`` when the backend gives none.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[tuple[float, float], ...] | None = None
    track: int = 0

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2


class FaceDetector(abc.ABC):
    """A face detector backend.

    ``detect`` takes RGB ``uint8`` frames ``[H, W, 3]`` (the frames of one
    video usually share a size, which lets a backend batch them) and returns,
    for each frame, the faces found in it (any order, ``track`` left at 0).

    A backend with ``takes_min_size = True`` also takes ``min_size``, the
    smallest face to search for in frame pixels (``fakescope prepare`` uses
    it after a video's first frame, see :func:`track_face`); for faces well
    above that size it must find what a search for every size finds.
    """

    name: str = "detector"
    gives_landmarks: bool = False
    takes_min_size: bool = False

    @abc.abstractmethod
    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Face]]:
        ...


# --------------------------------------------------------------- registry
_BACKENDS: dict[str, Callable[..., FaceDetector]] = {}


def register_detector(name: str):
    """Class decorator: make a :class:`FaceDetector` available as ``--detector NAME``."""

    def wrap(cls):
        _BACKENDS[name] = cls
        return cls

    return wrap


def list_detectors() -> list[str]:
    return sorted(_BACKENDS)


def create_detector(name: str = "mtcnn", weights: str | None = None, device: str = "cpu",
                    **options) -> FaceDetector:
    """A detector by registered name, or ``package.module:ClassName`` for a user's own backend.

    ``weights`` (a file or folder) and ``options`` are passed to the backend's
    constructor; ``device`` too, when the backend accepts it.
    """
    if ":" in name:
        mod_name, _, cls_name = name.partition(":")
        try:
            cls = getattr(importlib.import_module(mod_name), cls_name)
        except (ImportError, AttributeError) as exc:
            raise DataError(f"face detector '{name}': cannot import {cls_name} from {mod_name} ({exc})") from None
    elif name in _BACKENDS:
        cls = _BACKENDS[name]
    else:
        raise DataError(f"unknown face detector '{name}'; choose one of {', '.join(list_detectors())} "
                        "or give a backend class as package.module:ClassName")
    kwargs = dict(options)
    if weights is not None:
        kwargs["weights"] = weights
    try:
        return cls(device=device, **kwargs)
    except TypeError:
        return cls(**kwargs)


# ------------------------------------------------------------ box helpers
def box_iou(a: torch.Tensor, b: torch.Tensor, mode: str = "union") -> torch.Tensor:
    """Pairwise overlap of boxes ``[N, 4]`` and ``[M, 4]``: IoU, or intersection over the smaller area."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    if mode == "min":
        denom = torch.minimum(area_a[:, None], area_b[None, :])
    else:
        denom = area_a[:, None] + area_b[None, :] - inter
    return inter / denom.clamp(min=1e-9)


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, mode: str = "union") -> torch.Tensor:
    """Greedy non-maximum suppression; indices of the kept boxes, best first.

    Scores are ranked to 6 decimals and ties keep the boxes' order, so that
    rounding noise (P-Net's softmax saturates at 1 for many windows) does not
    decide which box survives (it would differ between devices, or between
    batches of other sizes).
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    order = torch.argsort(torch.round(scores * 1e6), descending=True, stable=True)
    over = (box_iou(boxes[order], boxes[order], mode) > threshold).cpu().numpy()
    keep = np.ones(len(order), dtype=bool)
    for i in range(len(order)):
        if keep[i]:
            keep[i + 1:] &= ~over[i, i + 1:]
    return order[torch.from_numpy(keep).to(order.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float,
                mode: str = "union") -> torch.Tensor:
    """NMS within each group (frame, or frame and scale) independently."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    kept = []
    for g in torch.unique(groups):
        idx = torch.nonzero(groups == g).flatten()
        kept.append(idx[nms(boxes[idx], scores[idx], threshold, mode)])
    return torch.cat(kept)


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes made square around their centre (side = the longer side)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    cx, cy = boxes[:, 0] + w / 2, boxes[:, 1] + h / 2
    return torch.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], dim=1)


def _regress(boxes: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    """Apply MTCNN's box regression offsets (fractions of the box size)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes + reg * torch.stack([w, h, w, h], dim=1)


def shrink(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``frame`` (uint8) resized down to ``size`` (width, height) by area averaging (PIL).

    An exact integer factor (1920x1080 or 1280x720 to 640x360) uses
    ``Image.reduce``, several times faster than the general box filter.
    """
    h, w = frame.shape[:2]
    img = Image.fromarray(frame)
    f = w // size[0]
    if f >= 2 and w == f * size[0] and h == f * size[1]:
        return np.asarray(img.reduce(f))
    return np.asarray(img.resize(size, Image.Resampling.BOX))


def crop_resize(image: torch.Tensor, boxes: torch.Tensor, image_idx: torch.Tensor, size: int) -> torch.Tensor:
    """Cut ``boxes`` (pixel coordinates) out of ``image`` ``[B, C, H, W]`` and resize each to ``size``.

    As in facenet-pytorch's MTCNN: box corners rounded to whole pixels, the
    part of a box outside the image filled with zeros, area interpolation
    (adaptive average pooling, the op behind ``F.interpolate(mode="area")``).
    """
    n = boxes.shape[0]
    _, c, h, w = image.shape
    if n == 0:
        return image.new_zeros((0, c, size, size))
    frames = image.unbind(0)
    crops = []
    for (x1, y1, x2, y2), b in zip(boxes.round().int().tolist(), image_idx.tolist()):
        bw, bh = max(x2 - x1, 1), max(y2 - y1, 1)
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x1 + bw, w), min(y1 + bh, h)
        if sx2 <= sx1 or sy2 <= sy1:
            crops.append(image.new_zeros((c, size, size)))
            continue
        patch = frames[b][:, sy1:sy2, sx1:sx2]
        if (sx1, sy1, sx2, sy2) != (x1, y1, x1 + bw, y1 + bh):
            patch = F.pad(patch, (sx1 - x1, x1 + bw - sx2, sy1 - y1, y1 + bh - sy2))
        crops.append(F.adaptive_avg_pool2d(patch, (size, size)))
    return torch.stack(crops)


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
        return _square(_regress(boxes[keep], reg[keep])), scores[keep], img[keep]

    def _stage2(self, pyramid: _Pyramid, boxes, img):
        """R-Net on 24x24 crops: reject, regress, NMS."""
        crops = crop_resize(pyramid.full, boxes, img, 24)
        prob, reg = _in_chunks(self.rnet, crops)
        ok = prob > self.thresholds[1]
        boxes, reg, prob, img = boxes[ok], reg[ok], prob[ok], img[ok]
        keep = batched_nms(boxes, prob, img, 0.7)
        return _square(_regress(boxes[keep], reg[keep])), prob[keep], img[keep]

    def _stage3(self, pyramid: _Pyramid, boxes, img):
        """O-Net on 48x48 crops: final score, box, five landmarks; NMS by overlap of the smaller box."""
        crops = crop_resize(pyramid.full, boxes, img, 48)
        prob, reg, pts = _in_chunks(self.onet, crops)
        ok = prob > self.thresholds[2]
        boxes, reg, prob, img, pts = boxes[ok], reg[ok], prob[ok], img[ok], pts[ok]
        wh = (boxes[:, 2:] - boxes[:, :2])[:, None, :]
        landmarks = boxes[:, None, :2] + torch.stack([pts[:, :5], pts[:, 5:]], dim=2) * wh
        boxes = _regress(boxes, reg)
        keep = batched_nms(boxes, prob, img, 0.7, mode="min")
        return boxes[keep], prob[keep], img[keep], landmarks[keep]


@register_detector("dlib")
class DlibDetector(FaceDetector):
    """dlib's HOG detector (built in, no file), or its CNN detector with the user's ``.dat`` file.

    ``weights``: ``mmod_human_face_detector.dat`` for the CNN detector; ``landmarks``:
    ``shape_predictor_68_face_landmarks.dat`` (or DeepfakeBench's 81-point one) for five landmarks.
    Needs ``pip install dlib-bin`` (prebuilt wheels; no compile).
    """

    name = "dlib"

    def __init__(self, weights: str | None = None, landmarks: str | None = None, upsample: int = 0) -> None:
        try:
            import dlib  # type: ignore[import-not-found]
        except ImportError as exc:
            raise MissingExtraError(f"the dlib face detector needs dlib: pip install dlib-bin ({exc})") from exc
        for f in (weights, landmarks):
            if f is not None and not Path(f).is_file():
                raise WeightsUnavailableError(f"{f}: dlib model file not found")
        self._cnn = weights is not None
        self._det = dlib.cnn_face_detection_model_v1(weights) if self._cnn else dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(landmarks) if landmarks else None
        self.gives_landmarks = self._shape is not None
        self.upsample = upsample

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Face]]:
        out = []
        for frame in frames:
            frame = np.ascontiguousarray(frame)
            faces = []
            for d in self._det(frame, self.upsample):
                rect, score = (d.rect, float(d.confidence)) if self._cnn else (d, 1.0)
                pts = None
                if self._shape is not None:
                    shape = self._shape(frame, rect)
                    pts = _five_points([(shape.part(i).x, shape.part(i).y) for i in range(shape.num_parts)])
                faces.append(Face((rect.left(), rect.top(), rect.right(), rect.bottom()), score, pts))
            out.append(faces)
        return out


def _five_points(pts: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    """The five points DeepfakeBench takes from dlib's 68- (or 81-) point shape: 37, 44, 30, 49, 55."""
    if len(pts) < 68:
        raise DataError(f"dlib shape predictor gave {len(pts)} points; five-point alignment needs the 68- or "
                        "81-point model (shape_predictor_68_face_landmarks.dat)")
    return tuple((float(pts[i][0]), float(pts[i][1])) for i in (37, 44, 30, 49, 55))


# ------------------------------------------------------------------ tracks
def link_tracks(faces_per_frame: Sequence[Sequence[Face]], max_shift: float = 0.75,
                max_scale: float = 2.0) -> list[list[Face]]:
    """Give each face a track id linking it to the same face in the neighbouring sampled frames.

    A face joins the track whose last box is nearest, when the centre moved by
    less than ``max_shift`` box sizes and the size changed by less than
    ``max_scale`` times; otherwise it starts a track. Tracks are numbered by
    total face area over the video, so track 0 is the dominant face.
    """
    tracks: list[list[tuple[int, Face]]] = []
    for t, faces in enumerate(faces_per_frame):
        candidates = []
        for fi, face in enumerate(faces):
            size_f = math.sqrt(max(face.area, 1e-6))
            for ti, tr in enumerate(tracks):
                last_t, last = tr[-1]
                if last_t == t:
                    continue
                size_l = math.sqrt(max(last.area, 1e-6))
                ratio = max(size_f, size_l) / min(size_f, size_l)
                dist = math.dist(face.center, last.center) / max(size_f, size_l)
                if dist <= max_shift and ratio <= max_scale:
                    candidates.append((dist + (ratio - 1), fi, ti))
        assigned: dict[int, int] = {}
        used_tracks: set[int] = set()
        for _, fi, ti in sorted(candidates):
            if fi not in assigned and ti not in used_tracks:
                assigned[fi] = ti
                used_tracks.add(ti)
        for fi, face in enumerate(faces):
            if fi in assigned:
                tracks[assigned[fi]].append((t, face))
            else:
                tracks.append([(t, face)])
    order = sorted(range(len(tracks)), key=lambda i: -sum(f.area for _, f in tracks[i]))
    out: list[list[Face]] = [[] for _ in faces_per_frame]
    for new_id, ti in enumerate(order):
        for t, face in tracks[ti]:
            out[t].append(replace(face, track=new_id))
    for faces in out:
        faces.sort(key=lambda f: f.track)
    return out


# Tracked face search (see track_face and fakescope.data.prepare.process_video): after a video's first
# frame, faces smaller than 1 / TRACK_SCALE of the main face's smallest recent size are not searched for (the
# pyramid levels with smaller windows, the largest and costliest, are skipped), in whole frames. Such a
# face has under a ninth of the main face's area in a frame. A frame is searched in full again
# (search_again) when no face is found near the main face's last box, or when the face found there is
# under TRACK_GUARD times the smallest size searched for: the main face moved away, is missing or shrank,
# and windows that would give its box in a full search may be among those skipped (a final box can come
# from a window smaller than the face, so a face near the smallest size searched for can get another box).
TRACK_SCALE = 3.0
TRACK_GUARD = 2.5


@dataclass(frozen=True)
class Track:
    """The main face's last box, and how small a face to search for in a video's next frames (frame pixels)."""

    box: tuple[float, float, float, float]
    min_size: float


def _side(box: tuple[float, float, float, float]) -> float:
    return max(box[2] - box[0], box[3] - box[1])


def track_face(faces_per_frame: Sequence[Sequence[Face]], recent: int = 8, scale: float = TRACK_SCALE,
               history: int = 32) -> Track | None:
    """The main face's last box, and ``1 / scale`` of its smallest box in the ``recent`` frames.

    The main face is that of :func:`select_faces` over the last ``history``
    frames (a bound: a run over every frame of a long video calls this once
    per batch; where that face is missing, :func:`select_faces` gives the
    frame's largest). ``None`` (search in full) when the ``recent`` frames
    hold no face.
    """
    main = [faces[0].box for faces in select_faces(faces_per_frame[-max(history, recent):])[-recent:] if faces]
    return Track(main[-1], min(_side(b) for b in main) / scale) if main else None


def search_again(faces: Sequence[Face], track: Track, guard: float = TRACK_GUARD) -> bool:
    """Whether a frame searched as ``track`` says must be searched in full.

    Yes when no face found has its centre within one side of the main
    face's last box from that box's centre (the face moved far, or is
    missing), or when the largest of those is under ``guard`` times the
    smallest size searched for (it shrank). Other faces do not count.
    """
    cx, cy, reach = (track.box[0] + track.box[2]) / 2, (track.box[1] + track.box[3]) / 2, _side(track.box)
    near = [f for f in faces if math.dist(f.center, (cx, cy)) <= reach]
    return not near or _side(max(near, key=lambda f: f.area).box) < guard * track.min_size


def select_faces(faces_per_frame: Sequence[Sequence[Face]], mode: str = "largest") -> list[list[Face]]:
    """``largest``: one face per frame, the video's main face; ``all``: every face, with linked track ids.

    ``largest`` takes, in each frame, the face of the main track (the one
    with the largest total area over the sampled frames, see
    :func:`link_tracks`), and the frame's largest face where the main track
    has none (the main face was missed, or the tracks broke at a cut). A
    larger face that shows up in a few frames, such as a face in an inset
    picture of a news programme, so does not replace the speaker in those
    frames, as it would with the per-frame rule of DeepfakeBench.
    """
    if mode == "all":
        return link_tracks(faces_per_frame)
    if mode != "largest":
        raise DataError(f"face selection '{mode}': choose 'largest' or 'all'")
    out = []
    for faces in link_tracks(faces_per_frame):
        main = [f for f in faces if f.track == 0]
        if main or faces:
            out.append([replace(main[0] if main else max(faces, key=lambda f: f.area), track=0)])
        else:
            out.append([])
    return out
