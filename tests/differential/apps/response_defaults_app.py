"""Sample app: ``default_response_class=`` on the app, overridden per route (issue 14, "Responses")."""

from __future__ import annotations

from _framework import FastAPI, HTMLResponse, JSONResponse, PlainTextResponse

app = FastAPI(default_response_class=HTMLResponse)


@app.get("/page")
def page() -> str:
    return "<p>default class</p>"


@app.get("/page-status", status_code=201)
def page_status():
    return "<p>created</p>"


@app.get("/json", response_class=JSONResponse)
def as_json() -> dict:
    return {"overridden": True}


@app.get("/text", response_class=PlainTextResponse)
def as_text():
    return "plain"


@app.get("/returned")
def returned():
    return JSONResponse({"returned": 1}, status_code=202)
