"""Sample app: the keywords that only shape the OpenAPI schema (tags, summary, description, responses,
deprecated, response_description) must not change how the routes answer."""

from __future__ import annotations

from _framework import FastAPI

app = FastAPI(title="Keywords", version="2.0.0")


@app.get("/tagged", tags=["items"], summary="A tagged route", description="Described at length.")
async def tagged() -> dict:
    return {"tagged": True}


@app.get("/old", deprecated=True, responses={404: {"description": "Not there"}}, response_description="The item")
async def old() -> dict:
    return {"old": True}
