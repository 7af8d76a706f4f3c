"""Dynamic micro-batching: uploads that arrive together share one forward pass of the model.

The service's worker threads (:class:`fakescope.serve.workers.WorkerPool`) take jobs from one queue. With
``max_batch`` above 1, a thread that takes a job also takes the jobs queued behind it, up to ``max_batch``, and
waits up to ``max_delay_s`` for more while further admitted requests are still on their way (uploading); a lone
request, with nothing else admitted, is sent at once. The batch goes to the thread's worker process in one
message, where :func:`process_batch` reads each upload and scores the images together:

* each upload is read and decoded on its own (:func:`fakescope.serve.uploads.open_upload`): a bad one gets its
  own refusal (4xx) and the others go on;
* the images of an image detector without a face stage go through :meth:`fakescope.Detector.run_items` together,
  one forward pass for the batch (the model's preprocessing gives every image the same input size); they are
  decoded one at a time as the pass is filled, so a worker holds one decoded picture at a time, as without
  batching (and the batch's uploads, as bytes);
* videos, and images for a detector with a face stage, are scored one at a time, exactly as without batching;
* a forward pass that fails for the batch (out of memory, say) is done again for each image on its own.

A batch that fails as a whole (its worker process ends, it raises, or it is still at work after ``BATCH_SHARE``
of the time its latest job has left) is not answered with one error for all: its worker is replaced where it
had to be stopped, and each of its jobs is scored on its own with its own deadline, the upload that was being
read when the batch stopped last, so a stuck upload costs the others part of their time, not their answer
(:func:`fallback_order`). (Jobs that arrive together have nearly the same deadline; a job whose own deadline
passes while its batch is still at work is answered 504 by the service at that deadline, as without batching.)

A request's score does not depend on the batch it was in: the same preprocessing and model, in inference mode.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Any

BATCH_SHARE = 0.5  # a batch may use this share of its latest job's remaining time before it is split
MAX_BATCH_LIMIT = 256
MAX_DELAY_MS_LIMIT = 1000.0


def gather(jobs: queue.Queue, first, max_batch: int, max_delay_s: float, take: Callable[[Any], bool],
           arriving: Callable[[], int]) -> list:
    """``first`` and the jobs that join it: those queued behind it, and those that arrive within ``max_delay_s``
    while ``arriving()`` says more admitted requests are on their way, up to ``max_batch``.

    ``take(job)`` starts a job (``False``: it was cancelled or its deadline passed, so it is left out). A
    ``None`` (the pool is shutting down) stops the gathering and is put back for the thread's next turn."""
    batch = [first] if take(first) else []
    until = time.monotonic() + max_delay_s
    while len(batch) < max_batch:
        try:
            job = jobs.get_nowait()
        except queue.Empty:
            left = until - time.monotonic()
            if left <= 0 or arriving() <= 0:
                break
            try:
                job = jobs.get(timeout=left)
            except queue.Empty:
                break
        if job is None:
            jobs.put(None)
            break
        if take(job):
            batch.append(job)
    return batch


def fallback_order(jobs: list, at: int | None) -> list:
    """The jobs of a failed batch in the order to score them one by one: the one being read when the batch
    stopped (``at``, its position; ``None`` or past the end when the batch was in its forward pass) last."""
    if at is None or not 0 <= at < len(jobs):
        return list(jobs)
    return jobs[:at] + jobs[at + 1:] + [jobs[at]]


def batchable(detector) -> bool:
    """Whether the detector's images can share forward passes: an image detector without a face stage."""
    return (hasattr(detector, "run_items") and getattr(detector, "modality", None) == "image"
            and getattr(detector, "face_pipeline", None) is None and not getattr(detector, "reads_files", False))


def process_batch(detector, items: list[tuple], progress: Callable[[int], None] = lambda i: None) -> list:
    """Each item's record, or the exception that refuses it, in order. ``items``: the arguments of
    :func:`fakescope.serve.uploads.process_upload` (after the detector), one tuple per request. ``progress(i)``
    is called before item ``i`` is read, and with ``len(items)`` when all have been read."""
    from fakescope.serve.uploads import process_upload

    out: list[Any] = [None] * len(items)  # None: not answered yet
    if len(items) > 1 and batchable(detector):
        _score_together(detector, items, out, progress)
    for i, args in enumerate(items):  # the rest one at a time, exactly as without batching
        if out[i] is None:
            progress(i)
            out[i] = _guarded(lambda: process_upload(detector, *args))
    progress(len(items))
    return out


def _score_together(detector, items: list[tuple], out: list, progress: Callable[[int], None]) -> None:
    """Fill ``out`` with the records of the images scored in shared forward passes and the refusals of the
    uploads that cannot be read; videos, and images that failed in a shared pass, are left to be scored alone."""
    import os

    from fakescope.serve.uploads import finish_record, open_upload

    opened: dict[int, tuple[bytes, str]] = {}  # item -> (its bytes, its name): an image in the pass

    def images(details: bool):
        """The images (of the requests with this ``details``), each read as the forward pass takes it in."""
        for i, args in enumerate(items):
            if bool(args[3]) != details:
                continue
            progress(i)
            body, ctype, name, _details, _point, max_bytes, _faces = args
            try:
                data, filename, kind, obj = open_upload(body, ctype, name, max_bytes)
            except Exception as exc:  # bad input: this request's own refusal
                out[i] = exc
                continue
            if kind != "image":  # a video: alone, afterwards
                os.unlink(obj)
                continue
            opened[i] = (data, filename)
            yield obj, filename, None
            obj = None  # the decoded picture goes once the pass has its model input
        progress(len(items))  # all read: the forward pass

    for details in (False, True):
        opened.clear()
        try:
            records = list(detector.run_items(images(details), details=details))
        except Exception:  # the pass itself failed: each of its images alone
            continue
        together = len(opened) > 1
        for (i, (data, filename)), record in zip(list(opened.items()), records):
            if together and record.get("error"):  # failed in the shared pass (out of memory, say): alone
                continue
            out[i] = _guarded(lambda: finish_record(detector, record, data, "image", None, filename, items[i][4],
                                                    details, items[i][6]))


def _guarded(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:
        return exc
