"""Micro-batching in the service: uploads that arrive together share a forward pass, and nothing else changes.

Behaviour only, never time: scores are the same batched or not, a bad upload in a batch is refused alone, a batch
that fails as a whole is scored again one job at a time, ``max_batch=1`` means no batching, a lone request is not
held back, and the options are checked. Batches are counted (forward passes, batch sizes, /healthz), not timed.

The worker processes of the pool tests import this module to find its stand-in loader and handlers, so its
top level imports only what they need (torch, the detector and the test client are imported where used).
"""

from __future__ import annotations

import io
import os
import threading
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'fakescope[serve]'")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx: pip install 'fakescope[dev]'")

from fakescope.errors import ConfigError  # noqa: E402
from fakescope.serve import ServeSettings, create_app  # noqa: E402
from fakescope.serve.batching import fallback_order, process_batch  # noqa: E402
from fakescope.serve.uploads import MediaError, process_upload  # noqa: E402
from fakescope.serve.workers import JobTimeout, WorkerPool  # noqa: E402

LIMIT = 10 * 1024 * 1024


def png(seed: int, size: tuple[int, int] = (48, 40)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def args(data: bytes, name: str, details: bool = False, point: str | None = None) -> tuple:
    """What the service hands a worker for one raw-body upload (see :func:`process_upload`)."""
    return (data, "application/octet-stream", name, details, point, LIMIT, 16)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from test_detect import make_checkpoint

    return make_checkpoint(tmp_path_factory.mktemp("ck") / "simple")


def detector(checkpoint, **options):
    from fakescope.inference import Detector

    return Detector.from_pretrained(checkpoint, device="cpu", **options)


@pytest.fixture()
def counted(checkpoint):
    """A detector whose forward passes are counted: the list of their batch sizes."""
    det = detector(checkpoint, num_frames=3)
    sizes: list[int] = []
    forward = det.model.predict_proba
    det.model.predict_proba = lambda x: (sizes.append(len(x)), forward(x))[1]
    return det, sizes


# ------------------------------------------------------------------ in the worker: process_batch
def test_batched_scores_equal_unbatched_in_one_forward_pass(counted):
    det, sizes = counted
    items = [args(png(i, (40 + 9 * i, 56)), f"img{i}.png") for i in range(6)]
    items[3] = args(png(3), "with-details.png", details=True)
    items[4] = args(png(4), "fixed.png", point="0.2")
    batched = process_batch(det, items)
    assert sizes == [5, 1]  # the five without details share one pass; the one with details has its own
    sizes.clear()
    alone = [process_upload(det, *a) for a in items]
    assert sizes == [1] * 6
    for b, a in zip(batched, alone):
        assert b["error"] is None and b["path"] == a["path"]
        assert b["score"] == pytest.approx(a["score"], abs=1e-6) and b["label"] == a["label"]
        assert b["model_score"] == pytest.approx(a["model_score"], abs=1e-6)
        assert b.keys() == a.keys() and b["threshold"] == a["threshold"] and b["region"] == a["region"]
    assert batched[4]["threshold"] == 0.2 and batched[4]["operating_point"] == "fixed"
    assert batched[3]["details"]["input_png"].startswith("data:image/png") and "details" not in batched[0]


def test_a_bad_upload_in_a_batch_is_refused_alone_and_a_video_is_scored_alone(counted, tmp_path):
    from test_detect import make_media

    det, sizes = counted
    media = make_media(tmp_path / "media")
    items = [args(png(0), "a.png"), args(b"not an image at all" * 10, "bad.png"), args(b"", "empty.png"),
             args(media["truncated"].read_bytes(), "cut.png"), args(media["video"].read_bytes(), "clip.mp4"),
             args(png(1), "b.png")]
    progress: list[int] = []
    out = process_batch(det, items, progress.append)
    assert [type(o).__name__ for o in out] == ["dict", "MediaError", "MediaError", "MediaError", "dict", "dict"]
    assert [o.status for o in out[1:4]] == [415, 400, 422]
    assert out[0]["score"] == pytest.approx(process_upload(det, *items[0])["score"], abs=1e-6)
    assert out[4]["kind"] == "video" and len(out[4]["frame_scores"]) == 3 and out[4]["path"] == "clip.mp4"
    assert out[4]["score"] == pytest.approx(process_upload(det, *items[4])["score"], abs=1e-6)
    assert sizes[0] == 2  # the two images together; the video's frames in a pass of its own
    assert progress[-1] == len(items) and set(progress) == set(range(len(items) + 1))


def test_a_forward_pass_that_fails_for_the_batch_is_done_again_for_each_image(counted):
    det, sizes = counted
    forward = det.model.predict_proba

    def refuses_batches(x):
        if len(x) > 1:
            raise RuntimeError("out of memory (stand-in)")
        return forward(x)

    det.model.predict_proba = refuses_batches
    items = [args(png(i), f"img{i}.png") for i in range(3)]
    out = process_batch(det, items)
    assert all(o["error"] is None for o in out)
    assert [o["score"] for o in out] == [process_upload(det, *a)["score"] for a in items]


def test_a_face_stage_detector_scores_each_image_alone(counted, monkeypatch):
    import fakescope.serve.uploads as uploads
    from fakescope.serve.batching import batchable

    det, sizes = counted
    assert batchable(det)
    det.face_pipeline = object()  # stands in for a face stage (never run: the work on each upload is recorded)
    assert not batchable(det)
    monkeypatch.setattr(uploads, "process_upload", lambda detector, *a: {"alone": a[2]})
    out = process_batch(det, [args(png(i), f"img{i}.png") for i in range(3)])
    assert out == [{"alone": f"img{i}.png"} for i in range(3)] and sizes == []


def test_fallback_order_puts_the_job_being_read_last():
    assert fallback_order([1, 2, 3, 4], 1) == [1, 3, 4, 2]
    assert fallback_order([1, 2, 3], None) == [1, 2, 3] and fallback_order([1, 2, 3], 3) == [1, 2, 3]


# ------------------------------------------------------------------ the pool: batches formed and split
def load_nothing():
    return "stand-in detector"


def alone(detector, name):
    """A job on its own: ``(name, 1)``; a name asks for misbehaviour."""
    if name == "refuse":
        raise MediaError(415, "refused on its own")
    if name == "stuck":
        time.sleep(600)
    return name, 1


def together(detector, items, progress):
    """A batch: ``(name, batch size)`` each, unless one of them breaks the batch as a whole."""
    names = [a[0] for a in items]
    for i, name in enumerate(names):
        progress(i)
        if name == "stuck":
            time.sleep(600)
    if "crash" in names:
        os.kill(os.getpid(), 9)
    if "bug" in names:
        raise RuntimeError("the batch broke")
    return [(name, len(items)) for name in names]


def make_pool(max_batch: int, max_delay_s: float = 2.0, workers: int = 1) -> WorkerPool:
    pool = WorkerPool(load_nothing, alone, workers, 16, setup={}, refusal=MediaError, batch_handler=together,
                      max_batch=max_batch, max_delay_s=max_delay_s)
    pool.start()
    deadline = time.time() + 120
    while pool.ready < workers:
        assert time.time() < deadline and not pool.failure, pool.failure
        time.sleep(0.05)
    return pool


def submit(pool: WorkerPool, names: list[str], timeout_s: float = 60.0) -> list:
    for _ in names:
        assert pool.acquire()
    return [pool.run((name,), timeout_s) for name in names]


def outcome(fut):
    try:
        return fut.result(120)
    except Exception as exc:
        return type(exc).__name__


def test_jobs_that_arrive_together_share_a_batch_up_to_max_batch():
    pool = make_pool(max_batch=4)
    try:
        futures = submit(pool, [f"j{i}" for i in range(6)])
        assert [f.result(60) for f in futures] == [(f"j{i}", 4 if i < 4 else 2) for i in range(6)]
        assert (pool.batches, pool.batched, pool.split) == (2, 6, 0)
        time.sleep(0.1)
        assert pool.active == 0
    finally:
        pool.shutdown()


def test_max_batch_1_is_no_batching():
    pool = make_pool(max_batch=1)
    try:
        futures = submit(pool, [f"j{i}" for i in range(5)])
        assert [f.result(60) for f in futures] == [(f"j{i}", 1) for i in range(5)] and pool.batches == 0
    finally:
        pool.shutdown()


def test_a_lone_request_is_not_held_back_and_waits_at_most_the_delay():
    pool = make_pool(max_batch=8, max_delay_s=30.0)
    try:
        start = time.monotonic()
        assert submit(pool, ["lone"])[0].result(20) == ("lone", 1)  # nothing else admitted: sent at once
        assert time.monotonic() - start < 20  # well under the 30 s delay
        assert pool.acquire()  # another request admitted, still uploading: the batch may wait for it...
        pool.max_delay_s = 0.2
        assert submit(pool, ["waits"])[0].result(20) == ("waits", 1)  # ... but no longer than the delay
        pool.release()
        assert pool.batches == 0
    finally:
        pool.shutdown()


def test_a_batch_that_fails_is_scored_again_one_job_at_a_time():
    pool = make_pool(max_batch=8)
    try:
        futures = submit(pool, ["a", "bug", "refuse", "b"])
        assert [outcome(f) for f in futures] == [("a", 1), ("bug", 1), "MediaError", ("b", 1)]
        assert pool.split == 1 and pool.replaced == 0
        futures = submit(pool, ["c", "crash", "d"])  # the batch's worker dies: replaced, then each alone
        assert [outcome(f) for f in futures] == [("c", 1), ("crash", 1), ("d", 1)]
        assert pool.split == 2 and pool.replaced == 1
    finally:
        pool.shutdown()


def test_a_stuck_upload_in_a_batch_costs_the_others_time_not_their_answer():
    pool = make_pool(max_batch=8)
    try:
        futures = submit(pool, ["a", "stuck", "b"], timeout_s=14.0)
        answers = [outcome(f) for f in futures]
        # the batch is killed at half the deadline; the others are scored alone first, the stuck one last
        assert answers == [("a", 1), "JobTimeout", ("b", 1)], answers
        assert isinstance(futures[1].exception(), JobTimeout) and pool.split == 1 and pool.replaced == 2
    finally:
        pool.shutdown()


# ------------------------------------------------------------------ the service, end to end
def test_the_service_batches_concurrent_uploads_and_answers_the_same(checkpoint):
    from fastapi.testclient import TestClient

    det = detector(checkpoint)
    datas = [png(i, (32 + 5 * i, 48)) for i in range(8)] + [b"garbage" * 20]
    settings = ServeSettings(max_batch=8, max_delay_ms=200, queue=16)
    answers: dict[int, object] = {}
    with TestClient(create_app(det, settings)) as c:
        def send(i: int) -> None:
            answers[i] = c.post("/v1/detect", params={"filename": f"u{i}.png"}, content=datas[i])

        # sent while the worker is still loading the model: they wait in the queue and go to it together
        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(datas))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        health = c.get("/healthz").json()
    assert health["batching"]["max_batch"] == 8 and health["batching"]["batches"] >= 1, health
    assert health["batching"]["batched"] >= 2 and health["batching"]["split"] == 0, health
    for i, data in enumerate(datas[:-1]):
        r = answers[i]
        assert r.status_code == 200 and r.json()["path"] == f"u{i}.png", (i, r.text)
        direct = det.predict(Image.open(io.BytesIO(data)), name=f"u{i}.png")
        assert r.json()["score"] == pytest.approx(direct["score"], abs=1e-6)
    assert answers[8].status_code == 415 and "neither an image" in answers[8].json()["error"]


def test_the_service_with_max_batch_1_scores_each_alone(checkpoint):
    from fastapi.testclient import TestClient

    det = detector(checkpoint)
    with TestClient(create_app(det, ServeSettings(max_batch=1))) as c:
        threads = [threading.Thread(target=c.post, args=("/v1/detect",), kwargs={"content": png(i)})
                   for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        health = c.get("/healthz").json()
    assert health["batching"] == {"max_batch": 1, "max_delay_ms": 5.0, "batches": 0, "batched": 0, "split": 0}


# ------------------------------------------------------------------ options
@pytest.mark.parametrize("changes,words", [
    ({"max_batch": 0}, "--max-batch"), ({"max_batch": 2.5}, "--max-batch"), ({"max_batch": 10_000}, "--max-batch"),
    ({"max_delay_ms": -1}, "--max-delay-ms"), ({"max_delay_ms": float("nan")}, "--max-delay-ms"),
    ({"max_delay_ms": 5000}, "--max-delay-ms"), ({"max_delay_ms": 500, "timeout_s": 0.5}, "shorter than --timeout"),
])
def test_batching_options_are_checked(changes, words):
    with pytest.raises(ConfigError, match=words):
        ServeSettings(**changes).check()


def test_the_cli_takes_the_batching_options(monkeypatch, tmp_path, capsys):
    import fakescope.serve.server as server
    from test_detect import make_checkpoint

    from fakescope.cli import build_parser, main

    args = build_parser().parse_args(["serve", "ck"])
    assert (args.max_batch, args.max_delay_ms) == (8, 5.0)
    calls: dict = {}
    monkeypatch.setattr(server, "run_server", lambda app, **kw: calls.update(app=app, **kw))
    ck = str(make_checkpoint(tmp_path / "ck"))
    assert main(["serve", ck, "--max-batch", "0"]) == 2 and "--max-batch" in capsys.readouterr().err and not calls
    assert main(["serve", ck, "--max-delay-ms", "-3"]) == 2 and "--max-delay-ms" in capsys.readouterr().err
    assert main(["serve", ck, "--device", "cpu", "--max-batch", "4", "--max-delay-ms", "2.5"]) == 0
    assert "batches of up to 4 within 2.5 ms" in capsys.readouterr().out
    settings = calls["app"].state.settings
    assert (settings.max_batch, settings.max_delay_ms) == (4, 2.5)
    assert main(["serve", ck, "--device", "cpu", "--max-batch", "1"]) == 0
    assert "no batching" in capsys.readouterr().out
