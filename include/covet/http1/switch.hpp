// How HTTP/1.1 leaves the connection to another protocol without knowing any: it reports what it sees (the
// connection's first bytes, a request with an Upgrade header) to a Switcher, which decides and, when it
// takes the connection, returns the switch to perform once the request's bytes are consumed. The app layer's
// switcher (covet/app/protocol_switch.hpp) knows the protocols: h2c, WebSocket, and later others.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "covet/http/request.hpp"
#include "covet/http/response.hpp"
#include "covet/net/connection.hpp"
#include "covet/net/connection_ref.hpp"

namespace covet::http1 {

// An accepted switch, performed once the request that asked for it has been consumed.
class PendingSwitch {
public:
    virtual ~PendingSwitch() = default;
    // Queues the switch's response head (101) if it has one, installs the next handler on the connection
    // and hands it `rest`, the bytes that followed (possibly none). The HTTP/1.1 handler is retired by then:
    // it ignores everything and never touches the connection again.
    virtual void install(std::span<const char> rest) = 0;
};

struct SwitchDecision {
    enum class Kind : std::uint8_t {
        stay,    // go on with HTTP/1.1
        wait,    // the connection's first bytes may begin another protocol's preface: wait for more
        refuse,  // answer the request with `refusal`, then close the connection
        take,    // switch (`next`) once the request is consumed
    };
    Kind kind = Kind::stay;
    Response refusal;
    std::unique_ptr<PendingSwitch> next;

    static SwitchDecision stay() { return {}; }
};

// Decides every switch away from HTTP/1.1. One per server, shared by its connections; called on the
// connection's thread.
class Switcher {
public:
    // The connection's first bytes, before any request: a protocol that starts without a request (HTTP/2
    // with prior knowledge) takes the connection here, with `start` as its first input.
    virtual SwitchDecision on_connection_start(net::Connection& connection, net::ConnectionHome& home,
                                               std::string_view start) = 0;
    // A complete request (body included) with an Upgrade header.
    virtual SwitchDecision on_upgrade_request(net::Connection& connection, net::ConnectionHome& home,
                                              Request& request) = 0;

protected:
    ~Switcher() = default;
};

}  // namespace covet::http1
