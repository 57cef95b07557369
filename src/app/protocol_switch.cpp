#include "covet/app/protocol_switch.hpp"

#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "../logging.hpp"
#include "covet/http/ascii.hpp"
#include "covet/http/upgrade.hpp"
#include "covet/http1/protocol.hpp"
#include "covet/http2/protocol.hpp"
#include "covet/ws/handshake.hpp"
#include "covet/ws/protocol.hpp"

namespace covet::app {
namespace {

// Stands in on a TLS connection until its first plaintext arrives: by then the handshake is done and
// ALPN has chosen, so the real handler can be installed and handed the bytes. Costs one object per
// TLS connection, nothing per request.
class AlpnSelector final : public net::ProtocolHandler {
public:
    AlpnSelector(net::Connection& connection, net::ConnectionHome& home, RequestDispatcher& dispatcher,
                 http1::Switcher& switcher)
        : connection_(connection),
          home_(home),
          dispatcher_(dispatcher),
          switcher_(switcher),
          idle_deadline_(connection.loop().now() + connection.config().timeouts.keep_alive) {}

    void on_data(std::span<const char> bytes) override {
        const net::TlsInfo* tls = connection_.tls();
        const bool h2 = tls && tls->alpn == "h2" && connection_.config().http2;
        std::unique_ptr<net::ProtocolHandler> next =
            h2 ? http2::make_protocol(connection_, home_, dispatcher_)
               : http1::make_protocol(connection_, home_, dispatcher_, &switcher_);
        if (!next) {  // nghttp2 could not be set up (out of memory)
            connection_.close_now();
            return;
        }
        net::ProtocolHandler& handler = *next;
        connection_.switch_protocol(std::move(next));  // this selector is destroyed after the callback
        handler.on_data(bytes);
    }
    void on_peer_closed() override { connection_.close_after_flush(); }
    void on_tick(io::Clock::time_point now) override {
        if (now >= idle_deadline_) connection_.close_now();  // handshake done, but no request ever came
    }
    void on_shutdown() override { connection_.close_after_flush(); }

private:
    net::Connection& connection_;
    net::ConnectionHome& home_;
    RequestDispatcher& dispatcher_;
    http1::Switcher& switcher_;
    io::Clock::time_point idle_deadline_;
};

// Installs `next` (or closes the connection when it could not be made) and hands it `rest`.
void install(net::Connection& connection, std::unique_ptr<net::ProtocolHandler> next, std::span<const char> rest) {
    if (!next) {  // nghttp2 could not be set up (out of memory)
        connection.close_now();
        return;
    }
    connection.switch_protocol(std::move(next));
    connection.protocol()->on_data(rest);
}

// HTTP/2 with prior knowledge (RFC 9113 §3.3): the connection's first bytes are the client preface.
class Http2PriorKnowledge final : public http1::PendingSwitch {
public:
    Http2PriorKnowledge(net::Connection& c, net::ConnectionHome& h, RequestDispatcher& d)
        : connection_(c), home_(h), dispatcher_(d) {}
    void install(std::span<const char> rest) override {
        app::install(connection_, http2::make_protocol(connection_, home_, dispatcher_), rest);
    }

private:
    net::Connection& connection_;
    net::ConnectionHome& home_;
    RequestDispatcher& dispatcher_;
};

// `Upgrade: h2c` accepted (RFC 7540 §3.2): 101, then HTTP/2 (SETTINGS first) on the same byte stream, which
// answers the request as stream 1; what followed the request (the client preface) is its first input.
class H2cUpgrade final : public http1::PendingSwitch {
public:
    H2cUpgrade(net::Connection& c, std::unique_ptr<net::ProtocolHandler> next)
        : connection_(c), next_(std::move(next)) {}
    void install(std::span<const char> rest) override {
        connection_.out().append(
            std::string_view("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"));
        app::install(connection_, std::move(next_), rest);
    }

private:
    net::Connection& connection_;
    std::unique_ptr<net::ProtocolHandler> next_;
};

// WebSocket accepted: 101, then frames; what followed the request is the client's first frames.
class WebSocketUpgrade final : public http1::PendingSwitch {
public:
    WebSocketUpgrade(net::Connection& c, net::ConnectionHome& h, ws::Route route, ws::Accepted accepted,
                     std::string path)
        : connection_(c), home_(h), route_(std::move(route)), accepted_(std::move(accepted)), path_(std::move(path)) {}
    void install(std::span<const char> rest) override {
        ws::switch_to_websocket(connection_, home_, std::move(route_.handlers), std::move(route_.options), accepted_,
                                path_, rest);
    }

private:
    net::Connection& connection_;
    net::ConnectionHome& home_;
    ws::Route route_;
    ws::Accepted accepted_;
    std::string path_;
};

http1::SwitchDecision refuse(Response refusal) {
    http1::SwitchDecision d;
    d.kind = http1::SwitchDecision::Kind::refuse;
    d.refusal = std::move(refusal);
    return d;
}

http1::SwitchDecision take(std::unique_ptr<http1::PendingSwitch> next) {
    http1::SwitchDecision d;
    d.kind = http1::SwitchDecision::Kind::take;
    d.next = std::move(next);
    return d;
}

// h2c is offered on plain TCP only: over TLS, ALPN chooses the protocol.
bool h2c_allowed(const net::Connection& c) noexcept { return c.config().http2 && c.tls() == nullptr; }

}  // namespace

std::unique_ptr<net::ProtocolHandler> ProtocolSwitch::connection_protocol(net::Connection& connection,
                                                                          net::ConnectionHome& home) {
    if (connection.config().tls) return std::make_unique<AlpnSelector>(connection, home, dispatcher_, *this);
    return http1::make_protocol(connection, home, dispatcher_, this);
}

http1::SwitchDecision ProtocolSwitch::on_connection_start(net::Connection& connection, net::ConnectionHome& home,
                                                          std::string_view start) {
    if (!h2c_allowed(connection)) return http1::SwitchDecision::stay();
    const std::string_view head = start.substr(0, http2::client_preface.size());
    if (!http2::client_preface.starts_with(head)) return http1::SwitchDecision::stay();
    if (head.size() < http2::client_preface.size()) return {http1::SwitchDecision::Kind::wait, {}, nullptr};
    return take(std::make_unique<Http2PriorKnowledge>(connection, home, dispatcher_));
}

http1::SwitchDecision ProtocolSwitch::on_upgrade_request(net::Connection& connection, net::ConnectionHome& home,
                                                         Request& request) {
    if (ws::is_upgrade_request(request)) {
        // A WebSocket route takes the request: a valid handshake switches; an invalid one is answered
        // (400/426) and the connection closes. No WebSocket route: answer it as a plain request.
        Upgrade upgrade;
        upgrade.protocol = Upgrade::Protocol::websocket;
        try {
            if (dispatcher_.upgrade(request, upgrade)) {
                if (upgrade.refusal) return refuse(std::move(*upgrade.refusal));
                if (!upgrade.websocket.handlers)
                    return refuse(Response::text("the application refused this WebSocket connection\n", 403));
                auto verdict = ws::accept_upgrade(request, upgrade.websocket.options);
                if (Response* refusal = std::get_if<Response>(&verdict)) return refuse(std::move(*refusal));
                return take(std::make_unique<WebSocketUpgrade>(connection, home, std::move(upgrade.websocket),
                                                               std::move(std::get<ws::Accepted>(verdict)),
                                                               std::string(request.path())));
            }
        } catch (const std::exception& e) {
            logging::error("WebSocket route for {} failed: {}", request.target(), e.what());
            return refuse(Response::text("the WebSocket route failed to set up the connection\n", 500));
        }
    }
    if (!h2c_allowed(connection) || request.version_minor() < 1) return http1::SwitchDecision::stay();
    // `Upgrade: h2c` with exactly one HTTP2-Settings header (RFC 7540 §3.2.1) that decodes; else HTTP/1.1.
    const auto upgrade = request.header("upgrade");
    if (!upgrade || !lists_token(*upgrade, "h2c")) return http1::SwitchDecision::stay();
    std::optional<std::string_view> settings;
    for (const Header& h : request.headers()) {
        if (!iequals(h.name, "http2-settings")) continue;
        if (settings) return http1::SwitchDecision::stay();
        settings = h.value;
    }
    if (!settings) return http1::SwitchDecision::stay();
    auto next = http2::make_upgraded_protocol(connection, home, dispatcher_, *settings, request);
    if (!next) return http1::SwitchDecision::stay();
    return take(std::make_unique<H2cUpgrade>(connection, std::move(next)));
}

}  // namespace covet::app
