"""Fuzz target (atheris, libFuzzer for Python) for the request parsers that live in Python: form bodies
(``covet.formparsers.parse_form``: multipart/form-data with its ``Content-Disposition`` parameters and RFC 2231
names, and URL-encoded bodies) and the ``Cookie`` header (``covet.connection.parse_cookies``).

Input: the ``Content-Type`` value up to the first newline (latin-1), then the body; the same bytes are also
tried as a ``Cookie`` header. Properties: the only exception a body may raise is ``MultiPartException`` (which
``request.form()`` answers with 400: anything else would be a 500); ``parse_cookies`` never raises; a parsed
form holds only ``str`` fields and ``UploadFile`` files. Run by scripts/fuzz.sh with .venv's Python and the
package's sources (PYTHONPATH=bindings/python): ``.venv/bin/python tests/fuzz/forms_fuzz.py [libFuzzer args]``.
"""

import sys

import atheris

with atheris.instrument_imports(include=["covet.formparsers", "covet.connection", "covet.datastructures"]):
    from covet.connection import parse_cookies
    from covet.datastructures import UploadFile
    from covet.formparsers import MultiPartException, parse_form


def test_one(data: bytes) -> None:
    content_type, _, body = data.partition(b"\n")
    text = content_type.decode("latin-1")
    try:
        form = parse_form(body, text, max_files=8, max_fields=16, max_part_size=4096)
    except MultiPartException:
        pass
    else:
        for _, value in form.multi_items():
            if not isinstance(value, (str, UploadFile)):
                raise AssertionError(f"a form value of type {type(value).__name__}")
    cookies = parse_cookies(data.decode("latin-1"))
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in cookies.items()):
        raise AssertionError("a cookie that is not str")


def main() -> None:
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
