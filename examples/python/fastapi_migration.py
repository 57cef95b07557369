"""The design doc's "From FastAPI" migration example: the FastAPI app with only its imports changed.

    python examples/python/fastapi_migration.py [--host H] [--port N]
    covet run fastapi_migration:app --app-dir examples/python

    curl 'localhost:8000/items/5?q=search'

The FastAPI original differed in two lines: ``from fastapi import FastAPI`` and ``app = FastAPI()``.
"""
from covet import CovetPy

app = CovetPy()


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str = None):  # type: ignore[assignment]  # verbatim from FastAPI
    return {"item_id": item_id, "q": q}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="The design doc's FastAPI migration example")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    app.run(host=args.host, port=args.port)
