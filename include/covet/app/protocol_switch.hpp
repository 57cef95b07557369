// Every protocol switch in one place: which handler a new connection starts with (TLS: what ALPN agreed on;
// plain TCP: HTTP/1.1), and every switch HTTP/1.1 reports (HTTP/2 with prior knowledge, `Upgrade: h2c`,
// `Upgrade: websocket`). HTTP/1.1 itself knows no other protocol: it asks this switcher (http1::Switcher).
#pragma once

#include <memory>

#include "covet/http/exchange.hpp"
#include "covet/http1/switch.hpp"
#include "covet/net/connection.hpp"
#include "covet/net/connection_ref.hpp"

namespace covet::app {

class ProtocolSwitch final : public http1::Switcher {
public:
    // `dispatcher` receives every protocol's requests and decides the upgrades the application routes
    // (RequestDispatcher::upgrade); it must outlive the switch.
    explicit ProtocolSwitch(RequestDispatcher& dispatcher) noexcept : dispatcher_(dispatcher) {}

    // The handler a new connection starts with.
    std::unique_ptr<net::ProtocolHandler> connection_protocol(net::Connection& connection, net::ConnectionHome& home);

    // ---- http1::Switcher ----
    http1::SwitchDecision on_connection_start(net::Connection& connection, net::ConnectionHome& home,
                                              std::string_view start) override;
    http1::SwitchDecision on_upgrade_request(net::Connection& connection, net::ConnectionHome& home,
                                             Request& request) override;

private:
    RequestDispatcher& dispatcher_;
};

}  // namespace covet::app
