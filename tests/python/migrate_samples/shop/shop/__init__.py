"""A small shop API written against FastAPI: the multi-file sample that `covet migrate` moves onto CovetPy."""
