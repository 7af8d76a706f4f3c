"""The service on a real socket: idle and slow connections cannot starve it, every refusal is JSON, bombs get 4xx.

A uvicorn server runs in a thread on 127.0.0.1 with short timeouts; the clients are raw sockets and
``http.client``, so what is checked is what a client on the network sees.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'fakescope[serve]'")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install 'fakescope[serve]'")

from fakescope.serve import ServeSettings, create_app  # noqa: E402
from reliability.corpus import png_header_bomb, stored_png  # noqa: E402

HOST = "127.0.0.1"


class Server:
    """uvicorn with the guarded protocol, in a thread, on a free port (what ``fakescope serve`` runs)."""

    def __init__(self, app, settings: ServeSettings) -> None:
        import uvicorn

        from fakescope.serve.server import guarded_protocol

        with socket.socket() as s:
            s.bind((HOST, 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(app, host=HOST, port=self.port, http=guarded_protocol(settings.limits()),
                                log_level="warning", timeout_keep_alive=1, limit_concurrency=None, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            assert time.time() < deadline, "the server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def server(reliability_detector):
    settings = ServeSettings(workers=1, queue=1, max_connections=6, header_timeout_s=0.6, idle_timeout_s=0.6,
                             timeout_s=5, max_upload_mb=1)
    srv = Server(create_app(reliability_detector, settings), settings)
    yield srv
    srv.stop()


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def upload(port: int, data: bytes, name: str = "x.png"):
    boundary = "fakescopeboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return request(port, "POST", "/v1/detect", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except (socket.timeout, TimeoutError):
        return False
    except OSError:
        return True


def test_idle_connections_are_closed_and_do_not_starve_requests(server, outcomes):
    idle = [socket.create_connection((HOST, server.port)) for _ in range(8)]  # more than max_connections
    try:
        time.sleep(0.2)
        status, headers, body = request(server.port, "GET", "/healthz")
        # the connection limit may already be reached by the idle crowd: then the answer is a JSON 503
        assert status in (200, 503)
        if status == 503:
            assert json.loads(body)["status"] == 503 and headers["retry-after"]
        assert all(closed_by_server(s, 3.0) for s in idle), "an idle connection outlived the header timeout"
        status, _, body = upload(server.port, stored_png(32))
        assert status == 200 and json.loads(body)["score"] is not None
        outcomes.append(("TCP connections that never send a byte (more than the limit)", "serve",
                         "closed after the header timeout; requests are served meanwhile or get JSON 503"))
    finally:
        for s in idle:
            s.close()


def test_headers_sent_a_byte_at_a_time_do_not_extend_the_deadline(server, outcomes):
    s = socket.create_connection((HOST, server.port))
    start = time.time()
    try:
        for ch in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 40:
            try:
                s.send(bytes([ch]))
            except OSError:
                break
            time.sleep(0.05)
        assert closed_by_server(s, 3.0)
        assert time.time() - start < 3.0
        outcomes.append(("request headers trickled a byte at a time (slowloris)", "serve",
                         "closed at the header deadline, which the bytes do not extend"))
    finally:
        s.close()


def test_a_stalled_upload_body_is_cut_off(server, outcomes):
    s = socket.create_connection((HOST, server.port))
    try:
        s.sendall(b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                  b"Content-Length: 100000\r\n\r\n" + b"\0" * 1000)
        assert closed_by_server(s, 3.0), "a body that stopped arriving held its connection open"
    finally:
        s.close()
    deadline = time.time() + 5
    while time.time() < deadline:  # its slot in the scoring queue comes back
        status, _, body = request(server.port, "GET", "/healthz")
        if status == 200 and json.loads(body)["active"] == 0:
            break
        time.sleep(0.1)
    assert json.loads(body)["active"] == 0
    outcomes.append(("upload body that stops arriving", "serve",
                     "closed after the idle timeout; its scoring slot comes back"))


def test_over_the_connection_limit_the_answer_is_json_503_with_retry_after(server, outcomes):
    held = [socket.create_connection((HOST, server.port)) for _ in range(6)]
    try:
        time.sleep(0.1)
        status, headers, body = request(server.port, "GET", "/healthz")
        assert status == 503 and headers["retry-after"] and headers["content-type"] == "application/json"
        assert "connections" in json.loads(body)["error"]
        outcomes.append(("a request over the connection limit", "serve", "JSON 503 with Retry-After, connection closed"))
    finally:
        for s in held:
            s.close()


def test_a_burst_beyond_the_queue_gets_json_503_never_plain_text(server, outcomes):
    results: list[tuple[int, dict, bytes]] = []
    data = stored_png(64)

    def one() -> None:
        try:
            results.append(upload(server.port, data))
        except OSError as exc:  # pragma: no cover - reported by the assertion below
            results.append((0, {}, str(exc).encode()))

    threads = [threading.Thread(target=one) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    statuses = [r[0] for r in results]
    assert statuses.count(200) >= 1 and set(statuses) <= {200, 503}, statuses
    for status, headers, body in results:
        if status == 503:
            assert headers.get("retry-after") and json.loads(body)["status"] == 503
    outcomes.append(("a burst of uploads beyond workers + queue", "serve",
                     f"{statuses.count(200)} of {len(statuses)} served, the others JSON 503 with Retry-After"))


def test_decompression_bombs_get_413_not_500(server):
    for side in (13000, 30000):
        status, _, body = upload(server.port, png_header_bomb(side), "bomb.png")
        assert status == 413, (side, status, body[:200])
        assert "pixel budget" in json.loads(body)["error"]


# ----------------------------------------------------------------- an upload that holds the CPU (issue #29, 1)
def healthz_poller(port: int, stop: threading.Event, latencies: list, statuses: list) -> None:
    while not stop.is_set():
        start = time.monotonic()
        try:
            status, _, _ = request(port, "GET", "/healthz")
        except OSError:
            status = 0
        latencies.append(time.monotonic() - start)
        statuses.append(status)
        time.sleep(0.05)


def wait_for_workers(port: int, replaced: int = 0, within: float = 180.0) -> dict:
    """/healthz once all workers are ready (and ``replaced`` of them have been replaced)."""
    deadline = time.time() + within
    while True:
        health = json.loads(request(port, "GET", "/healthz")[2])
        workers = health.get("workers")
        if workers is None or (workers["ready"] == workers["of"] and workers["replaced"] >= replaced):
            return health
        assert time.time() < deadline, f"the workers did not come up: {health}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def stuck_server(reliability_detector):
    from reliability.stand_ins import StuckDetector

    settings = ServeSettings(workers=2, queue=64, max_connections=128, timeout_s=4, max_upload_mb=1)
    srv = Server(create_app(StuckDetector(reliability_detector, hold_s=30), settings), settings)
    yield srv
    srv.stop()


def test_an_upload_that_holds_the_cpu_cannot_stall_the_service(stuck_server, outcomes):
    """One upload holds the interpreter lock for 30 s while 50 others are scored: /healthz keeps answering within
    1 s, the 50 are answered correctly, the stuck one gets its JSON 504 at the 4 s deadline, and its worker is
    killed and replaced, after which uploads are scored normally."""
    from concurrent.futures import ThreadPoolExecutor

    from reliability.stand_ins import HOLD_NAME

    port, timeout = stuck_server.port, 4.0
    wait_for_workers(port)
    pids_before = set(stuck_server.server.config.app.state.gate.pids()) if hasattr(
        stuck_server.server.config.app.state.gate, "pids") else set()
    stop, latencies, statuses = threading.Event(), [], []
    poller = threading.Thread(target=healthz_poller, args=(port, stop, latencies, statuses), daemon=True)
    poller.start()
    stuck: dict = {}

    def send_stuck() -> None:
        start = time.monotonic()
        stuck["answer"] = upload(port, stored_png(48, seed=1), HOLD_NAME)
        stuck["seconds"] = time.monotonic() - start

    stuck_thread = threading.Thread(target=send_stuck, daemon=True)
    try:
        stuck_thread.start()
        time.sleep(0.5)  # the stuck upload is in a worker by now
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: upload(port, stored_png(32, seed=i), f"normal-{i}.png"), range(50)))
        stuck_thread.join(60)
        time.sleep(0.5)
    finally:  # the poller stops even when an upload fails, so that it cannot load the tests after this one
        stop.set()
        poller.join(10)
    assert "answer" in stuck, "the stuck upload got no answer within the client's 10 s"

    for i, (status, headers, body) in enumerate(answers):
        record = json.loads(body)
        assert status == 200 and record["path"] == f"normal-{i}.png" and 0 <= record["score"] <= 1, (i, status, body)
    status, headers, body = stuck["answer"]
    assert status == 504 and headers["content-type"] == "application/json", (status, body)
    assert json.loads(body) == {"error": f"scoring took longer than {timeout:g} s", "status": 504}
    assert timeout - 0.5 <= stuck["seconds"] <= timeout + 3.0, stuck["seconds"]
    assert len(latencies) >= 20 and set(statuses) == {200}, (len(latencies), set(statuses))
    p99 = sorted(latencies)[int(0.99 * (len(latencies) - 1))]
    assert p99 < 1.0, f"/healthz p99 {p99:.2f} s, slowest {max(latencies):.2f} s"

    health = wait_for_workers(port, replaced=1)
    assert health["workers"]["replaced"] == 1
    gate = stuck_server.server.config.app.state.gate
    gone = pids_before - set(gate.pids())
    assert len(gone) == 1, (pids_before, gate.pids())  # the stuck worker, killed
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(gone.pop(), 0)
    status, _, body = upload(port, stored_png(32, seed=99), "after.png")
    assert status == 200 and json.loads(body)["path"] == "after.png"
    outcomes.append(("an upload that holds the CPU (interpreter lock) past the deadline", "serve",
                     f"JSON 504 after {stuck['seconds']:.1f} s (timeout {timeout:g} s), its worker process killed "
                     f"and replaced; /healthz p99 {p99 * 1000:.0f} ms meanwhile, 50 other uploads scored"))


def test_a_worker_that_dies_on_an_upload_is_replaced(stuck_server, outcomes):
    from reliability.stand_ins import CRASH_NAME

    port = stuck_server.port
    before = wait_for_workers(port)["workers"]["replaced"]
    status, headers, body = upload(port, stored_png(32), CRASH_NAME)
    assert status == 500 and headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert "worker process scoring it ended" in error and "signal 9" in error, error
    assert wait_for_workers(port, replaced=before + 1)["workers"]["replaced"] == before + 1
    status, _, body = upload(port, stored_png(32), "next.png")
    assert status == 200 and json.loads(body)["path"] == "next.png"
    outcomes.append(("an upload whose worker process is killed (out of memory)", "serve",
                     "JSON 500 naming the signal; the worker is replaced and the service goes on"))
