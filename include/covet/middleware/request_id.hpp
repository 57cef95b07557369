// Gives every request an id: the client's X-Request-ID when it sent a sane one, otherwise a new one
// (a per-thread random prefix and a counter, no syscall or lock per request). Echoed in the response.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstdint>
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
        // The prefix's text is made once per thread: a request formats only its counter.
        struct State {
            char prefix[prefix_size];  // 8 hex digits of 32 random bits and the dash
            bool ready;
            std::uint64_t counter;
        };
        thread_local State state{};
        State& s = state;
        if (!s.ready) [[unlikely]] {
            const std::uint32_t random = std::random_device{}();
            std::fill_n(s.prefix, prefix_size - 1, '0');  // fixed width: a short number gets leading zeros
            char digits[8];
            const char* const end = std::to_chars(digits, digits + sizeof digits, random, 16).ptr;
            std::copy(static_cast<const char*>(digits), end, s.prefix + (prefix_size - 1) - (end - digits));
            s.prefix[prefix_size - 1] = '-';
            s.ready = true;
        }
        std::copy_n(s.prefix, prefix_size, buf);
        char* const p = std::to_chars(buf + prefix_size, buf + sizeof buf, ++s.counter, 16).ptr;
        return {buf, static_cast<std::size_t>(p - buf)};
    }

    static constexpr std::size_t prefix_size = 9;
};

}  // namespace covet
