// The HTTP/1.x request reader over llhttp (see request_reader.hpp for its contract).
//
// Parsing strategy: a request head is handed to llhttp only once it is complete (its blank line found),
// so every token llhttp reports is one contiguous view into the input and the request is built without
// copying. Body bytes go through llhttp as they come. llhttp pauses at the end of each message, so one
// feed never reads past the request it reports.
#include "covet/http1/request_reader.hpp"

#include <llhttp.h>

#include <algorithm>

namespace covet::http1 {

using http::RequestError;

namespace {

// Position just past the blank line that ends a head, or npos. Accepts a bare-LF blank line too, so that
// llhttp (strict) can reject it with 400 rather than the request hanging until a timeout.
std::size_t find_head_end(std::string_view buf, std::size_t from) {
    for (std::size_t i = buf.find('\n', from); i != std::string_view::npos; i = buf.find('\n', i + 1)) {
        if (i + 1 < buf.size() && buf[i + 1] == '\n') return i + 2;
        if (i + 2 < buf.size() && buf[i + 1] == '\r' && buf[i + 2] == '\n') return i + 3;
    }
    return std::string_view::npos;
}

// Empty lines (CRLF or bare LF) before a request line are ignored (RFC 9112 §2.2): how many bytes of
// them start `buf`. A lone trailing CR may be the start of one and is left for the next read.
std::size_t empty_line_prefix(std::string_view buf) {
    std::size_t i = 0;
    while (i < buf.size()) {
        if (buf[i] == '\n')
            ++i;
        else if (buf[i] == '\r' && i + 1 < buf.size() && buf[i + 1] == '\n')
            i += 2;
        else
            break;
    }
    return i;
}

std::size_t request_line_length(std::string_view buf) {
    const std::size_t nl = buf.find('\n');
    return nl == std::string_view::npos ? buf.size() : nl;
}

constexpr RequestError url_too_long{414, "the request line is longer than the URL limit"};
constexpr RequestError head_too_large{431, "the request head is larger than the header size limit"};
constexpr RequestError bad_chunk_end{400, "chunk data is not followed by CRLF"};
constexpr RequestError proxy_header_not_expected{
    400, "a PROXY protocol header from a peer that is not one of the server's trusted load balancers (proxy_protocol)"};

}  // namespace

struct RequestReader::Parser {
    llhttp_settings_t settings{};
    llhttp_t llhttp{};
};

// ---- llhttp callbacks (a head is contiguous, so each of its tokens arrives in one piece) ----
struct RequestReader::Callbacks {
    static RequestReader& self(llhttp_t* p) { return *static_cast<RequestReader*>(p->data); }

    static int on_method(llhttp_t* p, const char* at, std::size_t len) {
        const std::string_view name(at, len);
        if (name == "PRI")
            return self(p).fail({505, "HTTP/2 is not enabled on this port (got the HTTP/2 connection preface)"});
        if (const RequestError e = self(p).builder_.method(name)) return self(p).fail(e);
        return 0;
    }
    static int on_url(llhttp_t* p, const char* at, std::size_t len) {
        RequestReader& s = self(p);
        if (len > s.limits_.max_url_bytes) return s.fail({414, "the request target is longer than the URL limit"});
        s.builder_.target(std::string_view(at, len));
        return 0;
    }
    static int on_header_field(llhttp_t* p, const char* at, std::size_t len) {
        RequestReader& s = self(p);
        if (s.fields_ == Fields::trailers) return 0;  // not headers, and may be split across reads
        s.fields_ = Fields::name;
        if (const RequestError e = s.limits_.header_room(s.request_.header_count())) return s.fail(e);
        // RFC 9112 §5.1: whitespace between a field name and its colon must be rejected (llhttp 8 lets it
        // through). The head is contiguous, so the byte after the name is readable.
        if (len == 0 || at[len] != ':' || at[len - 1] == ' ' || at[len - 1] == '\t')
            return s.fail({400, "a header name is followed by whitespace before ':'"});
        (void)s.builder_.header(std::string_view(at, len));  // room checked above
        return 0;
    }
    static int on_header_value(llhttp_t* p, const char* at, std::size_t len) {
        RequestReader& s = self(p);
        if (s.fields_ == Fields::trailers) return 0;
        // A second value piece for one field is an obs-fold continuation (RFC 9112 §5.2).
        if (s.fields_ != Fields::name) return s.fail({400, "obsolete line folding is not allowed"});
        s.fields_ = Fields::between;
        // Optional whitespace around a value is not part of it (RFC 9110 §5.5); llhttp keeps trailing OWS.
        while (len > 0 && (at[len - 1] == ' ' || at[len - 1] == '\t')) --len;
        s.builder_.header_value(std::string_view(at, len));
        return 0;
    }
    static int on_headers_complete(llhttp_t* p) {
        RequestReader& s = self(p);
        Request& r = s.request_;
        s.fields_ = Fields::trailers;
        r.set_version(p->http_major, p->http_minor);
        if (p->http_major != 1) return s.fail({505, "only HTTP/1.0 and HTTP/1.1 are supported on this connection"});
        r.set_keep_alive(llhttp_should_keep_alive(p) != 0);
        if (p->http_minor >= 1) {
            int hosts = 0;
            for (const Header& h : r.headers()) hosts += is_letters_name(h.name, "host");
            if (hosts != 1)
                return s.fail({400, hosts ? "the Host header is repeated" : "HTTP/1.1 requires a Host header"});
        }
        if (p->flags & F_CONTENT_LENGTH) {
            s.declared_ = p->content_length;
            s.declared_body_ = s.builder_.declared_length(p->content_length);
            if (s.declared_body_ == http::DeclaredBody::too_large) return s.fail(http::body_too_large);
        }
        return 0;
    }
    static int on_body(llhttp_t* p, const char* at, std::size_t len) {
        RequestReader& s = self(p);
        const std::string_view chunk(at, len);
        if (p->flags & F_CHUNKED) {
            s.chunk_left_ -= std::min<std::uint64_t>(s.chunk_left_, len);
            if (s.chunk_left_ == 0) s.crlf_left_ = 2, s.crlf_from_ = at + len;
        }
        if (s.state_ == State::streamed_body) {
            s.streamed_bytes_ += len;
            if (s.streamed_bytes_ > s.limits_.stream_limit()) return s.fail(http::streamed_body_too_large);
            s.pieces_.push_back(chunk);
            return 0;
        }
        const std::size_t total = s.request_.body().size() + len;
        if (total > s.limits_.max_body_bytes) return s.fail(http::body_too_large);
        if (s.request_.body().empty() && !s.body_owned_) {
            s.request_.set_body(chunk);  // zero-copy: the common single-piece body
        } else {
            if (!s.body_owned_) s.body_buf_.assign(s.request_.body()), s.body_owned_ = true;
            s.body_buf_.append(chunk);
            s.request_.set_body(s.body_buf_);
        }
        return 0;
    }
    // llhttp 8 skips the two bytes after chunk data without checking that they are CRLF (RFC 9112 §7.1):
    // a smuggling vector behind stricter proxies. Track where they are and check them ourselves.
    static int on_chunk_header(llhttp_t* p) {
        RequestReader& s = self(p);
        s.chunk_left_ = p->content_length;
        s.crlf_left_ = 0;
        return 0;
    }
    static int on_chunk_complete(llhttp_t* p) {
        RequestReader& s = self(p);
        if (s.crlf_left_ > 0 && !s.check_chunk_crlf(s.crlf_from_ + s.crlf_left_)) return s.fail(bad_chunk_end);
        return 0;
    }
    static int on_message_complete(llhttp_t* p) {
        self(p).state_ = State::between;
        return HPE_PAUSED;  // one request at a time: the session answers them in order
    }
};

RequestReader::RequestReader(const ReaderLimits& limits) : limits_(limits), parser_(std::make_unique<Parser>()) {
    llhttp_settings_t& st = parser_->settings;
    llhttp_settings_init(&st);
    st.on_method = &Callbacks::on_method;
    st.on_url = &Callbacks::on_url;
    st.on_header_field = &Callbacks::on_header_field;
    st.on_header_value = &Callbacks::on_header_value;
    st.on_headers_complete = &Callbacks::on_headers_complete;
    st.on_body = &Callbacks::on_body;
    st.on_message_complete = &Callbacks::on_message_complete;
    st.on_chunk_header = &Callbacks::on_chunk_header;
    st.on_chunk_complete = &Callbacks::on_chunk_complete;
    llhttp_init(&parser_->llhttp, HTTP_REQUEST, &st);
    parser_->llhttp.data = this;
    request_.reserve_headers(std::min<std::size_t>(limits_.max_headers, 32));
}

RequestReader::~RequestReader() = default;

RequestReader::Result RequestReader::feed(std::string_view input) {
    pieces_.clear();
    switch (state_) {
        case State::between: {
            // Stray empty lines between requests (or a client's extra CRLF after a body) are not a request.
            // A lone CR at the end may begin one more empty line: it waits, unconsumed, for the next read (taken
            // as the start of a head, the empty lines after it became a head of their own: 400).
            const std::size_t skip = empty_line_prefix(input);
            if (skip == input.size() || (skip + 1 == input.size() && input.back() == '\r'))
                return {Event::more, skip, {}};
            // A new request: the previous one is forgotten, so keep() never touches bytes it viewed.
            state_ = State::head;
            head_scan_ = 0;
            builder_.start();
            body_owned_ = false;
            head_base_ = nullptr;
            head_len_ = 0;
            Result r = read_head(input.substr(skip));
            r.used += skip;
            return r;
        }
        case State::head: return read_head(input);
        case State::body:
        case State::streamed_body: return read_body(input);
        case State::failed: break;
    }
    return {Event::error, 0, {}};
}

RequestReader::Result RequestReader::read_head(std::string_view buf) {
    const std::size_t end = find_head_end(buf, head_scan_ > 2 ? head_scan_ - 2 : 0);
    if (end == std::string_view::npos) {
        if (const RequestError e = check_incomplete_head(buf)) {
            fail(e);
            return {Event::error, 0, {}};
        }
        head_scan_ = buf.size();
        return {Event::more, 0, {}};
    }
    if (end > limits_.max_header_bytes) {
        fail(request_line_length(buf) > limits_.max_url_bytes + 16 ? url_too_long : head_too_large);
        return {Event::error, 0, {}};
    }
    builder_.start();
    body_owned_ = false;
    body_buf_.clear();
    head_base_ = buf.data();
    head_len_ = end;
    fields_ = Fields::between;
    declared_.reset();
    declared_body_ = http::DeclaredBody::fits;
    streamed_bytes_ = 0;
    chunk_left_ = 0;
    crlf_left_ = 0;
    llhttp_t* p = &parser_->llhttp;
    if (p->upgrade) llhttp_reset(p);  // a declined Upgrade: what follows is parsed as HTTP again
    const llhttp_errno_t err = llhttp_execute(p, buf.data(), end);
    if (state_ == State::head) state_ = State::body;  // not paused at the message's end: a body follows
    if (!settle(err, buf.substr(0, end))) return {Event::error, 0, {}};
    // llhttp skips CR and LF before a request line, so a "head" of only those (a bare CR, then an empty line)
    // ended no head, and the request after it would have been parsed as its body, past these checks and with
    // views into input already given back. Found by tests/fuzz/http1_reader_fuzz.cpp (heap-use-after-free).
    if (fields_ != Fields::trailers) {
        fail({400, "a bare CR before the request line"});
        return {Event::error, 0, {}};
    }
    return {state_ == State::between ? Event::complete : Event::head, end, {}};
}

RequestReader::Result RequestReader::read_body(std::string_view buf) {
    if (buf.empty()) return {Event::more, 0, {}};
    llhttp_t* p = &parser_->llhttp;
    if (crlf_left_ > 0) crlf_from_ = buf.data();  // the rest of a chunk's CRLF starts this buffer
    const llhttp_errno_t err = llhttp_execute(p, buf.data(), buf.size());
    const std::size_t used =
        err == HPE_PAUSED ? static_cast<std::size_t>(llhttp_get_error_pos(p) - buf.data()) : buf.size();
    // A chunk's CRLF split across reads: check the part llhttp consumed from this buffer now.
    if (err == HPE_OK && crlf_left_ > 0 && !check_chunk_crlf(buf.data() + buf.size())) {
        fail(bad_chunk_end);
        return {Event::error, buf.size(), pieces_};
    }
    if (!settle(err, buf)) return {Event::error, buf.size(), pieces_};
    return {state_ == State::between ? Event::complete : Event::more, used, pieces_};
}

bool RequestReader::settle(int err, std::string_view input) {
    llhttp_t* p = &parser_->llhttp;
    if (err == HPE_OK) return true;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
        // Upgrade (WebSocket/h2c) is the session's to decide: the request is reported as a plain request.
        if (err == HPE_PAUSED)
            llhttp_resume(p);
        else
            llhttp_resume_after_upgrade(p);
        return true;
    }
    fail(error_.status ? error_ : classify(err, input));
    return false;
}

RequestError RequestReader::classify(int err, std::string_view input) {
    switch (err) {
        case HPE_INVALID_METHOD: {
            // A PROXY protocol v1 header from a peer the server does not take one from (ServerConfig::proxy_protocol)
            // is garbage, not an unknown method.
            if (input.starts_with("PROXY ")) return proxy_header_not_expected;
            // A well-formed token we don't know is "not implemented"; garbage is a bad request.
            const std::size_t sp = input.find(' ');
            const bool token = sp != std::string_view::npos && sp > 0 &&
                               std::all_of(input.begin(), input.begin() + static_cast<std::ptrdiff_t>(sp), is_tchar);
            return token ? http::method_not_implemented : RequestError{400, "the request line is malformed"};
        }
        case HPE_INVALID_VERSION: {
            const std::string_view line = input.substr(0, input.find('\n'));
            return line.find(" HTTP/") != std::string_view::npos
                       ? RequestError{505, "only HTTP/1.0 and HTTP/1.1 are supported on this connection"}
                       : RequestError{400, "the request line is malformed"};
        }
        case HPE_UNEXPECTED_CONTENT_LENGTH:
            return {400, "Content-Length is repeated or sent together with Transfer-Encoding"};
        case HPE_INVALID_CONTENT_LENGTH: return {400, "Content-Length is not a valid number"};
        case HPE_INVALID_TRANSFER_ENCODING: return {400, "Transfer-Encoding is invalid (chunked must be last)"};
        case HPE_INVALID_CHUNK_SIZE: return {400, "a chunk size is not valid hexadecimal"};
        case HPE_INVALID_HEADER_TOKEN: return {400, "a header line is malformed"};
        case HPE_CR_EXPECTED:
        case HPE_LF_EXPECTED: return {400, "line endings must be CRLF"};
        case HPE_INVALID_URL: return {400, "the request target is malformed"};
        default: return {400, llhttp_errno_name(static_cast<llhttp_errno_t>(err))};
    }
}

RequestError RequestReader::check_incomplete_head(std::string_view buf) const {
    // A request starts with a method token. Anything else (a TLS ClientHello on the plain port, binary
    // garbage) is refused now rather than after the header timeout.
    if (!buf.empty() && !is_tchar(buf.front()) && buf.front() != '\r' && buf.front() != '\n')
        return {400, "this is not an HTTP/1.x request (TLS or binary data sent to a plain HTTP port?)"};
    if (request_line_length(buf) > limits_.max_url_bytes + 16) return url_too_long;
    if (buf.size() > limits_.max_header_bytes) return head_too_large;
    return {};
}

// Checks the expected CRLF bytes in [crlf_from_, end); false on a mismatch.
bool RequestReader::check_chunk_crlf(const char* end) {
    while (crlf_left_ > 0 && crlf_from_ < end) {
        if (*crlf_from_ != (crlf_left_ == 2 ? '\r' : '\n')) return false;
        ++crlf_from_;
        --crlf_left_;
    }
    return true;
}

int RequestReader::fail(RequestError e) {
    error_ = e;
    state_ = State::failed;
    return HPE_USER;
}

void RequestReader::stream_body() {
    streamed_bytes_ = request_.body().size();
    request_.set_body({});
    body_owned_ = false;
    request_.set_body_streamed(true);
    state_ = State::streamed_body;
}

void RequestReader::keep(std::string_view input) {
    const char* lo = input.data();
    const char* hi = input.data() + input.size();
    if (head_base_ >= lo && head_base_ < hi) {
        head_buf_.assign(head_base_, head_len_);
        request_.rebase_head(head_base_, head_len_, head_buf_.data());
        head_base_ = head_buf_.data();
    }
    const std::string_view body = request_.body();
    if (!body_owned_ && !body.empty() && body.data() >= lo && body.data() < hi) {
        body_buf_.assign(body);
        body_owned_ = true;
        request_.set_body(body_buf_);
    }
}

bool RequestReader::holds_complete_head(std::string_view buf) noexcept {
    buf.remove_prefix(empty_line_prefix(buf));
    return !buf.empty() && find_head_end(buf, 0) != std::string_view::npos;
}

}  // namespace covet::http1
