// Static files served by the engine: a mount prefix maps to one or more directories.
//
//   auto files = std::make_shared<covet::app::StaticFiles>(covet::app::StaticFilesOptions{.directories = {"public"}});
//   covet::app::mount_static(app, "/static", files);   // GET/HEAD /static/{path:path}, /static -> 307 /static/
//
// Behaviour follows Starlette's StaticFiles/FileResponse (what FastAPI serves): ETag (Starlette's md5 of
// "mtime-size"), Last-Modified, If-None-Match / If-Modified-Since -> 304, If-Range, a single Range -> 206 with
// Content-Range, several -> 206 multipart/byteranges, unsatisfiable -> 416, malformed -> 400, HEAD, the media
// type from the file name, `html` (index.html for directories, 404.html), a directory URL without its slash ->
// 307. Beyond Starlette: precompressed `.br`/`.gz` siblings chosen by Accept-Encoding (`precompressed`) and an
// SPA fallback file (`fallback`).
//
// Safety: the path below the mount is percent-decoded once, split on '/', empty and "." segments dropped and
// ".." resolved lexically; a path that climbs above the root, or holds a NUL byte, is "not found". Without
// `follow_symlink` the file is opened with openat2(RESOLVE_BENEATH) relative to the root's descriptor, so a
// symbolic link that leads out of the root is refused by the kernel (an absolute link that stays inside the
// root is checked with realpath, as Starlette does); with it, links are followed anywhere. Only regular files
// are served (no devices, no FIFOs: opened O_NONBLOCK).
//
// A GET body (the whole file, or a single Range) is the file itself (Response::set_file_body): the engine sends
// it with sendfile(2) on plain TCP (zero-copy) and in bounded pieces under TLS and HTTP/2, so a large file is
// never read into memory. Multipart ranges (and a file under a compressing middleware) are read with pread.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "covet/http/request.hpp"
#include "covet/http/response.hpp"

namespace covet {
class App;
}

namespace covet::app {

// ---- the pure pieces (unit-tested on their own) ----

// The path below the mount (raw, percent-encoded, no query) as a relative path: decoded, empty and "."
// segments dropped, ".." resolved. "" for the root itself. False when it is unsafe: a NUL byte, or ".."
// climbing above the root.
bool static_relative_path(std::string_view raw, std::string& out);

struct ByteRange {
    std::uint64_t start = 0, end = 0;  // [start, end)
};
enum class RangeOutcome : std::uint8_t { whole, partial, malformed, unsatisfiable };
struct RangeResult {
    RangeOutcome outcome = RangeOutcome::whole;
    std::string_view message;  // for malformed: the 400 body (Starlette's words)
};
// A Range header against a file of `size` bytes, parsed as Starlette 1.x does: unknown or non-numeric parts
// are skipped, more than 100 parts serve the whole file, overlapping (and adjacent) ranges are merged.
// `out` holds the ranges when the outcome is partial.
RangeResult parse_byte_ranges(std::string_view header, std::uint64_t size, std::vector<ByteRange>& out);

// Starlette's ETag: the quoted md5 hex of "<mtime as Python's float repr>-<size>".
std::string file_etag(const timespec& mtime, std::uint64_t size);
// IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT").
std::string http_date(std::time_t t);
// IMF-fixdate, RFC 850 and asctime dates; nullopt when unreadable.
std::optional<std::time_t> parse_http_date(std::string_view s);
// If-None-Match against an ETag (weak comparison; "*" matches).
bool etag_matches(std::string_view if_none_match, std::string_view etag) noexcept;

// ---- the mount ----

struct StaticFilesOptions {
    std::vector<std::string> directories;  // searched in order; each must exist
    bool html = false;                     // index.html for directories, 404.html for misses
    bool follow_symlink = false;           // follow links that lead out of the root
    bool precompressed = false;            // serve file.br / file.gz for file when Accept-Encoding allows
    std::string fallback;                  // SPA: this file (relative to the root) answers 200 for misses
    bool json_errors = true;               // 404/401 bodies as {"detail": ...} (FastAPI) or plain text
};

// Media types by file name, as Python's mimetypes.guess_type reads them (suffix map, encodings, case).
struct MediaTypes {
    std::unordered_map<std::string, std::string> types;     // ".css" -> "text/css"
    std::unordered_map<std::string, std::string> suffixes;  // ".tgz" -> ".tar.gz"
    std::vector<std::string> encodings;                     // ".gz", ".br", ...: skipped to find the type
    static MediaTypes defaults();                           // a small built-in table
    // Appends "; charset=utf-8" to the text/* types that name no charset (as Starlette's responses do); the
    // StaticFiles constructor calls it.
    void add_charsets();
    // The Content-Type for a file name, or application/octet-stream. Valid while the table lives.
    std::string_view content_type(std::string_view filename) const;
};

class StaticFiles {
public:
    // Opens the directories; throws std::runtime_error naming one that is missing or not a directory.
    explicit StaticFiles(StaticFilesOptions options, MediaTypes types = MediaTypes::defaults());
    ~StaticFiles();
    StaticFiles(const StaticFiles&) = delete;
    StaticFiles& operator=(const StaticFiles&) = delete;

    // The answer for `request`, whose path below the mount is `rest` (raw). GET and HEAD only (else 405).
    Response serve(const Request& request, std::string_view rest) const;

    const StaticFilesOptions& options() const noexcept { return options_; }

private:
    struct Root {
        int fd = -1;
        std::string path;
        std::string real;  // realpath, for the absolute-link check
    };
    struct Found {
        int fd = -1;
        struct stat st {};
        bool permission_denied = false;
    };
    Found lookup(std::string_view rel) const;
    Response file_response(const Request& request, std::string_view rel, Found& found, int status) const;
    Response error(int status) const;

    StaticFilesOptions options_;
    MediaTypes types_;
    std::vector<Root> roots_;
};

// Registers GET and HEAD on `prefix` + "/{path:path}", and `prefix` alone answering 307 to `prefix` + "/".
// `prefix` is a literal path ("/static"); throws covet::RouteError for a conflict.
void mount_static(App& app, std::string_view prefix, std::shared_ptr<const StaticFiles> files);

}  // namespace covet::app
