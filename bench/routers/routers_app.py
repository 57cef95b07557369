"""Benchmark app: 20 routers (5 routes each, 100 routes) with a chain of dependencies — the same source under
FastAPI (``BENCH_FRAMEWORK=fastapi``) and CovetPy (``=covet``), only the imports differ.

Every route depends on ``context`` → ``tenant`` → ``token`` (a header); each router adds ``token`` again at
router level (FastAPI solves a repeated dependency once per request, cached), and the app one ``request_id``
dependency. A request therefore solves four dependencies, three header/query parameters and a path parameter,
after routing through 100 routes."""

from __future__ import annotations

import os
from typing import Any

if os.environ.get("BENCH_FRAMEWORK") == "fastapi":
    from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException
else:
    from covet import APIRouter, Depends, Header, HTTPException
    from covet import CovetPy as FastAPI

ROUTERS = 20
ROUTES_PER_ROUTER = 5


async def request_id(x_request_id: str = Header(default="none")) -> str:
    return x_request_id


async def token(x_token: str = Header(default="")) -> str:
    if x_token != "secret":
        raise HTTPException(status_code=401, detail="bad token")
    return x_token


async def tenant(tok: str = Depends(token), x_tenant: str = Header(default="public")) -> dict[str, Any]:
    return {"tenant": x_tenant, "token_len": len(tok)}


async def context(ten: dict[str, Any] = Depends(tenant), limit: int = 10) -> dict[str, Any]:
    return {**ten, "limit": limit}


def _add_routes(router: Any, index: int) -> None:
    for j in range(ROUTES_PER_ROUTER):

        async def read_item(item_id: int, ctx: dict[str, Any] = Depends(context)) -> dict[str, Any]:
            return {"router": index, "item_id": item_id, **ctx}

        router.add_api_route(f"/items{j}/{{item_id}}", read_item, methods=["GET"], name=f"read_{index}_{j}")


app = FastAPI(dependencies=[Depends(request_id)])
for i in range(ROUTERS):
    r = APIRouter(prefix=f"/r{i}", tags=[f"router {i}"], dependencies=[Depends(token)])
    _add_routes(r, i)
    app.include_router(r, prefix="/api")
