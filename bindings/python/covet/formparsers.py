"""Form bodies: ``application/x-www-form-urlencoded`` and ``multipart/form-data`` (RFC 7578).

The engine hands Python the whole request body, so the parsers work on one ``bytes`` object: the part
boundaries are found with ``bytes.find`` (C speed) and every uploaded file becomes an in-memory
`UploadFile`. Limits and error messages follow Starlette's: ``max_files``, ``max_fields`` and
``max_part_size`` (for non-file fields) raise `MultiPartException`, which ``request.form()`` answers with 400.
"""

from __future__ import annotations

import codecs
import io
from typing import Union

from .datastructures import FormData, Headers, UploadFile

__all__ = [
    "MultiPartException",
    "parse_options_header",
    "parse_form",
    "is_form_media_type",
    "parse_multipart",
    "parse_urlencoded",
]

DEFAULT_MAX_FILES = 1000
DEFAULT_MAX_FIELDS = 1000
DEFAULT_MAX_PART_SIZE = 1024 * 1024
# A part's header lines: at most this many, each at most this long (CRLF excluded): python-multipart's defaults.
# Beyond them FastAPI answers 400 "Invalid multipart data." (Starlette's message for any parse error), and so does
# this parser. Without them a part of 150,000 short header lines was split into as many objects and looped over.
MAX_PART_HEADERS = 8
MAX_PART_HEADER_LINE = 4096 + 128


class MultiPartException(ValueError):
    """A form body that cannot be parsed or exceeds a limit; `message` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _split_params(value: str) -> list[str]:
    """``a; b="x;y"; c`` → ``["a", 'b="x;y"', "c"]``: split on semicolons outside quoted strings."""
    out: list[str] = []
    start = 0
    quoted = False
    i = 0
    while i < len(value):
        c = value[i]
        if quoted:
            if c == "\\":
                i += 1  # the escaped character cannot end the string
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == ";":
            out.append(value[start:i])
            start = i + 1
        i += 1
    out.append(value[start:])
    return out


def _unquote(value: str) -> str:
    """A quoted-string's content; ``\\"`` and ``\\\\`` are unescaped, other backslashes kept (as the email
    package does: browsers send Windows paths and percent-encode quotes rather than escape them)."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
        if "\\" in value:
            value = value.replace("\\\\", "\\").replace('\\"', '"')
    return value


def parse_options_header(value: Union[str, None]) -> tuple[str, dict[str, str]]:
    """``'form-data; name="a"; filename="b.txt"'`` → ``("form-data", {"name": "a", "filename": "b.txt"})``.

    The main value and the parameter names are lower-cased; quoted values are unquoted; RFC 2231/5987
    extended values (``filename*=UTF-8''na%C3%AFve.txt``) are decoded and take precedence. A Windows path
    sent as a filename (old browsers) is reduced to its last component.
    """
    if not value:
        return "", {}
    first, *rest = _split_params(value)
    params: dict[str, str] = {}
    extended: dict[str, str] = {}
    for item in rest:
        name, sep, raw = item.partition("=")
        name = name.strip().lower()
        if not sep or not name:
            continue
        raw = raw.strip()
        if name.endswith("*"):
            charset, _, tail = raw.partition("'")
            _, _, encoded = tail.partition("'")
            try:
                from urllib.parse import unquote  # deferred: start-up cost (an app may never parse a form)

                extended[name[:-1]] = unquote(_unquote(encoded), encoding=charset or "utf-8", errors="strict")
            except (LookupError, ValueError):  # unknown charset, undecodable, or a NUL in the charset name
                continue
        else:
            params[name] = _unquote(raw)
    params.update(extended)
    filename = params.get("filename")
    if filename and (filename[1:3] == ":\\" or filename[:2] == "\\\\"):
        params["filename"] = filename.rsplit("\\", 1)[-1]
    return first.strip().lower(), params


def _decode(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset)
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _invalid() -> MultiPartException:
    return MultiPartException("Invalid multipart data.")


def _find_delimiter(body: bytes, separator: bytes, start: int) -> int:
    """Where the part starting at `start` ends: the next CRLF + ``--boundary`` that is followed by ``--`` or
    by the end of its line (a longer token starting with the boundary is content)."""
    end = body.find(separator, start)
    while end >= 0:
        after = end + len(separator)
        if body.startswith(b"--", after):
            return end
        line_end = body.find(b"\r\n", after)
        if line_end >= 0 and not body[after:line_end].strip(b" \t"):
            return end
        end = body.find(separator, end + 1)
    raise _invalid()


def parse_multipart(
    body: bytes,
    content_type: str,
    *,
    max_files: Union[int, float] = DEFAULT_MAX_FILES,
    max_fields: Union[int, float] = DEFAULT_MAX_FIELDS,
    max_part_size: int = DEFAULT_MAX_PART_SIZE,
) -> FormData:
    """The fields (``str``) and files (`UploadFile`) of a ``multipart/form-data`` body, in order."""
    _, options = parse_options_header(content_type)
    boundary_text = options.get("boundary")
    if not boundary_text:
        raise MultiPartException("Missing boundary in multipart.")
    try:
        codec = codecs.lookup(options.get("charset", "utf-8"))
        # bytes.decode refuses the codecs that are not text encodings (base64, rot13, zlib ...) with LookupError;
        # CodecInfo says which they are (the flag bytes.decode itself reads).
        charset = codec.name if getattr(codec, "_is_text_encoding", True) else "latin-1"
    except (LookupError, ValueError):  # unknown, or not a name at all (a NUL in it)
        charset = "latin-1"
    try:
        boundary = boundary_text.encode("latin-1")
    except UnicodeEncodeError:
        raise _invalid() from None
    if not body.strip():
        return FormData()
    delimiter = b"--" + boundary
    separator = b"\r\n" + delimiter  # a delimiter ends the preceding part's content, CRLF included
    if body.startswith(delimiter):
        pos = len(delimiter)
    else:  # a preamble before the first delimiter is ignored
        found = body.find(separator)
        if found < 0:
            raise _invalid()
        pos = found + len(separator)
    items: list[tuple[str, Union[str, UploadFile]]] = []
    files = fields = 0
    while not body.startswith(b"--", pos):  # "--" after a delimiter closes the body (the epilogue is ignored)
        line_end = body.find(b"\r\n", pos)
        if line_end < 0 or body[pos:line_end].strip(b" \t"):  # only transport padding may follow a delimiter
            raise _invalid()
        start = line_end + 2
        end = _find_delimiter(body, separator, start)
        if body.startswith(b"\r\n", start):  # a part without headers
            header_lines: list[bytes] = []
            content_start = start + 2
        else:
            headers_end = body.find(b"\r\n\r\n", start, end)
            if headers_end < 0:
                raise _invalid()
            if body.count(b"\r\n", start, headers_end) >= MAX_PART_HEADERS:
                raise _invalid()
            header_lines = body[start:headers_end].split(b"\r\n")
            if any(len(line) > MAX_PART_HEADER_LINE for line in header_lines):
                raise _invalid()
            content_start = headers_end + 4
        raw_headers: list[tuple[str, str]] = []
        disposition = b""
        for line in header_lines:
            name, colon, value = line.partition(b":")
            if not colon or not name.strip():
                raise _invalid()
            name = name.strip().lower()
            value = value.strip()
            if name == b"content-disposition":
                disposition = value
            raw_headers.append((name.decode("latin-1"), value.decode("latin-1")))
        _, params = parse_options_header(_decode(disposition, charset))
        field_name = params.get("name")
        if field_name is None:
            raise MultiPartException('The Content-Disposition header field "name" must be provided.')
        if "filename" in params:
            files += 1
            if files > max_files:
                raise MultiPartException(f"Too many files. Maximum number of files is {max_files}.")
            content = body[content_start:end]
            upload = UploadFile(io.BytesIO(content), size=len(content), filename=params["filename"],
                                headers=Headers(raw_headers))
            items.append((field_name, upload))
        else:
            fields += 1
            if fields > max_fields:
                raise MultiPartException(f"Too many fields. Maximum number of fields is {max_fields}.")
            if end - content_start > max_part_size:
                raise MultiPartException(f"Part exceeded maximum size of {int(max_part_size / 1024)}KB.")
            items.append((field_name, _decode(body[content_start:end], charset)))
        pos = end + len(separator)
    return FormData(items)


def parse_urlencoded(body: bytes, *, max_fields: Union[int, float] = DEFAULT_MAX_FIELDS) -> FormData:
    """The fields of an ``application/x-www-form-urlencoded`` body."""
    from urllib.parse import parse_qsl  # deferred: start-up cost (an app may never parse a form)

    text = body.decode("latin-1")
    # Fields, not separators, count (as python-multipart under FastAPI): an empty pair ("a=1&&b=2", a trailing "&")
    # is none. parse_qsl's own max_num_fields counts every "&". Split only when the separators allow too many.
    if text.count("&") >= max_fields:
        import itertools
        import re

        # the (max_fields + 1)th non-empty pair, found by the regex engine (runs of "&" skipped in C), or None
        if next(itertools.islice(re.finditer(r"[^&]+", text), int(max_fields), None), None) is not None:
            raise MultiPartException(f"Too many fields. Maximum number of fields is {max_fields}.")
    return FormData(parse_qsl(text, keep_blank_values=True))


def is_form_media_type(content_type: str) -> bool:
    """Whether `parse_form` reads a body of this ``Content-Type`` (for other types it gives an empty form)."""
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type in ("multipart/form-data", "", "application/x-www-form-urlencoded")


def parse_form(
    body: bytes,
    content_type: str,
    *,
    max_files: Union[int, float] = DEFAULT_MAX_FILES,
    max_fields: Union[int, float] = DEFAULT_MAX_FIELDS,
    max_part_size: int = DEFAULT_MAX_PART_SIZE,
) -> FormData:
    """A form body by its media type; an empty `FormData` for a body that is not a form (as Starlette).

    A body without ``Content-Type`` is read as URL-encoded.
    """
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        return parse_multipart(body, content_type, max_files=max_files, max_fields=max_fields,
                               max_part_size=max_part_size)
    if media_type in ("", "application/x-www-form-urlencoded"):
        return parse_urlencoded(body, max_fields=max_fields)
    return FormData()
