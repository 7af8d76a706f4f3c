"""Pictures for the web page and ``detect --explain``: the log-magnitude spectrum of an image, Grad-CAM overlays
and a video's score timeline, and the explanation of a scored input (:func:`cam_picture`,
:func:`write_explanation`)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from fakescope.errors import ConfigError
from fakescope.inference.job import Job
from fakescope.media.spectrum import log_spectrum  # noqa: F401  (re-exported: the web page's spectrum)
from fakescope.utils.paths import safe_name


def cam_overlay(pixels: np.ndarray, cam: np.ndarray, min_side: int = 256, alpha: float = 0.45) -> Image.Image:
    """The model input (uint8 ``[H, W, 3]``) with its heatmap (``[H, W]`` in [0, 1]) in the jet colours over it,
    enlarged to at least ``min_side`` pixels."""
    from matplotlib import colormaps

    heat = colormaps["jet"](np.clip(cam, 0, 1))[..., :3] * 255
    out = (1 - alpha) * pixels.astype(np.float64) + alpha * heat
    img = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    scale = max(1, -(-min_side // min(img.size)))
    return img.resize((img.size[0] * scale, img.size[1] * scale), Image.Resampling.NEAREST)


def cam_on_image(image: np.ndarray, cam: np.ndarray, box: list[int] | tuple[int, ...], max_side: int = 640,
                 alpha: float = 0.45, min_side: int = 256) -> Image.Image:
    """The whole image (uint8 ``[H, W, 3]``) with the heatmap of the region the model scored laid over that region
    (``box``: ``x1, y1, x2, y2`` in the image's pixels) and the region outlined; the rest of the image is shown
    dimmed, as the model never saw it. Its longer side is at most ``max_side`` pixels, and a small image is enlarged
    until it is ``min_side`` pixels, so that a 32 px picture stays readable."""
    from matplotlib import colormaps
    from PIL import ImageDraw

    img = Image.fromarray(image).convert("RGB")
    longest = max(img.size)
    scale = max_side / longest if longest > max_side else max(1.0, min_side / longest)
    size = (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale)))
    img = img.resize(size, Image.Resampling.BILINEAR)
    x1, y1, x2, y2 = (round(v * scale) for v in box)
    x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
    out = np.asarray(img, dtype=np.float64) * 0.55  # outside the region: dimmed
    heat = Image.fromarray((np.clip(cam, 0, 1) * 255).astype(np.uint8)).resize((x2 - x1, y2 - y1),
                                                                               Image.Resampling.BILINEAR)
    colour = colormaps["jet"](np.asarray(heat) / 255.0)[..., :3] * 255
    inside = np.asarray(img, dtype=np.float64)[y1:y2, x1:x2]
    out[y1:y2, x1:x2] = (1 - alpha) * inside + alpha * colour[: inside.shape[0], : inside.shape[1]]
    pic = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    ImageDraw.Draw(pic).rectangle([x1, y1, x2 - 1, y2 - 1], outline=(255, 255, 255), width=max(1, round(max(size) / 256)))
    return pic


def score_timeline(record: dict, threshold: float) -> Image.Image:
    """A video record's per-frame (and per-clip) scores over time, with the threshold, as an image."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = record.get("frame_times") or record.get("frame_indices") or []
    y = [np.nan if v is None else v for v in (record.get("frame_scores") or [])]
    fig, ax = plt.subplots(figsize=(6, 2.4))
    ax.plot(x[:len(y)], y, marker="o", ms=3, lw=1.2, label="frame score")
    ax.axhline(threshold, color="#c33", lw=1, ls="--", label=f"threshold {threshold:g}")
    ax.set(xlabel="time (s)" if record.get("frame_times") else "frame", ylabel="P(fake)", ylim=(-0.02, 1.02),
           title=f"score {record.get('score')}")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def draw_boxes(path: str, boxes: list[list[float]], max_side: int = 640) -> Image.Image:
    """The image at ``path`` with ``boxes`` (``x1, y1, x2, y2`` in its pixels) drawn, at most ``max_side``."""
    from PIL import ImageDraw

    from fakescope.media.image import open_image

    img = open_image(path).copy()
    draw = ImageDraw.Draw(img)
    width = max(2, round(max(img.size) / 300))
    for box in boxes:
        draw.rectangle([float(v) for v in box], outline=(255, 40, 40), width=width)
    img.thumbnail((max_side, max_side))
    return img


def cam_picture(detector, job: Job, scores: list[float]) -> Image.Image | None:
    """The heatmap overlay of the job's highest-scoring model input (:func:`fakescope.models.explain.explain`:
    Grad-CAM; FSSNet its SBCA attention; SDR gradient saliency); ``None`` where there is none (the ONNX backend,
    a model that cannot be explained)."""
    from fakescope.models.explain import explain

    if detector.backend != "torch":
        return None
    best = int(np.argmax(scores))
    try:
        cam = explain(detector.model, job.inputs[best:best + 1].to(detector.device))[0].cpu().numpy()
    except ConfigError:
        return None
    region = job.record.get("region") or {}
    if job.canvases and region.get("box") and best < len(job.canvases):  # over the whole picture, region marked
        canvas = job.canvases[best]
        scale = canvas.shape[1] / region["image_size"][0]
        return cam_on_image(canvas, cam, [v * scale for v in region["box"]])
    pixels = job.inputs[best]
    if pixels.dim() == 4:  # a clip: the map (averaged over time) over its middle frame
        pixels = pixels[len(pixels) // 2]
    return cam_overlay(pixels.permute(1, 2, 0).numpy(), cam)


def write_explanation(detector, job: Job, scores: list[float]) -> None:
    """Write the Grad-CAM overlay of the job's highest-scoring model input (and a video's timeline, or the faces
    scored on an image) into ``detector.explain``; the record's ``explanation`` lists them."""
    rec = job.record
    stem = detector.explain / safe_name(rec["path"])
    written = []
    try:
        picture = cam_picture(detector, job, scores)
        if picture is None:
            raise ConfigError(f"Grad-CAM cannot explain {detector.name}")
        picture.save(f"{stem}.cam.png")
        written.append(f"{stem}.cam.png")
        if rec["kind"] == "video":
            score_timeline(rec, detector.threshold).save(f"{stem}.timeline.png")
            written.append(f"{stem}.timeline.png")
        elif rec.get("face_boxes") and os.path.isfile(rec["path"]):  # the face scored, on the image
            draw_boxes(rec["path"], [b[1:] for b in rec["face_boxes"]]).save(f"{stem}.faces.png")
            written.append(f"{stem}.faces.png")
    except Exception as exc:  # an explanation that cannot be made never costs the score
        written.append(f"(no explanation: {type(exc).__name__}: {exc})")
    rec["explanation"] = written
