"""``fakescope detect`` over millions of files: inputs streamed, records written as they come, a killed run
continued by running the same command again, and the inputs shared out over several processes.

A record travels one way: the inputs (:func:`~fakescope.inference.inputs.iter_inputs`: folders walked as they
are scored) -> the detector (:meth:`~fakescope.inference.Detector.run_items`) -> the output
(:class:`~fakescope.inference.detect_output.DetectOutput`: resume, the parts of several processes and their
merge). Memory stays flat: each record is written (and flushed) when its input is scored; what is kept per input
is an 8-byte key of its path.

Speed on a CPU (measured in ``docs/speed.md``):

* **Lanes** (:func:`run_lanes`): ``L`` threads (one per torch CPU thread by default), each of which decodes,
  preprocesses and scores a chunk of consecutive inputs with a single torch thread of its own. Decoding overlaps
  scoring on the other cores, and no operator waits on a thread barrier (a convolution split over two threads
  waits for the slower one at every layer, which on a busy machine costs a scheduler time slice each time).
  Records come back in input order.
* **Batch size and memory layout by measurement** (:class:`BatchTuner`): ``batch_size='auto'`` times the model's
  forward on random pixels at batch sizes 1, 2, 4, ... in the contiguous and the channels-last layout, with the
  threads a lane has, and keeps the fastest per input. The choice is cached per model, input shape, backend,
  device, threads, precision, torch version and CPU (in memory, and in ``batch-tuning.json`` under
  ``$FAKESCOPE_CACHE`` or ``~/.cache/fakescope``), so it is measured once per machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import logging
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch

from fakescope.inference.detect_output import DetectOutput, DetectSummary
from fakescope.inference.inputs import Missing, iter_inputs
from fakescope.inference.outputs import output_format
from fakescope.utils.distributed import Ranks
from fakescope.utils.memory import cpu_model

log = logging.getLogger(__name__)

__all__ = ["BatchChoice", "BatchTuner", "DetectSummary", "detect_files", "run_lanes"]


def detect_files(detector, paths: Sequence[str], out: str | None, fmt: str | None = None, *,
                 ranks: Ranks | None = None, overwrite: bool = False, num_workers: int = 0,
                 skipped: list[str] | None = None, on_record: Callable[[dict], None] | None = None
                 ) -> DetectSummary:
    """Score ``paths`` (files, folders, patterns) into ``out`` (``None``: standard output); see
    :mod:`~fakescope.inference.detect_output` for resume and processes.

    Returns what was written (on process 0; the other processes return their own share's counts)."""
    block = getattr(detector, "block_size", detector.batch_size)  # inputs dealt to each process in turn
    expect = {"model": detector.name, "model_version": detector.version, "threshold": detector.threshold}
    with DetectOutput(out, output_format(out, fmt), expect=expect, ranks=ranks, overwrite=overwrite) as output:

        def mine() -> Iterator[tuple[Any, str, dict | None]]:
            for i, (p, err) in enumerate(iter_inputs(paths, skipped)):
                if output.todo(i, p, block):
                    yield (p if err is None else Missing(err)), p, output.extra(i)

        for rec in detector.run_items(mine(), num_workers=num_workers, collected=skipped):
            output.write(rec)
            if on_record is not None:
                on_record(rec)
        output.finish(skipped, detector.skipped_record)
        output.summary.bf16 = getattr(detector, "bf16_check", None)
    return output.summary


# ------------------------------------------------------------------------------------------------------ lanes
def run_lanes(detector, items: Iterable[tuple[Any, str | None, dict | None]], lanes: int, chunk: int
              ) -> Iterator[dict[str, Any]]:
    """Records of ``(input, name, extra)`` items, in order: chunks of ``chunk`` consecutive items are prepared
    and scored each by one of ``lanes`` threads; at most two chunks a lane are in flight (memory stays flat)."""
    from concurrent.futures import ThreadPoolExecutor

    from fakescope.inference.loader import prepare

    def work(part: list) -> list[dict[str, Any]]:
        return list(detector._finish([prepare(detector, x, name, False, extra) for x, name, extra in part]))

    pending: deque = deque()
    with ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="fakescope-lane") as pool:
        try:
            part: list = []
            for item in items:  # walked here, in this thread: the walk fills `collected` and `todo` in order
                part.append(item)
                if len(part) >= chunk:
                    pending.append(pool.submit(work, part))
                    part = []
                    while len(pending) >= 2 * lanes:
                        yield from pending.popleft().result()
            if part:
                pending.append(pool.submit(work, part))
            while pending:
                yield from pending.popleft().result()
        finally:  # a consumer that stops early: what is queued is dropped, what runs is waited for
            for f in pending:
                f.cancel()


# ------------------------------------------------------------------------------------------ batch choice
@dataclass(frozen=True)
class BatchChoice:
    """How a detector scores inputs of one shape: ``batch`` inputs per forward pass, in the channels-last layout
    or not; ``ms_per_input``: the forward's measured time per input (None when not measured); ``source``:
    ``fixed`` (given), ``measured`` (timed now) or ``cache`` (timed before, on this machine)."""

    batch: int
    channels_last: bool = False
    ms_per_input: float | None = None
    source: str = "fixed"


def cache_file() -> Path:
    """Where measured choices are kept: ``$FAKESCOPE_CACHE/batch-tuning.json`` (default ``~/.cache/fakescope``)."""
    root = os.environ.get("FAKESCOPE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "fakescope")
    return Path(root) / "batch-tuning.json"


class BatchTuner:
    """Chooses a detector's batch size and memory layout for an input shape by timing its forward pass.

    Candidates: ``batches`` (in order), each in the contiguous layout and then (PyTorch, 4-D inputs) channels
    last; a layout's larger batches are not tried once one is more than ``slack`` times slower per input than the
    best so far, or once a forward pass takes over ``max_seconds``. Each candidate runs once untimed (a new shape's
    one-off costs), then ``repeats`` times timed by ``timer``; the fastest run counts. The choice is the first
    candidate within ``near`` (5%) of the fastest per input: the smaller batch (less memory in flight, and
    timing noise is not a reason for more) and the contiguous layout; deterministic given the timer. Batches
    are tried only while ``batch x lanes`` stays within ``max_in_flight`` (8) inputs. For lanes
    (``detector.lanes_now`` > 1) each pass is every lane scoring the batch at once, in threads of its own, and the
    time per input is the pass's over all their inputs: one lane timed alone, with the memory bandwidth and the
    cache to itself, preferred SFCL-HCMF's contiguous layout, which ran slower than channels-last in two lanes. ``cache``: a JSON file of
    earlier choices (None: :func:`cache_file`; False: this process only)."""

    CPU_BATCHES = (1, 2, 4, 8)
    GPU_BATCHES = (1, 4, 16, 32, 64, 128)

    def __init__(self, cache: str | os.PathLike | None | bool = None, *, timer: Callable[[], float] = time.perf_counter,
                 repeats: int = 2, slack: float = 1.15, near: float = 0.05, max_seconds: float = 2.0,
                 batches: Sequence[int] | None = None) -> None:
        self._cache = cache
        self.timer, self.repeats, self.slack, self.max_seconds = timer, max(1, int(repeats)), slack, max_seconds
        self.near = near
        self.max_in_flight = 8  # batch x lanes: inputs in flight at once (EfficientNet-B4 at 256 px, batch 8 in
        # two lanes, peaked at 1.6 GiB)
        self.batches = tuple(batches) if batches else None
        self.memory: dict[str, BatchChoice] = {}
        self.lock = threading.Lock()
        self.trials: list[tuple[int, bool, float]] = []  # (batch, channels_last, ms per input) of the last tuning

    @property
    def path(self) -> Path | None:
        if self._cache is False:
            return None
        return cache_file() if self._cache in (None, True) else Path(self._cache)

    def key(self, detector, shape: tuple[int, ...]) -> str:
        model = json.dumps(detector.config.get("model") or {}, sort_keys=True, default=str)
        ident = f"{detector.name}:{hashlib.sha256(model.encode()).hexdigest()[:12]}"
        return "|".join([ident, detector.backend, str(detector.device), "x".join(map(str, shape)),
                         f"threads={torch.get_num_threads()}", f"lanes={getattr(detector, 'lanes_now', 1)} at once",
                         "bf16" if detector.bf16 else "fp32",
                         f"torch={torch.__version__}", cpu_model(), f"cores={os.cpu_count()}"])

    def choose(self, detector, shape: tuple[int, ...], layouts: bool = True) -> BatchChoice:
        """The choice for ``shape`` (one model input's shape), measured on first use; ``layouts`` False: keep
        the model's current layout (it cannot change while other threads score)."""
        key = self.key(detector, shape) + ("" if layouts else f"|layout={detector.channels_last}")
        with self.lock:
            if key in self.memory:
                return self.memory[key]
            stored = self._read().get(key)
            if stored is not None:
                choice = BatchChoice(**{**stored, "source": "cache"})
            else:
                choice = self._measure(detector, shape, layouts)
                self._write(key, choice)
            self.memory[key] = choice
            return choice

    def _measure(self, detector, shape: tuple[int, ...], layouts: bool) -> BatchChoice:
        batches = self.batches or (self.GPU_BATCHES if str(detector.device).startswith("cuda") else self.CPU_BATCHES)
        lanes = getattr(detector, "lanes_now", 1)  # each lane has a batch in flight: memory grows with both
        batches = [b for b in batches if b == 1 or b * lanes <= self.max_in_flight]
        if not layouts:
            options = (detector.channels_last,)
        elif detector.backend == "torch" and len(shape) == 3:
            options = (False, True)
        else:
            options = (False,)
        self.trials = []
        gen = torch.Generator().manual_seed(0)
        pool = None
        if lanes > 1:  # every lane scores its batch at once, as they run: memory bandwidth and cache are shared
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="fakescope-tuning")

        def in_lanes(x: torch.Tensor) -> None:
            if pool is None:
                detector._score(x)
            else:
                list(pool.map(lambda _: detector._score(x), range(lanes)))

        try:
            for cl in options:
                best = float("inf")
                for b in batches:
                    x = torch.randint(0, 256, (b, *shape), dtype=torch.uint8, generator=gen)
                    detector.set_layout(cl)
                    in_lanes(x)  # untimed: a new shape's one-off costs
                    runs = []
                    for _ in range(self.repeats):
                        t0 = self.timer()
                        in_lanes(x)
                        runs.append(self.timer() - t0)
                    # ms an input over all lanes' inputs; equal to the microsecond counts as equal
                    per = round(min(runs) / (b * lanes) * 1000.0, 3)
                    self.trials.append((b, cl, per))
                    if per > best * self.slack or min(runs) > self.max_seconds:
                        break
                    best = min(best, per)
        finally:
            if pool is not None:
                pool.shutdown()
        fastest = min(t[2] for t in self.trials)
        # the first within `near` of the fastest: the smaller batch (less memory) and the contiguous layout
        b, cl, ms = next(t for t in self.trials if t[2] <= fastest * (1.0 + self.near))
        detector.set_layout(cl)
        return BatchChoice(b, cl, ms, "measured")

    def _read(self) -> dict[str, dict]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {k: v for k, v in data.items() if isinstance(v, dict) and isinstance(v.get("batch"), int)}
        except (OSError, ValueError):
            return {}  # a damaged cache is measured again, never fatal

    def _write(self, key: str, choice: BatchChoice) -> None:
        if self.path is None:
            return
        data = self._read()
        data[key] = {k: v for k, v in asdict(choice).items() if k != "source"}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:  # a read-only home: the choice lives as long as this process
            log.warning("batch choice not cached in %s (%s); it is measured again in the next run", self.path, exc)


DEFAULT_TUNER = BatchTuner()
