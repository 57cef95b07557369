"""The Python app of the fault-injection suite: the native `hello` example's routes, same bodies.

Every response carries ``x-worker-pid`` so the load generator knows which worker process served each
connection (how the SIGKILL scenario tells the killed worker's requests from the others').

Served two ways:
  covet run app:app --app-dir tests/fault --workers N       (the supervisor: SIGKILL/SIGHUP scenarios)
  python tests/fault/app.py --port P [--threads T] [--opt header_timeout_ms=1000 ...]
                                                            (one process, with engine options the CLI
                                                             does not expose: timeouts, body rate floor)
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys

from covet import CovetPy, Request, Response

app = CovetPy()

_PID = {"x-worker-pid": str(os.getpid())}  # each worker imports this module in its own process


@app.get("/plaintext")
async def plaintext() -> Response:
    return Response(b"Hello, World!", headers=_PID, media_type="text/plain")


@app.get("/json")
async def json_route() -> Response:
    return Response(b'{"message":"Hello, World!"}', headers=_PID, media_type="application/json")


@app.get("/users/{user_id}")
async def user(user_id: int) -> Response:
    return Response(b'{"id":%d}' % user_id, headers=_PID, media_type="application/json")


@app.post("/echo")
async def echo(request: Request) -> Response:
    body = await request.body()
    return Response(body, headers=_PID, media_type=request.headers.get("content-type", "application/octet-stream"))


@app.get("/delayed")
async def delayed(ms: int = 0) -> Response:
    if not 0 <= ms <= 60_000:
        return Response(b"ms must be an integer between 0 and 60000\n", status=400, headers=_PID,
                        media_type="text/plain")
    await asyncio.sleep(ms / 1000)
    return Response(b"delayed %d" % ms, headers=_PID, media_type="text/plain")


def main(argv: list[str] | None = None) -> int:
    from covet.serve import serve

    p = argparse.ArgumentParser(description="serve the fault-injection app in one process")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--log-level", default="warning")
    p.add_argument("--opt", action="append", default=[], metavar="NAME=INT",
                   help="an engine option of covet._native.NativeServer, e.g. header_timeout_ms=1000")
    args = p.parse_args(argv)
    options: dict[str, int] = {}
    for item in args.opt:
        name, sep, value = item.partition("=")
        if not sep or not value.lstrip("-").isdigit():
            p.error(f"--opt expects NAME=INTEGER, got {item!r}")
        options[name] = int(value)
    from covet.serve import configure_logging

    configure_logging(args.log_level)
    return serve(app, host=args.host, port=args.port, threads=args.threads, **options)


if __name__ == "__main__":
    sys.exit(main())
