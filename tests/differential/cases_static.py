"""Differential cases for StaticFiles mounts and Jinja2 templates (apps/static_app.py)."""

from __future__ import annotations

from cases import case

LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"


def _etag(size: int) -> str:
    import hashlib

    return '"' + hashlib.md5(f"1700000000.0-{size}".encode(), usedforsecurity=False).hexdigest() + '"'


ETAG_HELLO = _etag(12)

CASES = [
    case("static/file", "GET", "/static/hello.txt"),
    case("static/css", "GET", "/static/site.css"),
    case("static/js", "GET", "/static/app.js"),
    case("static/json", "GET", "/static/data.json"),
    case("static/png", "GET", "/static/image.png"),
    case("static/nested", "GET", "/static/nested/deep.txt"),
    case("static/upper-ext", "GET", "/static/UPPER.TXT"),
    case("static/no-ext", "GET", "/static/noext"),
    case("static/encoded-space", "GET", "/static/a%20b.txt"),
    case("static/query-ignored", "GET", "/static/hello.txt?v=3"),
    case("static/head", "HEAD", "/static/hello.txt"),
    case("static/missing", "GET", "/static/nope.txt"),
    case("static/directory", "GET", "/static/nested"),
    case("static/root", "GET", "/static/"),
    case("static/post", "POST", "/static/hello.txt"),
    case("static/delete", "DELETE", "/static/hello.txt"),
    # traversal attempts
    case("static/dotdot", "GET", "/static/../secret.txt"),
    case("static/dotdot-nested", "GET", "/static/nested/../../secret.txt"),
    case("static/dotdot-inside", "GET", "/static/nested/../hello.txt"),
    case("static/encoded-dotdot", "GET", "/static/%2e%2e/secret.txt"),
    case("static/encoded-dotdot-slash", "GET", "/static/%2e%2e%2fsecret.txt"),
    case("static/encoded-slash", "GET", "/static/nested%2fdeep.txt"),
    case("static/nul", "GET", "/static/hello.txt%00.png"),
    case("static/symlink-out", "GET", "/static/out-link.txt"),
    case("static/symlink-in", "GET", "/static/in-link.txt"),
    case("static/double-slash", "GET", "/static//hello.txt"),
    # conditional requests
    case("static/if-none-match", "GET", "/static/hello.txt", headers={"If-None-Match": ETAG_HELLO}),
    case("static/if-none-match-weak", "GET", "/static/hello.txt", headers={"If-None-Match": f'"x", W/{ETAG_HELLO}'}),
    case("static/if-none-match-star", "GET", "/static/hello.txt", headers={"If-None-Match": "*"}),
    case("static/if-none-match-other", "GET", "/static/hello.txt", headers={"If-None-Match": '"other"'}),
    case("static/if-modified-since", "GET", "/static/hello.txt", headers={"If-Modified-Since": LAST_MODIFIED}),
    case("static/if-modified-since-old", "GET", "/static/hello.txt",
         headers={"If-Modified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"}),
    case("static/if-modified-since-bad", "GET", "/static/hello.txt", headers={"If-Modified-Since": "yesterday"}),
    # ranges
    case("static/range", "GET", "/static/hello.txt", headers={"Range": "bytes=0-4"}),
    case("static/range-suffix", "GET", "/static/hello.txt", headers={"Range": "bytes=-6"}),
    case("static/range-open", "GET", "/static/hello.txt", headers={"Range": "bytes=6-"}),
    case("static/range-clamped", "GET", "/static/hello.txt", headers={"Range": "bytes=6-1000"}),
    case("static/range-merged", "GET", "/static/hello.txt", headers={"Range": "bytes=0-3,2-5"}),
    case("static/range-unsatisfiable", "GET", "/static/hello.txt", headers={"Range": "bytes=100-"}),
    case("static/range-malformed", "GET", "/static/hello.txt", headers={"Range": "bytes 0-4"}),
    case("static/range-units", "GET", "/static/hello.txt", headers={"Range": "items=0-4"}),
    case("static/range-backwards", "GET", "/static/hello.txt", headers={"Range": "bytes=5-1"}),
    case("static/range-empty", "GET", "/static/hello.txt", headers={"Range": "bytes=abc"}),
    case("static/range-head", "HEAD", "/static/hello.txt", headers={"Range": "bytes=0-4"}),
    case("static/if-range-match", "GET", "/static/hello.txt",
         headers={"Range": "bytes=0-4", "If-Range": LAST_MODIFIED}),
    case("static/if-range-stale", "GET", "/static/hello.txt", headers={"Range": "bytes=0-4", "If-Range": '"stale"'}),
    # html=True
    case("static/html-index", "GET", "/site/"),
    case("static/html-dir-redirect", "GET", "/site/docs"),
    case("static/html-dir-index", "GET", "/site/docs/"),
    case("static/html-404-page", "GET", "/site/nope"),
    case("static/html-file", "GET", "/site/index.html"),
    case("static/mount-no-slash", "GET", "/static"),
    case("static/mount-no-slash-post", "POST", "/static?x=1"),
    case("static/html-mount-no-slash", "GET", "/site"),
    case("static/options", "OPTIONS", "/static/hello.txt"),
    case("static/head-missing", "HEAD", "/static/nope.txt"),
    case("static/head-conditional", "HEAD", "/static/hello.txt", headers={"If-None-Match": ETAG_HELLO}),
    case("static/html-dir-redirect-query", "GET", "/site/docs?lang=en"),
    # templates
    case("static/template", "GET", "/page?title=Hi%20%3Cthere%3E"),
    case("static/template-media-type", "GET", "/plain"),
    case("static/route-beside-mounts", "GET", "/api/ping"),
]
