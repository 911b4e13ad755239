"""A fault-injecting HTTP proxy on loopback, placed between boto3 and an S3 server (moto).

Stdlib only, one thread per client connection, HTTP/1.1 keep-alive. Request bodies are streamed
upstream as they arrive (``Content-Length`` or ``Transfer-Encoding: chunked``, framing kept), so
multipart uploads and large bodies pass through unchanged. Rules pick requests by method, path
regex, a header they carry, and which occurrence (or a probability from a seeded RNG), and inject:

* ``error``: an S3-style answer (500 InternalError, 503 SlowDown, 409 ConditionalRequestConflict,
  ...) with a proper XML error body; the request never reaches the server;
* ``delay``: a pause before forwarding, or after the server answered (``after_forward``: the
  request landed, and a pause beyond the client's read timeout loses the answer);
* ``reset``: the connection is reset (RST) without an answer, before forwarding or after the
  server answered (``after_forward``: the request landed, its answer is lost);
* ``strip-header``: a request header is removed before forwarding (e.g. ``If-None-Match``, to
  simulate a store that ignores conditional writes);
* ``strip-response-header``: a header of the server's answer is removed before it is relayed
  (e.g. ``x-amz-server-side-encryption``, to simulate a store that does not report, or does not
  apply, server-side encryption).

Every request is logged (index, method, target, headers, faults applied, status returned).
"""

from __future__ import annotations

import http.client
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlparse
from xml.sax.saxutils import escape

FaultKind = Literal["error", "delay", "reset", "strip-header", "strip-response-header"]
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "expect"}
ERROR_CODES = {
    409: "ConditionalRequestConflict",
    412: "PreconditionFailed",
    500: "InternalError",
    503: "SlowDown",
}
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    status: int = 503
    code: str = ""
    seconds: float = 0.0
    header: str = "If-None-Match"
    after_forward: bool = False
    message: str = ""

    @classmethod
    def error(cls, status: int, code: str | None = None, message: str = "") -> Fault:
        return cls(
            "error", status=status, code=code or ERROR_CODES.get(status, "InternalError"), message=message
        )

    @classmethod
    def delay(cls, seconds: float, after_forward: bool = False) -> Fault:
        return cls("delay", seconds=seconds, after_forward=after_forward)

    @classmethod
    def reset(cls, after_forward: bool = False) -> Fault:
        return cls("reset", after_forward=after_forward)

    @classmethod
    def strip_header(cls, header: str = "If-None-Match") -> Fault:
        return cls("strip-header", header=header)

    @classmethod
    def strip_response_header(cls, header: str) -> Fault:
        return cls("strip-response-header", header=header)

    def describe(self) -> str:
        when = " after forward" if self.after_forward else ""
        if self.kind == "error":
            return f"error {self.status} {self.code}"
        if self.kind == "delay":
            return f"delay {self.seconds}s{when}"
        if self.kind == "reset":
            return f"reset{when}"
        if self.kind == "strip-response-header":
            return f"strip response {self.header}"
        return f"strip {self.header}"


@dataclass
class Rule:
    """Which requests get ``fault``. With ``nth``, occurrences nth .. nth+count-1 (1-based) of the
    requests this rule matches; with ``probability``, each match by a seeded RNG; else every match."""

    fault: Fault
    method: str | None = None
    path: str | None = None
    header: str | None = None
    nth: int | None = None
    count: int = 1
    probability: float | None = None
    seed: int = 0
    matched: int = 0
    fired: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def fires(self, method: str, target: str, headers: Message) -> bool:
        """Called under the proxy's lock, once per request, in arrival order."""
        if self.method is not None and method != self.method.upper():
            return False
        if self.path is not None and not re.search(self.path, target):
            return False
        if self.header is not None and headers.get(self.header) is None:
            return False
        self.matched += 1
        if self.nth is not None:
            fire = self.nth <= self.matched < self.nth + self.count
        elif self.probability is not None:
            fire = self._rng.random() < self.probability
        else:
            fire = True
        self.fired += fire
        return fire


@dataclass
class Exchange:
    index: int
    method: str
    target: str
    headers: dict[str, str]
    faults: list[str]
    status: int | None = None
    """The status the client received; None when it received no answer."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    proxy: FaultProxy


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 120

    def log_message(self, format: str, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.server.proxy._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.proxy._track(self.connection, add=False)

    def do_GET(self) -> None:
        self._proxy()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def _proxy(self) -> None:
        exchange, faults = self.server.proxy._admit(self.command, self.path, self.headers)
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
        for fault in faults:
            if fault.kind == "strip-header":
                headers = [(k, v) for k, v in headers if k.lower() != fault.header.lower()]
            elif fault.kind == "delay" and not fault.after_forward:
                time.sleep(fault.seconds)
        reset = next((f for f in faults if f.kind == "reset"), None)
        error = next((f for f in faults if f.kind == "error"), None)
        if reset is not None and not reset.after_forward:
            self._reset()
            return
        if error is not None:
            self._drain_body()
            self._send_error(error, exchange)
            return
        upstream, response = self._forward(headers)
        try:
            for fault in faults:
                if fault.kind == "delay" and fault.after_forward:
                    time.sleep(fault.seconds)
            if reset is not None:
                response.read()
                self._reset()
                return
            stripped = {f.header.lower() for f in faults if f.kind == "strip-response-header"}
            self._relay(response, exchange, stripped)
        finally:
            upstream.close()

    def _body_chunks(self) -> Iterator[bytes]:
        """The request body as it arrives, framing included (chunked bodies stay chunked)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size_line = self.rfile.readline(1024)
                yield size_line
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, then the empty line
                        line = self.rfile.readline(8192)
                        yield line
                        if line in (b"\r\n", b"\n", b""):
                            return
                remaining = size + 2  # data and its CRLF
                while remaining:
                    data = self.rfile.read(min(CHUNK, remaining))
                    if not data:
                        raise ConnectionError("client went away mid-body")
                    remaining -= len(data)
                    yield data
            return
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining:
            data = self.rfile.read(min(CHUNK, remaining))
            if not data:
                raise ConnectionError("client went away mid-body")
            remaining -= len(data)
            yield data

    def _drain_body(self) -> None:
        for _ in self._body_chunks():
            pass

    def _forward(
        self, headers: list[tuple[str, str]]
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        proxy = self.server.proxy
        upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=120)
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            upstream.putheader(name, value)
        upstream.endheaders()
        for data in self._body_chunks():
            upstream.send(data)
        return upstream, upstream.getresponse()

    def _relay(
        self,
        response: http.client.HTTPResponse,
        exchange: Exchange,
        stripped: frozenset[str] | set[str] = frozenset(),
    ) -> None:
        self.send_response_only(response.status, response.reason)
        length = response.getheader("Content-Length")
        no_body = self.command == "HEAD" or response.status in (204, 304) or response.status < 200
        body = b""
        if length is None and not no_body:
            body = response.read()  # chunked or close-delimited upstream: re-sent with a length
        for name, value in response.getheaders():
            if (
                name.lower() not in HOP_BY_HOP
                and name.lower() != "transfer-encoding"
                and name.lower() not in stripped
            ):
                if name.lower() == "content-length" and length is None:
                    continue
                self.send_header(name, value)
        if length is None and not no_body:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        exchange.status = response.status
        if no_body:
            return
        if length is None:
            self.wfile.write(body)
            return
        remaining = int(length)
        while remaining:
            data = response.read(min(CHUNK, remaining))
            if not data:
                raise ConnectionError("upstream went away mid-body")
            self.wfile.write(data)
            remaining -= len(data)

    def _send_error(self, fault: Fault, exchange: Exchange) -> None:
        request_id = f"fault-proxy-{exchange.index}"
        message = fault.message or f"injected by the fault proxy ({fault.describe()})"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(fault.code)}</Code>"
            f"<Message>{escape(message)}</Message>"
            f"<Resource>{escape(self.path.split('?', 1)[0])}</Resource>"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()
        self.send_response_only(fault.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("x-amz-request-id", request_id)
        if self.command == "HEAD":
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        exchange.status = fault.status

    def _reset(self) -> None:
        """Close with SO_LINGER 0, so the client sees a reset and no answer."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


class FaultProxy:
    """``with FaultProxy(upstream) as proxy:`` then point boto3 at ``proxy.endpoint``."""

    def __init__(self, upstream: str, host: str = "127.0.0.1") -> None:
        parsed = urlparse(upstream)
        assert parsed.scheme == "http" and parsed.hostname, f"an http:// upstream, not {upstream!r}"
        self.upstream_host = parsed.hostname
        self.upstream_port = parsed.port or 80
        self._host = host
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._log: list[Exchange] = []
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "start() the proxy first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        self._server = _Server((self._host, 0), _Handler)
        self._server.proxy = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # idle keep-alive connections would keep their threads
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear_rules(self) -> None:
        with self._lock:
            self._rules.clear()

    @contextmanager
    def faults(self, *rules: Rule) -> Iterator[list[Rule]]:
        """Rules active for the duration of a ``with`` block."""
        for rule in rules:
            self.add(rule)
        try:
            yield list(rules)
        finally:
            with self._lock:
                self._rules = [r for r in self._rules if all(r is not mine for mine in rules)]

    def log(self) -> list[Exchange]:
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def _admit(self, method: str, target: str, headers: Message) -> tuple[Exchange, list[Fault]]:
        with self._lock:
            faults = [rule.fault for rule in self._rules if rule.fires(method, target, headers)]
            exchange = Exchange(
                index=len(self._log) + 1,
                method=method,
                target=target,
                headers={k.lower(): v for k, v in headers.items()},
                faults=[f.describe() for f in faults],
            )
            self._log.append(exchange)
        return exchange, faults

    def _track(self, connection: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)
