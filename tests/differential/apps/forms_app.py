"""Sample app: Form() fields, file uploads (UploadFile, bytes), and app state set at start-up (lifespan)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from _framework import FastAPI, File, Form, Request, UploadFile


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.started = "yes"
    yield


app = FastAPI(lifespan=lifespan)


@app.post("/login")
async def login(username: Annotated[str, Form()], password: Annotated[str, Form(min_length=3)]) -> dict:
    return {"username": username, "password_length": len(password)}


@app.post("/tags")
async def tags(tag: Annotated[list[str], Form()]) -> dict:
    return {"tags": tag}


@app.post("/upload")
async def upload(file: UploadFile, note: Annotated[str, Form()] = "") -> dict:
    data = await file.read()
    return {"filename": file.filename, "content_type": file.content_type, "size": len(data), "note": note}


@app.post("/raw-file")
async def raw_file(data: Annotated[bytes, File()]) -> dict:
    return {"size": len(data)}


@app.get("/state")
async def state(request: Request) -> dict:
    return {"started": request.app.state.started}
