// covet::RequestContext: what the app keeps about one exchange besides the protocol's Request: the
// request id (set by RequestIdMiddleware, read by the access log) and how many middleware `before` hooks
// ran. Middleware hooks receive it next to the Request.
//
// The protocol holds one per exchange slot (an HTTP/1.1 connection, a pooled HTTP/2 stream) as an opaque
// ExchangeState made by App::make_exchange_state, and reuses it for the slot's next exchanges: no
// allocation per request. App::dispatch clears it at the start of every exchange.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>

#include "covet/http/exchange.hpp"

namespace covet {

class App;

class RequestContext final : public ExchangeState {
public:
    static constexpr std::size_t max_request_id = 64;

    // A short id for logs and the X-Request-ID header; empty unless a middleware set one.
    std::string_view request_id() const noexcept { return {request_id_, request_id_len_}; }
    // Keeps at most max_request_id bytes.
    void set_request_id(std::string_view id) noexcept {
        request_id_len_ = std::min(id.size(), sizeof request_id_);
        std::copy_n(id.data(), request_id_len_, request_id_);
    }

    // Back to the state of a new exchange.
    void reset() noexcept {
        request_id_len_ = 0;
        middleware_depth_ = 0;
    }

private:
    friend class App;
    char request_id_[max_request_id]{};
    std::size_t request_id_len_ = 0;
    std::size_t middleware_depth_ = 0;  // `before` hooks that ran; their `after` hooks run in reverse
};

}  // namespace covet
