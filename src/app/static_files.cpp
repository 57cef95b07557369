#include "covet/app/static_files.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "covet/app/app.hpp"
#include "covet/http/ascii.hpp"
#include "covet/http/status.hpp"
#include "covet/http/url.hpp"
#include "covet/io/errno_text.hpp"

namespace covet::app {
namespace {

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Decimal digits only (Python's int() is laxer; nobody sends "+5" or "1_0"). Saturates instead of overflowing.
std::optional<std::uint64_t> parse_uint(std::string_view s) noexcept {
    if (s.empty()) return std::nullopt;
    std::uint64_t v = 0;
    for (const char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        const auto d = static_cast<std::uint64_t>(c - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
    }
    return v;
}

void append_u64(std::string& out, std::uint64_t n) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, n);
    out.append(buf, r.ptr);
}

bool is_text(std::string_view media_type) noexcept { return media_type.starts_with("text/"); }

constexpr std::uint64_t kMaxRanges = 100;  // Starlette's FileResponse.max_ranges

bool read_exact(int fd, std::uint64_t offset, std::uint64_t length, std::string& out) {
    const std::size_t base = out.size();
    out.resize(base + length);
    std::uint64_t done = 0;
    while (done < length) {
        const ssize_t n = ::pread(fd, out.data() + base + done, length - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {  // an error, or the file shrank under us: send what is there
            out.resize(base + done);
            return false;
        }
        done += static_cast<std::uint64_t>(n);
    }
    return true;
}

// The body is the file region itself: the engine sends it from the file (sendfile on plain TCP, bounded
// reads under TLS and HTTP/2), on a descriptor of its own. Read into memory only if none is left to dup.
void set_file_body(Response& r, int fd, std::uint64_t offset, std::uint64_t length) {
    if (length == 0) return;
    if (const int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 0); own >= 0)
        r.set_file_body(io::FileRegion(own, offset, length));
    else
        read_exact(fd, offset, length, r.body());
}

class FdGuard {
public:
    explicit FdGuard(int fd) noexcept : fd_(fd) {}
    ~FdGuard() {
        if (fd_ >= 0) ::close(fd_);
    }
    FdGuard(const FdGuard&) = delete;
    FdGuard& operator=(const FdGuard&) = delete;

private:
    int fd_;
};

// The accepted content codings, by preference: br, then gzip ("q=0" refuses one).
bool accepts_coding(std::string_view accept_encoding, std::string_view coding) noexcept {
    while (!accept_encoding.empty()) {
        const std::size_t comma = accept_encoding.find(',');
        std::string_view item = accept_encoding.substr(0, comma);
        accept_encoding = comma == std::string_view::npos ? std::string_view{} : accept_encoding.substr(comma + 1);
        std::string_view params;
        if (const std::size_t semi = item.find(';'); semi != std::string_view::npos) {
            params = item.substr(semi + 1);
            item = item.substr(0, semi);
        }
        if (!iequals(trim(item), coding)) continue;
        params = trim(params);
        if (params.starts_with("q=") || params.starts_with("Q=")) {
            const std::string_view q = trim(params.substr(2));
            return !(q == "0" || q == "0." || q == "0.0" || q == "0.00" || q == "0.000");
        }
        return true;
    }
    return false;
}

}  // namespace

// ---- path ----

bool static_relative_path(std::string_view raw, std::string& out) {
    out.clear();
    std::string decoded;
    if (http::needs_decoding(raw, false)) {
        decoded = http::percent_decode(raw, false);
        raw = decoded;
    }
    if (raw.find('\0') != std::string_view::npos) return false;
    // Segments are appended to `out` joined by '/', so ".." drops back to the previous '/': no segment list.
    while (true) {
        const std::size_t slash = raw.find('/');
        const std::string_view seg = raw.substr(0, slash);
        if (seg == "..") {
            if (out.empty()) return false;
            const std::size_t prev = out.rfind('/');
            out.resize(prev == std::string::npos ? 0 : prev);
        } else if (!seg.empty() && seg != ".") {
            if (!out.empty()) out.push_back('/');
            out.append(seg);
        }
        if (slash == std::string_view::npos) break;
        raw.remove_prefix(slash + 1);
    }
    return true;
}

// ---- ranges ----

RangeResult parse_byte_ranges(std::string_view header, std::uint64_t size, std::vector<ByteRange>& out) {
    out.clear();
    const std::size_t eq = header.find('=');
    if (eq == std::string_view::npos) return {RangeOutcome::malformed, "Malformed range header."};
    if (!iequals(trim(header.substr(0, eq)), "bytes")) return {RangeOutcome::malformed, "Only support bytes range"};
    std::string_view spec = header.substr(eq + 1);
    if (static_cast<std::uint64_t>(std::count(spec.begin(), spec.end(), ',')) + 1 > kMaxRanges)
        return {RangeOutcome::whole, {}};
    while (true) {
        const std::size_t comma = spec.find(',');
        const std::string_view part = trim(spec.substr(0, comma));
        const std::size_t dash = part.find('-');
        if (!part.empty() && part != "-" && dash != std::string_view::npos) {
            const std::string_view s = trim(part.substr(0, dash)), e = trim(part.substr(dash + 1));
            const auto start = parse_uint(s), end = parse_uint(e);
            if (s.empty() && end) {  // suffix: the last N bytes
                out.push_back({*end >= size ? 0 : size - *end, size});
            } else if (start && (e.empty() || end)) {
                out.push_back({*start, end && *end < size ? *end + 1 : size});
            }
        }
        if (comma == std::string_view::npos) break;
        spec.remove_prefix(comma + 1);
    }
    if (out.empty()) return {RangeOutcome::malformed, "Range header: range must be requested"};
    for (const ByteRange& r : out)
        if (r.start >= size) return {RangeOutcome::unsatisfiable, {}};
    for (const ByteRange& r : out)
        if (r.start >= r.end) return {RangeOutcome::malformed, "Range header: start must be less than end"};
    if (out.size() > 1) {
        std::sort(out.begin(), out.end(), [](const ByteRange& a, const ByteRange& b) {
            return a.start != b.start ? a.start < b.start : a.end < b.end;
        });
        std::size_t w = 0;
        for (std::size_t i = 1; i < out.size(); ++i) {
            if (out[i].start <= out[w].end)
                out[w].end = std::max(out[w].end, out[i].end);
            else
                out[++w] = out[i];
        }
        out.resize(w + 1);
    }
    return {RangeOutcome::partial, {}};
}

// ---- validators ----

std::string file_etag(const timespec& mtime, std::uint64_t size) {
    // Python's st_mtime is the double sec + nsec * 1e-9; str() of it is the shortest round-trip repr,
    // which std::to_chars gives in fixed notation (Python's repr is fixed for 1e-4 <= x < 1e16, and adds ".0"
    // to integers; plain to_chars would pick the shorter "1.7e+09").
    const double seconds = static_cast<double>(mtime.tv_sec) + static_cast<double>(mtime.tv_nsec) * 1e-9;
    char buf[400];
    const auto r = std::to_chars(buf, buf + sizeof buf, seconds, std::chars_format::fixed);
    std::string base(buf, r.ptr);
    if (base.find_first_of(".e") == std::string::npos) base.append(".0");
    base.push_back('-');
    append_u64(base, size);
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int len = 0;
    EVP_Digest(base.data(), base.size(), md.data(), &len, EVP_md5(), nullptr);
    static constexpr char hex[] = "0123456789abcdef";
    std::string etag;
    etag.reserve(2 + 2 * len);
    etag.push_back('"');
    for (unsigned int i = 0; i < len; ++i) {
        etag.push_back(hex[md[i] >> 4]);
        etag.push_back(hex[md[i] & 0xf]);
    }
    etag.push_back('"');
    return etag;
}

std::string http_date(std::time_t t) {
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    const std::size_t n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return {buf, n};
}

std::optional<std::time_t> parse_http_date(std::string_view s) {
    s = trim(s);
    const std::string text(s);
    static constexpr std::array<const char*, 3> formats = {
        "%a, %d %b %Y %H:%M:%S GMT",  // IMF-fixdate
        "%A, %d-%b-%y %H:%M:%S GMT",  // RFC 850
        "%a %b %e %H:%M:%S %Y",       // asctime
    };
    for (const char* f : formats) {
        std::tm tm{};
        const char* end = strptime(text.c_str(), f, &tm);
        if (end && *end == '\0') return timegm(&tm);
    }
    return std::nullopt;
}

bool etag_matches(std::string_view if_none_match, std::string_view etag) noexcept {
    if (trim(if_none_match) == "*") return true;
    while (true) {
        const std::size_t comma = if_none_match.find(',');
        std::string_view tag = trim(if_none_match.substr(0, comma));
        if (tag.starts_with("W/")) tag.remove_prefix(2);
        if (tag == etag) return true;
        if (comma == std::string_view::npos) return false;
        if_none_match.remove_prefix(comma + 1);
    }
}

// ---- media types ----

MediaTypes MediaTypes::defaults() {
    MediaTypes m;
    m.types = {
        {".html", "text/html"},        {".htm", "text/html"},
        {".css", "text/css"},          {".js", "text/javascript"},
        {".mjs", "text/javascript"},   {".json", "application/json"},
        {".txt", "text/plain"},        {".xml", "text/xml"},
        {".csv", "text/csv"},          {".md", "text/markdown"},
        {".svg", "image/svg+xml"},     {".png", "image/png"},
        {".jpg", "image/jpeg"},        {".jpeg", "image/jpeg"},
        {".gif", "image/gif"},         {".webp", "image/webp"},
        {".avif", "image/avif"},       {".ico", "image/vnd.microsoft.icon"},
        {".woff", "font/woff"},        {".woff2", "font/woff2"},
        {".ttf", "font/ttf"},          {".otf", "font/otf"},
        {".wasm", "application/wasm"}, {".pdf", "application/pdf"},
        {".zip", "application/zip"},   {".tar", "application/x-tar"},
        {".mp4", "video/mp4"},         {".webm", "video/webm"},
        {".mp3", "audio/mpeg"},        {".wav", "audio/x-wav"},
        {".map", "application/json"},  {".webmanifest", "application/manifest+json"},
    };
    m.suffixes = {
        {".tgz", ".tar.gz"}, {".taz", ".tar.gz"}, {".tz", ".tar.gz"}, {".tbz2", ".tar.bz2"}, {".txz", ".tar.xz"}};
    m.encodings = {".gz", ".Z", ".bz2", ".xz", ".br"};
    m.add_charsets();
    return m;
}

void MediaTypes::add_charsets() {
    for (auto& [ext, type] : types)
        if (is_text(type) && type.find("charset=") == std::string::npos) type.append("; charset=utf-8");
}

std::string_view MediaTypes::content_type(std::string_view filename) const {
    // As mimetypes.guess_type: the suffix map first, then one encoding suffix is skipped, then the type by
    // exact suffix, then lower-cased.
    if (const std::size_t slash = filename.rfind('/'); slash != std::string_view::npos)
        filename.remove_prefix(slash + 1);
    std::string name(filename);
    auto suffix_of = [](std::string_view n) -> std::string_view {
        const std::size_t dot = n.rfind('.');
        return dot == std::string_view::npos || dot == 0 ? std::string_view{} : n.substr(dot);
    };
    for (int guard = 0; guard < 4; ++guard) {
        const auto it = suffixes.find(std::string(suffix_of(name)));
        if (it == suffixes.end()) break;
        name.resize(name.size() - it->first.size());
        name.append(it->second);
    }
    std::string ext(suffix_of(name));
    if (!ext.empty() && std::find(encodings.begin(), encodings.end(), ext) != encodings.end()) {
        name.resize(name.size() - ext.size());
        ext = std::string(suffix_of(name));
    }
    auto found = types.find(ext);
    if (found == types.end()) {
        std::string lower = ext;
        for (char& c : lower) c = ascii_lower(c);
        found = types.find(lower);
    }
    if (found == types.end()) return "application/octet-stream";
    return found->second;
}

// ---- the mount ----

StaticFiles::StaticFiles(StaticFilesOptions options, MediaTypes types)
    : options_(std::move(options)), types_(std::move(types)) {
    types_.add_charsets();
    if (options_.directories.empty()) throw std::runtime_error("StaticFiles needs at least one directory");
    for (const std::string& dir : options_.directories) {
        const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
            const int err = errno;
            for (Root& r : roots_) ::close(r.fd);
            throw std::runtime_error("StaticFiles directory '" + dir + "' cannot be opened: " + io::errno_text(err) +
                                     (err == ENOTDIR ? " (it is not a directory)" : ""));
        }
        Root root{fd, dir, {}};
        if (char* real = ::realpath(dir.c_str(), nullptr)) {
            root.real = real;
            std::free(real);  // NOLINT(cppcoreguidelines-no-malloc): realpath's buffer
        }
        roots_.push_back(std::move(root));
    }
}

StaticFiles::~StaticFiles() {
    for (Root& r : roots_) ::close(r.fd);
}

StaticFiles::Found StaticFiles::lookup(std::string_view rel) const {
    const std::string path = rel.empty() ? std::string(".") : std::string(rel);
    for (const Root& root : roots_) {
        int fd = -1;
        int err = 0;
        if (options_.follow_symlink) {
            fd = ::openat(root.fd, path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
            err = fd < 0 ? errno : 0;
        } else {
            open_how how{};
            how.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
            how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
            fd = static_cast<int>(::syscall(SYS_openat2, root.fd, path.c_str(), &how, sizeof how));
            err = fd < 0 ? errno : 0;
            if (fd < 0 && (err == EXDEV || err == ENOSYS || err == EPERM) && !root.real.empty()) {
                // A link the kernel would not follow beneath the root (an absolute one, or no openat2 here):
                // resolve it and serve it only if it lands inside the root, as Starlette's realpath check does.
                const std::string joined = root.path + "/" + path;
                char* real = ::realpath(joined.c_str(), nullptr);
                err = real ? 0 : errno;
                if (real) {
                    const std::string_view r(real);
                    if (r == root.real || (r.starts_with(root.real) && r[root.real.size()] == '/')) {
                        fd = ::open(real, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
                        err = fd < 0 ? errno : 0;
                    } else {
                        err = ENOENT;
                    }
                    std::free(real);  // NOLINT(cppcoreguidelines-no-malloc): realpath's buffer
                }
            }
        }
        if (fd < 0) {
            if (err == EACCES) {
                Found f;
                f.permission_denied = true;
                return f;
            }
            continue;  // missing, not a directory on the way, a link out of the root, name too long: next root
        }
        Found f;
        f.fd = fd;
        if (::fstat(fd, &f.st) != 0) {
            ::close(fd);
            continue;
        }
        return f;
    }
    return {};
}

Response StaticFiles::error(int status) const {
    if (options_.json_errors)
        return Response::json(R"({"detail":")" + std::string(http::reason_phrase(status)) + R"("})", status);
    std::string body = std::to_string(status);
    body.append(" ").append(http::reason_phrase(status)).push_back('\n');
    return Response::text(std::move(body), status);
}

Response StaticFiles::serve(const Request& request, std::string_view rest) const {
    if (request.method() != Method::get && request.method() != Method::head) {
        Response r = error(405);
        r.add_header("Allow", "GET, HEAD");
        return r;
    }
    std::string rel;
    if (static_relative_path(rest, rel)) {
        Found found = lookup(rel);
        if (found.permission_denied) return error(401);
        FdGuard guard(found.fd);
        if (found.fd >= 0 && S_ISREG(found.st.st_mode)) return file_response(request, rel, found, 200);
        if (found.fd >= 0 && S_ISDIR(found.st.st_mode) && options_.html) {
            const std::string index = rel.empty() ? std::string("index.html") : rel + "/index.html";
            Found idx = lookup(index);
            FdGuard index_guard(idx.fd);
            if (idx.fd >= 0 && S_ISREG(idx.st.st_mode)) {
                const std::string_view path = request.path();
                if (!path.ends_with('/')) {
                    Response r(307);
                    std::string location(request.scheme());
                    location.append("://").append(request.header("host").value_or("localhost"));
                    location.append(path).push_back('/');
                    if (!request.query_string().empty()) location.append("?").append(request.query_string());
                    r.add_header("Location", location);
                    return r;
                }
                return file_response(request, index, idx, 200);
            }
        }
    }
    if (!options_.fallback.empty()) {
        Found fb = lookup(options_.fallback);
        FdGuard guard(fb.fd);
        if (fb.fd >= 0 && S_ISREG(fb.st.st_mode)) return file_response(request, options_.fallback, fb, 200);
    }
    if (options_.html) {
        Found nf = lookup("404.html");
        FdGuard guard(nf.fd);
        if (nf.fd >= 0 && S_ISREG(nf.st.st_mode)) return file_response(request, "404.html", nf, 404);
    }
    return error(404);
}

Response StaticFiles::file_response(const Request& request, std::string_view rel, Found& found, int status) const {
    const bool head = request.method() == Method::head;
    Response r(status);
    r.set_content_type(types_.content_type(rel));

    // A precompressed sibling (same root search) when the client takes it.
    int fd = found.fd;
    struct stat st = found.st;
    int sibling_fd = -1;
    std::string_view coding;
    if (options_.precompressed) {
        const std::string_view accept = request.header("accept-encoding").value_or("");
        for (const auto& [name, suffix] :
             {std::pair<std::string_view, std::string_view>{"br", ".br"}, {"gzip", ".gz"}}) {
            if (!accepts_coding(accept, name)) continue;
            std::string sibling(rel);
            sibling.append(suffix);
            Found s = lookup(sibling);
            if (s.fd >= 0 && S_ISREG(s.st.st_mode)) {
                sibling_fd = s.fd, st = s.st, fd = s.fd, coding = name;
                break;
            }
            if (s.fd >= 0) ::close(s.fd);
        }
    }
    FdGuard sibling_guard(sibling_fd);

    const auto size = static_cast<std::uint64_t>(st.st_size);
    const std::string etag = file_etag(st.st_mtim, size);
    const std::string last_modified = http_date(st.st_mtim.tv_sec);
    r.add_header("accept-ranges", "bytes");
    r.add_header("last-modified", last_modified);
    r.add_header("etag", etag);
    if (!coding.empty()) r.add_header("content-encoding", coding);
    if (options_.precompressed) r.add_header("vary", "Accept-Encoding");

    if (status == 200) {
        // Conditional request (Starlette: If-None-Match decides alone when present).
        bool not_modified = false;
        if (const auto inm = request.header("if-none-match"); inm && !trim(*inm).empty()) {
            not_modified = etag_matches(*inm, etag);
        } else if (const auto ims = request.header("if-modified-since")) {
            const auto since = parse_http_date(*ims);
            not_modified = since && *since >= st.st_mtim.tv_sec;
        }
        if (not_modified) {
            Response nm(304);
            nm.add_header("etag", etag);
            if (options_.precompressed) nm.add_header("vary", "Accept-Encoding");
            return nm;
        }
    }

    std::vector<ByteRange> ranges;
    const auto range = request.header("range");
    bool use_range = status == 200 && range.has_value();
    if (use_range) {
        if (const auto if_range = request.header("if-range"))
            use_range = !if_range->starts_with("W/") && (*if_range == last_modified || *if_range == etag);
    }
    if (use_range) {
        const RangeResult parsed = parse_byte_ranges(*range, size, ranges);
        if (parsed.outcome == RangeOutcome::malformed) return Response::text(std::string(parsed.message), 400);
        if (parsed.outcome == RangeOutcome::unsatisfiable) {
            Response u = Response::text({}, 416);
            std::string cr = "bytes */";
            append_u64(cr, size);
            u.add_header("content-range", cr);
            return u;
        }
        if (parsed.outcome == RangeOutcome::whole) ranges.clear();
    }

    if (ranges.size() == 1) {
        const ByteRange br = ranges.front();
        r.set_status(206);
        std::string cr = "bytes ";
        append_u64(cr, br.start);
        cr.push_back('-');
        append_u64(cr, br.end - 1);
        cr.push_back('/');
        append_u64(cr, size);
        r.add_header("content-range", cr);
        if (head)
            r.set_head_length(br.end - br.start);
        else
            set_file_body(r, fd, br.start, br.end - br.start);
        return r;
    }
    if (ranges.size() > 1) {
        std::array<unsigned char, 13> random{};
        RAND_bytes(random.data(), static_cast<int>(random.size()));
        static constexpr char hex[] = "0123456789abcdef";
        std::string boundary;
        for (const unsigned char b : random) boundary.append({hex[b >> 4], hex[b & 0xf]});
        const std::string part_type(r.content_type());
        r.set_content_type("multipart/byteranges; boundary=" + boundary);
        std::string body;
        for (const ByteRange& br : ranges) {
            body.append("--").append(boundary).append("\r\nContent-Type: ").append(part_type);
            body.append("\r\nContent-Range: bytes ");
            append_u64(body, br.start);
            body.push_back('-');
            append_u64(body, br.end - 1);
            body.push_back('/');
            append_u64(body, size);
            body.append("\r\n\r\n");
            read_exact(fd, br.start, br.end - br.start, body);
            body.append("\r\n");
        }
        body.append("--").append(boundary).append("--");
        r.set_status(206);
        if (head)
            r.set_head_length(body.size());
        else
            r.set_body(std::move(body));
        return r;
    }
    if (head)
        r.set_head_length(size);
    else
        set_file_body(r, fd, 0, size);
    return r;
}

void mount_static(App& app, std::string_view prefix, std::shared_ptr<const StaticFiles> files) {
    std::string base(prefix);
    while (!base.empty() && base.back() == '/') base.pop_back();
    if (base.find_first_of("{}") != std::string::npos)
        throw RouteError("a static mount path is a literal path, without parameters: '" + std::string(prefix) + "'");
    const std::string pattern = base + "/{static_path:path}";
    auto handler = [files = std::move(files)](Request& request) {
        return files->serve(request, request.param("static_path").value_or(""));
    };
    app.route(Method::get, pattern, Handler(handler));
    app.route(Method::head, pattern, Handler(handler));
    if (!base.empty()) {
        auto redirect = [](Request& request) {
            Response r(307);
            std::string location(request.scheme());
            location.append("://").append(request.header("host").value_or("localhost"));
            location.append(request.path()).push_back('/');
            if (!request.query_string().empty()) location.append("?").append(request.query_string());
            r.add_header("Location", location);
            return r;
        };
        for (const Method m :
             {Method::get, Method::head, Method::post, Method::put, Method::patch, Method::del, Method::options})
            app.route(m, base, Handler(redirect));
    }
}

}  // namespace covet::app
