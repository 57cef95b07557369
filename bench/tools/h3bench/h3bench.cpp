// h3bench: an HTTP/3 load generator in C++ on ngtcp2 + nghttp3, one thread, for the bench suite's h3 scenarios.
//
// Why beside h3load (Go, quic-go): quic-go spends ~75 µs of client CPU per small request, so h3load's one core
// tops out near 13K req/s and the server under test is mostly idle; HTTP/2's h2load (C, nghttp2) drives ten times
// that. This tool speaks HTTP/3 with the same C libraries as h2load speaks HTTP/2, so "h3 CPU per request ÷ h2 CPU
// per request" compares servers under load of the same kind. It is a load tool only: the correctness gate stays
// h3load -check (quic-go, an independent implementation).
//
// Flags and output are h3load's load mode (bench/h3load.py parses both): -url https://host:port/path, -ca FILE,
// -c connections, -m streams per connection, -method, -body-size, -expect-body=TEXT, -expect-echo, -expect-type,
// -warmup=1s, -d=3s. It prints "H3LOAD_MARK start" / "H3LOAD_MARK end" around the timed window and one
// "H3LOAD_RESULT {json}" line ("tool": "h3bench"). Every response is checked (2xx, content type, the whole body).
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

std::uint64_t now_ns() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

struct Config {
    std::string url, ca, method = "GET", expect_body, expect_type;
    bool has_expect_body = false, expect_echo = false;
    int connections = 64, streams = 100;
    std::size_t body_size = 0;
    double warmup_s = 1, duration_s = 3;
    std::string host, port, path;  // from url
};

// The run's tallies; only what completes inside the timed window counts towards requests and bytes.
struct Tally {
    std::uint64_t requests = 0, bytes_read = 0, bytes_sent = 0;
    std::uint64_t status_2xx = 0, status_3xx = 0, status_4xx = 0, status_5xx = 0;
    std::uint64_t err_connect = 0, err_request = 0, err_status = 0, err_body = 0, err_header = 0;
    std::vector<std::uint32_t> latency_us;
    std::string first_error;
    void error(std::uint64_t& kind, const std::string& what) {
        ++kind;
        if (first_error.empty()) first_error = what;
    }
};

struct Run {
    Config cfg;
    std::vector<std::uint8_t> body;  // the request body every request sends (-body-size)
    std::vector<nghttp3_nv> headers;
    std::string authority, content_length;
    bool in_window = false, stopping = false;
    Tally tally;
    std::uint64_t dials = 0;
    std::string tls_version, tls_cipher, tls_alpn;
};

struct Stream {
    std::uint64_t started = 0, read = 0;
    int status = 0;
    bool body_ok = true, type_ok = true, ended = false;
};

struct Connection;
int on_stream_close_h3(nghttp3_conn*, std::int64_t id, std::uint64_t error, void* user, void*);

struct Connection {
    Run* run = nullptr;
    int fd = -1;
    sockaddr_storage local{}, remote{};
    socklen_t local_len = 0, remote_len = 0;
    ngtcp2_conn* quic = nullptr;
    nghttp3_conn* h3 = nullptr;
    gnutls_session_t tls = nullptr;
    ngtcp2_crypto_conn_ref ref{};
    std::unordered_map<std::int64_t, Stream> streams;
    bool dead = false;

    ~Connection() {
        if (h3) nghttp3_conn_del(h3);
        if (quic) ngtcp2_conn_del(quic);
        if (tls) gnutls_deinit(tls);
        if (fd >= 0) close(fd);
    }
    ngtcp2_path path() {
        return ngtcp2_path{{reinterpret_cast<sockaddr*>(&local), local_len},
                           {reinterpret_cast<sockaddr*>(&remote), remote_len},
                           nullptr};
    }
    void fail(const std::string& why) {
        if (dead) return;
        dead = true;
        run->tally.error(run->tally.err_connect, why);
    }
    bool submit();
    void write();
    void finish(std::int64_t id, std::uint64_t error);
};

// ---- nghttp3 callbacks -----------------------------------------------------------------------------------------

Connection* of(void* user) { return static_cast<Connection*>(user); }

int h3_recv_header(nghttp3_conn*, std::int64_t id, std::int32_t token, nghttp3_rcbuf* name, nghttp3_rcbuf* value,
                   std::uint8_t, void* user, void*) {
    Connection* c = of(user);
    auto it = c->streams.find(id);
    if (it == c->streams.end()) return 0;
    const nghttp3_vec v = nghttp3_rcbuf_get_buf(value);
    const std::string_view text(reinterpret_cast<const char*>(v.base), v.len);
    if (token == NGHTTP3_QPACK_TOKEN__STATUS) {
        int status = 0;
        for (char ch : text) status = status * 10 + (ch - '0');
        it->second.status = status;
    } else if (token == NGHTTP3_QPACK_TOKEN_CONTENT_TYPE && !c->run->cfg.expect_type.empty()) {
        const std::string_view media = text.substr(0, text.find(';'));
        it->second.type_ok = media == c->run->cfg.expect_type;
    }
    (void)name;
    return 0;
}

int h3_recv_data(nghttp3_conn*, std::int64_t id, const std::uint8_t* data, std::size_t length, void* user, void*) {
    Connection* c = of(user);
    ngtcp2_conn_extend_max_stream_offset(c->quic, id, length);
    ngtcp2_conn_extend_max_offset(c->quic, length);
    auto it = c->streams.find(id);
    if (it == c->streams.end()) return 0;
    Stream& s = it->second;
    const Config& cfg = c->run->cfg;
    const std::uint8_t* expected = nullptr;
    std::size_t expected_size = 0;
    if (cfg.expect_echo) {
        expected = c->run->body.data();
        expected_size = c->run->body.size();
    } else if (cfg.has_expect_body) {
        expected = reinterpret_cast<const std::uint8_t*>(cfg.expect_body.data());
        expected_size = cfg.expect_body.size();
    }
    if (expected && s.body_ok)
        s.body_ok = s.read + length <= expected_size && std::memcmp(expected + s.read, data, length) == 0;
    s.read += length;
    return 0;
}

int h3_deferred_consume(nghttp3_conn*, std::int64_t id, std::size_t consumed, void* user, void*) {
    Connection* c = of(user);
    ngtcp2_conn_extend_max_stream_offset(c->quic, id, consumed);
    ngtcp2_conn_extend_max_offset(c->quic, consumed);
    return 0;
}

int h3_end_stream(nghttp3_conn*, std::int64_t id, void* user, void*) {
    Connection* c = of(user);
    if (auto it = c->streams.find(id); it != c->streams.end()) it->second.ended = true;
    return 0;
}

int h3_stop_sending(nghttp3_conn*, std::int64_t id, std::uint64_t error, void* user, void*) {
    ngtcp2_conn_shutdown_stream_read(of(user)->quic, id, error);
    return 0;
}

int h3_reset_stream(nghttp3_conn*, std::int64_t id, std::uint64_t error, void* user, void*) {
    ngtcp2_conn_shutdown_stream_write(of(user)->quic, id, error);
    return 0;
}

int on_stream_close_h3(nghttp3_conn*, std::int64_t id, std::uint64_t error, void* user, void*) {
    of(user)->finish(id, error);
    return 0;
}

// The request body: the same bytes for every request, in one piece (nghttp3 keeps the vector until it is acked).
nghttp3_ssize read_body(nghttp3_conn*, std::int64_t, nghttp3_vec* vec, std::size_t, std::uint32_t* flags, void* user,
                        void*) {
    Connection* c = of(user);
    vec[0].base = c->run->body.data();
    vec[0].len = c->run->body.size();
    *flags |= NGHTTP3_DATA_FLAG_EOF;
    return 1;
}

// ---- ngtcp2 callbacks ------------------------------------------------------------------------------------------

int recv_stream_data(ngtcp2_conn*, std::uint32_t flags, std::int64_t id, std::uint64_t, const std::uint8_t* data,
                     std::size_t length, void* user, void*) {
    Connection* c = of(user);
    const nghttp3_ssize consumed =
        nghttp3_conn_read_stream(c->h3, id, data, length, (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0);
    if (consumed < 0) return NGTCP2_ERR_CALLBACK_FAILURE;
    ngtcp2_conn_extend_max_stream_offset(c->quic, id, static_cast<std::uint64_t>(consumed));
    ngtcp2_conn_extend_max_offset(c->quic, static_cast<std::uint64_t>(consumed));
    return 0;
}

int acked_stream_data_offset(ngtcp2_conn*, std::int64_t id, std::uint64_t, std::uint64_t length, void* user, void*) {
    Connection* c = of(user);
    return c->h3 && nghttp3_conn_add_ack_offset(c->h3, id, length) != 0 ? NGTCP2_ERR_CALLBACK_FAILURE : 0;
}

int stream_close(ngtcp2_conn*, std::uint32_t flags, std::int64_t id, std::uint64_t error, void* user, void*) {
    Connection* c = of(user);
    if (!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET)) error = NGHTTP3_H3_NO_ERROR;
    if (!c->h3) return 0;
    const int rv = nghttp3_conn_close_stream(c->h3, id, error);
    return rv == 0 || rv == NGHTTP3_ERR_STREAM_NOT_FOUND ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}

int stream_reset(ngtcp2_conn*, std::int64_t id, std::uint64_t, std::uint64_t, void* user, void*) {
    Connection* c = of(user);
    return c->h3 && nghttp3_conn_shutdown_stream_read(c->h3, id) != 0 ? NGTCP2_ERR_CALLBACK_FAILURE : 0;
}

int extend_max_stream_data(ngtcp2_conn*, std::int64_t id, std::uint64_t, void* user, void*) {
    Connection* c = of(user);
    return c->h3 && nghttp3_conn_unblock_stream(c->h3, id) != 0 ? NGTCP2_ERR_CALLBACK_FAILURE : 0;
}

void random_bytes(std::uint8_t* dest, std::size_t length, const ngtcp2_rand_ctx*) {
    gnutls_rnd(GNUTLS_RND_RANDOM, dest, length);
}

int new_connection_id(ngtcp2_conn*, ngtcp2_cid* cid, std::uint8_t* token, std::size_t length, void*) {
    cid->datalen = length;
    gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, length);
    gnutls_rnd(GNUTLS_RND_RANDOM, token, NGTCP2_STATELESS_RESET_TOKENLEN);
    return 0;
}

bool setup_http(Connection& c);

// HTTP/3 starts here, not after the packet: the server's control stream may share a packet with HANDSHAKE_DONE.
int handshake_completed(ngtcp2_conn*, void* user) {
    Connection* c = of(user);
    return setup_http(*c) ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}

ngtcp2_conn* conn_of(ngtcp2_crypto_conn_ref* ref) { return static_cast<Connection*>(ref->user_data)->quic; }

// ---- the connection --------------------------------------------------------------------------------------------

bool setup_http(Connection& c) {
    nghttp3_callbacks cb{};
    cb.stream_close = on_stream_close_h3;
    cb.recv_data = h3_recv_data;
    cb.deferred_consume = h3_deferred_consume;
    cb.recv_header = h3_recv_header;
    cb.end_stream = h3_end_stream;
    cb.stop_sending = h3_stop_sending;
    cb.reset_stream = h3_reset_stream;
    nghttp3_settings settings;
    nghttp3_settings_default(&settings);
    settings.qpack_max_dtable_capacity = 4096;
    settings.qpack_blocked_streams = 100;
    if (nghttp3_conn_client_new(&c.h3, &cb, &settings, nullptr, &c) != 0) return false;
    std::int64_t control = 0, encoder = 0, decoder = 0;
    return ngtcp2_conn_open_uni_stream(c.quic, &control, nullptr) == 0 &&
           nghttp3_conn_bind_control_stream(c.h3, control) == 0 &&
           ngtcp2_conn_open_uni_stream(c.quic, &encoder, nullptr) == 0 &&
           ngtcp2_conn_open_uni_stream(c.quic, &decoder, nullptr) == 0 &&
           nghttp3_conn_bind_qpack_streams(c.h3, encoder, decoder) == 0;
}

// Opens request streams up to -m (and what the server's MAX_STREAMS allows).
bool Connection::submit() {
    if (dead || !h3 || run->stopping) return true;
    while (static_cast<int>(streams.size()) < run->cfg.streams && ngtcp2_conn_get_streams_bidi_left(quic) > 0) {
        std::int64_t id = -1;
        if (ngtcp2_conn_open_bidi_stream(quic, &id, nullptr) != 0) break;
        nghttp3_data_reader reader{read_body};
        if (nghttp3_conn_submit_request(h3, id, run->headers.data(), run->headers.size(),
                                        run->body.empty() ? nullptr : &reader, nullptr) != 0)
            return false;
        streams[id].started = now_ns();
    }
    return true;
}

void Connection::finish(std::int64_t id, std::uint64_t error) {
    auto it = streams.find(id);
    if (it == streams.end()) return;  // a control or QPACK stream
    const Stream s = it->second;
    streams.erase(it);
    Tally& t = run->tally;
    if (!run->in_window) return;
    const Config& cfg = run->cfg;
    if (s.status >= 200 && s.status < 600) {
        std::uint64_t* klass[] = {&t.status_2xx, &t.status_3xx, &t.status_4xx, &t.status_5xx};
        ++*klass[s.status / 100 - 2];
    }
    const std::size_t want = cfg.expect_echo ? run->body.size() : cfg.has_expect_body ? cfg.expect_body.size() : s.read;
    if (error != NGHTTP3_H3_NO_ERROR || !s.ended || s.status == 0)
        t.error(t.err_request, "stream " + std::to_string(id) + " ended with HTTP/3 error " + std::to_string(error));
    else if (s.status < 200 || s.status > 299)
        t.error(t.err_status, "status " + std::to_string(s.status));
    else if (!s.type_ok)
        t.error(t.err_header, "Content-Type is not " + cfg.expect_type);
    else if (!s.body_ok || s.read != want)
        t.error(t.err_body, "body of " + std::to_string(s.read) + " bytes is not the expected one");
    else {
        ++t.requests;
        t.bytes_read += s.read;
        t.bytes_sent += run->body.size();
        t.latency_us.push_back(static_cast<std::uint32_t>((now_ns() - s.started) / 1000));
    }
}

void Connection::write() {
    if (dead) return;
    std::array<std::uint8_t, 64 * 1024> buffer;
    std::array<iovec, 48> iov;
    std::array<mmsghdr, 48> msgs{};
    const std::size_t payload = ngtcp2_conn_get_max_tx_udp_payload_size(quic);
    std::size_t packets = 0, used = 0;
    const ngtcp2_tstamp ts = now_ns();
    auto flush = [&] {
        for (std::size_t i = 0; i < packets; ++i) {
            msgs[i].msg_hdr = msghdr{};
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        std::size_t sent = 0;
        while (sent < packets) {
            const int n = sendmmsg(fd, msgs.data() + sent, static_cast<unsigned>(packets - sent), 0);
            if (n <= 0) break;  // a full socket buffer: QUIC's loss recovery resends
            sent += static_cast<std::size_t>(n);
        }
        packets = used = 0;
    };
    for (;;) {
        std::int64_t stream_id = -1;
        int fin = 0;
        std::array<nghttp3_vec, 16> vec{};
        nghttp3_ssize count = 0;
        if (h3 && ngtcp2_conn_get_max_data_left(quic)) {
            count = nghttp3_conn_writev_stream(h3, &stream_id, &fin, vec.data(), vec.size());
            if (count < 0) return fail(std::string("nghttp3_conn_writev_stream: ") + nghttp3_strerror(int(count)));
        }
        ngtcp2_ssize taken = -1;
        ngtcp2_path_storage ps;
        ngtcp2_path_storage_zero(&ps);
        ngtcp2_pkt_info pi{};
        const std::uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE | (fin ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0);
        const ngtcp2_ssize n = ngtcp2_conn_writev_stream(
            quic, &ps.path, &pi, buffer.data() + used, payload, &taken, flags, stream_id,
            reinterpret_cast<const ngtcp2_vec*>(vec.data()), static_cast<std::size_t>(count), ts);
        if (n < 0) {
            if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
                nghttp3_conn_block_stream(h3, stream_id);
                continue;
            }
            if (n == NGTCP2_ERR_STREAM_SHUT_WR) {
                nghttp3_conn_shutdown_stream_write(h3, stream_id);
                continue;
            }
            if (n == NGTCP2_ERR_WRITE_MORE) {
                nghttp3_conn_add_write_offset(h3, stream_id, static_cast<std::size_t>(taken));
                continue;
            }
            return fail(std::string("ngtcp2_conn_writev_stream: ") + ngtcp2_strerror(int(n)));
        }
        if (taken >= 0 && h3) nghttp3_conn_add_write_offset(h3, stream_id, static_cast<std::size_t>(taken));
        if (n == 0) break;
        iov[packets] = iovec{buffer.data() + used, static_cast<std::size_t>(n)};
        ++packets;
        used += static_cast<std::size_t>(n);
        if (packets == iov.size() || used + payload > buffer.size()) flush();
    }
    flush();
    ngtcp2_conn_update_pkt_tx_time(quic, ts);
}

std::unique_ptr<Connection> dial(Run& run, const addrinfo& target, gnutls_certificate_credentials_t creds) {
    auto c = std::make_unique<Connection>();
    c->run = &run;
    ++run.dials;
    c->fd = socket(target.ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int buffer = 4 << 20;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &buffer, sizeof buffer);
    if (c->fd < 0 || connect(c->fd, target.ai_addr, target.ai_addrlen) != 0) {
        c->fail(std::string("UDP socket: ") + std::strerror(errno));
        return c;
    }
    std::memcpy(&c->remote, target.ai_addr, target.ai_addrlen);
    c->remote_len = target.ai_addrlen;
    c->local_len = sizeof c->local;
    getsockname(c->fd, reinterpret_cast<sockaddr*>(&c->local), &c->local_len);

    ngtcp2_callbacks cb{};
    cb.client_initial = ngtcp2_crypto_client_initial_cb;
    cb.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
    cb.encrypt = ngtcp2_crypto_encrypt_cb;
    cb.decrypt = ngtcp2_crypto_decrypt_cb;
    cb.hp_mask = ngtcp2_crypto_hp_mask_cb;
    cb.recv_retry = ngtcp2_crypto_recv_retry_cb;
    cb.update_key = ngtcp2_crypto_update_key_cb;
    cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
    cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
    cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
    cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
    cb.rand = random_bytes;
    cb.get_new_connection_id = new_connection_id;
    cb.recv_stream_data = recv_stream_data;
    cb.acked_stream_data_offset = acked_stream_data_offset;
    cb.stream_close = stream_close;
    cb.stream_reset = stream_reset;
    cb.extend_max_stream_data = extend_max_stream_data;
    cb.handshake_completed = handshake_completed;

    ngtcp2_settings settings;
    ngtcp2_settings_default(&settings);
    settings.initial_ts = now_ns();
    settings.handshake_timeout = 5 * NGTCP2_SECONDS;
    ngtcp2_transport_params params;
    ngtcp2_transport_params_default(&params);
    params.initial_max_streams_uni = 3;
    params.initial_max_stream_data_bidi_local = 4 << 20;
    params.initial_max_stream_data_uni = 1 << 20;
    params.initial_max_data = 32 << 20;
    params.max_idle_timeout = 30 * NGTCP2_SECONDS;
    ngtcp2_cid dcid{}, scid{};
    dcid.datalen = 18;
    scid.datalen = 17;
    gnutls_rnd(GNUTLS_RND_RANDOM, dcid.data, dcid.datalen);
    gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen);
    const ngtcp2_path path = c->path();
    if (const int rv = ngtcp2_conn_client_new(&c->quic, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &settings,
                                              &params, nullptr, c.get());
        rv != 0) {
        c->fail(std::string("ngtcp2_conn_client_new: ") + ngtcp2_strerror(rv));
        return c;
    }
    const std::string& host = run.cfg.host;
    gnutls_datum_t alpn{reinterpret_cast<unsigned char*>(const_cast<char*>("h3")), 2};
    if (gnutls_init(&c->tls, GNUTLS_CLIENT | GNUTLS_ENABLE_EARLY_DATA | GNUTLS_NO_END_OF_EARLY_DATA) != 0 ||
        gnutls_priority_set_direct(c->tls, "NORMAL:-VERS-ALL:+VERS-TLS1.3:%DISABLE_TLS13_COMPAT_MODE", nullptr) != 0 ||
        ngtcp2_crypto_gnutls_configure_client_session(c->tls) != 0 ||
        gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, creds) != 0 ||
        gnutls_alpn_set_protocols(c->tls, &alpn, 1, GNUTLS_ALPN_MANDATORY) != 0) {
        c->fail("GnuTLS client session setup failed");
        return c;
    }
    gnutls_session_set_verify_cert(c->tls, host.c_str(), 0);  // the chain to -ca, and the name (or IP) in the URL
    in6_addr ip{};
    if (inet_pton(AF_INET, host.c_str(), &ip) != 1 && inet_pton(AF_INET6, host.c_str(), &ip) != 1)
        gnutls_server_name_set(c->tls, GNUTLS_NAME_DNS, host.data(), host.size());
    c->ref.get_conn = conn_of;
    c->ref.user_data = c.get();
    gnutls_session_set_ptr(c->tls, &c->ref);
    ngtcp2_conn_set_tls_native_handle(c->quic, c->tls);
    return c;
}

// Reads every datagram the socket holds and feeds them to ngtcp2.
void receive(Connection& c) {
    constexpr std::size_t batch = 16;
    static std::array<std::array<std::uint8_t, 65536>, batch> buffers;
    std::array<iovec, batch> iov;
    std::array<mmsghdr, batch> msgs{};
    for (;;) {
        for (std::size_t i = 0; i < batch; ++i) {
            iov[i] = iovec{buffers[i].data(), buffers[i].size()};
            msgs[i].msg_hdr = msghdr{};
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        const int n = recvmmsg(c.fd, msgs.data(), batch, 0, nullptr);
        if (n <= 0) return;
        const ngtcp2_path path = c.path();
        const ngtcp2_pkt_info pi{};
        for (int i = 0; i < n && !c.dead; ++i) {
            const int rv = ngtcp2_conn_read_pkt(c.quic, &path, &pi, buffers[i].data(), msgs[i].msg_len, now_ns());
            if (rv == NGTCP2_ERR_DRAINING || rv == NGTCP2_ERR_CLOSING)
                c.fail("the server closed the connection");
            else if (rv != 0)
                c.fail(std::string("ngtcp2_conn_read_pkt: ") + ngtcp2_strerror(rv));
        }
        if (n < static_cast<int>(batch)) return;
    }
}

double parse_seconds(std::string_view text) {
    double scale = 1;
    if (text.ends_with("ms")) {
        scale = 1e-3;
        text.remove_suffix(2);
    } else if (text.ends_with("s")) {
        text.remove_suffix(1);
    }
    return std::stod(std::string(text)) * scale;
}

bool parse_args(int argc, char** argv, Config& cfg, std::string& error) {
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i], value;
        if (arg.starts_with("--")) arg.erase(0, 1);
        if (arg == "-version") {
            std::printf("ngtcp2 %s, nghttp3 %s, GnuTLS %s\n", ngtcp2_version(0)->version_str,
                        nghttp3_version(0)->version_str, gnutls_check_version(nullptr));
            std::exit(0);
        }
        if (const auto eq = arg.find('='); eq != std::string::npos) {
            value = arg.substr(eq + 1);
            arg.resize(eq);
        }
        constexpr std::string_view known[] = {"-url",       "-ca",          "-c",           "-m",           "-method",
                                              "-body-size", "-expect-body", "-expect-echo", "-expect-type", "-warmup",
                                              "-d"};
        if (std::find(std::begin(known), std::end(known), arg) == std::end(known))
            return error = "unknown flag " + arg + " (h3bench runs load only; h3load -check is the correctness gate)",
                   false;
        if (arg != "-expect-echo" && value.empty() && std::string_view(argv[i]).find('=') == std::string_view::npos) {
            if (i + 1 >= argc) return error = arg + " needs a value", false;
            value = argv[++i];
        }
        if (arg == "-url")
            cfg.url = value;
        else if (arg == "-ca")
            cfg.ca = value;
        else if (arg == "-c")
            cfg.connections = std::stoi(value);
        else if (arg == "-m")
            cfg.streams = std::stoi(value);
        else if (arg == "-method")
            cfg.method = value;
        else if (arg == "-body-size")
            cfg.body_size = std::stoul(value);
        else if (arg == "-expect-body")
            cfg.expect_body = value, cfg.has_expect_body = true;
        else if (arg == "-expect-echo")
            cfg.expect_echo = true;
        else if (arg == "-expect-type")
            cfg.expect_type = value;
        else if (arg == "-warmup")
            cfg.warmup_s = parse_seconds(value);
        else
            cfg.duration_s = parse_seconds(value);  // -d, the last of the known flags
    }
    // https://host:port/path; an IPv6 host in brackets
    constexpr std::string_view scheme = "https://";
    if (!std::string_view(cfg.url).starts_with(scheme)) return error = "-url must be https://host:port/path", false;
    const std::string rest = cfg.url.substr(scheme.size());
    const auto slash = rest.find('/');
    const std::string hostport = rest.substr(0, slash);
    cfg.path = slash == std::string::npos ? "/" : rest.substr(slash);
    const auto colon = hostport.rfind(':');
    if (colon == std::string::npos || hostport.find(']', colon) != std::string::npos)
        return error = "-url needs a port", false;
    cfg.host = hostport.substr(0, colon);
    cfg.port = hostport.substr(colon + 1);
    if (cfg.host.size() > 1 && cfg.host.front() == '[') cfg.host = cfg.host.substr(1, cfg.host.size() - 2);
    if (cfg.ca.empty()) return error = "-ca is required", false;
    if (cfg.connections < 1 || cfg.streams < 1) return error = "-c and -m must be at least 1", false;
    if (cfg.expect_echo && cfg.body_size == 0) return error = "-expect-echo needs -body-size", false;
    return true;
}

nghttp3_nv header(std::string_view name, std::string_view value) {
    // nghttp3_nv's pointers are not const, but nghttp3 only reads them
    return nghttp3_nv{const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(name.data())),
                      const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(value.data())), name.size(),
                      value.size(), NGHTTP3_NV_FLAG_NONE};
}

std::string json_string(std::string_view s) {
    std::string out = "\"";
    for (char ch : s) {
        if (ch == '"' || ch == '\\') out += '\\';
        if (static_cast<unsigned char>(ch) < 0x20) {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\u%04x", ch);
            out += esc;
        } else {
            out += ch;
        }
    }
    return out + "\"";
}

double percentile_ms(std::vector<std::uint32_t>& sorted, double p) {
    const auto n = static_cast<double>(sorted.size());
    auto k = static_cast<std::size_t>(std::ceil(p * n / 100.0 - 1e-9));
    k = std::clamp<std::size_t>(k, 1, sorted.size());
    return sorted[k - 1] / 1000.0;
}

void print_result(Run& run, double window_s, const std::string& reason) {
    Tally& t = run.tally;
    const Config& cfg = run.cfg;
    std::sort(t.latency_us.begin(), t.latency_us.end());
    std::string latency = "{";
    if (!t.latency_us.empty()) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "\"50\":%.3f,\"90\":%.3f,\"99\":%.3f,\"99.9\":%.3f",
                      percentile_ms(t.latency_us, 50), percentile_ms(t.latency_us, 90), percentile_ms(t.latency_us, 99),
                      percentile_ms(t.latency_us, 99.9));
        latency += buf;
    }
    latency += "}";
    const std::uint64_t errors = t.err_connect + t.err_request + t.err_status + t.err_body + t.err_header;
    const double rps = window_s > 0 ? t.requests / window_s : 0;
    const double bps = window_s > 0 ? (t.bytes_read + t.bytes_sent) / window_s : 0;
    if (reason.empty())
        std::printf("%s %s: %llu requests in %.2f s = %.0f req/s, %.1f MB/s; p50 %.3f ms, p99 %.3f ms; %llu errors\n",
                    cfg.method.c_str(), cfg.url.c_str(), static_cast<unsigned long long>(t.requests), window_s, rps,
                    bps / 1e6, t.latency_us.empty() ? 0.0 : percentile_ms(t.latency_us, 50),
                    t.latency_us.empty() ? 0.0 : percentile_ms(t.latency_us, 99),
                    static_cast<unsigned long long>(errors));
    std::string tls = "null";
    if (!run.tls_version.empty())
        tls = "{\"version\":" + json_string(run.tls_version) + ",\"cipher\":" + json_string(run.tls_cipher) +
              ",\"alpn\":" + json_string(run.tls_alpn) + "}";
    std::printf(
        "H3LOAD_RESULT {\"tool\":\"h3bench\",\"version\":\"ngtcp2 %s, nghttp3 %s, GnuTLS %s\",\"url\":%s,"
        "\"method\":%s,\"check\":false,\"ok\":%s,%s\"connections\":%d,\"streams\":%d,\"body_size\":%zu,"
        "\"warmup_s\":%g,\"duration_s\":%.6f,\"requests\":%llu,\"requests_per_sec\":%.3f,\"bytes_read\":%llu,"
        "\"bytes_sent\":%llu,\"bytes_per_sec\":%.3f,\"latency_ms\":%s,\"status\":{\"2xx\":%llu,\"3xx\":%llu,"
        "\"4xx\":%llu,\"5xx\":%llu},\"protocol\":\"HTTP/3.0\",\"dials\":%llu,\"tls\":%s,\"errors\":{\"connect\":%llu,"
        "\"request\":%llu,\"status\":%llu,\"proto\":0,\"body\":%llu,\"header\":%llu},\"errors_total\":%llu%s}\n",
        ngtcp2_version(0)->version_str, nghttp3_version(0)->version_str, gnutls_check_version(nullptr),
        json_string(cfg.url).c_str(), json_string(cfg.method).c_str(), reason.empty() && errors == 0 ? "true" : "false",
        reason.empty() ? "" : ("\"reason\":" + json_string(reason) + ",").c_str(), cfg.connections, cfg.streams,
        cfg.body_size, cfg.warmup_s, window_s, static_cast<unsigned long long>(t.requests), rps,
        static_cast<unsigned long long>(t.bytes_read), static_cast<unsigned long long>(t.bytes_sent), bps,
        latency.c_str(), static_cast<unsigned long long>(t.status_2xx), static_cast<unsigned long long>(t.status_3xx),
        static_cast<unsigned long long>(t.status_4xx), static_cast<unsigned long long>(t.status_5xx),
        static_cast<unsigned long long>(run.dials), tls.c_str(), static_cast<unsigned long long>(t.err_connect),
        static_cast<unsigned long long>(t.err_request), static_cast<unsigned long long>(t.err_status),
        static_cast<unsigned long long>(t.err_body), static_cast<unsigned long long>(t.err_header),
        static_cast<unsigned long long>(errors),
        t.first_error.empty() ? "" : (",\"first_error\":" + json_string(t.first_error)).c_str());
    std::fflush(stdout);
}

// What the handshake negotiated, from the first connection that made one.
void note_tls(Run& run, const std::vector<std::unique_ptr<Connection>>& conns) {
    for (const auto& c : conns) {
        if (c->dead) continue;
        gnutls_datum_t alpn{};
        if (gnutls_alpn_get_selected_protocol(c->tls, &alpn) == 0)
            run.tls_alpn.assign(reinterpret_cast<const char*>(alpn.data), alpn.size);
        run.tls_version = gnutls_protocol_get_name(gnutls_protocol_get_version(c->tls));
        run.tls_cipher = gnutls_cipher_get_name(gnutls_cipher_get(c->tls));
        return;
    }
}

}  // namespace

int main(int argc, char** argv) {
    Run run;
    std::string error;
    try {
        if (!parse_args(argc, argv, run.cfg, error)) {
            print_result(run, 0, error);
            return 2;
        }
    } catch (const std::exception& e) {
        print_result(run, 0, std::string("bad flag value: ") + e.what());
        return 2;
    }
    const Config& cfg = run.cfg;
    run.body.resize(cfg.body_size);
    for (std::size_t i = 0; i < run.body.size(); ++i) run.body[i] = static_cast<std::uint8_t>((i * 2654435761u) >> 13);
    run.authority =
        cfg.host.find(':') != std::string::npos ? "[" + cfg.host + "]:" + cfg.port : cfg.host + ":" + cfg.port;
    run.content_length = std::to_string(cfg.body_size);
    run.headers = {header(":method", cfg.method), header(":scheme", "https"), header(":authority", run.authority),
                   header(":path", cfg.path), header("user-agent", "h3bench")};
    if (!run.body.empty()) {
        run.headers.push_back(header("content-length", run.content_length));
        run.headers.push_back(header("content-type", "application/octet-stream"));
    }

    addrinfo hints{}, *target = nullptr;
    hints.ai_socktype = SOCK_DGRAM;
    if (getaddrinfo(cfg.host.c_str(), cfg.port.c_str(), &hints, &target) != 0 || !target) {
        print_result(run, 0, "cannot resolve " + cfg.host);
        return 1;
    }
    gnutls_certificate_credentials_t creds = nullptr;
    gnutls_certificate_allocate_credentials(&creds);
    if (gnutls_certificate_set_x509_trust_file(creds, cfg.ca.c_str(), GNUTLS_X509_FMT_PEM) <= 0) {
        print_result(run, 0, "no CA certificate in " + cfg.ca);
        return 1;
    }

    const int epoll = epoll_create1(EPOLL_CLOEXEC);
    std::vector<std::unique_ptr<Connection>> conns;
    for (int i = 0; i < cfg.connections; ++i) {
        conns.push_back(dial(run, *target, creds));
        epoll_event ev{EPOLLIN, {.u32 = static_cast<std::uint32_t>(i)}};
        if (conns.back()->fd >= 0) epoll_ctl(epoll, EPOLL_CTL_ADD, conns.back()->fd, &ev);
        conns.back()->write();  // the Initial
    }

    const std::uint64_t t0 = now_ns();
    std::uint64_t window_start = 0, window_end = 0;
    const auto handshake_limit = t0 + 5'000'000'000ull;
    std::string reason;
    std::array<epoll_event, 256> events;
    for (;;) {
        std::uint64_t next = UINT64_MAX;
        for (auto& c : conns)
            if (!c->dead) next = std::min<std::uint64_t>(next, ngtcp2_conn_get_expiry(c->quic));
        const std::uint64_t now = now_ns();
        int wait_ms =
            next <= now ? 0 : static_cast<int>(std::min<std::uint64_t>((next - now + 999'999) / 1'000'000, 100));
        const int n = epoll_wait(epoll, events.data(), static_cast<int>(events.size()), wait_ms);
        for (int i = 0; i < n; ++i) {  // what arrived, then the requests it made room for, then what to send
            Connection& c = *conns[events[static_cast<std::size_t>(i)].data.u32];
            if (!c.dead) receive(c);
            if (!c.submit()) c.fail("nghttp3 could not submit a request");
            c.write();
            if (c.dead) epoll_ctl(epoll, EPOLL_CTL_DEL, c.fd, nullptr);  // else its unread datagrams wake us forever
        }
        const std::uint64_t ts = now_ns();
        for (auto& c : conns) {  // timers: loss detection, ACK delay, pacing
            if (c->dead || ngtcp2_conn_get_expiry(c->quic) > ts) continue;
            if (const int rv = ngtcp2_conn_handle_expiry(c->quic, ts); rv != 0) {
                c->fail(std::string("ngtcp2_conn_handle_expiry: ") + ngtcp2_strerror(rv));
                continue;
            }
            c->write();
        }
        if (!window_start) {
            const bool all_ready = std::all_of(conns.begin(), conns.end(), [](auto& c) { return c->dead || c->h3; });
            if (!all_ready && ts > handshake_limit) {
                reason = "QUIC handshakes did not complete in 5 s";
                break;
            }
            if (all_ready) {
                note_tls(run, conns);
                window_start = ts + static_cast<std::uint64_t>(cfg.warmup_s * 1e9);
            }
        } else if (!run.in_window && !run.stopping && ts >= window_start) {
            run.tally = Tally{};
            run.in_window = true;
            window_start = ts;
            window_end = ts + static_cast<std::uint64_t>(cfg.duration_s * 1e9);
            std::puts("H3LOAD_MARK start");
            std::fflush(stdout);
        } else if (run.in_window && ts >= window_end) {
            run.in_window = false;
            run.stopping = true;
            window_end = ts;
            std::puts("H3LOAD_MARK end");
            std::fflush(stdout);
            break;
        }
        if (std::all_of(conns.begin(), conns.end(), [](auto& c) { return c->dead; })) {
            reason = "every QUIC connection failed: " + run.tally.first_error;
            break;
        }
    }
    const double window_s = window_end > window_start ? (window_end - window_start) / 1e9 : 0;
    print_result(run, window_s, reason);
    for (auto& c : conns) {  // close politely so the server frees the connections at once
        if (c->dead || !c->quic) continue;
        std::array<std::uint8_t, 1500> buf;
        ngtcp2_path_storage ps;
        ngtcp2_path_storage_zero(&ps);
        ngtcp2_connection_close_error ccerr;
        ngtcp2_connection_close_error_set_application_error(&ccerr, NGHTTP3_H3_NO_ERROR, nullptr, 0);
        const ngtcp2_ssize len =
            ngtcp2_conn_write_connection_close(c->quic, &ps.path, nullptr, buf.data(), buf.size(), &ccerr, now_ns());
        if (len > 0) send(c->fd, buf.data(), static_cast<std::size_t>(len), 0);
    }
    gnutls_certificate_free_credentials(creds);
    freeaddrinfo(target);
    close(epoll);
    return reason.empty() ? 0 : 1;
}
