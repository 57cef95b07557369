"""A real client: curl."""
import json
import os
import shutil
import subprocess

import pytest

from covet_wire import HELLO, HELLO_JSON

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def curl(*args, timeout=20) -> subprocess.CompletedProcess:
    p = subprocess.run(["curl", "-sS", "--max-time", "15", *map(str, args)],
                       capture_output=True, timeout=timeout)
    assert p.returncode == 0, f"curl {args} failed rc={p.returncode}: {p.stderr.decode(errors='replace')}"
    return p


def split_include(out: bytes):
    """Split `curl -i` output into (status line, {lower name: value}, body)."""
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return lines[0], headers, body


def url(server, path):
    return f"http://127.0.0.1:{server.port}{path}"


def test_curl_json_with_headers(server):
    status, headers, body = split_include(curl("-i", url(server, "/json")).stdout)
    assert status.startswith("HTTP/1.1 200"), status
    assert headers["content-type"].split(";")[0] == "application/json", headers
    assert headers["server"] == "covet", headers
    assert headers.get("x-request-id"), headers
    assert "date" in headers, headers
    assert headers["content-length"] == str(len(HELLO_JSON)), headers
    assert body == HELLO_JSON
    assert json.loads(body) == {"message": "Hello, World!"}


def test_curl_head(server):
    status, headers, body = split_include(curl("-I", url(server, "/plaintext")).stdout)
    assert status.startswith("HTTP/1.1 200"), status
    assert headers["content-length"] == "13", headers
    assert headers["content-type"].split(";")[0] == "text/plain", headers
    assert body == b""


def test_curl_data_binary_file(server, tmp_path):
    payload = os.urandom(300_000)
    src = tmp_path / "payload.bin"
    src.write_bytes(payload)
    out = tmp_path / "out.bin"
    hdrs = tmp_path / "headers.txt"
    curl("--data-binary", f"@{src}", "-H", "Content-Type: application/x-covet-test",
         "-D", hdrs, "-o", out, url(server, "/echo"))
    assert out.read_bytes() == payload
    assert "content-type: application/x-covet-test" in hdrs.read_text().lower()


def test_curl_chunked_upload(server, tmp_path):
    payload = os.urandom(200_000)
    src = tmp_path / "payload.bin"
    src.write_bytes(payload)
    out = tmp_path / "out.bin"
    p = curl("-v", "-H", "Transfer-Encoding: chunked", "--data-binary", f"@{src}", "-o", out,
             url(server, "/echo"))
    assert b"Transfer-Encoding: chunked" in p.stderr, "curl did not upload chunked"
    assert out.read_bytes() == payload


def test_curl_expect_100_continue(server, tmp_path):
    payload = os.urandom(100_000)
    src = tmp_path / "payload.bin"
    src.write_bytes(payload)
    out = tmp_path / "out.bin"
    p = curl("-v", "-H", "Expect: 100-continue", "--expect100-timeout", "10",
             "--data-binary", f"@{src}", "-o", out, url(server, "/echo"))
    assert b"HTTP/1.1 100 Continue" in p.stderr, p.stderr.decode(errors="replace")
    assert out.read_bytes() == payload


def test_curl_reuses_connection_for_several_urls(server):
    p = curl("-v", url(server, "/plaintext"), url(server, "/json"), url(server, "/users/3"))
    assert p.stdout == HELLO + HELLO_JSON + b'{"id":3}', p.stdout
    assert p.stderr.count(b"Re-using existing connection") == 2, p.stderr.decode(errors="replace")


def test_curl_http10(server):
    p = curl("--http1.0", "-i", url(server, "/plaintext"))
    status, headers, body = split_include(p.stdout)
    assert status.split()[1] == "200", status
    assert body == HELLO


def test_curl_stream(server):
    p = curl("-i", url(server, "/stream"))
    status, headers, body = split_include(p.stdout)
    # curl -i prints the decoded body after the raw headers
    assert headers.get("transfer-encoding", "").lower() == "chunked", headers
    assert body == b"chunk-0\nchunk-1\nchunk-2\n"


def test_curl_search_with_url_encoding(server):
    p = curl("-G", "--data-urlencode", "q=a b&c=d/é", url(server, "/search"))
    assert p.stdout == "a b&c=d/é".encode(), p.stdout
