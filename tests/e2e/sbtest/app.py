"""The customer's web application, as a test double that is a real HTTP server.

It records every request (method, path, full URL, headers, form and query
parameters) and answers each path with what the test configured: TwiML, plain
text, an HTTP error, or invalid XML. Signatures are checked with the official
SDK's RequestValidator over the exact URL the app was requested with."""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from twilio.request_validator import RequestValidator


class MultiParams(dict):
    """name -> [values]; `getlist` lets RequestValidator sign repeated values."""

    def getlist(self, name: str) -> list[str]:
        return self[name]


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the query string
    url: str  # full URL as requested: http://Host/path?query
    headers: dict[str, str]  # lower-cased names
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    body: bytes
    received_at: float

    def param(self, name: str, default: str | None = None) -> str | None:
        """A webhook parameter: from the form for POST, the query for GET."""
        values = self.form.get(name) or self.query.get(name)
        return values[0] if values else default

    @property
    def params(self) -> dict[str, str]:
        merged = {k: v[0] for k, v in self.query.items()}
        merged.update({k: v[0] for k, v in self.form.items()})
        return merged

    @property
    def signature(self) -> str | None:
        return self.headers.get("x-twilio-signature")

    def signature_valid(self, auth_token: str) -> bool:
        if not self.signature:
            return False
        # Twilio signs the URL (query included) plus the POST parameters.
        params = MultiParams(self.form) if self.method == "POST" else MultiParams()
        return RequestValidator(auth_token).validate(self.url, params, self.signature)

    def describe(self) -> str:
        return f"{self.method} {self.url} sig={self.signature!r} params={self.params}"


@dataclass
class Route:
    body: bytes
    content_type: str = "text/xml"
    status: int = 200
    delay_s: float = 0.0


@dataclass
class _State:
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)


class TestApp:
    """A threaded HTTP server on 127.0.0.1 with per-path canned answers."""

    __test__ = False  # not a pytest test class

    def __init__(self, tls: "ssl.SSLContext | None" = None) -> None:
        """`tls`: serve https with this server context instead of plain http."""
        self.scheme = "https" if tls is not None else "http"
        self._state = _State()
        self._defaults: dict[str, Route] = {}
        self._cond = threading.Condition()
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                split = urlsplit(self.path)
                host = self.headers.get("Host") or f"127.0.0.1:{app.port}"
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                form: dict[str, list[str]] = {}
                if self.command == "POST" and ctype == "application/x-www-form-urlencoded":
                    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
                request = RecordedRequest(
                    method=self.command,
                    path=split.path,
                    url=f"{app.scheme}://{host}{self.path}",
                    headers={k.lower(): v for k, v in self.headers.items()},
                    query=parse_qs(split.query, keep_blank_values=True),
                    form=form,
                    body=body,
                    received_at=time.monotonic(),
                )
                with app._cond:
                    app._state.requests.append(request)
                    route = app._state.routes.get(split.path)
                    app._cond.notify_all()
                if route is None:
                    route = Route(b"no route for this path in the test app", "text/plain", 404)
                if route.delay_s:
                    time.sleep(route.delay_s)
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)

            do_GET = _handle
            do_POST = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # lifecycle
    def start(self) -> "TestApp":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # configuration
    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, body: str | bytes, content_type: str = "text/xml",
               status: int = 200, delay_s: float = 0.0) -> None:
        data = body.encode() if isinstance(body, str) else body
        with self._cond:
            self._state.routes[path] = Route(data, content_type, status, delay_s)

    def twiml(self, path: str, twiml: str) -> None:
        self.answer(path, twiml, "text/xml")

    def default(self, path: str, body: str | bytes, content_type: str = "text/xml",
                status: int = 200) -> None:
        """An answer that survives reset() (e.g. for late status callbacks)."""
        data = body.encode() if isinstance(body, str) else body
        with self._cond:
            self._defaults[path] = Route(data, content_type, status)
            self._state.routes.setdefault(path, self._defaults[path])

    def reset(self) -> None:
        """Forget recorded requests and per-test answers; keep the defaults."""
        with self._cond:
            self._state = _State(routes=dict(self._defaults))

    # observation
    def requests(self, path: str | None = None) -> list[RecordedRequest]:
        with self._cond:
            return [r for r in self._state.requests if path is None or r.path == path]

    def wait_for(self, path: str, timeout: float = 15.0, count: int = 1,
                 where=None) -> RecordedRequest:
        """The `count`-th request to `path` (matching `where`, if given)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hits = [r for r in self._state.requests
                        if r.path == path and (where is None or where(r))]
                if len(hits) >= count:
                    return hits[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = "\n  ".join(r.describe() for r in self._state.requests) or "(none)"
                    raise AssertionError(
                        f"test app: no request #{count} to {path} within {timeout:.0f} s; "
                        f"requests seen:\n  {seen}")
                self._cond.wait(left)
