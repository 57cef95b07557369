"""OpenAPI for CovetPy apps: the interactive docs pages (`covet.openapi.docs`: Swagger UI at ``/docs``, ReDoc at
``/redoc``, served from assets bundled in the package)."""
