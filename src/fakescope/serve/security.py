"""What the service checks on every request before the application sees it, and adds to every answer.

* **Host allow-list.** A request must name, in its ``Host`` header, one of the names the service answers to:
  ``127.0.0.1``, ``localhost``, ``[::1]``, the address it was told to listen on, and those given with
  ``--allowed-hosts`` (``*`` turns the check off, for a proxy that checks names itself). Anything else gets a
  JSON 400 naming the header. This stops DNS rebinding: a web page whose name is made to resolve to 127.0.0.1
  still sends its own name as the host. A request that carries an ``Origin`` naming another host is refused the
  same way (403), so a page elsewhere cannot post uploads through the visitor's browser.
* **API key.** With a key (``--api-key-file``), every request but ``GET /`` (the page, which asks for the key)
  and ``GET /healthz`` (for probes) must send ``Authorization: Bearer KEY``; the comparison is
  :func:`hmac.compare_digest`; anything else gets a JSON 401 with ``WWW-Authenticate: Bearer``.
* **Security headers** on every answer: ``Content-Security-Policy`` (for the page: its own inline script and
  style by hash, images from ``data:`` URLs, requests to its own origin only; for everything else: nothing
  may load), ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` (and ``frame-ancestors 'none'``),
  ``Referrer-Policy: no-referrer``, ``Cross-Origin-Resource-Policy: same-origin``.
* :func:`safe_name`: an upload's name as the service repeats it (in the record's ``path`` and in messages).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
import unicodedata
from pathlib import Path

from fakescope.errors import ConfigError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
OPEN_PATHS = frozenset({"/", "/healthz"})  # answered without the API key
MAX_NAME_CHARS = 200
MIN_KEY_CHARS = 16
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
COMMON_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                  (b"referrer-policy", b"no-referrer"), (b"cross-origin-resource-policy", b"same-origin"))


SECURITY_NAMES = frozenset({b"content-security-policy", *(k for k, _ in COMMON_HEADERS)})


def security_headers(csp: str = API_CSP) -> list[tuple[bytes, bytes]]:
    return [(b"content-security-policy", csp.encode()), *COMMON_HEADERS]


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _normal(name: str) -> str:
    return name.strip().lower().strip("[]").rstrip(".")


def allowed_hosts(bind_host: str, extra: list[str] | tuple[str, ...] = ()) -> frozenset[str] | None:
    """The host names a request may name (lower case, IPv6 without brackets); ``None``: any (``*`` given)."""
    names = {_normal(n) for n in (*LOOPBACK_NAMES, bind_host)}
    for name in extra:
        name = name.strip()
        if name == "*":
            return None
        if not name or any(c in name for c in "/ @?#") or host_of(name) is None:
            raise ConfigError(f"--allowed-hosts: {name!r} is not a host name or address")
        names.add(_normal(host_of(name) or name))
    names.discard("0.0.0.0")  # listening everywhere is not a name a client uses
    names.discard("::")
    return frozenset(names)


_HOST_RE = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9._-]+))(?::(?P<port>[0-9]{1,5}))?$")


def host_of(header: str) -> str | None:
    """The host name in a ``Host`` header value (``name``, ``name:port``, ``[v6]:port``), or ``None`` if malformed."""
    m = _HOST_RE.match(header.strip())
    if m is None:
        return None
    return _normal(m.group("v6") or m.group("name"))


def read_api_key(path: str | Path) -> str:
    """The key in ``path`` (its first line, surrounding white space removed); a :class:`ConfigError` naming the
    file when it cannot be read or the key is too short or not printable ASCII."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--api-key-file {path}: cannot read it ({exc.__class__.__name__}: {exc})") from None
    key = text.strip().splitlines()[0].strip() if text.strip() else ""
    if len(key) < MIN_KEY_CHARS:
        raise ConfigError(f"--api-key-file {path}: the key must be at least {MIN_KEY_CHARS} characters (found "
                          f"{len(key)}); make one with: python -c \"import secrets; print(secrets.token_urlsafe(32))\"")
    if not all(33 <= ord(c) < 127 for c in key):
        raise ConfigError(f"--api-key-file {path}: the key must be printable ASCII without spaces")
    return key


def safe_name(name: str | None, default: str = "upload") -> str:
    """An upload's name fit to repeat: its last path component (``/`` and ``\\`` both separate), without control,
    format (bidirectional overrides) or unassigned characters, at most :data:`MAX_NAME_CHARS` characters (the
    suffix kept); ``default`` when nothing is left. HTML special characters stay: the page shows names as text."""
    if not name:
        return default
    name = re.split(r"[/\\]", str(name))[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] not in "CZ" or c == " ").strip()
    if name in ("", ".", ".."):
        return default
    if len(name) > MAX_NAME_CHARS:
        stem, dot, suffix = name.rpartition(".")
        if dot and 0 < len(suffix) <= 16 and stem:
            name = stem[:MAX_NAME_CHARS - len(suffix) - 2] + "…." + suffix
        else:
            name = name[:MAX_NAME_CHARS - 1] + "…"
    return name


def page_csp(page: str) -> str:
    """A Content-Security-Policy for ``page`` that allows exactly its inline scripts and styles (by SHA-256)."""

    def hashes(tag: str) -> str:
        found = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.S)
        return " ".join("'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
                        for s in found) or "'none'"

    return (f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; img-src data:; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class SecurityHeaders:
    """ASGI middleware: the security headers on every answer of the application (the page gets ``page_csp``)."""

    def __init__(self, app, *, page_csp: str) -> None:
        self.app = app
        self.page_csp = page_csp

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                own = [(k, v) for k, v in message.get("headers", []) if k.lower() not in SECURITY_NAMES]
                ctype = next((v for k, v in own if k.lower() == b"content-type"), b"")
                csp = self.page_csp if ctype.startswith(b"text/html") else API_CSP
                message = {**message, "headers": own + security_headers(csp)}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Guard:
    """ASGI wrapper of the whole application: the Host allow-list, the Origin check and the API key. The server
    (:func:`fakescope.serve.server.run_server`) puts it in front, as it knows where it listens."""

    def __init__(self, app, *, hosts: frozenset[str] | None, api_key: str | None) -> None:
        self.app = app
        self.hosts = hosts
        self.key = api_key.encode() if api_key else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for k, v in scope.get("headers", []):
            headers.setdefault(k.lower(), v)
        refusal = self._check(scope, headers)
        if refusal is not None:
            await self._refuse(send, *refusal)
            return
        await self.app(scope, receive, send)

    def _check(self, scope, headers: dict[bytes, bytes]) -> tuple[int, str, list] | None:
        if self.hosts is not None:
            raw = headers.get(b"host")
            if raw is None:
                return 400, "the request has no Host header", []
            text = raw.decode("latin-1")
            host = host_of(text)
            if host is None or host not in self.hosts:
                return 400, (f"Host header {text[:100]!r} is not a name this service answers to (allowed: "
                             f"{', '.join(sorted(self.hosts))}; fakescope serve --allowed-hosts adds names)"), []
            origin = headers.get(b"origin")
            if origin is not None and origin != b"null":
                m = re.match(r"^[a-z][a-z0-9+.-]*://([^/]+)$", origin.decode("latin-1").strip(), flags=re.I)
                if m is None or host_of(m.group(1).rsplit("@", 1)[-1]) not in self.hosts:
                    return 403, (f"requests from the web page at {origin.decode('latin-1')[:100]!r} are not "
                                 "accepted (Origin is not a name this service answers to)"), []
        if self.key is not None and scope.get("path") not in OPEN_PATHS:
            auth = headers.get(b"authorization", b"")
            scheme, _, given = auth.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self.key):
                why = "no API key sent" if not auth else "wrong API key or scheme"
                return 401, f"{why}: send the key as 'Authorization: Bearer KEY'", [(b"www-authenticate", b"Bearer")]
        return None

    @staticmethod
    async def _refuse(send, status: int, message: str, extra: list) -> None:
        body = json.dumps({"error": message, "status": status}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                *extra, *security_headers()]})
        await send({"type": "http.response.body", "body": body, "more_body": False})
