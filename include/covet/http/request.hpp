// A parsed request: a view over bytes the protocol keeps alive until the response is complete.
// Nothing here allocates per request; decoded query values are built only when asked for. Protocol data
// only: what the app keeps per exchange (request id, middleware bookkeeping) is in covet/app/context.hpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "covet/http/ascii.hpp"
#include "covet/http/method.hpp"
#include "covet/http/path_params.hpp"
#include "covet/http/url.hpp"
#include "covet/io/loop.hpp"
#include "covet/net/tls_info.hpp"

namespace covet {

struct Header {
    std::string_view name;
    std::string_view value;
};

class Request {
public:
    Method method() const noexcept { return method_; }
    std::string_view method_name() const noexcept { return to_string(method_); }
    std::string_view target() const noexcept { return target_; }  // raw request-target
    // Raw (not percent-decoded) path; for an absolute-form target (http://host/p) the part after the authority.
    std::string_view path() const noexcept { return path_; }
    std::string_view query_string() const noexcept { return query_; }
    // Percent-decoded value of the first `name` query parameter.
    std::optional<std::string> query(std::string_view name) const { return http::query_value(query_string(), name); }

    // First header named `name`, compared case-insensitively.
    std::optional<std::string_view> header(std::string_view name) const noexcept {
        for (const Header& h : headers_)
            if (iequals(h.name, name)) return h.value;
        return std::nullopt;
    }
    std::span<const Header> headers() const noexcept { return headers_; }
    // The first Origin field, or null: noted as the fields are added, so CORS, which reads it on every request,
    // does not scan for it.
    const Header* origin_field() const noexcept {
        if (!origin_at_) return nullptr;
        const Header* field = headers_.data() + (origin_at_ - 1);
        if (!field) __builtin_unreachable();  // (callers test the result: this drops a second test)
        return field;
    }
    std::string_view body() const noexcept { return body_; }
    // The body is not in body() but streams to the handler as it arrives (see http/body_stream.hpp):
    // the dispatcher accepted it through RequestDispatcher::stream_body.
    bool body_streamed() const noexcept { return body_streamed_; }

    const PathParams& params() const noexcept { return params_; }
    PathParams& params() noexcept { return params_; }
    std::optional<std::string_view> param(std::string_view name) const noexcept { return params_.get(name); }

    int version_major() const noexcept { return version_major_; }
    int version_minor() const noexcept { return version_minor_; }
    std::string_view protocol() const noexcept {
        return version_major_ == 3   ? "HTTP/3"
               : version_major_ == 2 ? "HTTP/2"
               : version_minor_ == 0 ? "HTTP/1.0"
                                     : "HTTP/1.1";
    }
    bool keep_alive() const noexcept { return keep_alive_; }
    // The TLS session the request arrived on (version, ALPN, SNI, verified client certificate), or null.
    const net::TlsInfo* tls() const noexcept { return tls_; }
    // "https" on TLS, else "http" — or what a trusted proxy said (X-Forwarded-Proto: http, https, ws or wss;
    // see covet/http/proxy_headers.hpp).
    std::string_view scheme() const noexcept { return !scheme_.empty() ? scheme_ : tls_ ? "https" : "http"; }

    std::string_view client_address() const noexcept { return client_address_; }
    std::uint16_t client_port() const noexcept { return client_port_; }
    io::Clock::time_point received_at() const noexcept { return received_at_; }

    // ---- filled by protocol implementations ----
    void reset() noexcept {
        target_ = path_ = query_ = body_ = {};
        headers_.clear();
        origin_at_ = 0;
        params_.clear();
        keep_alive_ = true;
        body_streamed_ = false;
        scheme_ = {};
    }
    void reserve_headers(std::size_t n) { headers_.reserve(n); }
    void set_method(Method m) noexcept { method_ = m; }
    void set_target(std::string_view t) noexcept {
        target_ = t;
        std::string_view rest = t;
        if (!rest.empty() && rest.front() != '/') {  // absolute-form (RFC 9112 §3.2.2): skip scheme://authority
            const std::size_t scheme_end = rest.find("://");
            if (scheme_end != std::string_view::npos) {
                const std::size_t slash = rest.find_first_of("/?", scheme_end + 3);
                rest = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
            }
        }
        const std::size_t q = rest.find('?');
        path_ = rest.substr(0, q);
        if (path_.empty()) path_ = "/";
        query_ = q == std::string_view::npos ? std::string_view{} : rest.substr(q + 1);
    }
    void add_header(std::string_view name, std::string_view value) {
        if (name.size() == 6 && is_letters_name(name, "origin") && !origin_at_)
            origin_at_ = static_cast<std::uint32_t>(headers_.size() + 1);
        // The growth path out of line: inlined, its register saves cost every field ~14 instructions.
        if (headers_.size() != headers_.capacity()) [[likely]]
            headers_.push_back({name, value});
        else
            add_header_growing({name, value});
    }
    void set_last_header_value(std::string_view value) noexcept {
        if (!headers_.empty()) headers_.back().value = value;
    }
    std::size_t header_count() const noexcept { return headers_.size(); }
    void set_body(std::string_view b) noexcept { body_ = b; }
    void set_body_streamed(bool on) noexcept { body_streamed_ = on; }
    void set_version(int major, int minor) noexcept { version_major_ = major, version_minor_ = minor; }
    void set_keep_alive(bool k) noexcept { keep_alive_ = k; }
    void set_tls(const net::TlsInfo* tls) noexcept { tls_ = tls; }
    void set_client(std::string_view address, std::uint16_t port) noexcept {
        client_address_ = address, client_port_ = port;
    }
    // A scheme other than the connection's (a static string; empty: the connection's): apply_proxy_headers.
    void set_scheme(std::string_view scheme) noexcept { scheme_ = scheme; }
    void set_received_at(io::Clock::time_point t) noexcept { received_at_ = t; }
    // The head bytes moved from [old_base, old_base+len) to new_base: re-point every view into them.
    void rebase_head(const char* old_base, std::size_t len, const char* new_base) noexcept {
        auto move = [&](std::string_view& v) {
            if (v.data() >= old_base && v.data() + v.size() <= old_base + len)
                v = std::string_view(new_base + (v.data() - old_base), v.size());
        };
        move(target_);
        move(path_);
        move(query_);
        move(body_);
        move(client_address_);  // an X-Forwarded-For entry (the peer's address is not in the head)
        for (Header& h : headers_) move(h.name), move(h.value);
        params_.rebase_values([&](std::string_view v) {  // the router's values view into the path
            move(v);
            return v;
        });
    }

private:
    [[gnu::noinline]] void add_header_growing(Header field) { headers_.push_back(field); }

    Method method_ = Method::get;
    std::string_view target_, path_, query_, body_;
    std::vector<Header> headers_;
    std::uint32_t origin_at_ = 0;  // origin_field(): its index in headers_ + 1, 0 none
    PathParams params_;
    int version_major_ = 1, version_minor_ = 1;
    bool keep_alive_ = true;
    bool body_streamed_ = false;
    const net::TlsInfo* tls_ = nullptr;
    std::string_view scheme_;
    std::string_view client_address_;
    std::uint16_t client_port_ = 0;
    io::Clock::time_point received_at_{};
};

}  // namespace covet
