"""``crts download``: synthetic archives served on 127.0.0.1 (the real URLs are never contacted)."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from typing import BinaryIO

import pytest

from crts.cli import main
from cube import convert
from cube.ingest import download
from cube.ingest.archives import RedirectChecked
from cube.ingest.download import PUBLISHED, DownloadError, Published, fetch, select
from tests.helpers import assert_same_cube, error_line
from tests.servers import RangeRequestHandler, http_server

DOCS = Path(__file__).resolve().parents[3] / "docs" / "convert-real-data.md"
REQUESTS: list[tuple[str, str | None]] = []
"""(path, Range header) of every request the recording handlers answered."""


class Recording(RangeRequestHandler):
    """Byte ranges, and every request recorded."""

    def send_head(self) -> BinaryIO | None:
        REQUESTS.append((self.path, self.headers.get("Range")))
        return super().send_head()


class IgnoresRange(SimpleHTTPRequestHandler):
    """The whole file whatever the Range header (status 200), every request recorded."""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def send_head(self) -> BinaryIO | None:
        REQUESTS.append((self.path, self.headers.get("Range")))
        return super().send_head()


class BreaksHalfway(IgnoresRange):
    """Announces the whole size, sends half of it and closes the connection."""

    def copyfile(self, source: BinaryIO, outputfile: BinaryIO) -> None:
        data = source.read()
        outputfile.write(data[: len(data) // 2])
        self.close_connection = True


class Stalled(RangeRequestHandler):
    """The first half of a file, then nothing until ``released`` is set: a download caught in its middle, however
    slowly the machine runs the test (half of an archive here is more than the downloader's write buffer)."""

    released = threading.Event()

    def copyfile(self, source: BinaryIO, outputfile: BinaryIO) -> None:
        outputfile.write(source.read(os.fstat(source.fileno()).st_size // 2))
        outputfile.flush()
        self.released.wait(60)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic archives by ``crts synth --archives``: groups europa, africa_test, europa_test; 2 patches x 4 steps."""
    out = tmp_path_factory.mktemp("served") / "archives"
    assert (
        main(
            [
                "synth",
                "--archives",
                str(out),
                "--rois",
                "ROIs1868/17,ROIs2017/32,ROIs2017/63",
                "--patches-per-roi",
                "2",
                "--size",
                "32",
                "--times",
                "4",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    return out


@pytest.fixture(autouse=True)
def _no_real_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any request to a host other than 127.0.0.1 fails the test; the recorded requests start empty."""
    real = urllib.request.OpenerDirector.open  # what every opener, and each redirect, goes through
    REQUESTS.clear()

    def local_only(
        self: urllib.request.OpenerDirector, request: urllib.request.Request | str, *args: object, **kwargs: object
    ) -> object:
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        assert url.startswith("http://127.0.0.1:"), f"a test contacted {url}"
        return real(self, request, *args, **kwargs)

    monkeypatch.setattr(urllib.request.OpenerDirector, "open", local_only)


def _download(dest: Path, url: str, *extra: str) -> int:
    return main(["download", str(dest), "--regions", "europa", "--split", "train", "--base-url", url, *extra])


def test_dry_run_lists_urls_and_sizes_and_downloads_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "archives"
    assert main(["download", str(dest), "--regions", "africa,europa", "--split", "test", "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines[:-1]] == [
        "s1_africa_test.tar.gz",
        "s2_africa_test.tar.gz",
        "s1_europa_test.tar.gz",
        "s2_europa_test.tar.gz",
    ]
    assert "~  50.2 GB" in lines[2] and "to download" in lines[2]
    assert lines[2].endswith("https://dataserv.ub.tum.de/s/m1659251/download?path=/&files=s1_europa_test.tar.gz")
    assert lines[-1].startswith("4 archive(s), about 173.8 GB in all") and not dest.exists()
    dest.mkdir()
    (dest / "s1_africa_test.tar.gz").write_bytes(b"x")
    (dest / "s2_africa_test.tar.gz.part").write_bytes(b"abc")
    assert main(["download", str(dest), "--regions", "africa", "--split", "test", "--no-s1", "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "partial (3 B)" in lines[0]
    assert main(["download", str(dest), "--regions", "africa", "--split", "test", "--dry-run"]) == 0
    assert "downloaded" in capsys.readouterr().out.splitlines()[0]


def test_choices_of_dl_data_sh() -> None:
    assert len(select(["all"])) == 20 and len(select(["all"], s1=False)) == 10
    assert [a.name for a in select(["none"], sen12mscr=True, s1=False)][:2] == [
        "ROIs1158_spring_s2.tar.gz",
        "ROIs1158_spring_s2_cloudy.tar.gz",
    ]
    assert len(select(["none"], sen12mscr=True)) == 12 and len(select(["all"], sen12mscr=True)) == 32


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--regions", "afrika"],
            "--regions: unknown region 'afrika' (choose from all, none, africa, america, "
            "asiaEast, asiaWest, europa); did you mean 'africa'?",
        ),
        (["--regions", "none"], "nothing to download: choose --regions, or --sen12mscr"),
        (["--delete-archives"], "--delete-archives deletes what --convert CUBE converted: give --convert CUBE"),
        (["--convert", "c.zarr", "--no-s1"], "--convert: every patch needs its S1 images: drop --no-s1"),
    ],
)
def test_bad_choices_are_one_line(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["download", str(tmp_path / "a"), *args]) == 2
    assert capsys.readouterr().err == f"crts download: error: {message}\n"


def test_downloads_are_byte_identical_and_never_partial(
    served: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "archives"
    with http_server(served, Recording) as url:
        assert _download(dest, url) == 0
        assert sorted(p.name for p in dest.iterdir()) == ["s1_europa.tar.gz", "s2_europa.tar.gz"]
        for name in ("s1_europa.tar.gz", "s2_europa.tar.gz"):
            assert (dest / name).read_bytes() == (served / name).read_bytes()
        assert REQUESTS == [("/s1_europa.tar.gz", None), ("/s2_europa.tar.gz", None)]
        out = capsys.readouterr()
        assert "2 archive(s) downloaded" in out.out and "B/s" in out.err  # the progress bar, in bytes
        assert _download(dest, url) == 0  # complete archives are not fetched again
        assert len(REQUESTS) == 2 and "0 archive(s) downloaded" in capsys.readouterr().out


def test_a_part_file_is_resumed_with_a_range_request(served: Path, tmp_path: Path) -> None:
    dest = tmp_path / "archives"
    dest.mkdir()
    whole = (served / "s2_europa.tar.gz").read_bytes()
    (dest / "s1_europa.tar.gz").write_bytes((served / "s1_europa.tar.gz").read_bytes())
    (dest / "s2_europa.tar.gz.part").write_bytes(whole[: len(whole) // 2])
    with http_server(served, Recording) as url:
        assert _download(dest, url) == 0
    assert [("/s2_europa.tar.gz", f"bytes={len(whole) // 2}-")] == REQUESTS
    assert (dest / "s2_europa.tar.gz").read_bytes() == whole and not (dest / "s2_europa.tar.gz.part").exists()


def test_a_server_that_ignores_range_is_downloaded_again_from_the_start(served: Path, tmp_path: Path) -> None:
    dest = tmp_path / "archives"
    dest.mkdir()
    (dest / "s1_europa.tar.gz.part").write_bytes(b"not the archive's first bytes" * 100)
    with http_server(served, IgnoresRange) as url:
        assert _download(dest, url) == 0
    assert REQUESTS[0] == ("/s1_europa.tar.gz", "bytes=2900-")  # asked for, answered with the whole file
    assert (dest / "s1_europa.tar.gz").read_bytes() == (served / "s1_europa.tar.gz").read_bytes()


def test_a_broken_transfer_is_one_line_keeps_the_part_and_resumes(
    served: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "archives"
    size = (served / "s1_europa.tar.gz").stat().st_size
    with http_server(served, BreaksHalfway) as url:
        assert _download(dest, url) == 2
    assert error_line(2, capsys.readouterr().err) == (
        f"crts download: error: {url}/s1_europa.tar.gz: got {size // 2} B, the server's "
        f"size is {size} B; s1_europa.tar.gz.part is kept: run the same command again to "
        "resume"
    )
    assert (dest / "s1_europa.tar.gz.part").stat().st_size == size // 2 and not (dest / "s1_europa.tar.gz").exists()
    REQUESTS.clear()
    with http_server(served, Recording) as url:
        assert _download(dest, url) == 0
    assert REQUESTS[0] == ("/s1_europa.tar.gz", f"bytes={size // 2}-")
    assert (dest / "s1_europa.tar.gz").read_bytes() == (served / "s1_europa.tar.gz").read_bytes()


def test_a_part_larger_than_the_archive_is_a_size_mismatch(
    served: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "archives"
    dest.mkdir()
    size = (served / "s1_europa.tar.gz").stat().st_size
    (dest / "s1_europa.tar.gz.part").write_bytes(b"x" * (size + 10))
    with http_server(served) as url:
        assert _download(dest, url) == 2
    assert error_line(2, capsys.readouterr().err) == (
        f"crts download: error: s1_europa.tar.gz.part: holds {size + 10} B, more than the "
        f"archive at {url}/s1_europa.tar.gz (size {size} B); delete it to start over"
    )


class Lies(SimpleHTTPRequestHandler):
    """Answers by the first folder of the path: ``chunked``: Content-Length 1000 and a chunked body of 10 MiB;
    ``ranged``: a 206 for the bytes asked (of 1000) without a Content-Length, then 10 MiB before closing; ``star``:
    a 206 whose range gives no total; ``big``: Content-Length 10**12; ``stall``: 10 of 1000 bytes, then nothing for
    3 s; ``ftp``: a redirect to ftp://; ``hop``: a redirect to ``/ftp/...`` of this server; ``loop``: a redirect to
    itself; ``heavy``: a redirect to ``/star/...`` stating a body of 10**11 bytes."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        kind = self.path.split("/")[1]
        have = int(self.headers.get("Range", "bytes=0-")[6:-1])
        self.close_connection = True
        self.send_response(302 if kind in ("ftp", "hop", "loop", "heavy") else 206 if have else 200)
        headers = {
            "chunked": {"Content-Length": "1000", "Transfer-Encoding": "chunked"},
            "ranged": {"Content-Range": f"bytes {have}-999/1000"},
            "star": {"Content-Range": f"bytes {have}-999/*"},
            "big": {"Content-Length": str(10**12)},
            "stall": {"Content-Length": "1000"},
            "ftp": {"Location": "ftp://127.0.0.1/s1_europa.tar.gz"},
            "hop": {"Location": "/ftp/s1_europa.tar.gz"},
            "loop": {"Location": "/loop/s1_europa.tar.gz"},
            "heavy": {"Location": "/star/s1_europa.tar.gz", "Content-Length": str(10**11)},
        }[kind]
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if kind in ("chunked", "ranged", "star"):
            for _ in range(10):
                chunk = bytes(1 << 20)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if kind == "chunked" else chunk)
            self.wfile.write(b"0\r\n\r\n" if kind == "chunked" else b"")
        elif kind == "stall":
            self.wfile.write(bytes(10))
            self.wfile.flush()
            time.sleep(3)


def _lied_to(url: str, kind: str, dest: Path, have: int = 0) -> Published:
    """s1_europa.tar.gz at ``url/kind/`` (:class:`Lies`), ``dest`` holding a .part of ``have`` bytes."""
    dest.mkdir(exist_ok=True)
    if have:
        (dest / "s1_europa.tar.gz.part").write_bytes(b"x" * have)
    return Published("s1_europa.tar.gz", f"{url}/{kind}/s1_europa.tar.gz", PUBLISHED[0].booked_kib)


@pytest.mark.parametrize(("kind", "have", "stated"), [("chunked", 0, 1000), ("ranged", 100, 900)])
def test_nothing_beyond_the_size_the_server_states_is_written(
    served: Path, tmp_path: Path, kind: str, have: int, stated: int
) -> None:
    with http_server(served, Lies) as url:
        archive = _lied_to(url, kind, tmp_path / "archives", have)
        with pytest.raises(
            DownloadError,
            match=rf"^{url}/{kind}/s1_europa.tar.gz: the server sent more than the "
            rf"{stated} B it stated; nothing of this answer is kept$",
        ):
            fetch(archive, tmp_path / "archives", progress=False)
    assert (tmp_path / "archives" / "s1_europa.tar.gz.part").stat().st_size == have  # what it held before
    assert not (tmp_path / "archives" / "s1_europa.tar.gz").exists()


@pytest.mark.parametrize(
    ("kind", "have", "kept", "message"),
    [
        (
            "star",
            100,
            100,
            "the server gives no archive size in the range 'bytes 100-999/\\*': the download cannot be checked",
        ),
        (
            "big",
            0,
            None,
            "the server states 1000000000000 B, more than 2 times the ~61997592576 B booked for "
            "s1_europa.tar.gz: refused",
        ),
        (
            "stall",
            0,
            10,
            r"the transfer broke after 10 of 1000 B \(TimeoutError\('timed out'\)\); s1_europa.tar.gz.part "
            "is kept: run the same command again to resume",
        ),
        (
            "ftp",
            0,
            None,
            "cannot be reached \\(refused a redirect from {url}/ftp/s1_europa.tar.gz to ftp://127.0.0.1/"
            "s1_europa.tar.gz: only to http\\(s\\), never from https to http\\)",
        ),
        ("hop", 0, None, "cannot be reached \\(refused a redirect from {url}/ftp/s1_europa.tar.gz to ftp://"),
        # found by tests/fuzz/test_http_response.py: urllib's message had three lines; urllib read a redirect's body
        # whole (a MemoryError)
        ("loop", 0, None, "HTTP 302 The HTTP server returned a redirect error that would lead to an infinite loop.$"),
        ("heavy", 0, None, "the server gives no size \\(Content-Length\\): the download cannot be checked$"),
    ],
)
def test_a_server_that_states_no_size_too_much_stalls_or_redirects_off_http_is_one_line(
    served: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, have: int, kept: int | None, message: str
) -> None:
    monkeypatch.setattr(download, "TIMEOUT_S", 0.5)
    with http_server(served, Lies) as url:
        archive = _lied_to(url, kind, tmp_path / "archives", have)
        with pytest.raises(DownloadError) as caught:
            fetch(archive, tmp_path / "archives", progress=False)
    assert re.match(rf"{url}/{kind}/s1_europa.tar.gz: {message.format(url=url)}", str(caught.value))
    assert "\n" not in str(caught.value)
    part = tmp_path / "archives" / "s1_europa.tar.gz.part"
    assert (part.stat().st_size if part.exists() else None) == kept


def test_redirects_from_https_to_http_are_refused() -> None:
    request = urllib.request.Request("https://127.0.0.1/s1_europa.tar.gz")
    with pytest.raises(
        urllib.error.URLError,
        match=r"refused a redirect from https://127.0.0.1/s1_europa.tar.gz to "
        r"http://127.0.0.1/s1_europa.tar.gz",
    ):
        RedirectChecked().redirect_request(request, io.BytesIO(), 302, "Found", {}, "http://127.0.0.1/s1_europa.tar.gz")


def test_a_redirect_off_http_is_one_line_in_the_cli(
    served: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with http_server(served, Lies) as url:
        assert _download(tmp_path / "archives", f"{url}/hop") == 2
    assert error_line(2, capsys.readouterr().err).startswith(
        f"crts download: error: {url}/hop/s1_europa.tar.gz: cannot be reached "
        f"(refused a redirect from {url}/ftp/s1_europa.tar.gz to ftp://"
    )


def test_a_complete_part_is_renamed(served: Path, tmp_path: Path) -> None:
    """Interrupted between the last byte and the rename: the server's 416 with the size completes it."""
    dest = tmp_path / "archives"
    dest.mkdir()
    (dest / "s1_europa.tar.gz.part").write_bytes((served / "s1_europa.tar.gz").read_bytes())
    with http_server(served) as url:
        assert _download(dest, url) == 0
    assert (dest / "s1_europa.tar.gz").read_bytes() == (served / "s1_europa.tar.gz").read_bytes()


def test_unreachable_server_missing_archive_and_unwritable_dest_are_one_line(
    served: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with http_server(served) as url:
        pass  # stopped: nothing listens on its port any more
    assert _download(tmp_path / "a", url) == 2
    assert error_line(2, capsys.readouterr().err).startswith(
        f"crts download: error: {url}/s1_europa.tar.gz: cannot be reached ("
    )
    with http_server(served / "ground_truth") as url:
        assert _download(tmp_path / "a", url) == 2
    assert error_line(2, capsys.readouterr().err) == (
        f"crts download: error: {url}/s1_europa.tar.gz: HTTP 404 File not found"
    )
    (tmp_path / "file").write_text("")
    assert _download(tmp_path / "file", url) == 2
    assert error_line(2, capsys.readouterr().err) == (
        f"crts download: error: {tmp_path / 'file'}: exists and is not a folder"
    )
    assert _download(tmp_path / "file" / "below", url) == 2
    below = tmp_path / "file" / "below"
    assert error_line(2, capsys.readouterr().err) == (
        f"crts download: error: {below}: cannot be written (Not a directory)"
    )


def test_convert_each_group_then_delete_its_archives(
    served: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    direct = tmp_path / "direct.zarr"
    convert(sorted(served.glob("*_test.tar.gz")), direct, times=4, workers=1, clouds=(), progress=False)
    dest, cube = tmp_path / "archives", tmp_path / "cube.zarr"
    args = [
        "--split",
        "test",
        "--convert",
        str(cube),
        "--delete-archives",
        "--times",
        "4",
        "--workers",
        "1",
        "--detectors",
        "none",
    ]
    with http_server(served, Recording) as url:
        assert main(["download", str(dest), "--regions", "africa,europa", "--base-url", url, *args]) == 0
        assert "2 group(s) converted" in capsys.readouterr().out and list(dest.iterdir()) == []
        assert_same_cube(cube, direct)
        assert [path for path, _ in REQUESTS] == [
            "/s1_africa_test.tar.gz",
            "/s2_africa_test.tar.gz",
            "/s1_europa_test.tar.gz",
            "/s2_europa_test.tar.gz",
        ]
        assert main(["download", str(dest), "--regions", "africa,europa", "--base-url", url, *args]) == 0
    out = capsys.readouterr().out
    assert "africa_test: already in" in out and "europa_test: already in" in out and len(REQUESTS) == 4
    assert_same_cube(cube, direct)


def test_a_group_is_appended_to_a_cube_of_earlier_downloads(served: Path, tmp_path: Path) -> None:
    direct = tmp_path / "direct.zarr"
    convert(served, direct, times=4, workers=1, clouds=(), progress=False)
    dest, cube = tmp_path / "archives", tmp_path / "cube.zarr"
    options = ["--convert", str(cube), "--times", "4", "--workers", "1", "--detectors", "none"]
    with http_server(served) as url:
        assert main(["download", str(dest), "--regions", "africa", "--split", "test", "--base-url", url, *options]) == 0
        assert main(["download", str(dest), "--regions", "europa", "--base-url", url, *options]) == 0
    assert_same_cube(cube, direct)
    assert sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in served.glob("*.tar.gz"))


def test_a_conversion_interrupted_in_a_group_is_resumed_by_the_same_command(
    served: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cube.ingest.archive_conversion import ArchiveConversion
    from cube.store.store import CubeStore

    direct = tmp_path / "direct.zarr"
    convert(sorted(served.glob("*_europa*.tar.gz")), direct, times=4, workers=1, clouds=(), progress=False)
    dest, cube = tmp_path / "archives", tmp_path / "cube.zarr"
    args = [
        "download",
        str(dest),
        "--regions",
        "europa",
        "--convert",
        str(cube),
        "--delete-archives",
        "--times",
        "4",
        "--workers",
        "1",
        "--detectors",
        "none",
    ]
    harvest = ArchiveConversion.harvest

    def ctrl_c_in_the_second_group(self: ArchiveConversion, timeout: float) -> None:
        harvest(self, timeout)
        if self.sources.archives[0].name == "s1_europa_test.tar.gz" and self.positions:
            raise KeyboardInterrupt

    with http_server(served) as url:
        monkeypatch.setattr(ArchiveConversion, "harvest", ctrl_c_in_the_second_group)
        assert main([*args, "--base-url", url]) == 130
        assert sorted(p.name for p in dest.iterdir()) == ["s1_europa_test.tar.gz", "s2_europa_test.tar.gz"]
        assert CubeStore(cube).state().complete is False  # europa_test half converted: the next run resumes it
        monkeypatch.setattr(ArchiveConversion, "harvest", harvest)
        assert main([*args, "--base-url", url]) == 0
    assert list(dest.iterdir()) == []
    assert_same_cube(cube, direct)


def test_ctrl_c_keeps_the_part_in_one_line_and_the_same_command_resumes(served: Path, tmp_path: Path) -> None:
    dest = tmp_path / "archives"
    part = dest / "s1_europa.tar.gz.part"
    Stalled.released.clear()
    with http_server(served, Stalled) as url:
        command = [
            sys.executable,
            "-m",
            "crts",
            "download",
            str(dest),
            "--regions",
            "europa",
            "--split",
            "train",
            "--base-url",
            url,
        ]
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
        )
        deadline = time.monotonic() + 60
        while not (part.exists() and part.stat().st_size > 0):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            Stalled.released.set()
        assert proc.returncode == 130
        assert err.strip().splitlines()[-1] == (
            "crts download: interrupted: the complete archives and the .part of the one being downloaded are kept "
            "(and the cube as converted so far): run the same command to resume"
        )
        kept = part.stat().st_size
        assert 0 < kept < (served / "s1_europa.tar.gz").stat().st_size
        with http_server(served, Recording) as fast:
            assert _download(dest, fast) == 0
    assert REQUESTS[0] == ("/s1_europa.tar.gz", f"bytes={kept}-")
    assert (dest / "s1_europa.tar.gz").read_bytes() == (served / "s1_europa.tar.gz").read_bytes()


def test_the_real_urls_are_one_table_in_the_code_and_in_the_docs() -> None:
    text = DOCS.read_text()
    for archive in PUBLISHED:
        assert f"| `{archive.name}` | {archive.url} | {archive.booked_kib} |" in text, archive.name
    assert len({a.url for a in PUBLISHED}) == 32
