"""Face crops from a frame: five-point alignment (DeepfakeBench-compatible) or box plus margin.

``align``: the similarity transform that maps the five landmarks onto the
ArcFace 112-pixel template (shifted 8 px right, as in DeepfakeBench), scaled
to the output size and shrunk by ``scale`` (1.3) so that the crop shows the
face with a margin around it. This is DeepfakeBench's ``img_align_crop``:
same template, same scale, same least-squares similarity estimate
(scikit-image), bilinear sampling, black outside the frame.

``box``: a square around the detector's box, ``margin`` (1.3) times its
longer side, moved inside the frame where it fits, then resized to ``size``
(0 keeps the pixels as they are).

Crops are returned as arrays; the caller saves them losslessly (PNG).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from fakescope.errors import DataError

# ArcFace 112x112 five-point template: left eye, right eye, nose, left and right mouth corners.
ARCFACE_112 = np.array([[30.2946, 51.6963], [65.5318, 51.5014], [48.0252, 71.7366],
                        [33.5493, 92.3655], [62.7299, 92.2041]], dtype=np.float64)


def five_point_template(size: int, scale: float = 1.3) -> np.ndarray:
    """Where the five landmarks land in a ``size`` crop made with margin ``scale`` (DeepfakeBench)."""
    dst = ARCFACE_112.copy()
    dst[:, 0] += 8.0  # the 112x112 template is 96 px wide; centre it
    dst *= size / 112.0
    margin = size * (scale - 1) / 2.0
    dst = (dst + margin) * size / (size + 2 * margin)
    return dst


def align_face(frame: np.ndarray, landmarks: Sequence[Sequence[float]], size: int = 256,
               scale: float = 1.3) -> np.ndarray:
    """Five-point similarity alignment of the face to a ``size`` x ``size`` RGB crop."""
    from skimage.transform import SimilarityTransform, warp

    src = np.asarray(landmarks, dtype=np.float64)
    if src.shape != (5, 2) or not np.isfinite(src).all():
        raise DataError(f"alignment needs five (x, y) landmarks, got an array of shape {src.shape}")
    if size < 8:
        raise DataError(f"crop size must be at least 8 pixels for alignment, got {size}")
    tform = SimilarityTransform.from_estimate(src, five_point_template(size, scale)) \
        if hasattr(SimilarityTransform, "from_estimate") else _estimate(src, five_point_template(size, scale))
    if not tform:
        raise DataError("alignment failed: the five landmarks are degenerate (collinear or coincident)")
    out = warp(frame, tform.inverse, output_shape=(size, size), order=1, mode="constant", cval=0,
               preserve_range=True)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _estimate(src: np.ndarray, dst: np.ndarray):
    from skimage.transform import SimilarityTransform

    t = SimilarityTransform()
    return t if t.estimate(src, dst) else None


def margin_box(box: Sequence[float], frame_size: tuple[int, int], margin: float = 1.3) -> tuple[int, int, int, int]:
    """Square crop box around ``box`` (x1, y1, x2, y2): side = ``margin`` x the longer side.

    The square is shifted to lie inside the frame (``frame_size`` = width,
    height) when it fits; a square larger than the frame is centred and the
    part outside is filled with black by :func:`crop_box`.
    """
    if margin <= 0:
        raise DataError(f"crop margin must be positive, got {margin}")
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = frame_size
    side = max(x2 - x1, y2 - y1) * margin
    side = max(int(round(side)), 1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    if side <= w:
        left = min(max(left, 0), w - side)
    if side <= h:
        top = min(max(top, 0), h - side)
    return left, top, left + side, top + side


def crop_box(frame: np.ndarray, box: Sequence[float], size: int = 256, margin: float = 1.3) -> np.ndarray:
    """The face inside a square of ``margin`` x its box, resized to ``size`` (0: native size)."""
    h, w = frame.shape[:2]
    left, top, right, bottom = margin_box(box, (w, h), margin)
    crop = np.zeros((bottom - top, right - left, 3), dtype=np.uint8)
    sx1, sy1, sx2, sy2 = max(left, 0), max(top, 0), min(right, w), min(bottom, h)
    if sx2 > sx1 and sy2 > sy1:
        crop[sy1 - top:sy2 - top, sx1 - left:sx2 - left] = frame[sy1:sy2, sx1:sx2]
    if size and crop.shape[0] != size:
        crop = np.asarray(Image.fromarray(crop).resize((size, size), Image.Resampling.BICUBIC))
    return crop


def face_crop(frame: np.ndarray, box: Sequence[float], landmarks, mode: str = "box", size: int = 256,
              margin: float = 1.3) -> np.ndarray:
    """One crop by ``mode`` ('align' needs landmarks; 'box' uses the box)."""
    if mode == "align":
        if landmarks is None:
            raise DataError("crop mode 'align' needs five landmarks, and this face detector gives none; "
                            "use --crop box or a detector with landmarks (mtcnn)")
        return align_face(frame, landmarks, size=size or 256, scale=margin)
    if mode == "box":
        return crop_box(frame, box, size=size, margin=margin)
    raise DataError(f"crop mode '{mode}': choose 'align' or 'box'")
