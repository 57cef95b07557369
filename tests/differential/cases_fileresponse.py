"""Differential cases for FileResponse and StaticFiles under an app with an HTTP middleware
(apps/fileresponse_app.py): validators, Content-Disposition, Range/If-Range/HEAD, 304, traversal attempts."""

from __future__ import annotations

import hashlib

from cases import case

LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"


def _etag(size: int) -> str:
    return '"' + hashlib.md5(f"1700000000.0-{size}".encode(), usedforsecurity=False).hexdigest() + '"'


ETAG_TEXT = _etag(37)  # files/report.txt
ETAG_HELLO = _etag(12)  # public/hello.txt

CASES = [
    # FileResponse: headers
    case("fileresponse/plain", "GET", "/file/text"),
    case("fileresponse/head", "HEAD", "/file/text"),
    case("fileresponse/post", "POST", "/file/text"),
    case("fileresponse/filename", "GET", "/file/filename"),
    case("fileresponse/unicode-filename", "GET", "/file/unicode-filename"),
    case("fileresponse/inline", "GET", "/file/inline"),
    case("fileresponse/media-type", "GET", "/file/media-type"),
    case("fileresponse/unknown-type", "GET", "/file/unknown-type"),
    case("fileresponse/guess-from-filename", "GET", "/file/guess-from-filename"),
    case("fileresponse/stat-result", "GET", "/file/stat-result"),
    case("fileresponse/given-headers", "GET", "/file/headers"),
    case("fileresponse/created", "GET", "/file/created"),
    case("fileresponse/empty", "GET", "/file/empty"),
    case("fileresponse/big", "GET", "/file/big"),
    case("fileresponse/big-head", "HEAD", "/file/big"),
    case("fileresponse/missing", "GET", "/file/missing"),
    case("fileresponse/directory", "GET", "/file/directory"),
    # FileResponse: ranges
    case("fileresponse/range", "GET", "/file/text", headers={"Range": "bytes=0-9"}),
    case("fileresponse/range-suffix", "GET", "/file/text", headers={"Range": "bytes=-5"}),
    case("fileresponse/range-open", "GET", "/file/text", headers={"Range": "bytes=30-"}),
    case("fileresponse/range-clamped", "GET", "/file/text", headers={"Range": "bytes=30-999"}),
    case("fileresponse/range-multi", "GET", "/file/text", headers={"Range": "bytes=0-3,10-12,-2"}),
    case("fileresponse/range-multi-overlap", "GET", "/file/text", headers={"Range": "bytes=0-5,3-8"}),
    case("fileresponse/range-multi-head", "HEAD", "/file/text", headers={"Range": "bytes=0-3,10-12"}),
    case("fileresponse/range-unsatisfiable", "GET", "/file/text", headers={"Range": "bytes=37-"}),
    case("fileresponse/range-unsatisfiable-multi", "GET", "/file/text", headers={"Range": "bytes=0-1,99-"}),
    case("fileresponse/range-malformed", "GET", "/file/text", headers={"Range": "bytes 0-4"}),
    case("fileresponse/range-units", "GET", "/file/text", headers={"Range": "lines=0-4"}),
    case("fileresponse/range-backwards", "GET", "/file/text", headers={"Range": "bytes=9-3"}),
    case("fileresponse/range-not-numbers", "GET", "/file/text", headers={"Range": "bytes=a-b"}),
    case("fileresponse/range-head", "HEAD", "/file/text", headers={"Range": "bytes=0-9"}),
    case("fileresponse/range-post", "POST", "/file/text", headers={"Range": "bytes=0-9"}),
    case("fileresponse/range-not-200", "GET", "/file/created", headers={"Range": "bytes=0-9"}),
    case("fileresponse/range-empty-file", "GET", "/file/empty", headers={"Range": "bytes=0-"}),
    case("fileresponse/range-big", "GET", "/file/big", headers={"Range": "bytes=100-1200000"}),
    case("fileresponse/range-big-multi", "GET", "/file/big", headers={"Range": "bytes=0-99,500000-1400000"}),
    case("fileresponse/if-range-etag", "GET", "/file/text", headers={"Range": "bytes=0-9", "If-Range": ETAG_TEXT}),
    case("fileresponse/if-range-date", "GET", "/file/text",
         headers={"Range": "bytes=0-9", "If-Range": LAST_MODIFIED}),
    case("fileresponse/if-range-stale", "GET", "/file/text", headers={"Range": "bytes=0-9", "If-Range": '"old"'}),
    case("fileresponse/if-range-weak", "GET", "/file/text",
         headers={"Range": "bytes=0-9", "If-Range": f"W/{ETAG_TEXT}"}),
    case("fileresponse/if-range-given-etag", "GET", "/file/headers",
         headers={"Range": "bytes=0-9", "If-Range": '"mine"'}),
    # StaticFiles under the app's middleware
    case("fileresponse/static-file", "GET", "/static/hello.txt"),
    case("fileresponse/static-css", "GET", "/static/style.css"),
    case("fileresponse/static-nested", "GET", "/static/nested/deep.txt"),
    case("fileresponse/static-head", "HEAD", "/static/hello.txt"),
    case("fileresponse/static-missing", "GET", "/static/nope.txt"),
    case("fileresponse/static-directory", "GET", "/static/nested"),
    case("fileresponse/static-root", "GET", "/static/"),
    case("fileresponse/static-mount-no-slash", "GET", "/static?x=1"),
    case("fileresponse/static-post", "POST", "/static/hello.txt"),
    case("fileresponse/static-dotdot", "GET", "/static/../secret.txt"),
    case("fileresponse/static-dotdot-inside", "GET", "/static/nested/../hello.txt"),
    case("fileresponse/static-encoded-dotdot", "GET", "/static/%2e%2e/secret.txt"),
    case("fileresponse/static-encoded-dotdot-slash", "GET", "/static/%2e%2e%2fsecret.txt"),
    case("fileresponse/static-nul", "GET", "/static/hello.txt%00.png"),
    case("fileresponse/static-symlink-out", "GET", "/static/out-link.txt"),
    case("fileresponse/static-symlink-in", "GET", "/static/in-link.txt"),
    case("fileresponse/static-if-none-match", "GET", "/static/hello.txt", headers={"If-None-Match": ETAG_HELLO}),
    case("fileresponse/static-if-none-match-weak", "GET", "/static/hello.txt",
         headers={"If-None-Match": f'"x", W/{ETAG_HELLO}'}),
    case("fileresponse/static-if-none-match-other", "GET", "/static/hello.txt",
         headers={"If-None-Match": '"other"'}),
    case("fileresponse/static-if-modified-since", "GET", "/static/hello.txt",
         headers={"If-Modified-Since": LAST_MODIFIED}),
    case("fileresponse/static-if-modified-since-old", "GET", "/static/hello.txt",
         headers={"If-Modified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"}),
    case("fileresponse/static-range", "GET", "/static/hello.txt", headers={"Range": "bytes=0-4"}),
    case("fileresponse/static-range-multi", "GET", "/static/hello.txt", headers={"Range": "bytes=0-1,6-8"}),
    case("fileresponse/static-range-unsatisfiable", "GET", "/static/hello.txt", headers={"Range": "bytes=50-"}),
    case("fileresponse/static-if-range", "GET", "/static/hello.txt",
         headers={"Range": "bytes=0-4", "If-Range": ETAG_HELLO}),
    case("fileresponse/static-seen-206", "GET", "/static/hello.txt",
         headers={"Range": "bytes=0-4", "X-Echo-Status": "1"}),
    case("fileresponse/static-seen-416", "GET", "/static/hello.txt",
         headers={"Range": "bytes=50-", "X-Echo-Status": "1"}),
    case("fileresponse/static-seen-304", "GET", "/static/hello.txt",
         headers={"If-None-Match": ETAG_HELLO, "X-Echo-Status": "1"}),
    case("fileresponse/static-seen-404", "GET", "/static/nope.txt", headers={"X-Echo-Status": "1"}),
    case("fileresponse/seen-200", "GET", "/file/text", headers={"X-Echo-Status": "1"}),
    case("fileresponse/seen-206", "GET", "/file/text", headers={"Range": "bytes=0-4", "X-Echo-Status": "1"}),
    case("fileresponse/static-html-index", "GET", "/site/"),
    case("fileresponse/static-html-dir-redirect", "GET", "/site/docs?lang=en"),
    case("fileresponse/static-html-dir-index", "GET", "/site/docs/"),
    case("fileresponse/static-html-404-page", "GET", "/site/nope"),
    case("fileresponse/static-html-mount-no-slash", "GET", "/site"),
]
