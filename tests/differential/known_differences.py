"""Known differences between FastAPI 0.165 (uvicorn) and CovetPy on the differential cases — all in one place.

case id -> why it differs and which work removes it (issue 14 unless said otherwise). Each listed case runs as
xfail(strict=True): when a fix makes CovetPy answer like FastAPI, the case passes, the strict xfail fails the
run, and its line here must be deleted. A case not listed must match exactly. `reason/<status>` ids are the
reason phrases of test_reason_phrase.
"""

from __future__ import annotations

_DOCS_PAGE = ("by design: covet's docs pages load Swagger UI/ReDoc bundled in the package (offline), FastAPI's from "
              "a CDN; the title and URLs are HTML-escaped and the markup differs (docs/python.md: /docs and /redoc)")
_DOCS_REDIRECT = ("by design: covet's OAuth2 redirect page runs the bundled swagger-ui-dist 5 oauth2-redirect.js, "
                  "FastAPI's a copy of Swagger UI 4.14's script")

KNOWN_DIFFERENCES: dict[str, str] = {
    # docs pages (the same URLs answer, with the same status and content type; the HTML differs)
    "docs/swagger-ui": _DOCS_PAGE,
    "docs/self-hosted-swagger-ui": _DOCS_PAGE,
    "docs/self-hosted-redoc": _DOCS_PAGE,
    "docs/oauth2-redirect": _DOCS_REDIRECT,
    "docs/self-hosted-oauth2-redirect": _DOCS_REDIRECT,
    # reason phrases (covet's table differs from uvicorn/h11's)
    "reason/422": "reason phrase: uvicorn on Python 3.11 says 'Unprocessable Entity' (http.HTTPStatus before 3.13); covet "
                  "sends RFC 9110's 'Unprocessable Content', as uvicorn does on Python 3.13+ — kept on purpose",
}
