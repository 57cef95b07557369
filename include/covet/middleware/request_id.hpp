// Gives every request an id: the client's X-Request-ID when it sent a sane one, otherwise a new one
// (a per-thread random prefix and a counter, no syscall or lock per request). Echoed in the response.
#pragma once

#include <charconv>
#include <random>
#include <string_view>

#include "covet/middleware/middleware.hpp"

namespace covet {

class RequestIdMiddleware final : public Middleware {
public:
    static constexpr std::string_view header_name = "X-Request-ID";

    std::optional<Response> before(Request& r, RequestContext& c) override {
        if (auto given = r.header(header_name); given && acceptable(*given)) {
            c.set_request_id(*given);
        } else {
            char buf[32];
            c.set_request_id(generate(buf));
        }
        return std::nullopt;
    }

    void after(const Request&, const RequestContext& c, Response& resp) override {
        // Checked already: a client's id passed acceptable(), a generated one is hex digits and a dash.
        if (!c.request_id().empty()) resp.add_prechecked_header(header_name, c.request_id());
    }

private:
    // Printable, no separators that could split a header or a log line.
    static bool acceptable(std::string_view id) noexcept {
        if (id.empty() || id.size() > RequestContext::max_request_id) return false;
        for (char c : id)
            if ((c < '0' || c > '9') && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && c != '-' && c != '_' &&
                c != '.')
                return false;
        return true;
    }

    static std::string_view generate(char (&buf)[32]) noexcept {
        // One thread_local, no guarded initialisation: a single TLS access per request (a call in a shared object).
        struct State {
            std::uint64_t prefix = 0;  // 32 random bits once set; the bit above them marks it set
            std::uint64_t counter = 0;
        };
        thread_local State state;
        State& s = state;
        if (s.prefix == 0) [[unlikely]]
            s.prefix = (std::uint64_t{1} << 32) | std::random_device{}();
        char* p = buf;
        p = std::to_chars(p, buf + 8 + 1, static_cast<std::uint32_t>(s.prefix), 16).ptr;
        *p++ = '-';
        p = std::to_chars(p, buf + sizeof buf, ++s.counter, 16).ptr;
        return {buf, static_cast<std::size_t>(p - buf)};
    }
};

}  // namespace covet
