"""`covet.wsgi.streams.BodyInput` (``wsgi.input`` of a streamed body) over a scripted engine request: what the
reads give, and that reading a body of many chunks whole does not copy it chunk after chunk (a bytearray)."""

from __future__ import annotations

import time
from collections import deque
from typing import Optional, Union

import pytest

from covet.wsgi.streams import BodyInput, ClientDisconnected, EngineNews, RequestBodyError


class ScriptedBody:
    """The engine's side of a streamed body: `read_body` gives the scripted chunks, then b"" (the end) or the
    scripted refusal (a (status, reason) tuple)."""

    def __init__(self, chunks: list[bytes], end: Union[bytes, tuple[int, str]] = b"") -> None:
        self.body_id = 12345
        self._chunks = deque(chunks)
        self._end = end
        self.reads = 0

    def read_body(self) -> Optional[Union[bytes, tuple[int, str]]]:
        self.reads += 1
        if self._chunks:
            return self._chunks.popleft()
        return self._end


def body_input(chunks: list[bytes], end: Union[bytes, tuple[int, str]] = b"", first: Optional[bytes] = None
               ) -> BodyInput:
    return BodyInput(ScriptedBody(chunks, end), EngineNews(), first=first)


def test_reads_of_sizes_lines_and_the_rest() -> None:
    stream = body_input([b"ab", b"c\nde", b"f\n", b"ghi"], first=b"0")
    assert stream.read(2) == b"0a"
    assert stream.readline() == b"bc\n"
    assert stream.readline(2) == b"de"
    assert stream.readline() == b"f\n"
    rest = stream.read()
    assert rest == b"ghi" and type(rest) is bytes
    assert stream.read() == b"" and stream.readline() == b"" and stream.read(5) == b""


def test_iteration_and_readlines_give_bytes_lines() -> None:
    lines = [f"line {i}\n".encode() for i in range(50)]
    joined = b"".join(lines)
    chunks = [joined[i:i + 7] for i in range(0, len(joined), 7)]
    assert list(body_input(chunks)) == lines
    got = body_input(chunks).readlines()
    assert got == lines and all(type(line) is bytes for line in got)
    assert body_input(chunks).readlines(10) == lines[:2]


def test_read_whole_body_of_many_chunks_is_linear() -> None:
    """4,000 chunks of 16 KiB (64 MiB): joined by `bytes + bytes` this copied ~128 GB; appended to a bytearray it
    copies each byte about twice."""
    chunk = b"x" * 16384
    stream = body_input([chunk] * 4000)
    started = time.perf_counter()
    data = stream.read(-1)
    elapsed = time.perf_counter() - started
    assert len(data) == 4000 * 16384 and type(data) is bytes
    assert elapsed < 5, f"read(-1) of 64 MiB in 16 KiB chunks took {elapsed:.1f} s"


def test_a_refused_body_raises_with_the_engines_status() -> None:
    stream = body_input([b"abc"], end=(413, "too large"))
    assert stream.read(3) == b"abc"
    with pytest.raises(RequestBodyError) as raised:
        stream.read()
    assert raised.value.status == 413
    stream = body_input([b"abc"], end=(0, "reset"))
    with pytest.raises(ClientDisconnected):
        stream.read()
