"""bench/jwt_bench.py runs end to end (tiny budget): every algorithm measured for both libraries, the same claims."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_jwt_bench_measures_every_algorithm() -> None:
    probe = subprocess.run([sys.executable, "-c", "import jwt, cryptography, covet._native as n; n.JwtVerifier"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"needs PyJWT, cryptography and the compiled engine: {probe.stderr.strip()[-200:]}")
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "jwt_bench.py"), "--seconds", "0.02", "--rounds", "1",
                          "--json"], capture_output=True, text=True, timeout=120, check=True)
    rows = {row["alg"]: row for row in json.loads(out.stdout)}
    assert set(rows) == {"RS256", "ES256", "HS256"}
    for row in rows.values():
        assert row["native"] > 0 and row["pyjwt"] > 0 and row["native_repeat"] > 0
