"""TLS material of a matrix run: a throw-away CA and a server certificate made with the openssl CLI.

Generated once per run into the run's temp directory and passed to every server started for a TLS scenario
(nginx through bench/peers/nginx/nginx-tls.conf.template, the others through their certificate/key flags).
The server key is ECDSA P-256 in PKCS#8 (Granian accepts PKCS#8 only); the certificate names
``localhost`` and ``127.0.0.1`` (subjectAltName), so clients that verify (curl, Python ssl) can use
``https://127.0.0.1:PORT`` with ``--cacert ca.pem``.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

KEY_TYPE = "ECDSA P-256 (prime256v1)"
CURVE = "prime256v1"
DAYS = 2


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # CA certificate (PEM): what clients trust
    cert: Path  # server certificate (PEM, leaf only)
    key: Path  # server private key (PEM, PKCS#8)
    key_type: str = KEY_TYPE

    def describe(self) -> dict[str, str]:
        return {"key_type": self.key_type, "certificate": f"leaf signed by the run's CA, valid {DAYS} days, "
                "subjectAltName DNS:localhost, IP:127.0.0.1", "openssl": openssl_version()}


def openssl_version() -> str:
    if not shutil.which("openssl"):
        return "missing"
    p = subprocess.run(["openssl", "version"], capture_output=True, text=True)
    return p.stdout.strip().split(" (")[0]  # "OpenSSL 3.0.19 27 Jan 2026"


def _openssl(args: list[str], cwd: Path) -> None:
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {(p.stderr or p.stdout).strip()[-300:]}")


def generate(directory: Path) -> TlsFiles:
    """CA key + self-signed CA certificate, server key + certificate signed by it, in ``directory``."""
    if not shutil.which("openssl"):
        raise RuntimeError("openssl CLI not installed (apt-get install openssl)")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-algorithm", "EC", "-pkeyopt", f"ec_paramgen_curve:{CURVE}"]
    _openssl(["genpkey", *ec, "-out", "ca.key"], d)
    _openssl(["req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", str(DAYS),
              "-subj", "/CN=CovetPy bench throw-away CA", "-out", "ca.pem",
              "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    _openssl(["genpkey", *ec, "-out", "server.key"], d)  # genpkey writes PKCS#8
    _openssl(["req", "-new", "-key", "server.key", "-subj", "/CN=localhost", "-out", "server.csr"], d)
    (d / "server.ext").write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
    )
    _openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
              "-sha256", "-days", str(DAYS), "-extfile", "server.ext", "-out", "server.pem"], d)
    (d / "server.key").chmod(0o600)
    (d / "ca.key").chmod(0o600)
    return TlsFiles(ca=d / "ca.pem", cert=d / "server.pem", key=d / "server.key")


def client_context(files: TlsFiles, alpn: list[str] | None = None) -> ssl.SSLContext:
    """A verifying client context that trusts only the run's CA (TLS 1.2+), offering ``alpn``."""
    ctx = ssl.create_default_context(cafile=str(files.ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx
