// One QUIC connection carrying HTTP/3 (private to src/http3): ngtcp2 for the transport, GnuTLS for its handshake,
// nghttp3 for HTTP/3 and QPACK. It is the protocol handler of a socketless net::Connection in the worker's table
// (net/datagram.hpp) and the ExchangeSink of its requests: exchange ids are QUIC stream ids.
#pragma once

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "covet/http/body_stream.hpp"
#include "covet/http/exchange.hpp"
#include "covet/net/connection.hpp"
#include "covet/net/tls_info.hpp"
#include "endpoint.hpp"
#include "send_buffer.hpp"

namespace covet::http3::detail {

struct Stream;

class Session final : public net::ProtocolHandler, public ExchangeSink {
public:
    // A connection for the client Initial `hd` (`first`: where it came from). Throws std::runtime_error when
    // ngtcp2 or GnuTLS cannot set it up.
    // `original_dcid`: the client's first destination ID when it came back with a Retry token (null: no Retry).
    Session(net::Connection& conn, Endpoint& endpoint, const ngtcp2_pkt_hd& hd, const Arrival& first,
            const ngtcp2_cid* original_dcid);
    ~Session() override;

    // A datagram for this connection. False: it is over (closed, or draining).
    bool on_packet(const Arrival& arrival, const std::uint8_t* data, std::size_t length);
    // Its timer fell due.
    void on_expiry();
    // Sends what is ready (called by the endpoint once per loop turn for connections that queued output).
    void write();
    ngtcp2_tstamp& scheduled() noexcept { return scheduled_; }

    // ---- ProtocolHandler ----
    void on_data(std::span<const char>) override {}  // datagrams come through on_packet
    void on_peer_closed() override {}
    void on_tick(io::Clock::time_point) override {}  // ngtcp2's own timers (the endpoint's timerfd)
    void on_shutdown() override;
    bool exchange_outstanding() const noexcept override { return outstanding_ > 0; }
    bool exchange_released() noexcept override;
    void on_closed() noexcept override;

    // ---- ExchangeSink ----
    void complete(std::uint64_t exchange, Response&& response) override;
    void stream_begin(std::uint64_t exchange, Response&& head) override;
    void stream_write(std::uint64_t exchange, std::string_view chunk) override;
    void stream_end(std::uint64_t exchange) override;
    void stream_end_trailers(std::uint64_t exchange, const Fields& trailers) override;
    void early_hint(std::uint64_t exchange, const Fields& fields) override;
    void stream_abort(std::uint64_t exchange) override;
    void stream_watch(std::uint64_t exchange, std::shared_ptr<StreamFlow> flow) override;
    void body_read(std::uint64_t exchange, std::shared_ptr<BodyReader> reader) override;
    void body_consumed(std::uint64_t exchange, std::size_t bytes) override;

    // ---- callbacks (session.cpp) ----
    int on_stream_data(std::int64_t id, const std::uint8_t* data, std::size_t length, bool fin);
    int on_acked(std::int64_t id, std::uint64_t length);
    int on_unblocked(std::int64_t id);
    void on_max_streams(std::uint64_t max_streams);
    int on_stream_close(std::int64_t id, std::uint64_t error);
    // The request stream `id` ends early: a streamed upload's reader gets `why`.
    int on_stream_reset(std::int64_t id,
                        std::string_view why = "the client reset the stream before the request body ended");
    int on_new_cid(ngtcp2_cid* cid, std::uint8_t* token, std::size_t length);
    void on_removed_cid(const ngtcp2_cid* cid);
    int on_tx_key(ngtcp2_crypto_level level);
    int on_handshake_completed();
    void on_h3_header(std::int64_t id, std::int32_t token, nghttp3_rcbuf* name, nghttp3_rcbuf* value, Stream* s);
    void on_h3_end_headers(Stream& s, bool fin);
    int on_h3_end_stream(Stream* s);
    // DATA of request stream `id` (`s`: null once the stream is forgotten).
    void on_h3_data(std::int64_t id, Stream* s, const std::uint8_t* data, std::size_t length);
    void on_h3_stream_close(std::int64_t id);
    int on_h3_stop_sending(std::int64_t id, std::uint64_t error);
    int on_h3_reset_stream(std::int64_t id, std::uint64_t error);
    nghttp3_ssize read_body(Stream* s, nghttp3_vec* vec, std::size_t count, std::uint32_t* flags);
    static void on_h3_acked(Stream* s, std::uint64_t length);
    Stream* begin_stream(std::int64_t id);
    // Stream data came in 0-RTT early data (before the handshake completed).
    void early_stream(std::int64_t id);
    ngtcp2_conn* quic() noexcept { return conn_; }
    // `length` bytes of stream `id` were taken: they go back to the stream's and the connection's windows.
    void consumed(std::int64_t id, std::uint64_t length) {
        ngtcp2_conn_extend_max_stream_offset(conn_, id, length);
        ngtcp2_conn_extend_max_offset(conn_, length);
    }

private:
    bool build_request(Stream& s);
    void dispatch(Stream& s, bool streamed = false);
    // Streamed request bodies (covet/http/body_stream.hpp).
    void stream_open_bodies();
    bool accept_upload(Stream& s);
    void start_upload(Stream& s);
    void deliver(Stream& s, std::string_view chunk);
    static void end_upload(Stream& s);
    void abort_upload(Stream& s, int status, std::string_view why);
    void fail_upload(Stream& s, int status, std::string_view why);
    void refuse_rest(Stream& s);
    void forget_unacked(Stream& s) noexcept;
    void reopen_connection_window() noexcept;
    void reject(Stream& s, int status, std::string_view why);
    Stream* owned(std::uint64_t exchange) noexcept;
    void submit(Stream& s, bool streaming);
    void resume(Stream& s);
    void settle(Stream& s);
    void finish_app(Stream& s);
    bool setup_http();
    void close_with_error();
    void close_quietly();
    // The path from the socket a datagram came in on to its sender, as ngtcp2 takes it.
    ngtcp2_path path_from(const Arrival& arrival) const noexcept {
        const Address& local = endpoint_.local(arrival.socket);
        const Address& peer = arrival.from;
        return {{const_cast<sockaddr*>(local.get()), local.length},
                {const_cast<sockaddr*>(peer.get()), peer.length},
                nullptr};
    }
    void mark_dirty();
    void try_graceful_close();
    static void publish(Stream& s);

    net::Connection& conn_ref_;
    Endpoint& endpoint_;
    ngtcp2_conn* conn_ = nullptr;
    gnutls_session_t tls_ = nullptr;
    std::shared_ptr<const Credentials> credentials_;  // the certificates this handshake uses (a reload swaps the set)
    ngtcp2_crypto_conn_ref crypto_ref_{};
    nghttp3_conn* h3_ = nullptr;
    Arrival first_;                  // where the handshake started (a close before any packet went out answers there)
    std::vector<std::string> cids_;  // registered with the endpoint
    std::unordered_map<std::int64_t, std::unique_ptr<Stream>> streams_;
    std::unordered_set<std::int64_t> early_streams_;  // request streams whose data came in 0-RTT
    ngtcp2_connection_close_error last_error_{};
    ngtcp2_tstamp scheduled_ = UINT64_MAX;
    net::TlsInfo tls_info_;
    std::string cipher_name_, server_name_;
    std::size_t outstanding_ = 0;
    // Streamed bodies' bytes delivered or held, not yet acknowledged (all streams); over a connection window of
    // them, the connection's window stays shut (window_owed_) until readers catch up.
    std::uint64_t upload_unacked_ = 0, window_owed_ = 0;
    bool open_bodies_ = false;  // a request body without a declared length is open: offered after the packet
    bool closed_ = false, shutting_down_ = false, handshake_done_ = false;
    bool rtt_sampled_ = false;  // ngtcp2 has an RTT sample: pacing applies (write)
    void end_handshake() noexcept;
    void fill_tls_info();
    void fill_client_certificate();
};

}  // namespace covet::http3::detail
