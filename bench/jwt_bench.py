"""JWT verifications per second per core: CovetPy's native verifier vs PyJWT with `cryptography` (issue 17).

For RS256 (2048-bit), ES256 (P-256) and HS256, the same token is verified in one thread, the two libraries
alternating in rounds, and each is charged the CPU time of that thread (time.thread_time: the machine is
shared, wall time is not trusted). Both do the full job a request needs: header, signature, exp/iss/aud checks
and the claims as a dict. CovetPy: ``JwtVerifier.verify`` (native, GIL released; the claims dict built natively),
as ``covet.security.jwt`` calls it; PyJWT: ``jwt.decode`` with the key already loaded as a `cryptography` object
(its fastest use) and, as a second row, with the key given as PEM text/bytes (what most apps pass, parsed
on every call). A last column gives the same token verified again by a verifier with its cache of verified
tokens on (the default of covet.security.jwt: the signature is not checked again, the claims are), which is
what a client sending its token with every request costs; the main columns have the cache off.

    .venv/bin/python bench/jwt_bench.py --seconds 1 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from covet import _native

ISSUER = "https://issuer.bench"
AUD = "api"


def cpu_rate(fn: Callable[[], Any], seconds: float) -> float:
    """Calls of `fn` per CPU-second of this thread, over about `seconds` of CPU time."""
    calls = 0
    batch = 50
    start = time.thread_time()
    while True:
        for _ in range(batch):
            fn()
        calls += batch
        used = time.thread_time() - start
        if used >= seconds:
            return calls / used


def cases() -> list[tuple[str, str, Any, Any, Any]]:
    """(alg, token, native key set, PyJWT key object, PyJWT key as PEM/bytes)."""
    now = int(time.time())
    claims = {"sub": "user-1", "iss": ISSUER, "aud": AUD, "iat": now, "exp": now + 3600, "scope": "read write"}
    out = []
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    secret = b"k" * 32
    for alg, private, public in (("RS256", rsa_key, rsa_key.public_key()), ("ES256", ec_key, ec_key.public_key()),
                                 ("HS256", secret, secret)):
        token = jwt.encode(claims, private, algorithm=alg, headers={"kid": "k1"})
        keys = _native.JwtKeySet()
        if isinstance(public, bytes):
            keys.add_secret(public, [alg], "k1")
            pem: Any = public
        else:
            pem = public.public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo).decode()
            keys.add_pem(pem, [alg], "k1")
        out.append((alg, token, keys, public, pem))
    return out


def measure(alg: str, token: str, keys: Any, key_obj: Any, pem: Any, *, seconds: float,
            rounds: int) -> dict[str, Any]:
    """Median verifications per CPU-second of each contender, alternating in `rounds`."""
    verifier = _native.JwtVerifier(algorithms=[alg], issuer=ISSUER, audiences=[AUD], cache_entries=0)
    cached = _native.JwtVerifier(algorithms=[alg], issuer=ISSUER, audiences=[AUD])

    def native() -> Any:
        error, claims = verifier.verify(token, keys)
        assert error is None, claims
        return claims

    def native_repeat() -> Any:
        error, claims = cached.verify(token, keys)
        assert error is None, claims
        return claims

    def pyjwt_obj() -> Any:
        return jwt.decode(token, key_obj, algorithms=[alg], audience=AUD, issuer=ISSUER)

    def pyjwt_pem() -> Any:
        return jwt.decode(token, pem, algorithms=[alg], audience=AUD, issuer=ISSUER)

    assert native() == native_repeat() == pyjwt_obj() == pyjwt_pem()
    rates: dict[str, list[float]] = {"native": [], "native_repeat": [], "pyjwt": [], "pyjwt_pem": []}
    for _ in range(rounds):
        rates["native"].append(cpu_rate(native, seconds))
        rates["native_repeat"].append(cpu_rate(native_repeat, seconds))
        rates["pyjwt"].append(cpu_rate(pyjwt_obj, seconds))
        if alg != "HS256":  # for HS256 the "PEM" is the same bytes secret
            rates["pyjwt_pem"].append(cpu_rate(pyjwt_pem, seconds))
    row: dict[str, Any] = {name: statistics.median(v) for name, v in rates.items() if v}
    row["alg"] = alg
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="CPU seconds per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (median reported)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    results = [measure(*case, seconds=args.seconds, rounds=args.rounds) for case in cases()]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print("| alg | CovetPy native (verif./CPU-s) | PyJWT, key object | ratio | PyJWT, PEM key | ratio "
          "| CovetPy, repeated token (cache) | ratio to PyJWT |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in results:
        pem_rate = row.get("pyjwt_pem")
        pem_cells = f"{pem_rate:,.0f} | {row['native'] / pem_rate:.1f}x" if pem_rate else "— | —"
        print(f"| {row['alg']} | {row['native']:,.0f} | {row['pyjwt']:,.0f} | {row['native'] / row['pyjwt']:.1f}x "
              f"| {pem_cells} | {row['native_repeat']:,.0f} | {row['native_repeat'] / row['pyjwt']:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
