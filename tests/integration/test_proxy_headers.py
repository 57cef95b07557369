"""Proxy headers on the native hello server (ServerConfig::proxy_headers): from a trusted peer (127.0.0.1 by default,
--forwarded-allow-ips) X-Forwarded-Proto sets the scheme and X-Forwarded-For the client the access log writes;
other peers' headers (and --no-proxy-headers) change nothing. Real processes, real sockets."""

import json
import time

import pytest

from covet_wire import RawConn

FORWARDED = [("X-Forwarded-Proto", "https"), ("X-Forwarded-For", "198.51.100.1, 203.0.113.7")]


def access_lines(srv, count: int, timeout: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(line) for line in srv.stderr_path.read_text(errors="replace").splitlines()
                 if '"logger":"covet.access"' in line]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


@pytest.mark.parametrize(("args", "forwarded"), [
    ((), True),
    (("--forwarded-allow-ips", "10.0.0.0/8, ::1"), False),
    (("--forwarded-allow-ips", "127.0.0.0/8"), True),
    (("--no-proxy-headers",), False),
])
def test_scheme_and_access_log_client(make_server, args, forwarded):
    srv = make_server("--access-log", "json", "--log-level", "info", *args)
    with RawConn(srv.port) as c:
        r = c.get("/tls", headers=FORWARDED)
        assert r.status == 200, r
        assert json.loads(r.body)["scheme"] == ("https" if forwarded else "http")
        r = c.get("/tls")  # the next request on the connection: its own scheme again
        assert json.loads(r.body)["scheme"] == "http"
    lines = access_lines(srv, 2)
    assert [line["client"] for line in lines[:2]] == (["203.0.113.7", "127.0.0.1"] if forwarded
                                                      else ["127.0.0.1", "127.0.0.1"]), lines


def test_a_bad_list_is_refused(hello_bin, tmp_path):
    import subprocess

    result = subprocess.run([str(hello_bin), "--port", "0", "--forwarded-allow-ips", "10.0.0.1/8"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "'10.0.0.1/8' has host bits set: did you mean 10.0.0.0/8?" in result.stderr, result.stderr
