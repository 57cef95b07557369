"""A Flask app (WSGI): routes with converters, JSON, a form post with a file upload, a session cookie, a streamed
response (a generator with stream_with_context) and send_file (wsgi.file_wrapper where the server has one)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

from flask import Flask, Response, abort, jsonify, request, send_file, session, stream_with_context

HERE = Path(__file__).resolve().parent
DATA_FILE = HERE / "static" / "data.bin"  # tests/hosting/apps/static/data.bin, 256 KiB written by the tests

app = Flask(__name__)
app.secret_key = "hosting-test-only"


@app.get("/")
def index() -> str:
    return "hello from flask"


@app.get("/users/<int:user_id>")
def user(user_id: int) -> Response:
    return jsonify(user_id=user_id, q=request.args.get("q"), server=request.environ.get("SERVER_PROTOCOL"))


@app.post("/form")
def form() -> Response:
    upload = request.files.get("upload")
    digest = hashlib.sha256(upload.read()).hexdigest() if upload else None
    return jsonify(name=request.form["name"], colors=request.form.getlist("color"), upload_sha256=digest)


@app.post("/json")
def echo_json() -> Response:
    payload = request.get_json()
    return jsonify(received=payload, length=request.content_length)


@app.get("/login/<name>")
def login(name: str) -> Response:
    session["name"] = name
    return jsonify(ok=True)


@app.get("/me")
def me() -> Response:
    if "name" not in session:
        abort(401)
    return jsonify(name=session["name"])


@app.get("/stream")
def stream() -> Response:
    count = int(request.args.get("n", "5"))

    @stream_with_context
    def generate() -> Iterator[str]:
        for i in range(count):
            yield f"chunk {i} of {request.path}\n"

    return Response(generate(), mimetype="text/plain")


@app.get("/slow-stream")
def slow_stream() -> Response:
    def generate() -> Iterator[str]:
        yield "first\n"
        time.sleep(1.5)  # the first chunk must be on the wire by now: a streaming server sends it at once
        yield "second\n"

    return Response(generate(), mimetype="text/plain")


@app.get("/file")
def file() -> Response:
    return send_file(DATA_FILE, mimetype="application/octet-stream", as_attachment=True, download_name="data.bin")
