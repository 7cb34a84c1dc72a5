"""The loopback HTTP server behind every offline stand-in, with fault injection.

Each API module (`offline/eia_api.py`, `offline/caiso_api.py`, `offline/openmeteo_api.py`) turns a
`World` into handlers for its own URL prefix; this module only routes requests, injects faults and
counts what was asked. One server can host all three APIs on one free port, because their real
paths do not overlap (`/v2/...`, `/oasisapi/...`, `/v1/archive`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import parse_qs, urlsplit

FaultKind = Literal["status", "timeout", "truncate", "total_drift"]


@dataclass(frozen=True)
class StandInRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    raw_query: str
    headers: dict[str, str]
    fault: Fault | None = None

    def one(self, name: str, default: str | None = None) -> str | None:
        """The single value of a query parameter (the last one if repeated)."""
        values = self.query.get(name)
        return values[-1] if values else default


@dataclass(frozen=True)
class StandInResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[StandInRequest], StandInResponse]


@dataclass(frozen=True)
class Fault:
    """One injected failure for the next `times` requests whose path starts with `path_prefix`.

    - `status`: answer `status` with `body` (and `Retry-After` when `retry_after` is set).
    - `timeout`: sleep `delay_s` before answering normally (clients with a shorter timeout give up).
    - `truncate`: answer normally but cut the body in half.
    - `total_drift`: handled by the API module (EIA: `total` grows between pages).
    """

    kind: FaultKind
    path_prefix: str = "/"
    times: int = 1
    status: int = 500
    body: bytes = b""
    retry_after: str | None = None
    delay_s: float = 0.0
    skip: int = 0  # let this many matching requests through before the fault starts


class FaultPlan:
    """A thread-safe list of faults, consumed in order by matching requests."""

    def __init__(self, faults: list[Fault] | None = None) -> None:
        self._lock = threading.Lock()
        self._pending: list[list] = [[f, f.skip, f.times] for f in faults or []]

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._pending.append([fault, fault.skip, fault.times])

    def take(self, path: str) -> Fault | None:
        with self._lock:
            for entry in self._pending:
                fault, skip, left = entry
                if left <= 0 or not path.startswith(fault.path_prefix):
                    continue
                if skip > 0:
                    entry[1] = skip - 1
                    continue
                entry[2] = left - 1
                return fault
        return None


@dataclass(frozen=True)
class LoggedRequest:
    path: str
    query: dict[str, list[str]]
    status: int


class StandInServer:
    """A threaded HTTP server on 127.0.0.1 and a free port, routing by path prefix."""

    def __init__(
        self,
        handlers: dict[str, Handler],
        faults: FaultPlan | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.handlers = dict(sorted(handlers.items(), key=lambda kv: -len(kv[0])))
        self.faults = faults or FaultPlan()
        self.requests: list[LoggedRequest] = []
        self._log_lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), self._make_handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> StandInServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="standin-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() waits for serve_forever, which never started
            self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> StandInServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def count(self, path_prefix: str = "/") -> int:
        with self._log_lock:
            return sum(1 for r in self.requests if r.path.startswith(path_prefix))

    def dispatch(self, request: StandInRequest) -> StandInResponse:
        fault = self.faults.take(request.path)
        if fault is not None and fault.kind == "status":
            headers = {"Content-Type": "application/json"}
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            return StandInResponse(fault.status, fault.body, headers)
        if fault is not None and fault.kind == "timeout":
            time.sleep(fault.delay_s)
        handler = next(
            (h for prefix, h in self.handlers.items() if request.path.startswith(prefix)), None
        )
        if handler is None:
            return StandInResponse(
                404, b'{"error":"Not found.","code":404}', {"Content-Type": "application/json"}
            )
        response = handler(
            StandInRequest(
                request.method,
                request.path,
                request.query,
                request.raw_query,
                request.headers,
                fault,
            )
        )
        if fault is not None and fault.kind == "truncate":
            response = StandInResponse(
                response.status, response.body[: len(response.body) // 2], response.headers
            )
        return response

    def _make_handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes; with Nagle on, a keep-alive client's
            # delayed ACK stalls each response by ~40 ms.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                request = StandInRequest(
                    method="GET",
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    raw_query=parts.query,
                    headers={k: v for k, v in self.headers.items()},
                )
                try:
                    response = server.dispatch(request)
                except Exception as exc:  # a stand-in bug must show up as a 500, not a hang
                    body = f'{{"error":"stand-in failure: {type(exc).__name__}"}}'.encode()
                    response = StandInResponse(500, body, {"Content-Type": "application/json"})
                with server._log_lock:
                    server.requests.append(
                        LoggedRequest(request.path, request.query, response.status)
                    )
                try:
                    self.send_response(response.status)
                    for key, value in response.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(response.body)))
                    self.end_headers()
                    self.wfile.write(response.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def log_message(self, format: str, *args: object) -> None:
                return  # quiet: request counts are kept in server.requests

        return _Handler


@contextmanager
def serving(
    handlers: dict[str, Handler], faults: FaultPlan | None = None
) -> Iterator[StandInServer]:
    with StandInServer(handlers, faults) as server:
        yield server
