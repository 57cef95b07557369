"""The differential test: every case of cases.py sent to its sample app under FastAPI and under CovetPy; the
status, the body (JSON compared parsed, keys sorted) and the headers in COMPARED_HEADERS must be the same.

Run by tests/differential/run.sh (which creates the pinned FastAPI venv). The known differences are listed in
known_differences.py and run as strict xfails.
"""

from __future__ import annotations

import gzip
import http.client
import json
from dataclasses import dataclass
from typing import Any

import pytest
from cases import CASES, REASON_CASES, Case
from conftest import Server
from known_differences import KNOWN_DIFFERENCES

# Headers whose values must match; every `x-*` and `access-control-*` header too. Not compared: server, date,
# content-length (framing), connection, transfer-encoding.
COMPARED_HEADERS = ("content-type", "location", "set-cookie", "allow", "www-authenticate", "vary",
                    "content-encoding", "etag", "last-modified", "accept-ranges", "content-range")  # last 4: static
COMPARED_PREFIXES = ("x-", "access-control-")
HOST = "testserver"
CELL = 160  # characters of a long value shown in the table, around the first difference


@dataclass
class Answer:
    status: int
    reason: str
    headers: dict[str, list[str]]
    body: bytes

    def decoded_body(self) -> bytes:
        """The body with its gzip Content-Encoding undone (compressors may differ byte for byte, not in content)."""
        if self.headers.get("content-encoding", [""])[0] == "gzip" and self.body:
            try:
                return gzip.decompress(self.body)
            except (OSError, EOFError) as exc:
                return f"(not valid gzip: {exc}) ".encode() + self.body
        return self.body

    def normalized_body(self) -> Any:
        content_type = self.headers.get("content-type", [""])[0]
        body = self.decoded_body()
        if "json" in content_type and body:
            try:
                return json.dumps(json.loads(body), sort_keys=True, ensure_ascii=False)
            except ValueError:
                pass
        try:
            return body.decode()
        except UnicodeDecodeError:
            return repr(body)

    def compared_headers(self) -> dict[str, list[str]]:
        return {name: values for name, values in sorted(self.headers.items())
                if name in COMPARED_HEADERS or name.startswith(COMPARED_PREFIXES)}


def send(server: Server, c: Case) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        # One Host for both servers (they listen on different ports), so that URLs built from it compare equal.
        conn.putrequest(c.method, c.target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", HOST)
        for name, value in c.headers:
            conn.putheader(name, value)
        if c.body or c.method in ("POST", "PUT", "PATCH"):
            conn.putheader("Content-Length", str(len(c.body)))
        conn.endheaders(c.body or None)
        response = conn.getresponse()
        body = response.read()
        headers: dict[str, list[str]] = {}
        for name, value in response.getheaders():
            headers.setdefault(name.lower(), []).append(value)
        return Answer(response.status, response.reason, headers, body)
    finally:
        conn.close()


# The one deliberate difference in schemas: an app that sets no title is "FastAPI" under FastAPI and "CovetPy" under
# CovetPy (the default of `CovetPy(title=)`). Only that pair of defaults is equated; any other title must match.
DEFAULT_TITLES = ("FastAPI", "CovetPy")


def _default_title_equated(reference: Answer, covet: Answer) -> Answer:
    """`covet` with its schema's default title replaced by FastAPI's, when both are their framework's default."""
    if "json" not in covet.headers.get("content-type", [""])[0]:
        return covet
    try:
        ref_json, cov_json = json.loads(reference.body), json.loads(covet.body)
    except ValueError:
        return covet
    ref_info = ref_json.get("info") if isinstance(ref_json, dict) and "openapi" in ref_json else None
    cov_info = cov_json.get("info") if isinstance(cov_json, dict) and "openapi" in cov_json else None
    if not isinstance(ref_info, dict) or not isinstance(cov_info, dict):
        return covet
    if (ref_info.get("title"), cov_info.get("title")) != DEFAULT_TITLES:
        return covet
    cov_info["title"] = DEFAULT_TITLES[0]
    return Answer(covet.status, covet.reason, covet.headers, json.dumps(cov_json).encode())


def differences(reference: Answer, covet: Answer) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    covet = _default_title_equated(reference, covet)
    if reference.status != covet.status:
        rows.append(("status", str(reference.status), str(covet.status)))
    ref_headers, cov_headers = reference.compared_headers(), covet.compared_headers()
    for name in sorted(set(ref_headers) | set(cov_headers)):
        if ref_headers.get(name) != cov_headers.get(name):
            rows.append((name, " | ".join(ref_headers.get(name, ["(absent)"])),
                         " | ".join(cov_headers.get(name, ["(absent)"]))))
    ref_body, cov_body = reference.normalized_body(), covet.normalized_body()
    if ref_body != cov_body:
        rows.append(("body", str(ref_body), str(cov_body)))
    return rows


def _clip(a: str, b: str) -> tuple[str, str]:
    """Both values cut to CELL characters around their first difference."""
    if len(a) <= CELL and len(b) <= CELL:
        return a, b
    first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    start = max(0, first - CELL // 4)

    def cut(s: str) -> str:
        return ("…" if start else "") + s[start:start + CELL] + ("…" if len(s) > start + CELL else "")

    return cut(a), cut(b)


def table(c: Case, rows: list[tuple[str, str, str]]) -> str:
    request = f"{c.method} {c.target}" + "".join(f"  [{k}: {v}]" for k, v in c.headers)
    if c.body:
        request += f"  body={c.body[:120]!r}"
    rows = [(what, *_clip(ref, cov)) for what, ref, cov in rows]
    width = max(len("what"), *(len(r[0]) for r in rows))
    col = max(len("FastAPI 0.165"), *(len(r[1]) for r in rows))
    lines = [f"{c.id} ({c.app}): {request}", f"  {'what':<{width}}  {'FastAPI 0.165':<{col}}  CovetPy",
             f"  {'-' * width}  {'-' * col}  {'-' * 20}"]
    lines += [f"  {what:<{width}}  {ref:<{col}}  {cov}" for what, ref, cov in rows]
    return "\n".join(lines)


CASES_BY_ID = {c.id: c for c in CASES}


def _param(ident: str, value: Any) -> Any:
    reason = KNOWN_DIFFERENCES.get(ident)
    marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
    return pytest.param(value, id=ident, marks=marks)


def _check_started(servers: dict[tuple[str, str], Server], app: str) -> None:
    for framework in ("fastapi", "covet"):
        error = servers[framework, app].error
        if error is not None:
            pytest.fail(error, pytrace=False)


def test_known_differences_name_real_cases() -> None:
    ids = set(CASES_BY_ID) | {f"reason/{status}" for status in REASON_CASES}
    unknown = sorted(set(KNOWN_DIFFERENCES) - ids)
    assert not unknown, f"known_differences.py lists cases that cases.py does not have: {unknown}"


@pytest.mark.parametrize("c", [_param(c.id, c) for c in CASES])
def test_same_answer(c: Case, servers: dict[tuple[str, str], Server]) -> None:
    _check_started(servers, c.app)
    reference = send(servers["fastapi", c.app], c)
    covet = send(servers["covet", c.app], c)
    rows = differences(reference, covet)
    assert not rows, "FastAPI and CovetPy answer differently:\n" + table(c, rows)


@pytest.mark.parametrize("status", [_param(f"reason/{status}", status) for status in REASON_CASES])
def test_reason_phrase(status: int, servers: dict[tuple[str, str], Server]) -> None:
    c = CASES_BY_ID[REASON_CASES[status]]
    _check_started(servers, c.app)
    reference = send(servers["fastapi", c.app], c)
    covet = send(servers["covet", c.app], c)
    assert reference.status == status, f"{c.id} no longer answers {status} under FastAPI: update REASON_CASES"
    assert (covet.status, covet.reason) == (status, reference.reason), (
        f"{c.id}: FastAPI answers '{status} {reference.reason}', CovetPy '{covet.status} {covet.reason}'")
