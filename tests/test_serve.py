"""The REST service: records, media sniffing, upload limit, bounded concurrency, timeouts, JSON errors."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'fakescope[serve]'")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx: pip install 'fakescope[dev]'")

from fastapi.testclient import TestClient  # noqa: E402
from conftest import MTCNN_MISSING  # noqa: E402
from test_detect import HAVE_MTCNN, make_checkpoint, make_media  # noqa: E402

from fakescope.cli import build_parser  # noqa: E402
from fakescope.inference import Detector  # noqa: E402
from fakescope.serve import Gate, ServeSettings, create_app  # noqa: E402


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    return make_media(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return Detector.from_pretrained(make_checkpoint(tmp_path_factory.mktemp("ck") / "simple"), device="cpu",
                                    num_frames=5)


@pytest.fixture(scope="module")
def client(detector):
    with TestClient(create_app(detector, ServeSettings(max_upload_mb=0.5))) as c:
        yield c


def post(client, name, data, ctype="application/octet-stream", **params):
    return client.post("/v1/detect", params=params, files={"file": (name, data, ctype)})


def test_health_model_and_page(client):
    h = client.get("/healthz")
    assert h.status_code == 200 and h.json()["status"] == "ok" and h.json()["model"] == "simple_cnn_tiny"
    m = client.get("/v1/model").json()
    assert m["input_size"] == 32 and m["modality"] == "image" and m["max_upload_bytes"] == 512 * 1024
    assert m["demonstration"] is False and 'id="demo"' in client.get("/").text  # the page's banner, hidden here
    page = client.get("/")
    assert page.status_code == 200 and 'type="file"' in page.text and "/v1/detect" in page.text


def test_image_upload_returns_the_same_record_as_the_api(client, detector, media):
    r = post(client, "photo.png", media["face"].read_bytes(), "image/png")
    assert r.status_code == 200
    rec = r.json()
    direct = detector.predict(media["face"])
    assert rec["path"] == "photo.png" and rec["kind"] == "image" and rec["error"] is None
    assert rec["score"] == pytest.approx(direct["score"], abs=1e-6) and rec["label"] == direct["label"]
    assert rec["model_version"] == direct["model_version"] and "details" not in rec


def test_media_type_comes_from_the_bytes_not_the_header(client, media):
    video = post(client, "holiday.png", media["video"].read_bytes(), "image/png")  # a video that claims to be a PNG
    assert video.status_code == 200 and video.json()["kind"] == "video"
    assert len(video.json()["frame_scores"]) == 5
    image = post(client, "clip.mp4", media["noise"].read_bytes(), "video/mp4")  # a JPEG that claims to be a video
    assert image.status_code == 200 and image.json()["kind"] == "image"
    raw = client.post("/v1/detect", content=media["noise"].read_bytes(), headers={"content-type": "video/mp4"})
    assert raw.status_code == 200 and raw.json()["score"] == pytest.approx(image.json()["score"], abs=1e-6)


@pytest.mark.parametrize("case,status,words", [
    ("empty", 400, "empty upload"),
    ("text", 415, "neither an image nor a video"),
    ("truncated", 422, "truncated or corrupt"),
    ("oversized", 413, "larger than the limit"),
])
def test_bad_uploads_get_a_json_4xx_and_the_server_stays_up(client, media, case, status, words):
    data = b"\0" * (600 * 1024) if case == "oversized" else media[case].read_bytes()
    r = post(client, f"{case}.png", data, "image/png")
    assert r.status_code == status
    body = r.json()
    assert body["status"] == status and words in body["error"]
    assert client.get("/healthz").json()["active"] == 0


def test_declared_oversize_is_refused_before_reading(client):
    r = client.post("/v1/detect", content=b"x" * 10, headers={"content-length": str(50 * 1024 * 1024)})
    assert r.status_code == 413 and "larger than the limit" in r.json()["error"]


def test_form_without_file_and_unknown_routes_are_json_errors(client):
    r = client.post("/v1/detect", files={"other": ("a.png", b"123", "image/png")})
    assert r.status_code == 400 and "'file'" in r.json()["error"]
    assert client.get("/v2/nothing").json() == {"error": "Not Found", "status": 404}
    assert client.get("/v1/detect").status_code == 405


def test_details_carry_the_input_spectrum_and_crops(client, media):
    rec = post(client, "n.jpg", media["noise"].read_bytes(), details="true").json()
    d = rec["details"]
    assert d["input_png"].startswith("data:image/png;base64,")
    assert d["spectrum_png"].startswith("data:image/png;base64,") and d["face_pngs"] == []


@pytest.mark.skipif(not HAVE_MTCNN, reason=MTCNN_MISSING)
def test_face_model_service_returns_crops_and_reports_no_face(tmp_path, media):
    det = Detector.from_pretrained(make_checkpoint(tmp_path / "eff", "efficientnet_tiny"), device="cpu")
    with TestClient(create_app(det)) as c:
        rec = post(c, "astronaut.png", media["face"].read_bytes(), details="true").json()
        assert rec["faces_found"] == 1 and len(rec["details"]["face_pngs"]) == 1
        none = post(c, "noise.jpg", media["noise"].read_bytes())
        assert none.status_code == 422 and "no face found" in none.json()["error"]


class SlowDetector:
    """Stands in for a detector whose scoring blocks until released (or sleeps)."""

    def __init__(self, real, release: threading.Event | None = None, sleep: float = 0.0) -> None:
        self.real, self.release, self.sleep = real, release, sleep
        self.name, self.version = real.name, real.version
        self.started = threading.Event()

    def info(self):
        return self.real.info()

    def predict(self, x, **kw):
        self.started.set()
        if self.release is not None:
            assert self.release.wait(30)
        time.sleep(self.sleep)
        return self.real.predict(x, **kw)


def test_full_queue_answers_503_and_recovers(detector, media):
    release = threading.Event()
    slow = SlowDetector(detector, release=release)
    app = create_app(slow, ServeSettings(workers=1, queue=0, isolation="thread"))  # the stand-in stays here
    data = media["noise"].read_bytes()
    with TestClient(app) as c:
        first: dict = {}
        t = threading.Thread(target=lambda: first.update(r=post(c, "a.jpg", data)))
        t.start()
        assert slow.started.wait(10)
        busy = post(c, "b.jpg", data)
        assert busy.status_code == 503 and "busy" in busy.json()["error"] and busy.headers["retry-after"] == "1"
        release.set()
        t.join(30)
        assert first["r"].status_code == 200
        assert post(c, "c.jpg", data).status_code == 200  # the slot came back


def test_slow_scoring_times_out_with_504_and_frees_its_slot_when_done(detector, media):
    slow = SlowDetector(detector, sleep=2.0)
    app = create_app(slow, ServeSettings(workers=1, queue=0, timeout_s=0.5, isolation="thread"))
    with TestClient(app) as c:
        r = post(c, "a.jpg", media["noise"].read_bytes())
        assert r.status_code == 504 and "longer than" in r.json()["error"]
        assert c.get("/healthz").json()["active"] == 1  # still running: no new work admitted beyond capacity
        deadline = time.time() + 10
        while c.get("/healthz").json()["active"] and time.time() < deadline:
            time.sleep(0.05)
        assert c.get("/healthz").json()["active"] == 0


def test_gate_bounds_work():
    gate = Gate(workers=1, queue=1)
    ev = threading.Event()
    a, b = gate.submit(ev.wait, 5), gate.submit(ev.wait, 5)
    assert a is not None and b is not None and gate.submit(ev.wait, 5) is None and gate.active == 2
    ev.set()
    a.result(5), b.result(5)
    time.sleep(0.05)
    assert gate.active == 0 and gate.submit(lambda: 1).result(5) == 1
    gate.shutdown()


def test_serve_binds_loopback_by_default_and_loads_once(monkeypatch, tmp_path):
    import fakescope.serve.server as server

    from fakescope.cli import main

    args = build_parser().parse_args(["serve", "ck"])
    assert args.host == "127.0.0.1"
    calls: dict = {}
    loads = []
    real = Detector.from_pretrained.__func__

    def counting(cls, *a, **kw):
        loads.append(a)
        return real(cls, *a, **kw)

    monkeypatch.setattr(Detector, "from_pretrained", classmethod(counting))
    monkeypatch.setattr(server, "run_server", lambda app, **kw: calls.update(app=app, **kw))
    ck = make_checkpoint(tmp_path / "ck")
    assert main(["serve", str(ck), "--port", "8123", "--max-upload-mb", "2", "--device", "cpu"]) == 0
    assert calls["host"] == "127.0.0.1" and calls["port"] == 8123 and len(loads) == 1
    assert calls["app"].state.settings.max_upload_bytes == 2 * 1024 * 1024


def test_query_parameters_each_work_and_an_unknown_one_is_a_422(tmp_path, media):
    """Every documented query parameter of POST /v1/detect does what it says; a misspelt one is not ignored."""
    import json

    ck = make_checkpoint(tmp_path / "cal")
    config = json.loads((ck / "config.json").read_text())  # what fakescope calibrate writes (values made up)
    config["calibration"] = {"temperature": 1.0, "thresholds": {"eer": 0.5, "fpr1": 0.999, "fpr5": 0.001},
                             "data": "val", "n": 400, "n_real": 200, "n_fake": 200, "fitted": "today"}
    (ck / "config.json").write_text(json.dumps(config))
    det = Detector.from_pretrained(ck, device="cpu")
    data = media["face"].read_bytes()
    with TestClient(create_app(det)) as c:
        default = post(c, "a.png", data).json()
        assert default["operating_point"] == "fpr1" and default["threshold"] == 0.999  # the checkpoint's default
        assert default["label"] == "real" and default["score"] < 0.999
        low = post(c, "a.png", data, operating_point="fpr5").json()
        assert (low["operating_point"], low["threshold"], low["label"]) == ("fpr5", 0.001, "fake")
        assert low["score"] == default["score"]  # the operating point moves the threshold, never the score
        fixed = post(c, "a.png", data, operating_point="0.25").json()
        assert (fixed["operating_point"], fixed["threshold"]) == ("fixed", 0.25)
        assert fixed["label"] == ("fake" if fixed["score"] >= 0.25 else "real")
        assert det.threshold == 0.999  # one request's choice does not stick to the service
        assert "details" in post(c, "a.png", data, details="true").json()
        raw = c.post("/v1/detect", params={"filename": "named.png"}, content=data).json()
        assert raw["path"] == "named.png" and raw["error"] is None
        for params, word in (({"operating_piont": "fpr1"}, "operating_piont"), ({"threshold": "0.3"}, "threshold"),
                             ({"operating_point": "fpr2"}, "fpr2"), ({"operating_point": "7"}, "operating_point"),
                             ({"details": "maybe"}, "details")):
            r = c.post("/v1/detect", params=params, files={"file": ("a.png", data, "image/png")})
            assert r.status_code == 422 and word in r.json()["error"], (params, r.json())
