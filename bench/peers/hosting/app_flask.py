"""Flask peer of the hosting comparison (`python -m bench --hosting`): the same five routes and payloads as the other
peers, served by gunicorn, Granian WSGI and CovetPy (`covet run --interface wsgi`). Responses are built with orjson
(Flask's jsonify appends a newline); the POST body is validated by a pydantic model (422 when invalid)."""
import time

import orjson
from flask import Flask, Response, request
from pydantic import BaseModel, ValidationError

app = Flask(__name__)


class Item(BaseModel):
    name: str
    price: float
    tags: list[str]
    description: str


HELLO = "Hello, World!"


def _json(obj, status=200):
    return Response(orjson.dumps(obj), status=status, mimetype="application/json")


@app.get("/plaintext")
def plaintext():
    return Response(HELLO, mimetype="text/plain")


@app.get("/json")
def json_():
    return _json({"message": HELLO})


@app.get("/users/<int:user_id>")
def user(user_id):
    return _json({"id": user_id, "q": request.args.get("q")})


@app.post("/items")
def items():
    try:
        item = Item.model_validate_json(request.get_data())
    except ValidationError as exc:
        return _json({"detail": orjson.loads(exc.json())}, 422)
    return _json({"name": item.name, "tag_count": len(item.tags)})


@app.get("/sleep")
def sleep():
    time.sleep(0.001)
    return Response(HELLO, mimetype="text/plain")
