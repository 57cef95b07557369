"""bench/tools/h3bench (the C++ HTTP/3 load generator) compiled here and run against the real engine (examples/native
/hello with --http3): its counts, its checks of every response, its window marks and its failures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, so `bench` imports as a package

from bench import h3load, servers, tls  # noqa: E402

HELLO = next((p for p in ([Path(os.environ["COVET_HELLO_BIN"])] if os.environ.get("COVET_HELLO_BIN") else [])
              + list(servers.NATIVE_BINARIES) if p.exists()), None)
pytestmark = pytest.mark.skipif(HELLO is None, reason="no examples/native/hello built (scripts/build.sh)")


@pytest.fixture(scope="module")
def h3bench(tmp_path_factory) -> Path:
    return h3load.build_h3bench(log=lambda _: None, binary=tmp_path_factory.mktemp("bin") / "h3bench")


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> tls.TlsFiles:
    return tls.generate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def server(certs):
    port = servers.free_port()
    proc = subprocess.Popen([str(HELLO), "--port", str(port), "--threads", "1", "--tls-cert", str(certs.cert),
                             "--tls-key", str(certs.key), "--http3"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    error = servers.wait_for_200_tls(proc, port, time.monotonic() + 60, certs)
    if error:
        proc.kill()
        pytest.fail(f"hello did not start: {error}")
    yield port
    proc.terminate()
    proc.wait(timeout=30)


def run(binary: Path, port: int, ca: Path, *flags: str, path: str = "/plaintext") -> tuple[int, dict, str]:
    p = subprocess.run([str(binary), "-url", f"https://127.0.0.1:{port}{path}", "-ca", str(ca), *flags],
                       capture_output=True, text=True, timeout=60)
    return p.returncode, h3load.parse_output(p.stdout, "h3bench"), p.stdout + p.stderr


SHORT = ("-c", "2", "-m", "8", "-warmup=0.2s", "-d=0.5s")


def test_plaintext_load_counts_checked_responses_inside_the_marks(h3bench, server, certs):
    code, out, text = run(h3bench, server, certs.ca, *SHORT, "-expect-body=Hello, World!", "-expect-type",
                          "text/plain")
    assert code == 0 and out["ok"], text
    assert out["marks"] == 2 and out["errors_total"] == 0
    assert out["requests"] > 0 and out["status"]["2xx"] == out["requests"]
    assert out["bytes_read"] == 13 * out["requests"] and out["requests_per_sec"] > 0
    assert out["dials"] == 2 and out["protocol"] == "HTTP/3.0"
    assert out["tls"]["alpn"] == "h3" and out["tls"]["version"] == "TLS1.3"
    assert 0 < out["latency_ms"]["50"] <= out["latency_ms"]["99"]
    assert h3load.to_run(out)["requests"] == out["requests"]


def test_echoed_uploads_are_compared_byte_for_byte(h3bench, server, certs):
    code, out, text = run(h3bench, server, certs.ca, *SHORT, "-method", "POST", "-body-size", "100000",
                          "-expect-echo", "-expect-type", "application/octet-stream", path="/echo")
    assert code == 0 and out["ok"], text
    assert out["requests"] > 0 and out["bytes_read"] == out["bytes_sent"] == 100000 * out["requests"]


def test_wrong_answers_are_errors_not_requests(h3bench, server, certs):
    code, out, _ = run(h3bench, server, certs.ca, *SHORT, "-expect-body=Goodbye")
    assert code == 0 and not out["ok"]
    assert out["requests"] == 0 and out["errors"]["body"] > 0 and out["status"]["2xx"] == out["errors"]["body"]
    assert "body of 13 bytes" in out["first_error"]
    code, out, _ = run(h3bench, server, certs.ca, *SHORT, "-expect-type", "application/json")
    assert out["requests"] == 0 and out["errors"]["header"] > 0
    code, out, _ = run(h3bench, server, certs.ca, *SHORT, path="/no-such-route")
    assert out["requests"] == 0 and out["errors"]["status"] > 0 and out["status"]["4xx"] > 0


def test_an_untrusted_certificate_fails_the_handshakes(h3bench, server, tmp_path):
    other = tls.generate(tmp_path)  # a CA that did not sign the server's certificate
    code, out, _ = run(h3bench, server, other.ca, *SHORT)
    assert code == 1 and not out["ok"] and out["requests"] == 0
    assert out["errors"]["connect"] == 2 and "every QUIC connection failed" in out["reason"]


def test_bad_flags_are_refused_with_the_reason(h3bench, certs):
    p = subprocess.run([str(h3bench), "-url", "https://127.0.0.1:1/", "-ca", str(certs.ca), "-check"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "h3load -check is the correctness gate" in h3load.parse_output(p.stdout,
                                                                                                "h3bench")["reason"]
    p = subprocess.run([str(h3bench), "-url", "http://127.0.0.1:1/", "-ca", str(certs.ca)], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2 and "https://host:port/path" in p.stdout
    assert "ngtcp2 " in subprocess.run([str(h3bench), "-version"], capture_output=True, text=True).stdout


def test_build_is_incremental(h3bench):
    before = h3bench.stat().st_mtime
    assert h3load.build_h3bench(log=pytest.fail, binary=h3bench) == h3bench and h3bench.stat().st_mtime == before


@pytest.mark.skipif(not shutil.which("c++") and not shutil.which("g++"), reason="no C++ compiler")
def test_a_compile_error_names_the_packages(tmp_path, monkeypatch):
    bad = tmp_path / "h3bench.cpp"
    bad.write_text("int main() { return missing; }\n")
    monkeypatch.setattr(h3load, "H3BENCH_SRC", bad)
    with pytest.raises(h3load.H3loadError, match="libngtcp2-dev"):
        h3load.build_h3bench(log=lambda _: None, binary=tmp_path / "bin" / "h3bench")
