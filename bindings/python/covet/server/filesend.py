"""A response whose body is one region of a file, sent by the engine from the file.

A response object may offer ``_file_region() -> Optional[tuple[str, int, int]]``: the absolute path, offset and
byte count of the single contiguous file region that is its whole body, with its headers already final
(Content-Length included). The dispatcher calls `send_file_region` for streaming responses; when the response
offers a region, the engine opens the file (with the GIL released) and sends the head and the region itself:
sendfile(2) on plain TCP (the bytes never enter the process), bounded reads under TLS and in HTTP/2 DATA frames.
A HEAD request gets the head only. ``None`` (or a responder without ``send_file``, e.g. a test double) means the
response streams its body in Python as before.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol


class FileResponder(Protocol):
    """The engine's ``NativeResponder.send_file`` (bindings/python/src/file_send.hpp)."""

    def send_file(self, status: int, headers: list[tuple[str, str]], path: str, offset: int, count: int) -> None: ...


def file_region(response: object) -> Optional[tuple[str, int, int]]:
    """The region a response offers through ``_file_region()``, checked; None when it offers none."""
    method = getattr(response, "_file_region", None)
    if method is None:
        return None
    region = method()
    if region is None:
        return None
    path, offset, count = region
    if not isinstance(path, str) or not isinstance(offset, int) or not isinstance(count, int):
        raise TypeError(
            f"{type(response).__name__}._file_region() must return (path: str, offset: int, count: int) or None, "
            f"not {region!r}"
        )
    if offset < 0 or count < 0:
        raise ValueError(f"{type(response).__name__}._file_region() gave a negative offset or count: {region!r}")
    return path, offset, count


def send_file_region(responder: Any, response: Any) -> bool:
    """Sends `response` natively if it offers a file region; False when it must stream in Python."""
    send_file = getattr(responder, "send_file", None)
    if send_file is None:
        return False
    region = file_region(response)
    if region is None:
        return False
    path, offset, count = region
    sender: FileResponder = responder
    sender.send_file(response.status_code, response.headers._raw, path, offset, count)
    return True
