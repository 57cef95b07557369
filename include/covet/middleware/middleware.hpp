// Middleware: ordered hooks around every request. `before` runs in registration order and may answer
// the request itself (short-circuit); `after` runs in reverse order on the response, for each middleware
// whose `before` ran, on the connection's thread just before the response is written. Both get the
// exchange's RequestContext (covet/app/context.hpp: the request id), which lives until `after` returns.
// A streamed response's head goes through `after_stream` instead (by default `after`).
#pragma once

#include <optional>

#include "covet/app/context.hpp"
#include "covet/http/request.hpp"
#include "covet/http/response.hpp"

namespace covet {

class Middleware {
public:
    // The hooks a middleware uses (hooks() below).
    enum Hooks : unsigned { before_hook = 1, after_hook = 2, all_hooks = before_hook | after_hook };

    virtual ~Middleware() = default;
    // Which of `before` and `after` (with `after_stream`) this middleware needs, asked once when the app is given
    // it (App::use), so decided by its configuration: the app calls only those, sparing every request a call that
    // would do nothing (a rate limiter that sends no fields has no `after`). Whether its `after` runs still
    // depends on its place in the order, as if its `before` had run. Default: both.
    virtual unsigned hooks() const noexcept { return all_hooks; }
    // The methods whose requests `before` needs to see, as bits (1u << Method), asked with hooks(): the app skips
    // the call for the others (CORS answers only OPTIONS preflights there). Default: every method.
    virtual unsigned before_methods() const noexcept { return ~0u; }
    // The defaults do nothing. They are defined in src/middleware/middleware.cpp, not here, so that the app's hook
    // loops make a plain indirect call: with the body in view the compiler adds a compare against the default to
    // every call of these hooks (speculative devirtualization), which only the do-nothing case could use.
    virtual std::optional<Response> before(Request& request, RequestContext& context);
    virtual void after(const Request& request, const RequestContext& context, Response& response);
    // For a streamed response, in place of `after`, on its head (status, headers, the first chunk as the
    // body): it may also install a BodyFilter on `context` that every chunk then passes through.
    virtual void after_stream(const Request& request, RequestContext& context, Response& head) {
        after(request, context, head);
    }
    // A request that asks to switch to a protocol a route takes (a WebSocket handshake), before the switch,
    // in registration order: a response refuses it (sent, then the connection closes). For the checks that
    // guard every exchange whatever it carries (TrustedHost); the others do not see handshakes.
    virtual std::optional<Response> before_upgrade(Request& /*request*/) { return std::nullopt; }
};

}  // namespace covet
