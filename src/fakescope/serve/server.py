"""The HTTP server under the service: uvicorn, with the connection handling a public service needs.

uvicorn alone keeps a connection that never sends a byte open for ever (its keep-alive timeout starts only
after a first response), and its ``limit_concurrency`` counts such idle connections with the requests, then
answers everyone with a plain-text 503: 70 idle sockets were enough to refuse every request. Here each
connection has

* a **header timeout** (``header_timeout_s``): the request line and headers must have arrived this long after
  the connection opened, or after the previous response; trickling them a byte at a time does not extend it;
* an **idle timeout** (``idle_timeout_s``) while the request body arrives: a pause longer than this closes the
  connection (the whole upload also has ``timeout_s``, which the application enforces);
* a place under a **connection limit** (``max_connections``), which is separate from the scoring queue: beyond
  it a connection still gets an answer, a JSON 503 with ``Retry-After`` and ``Connection: close``, as soon as
  its headers are in (and at most 2 s of waiting for them); beyond twice the limit it is closed at once;
* **JSON for what the HTTP parser rejects**: a malformed request line or header, a bad ``Content-Length`` or
  chunked encoding, headers over h11's size limit, a target that is not ASCII: a JSON 400 with
  ``Connection: close`` (uvicorn's own answer to these is plain text).

What still gets no JSON answer: a connection closed at its header or idle timeout, or at once beyond twice the
connection limit, gets no answer at all (there is no request to answer yet, or it stopped arriving).
WebSocket upgrades are not offered (``Upgrade`` headers are ignored and the request served as plain HTTP).

uvicorn stays the server (the ASGI server FastAPI documents, run here in one process: the uploads are decoded
and scored in ``workers`` worker processes of the application, :mod:`fakescope.serve.workers`); these guards
are a subclass of its HTTP/1.1 protocol, so they apply whether or not a reverse proxy is in front. For internet
exposure put a proxy in front anyway (TLS, authentication, per-client rate limits): docs/inference.md shows an nginx setup.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from fakescope.serve.security import Guard, security_headers

OVER_LIMIT_HEADER_TIMEOUT_S = 2.0  # a connection over the limit gets this long to send its headers


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 256
    header_timeout_s: float = 10.0
    idle_timeout_s: float = 15.0
    retry_after_s: int = 1


def _json_503(limits: ConnectionLimits):
    body = json.dumps({"error": f"busy: {limits.max_connections} connections are open; retry later",
                       "status": 503}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"retry-after", str(limits.retry_after_s).encode()), (b"connection", b"close"), *security_headers()]

    async def too_many_connections(scope: dict[str, Any], receive, send) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return too_many_connections


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a header timeout, a body idle timeout and a connection limit
    (:class:`ConnectionLimits`; see the module's documentation). Make one with :func:`guarded_protocol`."""

    limits = ConnectionLimits()
    busy_app: Any = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._timer = None
        self._phase = ""
        self._header_deadline = self.limits.header_timeout_s
        open_now = len(self.connections)
        if open_now > 2 * self.limits.max_connections:
            transport.abort()
            return
        if open_now > self.limits.max_connections:
            self.app = self.busy_app  # its request, once in, is answered with the JSON 503 only
            self._header_deadline = min(self._header_deadline, OVER_LIMIT_HEADER_TIMEOUT_S)
        self._arm("header", self._header_deadline)

    def connection_lost(self, exc) -> None:
        self._cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        try:
            super().data_received(data)
        except Exception as exc:  # e.g. a request target that is not ASCII: uvicorn cannot decode it
            self.logger.info("malformed request from %s: %s: %s", self.client, type(exc).__name__, exc)
            cycle = self.cycle
            if cycle is None or cycle.response_complete or not cycle.response_started:
                self._send_json_400(f"malformed HTTP request ({type(exc).__name__})")
            else:
                self.transport.close()
            return
        self._watch()

    def send_400_response(self, msg: str) -> None:  # what uvicorn sends when h11 rejects the request
        self._send_json_400("malformed HTTP request: the request line, a header or the body framing could not "
                            "be parsed")

    def _send_json_400(self, message: str) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        body = json.dumps({"error": message, "status": 400}).encode()
        head = [b"HTTP/1.1 400 Bad Request", b"content-type: application/json",
                b"content-length: " + str(len(body)).encode(), b"connection: close"]
        head += [k + b": " + v for k, v in security_headers()]
        self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    # -- the timers -------------------------------------------------------------------------------------------
    def _watch(self) -> None:
        """Arm the timer the connection's state calls for: headers awaited, body awaited, or the app at work."""
        if self.transport is None or self.transport.is_closing():
            self._cancel()
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            if self._phase != "header":  # a deadline from the end of the last response, not from each byte
                self._arm("header", self._header_deadline)
        elif cycle.more_body:
            self._arm("body", self.limits.idle_timeout_s)  # a new pause allowance with every chunk
        else:
            self._cancel()  # the application has the request: its own timeouts apply

    def _arm(self, phase: str, seconds: float) -> None:
        self._cancel()
        self._phase = phase
        self._timer = self.loop.call_later(seconds, self._expired, phase)

    def _cancel(self) -> None:
        timer = getattr(self, "_timer", None)
        if timer is not None:
            timer.cancel()
        self._timer = None
        self._phase = ""

    def _expired(self, phase: str) -> None:
        self._timer = None
        if self.transport is None or self.transport.is_closing():
            return
        what = "request headers" if phase == "header" else "request body"
        self.logger.info("closing a connection from %s: its %s did not arrive in time", self.client, what)
        if phase == "body" and self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()  # the application's receive() sees the disconnect
        self.transport.close()


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """A :class:`GuardedH11Protocol` class with these limits (uvicorn makes one instance per connection)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits, "busy_app": staticmethod(_json_503(limits))})


def server_config(app, *, host: str, port: int, limits: ConnectionLimits, keep_alive_s: float = 5.0,
                  log_level: str = "info", hosts: frozenset[str] | None = frozenset({"127.0.0.1", "localhost", "::1"}),
                  api_key: str | None = None):
    """The uvicorn configuration :func:`run_server` runs: HTTP/1.1 with the guarded protocol, no WebSocket, and
    the application behind :class:`fakescope.serve.security.Guard` (Host allow-list ``hosts``, ``None``: any;
    ``api_key``: required unless ``None``)."""
    import uvicorn

    return uvicorn.Config(Guard(app, hosts=hosts, api_key=api_key), host=host, port=port,
                          http=guarded_protocol(limits), ws="none", log_level=log_level,
                          timeout_keep_alive=max(int(keep_alive_s), 1), limit_concurrency=None,
                          timeout_graceful_shutdown=5, lifespan="on", server_header=False)


def run_server(app, *, host: str, port: int, limits: ConnectionLimits, keep_alive_s: float = 5.0,
               log_level: str = "info", hosts: frozenset[str] | None = frozenset({"127.0.0.1", "localhost", "::1"}),
               api_key: str | None = None) -> None:
    """Serve ``app`` with uvicorn (:func:`server_config`) until interrupted."""
    import uvicorn

    uvicorn.Server(server_config(app, host=host, port=port, limits=limits, keep_alive_s=keep_alive_s,
                                 log_level=log_level, hosts=hosts, api_key=api_key)).run()
