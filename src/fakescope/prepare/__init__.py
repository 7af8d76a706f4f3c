"""``fakescope prepare``: datasets as their authors ship them -> face crops and manifests, and the built-in
synthetic benchmark (:mod:`.synth`).

:mod:`.adapters` read the official layouts; :mod:`.options` holds the settings; :mod:`.units` splits the work;
:mod:`.video_job` runs one video through the face pipeline; :mod:`.pool` runs videos in worker processes;
:mod:`.runner` drives a run (:func:`prepare`).
"""

from fakescope.prepare.adapters import ADAPTERS, AdapterOptions, Item, iter_items, list_adapters, register_adapter
from fakescope.prepare.options import FACE_OPTIONS, PrepareOptions, face_stage, options_from
from fakescope.prepare.pool import WorkerPool, auto_workers, make_pipeline, peak_rss_mib
from fakescope.prepare.runner import Summary, prepare, process_images
from fakescope.prepare.units import Unit, make_units, shard_of
from fakescope.prepare.video_job import VideoReader, process_video, video_messages

__all__ = ["ADAPTERS", "AdapterOptions", "FACE_OPTIONS", "Item", "PrepareOptions", "Summary", "Unit", "VideoReader",
           "WorkerPool", "auto_workers", "face_stage", "iter_items", "list_adapters", "make_pipeline", "make_units",
           "options_from", "peak_rss_mib", "prepare", "process_images", "process_video", "register_adapter",
           "shard_of", "video_messages"]
