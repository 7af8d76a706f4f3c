"""``fakescope detect`` over millions of files: inputs streamed, records written as they come, a killed run
continued by running the same command again, and the inputs shared out over several processes.

A record travels one way: the inputs (:func:`~fakescope.inference.inputs.iter_inputs`: folders walked as they
are scored) -> the detector (:meth:`~fakescope.inference.Detector.run_items`) -> the output
(:class:`~fakescope.inference.detect_output.DetectOutput`: resume, the parts of several processes and their
merge). Memory stays flat: each record is written (and flushed) when its input is scored; what is kept per input
is an 8-byte key of its path.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

from fakescope.inference.detect_output import DetectOutput, DetectSummary
from fakescope.inference.inputs import Missing, iter_inputs
from fakescope.inference.outputs import output_format
from fakescope.utils.distributed import Ranks

__all__ = ["DetectSummary", "detect_files"]


def detect_files(detector, paths: Sequence[str], out: str | None, fmt: str | None = None, *,
                 ranks: Ranks | None = None, overwrite: bool = False, num_workers: int = 0,
                 skipped: list[str] | None = None, on_record: Callable[[dict], None] | None = None
                 ) -> DetectSummary:
    """Score ``paths`` (files, folders, patterns) into ``out`` (``None``: standard output); see
    :mod:`~fakescope.inference.detect_output` for resume and processes.

    Returns what was written (on process 0; the other processes return their own share's counts)."""
    expect = {"model": detector.name, "model_version": detector.version, "threshold": detector.threshold}
    with DetectOutput(out, output_format(out, fmt), expect=expect, ranks=ranks, overwrite=overwrite) as output:

        def mine() -> Iterator[tuple[Any, str, dict | None]]:
            for i, (p, err) in enumerate(iter_inputs(paths, skipped)):
                if output.todo(i, p, detector.batch_size):
                    yield (p if err is None else Missing(err)), p, output.extra(i)

        for rec in detector.run_items(mine(), num_workers=num_workers, collected=skipped):
            output.write(rec)
            if on_record is not None:
                on_record(rec)
        output.finish(skipped, detector.skipped_record)
    return output.summary
