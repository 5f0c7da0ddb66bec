"""Fuzz target: generated HTTP answers (status, headers, body; or raw bytes) from a 127.0.0.1 server into the
download path (:func:`cube.ingest.download.fetch`).

Whatever the server sends, only :class:`~cube.ingest.download.DownloadError` comes out, in one line; nothing is written
beyond the largest size the answer states (``Content-Length``, ``Content-Range``) or what the ``.part`` held; and an
archive gets its name only at exactly the size stated.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import urllib.request
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from cube.ingest import download
from cube.ingest.download import DownloadError, Published, fetch
from tests.servers import http_server

pytestmark = pytest.mark.fuzz

NAME = "s1_europa_test.tar.gz"
BOOKED_KIB = 4
"""The size booked for the archive fetched: a server may state at most twice that (8 KiB)."""
TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="/:\\"), max_size=12)
"""Header garbage: printable ASCII without what could make a URL to another host."""


class Scripted(SimpleHTTPRequestHandler):
    """Writes :attr:`answer` as it is to every request, then closes the connection."""

    answer = b""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):  # the client gave up first
            self.wfile.write(Scripted.answer)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The scripted server's URL; any request to another host fails the test."""
    real = urllib.request.OpenerDirector.open

    def local_only(
        self: urllib.request.OpenerDirector, request: urllib.request.Request | str, *args: object, **kwargs: object
    ) -> object:
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        assert url.startswith(("http://127.0.0.1:", "https://127.0.0.1:")), f"a test contacted {url}"
        return real(self, request, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch, http_server(tmp_path_factory.mktemp("empty"), Scripted) as url:
        patch.setattr(urllib.request.OpenerDirector, "open", local_only)
        patch.setattr(download, "TIMEOUT_S", 5)
        yield url


def chunked(body: bytes, cuts: list[int]) -> bytes:
    """``body`` in chunked transfer coding, cut at the given offsets."""
    out, start = b"", 0
    for end in sorted({min(c, len(body)) for c in cuts} | {len(body)}):
        if end > start:
            out += b"%x\r\n%s\r\n" % (end - start, body[start:end])
        start = end
    return out + b"0\r\n\r\n"


@st.composite
def answers(draw: st.DrawFn, url: str, have: int) -> bytes:
    """An HTTP/1.1 answer: a status, some of the headers a download reads (true, false or garbage), a body."""
    body = draw(st.binary(max_size=3000))
    number = st.one_of(st.just(len(body)), st.just(have), st.integers(0, 10_000), st.integers(0, 10**20))
    ranged = st.builds(
        lambda a, b, c: f"bytes {a}-{b}/{c}", st.one_of(st.just(have), number), number, st.one_of(number, st.just("*"))
    )
    location = st.sampled_from(
        [
            "ftp://127.0.0.1/x",
            "file:///etc/hostname",
            f"{url}/again",
            "https://127.0.0.1:1/x",
            "http://127.0.0.1:99999/x",
            "relative",
        ]
    )
    headers = {
        "Content-Length": st.one_of(number.map(str), TEXT, st.just("-1")),
        "Content-Range": st.one_of(ranged, TEXT),
        "Transfer-Encoding": st.sampled_from(["chunked", "gzip", "identity"]),
        "Location": st.one_of(location, TEXT),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(headers)), unique=True))
    lines = [f"{key}: {draw(headers[key])}" for key in chosen]
    if "Transfer-Encoding: chunked" in lines and draw(st.booleans()):
        body = chunked(body, draw(st.lists(st.integers(0, 3000), max_size=4)))
    status = draw(st.sampled_from([200, 206, 204, 301, 302, 307, 308, 404, 416, 500, 199, 999]))
    head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{line}\r\n" for line in lines) + "\r\n"
    return head.encode() + body


def stated(answer: bytes) -> set[int]:
    """The numbers in the answer's Content-Length and Content-Range headers."""
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    values = re.findall(r"(?im)^content-(?:length|range):(.*)$", head)
    return {int(n) for value in values for n in re.findall(r"\d+", value)}


@given(data=st.data(), have=st.sampled_from([0, 0, 10, 2999]), raw=st.one_of(st.none(), st.binary(max_size=300)))
def test_only_download_errors_in_one_line_and_nothing_beyond_the_stated_size(
    server: str, data: st.DataObject, have: int, raw: bytes | None
) -> None:
    Scripted.answer = raw if raw is not None else data.draw(answers(server, have))
    with tempfile.TemporaryDirectory() as dest:
        part, whole = Path(dest) / f"{NAME}.part", Path(dest) / NAME
        if have:
            part.write_bytes(b"x" * have)
        try:
            fetch(Published(NAME, f"{server}/{NAME}", BOOKED_KIB), Path(dest), progress=False)
            event("downloaded")
            assert not part.exists() and whole.stat().st_size in stated(Scripted.answer) | {have}
        except DownloadError as err:
            event(re.sub(r"\d+", "N", str(err).split(": ", 1)[1])[:40])
            assert "\n" not in str(err) and not whole.exists()
        written = max([p.stat().st_size for p in (part, whole) if p.exists()], default=0)
        assert written <= max(stated(Scripted.answer) | {have})
