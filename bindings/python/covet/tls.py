"""TLS, HTTP/2 and HTTP/3 settings of a server: uvicorn's ``ssl_*`` option names, plus ``http2`` and ``http3``.

``app.run(ssl_certfile=..., ssl_keyfile=...)`` and ``covet run --ssl-certfile ... --ssl-keyfile ...`` serve
HTTPS; ALPN then picks HTTP/2 or HTTP/1.1 for each connection. Plain-text ports speak HTTP/2 too (h2c, by
prior knowledge or ``Upgrade: h2c``) unless ``http2=False``. ``http3=True`` (HTTPS only) also serves HTTP/3 over
QUIC on the same port number (UDP), with the same certificates, and advertises it with ``Alt-Svc``.
``ssl_ca_certs`` turns on client-certificate verification (mTLS): required unless ``ssl_cert_reqs`` says otherwise.
SIGHUP reloads the certificate files.

Behind a proxy: ``proxy_headers`` (on by default, as uvicorn) lets the peers listed in ``forwarded_allow_ips``
(default: the ``FORWARDED_ALLOW_IPS`` environment variable, else ``127.0.0.1``; IP addresses, CIDR networks, or
``*``) set the request's scheme (``X-Forwarded-Proto``) and client address (``X-Forwarded-For``). The engine
decides whether a connection's peer is trusted once, when it is accepted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any, Optional, Union

__all__ = ["TransportOptions"]

# ssl.CERT_NONE/CERT_OPTIONAL/CERT_REQUIRED are 0/1/2 (not importing ssl keeps start-up fast).
_CERT_REQS = {0: "none", 1: "optional", 2: "required", "none": "none", "optional": "optional", "required": "required"}


@dataclass(frozen=True)
class TransportOptions:
    ssl_certfile: Optional[str] = None
    ssl_keyfile: Optional[str] = None
    ssl_ca_certs: Optional[str] = None
    # ssl.CERT_NONE / CERT_OPTIONAL / CERT_REQUIRED, or "none" / "optional" / "required". Unset: required
    # when ssl_ca_certs is given, else none.
    ssl_cert_reqs: Union[int, str, None] = None
    ssl_ciphers: str = ""
    http2: bool = True
    http3: bool = False  # HTTP/3 over QUIC on the TLS port's number (UDP); needs ssl_certfile
    # X-Forwarded-Proto / X-Forwarded-For from the trusted peers (uvicorn's --proxy-headers, --forwarded-allow-ips).
    proxy_headers: bool = True
    forwarded_allow_ips: Optional[str] = None  # None: $FORWARDED_ALLOW_IPS, else "127.0.0.1"
    # PROXY protocol v1/v2 from these load balancers (addresses and networks, comma-separated): a connection from
    # one must start with a PROXY header, whose client becomes the peer. None or "": off.
    proxy_protocol: Optional[str] = None
    # `covet run`'s master's UDP sockets for this worker process, routed by connection ID between the processes
    # (covet.server.quic_group): one per engine thread, the group index of the first, the IDs' tag. Empty: the
    # engine binds its own.
    http3_sockets: tuple[int, ...] = ()
    http3_cid_base: int = 0
    http3_cid_tag: int = 0

    @classmethod
    def split(cls, options: dict[str, Any]) -> tuple[TransportOptions, dict[str, Any]]:
        """(these options, the remaining ones) from keyword arguments such as ``app.run``'s."""
        names = {f.name for f in fields(cls)}
        mine = {k: v for k, v in options.items() if k in names}
        rest = {k: v for k, v in options.items() if k not in names}
        return cls(**mine), rest

    @property
    def tls(self) -> bool:
        return self.ssl_certfile is not None

    def trusted_proxies(self) -> str:
        """The peers whose proxy headers count: `forwarded_allow_ips`, else ``$FORWARDED_ALLOW_IPS``, else
        ``127.0.0.1`` (uvicorn's order)."""
        if self.forwarded_allow_ips is not None:
            return self.forwarded_allow_ips
        return os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

    def client_auth(self) -> str:
        if self.ssl_cert_reqs is None:
            return "required" if self.ssl_ca_certs else "none"
        try:
            return _CERT_REQS[self.ssl_cert_reqs]
        except (KeyError, TypeError):
            raise ValueError(f"ssl_cert_reqs must be ssl.CERT_NONE, CERT_OPTIONAL or CERT_REQUIRED (or 'none', "
                             f"'optional', 'required'), not {self.ssl_cert_reqs!r}") from None

    def validate(self) -> None:
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("TLS needs both ssl_certfile and ssl_keyfile (--ssl-certfile and --ssl-keyfile)")
        if self.ssl_ca_certs and not self.tls:
            raise ValueError("ssl_ca_certs (client certificates) needs ssl_certfile and ssl_keyfile")
        if self.http3 and not self.tls:
            raise ValueError("HTTP/3 needs TLS: give ssl_certfile and ssl_keyfile (--ssl-certfile, --ssl-keyfile) "
                             "with http3=True (--http3); QUIC always encrypts")
        if self.client_auth() != "none" and not self.ssl_ca_certs:
            raise ValueError("verifying client certificates needs ssl_ca_certs, the CA bundle they must chain to")

    def apply(self, server: Any) -> None:
        """Configure a native server before it starts (the certificate files are loaded and checked now)."""
        self.validate()
        if hasattr(server, "http2"):
            server.http2 = self.http2
        if self.http3:
            if not hasattr(server, "http3"):
                raise ValueError("this covet._native has no HTTP/3: rebuild it from this source tree (pip install .)")
            server.http3 = True
            if self.http3_sockets:
                server.adopt_http3_sockets(list(self.http3_sockets), self.http3_cid_base, self.http3_cid_tag)
        if hasattr(server, "configure_proxy_headers"):
            source = ("forwarded_allow_ips" if self.forwarded_allow_ips is not None
                      else "FORWARDED_ALLOW_IPS (environment)" if "FORWARDED_ALLOW_IPS" in os.environ else "")
            try:
                server.configure_proxy_headers(self.proxy_headers, self.trusted_proxies())
            except ValueError as e:  # the engine names the entry; say where it came from
                raise ValueError(f"{e} (from {source})" if source else str(e)) from None
        if self.proxy_protocol:
            try:
                server.configure_proxy_protocol(self.proxy_protocol)
            except ValueError as e:
                raise ValueError(f"proxy_protocol: {str(e).removeprefix('forwarded_allow_ips: ')}") from None
        if self.tls:
            server.configure_tls(self.ssl_certfile, self.ssl_keyfile, ca_certs=self.ssl_ca_certs or "",
                                 client_auth=self.client_auth(), ciphers=self.ssl_ciphers)

    def cli_args(self) -> list[str]:
        """The ``covet _worker`` flags that carry these options to a worker process."""
        out: list[str] = []
        for flag, value in (("--ssl-certfile", self.ssl_certfile), ("--ssl-keyfile", self.ssl_keyfile),
                            ("--ssl-ca-certs", self.ssl_ca_certs)):
            if value:
                out += [flag, value]
        if self.ssl_cert_reqs is not None:
            out += ["--ssl-cert-reqs", self.client_auth()]
        if self.ssl_ciphers:
            out += ["--ssl-ciphers", self.ssl_ciphers]
        out.append("--http2" if self.http2 else "--no-http2")
        if self.http3:
            out.append("--http3")
        out.append("--proxy-headers" if self.proxy_headers else "--no-proxy-headers")
        if self.forwarded_allow_ips is not None:
            out += ["--forwarded-allow-ips", self.forwarded_allow_ips]
        if self.proxy_protocol:
            out += ["--proxy-protocol", self.proxy_protocol]
        return out
