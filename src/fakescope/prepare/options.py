"""The settings of ``fakescope prepare``: frame sampling, the face stage, and how the work is run.

The face stage is a :class:`~fakescope.preprocess.FaceCropConfig` (``options.face``): it is written beside every
manifest the run produces, and a model trained on that data carries it into its checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from pydantic import ValidationError

from fakescope.errors import DataError
from fakescope.preprocess import VIDEO_FRAMES, FaceCropConfig

# the command-line names of the face stage's fields (``--faces largest`` is ``face.select``)
FACE_OPTIONS = {"detector": "detector", "detect_size": "detect_size", "min_face": "min_face",
                "face_search": "search", "faces": "select", "crop": "crop", "margin": "margin", "size": "size"}


@dataclass(frozen=True)
class PrepareOptions:
    num_frames: int = VIDEO_FRAMES  # frames per video (even mode), or at most this many (stride mode; 0 = all)
    sampling: str = "even"  # even | stride
    stride: int = 1
    start: int = 0
    # the face stage: detector, detection size, smallest face, tracked or full search, which faces, crop mode,
    # margin and size (see FaceCropConfig). Tracked search: with select=largest, after a video's first frame only
    # faces of at least a third of the main face's size are searched for (faces.tracking.track_face); a frame
    # where the main face is not found, or shrank, is searched in full again (faces.tracking.search_again).
    # Detectors without min_size (takes_min_size) always search in full.
    face: FaceCropConfig = field(default_factory=FaceCropConfig)
    detector_weights: str | None = None
    device: str = "cpu"
    verify_images: bool = True  # decode every image of image datasets once
    num_shards: int = 1
    shard_index: int = 0
    retry_failed: bool = False
    split: str | None = None  # keep this split only
    limit: int | None = None  # process at most this many units (a quick look at a large dataset)
    prefetch: bool = True  # decode frames in a thread (a few ahead) while faces are detected
    # FFmpeg decoder threads per video (0 = its choice). One: the reader thread already runs beside the
    # detector, and FFmpeg's own threads then cost CPU time and memory for nothing (measured on 2 cores:
    # 11.9 instead of 13.2 CPU s for the 7 FF++ fixture videos, and a lower peak memory)
    decode_threads: int = 1
    # worker processes for videos (0: videos are prepared in this process). Each worker runs the detector on
    # its own videos (on one torch thread, see fakescope.faces.pipeline, and with its own reader thread); this
    # process only writes
    # the records, so a worker that dies (a decoder crash, the kernel's out-of-memory killer) costs its
    # video, reported as a failure, and the run goes on.
    workers: int = 0
    # a worker process is replaced after this many videos (0: never), which bounds what a long run can
    # accumulate (allocator fragmentation, a leak in a decoder). A new worker's first video runs slower
    # (start-up, the detector's first passes): benchmarks/prepare_throughput.py took 7.4 s for the 7 FF++
    # fixture videos on 2 cores with 1, 6.7 s with 8 (before the tracked face search). 1 gives each video a
    # process of its own.
    videos_per_worker: int = 8

    # frame settings that change what is written (with the face stage); a re-run into the same folder must
    # use the same ones
    FRAME_KEYS = ("num_frames", "sampling", "stride", "start")

    def output_settings(self) -> dict[str, Any]:
        """What the crops depend on, under the names prepare.json has always used (so older folders resume)."""
        out = {k: getattr(self, k) for k in self.FRAME_KEYS}
        out.update({flat: getattr(self.face, name) for flat, name in FACE_OPTIONS.items()})
        return out

    def check(self) -> None:
        if self.num_shards < 1 or not 0 <= self.shard_index < self.num_shards:
            raise DataError(f"--shard-index must be in 0..{self.num_shards - 1} (--num-shards {self.num_shards}), "
                            f"got {self.shard_index}")
        if self.sampling not in ("even", "stride"):
            raise DataError(f"--sampling '{self.sampling}': choose even or stride")
        if self.sampling == "even" and self.num_frames < 1:
            raise DataError(f"--num-frames must be at least 1 for even sampling, got {self.num_frames}")
        if self.stride < 1:
            raise DataError(f"--stride must be at least 1, got {self.stride}")
        if not isinstance(self.face, FaceCropConfig):
            raise DataError(f"the face stage must be a FaceCropConfig, got {type(self.face).__name__}")
        if self.workers < 0:
            raise DataError(f"--workers must be 0 (this process) or more, got {self.workers}")
        if self.videos_per_worker < 0:
            raise DataError(f"--videos-per-worker must be 0 (no limit) or more, got {self.videos_per_worker}")
        if self.decode_threads < 0:
            raise DataError(f"--decode-threads must be 0 (automatic) or more, got {self.decode_threads}")


def face_stage(**flat: Any) -> FaceCropConfig:
    """A face stage from command-line names (``faces``, ``face_search``, ``crop``, ...; ``None`` = default).

    A bad value is a :class:`DataError` naming the option.
    """
    values = {FACE_OPTIONS[k]: v for k, v in flat.items() if k in FACE_OPTIONS and v is not None}
    try:
        return FaceCropConfig(**values)
    except ValidationError as exc:
        flat_name = {v: k for k, v in FACE_OPTIONS.items()}
        problems = []
        for err in exc.errors():
            name = flat_name.get(str(err["loc"][0]), str(err["loc"][0])) if err["loc"] else ""
            option = f"--{name.replace('_', '-')} " if name else ""
            problems.append(f"{option}{err['msg']}" + (f" (got {err['input']!r})" if name else ""))
        raise DataError("; ".join(problems)) from None


def options_from(**kwargs: Any) -> PrepareOptions:
    """``PrepareOptions`` from keyword arguments with command-line names, ignoring ``None`` (the default).

    The face stage's options (``faces``, ``crop``, ``size``, ``margin``, ``detector``, ``detect_size``,
    ``min_face``, ``face_search``) go into ``face``.
    """
    names = {f.name for f in fields(PrepareOptions)} - {"face"}
    rest = {k: v for k, v in kwargs.items() if k in names and v is not None}
    return PrepareOptions(face=face_stage(**kwargs), **rest)
