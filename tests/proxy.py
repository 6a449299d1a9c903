"""A reverse proxy on 127.0.0.1 in front of a real server (Orthanc, moto_server), for the destination
tests: it forwards every request unchanged and logs it, and on request it

- fails some requests with HTTP 500 or 503, either before forwarding them (the server never saw
  them) or after (the server stored the object, the client is told it failed);
- holds the answer to one request after the server has handled it, until the test lets it go (the
  test kills the run meanwhile: stored at the destination, never recorded in the manifest).

`Exchange` records what the client asked and what the server answered (`upstream`), so a test can
count the objects the server really stored, however often the client was told otherwise.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection",
               "content-length"}


@dataclass(frozen=True)
class Exchange:
    """One request through the proxy: method, path (with query), what the server answered (None
    when the proxy failed it before forwarding) and what the client got."""

    method: str
    path: str
    upstream: int | None
    answered: int


# (method, path, number of earlier requests with this method) -> (status, before forwarding?) or None
FaultPolicy = Callable[[str, str, int], "tuple[int, bool] | None"]


def no_faults(method: str, path: str, seen: int) -> tuple[int, bool] | None:
    del method, path, seen
    return None


class Proxy:
    """The running proxy: `url` to give the client; `log` of exchanges; `policy` and `hold` may be
    changed between runs."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.log: list[Exchange] = []
        self.policy: FaultPolicy = no_faults
        self.hold: Callable[[str, str], bool] = lambda method, path: False  # hold this one's answer
        self.held = threading.Event()  # set when an answer is being held
        self.release = threading.Event()  # set by the test to let it go
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.prefix}"

    def stored(self, method: str, contains: str = "") -> list[Exchange]:
        """Exchanges with `method` (and `contains` in the path) the server answered with success."""
        with self._lock:
            return [e for e in self.log if e.method == method and contains in e.path
                    and e.upstream is not None and 200 <= e.upstream < 300]

    def _count(self, method: str) -> int:
        with self._lock:
            seen = self._counts.get(method, 0)
            self._counts[method] = seen + 1
            return seen

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self.log.append(exchange)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                del format, args

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _fail(self, method: str, status: int, upstream: int | None) -> None:
                proxy._record(Exchange(method, self.path, upstream, status))
                self._answer(status, [("Content-Type", "text/plain")], b"injected fault")

            def _forward(self) -> None:
                method, body = self.command, self._body()
                fault = proxy.policy(method, self.path, proxy._count(method))
                if fault is not None and fault[1]:
                    self._fail(method, fault[0], None)
                    return
                connection = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                connection.request(method, self.path, body=body if body or method in ("PUT", "POST") else None,
                                   headers=headers)
                response = connection.getresponse()
                answer = response.read()
                connection.close()
                if fault is not None:
                    self._fail(method, fault[0], response.status)
                    return
                if proxy.hold(method, self.path) and not proxy.held.is_set():
                    proxy._record(Exchange(method, self.path, response.status, 0))
                    proxy.held.set()
                    proxy.release.wait(timeout=120)
                    self.close_connection = True
                    return
                proxy._record(Exchange(method, self.path, response.status, response.status))
                self._answer(response.status, response.getheaders(), answer)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        return Handler

    def __enter__(self) -> Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@contextlib.contextmanager
def proxy(upstream: str) -> Iterator[Proxy]:
    """A proxy in front of `upstream` (``http://host:port[/prefix]``) for the duration."""
    with Proxy(upstream) as running:
        yield running


def every(n: int, status: int, *, methods: tuple[str, ...], after: bool = False) -> FaultPolicy:
    """Fail the first of every `n` requests with one of `methods` (so a retry passes), with
    `status`; after forwarding it when `after` (the server handled it, the client hears failure)."""
    def policy(method: str, path: str, seen: int) -> tuple[int, bool] | None:
        del path
        return (status, not after) if method in methods and seen % n == 0 else None

    return policy
