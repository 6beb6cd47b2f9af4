"""Tests of keras_convlstm.official_file: download and verification, the cache lookup, loading the file.

Downloads go to a loopback HTTP server on 127.0.0.1 that serves small files written by the tests.
"""

import hashlib
import http.server
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from keras_convlstm import files, official_file

# --------------------------------------------------------------------------------------------- fixtures


def _write_npy(path: Path, array: np.ndarray) -> bytes:
    np.save(path, array)
    return path.read_bytes()


class _Server:
    """Loopback HTTP server; ``routes`` maps a URL path to a handler(request) and ``hits`` counts requests."""

    def __init__(self):
        self.routes = {}
        self.hits = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                server.routes[self.path](self)

            def log_message(self, *args):
                pass

        class QuietServer(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # clients that give up (timeouts, SSL) break the pipe on purpose

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def add(self, path: str, respond) -> str:
        self.routes[path] = respond
        return self.url(path)

    def serve_bytes(self, path, content, content_type="application/octet-stream", length=None, status=200):
        def respond(request):
            request.send_response(status)
            request.send_header("Content-Type", content_type)
            request.send_header("Content-Length", str(len(content) if length is None else length))
            request.end_headers()
            request.wfile.write(content)

        return self.add(path, respond)


@pytest.fixture(scope="module")
def server():
    instance = _Server()
    yield instance
    instance.httpd.shutdown()
    instance.httpd.server_close()


def _download(url, cache, small_file, **kwargs):
    kwargs.setdefault("md5", small_file["md5"])
    kwargs.setdefault("num_bytes", len(small_file["content"]))
    return official_file.download_moving_mnist(cache, url, **kwargs)


# --------------------------------------------------------------------------------------------- download


def test_default_cache_dir_follows_keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert files.default_cache_dir() == tmp_path / "datasets"
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert files.default_cache_dir() == tmp_path / "home" / ".keras" / "datasets"


def test_download_then_cache_hit(server, small_file, tmp_path, capsys):
    url = server.serve_bytes("/ok.npy", small_file["content"])
    cache = tmp_path / "cache"
    path = _download(url, cache, small_file, verbose=True)
    assert path == cache / official_file.OFFICIAL_FILENAME
    assert path.read_bytes() == small_file["content"]
    assert [item.name for item in cache.iterdir()] == [official_file.OFFICIAL_FILENAME]
    assert f"{official_file.OFFICIAL_FILENAME}: 100%" in capsys.readouterr().err  # the tqdm progress bar
    assert _download(url, cache, small_file) == path
    assert server.hits["/ok.npy"] == 1
    np.testing.assert_array_equal(
        official_file.load_moving_mnist(path, None), np.swapaxes(small_file["frames"], 0, 1)[..., None]
    )


def test_download_leaves_process_wide_state_alone(server, small_file, tmp_path):
    """A urllib opener the user installed stays installed, and sys.stdout is not swapped during the download."""
    requests = []

    class Counting(urllib.request.BaseHandler):
        def http_request(self, request):
            requests.append((request.full_url, sys.stdout))
            return request

    url = server.serve_bytes("/state.npy", small_file["content"])
    stdout = sys.stdout
    urllib.request.install_opener(urllib.request.build_opener(Counting()))
    try:
        _download(url, tmp_path, small_file, verbose=True)
        urllib.request.urlopen(url, timeout=5).close()
    finally:
        urllib.request.install_opener(None)
    assert requests == [(url, stdout), (url, stdout)]


def test_download_checks_can_be_skipped_for_a_user_file(server, small_file, tmp_path):
    url = server.serve_bytes("/user.npy", small_file["content"])
    path = official_file.download_moving_mnist(tmp_path, url, md5=None, num_bytes=None)
    assert path.read_bytes() == small_file["content"]


def _refused_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist_test_seq.npy"


def _sleep_then_send(content):
    def respond(request):
        time.sleep(1.5)
        request.send_response(200)
        request.end_headers()
        request.wfile.write(content)

    return respond


def _fail(status):
    def respond(request):
        request.send_error(status)

    return respond


HTML_PAGE = b"<!DOCTYPE html><html><body><h1>Moved</h1></body></html>"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("404", "HTTP 404"),
        ("500", "HTTP 500"),
        ("refused", "connection was refused"),
        ("dns", "host name could not be resolved"),
        ("timeout", "timed out after 0.3 s"),
        ("truncated", "truncated"),
        ("html", "HTML page"),
        ("html-as-octet-stream", "not a .npy file"),
        ("md5", "md5 mismatch"),
        ("size", "announces"),
        ("not-moving-mnist", "expected uint8 frames"),
        ("ssl", "SSL"),
    ],
)
def test_download_failures_raise_one_clear_error_and_leave_nothing(server, small_file, tmp_path, case, reason):
    content = small_file["content"]
    kwargs = {}
    if case in ("404", "500"):
        url = server.add(f"/{case}.npy", _fail(int(case)))
    elif case == "refused":
        url = _refused_url()
    elif case == "dns":
        url = "http://moving-mnist.invalid/mnist_test_seq.npy"
    elif case == "timeout":
        url = server.add("/slow.npy", _sleep_then_send(content))
        kwargs["timeout"] = 0.3
    elif case == "truncated":
        url = server.serve_bytes("/truncated.npy", content[: len(content) // 2], length=len(content))
    elif case == "html":
        url = server.serve_bytes("/html.npy", HTML_PAGE, content_type="text/html; charset=utf-8")
    elif case == "html-as-octet-stream":
        url = server.serve_bytes("/html-octet.npy", HTML_PAGE)
        kwargs["num_bytes"] = None
    elif case == "md5":
        url = server.serve_bytes("/md5.npy", content)
        kwargs["md5"] = hashlib.md5(b"something else").hexdigest()
    elif case == "size":
        url = server.serve_bytes("/size.npy", content)
        kwargs["num_bytes"] = len(content) + 1
    elif case == "not-moving-mnist":
        floats = _write_npy(tmp_path / "floats.npy", np.zeros((2, 3, 64, 64), np.float32))
        url = server.serve_bytes("/floats.npy", floats)
        kwargs.update(md5=None, num_bytes=None)
    else:
        url = server.url("/ok-ssl.npy").replace("http://", "https://")
    cache = tmp_path / "cache"
    start = time.perf_counter()
    with pytest.raises(official_file.DownloadError) as raised:
        _download(url, cache, small_file, **kwargs)
    assert time.perf_counter() - start < 5
    message = str(raised.value)
    assert url in message
    assert str(cache / official_file.OFFICIAL_FILENAME) in message
    assert reason in message
    assert f"by hand from {official_file.OFFICIAL_URL}" in message
    assert "keras_convlstm.synthetic.generate_moving_mnist()" in message
    assert not cache.exists() or list(cache.iterdir()) == []


@pytest.mark.parametrize("corruption", ["garbage", "truncated", "same-size-other-content"])
def test_corrupt_cached_file_is_replaced(server, small_file, tmp_path, corruption):
    content = small_file["content"]
    url = server.serve_bytes(f"/replace-{corruption}.npy", content)
    cache = tmp_path / "cache"
    cache.mkdir()
    cached = cache / official_file.OFFICIAL_FILENAME
    if corruption == "garbage":
        cached.write_bytes(b"<html>not numpy</html>")
    elif corruption == "truncated":
        cached.write_bytes(content[:-100])
    else:
        cached.write_bytes(content[:-1] + bytes([content[-1] ^ 0xFF]))
    assert _download(url, cache, small_file) == cached
    assert server.hits[f"/replace-{corruption}.npy"] == 1
    assert cached.read_bytes() == content


def test_corrupt_cached_file_is_removed_when_the_download_fails(small_file, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / official_file.OFFICIAL_FILENAME).write_bytes(b"junk")
    with pytest.raises(official_file.DownloadError, match="connection was refused") as raised:
        _download(_refused_url(), cache, small_file)
    assert list(cache.iterdir()) == []
    assert "the file that was there failed its checks, expected" in str(raised.value)
    assert "and was deleted" in str(raised.value)


def test_a_part_file_left_by_a_killed_download_is_removed_by_the_next_one(server, small_file, tmp_path):
    url = server.serve_bytes("/after-kill.npy", small_file["content"])
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f".{official_file.OFFICIAL_FILENAME}.x1y2.part").write_bytes(small_file["content"][:500])
    assert _download(url, cache, small_file) == cache / official_file.OFFICIAL_FILENAME
    assert sorted(path.name for path in cache.iterdir()) == [official_file.OFFICIAL_FILENAME]


# --------------------------------------------------------------------------------------------- loading


def test_load_round_trip_is_a_memory_mapped_swapped_view(small_file):
    frames = small_file["frames"]
    loaded = official_file.load_moving_mnist(small_file["path"], num_sequences=None)
    assert loaded.shape == (6, 20, 64, 64, 1) and loaded.dtype == np.uint8
    assert isinstance(loaded, np.memmap) and not loaded.flags.writeable
    np.testing.assert_array_equal(loaded[..., 0], np.swapaxes(frames, 0, 1))
    subset = official_file.load_moving_mnist(small_file["path"], num_sequences=4)
    np.testing.assert_array_equal(subset, loaded[:4])


def test_load_without_path_uses_the_download(small_file, monkeypatch):
    monkeypatch.setattr(official_file, "download_moving_mnist", lambda: small_file["path"])
    assert official_file.load_moving_mnist(num_sequences=2).shape == (2, 20, 64, 64, 1)


@pytest.mark.parametrize("count", [0, 7])
def test_load_rejects_num_sequences_out_of_range(small_file, count):
    with pytest.raises(ValueError, match="num_sequences must be"):
        official_file.load_moving_mnist(small_file["path"], num_sequences=count)


@pytest.mark.parametrize(
    ("kind", "error", "match"),
    [
        ("float", ValueError, r"expected uint8 frames of shape \(time, sequence, height, width\).*float32"),
        ("3-d", ValueError, r"expected uint8 frames.*shape \(20, 64, 64\)"),
        ("text", ValueError, "not a .npy file"),
        ("short", ValueError, "the header announces"),
        ("missing", FileNotFoundError, "no Moving MNIST file"),
    ],
)
def test_load_rejects_files_that_are_not_moving_mnist(tmp_path, kind, error, match):
    path = tmp_path / "mnist_test_seq.npy"
    if kind == "float":
        np.save(path, np.zeros((20, 2, 64, 64), np.float32))
    elif kind == "3-d":
        np.save(path, np.zeros((20, 64, 64), np.uint8))
    elif kind == "text":
        path.write_text("time,sequence\n1,2\n")
    elif kind == "short":
        np.save(path, np.zeros((20, 2, 64, 64), np.uint8))
        path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(error, match=match):
        official_file.load_moving_mnist(path)


# --------------------------------------------------------------------------------------------- cache lookup


def test_choose_source_prefers_a_verified_cached_official_file(
    small_file, keras_cache, accept_small_file_as_official, capsys
):
    assert official_file.choose_source("auto") == "generated"
    assert (
        f"No verified official file ({official_file.OFFICIAL_FILENAME} or {official_file.KERAS_IO_FILENAME})"
        in capsys.readouterr().out
    )
    assert official_file.choose_source("official") == "official"
    assert official_file.choose_source("generated") == "generated"
    (keras_cache / official_file.OFFICIAL_FILENAME).write_bytes(small_file["content"])
    assert official_file.choose_source("auto", verbose=False) == "generated"  # not the official size and md5
    accept_small_file_as_official()
    assert official_file.choose_source("auto", verbose=False) == "official"
    with pytest.raises(ValueError, match="unknown data source 'web'"):
        official_file.choose_source("web")


@pytest.mark.parametrize("corruption", ["other-content", "truncated"])
def test_a_corrupt_cached_file_is_named_and_not_used(
    small_file, keras_cache, accept_small_file_as_official, capsys, corruption
):
    accept_small_file_as_official()
    content = bytearray(small_file["content"])
    if corruption == "other-content":
        content[-1] ^= 0xFF
    else:
        del content[-100:]
    (keras_cache / official_file.KERAS_IO_FILENAME).write_bytes(bytes(content))
    assert official_file.find_cached_moving_mnist() is None
    assert official_file.choose_source("auto") == "generated"
    printed = capsys.readouterr().out
    reason = "md5 mismatch" if corruption == "other-content" else "bytes"
    assert f"Not using {keras_cache / official_file.KERAS_IO_FILENAME}: " in printed and reason in printed


def test_the_keras_io_cached_file_is_found_verified_and_loaded(server, small_file, keras_cache):
    """keras.io caches the official file as moving_mnist.npy: it is used as is, nothing is downloaded."""
    keras_io_copy = keras_cache / official_file.KERAS_IO_FILENAME
    keras_io_copy.write_bytes(small_file["content"])
    url = server.serve_bytes("/never.npy", small_file["content"])
    kwargs = {"md5": small_file["md5"], "num_bytes": len(small_file["content"])}
    assert official_file.find_cached_moving_mnist(keras_cache, **kwargs) == keras_io_copy
    assert official_file.download_moving_mnist(keras_cache, url, **kwargs) == keras_io_copy
    assert "/never.npy" not in server.hits
    assert sorted(item.name for item in keras_cache.iterdir()) == [official_file.KERAS_IO_FILENAME]
    # Both names present: the package's own copy comes first.
    (keras_cache / official_file.OFFICIAL_FILENAME).write_bytes(small_file["content"])
    assert (
        official_file.find_cached_moving_mnist(keras_cache, **kwargs) == keras_cache / official_file.OFFICIAL_FILENAME
    )
    assert official_file.find_cached_moving_mnist(keras_cache, md5="0" * 32, num_bytes=None) is None
