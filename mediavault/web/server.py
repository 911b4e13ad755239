"""uvicorn's HTTP protocol with the ASGI zero-copy send extension, so that media bytes go from the
page cache to the socket in the kernel (``sendfile``) instead of through Python.

The ASGI extension ``http.response.zerocopysend`` (asgiref's "Zero Copy Send") lets an app send
``{"type": "http.response.zerocopysend", "file": fd, "offset": int, "count": int, "more_body":
bool}`` after ``http.response.start``. uvicorn does not offer it; this protocol adds it to
httptools' request cycle for plain TCP connections (never over TLS: the bytes must be encrypted).
An app that does not know the extension is served as before.

Each ``sendfile`` runs in a worker thread (a cold file blocks on the disk) on the non-blocking
socket, so it moves what the socket buffer takes and returns; when the buffer is full the event
loop waits for the socket to become writable. A slow or paused player holds no thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import anyio.to_thread
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

ZERO_COPY = "http.response.zerocopysend"
SENDFILE_CHUNK = 8 * 1024 * 1024
READ_AHEAD_WINDOW = 64 * 1024 * 1024
READ_AHEAD_STEP = 8 * 1024 * 1024
READ_AHEAD_MIN_COUNT = 4 * 1024 * 1024
_CAN_ADVISE = hasattr(os, "posix_fadvise")
WRITABLE_RECHECK_SECONDS = 1.0


class ZeroCopyHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` whose requests may send file ranges with ``sendfile``."""

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        sock = self.transport.get_extra_info("socket")
        if (
            hasattr(os, "sendfile")
            and sock is not None
            and self.transport.get_extra_info("ssl_object") is None
            and self.transport.get_extra_info("sslcontext") is None
        ):
            cycle.scope["extensions"] = {**cycle.scope.get("extensions", {}), ZERO_COPY: {}}
            app = _ZeroCopyApp(app, cycle)
        super()._start_asgi_task(cycle, app)

    def eof_received(self) -> bool | None:
        """The client half-closed while a response is being sent: finish it, then close (uvicorn
        closes at once; a zero-copy send would then stop mid-body)."""
        cycle = self.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            cycle.keep_alive = False
            return True
        return None


class _Descriptors:
    """The socket and file the worker threads send and read ahead with: duplicates of our own.
    ``close()`` (on the loop) closes them, or leaves that to the last thread still using them: a
    task cancelled with ``Task.cancel()`` (uvicorn's graceful-shutdown timeout, the loop's
    teardown) does not wait for its threads, and a number the kernel hands out again must never
    receive these bytes."""

    def __init__(self, sock_fd: int, file_fd: int) -> None:
        self._lock = threading.Lock()
        self.sock = os.dup(sock_fd)
        try:
            self.file = os.dup(file_fd)
        except BaseException:
            os.close(self.sock)
            raise
        self._users = 0
        self._closing = self._closed = False

    @contextlib.contextmanager
    def _in_use(self) -> Iterator[None]:
        with self._lock:
            if self._closing:
                raise BrokenPipeError("the send was abandoned")
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._closing and not self._users:
                    self._close()

    def sendfile(self, offset: int, count: int) -> int:
        with self._in_use():
            return os.sendfile(self.sock, self.file, offset, count)

    def read_ahead(self, offset: int, length: int) -> None:
        """Have the kernel start reading ``length`` bytes from ``offset`` into the page cache. The
        pages are allocated in this thread, and the disk reads them while the sender sends
        what came before."""
        with contextlib.suppress(OSError), self._in_use():
            os.posix_fadvise(self.file, offset, length, os.POSIX_FADV_WILLNEED)

    def close(self) -> None:
        with self._lock:
            self._closing = True
            if not self._users:
                self._close()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self.sock)
            os.close(self.file)


class _ReadAhead:
    """Keeps the file's pages up to ``READ_AHEAD_WINDOW`` bytes ahead of a send, one
    ``READ_AHEAD_STEP`` at a time in a worker thread (one step in flight, the next started as
    soon as it is done, until the window is full).

    On its own, the sending thread allocates every page the kernel reads ahead, then sends it:
    one thread pays for both. bench/serve.py measured one whole-file stream from a cold cache at
    about twice the rate with this helper, on a VM whose host takes freed memory back (each new
    page a fault). It only hints (``POSIX_FADV_WILLNEED``): nothing is read into the process,
    and the pages are the page cache's, reclaimable. A paused player holds at most the window
    and no thread. A send too short to gain from it (a player's seek) gets none."""

    def __init__(self, fds: _Descriptors, offset: int, count: int) -> None:
        self.fds = fds
        self.sent = self.next = offset
        self.end = offset + count if count >= READ_AHEAD_MIN_COUNT and _CAN_ADVISE else offset
        self.task: asyncio.Future[None] | None = None

    def keep_ahead_of(self, offset: int) -> None:
        self.sent = offset
        self._step()

    def _step(self, done: asyncio.Future[None] | None = None) -> None:
        if done is not None and not done.cancelled():
            done.exception()  # read_ahead raises nothing it should: retrieved, not logged
        if self.task is not None and not self.task.done():
            return
        self.next = max(self.next, self.sent)
        if self.next >= min(self.end, self.sent + READ_AHEAD_WINDOW):
            return
        length = min(READ_AHEAD_STEP, self.end - self.next)
        self.task = asyncio.ensure_future(anyio.to_thread.run_sync(self.fds.read_ahead, self.next, length))
        self.task.add_done_callback(self._step)
        self.next += length

    def stop(self) -> None:
        """No further steps (one in flight finishes in its thread; the descriptors wait for it)."""
        self.end = self.next
        if self.task is not None:
            self.task.cancel()


class _ZeroCopyApp:
    """Runs ``app`` with a ``send`` that carries out zero-copy messages on ``cycle``'s socket."""

    def __init__(self, app: Any, cycle: RequestResponseCycle) -> None:
        self.app = app
        self.cycle = cycle

    async def __call__(self, scope, receive, send) -> None:
        async def send_or_sendfile(message) -> None:
            if message["type"] == ZERO_COPY:
                await self._send_file(message)
            else:
                await send(message)

        await self.app(scope, receive, send_or_sendfile)

    async def _send_file(self, message) -> None:
        cycle = self.cycle
        if not cycle.response_started or cycle.response_complete:
            raise RuntimeError(f"'{ZERO_COPY}' is allowed only while a response is being sent")
        if cycle.chunked_encoding:
            raise RuntimeError(f"'{ZERO_COPY}' needs a Content-Length response")
        fd: int = message["file"]
        offset = message.get("offset")
        if offset is None:
            offset = os.lseek(fd, 0, os.SEEK_CUR)
        count = message.get("count")
        if count is None:
            count = max(os.fstat(fd).st_size - offset, 0)
        if cycle.scope["method"] == "HEAD" or cycle.disconnected:
            count = 0
        elif count > cycle.expected_content_length:
            raise RuntimeError("Response content longer than Content-Length")
        if count and not await self._flush_transport():
            return  # the connection went away
        if count:
            # The transport may close its socket while a worker thread sends (the client left),
            # and the app closes its file when send returns: the threads use descriptors of their
            # own, so that a number the kernel hands out again can never receive these bytes.
            # Duplicated on the event loop, right after checking that the transport is open (it
            # is closed on the loop too).
            fds = _Descriptors(cycle.transport.get_extra_info("socket").fileno(), fd)
            try:
                sent_all = await self._pump(fds, offset, count)
            finally:
                fds.close()
            if not sent_all:
                return  # the connection went away
            if message.get("offset") is None:
                os.lseek(fd, offset + count, os.SEEK_SET)
        more_body = message.get("more_body", False)
        await cycle.send({"type": "http.response.body", "body": b"", "more_body": more_body})

    async def _flush_transport(self) -> bool:
        """Wait until what the transport buffered (the status line and headers, or the end of an
        earlier pipelined response) reached the socket, so file bytes follow them; False when the
        connection went away. With its high-water mark at 0 the transport pauses the protocol at
        once and resumes it when its buffer is empty: uvicorn's flow control turns that into an
        event, so a client that reads nothing costs nothing while it waits."""
        cycle = self.cycle
        transport = cycle.transport
        if transport.get_write_buffer_size() and not transport.is_closing():
            low, high = transport.get_write_buffer_limits()
            transport.set_write_buffer_limits(high=0, low=0)
            try:
                await cycle.flow.drain()
            finally:
                if not transport.is_closing():
                    transport.set_write_buffer_limits(high=high, low=low)
        return not (transport.is_closing() or cycle.disconnected or transport.get_write_buffer_size())

    async def _pump(self, fds: _Descriptors, offset: int, count: int) -> bool:
        """Send ``count`` bytes of ``fd`` from ``offset``; False when the connection went away."""
        ahead = _ReadAhead(fds, offset, count)
        try:
            return await self._pump_with(fds, offset, count, ahead)
        finally:
            ahead.stop()

    async def _pump_with(self, fds: _Descriptors, offset: int, count: int, ahead: _ReadAhead) -> bool:
        cycle = self.cycle
        while count > 0:
            if cycle.disconnected or cycle.transport.is_closing():
                return False
            ahead.keep_ahead_of(offset)
            try:
                sent = await anyio.to_thread.run_sync(fds.sendfile, offset, min(count, SENDFILE_CHUNK))
            except BlockingIOError:
                await self._writable(fds.sock)
                continue
            except (BrokenPipeError, ConnectionResetError):
                # Close as a failed transport.write would: while a pipelined request has paused
                # reading, nothing else notices that the client left.
                cycle.disconnected = True
                cycle.transport.close()
                return False
            if sent == 0:
                raise RuntimeError("Response content shorter than Content-Length (the file shrank)")
            offset += sent
            count -= sent
            cycle.expected_content_length -= sent
        return True

    async def _writable(self, sock_fd: int) -> None:
        """Until the socket can take more bytes, rechecking now and then for a disconnect.
        (``sock_fd`` is our duplicate: the loop watches the transport's own descriptor.)"""
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        loop.add_writer(sock_fd, lambda: ready.done() or ready.set_result(None))
        try:
            while not self.cycle.disconnected and not self.cycle.transport.is_closing():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(ready), WRITABLE_RECHECK_SECONDS)
                    return
        finally:
            loop.remove_writer(sock_fd)
