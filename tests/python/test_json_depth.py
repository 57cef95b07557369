"""Malformed and deeply nested JSON bodies get FastAPI's answers, never a 500 or a logged traceback.

FastAPI (measured with 0.165 / Starlette 1.10 on Python 3.11) parses bodies with the stdlib ``json``:
malformed JSON answers 422 ``json_invalid`` with the decoder's message and position, and a parser failure of
another kind (a `RecursionError` for nesting near 1000 levels, a ``UnicodeDecodeError``) answers
400 ``{"detail": "There was an error parsing the body"}``. CovetPy parses with orjson up to its limit of
1024 levels (FastAPI's stdlib parser gives up a little earlier) and answers the same beyond it, whatever
the depth, through the test client and through the compiled engine over real sockets.
"""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Iterator
from typing import Any

import fake_native
import pytest
from pydantic import BaseModel

from covet import Body, CovetPy, Depends, Request, WebSocket
from covet import encoders
from covet._json_fallback import JSONNestingError
from covet.serve import ThreadedWorker

PARSE_ERROR = {"detail": "There was an error parsing the body"}
BODY_LIMIT = 64 << 20  # room for 10,000,000 levels of objects (50 MB)
DEPTHS = [1000, 1025, 100_000, 10_000_000]


JSON = {"content-type": "application/json"}  # a JSON body needs its Content-Type (strict_content_type)


def nested(kind: str, depth: int, closed: bool = True) -> bytes:
    """`depth` arrays (``[[[]]]``) or objects (``{"":{"":1}}``) inside each other."""
    if kind == "array":
        return b"[" * depth + (b"]" * depth if closed else b"")
    return b'{"":' * depth + b"1" + (b"}" * depth if closed else b"")


class Item(BaseModel):
    data: Any = None


def _app() -> CovetPy:
    app = CovetPy()

    @app.post("/model")
    async def model(item: Item) -> dict[str, Any]:
        return {"data": item.data is not None}

    @app.post("/any")
    async def any_body(payload: Any = Body()) -> Any:
        return payload  # echoed: the response is as deep as the request

    @app.post("/dict")
    async def dict_body(payload: dict) -> int:  # type: ignore[type-arg]
        return len(payload)

    @app.post("/embed")
    async def embed(a: Any = Body(), b: int = Body(0)) -> dict[str, int]:
        return {"b": b}

    def item_dependency(item: Item) -> Item:
        return item

    @app.post("/dep")
    async def with_dependency(item: Item = Depends(item_dependency)) -> bool:
        return True

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, Any]:
        try:
            value = await request.json()
        except json.JSONDecodeError as exc:
            return {"error": type(exc).__name__, "msg": exc.msg, "pos": exc.pos}
        return {"type": type(value).__name__}

    @app.get("/ok")
    async def ok() -> str:
        return "ok"

    return app


@pytest.fixture
def client(make_client):  # type: ignore[no-untyped-def]
    return make_client(_app(), max_body_bytes=BODY_LIMIT)


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logged = [rec for rec in caplog.records if rec.exc_info or rec.levelno >= logging.ERROR]
    assert not logged, f"a client error was logged: {logged[0].getMessage()}"


class TestDeepBodies:
    @pytest.mark.parametrize("kind", ["array", "object"])
    @pytest.mark.parametrize("depth", DEPTHS)
    def test_body_parameters(self, client, caplog, kind: str, depth: int) -> None:  # type: ignore[no-untyped-def]
        body = nested(kind, depth)
        headers = {"content-type": "application/json"}
        with caplog.at_level(logging.WARNING, logger="covet"):
            for path in ("/model", "/any", "/dict", "/embed", "/dep"):
                r = client.post(path, content=body, headers=headers)
                if depth <= 1024:  # parsed; then validated like any other value
                    rejected = path == "/embed" or (kind == "array" and path != "/any")  # no field "a" / not a dict
                    expected = 422 if rejected else 200
                    assert r.status_code == expected, (path, r.text[:200])
                else:
                    assert (r.status_code, r.json()) == (400, PARSE_ERROR), path
            assert client.get("/ok").json() == "ok"
        _no_tracebacks(caplog)

    @pytest.mark.parametrize("kind", ["array", "object"])
    def test_a_deep_body_that_parses_is_echoed_and_reported_whole(self, client, kind: str) -> None:  # type: ignore[no-untyped-def]
        body = nested(kind, 1000)
        r = client.post("/any", content=body, headers={"content-type": "application/json"})
        assert (r.status_code, r.content) == (200, body)  # deeper than orjson/pydantic-core serialise
        if kind == "array":
            r = client.post("/model", content=body, headers=JSON)
            assert r.status_code == 422
            (error,) = encoders.loads(r.content)["detail"]  # too deep for the stdlib's r.json()
            assert error["loc"] == ["body"] and encoders.dumps(error["input"]) == body

    @pytest.mark.parametrize("kind", ["array", "object"])
    @pytest.mark.parametrize("depth", [1000, 100_000])
    def test_unclosed_deep_bodies_are_400(self, client, caplog, kind: str, depth: int) -> None:  # type: ignore[no-untyped-def]
        with caplog.at_level(logging.WARNING, logger="covet"):
            r = client.post("/model", content=nested(kind, depth, closed=False), headers=JSON)
        assert (r.status_code, r.json()) == (400, PARSE_ERROR)
        _no_tracebacks(caplog)

    @pytest.mark.parametrize("depth", DEPTHS)
    def test_request_json_raises_a_json_decode_error(self, client, depth: int) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/raw", content=nested("array", depth))
        if depth <= 1024:
            assert r.json() == {"type": "list"}
        else:
            assert r.json()["error"] == "JSONNestingError"
            assert "JSON nested too deeply" in r.json()["msg"]


class TestMalformedBodies:
    @pytest.mark.parametrize(("body", "pos", "message"), [
        (b'{"data":', 8, "Expecting value"),
        (b"[1,2", 4, "Expecting ',' delimiter"),
        (b"nope", 0, "Expecting value"),
        (b'{"data": 1}x', 11, "Extra data"),
        (b" ", 1, "Expecting value"),
        (b"[" * 500, 500, "Expecting value"),
    ])
    def test_422_json_invalid_like_fastapi(self, client, caplog, body: bytes, pos: int, message: str) -> None:  # type: ignore[no-untyped-def]
        expected = {"detail": [{"type": "json_invalid", "loc": ["body", pos], "msg": "JSON decode error", "input": {},
                                "ctx": {"error": message}}]}
        with caplog.at_level(logging.WARNING, logger="covet"):
            for path in ("/model", "/any", "/embed", "/dep"):
                r = client.post(path, content=body, headers={"content-type": "application/json"})
                assert (r.status_code, r.json()) == (422, expected), path
        _no_tracebacks(caplog)
        r = client.post("/raw", content=body)
        assert r.json() == {"error": "JSONDecodeError", "msg": message, "pos": pos}

    def test_bytes_that_are_not_text_are_400(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/model", content=b'{"data": "\xff"}', headers={"content-type": "application/json"})
        assert (r.status_code, r.json()) == (400, PARSE_ERROR)

    @pytest.mark.parametrize(("body", "value"), [
        ("\ufeff{\"data\": 1}".encode(), {"data": 1}),           # UTF-8 BOM
        ('{"data": 1}'.encode("utf-16"), {"data": 1}),            # UTF-16 with BOM
        (b'{"data": NaN}', {"data": None}),                        # NaN parses (and is written as null)
        (b'[1e99999]', [None]),                                    # so does an infinite number
        (b'{"data": "\\ud800"}', {"data": "\ud800"}),              # and a lone surrogate
    ])
    def test_what_the_stdlib_accepts_is_accepted(self, client, body: bytes, value: Any) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/any", content=body, headers={"content-type": "application/json"})
        assert (r.status_code, r.json()) == (200, value)


@pytest.fixture(params=[0, 1], ids=["embedded", "io-thread"])
def server(native: Any, request: pytest.FixtureRequest) -> Iterator[ThreadedWorker]:
    if native.__name__ != "covet._native":
        pytest.skip("real sockets against the compiled engine")
    worker = ThreadedWorker(_app(), threads=request.param, max_body_bytes=BODY_LIMIT).start()
    try:
        yield worker
    finally:
        worker.stop()


def _post(port: int, path: str, body: bytes) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("kind", ["array", "object"])
def test_real_sockets_both_engine_placements(server: ThreadedWorker, caplog: pytest.LogCaptureFixture, kind: str) -> None:
    with caplog.at_level(logging.WARNING, logger="covet"):
        for depth in DEPTHS:
            for closed in (True, False):
                status, content = _post(server.port, "/model", nested(kind, depth, closed))
                if depth <= 1024 and closed:
                    assert status == (422 if kind == "array" else 200)
                else:
                    assert (status, json.loads(content)) == (400, PARSE_ERROR), (depth, closed)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/ok")
        assert conn.getresponse().read() == b'"ok"'
        conn.close()
    _no_tracebacks(caplog)


def test_websocket_receive_json_deep_and_malformed(native: Any) -> None:
    if native is fake_native:  # the stand-in has no WebSockets
        pytest.skip("WebSockets need the compiled engine")
    from covet.testing import TestClient

    app = CovetPy()

    @app.websocket("/ws", max_size=1 << 20)
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            try:
                value = await websocket.receive_json()
            except json.JSONDecodeError as exc:
                await websocket.send_text(f"{type(exc).__name__}: {exc.msg}")
                continue
            if value == "echo-deep":
                await websocket.send_text("[" * 5000 + "]" * 5000)
            else:
                await websocket.send_json(value)

    with TestClient(app) as client, client.websocket_connect("/ws") as session:
        session.send_text("[" * 100_000 + "]" * 100_000)
        assert session.receive_text().startswith("JSONNestingError: JSON nested too deeply")
        session.send_text("{nope")
        assert session.receive_text() == "JSONDecodeError: Expecting property name enclosed in double quotes"
        session.send_text("[" * 1000 + "]" * 1000)
        assert session.receive_text() == "[" * 1000 + "]" * 1000  # sent back through the deep encoder
        session.send_json("echo-deep")
        with pytest.raises(JSONNestingError):  # the test client's receive_json: no RecursionError either
            session.receive_json()


class TestEncoders:
    def test_loads(self) -> None:
        assert encoders.loads(b'{"a": [1, 2]}') == {"a": [1, 2]}
        assert encoders.loads(nested("array", 1024))  # orjson's limit
        for depth in (1025, 10_000_000):
            with pytest.raises(JSONNestingError) as raised:
                encoders.loads(nested("array", depth))
            assert isinstance(raised.value, json.JSONDecodeError) and raised.value.pos == 1025  # where orjson stopped
            assert raised.value.lineno == 1 and raised.value.colno == 1026
        with pytest.raises(json.JSONDecodeError, match="Expecting value: line 1 column 2"):
            encoders.loads(" ")
        with pytest.raises(JSONNestingError):
            encoders.loads(nested("object", 2000, closed=False))  # refused by orjson, too deep for the stdlib

    def test_nesting_error_pickles(self) -> None:
        import pickle

        error = JSONNestingError(b"[[[", 2)
        again = pickle.loads(pickle.dumps(error))
        assert (type(again), again.pos, again.doc, str(again)) == (JSONNestingError, 2, b"[[[", str(error))

    def test_dumps_and_jsonable_have_no_depth_limit(self) -> None:
        value: Any = {"leaf": 1}
        for _ in range(100_000):
            value = [value]
        expected = b"[" * 100_000 + b'{"leaf":1}' + b"]" * 100_000
        assert encoders.dumps(value) == expected
        assert encoders.dumps(encoders.jsonable(value)) == expected

    def test_circular_references_raise_value_error(self) -> None:
        loop: list[Any] = []
        loop.append({"again": loop})
        with pytest.raises(ValueError, match="Circular reference"):
            encoders.jsonable(loop)
        with pytest.raises(ValueError):
            encoders.dumps(loop)
        shared = {"x": [1]}
        assert encoders.dumps([shared, shared]) == b'[{"x":[1]},{"x":[1]}]'  # shared is not circular
