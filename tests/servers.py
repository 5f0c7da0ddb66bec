"""Real servers on 127.0.0.1 for the object-storage tests: an S3-compatible one (moto), a plain HTTP one, and a
proxy in front of the S3 one that counts, delays and breaks requests (:class:`S3Proxy`).

Both listen on a free port of the loopback interface only, and stop when the
test session ends. Clients find the S3 server through the standard variables
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...), as they would find a real one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO

S3_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
}


@contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1; sets the AWS variables to reach it while running; yields its URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request on stderr
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in (*S3_ENVIRONMENT, "AWS_ENDPOINT_URL")}
    os.environ.update({**S3_ENVIRONMENT, "AWS_ENDPOINT_URL": endpoint})
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def create_bucket(name: str) -> str:
    """A new bucket on the S3 server the environment points to; returns its URL."""
    import boto3

    boto3.client("s3").create_bucket(Bucket=name)
    return f"s3://{name}"


class RangeRequestHandler(SimpleHTTPRequestHandler):
    """Static files with single byte ranges (``bytes=a-b``, ``bytes=a-``, ``bytes=-n``), as object stores serve."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def send_head(self) -> BinaryIO | None:  # the base class returns a file or None
        self.range_left = None
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if not match or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        first, last = match.groups()
        start = size - int(last) if not first else int(first)
        end = size - 1 if not first or not last else min(int(last), size - 1)
        if start < 0 or start > end:
            self.send_response(416)  # with the size, as RFC 9110 asks
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        handle = path.open("rb")
        handle.seek(start)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self.range_left = end - start + 1
        return handle

    def copyfile(self, source: BinaryIO, outputfile: BinaryIO) -> None:
        outputfile.write(source.read() if self.range_left is None else source.read(self.range_left))


@contextmanager
def http_server(directory: Path, handler: type[SimpleHTTPRequestHandler] = RangeRequestHandler) -> Iterator[str]:
    """Python's HTTP server on 127.0.0.1 serving ``directory`` read-only (by ``handler``); yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Request:
    """One request that went through an :class:`S3Proxy`: what it asked, when, and what the proxy did with it."""

    method: str
    key: str
    """The object's key within its bucket (``""`` for the bucket itself, e.g. a listing)."""
    query: str
    range: str | None
    sent: float
    answered: float = 0.0
    fault: str | None = None
    """``"reset"``, ``"500"`` or ``"503"`` when the proxy injected one; None when moto answered."""
    depth: int = 1
    """Round trips up to this one: 1 + the deepest request answered before this one arrived."""


class Traffic(list):
    """The :class:`Request` list of a block of code (:meth:`S3Proxy.counting`)."""

    round_trips: int = 0
    """The longest chain of requests each sent after the one before it was answered (with a ``delay`` well
    above the client's own time between requests, the round trips the block waited for)."""

    def keys(self, *methods: str) -> list[str]:
        """The keys of the requests (of these methods), in order."""
        return [r.key for r in self if not methods or r.method in methods]


class S3Proxy:
    """An HTTP/1.1 proxy on 127.0.0.1 in front of an S3 server (moto): counts requests, delays and breaks them.

    Every request is recorded (:attr:`requests`, a :class:`Request` each). ``delay``
    holds each one for that many seconds before forwarding it, as a distant bucket
    would. ``fault_rate`` (with ``seed``) breaks a deterministic share of the requests:
    whether a request fails depends only on the seed, the request (method, key,
    query, byte range) and how often that same request was seen before, not on the
    order of concurrent requests. A failure is, in equal shares, a connection reset
    after moto has acted on the request (its answer is lost), or a 500 or 503 answer
    without forwarding it.

    Parameters
    ----------
    target : str
        The S3 server's URL (``http://127.0.0.1:PORT``).
    delay : float
        Seconds each request is held.
    fault_rate : float
        Share of the requests that fail, in [0, 1].
    seed : int
        Seed of the choice of failing requests.
    """

    def __init__(self, target: str, delay: float = 0.0, fault_rate: float = 0.0, seed: int = 0) -> None:
        self.target_port = int(target.rsplit(":", 1)[1])
        self.delay, self.fault_rate, self.seed = delay, fault_rate, seed
        self.requests: list[Request] = []
        self._deepest = 0  # the depth of the deepest answered request
        self._seen: Counter[tuple] = Counter()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait()
        self.url = f"http://127.0.0.1:{self.port}"

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._connection, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        """Stop listening, end the open connections and the proxy's thread."""

        async def shut() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shut(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)

    @contextmanager
    def counting(self) -> Iterator[Traffic]:
        """The requests made inside a ``with`` block (filled in when it ends)."""
        first, base, block = len(self.requests), self._deepest, Traffic()
        yield block
        block.extend(self.requests[first:])
        block.round_trips = max((r.depth for r in block), default=base) - base

    def _fault(self, request: Request) -> str | None:
        key = (request.method, request.key, request.query, request.range)
        self._seen[key] += 1
        digest = hashlib.sha256(repr((self.seed, key, self._seen[key])).encode()).digest()
        if int.from_bytes(digest[:8]) / 2**64 >= self.fault_rate:
            return None
        return ("reset", "500", "503")[digest[8] % 3]

    async def _connection(self, client: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream = None
        try:
            while head := await _message_head(client):
                body = await _message_body(client, head, request=True)
                request = self._record(head)
                if self.delay:
                    await asyncio.sleep(self.delay)
                if request.fault in ("500", "503"):
                    self._answered(request)
                    client_writer.write(_error_answer(int(request.fault)))
                    await client_writer.drain()
                    continue
                if upstream is None:
                    upstream = await asyncio.open_connection("127.0.0.1", self.target_port)
                upstream[1].write(head + body)
                answer = await _message_head(upstream[0])
                answer += await _message_body(upstream[0], answer, request=False, method=request.method)
                self._answered(request)
                if request.fault == "reset":
                    client_writer.get_extra_info("socket").setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    client_writer.transport.abort()
                    break
                client_writer.write(answer)
                await client_writer.drain()
                if upstream[0].at_eof():  # an answer that ended with its connection
                    upstream[1].close()
                    upstream = None
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):  # (cancelled: closed)
            pass
        finally:
            for writer in (client_writer, *(upstream[1:] if upstream else ())):
                writer.close()

    def _answered(self, request: Request) -> None:
        request.answered = time.monotonic()
        self._deepest = max(self._deepest, request.depth)

    def _record(self, head: bytes) -> Request:
        method, target = head.split(b" ", 2)[:2]
        path, _, query = target.decode().partition("?")
        headers = _headers(head)
        request = Request(
            method.decode(),
            path.lstrip("/").partition("/")[2],
            query,
            headers.get("range"),
            time.monotonic(),
            depth=self._deepest + 1,
        )
        request.fault = self._fault(request) if self.fault_rate else None
        self.requests.append(request)
        return request


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines if line)}


async def _message_head(reader: asyncio.StreamReader) -> bytes:
    """The start line and headers of the next HTTP message (b"" when the connection ended between messages)."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as err:
        if err.partial:
            raise
        return b""


async def _message_body(reader: asyncio.StreamReader, head: bytes, *, request: bool, method: str = "") -> bytes:
    """The body of an HTTP/1.1 message, as sent (framed by Content-Length, chunked, or the end of the connection)."""
    headers, status = _headers(head), 0 if request else int(head.split(b" ", 2)[1])
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return b""
    if "chunked" in headers.get("transfer-encoding", ""):
        body = b""
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";")[0], 16)
            body += line + await reader.readexactly(size + 2)
            if size == 0:
                return body
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    return b"" if request else await reader.read()


def _error_answer(status: int) -> bytes:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{"InternalError" if status == 500 else "SlowDown"}'
        f"</Code><Message>injected by the test proxy</Message></Error>"
    ).encode()
    reason = "Internal Server Error" if status == 500 else "Service Unavailable"
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
