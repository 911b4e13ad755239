"""The zero-copy send extension of ``mediavault serve``'s HTTP protocol, under a real uvicorn on
loopback, and ``MediaFileResponse``'s use of it."""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import mmap
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import anyio
import pytest
import uvicorn

from mediavault.web.routes_media import MediaFileResponse
from mediavault.web.server import READ_AHEAD_WINDOW, ZERO_COPY, ZeroCopyHttpToolsProtocol, _Descriptors
from tests.web_site import serve

MIB = 1024 * 1024


class FileApp:
    """Sends ``path`` with zero-copy messages: ``?offset=&count=`` (absent: the file position and
    the rest of the file), ``?split=1`` in two messages; records what each request saw."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[dict] = []

    async def __call__(self, scope, receive, send) -> None:
        query = {key: values[0] for key, values in parse_qs(scope["query_string"].decode()).items()}
        record = {"extensions": dict(scope.get("extensions") or {}), "finished": False}
        self.seen.append(record)
        size = self.path.stat().st_size
        offset = int(query["offset"]) if "offset" in query else None
        count = int(query.get("count", size - (offset or 0)))
        length = int(query.get("length", count))
        headers = [(b"content-length", str(length).encode()), (b"content-type", b"application/octet-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        fd = os.open(self.path, os.O_RDONLY)
        try:
            if ZERO_COPY not in record["extensions"] or "plain" in query:
                await send({"type": "http.response.body", "body": os.pread(fd, count, offset or 0)})
            elif "split" in query:  # from the file position, which each message advances
                os.lseek(fd, offset or 0, os.SEEK_SET)
                half = count // 2
                await send({"type": ZERO_COPY, "file": fd, "count": half, "more_body": True})
                await send({"type": ZERO_COPY, "file": fd, "count": count - half})
            else:
                message = {"type": ZERO_COPY, "file": fd, "count": count}
                if offset is not None:
                    message["offset"] = offset
                await send(message)
            record["position"] = os.lseek(fd, 0, os.SEEK_CUR)
            record["finished"] = True
        finally:
            os.close(fd)


@contextlib.contextmanager
def running(app, protocol=ZeroCopyHttpToolsProtocol) -> Iterator[tuple[str, int]]:
    with running_server(app, protocol) as (address, _):
        yield address


@contextlib.contextmanager
def running_server(
    app, protocol=ZeroCopyHttpToolsProtocol
) -> Iterator[tuple[tuple[str, int], uvicorn.Server]]:
    url, server, thread = serve(app, log_level="critical", lifespan="off", http=protocol)
    try:
        yield ("127.0.0.1", int(url.rsplit(":", 1)[1])), server
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert not thread.is_alive(), "the server did not stop: it waits for connections nobody uses"


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("zero-copy") / "noise.bin"
    path.write_bytes(os.urandom(24 * MIB))
    return path


def get(address: tuple[str, int], target: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(*address, timeout=30)
    try:
        connection.request(method, target)
        answer = connection.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        connection.close()


def test_the_whole_file_and_ranges_arrive_byte_for_byte(big_file: Path) -> None:
    data = big_file.read_bytes()
    app = FileApp(big_file)
    with running(app) as address:
        assert get(address, "/")[2] == data
        assert get(address, f"/?offset={5 * MIB + 3}&count={MIB + 7}")[2] == data[5 * MIB + 3 : 6 * MIB + 10]
        assert get(address, "/?offset=0&count=0")[2] == b""
        assert get(address, f"/?split=1&offset=11&count={3 * MIB}")[2] == data[11 : 11 + 3 * MIB]
    assert all(ZERO_COPY in seen["extensions"] and seen["finished"] for seen in app.seen)


def test_without_an_offset_the_file_position_is_used_and_advanced(big_file: Path) -> None:
    app = FileApp(big_file)
    with running(app) as address:
        assert get(address, "/?count=100")[2] == big_file.read_bytes()[:100]
    assert app.seen[0]["position"] == 100


def test_several_responses_on_one_keep_alive_connection(big_file: Path) -> None:
    data = big_file.read_bytes()
    with running(FileApp(big_file)) as address:
        connection = http.client.HTTPConnection(*address, timeout=30)
        try:
            for start in (0, 7 * MIB, 123):
                connection.request("GET", f"/?offset={start}&count={2 * MIB}")
                answer = connection.getresponse()
                assert answer.read() == data[start : start + 2 * MIB]
                assert answer.getheader("connection") != "close"
        finally:
            connection.close()


def test_head_sends_no_body(big_file: Path) -> None:
    with running(FileApp(big_file)) as address:
        status, headers, body = get(address, "/?count=1000", method="HEAD")
        assert (status, headers["content-length"], body) == (200, "1000", b"")
        assert get(address, "/?count=10")[2] == big_file.read_bytes()[:10]
        # On one keep-alive connection: a body sent after the HEAD would be read as the next answer.
        connection = http.client.HTTPConnection(*address, timeout=30)
        try:
            connection.request("HEAD", "/?count=1000")
            assert connection.getresponse().read() == b""
            connection.request("GET", "/?count=10")
            answer = connection.getresponse()
            assert (answer.status, answer.read()) == (200, big_file.read_bytes()[:10])
        finally:
            connection.close()


@contextlib.contextmanager
def stalled_reader(address: tuple[str, int]) -> Iterator[tuple[socket.socket, bytes]]:
    """A client with a 16 KiB receive buffer that asks for ``/``, reads its first bytes, and then
    reads nothing until the caller does."""
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    client.connect(address)
    with client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        yield client, client.recv(64 * 1024)


def test_a_stalled_reader_gets_every_byte_and_costs_no_cpu_while_it_stalls(big_file: Path) -> None:
    """The socket buffer fills while the client sleeps: the server waits for it to drain on the
    event loop (no thread, no spinning), then resumes where it stopped."""
    data = big_file.read_bytes()
    with running(FileApp(big_file)) as address:
        with stalled_reader(address) as (client, first):
            cpu_before = time.process_time()
            time.sleep(1.5)
            cpu_stalled = time.process_time() - cpu_before
            received = bytearray(first)
            while len(received) < len(data):
                chunk = client.recv(MIB)
                if not chunk:
                    break
                received += chunk
                _head, _, body = bytes(received).partition(b"\r\n\r\n")
                if len(body) == len(data):
                    break
        body = bytes(received).partition(b"\r\n\r\n")[2]
        assert body == data
    assert cpu_stalled < 0.5, f"the server used {cpu_stalled:.2f}s of CPU while its client read nothing"


def test_pipelined_responses_to_a_client_that_reads_nothing_cost_no_cpu(big_file: Path) -> None:
    """Clients pipeline requests and read nothing: a zero-copy response then waits behind what
    the transport still holds (its headers, an earlier body). It waits on an event, not polling."""
    app = FileApp(big_file)
    pair = (
        b"GET /?plain=1&offset=0&count=30000 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /?offset=0&count=100 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    with running(app) as address:
        clients = []
        for _ in range(4):
            client = socket.socket()
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.connect(address)
            client.setblocking(False)
            clients.append((client, memoryview(pair * 300)))
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and any(len(rest) for _, rest in clients):
            for n, (client, rest) in enumerate(clients):
                with contextlib.suppress(BlockingIOError):
                    clients[n] = (client, rest[client.send(rest) :])
            time.sleep(0.01)
        served = -1
        while served != len(app.seen):  # until the server is stuck behind the full sockets
            served = len(app.seen)
            time.sleep(0.5)
        cpu_before = time.process_time()
        time.sleep(2)
        cpu_stalled = time.process_time() - cpu_before
        for client, _ in clients:
            client.close()
    assert cpu_stalled < 0.06, f"the server used {cpu_stalled:.2f}s of CPU while its clients read nothing"


def test_a_client_that_leaves_mid_stream_ends_the_send_and_the_server_goes_on(big_file: Path) -> None:
    app = FileApp(big_file)
    with running(app) as address:
        client = socket.create_connection(address)
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        client.recv(MIB)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        client.close()  # a reset, with most of the file unsent
        deadline = time.monotonic() + 10
        while not app.seen[0]["finished"]:
            assert time.monotonic() < deadline, "the app's send never returned after the client left"
            time.sleep(0.02)
        assert get(address, "/?count=5")[2] == big_file.read_bytes()[:5]


def test_a_pipelining_client_that_resets_mid_stream_is_disconnected(big_file: Path) -> None:
    """Reading is paused while a pipelined request waits, so only sendfile's error tells the
    server that the client left: the connection must still be closed (and the server stop)."""
    with running_server(FileApp(big_file)) as (address, server):
        for _ in range(3):
            client = socket.create_connection(address)
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
            client.recv(64 * 1024)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            client.close()
        deadline = time.monotonic() + 10
        while server.server_state.connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not server.server_state.connections, "connections of clients that left stay open"


def test_a_client_that_half_closes_after_its_request_gets_the_whole_body(big_file: Path) -> None:
    data = big_file.read_bytes()
    with running(FileApp(big_file)) as address:
        client = socket.create_connection(address)
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        client.shutdown(socket.SHUT_WR)
        received = bytearray()
        while chunk := client.recv(MIB):
            received += chunk
        client.close()
    assert bytes(received).partition(b"\r\n\r\n")[2] == data


def test_descriptors_closed_during_a_send_stay_open_until_the_send_returns(tmp_path: Path) -> None:
    """A task cancelled with Task.cancel() (uvicorn's graceful-shutdown timeout) does not wait for
    its worker thread: the descriptors that thread sends with must stay open, their numbers
    unused, until its sendfile returns."""
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(8 * MIB))
    ours, peer = socket.socketpair()
    ours.setblocking(True)  # sendfile blocks until the peer reads
    file_fd = os.open(path, os.O_RDONLY)
    descriptors = _Descriptors(ours.fileno(), file_fd)
    result: list[int] = []
    sender = threading.Thread(target=lambda: result.append(descriptors.sendfile(0, 8 * MIB)))
    sender.start()
    time.sleep(0.3)
    assert sender.is_alive()
    descriptors.close()
    os.fstat(descriptors.sock)  # still open while the thread sends
    os.fstat(descriptors.file)
    while sender.is_alive():
        peer.recv(MIB)
    sender.join()
    assert result and result[0] > 0
    for fd in (descriptors.sock, descriptors.file):
        with pytest.raises(OSError):
            os.fstat(fd)
    with pytest.raises(BrokenPipeError):
        descriptors.sendfile(0, 1)
    os.close(file_fd)
    ours.close()
    peer.close()


def test_a_file_shorter_than_its_content_length_closes_the_connection(tmp_path: Path) -> None:
    """The app promised more bytes than the file holds (it shrank): the client must not take
    the short body for the whole, so the connection is closed."""
    path = tmp_path / "short.bin"
    path.write_bytes(b"x" * 1000)
    with running(FileApp(path)) as address:
        connection = http.client.HTTPConnection(*address, timeout=30)
        connection.request("GET", "/?count=5000")
        answer = connection.getresponse()
        with pytest.raises(http.client.IncompleteRead):
            answer.read()
        connection.close()
        assert get(address, "/?count=10")[2] == b"x" * 10


def test_apps_that_do_not_use_the_extension_are_served_as_before(big_file: Path) -> None:
    """Without this protocol the extension is not offered; with it, plain bodies still work."""
    app = FileApp(big_file)
    with running(app, protocol="httptools") as address:
        assert get(address, "/?count=1000")[2] == big_file.read_bytes()[:1000]
    assert ZERO_COPY not in app.seen[0]["extensions"]


async def capture(response, headers: list[tuple[bytes, bytes]], extensions: dict) -> list[dict]:
    scope = {"type": "http", "method": "GET", "headers": headers, "extensions": extensions}
    messages: list[dict] = []

    async def send(message) -> None:
        messages.append(dict(message))

    requested = []

    async def receive():
        if not requested:
            requested.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await anyio.sleep_forever()  # no disconnect: the client stays

    await response(scope, receive, send)
    return messages


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_media_file_response_sends_ranges_and_whole_files_zero_copy(
    big_file: Path, anyio_backend
) -> None:
    """When the server offers the extension, a single range or the whole file is one zero-copy
    message with the right offset and count; otherwise the bytes are sent in body messages."""
    size = big_file.stat().st_size
    offered = {ZERO_COPY: {}}
    ranged = await capture(MediaFileResponse(big_file), [(b"range", b"bytes=100-199")], offered)
    assert ranged[0]["status"] == 206
    assert [(m["type"], m["offset"], m["count"]) for m in ranged[1:]] == [(ZERO_COPY, 100, 100)]
    whole = await capture(MediaFileResponse(big_file, stat_result=big_file.stat()), [], offered)
    assert [(m["type"], m["offset"], m["count"]) for m in whole[1:]] == [(ZERO_COPY, 0, size)]
    plain = await capture(MediaFileResponse(big_file), [(b"range", b"bytes=100-199")], {})
    assert [m["type"] for m in plain[1:]] == ["http.response.body"]
    assert plain[1]["body"] == big_file.read_bytes()[100:200]


def resident_bytes(path: Path) -> int:
    """How much of ``path`` is in the page cache (``mincore`` on a shared read-only mapping)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    ]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size, page = path.stat().st_size, os.sysconf("SC_PAGE_SIZE")
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        assert address not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
        try:
            pages = ctypes.create_string_buffer((size + page - 1) // page)
            assert libc.mincore(address, size, pages) == 0, os.strerror(ctypes.get_errno())
            return sum(byte & 1 for byte in pages.raw) * page
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="read-ahead hints need posix_fadvise")
def test_a_long_send_reads_ahead_of_a_stalled_client_up_to_a_window(tmp_path: Path) -> None:
    """A long send keeps the file's pages READ_AHEAD_WINDOW ahead of what it sent, in another
    thread, so disk reads overlap the sending; a client that stops reading stops it at the
    window, not at the end of the file."""
    path = tmp_path / "cold.bin"
    with open(path, "wb") as out:
        for _ in range(160):
            out.write(os.urandom(MIB))
        out.flush()
        os.fsync(out.fileno())
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    if resident_bytes(path) > 4 * MIB:
        pytest.skip("this filesystem keeps the file's pages (tmpfs?): nothing to read ahead")
    with running(FileApp(path)) as address, stalled_reader(address):
        resident, deadline = -1, time.monotonic() + 10
        while time.monotonic() < deadline:  # until the read-ahead settles
            time.sleep(0.5)
            resident, before = resident_bytes(path), resident
            if resident == before:
                break
    assert resident >= READ_AHEAD_WINDOW - 8 * MIB, f"only {resident / MIB:.0f} MiB read ahead"
    assert resident <= READ_AHEAD_WINDOW + 32 * MIB, f"{resident / MIB:.0f} MiB read ahead: past the window"
