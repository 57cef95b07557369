"""Form bodies: the multipart parser, ``request.form()``, `UploadFile`, and ``Form()``/``File()`` parameters."""

from __future__ import annotations

import asyncio
import io
from typing import Annotated, Any, Optional

import pytest
from pydantic import BaseModel

from covet import CovetPy, File, Form, FormData, Request, UploadFile
from covet.datastructures import Headers
from covet.formparsers import (MultiPartException, parse_form, parse_multipart, parse_options_header,
                               parse_urlencoded)
from covet.params import build_plan
from covet.testing import _encode_multipart

CT = "multipart/form-data; boundary=XyZ"


class Profile(BaseModel):
    name: str
    age: int
    langs: list[str] = []


class Item(BaseModel):
    a: int


def multipart(*parts: bytes, boundary: bytes = b"XyZ") -> bytes:
    return b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts) + b"--" + boundary + b"--\r\n"


class TestOptionsHeader:
    def test_plain_and_quoted_values(self) -> None:
        assert parse_options_header('Form-Data; name="a;b"; filename=plain.txt') == (
            "form-data", {"name": "a;b", "filename": "plain.txt"})

    def test_backslash_escapes(self) -> None:
        assert parse_options_header(r'form-data; name="say \"hi\""')[1] == {"name": 'say "hi"'}

    def test_extended_value_wins(self) -> None:
        value = "form-data; name=f; filename=\"naive.txt\"; filename*=UTF-8''na%C3%AFve.txt"
        assert parse_options_header(value)[1]["filename"] == "naïve.txt"

    def test_windows_path_is_reduced_to_the_name(self) -> None:
        assert parse_options_header(r'form-data; name=f; filename="C:\Users\me\cv.pdf"')[1]["filename"] == "cv.pdf"

    def test_empty(self) -> None:
        assert parse_options_header("") == ("", {})

    def test_extended_value_with_a_bad_charset_is_skipped(self) -> None:
        # Found by tests/fuzz/forms_fuzz.py: a NUL in the charset raised ValueError (a 500), not skipped.
        assert parse_options_header("form-data; name=a; name*=u\x00tf-8''%41")[1] == {"name": "a"}
        assert parse_options_header("form-data; name=a; name*=base64''%41")[1] == {"name": "a"}


class TestMultipartParser:
    def test_fields_and_files_in_order(self) -> None:
        body = multipart(
            b'Content-Disposition: form-data; name="title"\r\n\r\nhello world',
            b'Content-Disposition: form-data; name="doc"; filename="a.txt"\r\nContent-Type: text/plain\r\n'
            b"X-Extra: 1\r\n\r\nline 1\r\n--XyZnot-a-boundary\r\nline 3",
            b'Content-Disposition: form-data; name="title"\r\n\r\nsecond',
        )
        form = parse_multipart(body, CT)
        assert [k for k, _ in form.multi_items()] == ["title", "doc", "title"]
        assert form["title"] == "second" and form.getlist("title") == ["hello world", "second"]
        doc = form["doc"]
        assert isinstance(doc, UploadFile)
        content = b"line 1\r\n--XyZnot-a-boundary\r\nline 3"  # a longer token starting with the boundary
        assert (doc.filename, doc.content_type, doc.size) == ("a.txt", "text/plain", len(content))
        assert doc.headers["x-extra"] == "1"
        assert doc.file.read() == content

    def test_binary_content_is_kept_byte_for_byte(self) -> None:
        data = bytes(range(256)) * 4 + b"\r\n--X\r\n"
        body = multipart(b'Content-Disposition: form-data; name="bin"; filename="b.bin"\r\n\r\n' + data)
        upload = parse_multipart(body, CT)["bin"]
        assert isinstance(upload, UploadFile) and upload.file.read() == data

    def test_preamble_epilogue_and_quoted_boundary(self) -> None:
        body = b"preamble\r\n" + multipart(b'Content-Disposition: form-data; name="a"\r\n\r\n1',
                                           boundary=b"a b") + b"epilogue"
        assert parse_multipart(body, 'multipart/form-data; boundary="a b"')["a"] == "1"

    def test_utf8_names_and_values_with_latin1_fallback(self) -> None:
        body = multipart('Content-Disposition: form-data; name="clé"\r\n\r\nvalé'.encode(),
                         b'Content-Disposition: form-data; name="raw"\r\n\r\n\xff')
        form = parse_multipart(body, CT)
        assert form["clé"] == "valé" and form["raw"] == "ÿ"

    def test_empty_filename_is_still_a_file(self) -> None:
        body = multipart(b'Content-Disposition: form-data; name="f"; filename=""\r\n'
                         b"Content-Type: application/octet-stream\r\n\r\n")
        upload = parse_multipart(body, CT)["f"]
        assert isinstance(upload, UploadFile) and (upload.filename, upload.size) == ("", 0)

    @pytest.mark.parametrize("charset", ["base64", "rot13", "zlib", "utf\x00-8", "no-such-charset"])
    def test_a_charset_that_is_not_a_text_encoding_falls_back_to_latin1(self, charset: str) -> None:
        # Found by tests/fuzz/forms_fuzz.py: these raised LookupError/ValueError out of the parser (a 500, not 400).
        body = b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n\xe9\r\n--b--\r\n'
        form = parse_multipart(body, f"multipart/form-data; boundary=b; charset={charset}")
        assert form["a"] == "é"

    def test_empty_body_is_an_empty_form(self) -> None:
        assert parse_multipart(b"", CT) == FormData()

    @pytest.mark.parametrize(("body", "content_type", "message"), [
        (b"--XyZ--\r\n", "multipart/form-data", "Missing boundary in multipart."),
        (b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nunterminated", CT, "Invalid multipart data."),
        (b"no delimiter at all", CT, "Invalid multipart data."),
        (b"--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--", CT,
         'The Content-Disposition header field "name" must be provided.'),
        (b"--XyZ\r\nno colon here\r\n\r\nx\r\n--XyZ--", CT, "Invalid multipart data."),
    ])
    def test_malformed(self, body: bytes, content_type: str, message: str) -> None:
        with pytest.raises(MultiPartException) as info:
            parse_multipart(body, content_type)
        assert info.value.message == message

    def test_limits(self) -> None:
        field = b'Content-Disposition: form-data; name="a"\r\n\r\nx'
        upload = b'Content-Disposition: form-data; name="f"; filename="f"\r\n\r\nx'
        with pytest.raises(MultiPartException, match="Too many fields. Maximum number of fields is 2."):
            parse_multipart(multipart(field, field, field), CT, max_fields=2)
        with pytest.raises(MultiPartException, match="Too many files. Maximum number of files is 1."):
            parse_multipart(multipart(upload, upload), CT, max_files=1)
        big = b'Content-Disposition: form-data; name="a"\r\n\r\n' + b"x" * 2049
        with pytest.raises(MultiPartException, match="Part exceeded maximum size of 2KB."):
            parse_multipart(multipart(big), CT, max_part_size=2048)
        big_file = b'Content-Disposition: form-data; name="f"; filename="f"\r\n\r\n' + b"x" * 2049
        assert parse_multipart(multipart(big_file), CT, max_part_size=2048)["f"].size == 2049  # type: ignore[union-attr]

    def test_a_parts_headers_are_bounded_like_python_multipart(self) -> None:
        disposition = b'Content-Disposition: form-data; name="a"'
        eight = disposition + b"".join(b"\r\nX-H%d: v" % i for i in range(7))
        assert parse_multipart(multipart(eight + b"\r\n\r\nx"), CT)["a"] == "x"  # 8 lines: the limit
        for extra in (b"\r\nX-H7: v", b"\r\n:" * 150_000):  # a ninth line; 150,000 more (in ~450 KB)
            with pytest.raises(MultiPartException) as info:
                parse_multipart(multipart(eight + extra + b"\r\n\r\nx"), CT)
            assert info.value.message == "Invalid multipart data."  # FastAPI's answer (python-multipart's limit)
        long_line = disposition + b"\r\nX-Long: " + b"v" * (4096 + 128 - 8)  # 4,224 bytes: the limit
        assert parse_multipart(multipart(long_line + b"\r\n\r\nx"), CT)["a"] == "x"
        with pytest.raises(MultiPartException) as info:
            parse_multipart(multipart(long_line + b"v\r\n\r\nx"), CT)
        assert info.value.message == "Invalid multipart data."

    def test_urlencoded_limit_counts_fields_not_separators(self) -> None:
        # as python-multipart under FastAPI: empty pairs are no fields, whatever their number
        assert parse_urlencoded(b"a=1&&b=2&").multi_items() == [("a", "1"), ("b", "2")]
        assert parse_urlencoded(b"&" * 100_000 + b"a=1", max_fields=1).multi_items() == [("a", "1")]
        thousand = b"&".join(b"f%d=x" % i for i in range(1000))
        assert len(parse_urlencoded(thousand + b"&").multi_items()) == 1000  # a trailing "&" is no 1,001st field
        with pytest.raises(MultiPartException, match="Too many fields. Maximum number of fields is 1000."):
            parse_urlencoded(thousand + b"&f=x")
        assert parse_urlencoded(b"a=1;b=2").multi_items() == [("a", "1;b=2")]  # ";" separates nothing (FastAPI)

    def test_parse_form_by_media_type(self) -> None:
        assert parse_form(b"a=1&a=2&b=%C3%A9", "application/x-www-form-urlencoded").multi_items() == [
            ("a", "1"), ("a", "2"), ("b", "é")]
        assert parse_form(b"a=1", "") == FormData([("a", "1")])
        assert parse_form(b'{"a": 1}', "application/json") == FormData()
        with pytest.raises(MultiPartException, match="Too many fields"):
            parse_form(b"a=1&b=2", "application/x-www-form-urlencoded", max_fields=1)

    def test_test_client_encoding_round_trips(self) -> None:
        body, content_type = _encode_multipart(
            {"n": 1, "tags": ["a", "b"], "flag": True},
            [("f", ("x.json", b'{"a": 1}')), ("f", ("y.txt", "text", "text/x-custom", {"X-A": "b"})),
             ("raw", b"bytes"), ("io", io.BytesIO(b"stream"))],
        )
        form = parse_multipart(body, content_type)
        assert form.getlist("tags") == ["a", "b"] and form["n"] == "1" and form["flag"] == "true"
        first, second = form.getlist("f")
        assert isinstance(first, UploadFile) and isinstance(second, UploadFile)
        assert (first.filename, first.content_type) == ("x.json", "application/json")
        assert (second.content_type, second.headers["x-a"], second.file.read()) == ("text/x-custom", "b", b"text")
        raw = form["raw"]
        assert isinstance(raw, UploadFile) and raw.filename == "upload"


class TestUploadFile:
    def test_async_methods(self) -> None:
        asyncio.run(self._async_methods())

    async def _async_methods(self) -> None:
        upload = UploadFile(io.BytesIO(b"hello"), size=5, filename="h.txt",
                            headers=Headers([("content-type", "text/plain")]))
        assert await upload.read(2) == b"he" and await upload.read() == b"llo"
        await upload.seek(0)
        assert await upload.read() == b"hello"
        await upload.write(b"!")
        assert upload.size == 6 and upload.file.getvalue() == b"hello!"  # type: ignore[attr-defined]
        await upload.close()
        assert upload.file.closed

    def test_disk_file_runs_in_the_thread_pool(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        asyncio.run(self._disk_file(tmp_path / "f.bin"))

    async def _disk_file(self, path: Any) -> None:
        path.write_bytes(b"on disk")
        with path.open("rb") as f:
            upload = UploadFile(f, filename="f.bin")
            assert not upload._in_memory
            assert await upload.read() == b"on disk"
            await upload.seek(3)
            assert await upload.read() == b"disk"
            await upload.close()
            assert f.closed

    def test_form_data_keeps_uploads_and_stringifies_the_rest(self) -> None:
        upload = UploadFile(io.BytesIO(b""))
        form = FormData({"a": 1, "f": upload})
        assert form["a"] == "1" and form["f"] is upload


@pytest.fixture
def client(make_client):  # type: ignore[no-untyped-def]
    app = CovetPy()

    @app.post("/form")
    async def read_form(request: Request) -> dict:
        form = await request.form()
        out: dict = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                out.setdefault(key, []).append({"filename": value.filename, "type": value.content_type,
                                                "content": (await value.read()).decode(), "size": value.size})
            else:
                out.setdefault(key, []).append(value)
        return out

    @app.post("/form-closes")
    async def form_closes(request: Request) -> dict:
        async with request.form() as form:
            upload = form["f"]
            assert isinstance(upload, UploadFile)
            again = await request.form()
        return {"closed": upload.file.closed, "same": again is form}

    @app.post("/limited")
    async def limited(request: Request) -> int:
        return len(await request.form(max_fields=1))

    @app.post("/login")
    async def login(username: str = Form(), password: Annotated[str, Form(min_length=3)] = "secret",
                    remember: bool = Form(False)) -> dict:
        return {"username": username, "password": password, "remember": remember}

    @app.post("/tags")
    async def tags(tag: list[int] = Form([])) -> list[int]:
        return tag

    @app.post("/upload")
    async def upload(file: UploadFile, note: str = Form("")) -> dict:
        return {"filename": file.filename, "type": file.content_type, "content": (await file.read()).decode(),
                "note": note}

    @app.post("/bytes")
    def upload_bytes(data: bytes = File(), more: Annotated[Optional[list[bytes]], File()] = None) -> dict:
        return {"data": data.decode(), "more": [m.decode() for m in more] if more is not None else None}

    @app.post("/many")
    async def many(files: list[UploadFile], maybe: Optional[UploadFile] = None) -> dict:
        return {"names": [f.filename for f in files], "maybe": maybe.filename if maybe else None}

    @app.post("/profile")
    async def profile(data: Annotated[Profile, Form()]) -> dict:
        return data.model_dump()

    return make_client(app)


class TestRequestForm:
    def test_multipart_fields_and_files(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/form", data={"a": "1", "b": ["x", "y"]},
                        files=[("f", ("one.txt", b"first", "text/plain")), ("f", ("two.csv", "a,b"))])
        assert r.status_code == 200
        assert r.json() == {
            "a": ["1"], "b": ["x", "y"],
            "f": [{"filename": "one.txt", "type": "text/plain", "content": "first", "size": 5},
                  {"filename": "two.csv", "type": "text/csv", "content": "a,b", "size": 3}],
        }

    def test_urlencoded_still_works(self, client) -> None:  # type: ignore[no-untyped-def]
        assert client.post("/form", data={"name": "Zoë", "t": ["a", "b"]}).json() == {"name": ["Zoë"], "t": ["a", "b"]}

    def test_other_bodies_give_an_empty_form(self, client) -> None:  # type: ignore[no-untyped-def]
        assert client.post("/form", json={"a": 1}).json() == {}

    def test_context_manager_closes_the_files_and_the_form_is_parsed_once(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/form-closes", files={"f": ("f.txt", b"x")})
        assert r.json() == {"closed": True, "same": True}

    def test_malformed_multipart_is_400(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/form", content=b"--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\nno end",
                        headers={"Content-Type": CT})
        assert (r.status_code, r.json()) == (400, {"detail": "Invalid multipart data."})
        r = client.post("/form", content=b"x", headers={"Content-Type": "multipart/form-data"})
        assert (r.status_code, r.json()) == (400, {"detail": "Missing boundary in multipart."})

    def test_limits_are_400(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/limited", data={"a": "1", "b": "2"})
        assert (r.status_code, r.json()) == (400, {"detail": "Too many fields. Maximum number of fields is 1."})
        assert client.post("/limited", files={"a": ("a", b"1"), "b": ("b", b"2")}).json() == 2  # files are not fields


class TestFormParams:
    def test_fields_convert_and_default(self, client) -> None:  # type: ignore[no-untyped-def]
        assert client.post("/login", data={"username": "ann", "remember": "true"}).json() == {
            "username": "ann", "password": "secret", "remember": True}
        r = client.post("/login", files={"x": ("x", b"")}, data={"username": "bob", "password": "pw12"})
        assert r.json() == {"username": "bob", "password": "pw12", "remember": False}  # multipart works too

    def test_missing_and_invalid_fields_are_422(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/login", data={"password": "pw", "remember": "maybe"})
        assert r.status_code == 422
        errors = {(tuple(e["loc"]), e["type"]) for e in r.json()["detail"]}
        assert errors == {(("body", "username"), "missing"), (("body", "password"), "string_too_short"),
                          (("body", "remember"), "bool_parsing")}

    def test_empty_value_counts_as_missing(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/login", data={"username": "", "password": ""})
        assert [tuple(e["loc"]) for e in r.json()["detail"]] == [("body", "username")]  # password: its default

    def test_repeated_fields_make_lists(self, client) -> None:  # type: ignore[no-untyped-def]
        assert client.post("/tags", data={"tag": ["1", "2"]}).json() == [1, 2]
        assert client.post("/tags", data={}).json() == []
        assert client.post("/tags", data={"tag": ["1", "x"]}).json()["detail"][0]["loc"] == ["body", "tag", 1]

    def test_upload_file_param(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/upload", data={"note": "hi"}, files={"file": ("r.md", b"# title", "text/markdown")})
        assert r.json() == {"filename": "r.md", "type": "text/markdown", "content": "# title", "note": "hi"}

    def test_missing_file_and_field_instead_of_file(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/upload", data={"note": "hi"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "file"]
        assert r.json()["detail"][0]["type"] == "missing"
        r = client.post("/upload", files={"x": ("x", b"")}, data={"file": "not a file"})
        assert r.status_code == 422
        assert r.json()["detail"][0]["msg"] == "Value error, Expected UploadFile, received: <class 'str'>"

    def test_bytes_file_params(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/bytes", files=[("data", ("d", b"content")), ("more", ("m1", b"1")), ("more", ("m2", b"2"))])
        assert r.json() == {"data": "content", "more": ["1", "2"]}
        assert client.post("/bytes", files={"data": ("d", b"c")}).json() == {"data": "c", "more": None}

    def test_list_and_optional_uploads(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/many", files=[("files", ("a", b"1")), ("files", ("b", b"2"))])
        assert r.json() == {"names": ["a", "b"], "maybe": None}
        r = client.post("/many", files=[("files", ("a", b"1")), ("maybe", ("m", b"x"))])
        assert r.json() == {"names": ["a"], "maybe": "m"}
        # A browser's empty file input (no filename, no content) counts as missing.
        r = client.post("/many", files=[("files", ("a", b"1")), ("maybe", ("", b""))])
        assert r.json() == {"names": ["a"], "maybe": None}

    def test_form_model(self, client) -> None:  # type: ignore[no-untyped-def]
        r = client.post("/profile", data={"name": "Ann", "age": "7", "langs": ["py", "c++"]})
        assert r.json() == {"name": "Ann", "age": 7, "langs": ["py", "c++"]}
        r = client.post("/profile", data={"name": "Ann"})
        assert r.status_code == 422
        assert [(tuple(e["loc"]), e["type"]) for e in r.json()["detail"]] == [(("body", "age"), "missing")]

    def test_a_malformed_form_is_400_with_the_parsers_reason(self, client) -> None:  # type: ignore[no-untyped-def]
        # FastAPI 0.165 answers the parser's (Starlette's) message, as request.form() does
        r = client.post("/login", content=b"garbage", headers={"Content-Type": CT})
        assert (r.status_code, r.json()) == (400, {"detail": "Invalid multipart data."})
        many = "&".join(f"f{i}=x" for i in range(1001)).encode()
        r = client.post("/login", content=many, headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert (r.status_code, r.json()) == (400, {"detail": "Too many fields. Maximum number of fields is 1000."})


class TestFormPlans:
    def test_upload_file_annotation_is_a_form_file(self) -> None:
        async def h(f: UploadFile, fs: list[UploadFile], note: str = Form(""), raw: bytes = File()) -> None: ...

        plan = build_plan(h, [])
        assert plan.form and plan.needs_request
        assert [(s.name, s.location, s.form, s.many, s.read_bytes) for s in plan.specs] == [
            ("f", "body", True, False, False), ("fs", "body", True, True, False),
            ("note", "body", True, False, False), ("raw", "body", True, False, True)]

    def test_json_body_and_form_do_not_mix(self) -> None:
        async def h(item: Item, name: str = Form()) -> None: ...

        with pytest.raises(TypeError, match="cannot be combined with Form"):
            build_plan(h, [])
