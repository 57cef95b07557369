"""Sample app: Depends(scope=...) on yield dependencies — "request" (the default) tears down after the response is
sent (after a streamed body), "function" before; an exception after yield changes the response only in the
latter."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated

from _framework import Depends, FastAPI, HTTPException, StreamingResponse

app = FastAPI()
EVENTS: list[str] = []


def request_scoped() -> Iterator[str]:
    EVENTS.append("request open")
    yield "r"
    EVENTS.append("request close")


def function_scoped() -> Iterator[str]:
    EVENTS.append("function open")
    yield "f"
    EVENTS.append("function close")


def raises_after_yield() -> Iterator[int]:
    yield 1
    raise HTTPException(status_code=418, detail="raised after yield")


@app.get("/stream")
def stream(a: Annotated[str, Depends(request_scoped)],
           b: Annotated[str, Depends(function_scoped, scope="function")]) -> StreamingResponse:
    EVENTS.clear()
    EVENTS.extend(["request open", "function open", "handler"])

    def body() -> Iterator[str]:
        EVENTS.append("body")
        yield a + b

    return StreamingResponse(body())


@app.get("/events")
def events() -> list[str]:
    time.sleep(0.2)  # the previous response's request-scoped teardown runs once it is sent: let it finish
    return EVENTS


@app.get("/raise-request")
def raise_request(x: Annotated[int, Depends(raises_after_yield)]) -> dict:
    return {"ok": x}


@app.get("/raise-function")
def raise_function(x: Annotated[int, Depends(raises_after_yield, scope="function")]) -> dict:
    return {"ok": x}
