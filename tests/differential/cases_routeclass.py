"""Differential cases of ``route_class=`` (issue 14): route_class_app.py, FastAPI's custom APIRoute examples."""

from __future__ import annotations

import gzip
import json

from cases import Case, case

_GZIP = {"Content-Encoding": "gzip"}

CASES: list[Case] = [
    # GzipRequest: the body decompressed by the custom Request class, before the parameters are read
    case("route_class/gzip-body", "POST", "/gzip/sum", headers=_GZIP, body=gzip.compress(json.dumps([1, 2, 3]).encode()),
         content_type="application/json"),
    case("route_class/gzip-plain-body", "POST", "/gzip/sum", json_body=[4, 5]),
    case("route_class/gzip-body-422", "POST", "/gzip/sum", headers=_GZIP, body=gzip.compress(b'[1, "x"]'),
         content_type="application/json"),
    case("route_class/gzip-no-body-422", "POST", "/gzip/sum", content_type="application/json"),
    # the handler reads the body on a RequestValidationError and puts it in the 422's detail
    case("route_class/validation-ok", "POST", "/validation", json_body=[1, 2]),
    case("route_class/validation-422-body-in-detail", "POST", "/validation", body=b'[1, "two", 3]',
         content_type="application/json"),
    case("route_class/validation-invalid-json", "POST", "/validation", body=b'[1, 2', content_type="application/json"),
    # the timed router's routes (also through a nested include) have the header, the others not
    case("route_class/timed", "GET", "/timed"),
    case("route_class/timed-nested-include", "GET", "/outer/inner/timed"),
    case("route_class/not-timed", "GET", "/"),
    case("route_class/route-classes", "GET", "/route-classes"),
]
