#include "protocol_selector.hpp"

#include "covet/http1/protocol.hpp"
#include "covet/http2/protocol.hpp"

namespace covet::app {
namespace {

// Stands in on a TLS connection until its first plaintext arrives: by then the handshake is done and
// ALPN has chosen, so the real handler can be installed and handed the bytes. Costs one object per
// TLS connection, nothing per request.
class AlpnSelector final : public net::ProtocolHandler {
public:
    AlpnSelector(net::Connection& connection, net::ConnectionHome& home, RequestDispatcher& dispatcher)
        : connection_(connection),
          home_(home),
          dispatcher_(dispatcher),
          idle_deadline_(connection.loop().now() + connection.config().timeouts.keep_alive) {}

    void on_data(std::span<const char> bytes) override {
        const net::TlsInfo* tls = connection_.tls();
        const bool h2 = tls && tls->alpn == "h2" && connection_.config().http2;
        std::unique_ptr<net::ProtocolHandler> next = h2 ? http2::make_protocol(connection_, home_, dispatcher_)
                                                        : http1::make_protocol(connection_, home_, dispatcher_);
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
    io::Clock::time_point idle_deadline_;
};

}  // namespace

std::unique_ptr<net::ProtocolHandler> make_connection_protocol(net::Connection& connection, net::ConnectionHome& home,
                                                               RequestDispatcher& dispatcher) {
    if (connection.config().tls) return std::make_unique<AlpnSelector>(connection, home, dispatcher);
    return http1::make_protocol(connection, home, dispatcher);
}

}  // namespace covet::app
