"""What a detector sees, as data: the face stage and the pixel preprocessing, stored in every checkpoint.

A model's :class:`PreprocessConfig` says how a raw image (or video frame) becomes its input. Its ``face``
field is the face stage (:class:`FaceCropConfig`): how faces are found, chosen and cut out before the pixel
preprocessing. ``fakescope prepare`` writes the face stage it used beside every manifest, training copies it
from the data into the model's preprocessing, and ``fakescope detect``, ``fakescope serve`` and the Python API
crop faces exactly as it says. A detector of whole images (AI-generated image detectors) has no face stage
(``face: null``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from fakescope.schema import Strict

# frames sampled evenly from a video, by prepare (training crops) and by detect (scoring): DeepfakeBench's number
VIDEO_FRAMES = 32

# Bounds of the sizes a config may ask for, checked before anything is built or allocated (a checkpoint's
# config.json asking for 100000-pixel inputs is refused, not a MemoryError later). Generous: no registered model
# or pretrained release uses more than 380 px inputs, 256 px face crops or 32-frame clips.
MAX_INPUT_SIZE = 2048  # model input side, and the short side images are resized to
MAX_CLIP_LEN = 512  # frames per clip
MAX_FACE_SIZE = 4096  # face crop side, face detection size, smallest face searched for

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class FaceCropConfig(Strict):
    """The face stage: frames -> detections -> tracks -> selected faces -> crops.

    * ``detector``: a registered face detector (``mtcnn``, ``dlib``) or ``package.module:Class``;
      ``detect_size``: frames are downscaled to this longest side for detection (0: full size);
      ``min_face``: the smallest face searched for, in detection pixels.
    * ``search``: ``track`` (with ``select: largest``): after a video's first frame only faces of at least a
      third of the main face's size are searched for, and every size again where the main face is missing or
      shrank; ``full``: every size in every frame.
    * ``select``: ``largest``: one face per frame, the video's main face track; ``all``: every face.
    * ``crop``: ``box`` (a square of ``margin`` x the detector's box) or ``align`` (DeepfakeBench's
      five-point alignment, ``margin`` being its scale); ``size``: the crop's side in pixels (box crops:
      0 keeps the native size).
    """

    detector: str = "mtcnn"
    detect_size: int = Field(default=640, ge=0, le=MAX_FACE_SIZE)
    min_face: int = Field(default=20, ge=1, le=MAX_FACE_SIZE)
    search: Literal["track", "full"] = "track"
    select: Literal["largest", "all"] = "largest"
    crop: Literal["box", "align"] = "box"
    margin: float = Field(default=1.3, gt=0)
    size: int = Field(default=256, ge=0, le=MAX_FACE_SIZE)

    @model_validator(mode="after")
    def _align_needs_a_size(self) -> "FaceCropConfig":
        if self.crop == "align" and self.size < 8:
            raise ValueError(f"size {self.size}: an aligned crop needs a size of at least 8 pixels (0, the "
                             "native size, is for box crops only)")
        return self

    def describe(self) -> str:
        """One line for logs and model cards."""
        size = "native size" if self.size == 0 else f"{self.size} px"
        return (f"{self.detector} (detect size {self.detect_size}, min face {self.min_face}, {self.search} "
                f"search), {self.select} face, {self.crop} crop, margin {self.margin:g}, {size}")


# The face crop that `fakescope detect` made before checkpoints stored their face stage: MTCNN searching every
# size in every frame, the largest face track, a square box of 1.3 x the box, 256 px. Checkpoints saved
# before the field existed are served with it (and a warning that names the missing field).
LEGACY_FACE_CROP = FaceCropConfig(search="full", crop="box", margin=1.3, size=256)


class PreprocessConfig(Strict):
    """How a raw image (or frame) becomes model input. Stored with every checkpoint.

    ``face``: the face stage applied first (``None``: the model sees whole images or frames).

    Policies of the pixel stage:

    * ``crop``: keep the native resolution (resampling destroys generator
      traces); an image smaller than ``input_size`` on a side is first resized
      so its short side is ``resize_to`` (default ``input_size``). Training takes
      a random crop, evaluation the centre crop. ForenSynths / UniversalFakeDetect
      convention.
    * ``resize``: resize the whole image to ``input_size`` x ``input_size`` (face crops).
    * ``resize_crop``: resize the short side to ``resize_to`` and take a crop
      (random in training, centre in evaluation); the ImageNet convention.
    """

    face: FaceCropConfig | None = Field(default=None, description="the face stage (None: whole images)")
    input_size: int = Field(default=224, ge=8, le=MAX_INPUT_SIZE)
    policy: Literal["crop", "resize", "resize_crop"] = "crop"
    resize_to: int | None = Field(default=None, ge=8, le=MAX_INPUT_SIZE)
    interpolation: Literal["nearest", "bilinear", "bicubic", "lanczos"] = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    clip_len: int | None = Field(default=None, ge=1, le=MAX_CLIP_LEN,
                                 description="frames per clip (clip models only)")

    @field_validator("std")
    @classmethod
    def _positive_std(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(v <= 0 for v in value):
            raise ValueError("every std value must be positive")
        return value

    @property
    def short_side(self) -> int:
        return self.resize_to or self.input_size
