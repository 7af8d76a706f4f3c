"""The service's guards against hostile clients: Host allow-list (DNS rebinding), Origin check, API key, security
headers, names repeated safely, and JSON for every error, including what the HTTP parser rejects.

The guards that belong to the server (Host, Origin, key, malformed HTTP) are checked on a real uvicorn server in a
thread, on 127.0.0.1, with raw sockets and ``http.client``: what a client on the network sees.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import socket
import threading
import time

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'fakescope[serve]'")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx: pip install 'fakescope[dev]'")

from fastapi.testclient import TestClient  # noqa: E402
from test_detect import make_checkpoint  # noqa: E402

from fakescope.inference import Detector  # noqa: E402
from fakescope.serve import ServeSettings, create_app  # noqa: E402

HOST = "127.0.0.1"
KEY = "k3y-for-the-tests-0123456789"


def png() -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return Detector.from_pretrained(make_checkpoint(tmp_path_factory.mktemp("ck") / "simple"), device="cpu")


class Server:
    """What ``fakescope serve`` runs (:func:`fakescope.serve.server.server_config`), in a thread, on a free port."""

    def __init__(self, app, settings: ServeSettings, **guard) -> None:
        import uvicorn

        from fakescope.serve.server import server_config

        with socket.socket() as s:
            s.bind((HOST, 0))
            self.port = s.getsockname()[1]
        config = server_config(app, host=HOST, port=self.port, limits=settings.limits(), log_level="warning",
                               keep_alive_s=1, **guard)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            assert time.time() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def open_server(detector):
    from fakescope.serve.security import allowed_hosts

    settings = ServeSettings(isolation="thread", max_upload_mb=0.5, header_timeout_s=1.0, idle_timeout_s=1.0)
    srv = Server(create_app(detector, settings), settings, hosts=allowed_hosts(HOST, ["detector.example"]))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def keyed_server(detector):
    from fakescope.serve.security import allowed_hosts

    settings = ServeSettings(isolation="thread", max_upload_mb=0.5)
    srv = Server(create_app(detector, settings), settings, hosts=allowed_hosts(HOST), api_key=KEY)
    yield srv
    srv.stop()


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host="Host" in (headers or {}), skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def raw(port: int, data: bytes, wait: float = 5.0) -> bytes:
    """Send ``data`` on a new connection; everything the server answers until it closes (or ``wait`` passes)."""
    with socket.create_connection((HOST, port)) as s:
        s.sendall(data)
        s.settimeout(wait)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (socket.timeout, TimeoutError, ConnectionResetError):
            pass
        return out


def assert_security_headers(headers: dict, page: bool = False) -> None:
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "no-referrer"
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    if not page:
        assert csp.startswith("default-src 'none'")


# ------------------------------------------------------------------------------------------- Host and Origin
def test_only_allowed_host_names_are_answered(open_server):
    port = open_server.port
    for host in (f"{HOST}:{port}", f"localhost:{port}", f"[::1]:{port}", "LOCALHOST", "detector.example:8000"):
        status, headers, body = request(port, "GET", "/healthz", headers={"Host": host})
        assert status == 200 and json.loads(body)["status"] == "ok", (host, status, body)
    for host in ("evil.example", f"attacker.example:{port}", "127.0.0.1.evil.example", "a b", "[::2]:80"):
        status, headers, body = request(port, "GET", "/healthz", headers={"Host": host})
        assert status == 400 and headers["content-type"] == "application/json", (host, status)
        error = json.loads(body)["error"]
        assert "Host header" in error and "--allowed-hosts" in error, error
        assert_security_headers(headers)
    answer = raw(port, b"GET /healthz HTTP/1.0\r\n\r\n")  # HTTP/1.0 may leave the Host out: refused too
    assert answer.startswith(b"HTTP/1.1 400") and b"no Host header" in answer


def test_a_page_elsewhere_cannot_post_through_the_browser(open_server):
    port = open_server.port
    status, _, body = request(port, "POST", "/v1/detect", png(),
                              {"Origin": "http://evil.example", "Content-Type": "image/png"})
    assert status == 403 and "Origin" in json.loads(body)["error"]
    status, _, body = request(port, "POST", "/v1/detect?filename=a.png", png(),
                              {"Origin": f"http://{HOST}:{port}", "Content-Type": "image/png"})
    assert status == 200 and json.loads(body)["path"] == "a.png"


# --------------------------------------------------------------------------------------------- the API key
def test_with_a_key_every_request_but_the_page_and_healthz_needs_it(keyed_server):
    port = keyed_server.port
    for headers, why in (({}, "no API key sent"), ({"Authorization": "Bearer wrong-key-0123456789"}, "wrong"),
                         ({"Authorization": f"Basic {KEY}"}, "wrong"), ({"Authorization": f"Bearer {KEY}x"}, "wrong")):
        for method, path in (("GET", "/v1/model"), ("POST", "/v1/detect"), ("GET", "/openapi.json")):
            status, h, body = request(port, method, path, png() if method == "POST" else None, headers)
            assert status == 401 and h["www-authenticate"] == "Bearer", (headers, path, status)
            assert why in json.loads(body)["error"] and "Authorization: Bearer" in json.loads(body)["error"]
    good = {"Authorization": f"Bearer {KEY}"}
    assert request(port, "GET", "/v1/model", headers=good)[0] == 200
    status, _, body = request(port, "POST", "/v1/detect?filename=k.png", png(), good)
    assert status == 200 and json.loads(body)["path"] == "k.png"
    assert request(port, "GET", "/")[0] == 200 and request(port, "GET", "/healthz")[0] == 200


def test_serve_off_loopback_needs_a_key_or_no_auth_and_says_which(monkeypatch, tmp_path, capsys):
    import fakescope.serve.server as server
    from fakescope.cli import main

    calls: dict = {}
    monkeypatch.setattr(server, "run_server", lambda app, **kw: calls.update(app=app, **kw))
    ck = str(make_checkpoint(tmp_path / "ck"))
    assert main(["serve", ck, "--host", "0.0.0.0", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "needs an API key" in err and "--api-key-file" in err and "--no-auth" in err and not calls
    (tmp_path / "short").write_text("abc\n")
    assert main(["serve", ck, "--host", "0.0.0.0", "--api-key-file", str(tmp_path / "short")]) == 2
    assert "at least 16 characters" in capsys.readouterr().err
    assert main(["serve", ck, "--host", "0.0.0.0", "--api-key-file", str(tmp_path / "missing")]) == 2
    assert "cannot read it" in capsys.readouterr().err

    assert main(["serve", ck, "--host", "0.0.0.0", "--no-auth", "--device", "cpu",
                 "--allowed-hosts", "detector.example"]) == 0
    out = capsys.readouterr().out
    assert "authentication: none (--no-auth)" in out and "without authentication" in out
    assert calls["api_key"] is None and "detector.example" in calls["hosts"] and "0.0.0.0" not in calls["hosts"]

    (tmp_path / "key").write_text(KEY + "\n")
    assert main(["serve", ck, "--host", "0.0.0.0", "--api-key-file", str(tmp_path / "key"), "--device", "cpu"]) == 0
    assert "API key from" in capsys.readouterr().out and calls["api_key"] == KEY
    assert main(["serve", ck, "--device", "cpu"]) == 0  # loopback: no key needed, and it says so
    assert "authentication: none (loopback only)" in capsys.readouterr().out and calls["api_key"] is None
    assert calls["hosts"] >= {"127.0.0.1", "localhost", "::1"}
    assert main(["serve", ck, "--allowed-hosts", "*", "--device", "cpu"]) == 0 and calls["hosts"] is None


# ---------------------------------------------------------------------------------- headers on every answer
def test_every_answer_carries_the_security_headers(open_server, detector):
    port = open_server.port
    answers = {
        "page": request(port, "GET", "/"),
        "healthz": request(port, "GET", "/healthz"),
        "404": request(port, "GET", "/nothing"),
        "405": request(port, "DELETE", "/v1/detect"),
        "413": request(port, "POST", "/v1/detect", b"\0" * (600 * 1024), {"Content-Type": "image/png"}),
        "415": request(port, "POST", "/v1/detect", b"plain text", {"Content-Type": "image/png"}),
        "422": request(port, "POST", "/v1/detect?details=maybe", png()),
    }
    for what, (status, headers, body) in answers.items():
        assert_security_headers(headers, page=what == "page")
        if what != "page":
            assert headers["content-type"] == "application/json", what
        if status >= 400:
            assert json.loads(body)["status"] == status == (int(what) if what.isdigit() else status), what
    # the page's policy allows exactly its own inline script and style, by hash
    status, headers, body = answers["page"]
    page, csp = body.decode(), headers["content-security-policy"]
    for tag in ("script", "style"):
        (inline,) = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.S)
        digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
        assert f"{tag}-src 'sha256-{digest}'" in csp
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "img-src data:" in csp
    assert request(port, "GET", "/docs")[0] == 404  # no third-party scripts served


# ------------------------------------------------------------------------------------------- names echoed
@pytest.mark.parametrize("given,shown", [
    ("../../etc/pass\x1bwd.png", "passwd.png"),
    ("C:\\Users\\me\\holiday.png", "holiday.png"),
    ("gnp.\u202eexe.png", "gnp.exe.png"),  # a right-to-left override would show it as ...png.exe
    ("line\r\nbreak\x00.png", "linebreak.png"),
    ("/", "upload"),
    ("..", "upload"),
    ("<img src=x onerror=alert(1)>.png", "<img src=x onerror=alert(1)>.png"),  # the page shows it as text
])
def test_names_are_repeated_sanitised(detector, given, shown):
    data = png()
    with TestClient(create_app(detector, ServeSettings(isolation="thread"))) as c:
        raw_body = c.post("/v1/detect", params={"filename": given}, content=data).json()
        form = c.post("/v1/detect", files={"file": (given, data, "image/png")}).json()
    assert raw_body["path"] == shown, raw_body["path"]
    if "\r" not in given and "\x00" not in given:  # the form's header cannot carry those
        assert form["path"] == shown, form["path"]


def test_an_overlong_name_is_cut_keeping_its_suffix(detector):
    with TestClient(create_app(detector, ServeSettings(isolation="thread"))) as c:
        path = c.post("/v1/detect", params={"filename": "a" * 5000 + ".png"}, content=png()).json()["path"]
    assert len(path) <= 200 and path.endswith(".png") and path.startswith("aaaa")


# ------------------------------------------------------------------------------------------- JSON errors
MALFORMED = {
    "garbage request line": b"HELLO\r\n\r\n",
    "header without a colon": b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nNo colon here\r\n\r\n",
    "target that is not ASCII": b"GET /\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "bad Content-Length": b"POST /v1/detect HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ten\r\n\r\n",
    "two Content-Lengths": b"POST /v1/detect HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n"
                           b"Content-Length: 2\r\n\r\nab",
    "bad chunk size": b"POST /v1/detect HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "headers over 16 KiB": b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 40_000,  # no end yet
    "HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "TLS client hello": bytes.fromhex("16030100a5010000a10303") + b"\0" * 40 + b"\r\n\r\n",
    "header name with a space": b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX A: b\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_http_gets_a_json_400(open_server, case):
    answer = raw(open_server.port, MALFORMED[case])
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), (case, answer[:200])
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.decode("latin-1").partition(":") for line in head.split(b"\r\n")[1:])}
    assert headers["content-type"] == "application/json"
    assert_security_headers(headers)
    error = json.loads(body[:int(headers["content-length"])])
    assert error["status"] == 400, error
    if case == "HTTP/2 preface":  # its first line parses as a request (without Host); the rest does not
        assert "no Host header" in error["error"] and b"malformed HTTP request" in body, answer
    else:
        assert "malformed HTTP request" in error["error"] and headers["connection"] == "close", error


def test_what_gets_no_json_answer_is_only_a_connection_that_sends_no_complete_request(open_server):
    """The one kind of refusal without a JSON body (named in docs/inference.md): a connection whose request line
    and headers do not arrive within the header timeout is closed with no answer at all."""
    start = time.monotonic()
    answer = raw(open_server.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", wait=5.0)
    assert answer == b"" and time.monotonic() - start < 4.0


def test_application_errors_are_json(detector):
    class Broken:
        name, version = detector.name, detector.version

        def info(self):
            raise RuntimeError("the model card is unreadable")

    with TestClient(create_app(Broken(), ServeSettings(isolation="thread")), raise_server_exceptions=False) as c:
        r = c.get("/v1/model")
        assert r.status_code == 500 and r.json() == {"error": "internal error (RuntimeError)", "status": 500}
        assert_security_headers({k.lower(): v for k, v in r.headers.items()})
        r = c.put("/healthz")
        assert r.status_code == 405 and r.json()["status"] == 405 and r.headers["allow"] == "GET"
        assert c.get("/docs").json() == {"error": "Not Found", "status": 404}
