"""Box arithmetic for face detection: overlap, non-maximum suppression, squaring, regression, and the
crops and downscaled frames the detector's stages run on."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


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


def square(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes made square around their centre (side = the longer side)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    cx, cy = boxes[:, 0] + w / 2, boxes[:, 1] + h / 2
    return torch.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], dim=1)


def regress(boxes: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
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

