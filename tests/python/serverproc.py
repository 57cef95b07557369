"""Server processes for the tests that run one as a user would (a script, ``python -m covet run ...``): started,
their output read line by line in threads until they announce that they serve, asked what they logged since,
and stopped (SIGTERM, then SIGKILL).

    with ServerProcess([sys.executable, "-c", SCRIPT, "0"], env={"COVET_BACKEND": "asio"}) as server:
        http_get(server.port, "/")
        server.wait_for(r"request logged")
        assert server.stop() < 5  # seconds SIGTERM took; exit code 0 is asserted
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, NoReturn, Optional, Union

__all__ = ["CPP_GRPC_SERVER", "SERVING", "ServerProcess", "require_compiled_engine", "require_cpp_grpc_server",
           "self_signed_cert", "skip_or_fail"]

# What covet.serve logs once it serves: "serving on http://127.0.0.1:PORT (engine backend uring, ...)".
SERVING = re.compile(r"serving on https?://[^\s:]+:(?P<port>\d+)")


def require_compiled_engine(probe: str = "import covet._native", what: str = "covet's compiled engine") -> None:
    """Skip the calling test (module fixture) unless `sys.executable` runs `probe` (a Python line that needs the
    compiled engine); fail instead under COVET_REQUIRE_NATIVE. COVET_NATIVE=fake skips too: processes started by
    the tests always get the compiled engine."""
    import pytest

    if os.environ.get("COVET_NATIVE", "").strip() == "fake":
        pytest.skip("COVET_NATIVE=fake: these tests need the compiled engine")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        skip_or_fail(f"{sys.executable} has no {what}: {result.stderr.strip()[-300:]}")


def skip_or_fail(reason: str, require: str = "COVET_REQUIRE_NATIVE") -> NoReturn:
    """Skips the calling test for want of something it needs; fails it instead when the environment variable
    `require` is set (where everything must be there, as in CI)."""
    import pytest

    if os.environ.get(require):
        pytest.fail(reason)
    pytest.skip(reason)


def fastapi_reference_python() -> Path:
    """The interpreter of the pinned FastAPI reference venv (build/differential-venv, which tests/differential/venv.sh
    builds; DIFF_FASTAPI_PYTHON names another). Skips without it, or fails where COVET_REQUIRE_FASTAPI_VENV is set
    (the test command builds it first)."""
    python = Path(os.environ.get("DIFF_FASTAPI_PYTHON")
                  or Path(__file__).resolve().parents[2] / "build" / "differential-venv" / "bin" / "python")
    if not python.exists():
        skip_or_fail(f"no FastAPI reference venv at {python} (tests/differential/venv.sh builds it)",
                     "COVET_REQUIRE_FASTAPI_VENV")
    return python


# tests/grpc/interop_server.cpp (grpc.testing.TestService on covet::grpc), as CMake builds it; COVET_GRPC_INTEROP_SERVER
# names another build.
CPP_GRPC_SERVER = Path(os.environ.get("COVET_GRPC_INTEROP_SERVER")
                       or Path(__file__).resolve().parents[2] / "build" / "tests" / "grpc_interop_server")


def require_cpp_grpc_server() -> Path:
    """The C++ gRPC interop server's path; skips the calling test without it (fails under COVET_REQUIRE_NATIVE)."""
    if not os.access(CPP_GRPC_SERVER, os.X_OK):
        skip_or_fail(f"the C++ interop server is not built at {CPP_GRPC_SERVER} (CMake builds it with "
                     "libprotobuf-dev, protobuf-compiler and Go; or set COVET_GRPC_INTEROP_SERVER)")
    return CPP_GRPC_SERVER


def self_signed_cert(directory: Path, san: Optional[str] = None) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for CN=localhost, valid for two days, with subjectAltName `san` (e.g.
    "IP:127.0.0.1", "DNS:localhost") when given: (cert.pem, key.pem) in `directory`. Skips the calling test
    without the openssl command."""
    import pytest

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    extension = ["-addext", f"subjectAltName={san}"] if san else []
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=localhost", *extension, "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


class ServerProcess:
    """`command` in its own session, its stdout and stderr read into `stdout`, `stderr` and `lines` (both, in
    the order read). The constructor returns once a line matches `ready` (`match`; `port` is its ``port``
    group or first group, when it has one), and raises AssertionError with the output if none does within
    `timeout` seconds or the process exits first. (60 s: an AddressSanitizer build of 200 MB starts in well under a
    second, but CI saw one take over 30 s on a machine whose page cache had just been dropped.)"""

    def __init__(self, command: Sequence[str], *, ready: Union[str, re.Pattern[str]] = SERVING,
                 env: Optional[dict[str, str]] = None, cwd: Optional[Union[str, Path]] = None,
                 timeout: float = 60.0) -> None:
        self.command = list(command)
        self.proc = subprocess.Popen(self.command, cwd=cwd, env={**os.environ, **(env or {})}, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._pumps = [threading.Thread(target=self._pump, args=(stream, sink), daemon=True)
                       for stream, sink in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr))]
        for pump in self._pumps:
            pump.start()
        try:
            self.match = self.wait_for(ready, timeout=timeout)
        except AssertionError:
            self.kill()
            raise
        groups = self.match.groupdict()
        port = groups.get("port") or (self.match.group(1) if self.match.re.groups else None)
        self.port = int(port) if port else 0

    def _pump(self, stream: Optional[IO[str]], sink: list[str]) -> None:
        assert stream is not None
        for line in stream:
            with self._changed:
                sink.append(line)
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def output(self, last: Optional[int] = None) -> str:
        """What the process wrote (stdout and stderr), or its `last` lines."""
        with self._changed:
            return "".join(self.lines if last is None else self.lines[-last:])

    def wait_for(self, pattern: Union[str, re.Pattern[str]], count: int = 1, timeout: float = 30.0) -> re.Match[str]:
        """The `count`-th match of `pattern` in the output (searched line by line), waiting for it up to `timeout`
        seconds while the process runs."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for m in map(regex.search, self.lines) if m]
                if len(found) >= count:
                    return found[count - 1]
                exited = self.proc.poll() is not None and not any(p.is_alive() for p in self._pumps)
                left = deadline - time.monotonic()
                if exited or left <= 0:
                    why = f"exited with code {self.proc.returncode}" if exited else f"not within {timeout} s"
                    raise AssertionError(f"{regex.pattern!r} x{count} not logged by {self.command[:4]} ({why}); "
                                         f"output:\n{''.join(self.lines[-40:])}")
                self._changed.wait(min(left, 0.1))

    def memory(self, field: str) -> int:
        """A memory field of the process's /proc/<pid>/status (VmRSS, VmHWM, RssAnon ...), in bytes."""
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
        assert match, text
        return int(match.group(1)) * 1024

    def fell_back_to_epoll(self) -> bool:
        """Whether the engine logged that io_uring is not available here and it runs on epoll instead."""
        return any("falls back" in line or "fall back" in line for line in self.output().splitlines())

    def wait_exit(self, timeout: float = 15.0) -> int:
        """Waits for the process to exit and for its output to be read to its end (the reader threads lag behind the
        exit: `stdout` read right after `proc.wait()` may miss the last lines): its exit code."""
        rc = self.proc.wait(timeout)
        for pump in self._pumps:
            pump.join(2)
        return rc

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0, expect: Optional[int] = 0) -> float:
        """Sends `sig` and waits for the exit: the seconds it took. The exit code must be `expect` (None: any);
        a process still running after `timeout` seconds is killed and fails the test."""
        start = time.monotonic()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.command[:4]} ignored signal {sig} for {timeout} s:\n"
                                 f"{self.output(40)}") from None
        took = time.monotonic() - start
        for pump in self._pumps:
            pump.join(2)
        if expect is not None:
            assert rc == expect, f"exit code {rc} after signal {sig}:\n{self.output(40)}"
        return took

    def kill(self) -> None:
        """SIGKILL to the process and everything it started (its session), if it still runs."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def get(port: int, path: str, timeout: float = 10) -> tuple[int, str]:
    """GET `path` from a server on loopback `port` over a new connection: (status, body as text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> list[int]:
    """The pids whose parent is `pid` (from /proc/<pid>/stat), sorted."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat[stat.rindex(b")") + 2:].split()[1]) == pid:
                found.append(int(entry))
    return sorted(found)


def listening_inodes(port: int) -> set[str]:
    """Inodes of the sockets listening on 127.0.0.1:`port` (/proc/net/tcp: state 0A is LISTEN)."""
    found = set()
    with open("/proc/net/tcp") as f:
        for row in f.readlines()[1:]:
            fields = row.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":
                found.add(fields[9])
    return found


def socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets process `pid` holds open (its /proc/<pid>/fd links)."""
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found


SERVICES_ENV = Path(__file__).resolve().parents[2] / "build" / "services.env"


def service_setting(name: str) -> Optional[str]:
    """A test service's setting (e.g. COVET_TEST_REDIS_URL): the environment's, else the line `scripts/services.sh
    start` wrote to build/services.env; None when neither has it."""
    value = os.environ.get(name)
    if not value and SERVICES_ENV.is_file():
        for line in SERVICES_ENV.read_text().splitlines():
            key, _, found = line.partition("=")
            if key.strip() == name:
                value = found.strip()
    return value or None


def sample(text: str, name: str, **labels: str) -> float:
    """The value of `name` in a Prometheus text exposition, summed over every series whose labels include `labels`
    (0.0 when none does)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")):
            head, _, value = line.rpartition(" ")
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                total += float(value)
    return total
