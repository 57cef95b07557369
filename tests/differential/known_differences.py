"""Known differences between FastAPI 0.165 (uvicorn) and CovetPy on the differential cases — all in one place.

case id -> why it differs and which work removes it (issue 14 unless said otherwise). Each listed case runs as
xfail(strict=True): when a fix makes CovetPy answer like FastAPI, the case passes, the strict xfail fails the
run, and its line here must be deleted. A case not listed must match exactly. `reason/<status>` ids are the
reason phrases of test_reason_phrase.
"""

from __future__ import annotations

_OPENAPI = "no /openapi.json yet (issue 14: OpenAPI 3.1, the schema FastAPI generates)"
_MIDDLEWARE_404_405 = ("covet's own 404/405 are answered natively and skip the app's @app.middleware('http') "
                       "(issue 14: error shapes)")
_HEAD = "covet answers HEAD on every GET route and lists HEAD in Allow; FastAPI: 405, Allow: GET (issue 14)"

KNOWN_DIFFERENCES: dict[str, str] = {
    # routing
    "params/method-not-allowed": _HEAD,
    "responses/head-on-get": _HEAD,
    # errors
    "bodies/create-not-object": "a JSON array for a model: covet reports model_type, FastAPI model_attributes_type",
    "bodies/delete-204": "a 204 from `-> None` with status_code=204: FastAPI still sends Content-Type: "
                         "application/json, covet none (issue 14; decide whether to match)",
    "middleware/404": _MIDDLEWARE_404_405,
    "middleware_classes/options-no-request-method": _MIDDLEWARE_404_405 + " (an OPTIONS that is no preflight: "
                                                    "405, the CORS headers are there)",
    "middleware_classes/simple-404": _MIDDLEWARE_404_405 + " (here the BaseHTTPMiddleware's X-Stamp; the native "
                                     "CORS headers are there)",
    "middleware/405": _MIDDLEWARE_404_405 + "; " + _HEAD,
    # OpenAPI
    "openapi_keywords/openapi": _OPENAPI,
    "bodies/openapi": _OPENAPI,
    "deps/openapi": _OPENAPI,
    "errors/openapi": _OPENAPI,
    "forms/openapi": _OPENAPI,
    "middleware/openapi": _OPENAPI,
    "params/openapi": _OPENAPI,
    "responses/openapi": _OPENAPI,
    "validation_handler/openapi": _OPENAPI,
    "middleware_classes/openapi": _OPENAPI,
    # reason phrases (covet's table differs from uvicorn/h11's)
    "reason/203": "reason phrase: uvicorn 'Non-Authoritative Information', covet 'Success'",
    "reason/418": "reason phrase: uvicorn \"I'm a Teapot\", covet 'Client Error'",
    "reason/422": "reason phrase: uvicorn 'Unprocessable Entity', covet 'Unprocessable Content' (RFC 9110's name)",
}
