// A response a handler returns. Common content types are static strings and small bodies stay in the
// string's inline storage, so a typical response allocates nothing.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "covet/http/fields.hpp"
#include "covet/io/file_region.hpp"

namespace covet {

// Header fields that many responses carry unchanged (a middleware's fixed headers, e.g. SecurityHeadersMiddleware):
// checked and rendered once, then attached to a response by pointer (Response::set_shared_fields) and written by
// every protocol after the response's own headers(), with no copy into the response. Must outlive the responses
// it is attached to (a middleware owns it; middleware live as long as the app).
struct SharedFields {
    Fields fields;      // as given, names and values checked on insert
    std::string http1;  // the same as HTTP/1.1 lines, "Name: value\r\n" each
    explicit SharedFields(Fields f) : fields(std::move(f)) {
        for (const Fields::Field x : fields) http1.append(x.name).append(": ").append(x.value).append("\r\n");
    }
};

class Response {
public:
    Response() = default;
    explicit Response(int status) : status_(status) {}
    Response(int status, std::string body, std::string_view content_type) : status_(status), body_(std::move(body)) {
        set_content_type(content_type);
    }

    static Response text(std::string body, int status = 200) {
        return {literal_ct{}, status, std::move(body), "text/plain; charset=utf-8"};
    }
    // `serialized` must already be JSON.
    static Response json(std::string serialized, int status = 200) {
        return {literal_ct{}, status, std::move(serialized), "application/json"};
    }
    static Response html(std::string body, int status = 200) {
        return {literal_ct{}, status, std::move(body), "text/html; charset=utf-8"};
    }
    static Response bytes(std::string body, std::string_view content_type = "application/octet-stream",
                          int status = 200) {
        Response r(status);
        r.body_ = std::move(body);
        r.set_content_type(content_type);
        return r;
    }
    static Response empty(int status = 204) { return Response(status); }

    int status() const noexcept { return status_; }
    Response& set_status(int s) noexcept {
        status_ = s;
        return *this;
    }

    const std::string& body() const noexcept { return body_; }
    std::string& body() noexcept { return body_; }
    Response& set_body(std::string b) {
        body_ = std::move(b);
        file_.reset();
        return *this;
    }

    // A file body (static files, a Python FileResponse): sent from the file by the engine (sendfile on plain
    // TCP, bounded reads under TLS and HTTP/2) instead of from body(); it replaces any body set before.
    Response& set_file_body(io::FileRegion file) {
        body_.clear();
        file_ = std::move(file);
        return *this;
    }
    bool has_file_body() const noexcept { return static_cast<bool>(file_); }
    const io::FileRegion& file_body() const noexcept { return file_; }
    io::FileRegion& file_body() noexcept { return file_; }
    // Reads a file body into body() (for a middleware that rewrites the bytes, e.g. compression). False when
    // the file could not be read whole (it shrank): the body is then what was read.
    bool materialize_file_body() {
        if (!file_) return true;
        bool whole = true;
        body_.resize(static_cast<std::size_t>(file_.length()));
        std::uint64_t done = 0;
        while (done < file_.length()) {
            const ssize_t n = file_.read_at(done, body_.data() + done, body_.size() - done);
            if (n <= 0) {
                whole = false;
                break;
            }
            done += static_cast<std::uint64_t>(n);
        }
        body_.resize(static_cast<std::size_t>(done));
        file_.reset();
        return whole;
    }
    // The body's size: the file region's, or body()'s.
    std::uint64_t body_size() const noexcept { return file_ ? file_.length() : body_.size(); }

    std::string_view content_type() const noexcept { return content_type_; }
    // Copies the value unless it is one of the library's static strings. Throws std::invalid_argument for a value
    // with CR, LF or NUL (as add_header: it would split the response).
    Response& set_content_type(std::string_view ct) {
        for (const char c : ct)
            if (c == '\r' || c == '\n' || c == '\0')
                throw std::invalid_argument(
                    "covet: cannot add the header \"Content-Type\": the value must not contain CR, LF or NUL");
        owned_content_type_.assign(ct);
        content_type_ = owned_content_type_;
        return *this;
    }

    // Adds a header field (repeatable: Set-Cookie; kept in order). Server, Date, Content-Length and
    // Transfer-Encoding are written by the protocol and must not be set here. Throws std::invalid_argument,
    // naming the cause, for a name that is not a token or a value with CR, LF or NUL (see field_error).
    Response& add_header(std::string_view name, std::string_view value) {
        headers_.add(name, value, "header");
        return *this;
    }
    // add_header for a field checked beforehand (a middleware's fixed headers, checked when it was configured).
    Response& add_prechecked_header(std::string_view name, std::string_view value) {
        headers_.add_prechecked(name, value);
        return *this;
    }
    // Adds every field of `fields`, checked when they were added there (a middleware's fixed set, built once), in
    // one copy.
    Response& add_prechecked_headers(const Fields& fields) {
        headers_.append(fields);
        return *this;
    }
    void reserve_headers(std::size_t bytes, std::size_t count) { headers_.reserve_more(bytes, count); }
    // Fields sent after headers() (see SharedFields), in the order the sets were attached; not among headers()
    // (has_header does not see them). Up to max_shared_sets per response (security headers' and CORS's answer).
    // set_shared_fields replaces them all with one (null: none); add_shared_fields attaches one more, false when
    // there is no room (its fields then go among the response's own).
    static constexpr std::size_t max_shared_sets = 2;
    Response& set_shared_fields(const SharedFields* fields) noexcept {
        shared_fields_ = {fields, nullptr};
        return *this;
    }
    bool add_shared_fields(const SharedFields* fields) noexcept {
        if (!shared_fields_[0])
            shared_fields_[0] = fields;
        else if (!shared_fields_[1])
            shared_fields_[1] = fields;
        else
            return false;
        return true;
    }
    // Copies the attached sets' fields among the response's own (after them: where they were written) and detaches
    // the sets, for a middleware that must find, join or replace one of those fields by name (compression's Vary).
    void unshare_fields() {
        for (const SharedFields* set : shared_fields_)
            if (set) headers_.append(set->fields);
        shared_fields_ = {};
    }
    // The i-th set attached, null past the last (the sets fill from index 0).
    const SharedFields* shared_fields(std::size_t i = 0) const noexcept {
        return i < max_shared_sets ? shared_fields_[i] : nullptr;
    }
    // Removes every field named `name` (case-insensitive); returns how many there were.
    std::size_t remove_header(std::string_view name) noexcept { return headers_.remove(name); }
    // Replaces every field named `name` with one holding `value` (checked as add_header).
    Response& set_header(std::string_view name, std::string_view value) {
        headers_.remove(name);
        return add_header(name, value);
    }
    // The fields added with add_header, in order (Content-Type is content_type(), not among them).
    const Fields& headers() const noexcept { return headers_; }
    // Case-insensitive.
    bool has_header(std::string_view name) const noexcept { return headers_.contains(name); }

    // Adds a trailer field, sent after the body (gRPC status); checked as add_header. HTTP/2 sends
    // trailers; HTTP/1.1 drops them. On a streamed response, trailers set on the head go out when the
    // stream ends.
    Response& trailer(std::string_view name, std::string_view value) {
        trailers_.add(name, value, "trailer");
        return *this;
    }
    const Fields& trailers() const noexcept { return trailers_; }

    // The whole body's length when it is not in this response: for an answer to HEAD, the Content-Length the
    // GET would carry, so that the body need not be produced (static files; used only when the request is
    // HEAD and the body is empty); for the head of a streamed response (Responder::stream), the length its
    // producer declares: the stream goes out with that Content-Length instead of chunked coding, and the
    // protocol cuts the response off (closes the connection, resets the HTTP/2 stream) if the producer writes
    // more or ends with less.
    Response& set_head_length(std::uint64_t n) noexcept {
        head_length_ = n;
        return *this;
    }
    std::optional<std::uint64_t> head_length() const noexcept { return head_length_; }
    void clear_head_length() noexcept { head_length_.reset(); }
    // The Content-Length to announce: the body's size, or for HEAD with no body the one set above.
    std::uint64_t content_length(bool head_request) const noexcept {
        return head_request && body_size() == 0 && head_length_ ? *head_length_ : body_size();
    }

    // Asks the protocol to close the connection after this response.
    Response& close_connection(bool c = true) noexcept {
        close_ = c;
        return *this;
    }
    bool closes_connection() const noexcept { return close_; }

    Response(const Response& o) { *this = o; }
    Response& operator=(const Response& o) {
        if (this == &o) return *this;
        status_ = o.status_, body_ = o.body_, headers_ = o.headers_, trailers_ = o.trailers_, close_ = o.close_;
        head_length_ = o.head_length_;
        shared_fields_ = o.shared_fields_;
        file_ = o.file_;
        owned_content_type_ = o.owned_content_type_;
        content_type_ = o.content_type_.data() == o.owned_content_type_.data() ? std::string_view(owned_content_type_)
                                                                               : o.content_type_;
        return *this;
    }
    Response(Response&& o) noexcept { *this = std::move(o); }
    Response& operator=(Response&& o) noexcept {
        const bool owned = o.content_type_.data() == o.owned_content_type_.data() && !o.owned_content_type_.empty();
        status_ = o.status_, body_ = std::move(o.body_), headers_ = std::move(o.headers_), close_ = o.close_;
        trailers_ = std::move(o.trailers_);
        head_length_ = o.head_length_;
        shared_fields_ = o.shared_fields_;
        file_ = std::move(o.file_);
        owned_content_type_ = std::move(o.owned_content_type_);
        content_type_ = owned ? std::string_view(owned_content_type_) : o.content_type_;
        return *this;
    }

private:
    struct literal_ct {};  // the factories' content types are string literals: no copy
    Response(literal_ct, int status, std::string body, std::string_view literal)
        : status_(status), body_(std::move(body)), content_type_(literal) {}
    int status_ = 200;
    std::string body_;
    std::string_view content_type_;
    std::string owned_content_type_;
    Fields headers_;
    Fields trailers_;
    std::array<const SharedFields*, max_shared_sets> shared_fields_{};
    std::optional<std::uint64_t> head_length_;
    io::FileRegion file_;
    bool close_ = false;
};

}  // namespace covet
