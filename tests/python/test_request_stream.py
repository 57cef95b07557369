"""``async for chunk in request.stream()``: Starlette's API and rules, over the body the engine received.

The expected results of `TestStarletteRules` were measured with Starlette 1.10 (FastAPI 0.165) and the same
handlers.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from covet import CovetPy, Request
from covet.requests import STREAM_CHUNK_SIZE, BufferedBody

KEPT: list[Request] = []  # requests a handler keeps beyond its response (as a background task would)


async def _attempt(awaitable: Any) -> list[Any]:
    try:
        value = await awaitable
    except Exception as exc:
        return [type(exc).__name__, str(exc)]
    return ["ok", len(value) if isinstance(value, (bytes, list)) else repr(value)]


async def _sizes(request: Request) -> list[int]:
    return [len(chunk) async for chunk in request.stream()]


def _app() -> CovetPy:
    app = CovetPy()

    @app.post("/digest")
    async def digest(request: Request) -> dict[str, Any]:
        sha = hashlib.sha256()
        sizes, types = [], set()
        async for chunk in request.stream():
            sha.update(chunk)
            sizes.append(len(chunk))
            types.add(type(chunk).__name__)
        return {"sha256": sha.hexdigest(), "sizes": sizes, "types": sorted(types)}

    @app.post("/scenario/{name}")
    async def scenario(name: str, request: Request) -> list[Any]:
        out: list[Any] = []
        if name == "stream-body":
            out += [await _sizes(request), await _attempt(request.body())]
        elif name == "body-stream":
            out += [await _attempt(request.body()), await _sizes(request)]
        elif name == "stream-stream":
            out += [await _sizes(request), await _attempt(_sizes(request))]
        elif name == "stream-json":
            out += [await _sizes(request), await _attempt(request.json())]
        elif name == "json-stream":
            out += [await _attempt(request.json()), await _sizes(request)]
        elif name == "stream-form":
            out += [await _sizes(request), await _attempt(request.form())]
        elif name == "break-body":
            async for _ in request.stream():
                break
            out += [await _attempt(request.body()), await _attempt(_sizes(request))]
        return out

    @app.post("/params-then-stream")
    async def params_then_stream(request: Request, payload: dict) -> list[int]:  # type: ignore[type-arg]
        return await _sizes(request)  # the body parameter read the body first: it comes whole

    @app.post("/keep/{how}")
    async def keep(how: str, request: Request) -> int:
        KEPT.append(request)  # still referenced after the response: the request is detached from the engine
        if how == "all":
            return sum(await _sizes(request))
        async for chunk in request.stream():
            return len(chunk)  # left part way
        return 0

    return app


@pytest.fixture
def client(make_client):  # type: ignore[no-untyped-def]
    return make_client(_app(), max_body_bytes=8 << 20)


class TestChunks:
    @pytest.mark.parametrize("size", [0, 1, STREAM_CHUNK_SIZE, STREAM_CHUNK_SIZE + 1, 1 << 20])
    def test_the_body_in_chunks_then_an_empty_one(self, client, size: int) -> None:  # type: ignore[no-untyped-def]
        body = bytes(i % 251 for i in range(size))
        r = client.post("/digest", content=body)
        full, rest = divmod(size, STREAM_CHUNK_SIZE)
        result = r.json()
        sizes = result.pop("sizes")
        assert result == {"sha256": hashlib.sha256(body).hexdigest(), "types": ["bytes"]}
        if size <= STREAM_CHUNK_SIZE:  # received whole: STREAM_CHUNK_SIZE slices of it
            assert sizes == [STREAM_CHUNK_SIZE] * full + ([rest] if rest else []) + [0]
        else:  # streamed (over the engine's threshold): each chunk is what had arrived, at most STREAM_CHUNK_SIZE
            assert sizes[-1] == 0 and sum(sizes) == size
            assert all(0 < n <= STREAM_CHUNK_SIZE for n in sizes[:-1]), sizes

    def test_a_chunked_upload_from_the_test_client(self, client) -> None:  # type: ignore[no-untyped-def]
        def parts() -> Iterator[bytes]:
            yield b"first,"
            yield b""
            yield b"x" * 100_000

        body = b"first," + b"x" * 100_000
        r = client.post("/digest", content=parts())
        assert r.json()["sha256"] == hashlib.sha256(body).hexdigest()
        # A chunked body streams from its first bytes: the chunks are what had arrived (the first may be the
        # 6-byte part alone, when the rest comes in a later read), each at most STREAM_CHUNK_SIZE.
        sizes = r.json()["sizes"]
        assert sizes[-1] == 0 and sum(sizes) == len(body), sizes
        assert all(0 < n <= STREAM_CHUNK_SIZE for n in sizes[:-1]), sizes

    def test_after_a_body_parameter_the_body_comes_whole(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/params-then-stream", json={"a": "b" * 100_000})
        assert r.json() == [len(b'{"a": "') + 100_000 + len(b'"}'), 0]


class TestStarletteRules:
    @pytest.mark.parametrize(("name", "empty", "with_body"), [
        ("stream-body", [[0], ["RuntimeError", "Stream consumed"]], [[8, 0], ["RuntimeError", "Stream consumed"]]),
        ("body-stream", [["ok", 0], [0, 0]], [["ok", 8], [8, 0]]),
        ("stream-stream", [[0], ["RuntimeError", "Stream consumed"]], [[8, 0], ["RuntimeError", "Stream consumed"]]),
        ("stream-json", [[0], ["RuntimeError", "Stream consumed"]], [[8, 0], ["RuntimeError", "Stream consumed"]]),
        ("json-stream", [["JSONDecodeError", "Expecting value: line 1 column 1 (char 0)"], [0, 0]],
         [["ok", "{'a': 1}"], [8, 0]]),
        ("break-body", [["RuntimeError", "Stream consumed"]] * 2, [["RuntimeError", "Stream consumed"]] * 2),
    ], ids=lambda value: value if isinstance(value, str) else "")
    def test_like_starlette(self, client, name: str, empty: list[Any], with_body: list[Any]) -> None:  # type: ignore[no-untyped-def]
        headers = {"content-type": "application/json"}
        assert client.post(f"/scenario/{name}", content=b"", headers=headers).json() == empty
        assert client.post(f"/scenario/{name}", content=b'{"a": 1}', headers=headers).json() == with_body

    def test_form_after_stream(self, client) -> None:  # type: ignore[no-untyped-def]
        # A form body must be read, and cannot be once streamed; another body gives an empty form unread.
        r = client.post("/scenario/stream-form", content=b"a=1", headers={"content-type": "application/x-www-form-urlencoded"})
        assert r.json() == [[3, 0], ["RuntimeError", "Stream consumed"]]
        r = client.post("/scenario/stream-form", content=b'{"a": 1}', headers={"content-type": "application/json"})
        assert r.json() == [[8, 0], ["ok", "FormData([])"]]

    def test_a_big_body_left_part_way_resumes(self, client) -> None:  # type: ignore[no-untyped-def]
        size = 3 * STREAM_CHUNK_SIZE + 5
        r = client.post("/scenario/break-body", content=b"y" * size)
        # body() collects what the stream did not give yet (as Starlette over several ASGI messages); a
        # stream after that yields it whole, then b"" (two chunks)
        assert r.json() == [["ok", size - STREAM_CHUNK_SIZE], ["ok", 2]]


class TestKeptRequests:
    def test_a_streamed_request_kept_after_the_response(self, client) -> None:  # type: ignore[no-untyped-def]
        KEPT.clear()
        assert client.post("/keep/all", content=b"z" * 100_000).json() == 100_000
        assert client.post("/keep/part", content=b"z" * 100_000).json() == STREAM_CHUNK_SIZE
        streamed, partial = KEPT

        async def later() -> tuple[list[Any], list[Any]]:
            return await _attempt(streamed.body()), await _attempt(partial.body())

        assert asyncio.run(later()) == (["RuntimeError", "Stream consumed"], ["ok", 100_000 - STREAM_CHUNK_SIZE])
        KEPT.clear()


class TestBufferedBody:
    def test_slices_in_order_and_the_rest(self) -> None:
        async def go() -> None:
            data = b"abcdefghij"
            source = BufferedBody(data, chunk_size=4)
            assert (await source.receive(), source.consumed) == (b"abcd", False)
            assert source.rest() == b"efghij" and source.consumed
            assert await source.receive() == b""
            whole = BufferedBody(data)
            assert await whole.receive() is data  # one chunk: no copy
            assert BufferedBody(data).rest() is data

        asyncio.run(go())

    def test_chunk_size_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="chunk_size"):
            BufferedBody(b"x", chunk_size=0)
