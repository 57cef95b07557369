#include "session.hpp"

#include <gnutls/x509.h>

#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <stdexcept>

#include "../logging.hpp"
#include "covet/http/date_cache.hpp"
#include "covet/http/proxy_headers.hpp"
#include "covet/http/request_builder.hpp"
#include "covet/http/status.hpp"
#include "covet/http/stream_pool.hpp"
#include "covet/http3/cid_router.hpp"
#include "covet/metrics/http_metrics.hpp"
#include "covet/net/worker_context.hpp"
#include "quic_heap.hpp"

namespace covet::http3::detail {

struct Stream {
    struct Field {
        std::uint32_t name_off = 0, name_len = 0, value_off = 0, value_len = 0;
    };
    std::int64_t id = -1;
    Request request;
    std::unique_ptr<ExchangeState> app_state;  // kept while pooled, for the dispatcher that made it
    const void* app_state_owner = nullptr;
    std::string head;  // decoded names and values (views are made once the request is complete)
    std::vector<Field> fields;
    Field method{}, path{}, authority{};
    bool has_method = false, has_path = false, has_authority = false;
    std::size_t header_bytes = 0;
    std::string body;
    int reject_status = 0;
    std::string reject_reason;
    bool headers_done = false;  // the request is built (views into `head`)

    // A body that streams to the application (covet/http/body_stream.hpp), as over HTTP/2.
    std::uint64_t content_length = UINT64_MAX;  // declared, if any
    bool upload_offered = false;                // the dispatcher was asked (once)
    bool upload = false;                        // dispatched with its body still arriving
    bool upload_ended = false;                  // ended before the reader was installed
    std::shared_ptr<BodyReader> reader;
    std::string upload_hold;               // bytes that came before the reader
    std::uint64_t upload_bytes = 0;        // received so far (against max_stream_body_bytes)
    std::uint64_t upload_unacked = 0;      // delivered or held, not yet acknowledged: the stream window's
    std::uint64_t upload_precredited = 0;  // of those, already given back (buffered before the offer)

    bool app_owned = false;     // dispatched; the final completion has not come yet
    bool h3_open = true;        // nghttp3 still knows the stream
    bool submitted = false;     // the response head went to nghttp3
    bool streaming = false;     // the body comes from stream_write
    bool ended = false;         // no more body will come (complete, stream_end)
    bool head_only = false;     // HEAD: no body is sent
    bool blocked = false;       // read_body said WOULDBLOCK
    bool has_trailers = false;  // the response's trailers go after the body
    Response response;          // the head (and its trailers)
    SendBuffer out;
    std::uint64_t file_offset = 0, file_left = 0;  // a file body still to read into `out`
    std::shared_ptr<StreamFlow> flow;

    std::string_view view(std::uint32_t off, std::uint32_t len) const noexcept {
        return std::string_view(head).substr(off, len);
    }
    void close_flow() noexcept {
        if (std::shared_ptr<StreamFlow> f = std::move(flow)) f->close();
    }
    // Made like new for stream `stream_id` (from the worker's pool; buffers keep their capacity, app_state stays).
    void reset(std::int64_t stream_id) {
        flow.reset();
        id = stream_id;
        request.reset();
        head.clear();
        fields.clear();
        method = path = authority = {};
        has_method = has_path = has_authority = false;
        header_bytes = 0;
        body.clear();
        reject_status = 0;
        reject_reason.clear();
        headers_done = false;
        content_length = UINT64_MAX;
        upload_offered = upload = upload_ended = false;
        reader.reset();
        upload_hold.clear();
        upload_bytes = upload_unacked = upload_precredited = 0;
        app_owned = submitted = streaming = ended = head_only = blocked = has_trailers = false;
        h3_open = true;
        response = Response();
        out.clear();
        file_offset = file_left = 0;
    }
    // Into the pool: big buffers, the response and the reader go now.
    void retire(std::size_t max_kept_bytes) {
        if (body.capacity() > max_kept_bytes) std::string().swap(body);
        if (upload_hold.capacity() > max_kept_bytes) std::string().swap(upload_hold);
        reader.reset();
        response = Response();
        out.clear();
        flow.reset();  // as when a stream was destroyed: the session closed it if it had to
    }
};

namespace {

constexpr std::size_t scid_length = routed_cid_length;  // covet/http3/cid_router.hpp
constexpr std::size_t max_header_bytes = std::size_t{64} * 1024;
constexpr std::size_t file_piece = std::size_t{64} * 1024;
constexpr std::uint64_t h3_no_error = NGHTTP3_H3_NO_ERROR;

Session* self(void* user_data) { return static_cast<Session*>(user_data); }

// Ended streams of this worker thread's sessions, with their buffers' capacity: without it a third of a busy
// server's time went to malloc and free (perf, 64 connections x 100 streams). Per worker, not per connection:
// streams end and begin in bursts (one datagram's ACK can end a hundred, one read of 64 datagrams thousands), more
// than a per-connection pool should keep for each of thousands of connections. At most 8192 spares (~2.3 KB each
// with their buffers: ~19 MB, kept only after that many streams were open at once, as the heap would keep it).
covet::detail::StreamPool<Stream>& stream_pool() {
    thread_local covet::detail::StreamPool<Stream> pool(8192);
    return pool;
}

std::string cid_key(const std::uint8_t* data, std::size_t length) {
    return std::string(reinterpret_cast<const char*>(data), length);
}

// ---- ngtcp2's callbacks ----
int recv_stream_data(ngtcp2_conn*, std::uint32_t flags, std::int64_t id, std::uint64_t, const std::uint8_t* data,
                     std::size_t length, void* user, void*) {
    if (flags & NGTCP2_STREAM_DATA_FLAG_EARLY) self(user)->early_stream(id);
    return self(user)->on_stream_data(id, data, length, flags & NGTCP2_STREAM_DATA_FLAG_FIN) == 0
               ? 0
               : NGTCP2_ERR_CALLBACK_FAILURE;
}
int acked_stream_data_offset(ngtcp2_conn*, std::int64_t id, std::uint64_t, std::uint64_t length, void* user, void*) {
    return self(user)->on_acked(id, length) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}
int stream_close(ngtcp2_conn*, std::uint32_t flags, std::int64_t id, std::uint64_t error, void* user, void*) {
    if (!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET)) error = h3_no_error;
    return self(user)->on_stream_close(id, error) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}
int stream_reset(ngtcp2_conn*, std::int64_t id, std::uint64_t, std::uint64_t, void* user, void*) {
    return self(user)->on_stream_reset(id) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}
int stream_stop_sending(ngtcp2_conn*, std::int64_t id, std::uint64_t, void* user, void*) {
    return self(user)->on_stream_reset(id) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}
void random_bytes(std::uint8_t* dest, std::size_t length, const ngtcp2_rand_ctx*) {
    gnutls_rnd(GNUTLS_RND_RANDOM, dest, length);
}
int get_new_connection_id(ngtcp2_conn*, ngtcp2_cid* cid, std::uint8_t* token, std::size_t length, void* user) {
    return self(user)->on_new_cid(cid, token, length) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}
int remove_connection_id(ngtcp2_conn*, const ngtcp2_cid* cid, void* user) {
    self(user)->on_removed_cid(cid);
    return 0;
}
int extend_max_remote_streams_bidi(ngtcp2_conn*, std::uint64_t max_streams, void* user) {
    self(user)->on_max_streams(max_streams);
    return 0;
}
int extend_max_stream_data(ngtcp2_conn*, std::int64_t id, std::uint64_t, void* user, void*) {
    return self(user)->on_unblocked(id) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}
int recv_tx_key(ngtcp2_conn*, ngtcp2_crypto_level level, void* user) {
    return self(user)->on_tx_key(level) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}
int handshake_completed(ngtcp2_conn*, void* user) {
    return self(user)->on_handshake_completed() == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}
ngtcp2_conn* conn_of(ngtcp2_crypto_conn_ref* ref) { return static_cast<Session*>(ref->user_data)->quic(); }

// ---- nghttp3's callbacks ----
Stream* stream(void* stream_user) { return static_cast<Stream*>(stream_user); }
int h3_acked(nghttp3_conn*, std::int64_t, std::uint64_t length, void* /*user*/, void* su) {
    if (Stream* s = stream(su)) Session::on_h3_acked(s, length);
    return 0;
}
int h3_stream_close(nghttp3_conn*, std::int64_t id, std::uint64_t, void* user, void*) {
    self(user)->on_h3_stream_close(id);
    return 0;
}
int h3_recv_data(nghttp3_conn*, std::int64_t id, const std::uint8_t* data, std::size_t length, void* user, void* su) {
    self(user)->on_h3_data(id, stream(su), data, length);
    return 0;
}
int h3_deferred_consume(nghttp3_conn*, std::int64_t id, std::size_t consumed, void* user, void*) {
    self(user)->consumed(id, consumed);
    return 0;
}
int h3_begin_headers(nghttp3_conn*, std::int64_t id, void* user, void*) {
    return self(user)->begin_stream(id) ? 0 : NGHTTP3_ERR_CALLBACK_FAILURE;
}
int h3_recv_header(nghttp3_conn*, std::int64_t id, std::int32_t token, nghttp3_rcbuf* name, nghttp3_rcbuf* value,
                   std::uint8_t, void* user, void* su) {
    if (Stream* s = stream(su)) self(user)->on_h3_header(id, token, name, value, s);
    return 0;
}
int h3_end_headers(nghttp3_conn*, std::int64_t, int fin, void* user, void* su) {
    if (Stream* s = stream(su)) self(user)->on_h3_end_headers(*s, fin != 0);
    return 0;
}
int h3_end_stream(nghttp3_conn*, std::int64_t, void* user, void* su) {
    Stream* s = stream(su);
    return !s || self(user)->on_h3_end_stream(s) == 0 ? 0 : NGHTTP3_ERR_CALLBACK_FAILURE;
}
int h3_stop_sending(nghttp3_conn*, std::int64_t id, std::uint64_t error, void* user, void*) {
    return self(user)->on_h3_stop_sending(id, error) == 0 ? 0 : NGHTTP3_ERR_CALLBACK_FAILURE;
}
int h3_reset_stream(nghttp3_conn*, std::int64_t id, std::uint64_t error, void* user, void*) {
    return self(user)->on_h3_reset_stream(id, error) == 0 ? 0 : NGHTTP3_ERR_CALLBACK_FAILURE;
}
nghttp3_ssize h3_read_body(nghttp3_conn*, std::int64_t, nghttp3_vec* vec, std::size_t count, std::uint32_t* flags,
                           void* user, void* su) {
    return self(user)->read_body(stream(su), vec, count, flags);
}

// The client must offer "h3" (RFC 9114 §3.1); GnuTLS has already picked it when the ClientHello had it.
int check_alpn(gnutls_session_t session, unsigned, unsigned, unsigned, const gnutls_datum_t*) {
    gnutls_datum_t alpn{};
    if (gnutls_alpn_get_selected_protocol(session, &alpn) != 0) return -1;
    return alpn.size == 2 && std::memcmp(alpn.data, "h3", 2) == 0 ? 0 : -1;
}

// HTTP/3 field names are lowercase (RFC 9114 §4.2); the application's may not be.
struct HeaderList {
    std::vector<nghttp3_nv> nv;
    std::string bytes;
    std::vector<std::pair<std::size_t, std::size_t>> spans;  // name and value offsets into `bytes`
    std::vector<std::size_t> lengths;

    void clear() {
        nv.clear();
        bytes.clear();
        spans.clear();
        lengths.clear();
    }
    void add(std::string_view name, std::string_view value) {
        spans.emplace_back(bytes.size(), name.size());
        for (char c : name) bytes.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c);
        spans.emplace_back(bytes.size(), value.size());
        bytes.append(value);
    }
    const std::vector<nghttp3_nv>& finish() {
        nv.clear();
        for (std::size_t i = 0; i + 1 < spans.size(); i += 2) {
            auto* base = reinterpret_cast<std::uint8_t*>(bytes.data());
            nv.push_back(nghttp3_nv{base + spans[i].first, base + spans[i + 1].first, spans[i].second,
                                    spans[i + 1].second, NGHTTP3_NV_FLAG_NONE});
        }
        return nv;
    }
};

// Http3Options::preferred_address in the transport parameters (RFC 9000 §18.2): the address, and the connection ID
// (sequence number 1) with its stateless-reset token that the client uses there. Returns that ID.
ngtcp2_cid offer_preferred_address(ngtcp2_transport_params& params, const Endpoint& endpoint,
                                   const Address& preferred) {
    ngtcp2_preferred_addr& offer = params.preferred_address;
    offer = {};
    if (preferred.storage.ss_family == AF_INET) {
        std::memcpy(&offer.ipv4, preferred.get(), sizeof offer.ipv4);
        offer.ipv4_present = 1;
    } else {
        std::memcpy(&offer.ipv6, preferred.get(), sizeof offer.ipv6);
        offer.ipv6_present = 1;
    }
    offer.cid = endpoint.new_cid(scid_length);
    const auto& secret = endpoint.shared().secret;
    if (ngtcp2_crypto_generate_stateless_reset_token(offer.stateless_reset_token, secret.data(), secret.size(),
                                                     &offer.cid) != 0)
        throw std::runtime_error("ngtcp2_crypto_generate_stateless_reset_token failed");
    params.preferred_address_present = 1;
    return offer.cid;
}

HeaderList& header_list() {
    thread_local HeaderList list;
    list.clear();
    return list;
}

}  // namespace

// ---- set-up ----

Session::Session(net::Connection& conn, Endpoint& endpoint, const ngtcp2_pkt_hd& hd, const Arrival& first,
                 const ngtcp2_cid* original_dcid)
    : conn_ref_(conn), endpoint_(endpoint), first_(first) {
    const net::Http3Options& o = endpoint.shared().config.http3;
    ngtcp2_callbacks cb{};
    cb.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
    cb.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
    cb.handshake_completed = handshake_completed;
    cb.encrypt = ngtcp2_crypto_encrypt_cb;
    cb.decrypt = ngtcp2_crypto_decrypt_cb;
    cb.hp_mask = ngtcp2_crypto_hp_mask_cb;
    cb.recv_stream_data = recv_stream_data;
    cb.acked_stream_data_offset = acked_stream_data_offset;
    cb.stream_close = stream_close;
    cb.rand = random_bytes;
    cb.get_new_connection_id = get_new_connection_id;
    cb.remove_connection_id = remove_connection_id;
    cb.update_key = ngtcp2_crypto_update_key_cb;
    cb.stream_reset = stream_reset;
    cb.extend_max_remote_streams_bidi = extend_max_remote_streams_bidi;
    cb.extend_max_stream_data = extend_max_stream_data;
    cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
    cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
    cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
    cb.stream_stop_sending = stream_stop_sending;
    cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
    cb.recv_tx_key = recv_tx_key;

    ngtcp2_settings settings;
    ngtcp2_settings_default(&settings);
    settings.initial_ts = timestamp();
    settings.max_window = o.connection_window * 2;
    settings.max_stream_window = o.stream_window * 2;
    settings.handshake_timeout = static_cast<ngtcp2_duration>(o.handshake_timeout.count()) * NGTCP2_MILLISECONDS;

    ngtcp2_transport_params params;
    ngtcp2_transport_params_default(&params);
    params.initial_max_stream_data_bidi_remote = o.stream_window;
    params.initial_max_stream_data_bidi_local = o.stream_window;
    params.initial_max_stream_data_uni = o.stream_window;
    params.initial_max_data = o.connection_window;
    params.initial_max_streams_bidi = o.max_streams_bidi;
    params.initial_max_streams_uni = 3;  // the client's control and QPACK streams
    params.max_idle_timeout = static_cast<ngtcp2_duration>(o.idle_timeout.count()) * NGTCP2_MILLISECONDS;
    params.active_connection_id_limit = 7;
    if (original_dcid) {  // it came back with our Retry's token: hd.dcid is the ID that Retry gave it
        params.original_dcid = *original_dcid;
        params.retry_scid = hd.dcid;
        params.retry_scid_present = 1;
    } else {
        params.original_dcid = hd.dcid;
    }
    const ngtcp2_cid scid = endpoint.new_cid(scid_length);
    const auto& secret = endpoint.shared().secret;
    params.stateless_reset_token_present = 1;
    if (ngtcp2_crypto_generate_stateless_reset_token(params.stateless_reset_token, secret.data(), secret.size(),
                                                     &scid) != 0)
        throw std::runtime_error("ngtcp2_crypto_generate_stateless_reset_token failed");

    ngtcp2_cid preferred_cid{};
    if (const Address* preferred = endpoint.preferred())
        preferred_cid = offer_preferred_address(params, endpoint, *preferred);
    const ngtcp2_path path = path_from(first);
    if (const int rv = ngtcp2_conn_server_new(&conn_, &hd.scid, &scid, &path, hd.version, &cb, &settings, &params,
                                              quic_heap_ngtcp2(), this);
        rv != 0)
        throw std::runtime_error(std::string("ngtcp2_conn_server_new: ") + ngtcp2_strerror(rv));

    // The handshake: GnuTLS through ngtcp2's helper, TLS 1.3 only (QUIC), ALPN "h3" required.
    const bool early = endpoint.shared().anti_replay != nullptr;
    if (gnutls_init(&tls_, GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET | GNUTLS_NO_END_OF_EARLY_DATA |
                               (early ? GNUTLS_ENABLE_EARLY_DATA : 0)) != 0)
        throw std::runtime_error("gnutls_init failed");
    if (early) {
        gnutls_anti_replay_enable(tls_, endpoint.shared().anti_replay);
        gnutls_record_set_max_early_data_size(tls_, 0xffffffffu);  // QUIC: the flow-control limits apply
    }
    if (gnutls_priority_set_direct(tls_, "NORMAL:-VERS-ALL:+VERS-TLS1.3:%DISABLE_TLS13_COMPAT_MODE", nullptr) != 0)
        throw std::runtime_error("gnutls_priority_set_direct failed");
    gnutls_handshake_set_hook_function(tls_, GNUTLS_HANDSHAKE_CLIENT_HELLO, GNUTLS_HOOK_POST, check_alpn);
    // Resumption: a ticket after each handshake (on_handshake_completed), sealed with the shared key.
    const gnutls_datum_t ticket_key = endpoint.shared().ticket_datum();
    if (gnutls_session_ticket_enable_server(tls_, &ticket_key) != 0)
        throw std::runtime_error("gnutls_session_ticket_enable_server failed");
    if (ngtcp2_crypto_gnutls_configure_server_session(tls_) != 0)
        throw std::runtime_error("ngtcp2_crypto_gnutls_configure_server_session failed");
    crypto_ref_.get_conn = conn_of;
    crypto_ref_.user_data = this;
    gnutls_session_set_ptr(tls_, &crypto_ref_);
    credentials_ = endpoint.shared().credentials();
    if (gnutls_credentials_set(tls_, GNUTLS_CRD_CERTIFICATE, credentials_->get()) != 0)
        throw std::runtime_error("gnutls_credentials_set failed");
    // mTLS as over TCP: a certificate that does not chain to TlsConfig::ca_file fails the handshake (Credentials'
    // verify function); none is refused only when required.
    // (HTTP/3 runs only with TLS configured: the endpoint refuses to start without it)
    if (const net::ClientAuth auth =
            endpoint.shared().config.tls->client_auth;  // NOLINT(bugprone-unchecked-optional-access)
        auth != net::ClientAuth::none) {
        gnutls_certificate_server_set_request(
            tls_, auth == net::ClientAuth::required ? GNUTLS_CERT_REQUIRE : GNUTLS_CERT_REQUEST);
    }
    gnutls_datum_t alpn{reinterpret_cast<unsigned char*>(const_cast<char*>("h3")), 2};
    gnutls_alpn_set_protocols(tls_, &alpn, 1, GNUTLS_ALPN_MANDATORY | GNUTLS_ALPN_SERVER_PRECEDENCE);
    ngtcp2_conn_set_tls_native_handle(conn_, tls_);

    // Packets for this connection: the client's first destination ID (its Initial retransmissions) and ours.
    cids_.push_back(cid_key(hd.dcid.data, hd.dcid.datalen));
    endpoint.add_cid(cids_.back(), conn.id());
    cids_.push_back(cid_key(scid.data, scid.datalen));
    endpoint.add_cid(cids_.back(), conn.id());
    if (preferred_cid.datalen > 0) {  // the client's packets to the preferred address
        cids_.push_back(cid_key(preferred_cid.data, preferred_cid.datalen));
        endpoint.add_cid(cids_.back(), conn.id());
    }
    endpoint.handshake_started();
}

void Session::end_handshake() noexcept {
    if (handshake_done_) return;
    handshake_done_ = true;
    endpoint_.handshake_ended();
}

Session::~Session() {
    if (h3_) nghttp3_conn_del(h3_);
    if (conn_) ngtcp2_conn_del(conn_);
    if (tls_) gnutls_deinit(tls_);
}

bool Session::setup_http() {
    if (h3_) return true;
    if (ngtcp2_conn_get_max_local_streams_uni(conn_) < 3) return false;
    nghttp3_callbacks cb{};
    cb.acked_stream_data = h3_acked;
    cb.stream_close = h3_stream_close;
    cb.recv_data = h3_recv_data;
    cb.deferred_consume = h3_deferred_consume;
    cb.begin_headers = h3_begin_headers;
    cb.recv_header = h3_recv_header;
    cb.end_headers = h3_end_headers;
    cb.stop_sending = h3_stop_sending;
    cb.end_stream = h3_end_stream;
    cb.reset_stream = h3_reset_stream;
    nghttp3_settings settings;
    nghttp3_settings_default(&settings);
    settings.qpack_max_dtable_capacity = 4096;
    settings.qpack_blocked_streams = 100;
    settings.max_field_section_size = max_header_bytes;
    if (nghttp3_conn_server_new(&h3_, &cb, &settings, quic_heap_nghttp3(), this) != 0) return false;
    nghttp3_conn_set_max_client_streams_bidi(h3_, endpoint_.shared().config.http3.max_streams_bidi);
    std::int64_t control = 0, encoder = 0, decoder = 0;
    return ngtcp2_conn_open_uni_stream(conn_, &control, nullptr) == 0 &&
           nghttp3_conn_bind_control_stream(h3_, control) == 0 &&
           ngtcp2_conn_open_uni_stream(conn_, &encoder, nullptr) == 0 &&
           ngtcp2_conn_open_uni_stream(conn_, &decoder, nullptr) == 0 &&
           nghttp3_conn_bind_qpack_streams(h3_, encoder, decoder) == 0;
}

int Session::on_tx_key(ngtcp2_crypto_level level) {
    if (level != NGTCP2_CRYPTO_LEVEL_APPLICATION) return 0;
    return setup_http() ? 0 : -1;
}

int Session::on_handshake_completed() {
    end_handshake();
    fill_tls_info();
    // NOLINTNEXTLINE(bugprone-unchecked-optional-access): HTTP/3 runs only with TLS configured
    if (endpoint_.shared().config.tls->client_auth != net::ClientAuth::none) fill_client_certificate();
    // A session ticket for the next connection (resumption: no certificate exchange). Best effort.
    gnutls_session_ticket_send(tls_, 1, 0);
    return 0;
}

// What requests see of the handshake; known once the ClientHello is answered (a 0-RTT request needs it before the
// handshake completes).
void Session::fill_tls_info() {
    if (!tls_info_.version.empty()) return;
    tls_info_.version = "TLSv1.3";
    const char* cipher = gnutls_cipher_get_name(gnutls_cipher_get(tls_));
    // GnuTLS names the AEAD ("AES-128-GCM"); requests report the TLS 1.3 suite as OpenSSL does over TCP.
    const std::string_view c = cipher ? cipher : "";
    cipher_name_ = c == "AES-128-GCM"         ? "TLS_AES_128_GCM_SHA256"
                   : c == "AES-256-GCM"       ? "TLS_AES_256_GCM_SHA384"
                   : c == "CHACHA20-POLY1305" ? "TLS_CHACHA20_POLY1305_SHA256"
                                              : std::string(c);
    tls_info_.cipher = cipher_name_;
    tls_info_.alpn = "h3";
    char name[256];
    std::size_t length = sizeof name;
    unsigned type = 0;
    if (gnutls_server_name_get(tls_, name, &length, &type, 0) == 0 && type == GNUTLS_NAME_DNS)
        tls_info_.server_name.assign(name, std::min(length, sizeof name));
    tls_info_.session_reused = gnutls_session_is_resumed(tls_) != 0;
}

// mTLS: the client's certificate, verified during the handshake (a resumed session keeps the original one's).
void Session::fill_client_certificate() {
    unsigned count = 0;
    const gnutls_datum_t* chain = gnutls_certificate_get_peers(tls_, &count);
    unsigned status = 0;
    if (!chain || count == 0 || gnutls_certificate_verify_peers2(tls_, &status) != 0 || status != 0) return;
    gnutls_x509_crt_t certificate = nullptr;
    if (gnutls_x509_crt_init(&certificate) != 0) return;
    if (gnutls_x509_crt_import(certificate, &chain[0], GNUTLS_X509_FMT_DER) == 0) {
        tls_info_.client_verified = true;
        gnutls_datum_t dn{};
        if (gnutls_x509_crt_get_dn3(certificate, &dn, 0) == 0) {  // RFC 4514: "CN=alice,O=Example"
            tls_info_.client_subject.assign(reinterpret_cast<const char*>(dn.data), dn.size);
            gnutls_free(dn.data);
        }
        char name[256];
        std::size_t length = sizeof name;
        if (gnutls_x509_crt_get_dn_by_oid(certificate, GNUTLS_OID_X520_COMMON_NAME, 0, 0, name, &length) == 0)
            tls_info_.client_common_name.assign(name, std::min(length, sizeof name));
    }
    gnutls_x509_crt_deinit(certificate);
}

int Session::on_new_cid(ngtcp2_cid* cid, std::uint8_t* token, std::size_t length) {
    *cid = endpoint_.new_cid(length);
    const auto& secret = endpoint_.shared().secret;
    if (ngtcp2_crypto_generate_stateless_reset_token(token, secret.data(), secret.size(), cid) != 0) return -1;
    cids_.push_back(cid_key(cid->data, cid->datalen));
    endpoint_.add_cid(cids_.back(), conn_ref_.id());
    return 0;
}

void Session::on_removed_cid(const ngtcp2_cid* cid) {
    const std::string key = cid_key(cid->data, cid->datalen);
    endpoint_.remove_cid(key);
    std::erase(cids_, key);
}

// ---- packets in, packets out ----

bool Session::on_packet(const Arrival& arrival, const std::uint8_t* data, std::size_t length) {
    if (closed_) return false;
    const ngtcp2_path path = path_from(arrival);
    if (const int rv = ngtcp2_conn_read_pkt(conn_, &path, &arrival.info, data, length, timestamp()); rv != 0) {
        switch (rv) {
            case NGTCP2_ERR_DRAINING:   // the peer closed: nothing more to send
            case NGTCP2_ERR_DROP_CONN:  // ngtcp2 says drop it silently
            case NGTCP2_ERR_RETRY: close_quietly(); return false;
            case NGTCP2_ERR_CRYPTO:
                ngtcp2_connection_close_error_set_transport_error_tls_alert(
                    &last_error_, ngtcp2_conn_get_tls_alert(conn_), nullptr, 0);
                break;
            case NGTCP2_ERR_CALLBACK_FAILURE:
                // A callback set the HTTP/3 error it failed on (on_stream_data: H3_FRAME_UNEXPECTED, a QPACK
                // error, ...): the client is told that, not a transport INTERNAL_ERROR.
                if (last_error_.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION) break;
                [[fallthrough]];
            default: ngtcp2_connection_close_error_set_transport_error_liberr(&last_error_, rv, nullptr, 0);
        }
        close_with_error();
        return false;
    }
    if (open_bodies_) stream_open_bodies();
    mark_dirty();
    return true;
}

void Session::on_expiry() {
    if (closed_) return;
    if (const int rv = ngtcp2_conn_handle_expiry(conn_, timestamp()); rv != 0) {
        if (rv == NGTCP2_ERR_IDLE_CLOSE) return close_quietly();
        ngtcp2_connection_close_error_set_transport_error_liberr(&last_error_, rv, nullptr, 0);
        return close_with_error();
    }
    write();
}

void Session::mark_dirty() {
    if (!closed_) endpoint_.request_send(conn_ref_);
}

void Session::write() {
    if (closed_ || ngtcp2_conn_is_in_closing_period(conn_) || ngtcp2_conn_is_in_draining_period(conn_)) return;
    thread_local std::array<std::uint8_t, std::size_t{64} * 1024> buffer;
    const std::size_t payload = ngtcp2_conn_get_max_tx_udp_payload_size(conn_);
    const std::size_t most =
        std::clamp<std::size_t>(ngtcp2_conn_get_send_quantum(conn_) / payload, 1, buffer.size() / payload);
    const ngtcp2_tstamp ts = timestamp();
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi{};
    std::uint8_t* pos = buffer.data();
    std::size_t packets = 0, segment = 0;
    bool drained = false;  // all that nghttp3 had is in packets (not stopped by the batch size or congestion)
    unsigned ecn = 0;
    Address to;
    std::size_t socket = 0;
    auto send_batch = [&](std::uint8_t* end) {
        if (end != buffer.data())
            endpoint_.send(to, buffer.data(), static_cast<std::size_t>(end - buffer.data()), segment, ecn, socket);
    };
    for (;;) {
        std::int64_t stream_id = -1;
        int fin = 0;
        std::array<nghttp3_vec, 16> vec{};
        nghttp3_ssize count = 0;
        if (h3_ && ngtcp2_conn_get_max_data_left(conn_)) {
            count = nghttp3_conn_writev_stream(h3_, &stream_id, &fin, vec.data(), vec.size());
            if (count < 0) {
                ngtcp2_connection_close_error_set_application_error(
                    &last_error_, nghttp3_err_infer_quic_app_error_code(static_cast<int>(count)), nullptr, 0);
                return close_with_error();
            }
        }
        ngtcp2_ssize taken = -1;
        const std::uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE | (fin ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0);
        const ngtcp2_ssize n = ngtcp2_conn_writev_stream(conn_, &ps.path, &pi, pos, payload, &taken, flags, stream_id,
                                                         reinterpret_cast<const ngtcp2_vec*>(vec.data()),
                                                         static_cast<std::size_t>(count), ts);
        if (n < 0) {
            if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
                nghttp3_conn_block_stream(h3_, stream_id);
                continue;
            }
            if (n == NGTCP2_ERR_STREAM_SHUT_WR) {
                nghttp3_conn_shutdown_stream_write(h3_, stream_id);
                continue;
            }
            if (n == NGTCP2_ERR_WRITE_MORE) {
                if (nghttp3_conn_add_write_offset(h3_, stream_id, static_cast<std::size_t>(taken)) != 0) {
                    ngtcp2_connection_close_error_set_application_error(&last_error_, NGHTTP3_H3_INTERNAL_ERROR,
                                                                        nullptr, 0);
                    return close_with_error();
                }
                continue;
            }
            ngtcp2_connection_close_error_set_transport_error_liberr(&last_error_, static_cast<int>(n), nullptr, 0);
            return close_with_error();
        }
        if (taken >= 0 && h3_ && nghttp3_conn_add_write_offset(h3_, stream_id, static_cast<std::size_t>(taken)) != 0) {
            ngtcp2_connection_close_error_set_application_error(&last_error_, NGHTTP3_H3_INTERNAL_ERROR, nullptr, 0);
            return close_with_error();
        }
        if (n == 0) {  // nothing more now (or congestion-limited)
            send_batch(pos);
            drained = count == 0;
            break;
        }
        const auto size = static_cast<std::size_t>(n);
        const std::size_t path_socket = endpoint_.socket_of(ps.path.local);
        if (packets == 0) {
            to = Address::of(ps.path.remote);
            socket = path_socket;
            segment = size;
            ecn = pi.ecn;
        } else if (size > segment || pi.ecn != ecn || !(to == ps.path.remote) || path_socket != socket) {
            // One GSO batch: one path (a path probe during a migration goes elsewhere), one ECN mark, and only its
            // last segment may be shorter. This packet goes on its own.
            send_batch(pos);
            endpoint_.send(Address::of(ps.path.remote), pos, size, 0, pi.ecn, path_socket);
            break;
        }
        pos += size;
        if (++packets == most || size < segment) {
            send_batch(pos);
            break;
        }
    }
    // Pacing (RFC 9002 §7.7) starts with the first RTT sample. Before it ngtcp2 0.12 paces by the 333 ms initial
    // RTT, which held the packet after the handshake flight (the answer to a connection's first request) ~20 ms.
    if (!rtt_sampled_) {
        ngtcp2_conn_stat stat;
        ngtcp2_conn_get_conn_stat(conn_, &stat);
        rtt_sampled_ = stat.first_rtt_sample_ts != UINT64_MAX;
    }
    if (rtt_sampled_) ngtcp2_conn_update_pkt_tx_time(conn_, ts);
    endpoint_.schedule(conn_ref_.id(), scheduled_, ngtcp2_conn_get_expiry(conn_));
    if (drained) try_graceful_close();  // after the GOAWAY has gone out, not instead of it
}

void Session::close_with_error() {
    if (closed_) return;
    if (!ngtcp2_conn_is_in_draining_period(conn_) && !ngtcp2_conn_is_in_closing_period(conn_)) {
        std::array<std::uint8_t, NGTCP2_MAX_UDP_PAYLOAD_SIZE> buffer;
        ngtcp2_path_storage ps;
        ngtcp2_path_storage_zero(&ps);
        ngtcp2_pkt_info pi{};
        const ngtcp2_ssize n = ngtcp2_conn_write_connection_close(conn_, &ps.path, &pi, buffer.data(), buffer.size(),
                                                                  &last_error_, timestamp());
        if (n > 0) {  // to the connection's current path (a NAT rebinding moved it off the first address)
            const Address to = Address::of(ps.path.remote);
            if (to.length)
                endpoint_.send(to, buffer.data(), static_cast<std::size_t>(n), 0, 0,
                               endpoint_.socket_of(ps.path.local));
            else
                endpoint_.send(first_.from, buffer.data(), static_cast<std::size_t>(n), 0, 0, first_.socket);
        }
    }
    close_quietly();
}

void Session::close_quietly() {
    if (closed_) return;
    on_closed();
    endpoint_.host().close_datagram(conn_ref_);
}

// The connection is over: its IDs, its timer and its streams' flows go (idempotent).
void Session::on_closed() noexcept {
    closed_ = true;
    end_handshake();
    for (const std::string& cid : cids_) endpoint_.remove_cid(cid);
    cids_.clear();
    endpoint_.schedule(conn_ref_.id(), scheduled_, UINT64_MAX);
    std::vector<std::shared_ptr<BodyReader>> readers;  // told after the walk (a reader may answer at once)
    for (auto& [id, s] : streams_) {
        s->close_flow();
        if (!std::exchange(s->upload, false)) continue;
        s->upload_hold.clear();
        if (s->reader) readers.push_back(std::move(s->reader));
    }
    upload_unacked_ = window_owed_ = 0;
    for (const auto& r : readers) r->on_error(0, "the connection closed before the request body ended");
}

bool Session::exchange_released() noexcept {
    if (outstanding_ > 0) --outstanding_;
    return outstanding_ == 0;
}

// Graceful shutdown: GOAWAY (the streams already open finish), then CONNECTION_CLOSE once none is left.
void Session::on_shutdown() {
    if (closed_ || shutting_down_) return;
    shutting_down_ = true;
    if (h3_) {
        nghttp3_conn_submit_shutdown_notice(h3_);
        nghttp3_conn_shutdown(h3_);
    }
    mark_dirty();
}

void Session::try_graceful_close() {
    if (!shutting_down_ || closed_ || !streams_.empty()) return;
    ngtcp2_connection_close_error_set_application_error(&last_error_, h3_no_error, nullptr, 0);
    close_with_error();
}

// ---- streams ----

Stream* Session::begin_stream(std::int64_t id) {
    auto [it, fresh] = streams_.try_emplace(id, nullptr);
    if (fresh) it->second = stream_pool().acquire(id);
    nghttp3_conn_set_stream_user_data(h3_, id, it->second.get());
    return it->second.get();
}

int Session::on_stream_data(std::int64_t id, const std::uint8_t* data, std::size_t length, bool fin) {
    if (!h3_) return 0;
    const nghttp3_ssize consumed = nghttp3_conn_read_stream(h3_, id, data, length, fin ? 1 : 0);
    if ((consumed == NGHTTP3_ERR_MALFORMED_HTTP_MESSAGING || consumed == NGHTTP3_ERR_MALFORMED_HTTP_HEADER) &&
        ngtcp2_is_bidi_stream(id)) {
        // A malformed request (a Content-Length its DATA does not match, a bad field): a stream error (RFC 9114
        // §4.1.2), so that stream is reset with H3_MESSAGE_ERROR and the connection's other requests go on.
        ngtcp2_conn_shutdown_stream(conn_, id, NGHTTP3_H3_MESSAGE_ERROR);
        if (on_stream_reset(id,
                            "the request was malformed (a Content-Length its DATA does not match, or an invalid "
                            "field): its stream was reset with H3_MESSAGE_ERROR") != 0)
            return -1;
        this->consumed(id, length);
        return 0;
    }
    if (consumed < 0) {
        ngtcp2_connection_close_error_set_application_error(
            &last_error_, nghttp3_err_infer_quic_app_error_code(static_cast<int>(consumed)), nullptr, 0);
        return -1;
    }
    this->consumed(id, static_cast<std::uint64_t>(consumed));
    return 0;
}

int Session::on_acked(std::int64_t id, std::uint64_t length) {
    return !h3_ || nghttp3_conn_add_ack_offset(h3_, id, length) == 0 ? 0 : -1;
}

int Session::on_unblocked(std::int64_t id) { return !h3_ || nghttp3_conn_unblock_stream(h3_, id) == 0 ? 0 : -1; }

void Session::on_max_streams(std::uint64_t max_streams) {
    if (h3_) nghttp3_conn_set_max_client_streams_bidi(h3_, max_streams);
}

int Session::on_stream_close(std::int64_t id, std::uint64_t error) {
    if (!h3_) return 0;
    const int rv = nghttp3_conn_close_stream(h3_, id, error);
    if (rv == NGHTTP3_ERR_STREAM_NOT_FOUND) {
        if (ngtcp2_is_bidi_stream(id)) ngtcp2_conn_extend_max_streams_bidi(conn_, 1);
        return 0;
    }
    return rv == 0 ? 0 : -1;
}

int Session::on_stream_reset(std::int64_t id, std::string_view why) {
    if (const auto it = streams_.find(id); it != streams_.end()) abort_upload(*it->second, 0, why);
    if (h3_ && nghttp3_conn_shutdown_stream_read(h3_, id) != 0) return -1;
    return 0;
}

int Session::on_h3_stop_sending(std::int64_t id, std::uint64_t error) {
    return ngtcp2_conn_shutdown_stream_read(conn_, id, error) == 0 ? 0 : -1;
}

int Session::on_h3_reset_stream(std::int64_t id, std::uint64_t error) {
    return ngtcp2_conn_shutdown_stream_write(conn_, id, error) == 0 ? 0 : -1;
}

void Session::on_h3_header(std::int64_t, std::int32_t token, nghttp3_rcbuf* name, nghttp3_rcbuf* value, Stream* s) {
    if (s->reject_status) return;
    const nghttp3_vec n = nghttp3_rcbuf_get_buf(name), v = nghttp3_rcbuf_get_buf(value);
    s->header_bytes += n.len + v.len + 32;
    if (s->header_bytes > max_header_bytes) {
        s->reject_status = 431;
        s->reject_reason = "the request's header fields are larger than the limit";
        return;
    }
    Stream::Field f;
    f.name_off = static_cast<std::uint32_t>(s->head.size());
    f.name_len = static_cast<std::uint32_t>(n.len);
    s->head.append(reinterpret_cast<const char*>(n.base), n.len);
    f.value_off = static_cast<std::uint32_t>(s->head.size());
    f.value_len = static_cast<std::uint32_t>(v.len);
    s->head.append(reinterpret_cast<const char*>(v.base), v.len);
    switch (token) {
        case NGHTTP3_QPACK_TOKEN__METHOD: s->method = f, s->has_method = true; break;
        case NGHTTP3_QPACK_TOKEN__PATH: s->path = f, s->has_path = true; break;
        case NGHTTP3_QPACK_TOKEN__AUTHORITY: s->authority = f, s->has_authority = true; break;
        case NGHTTP3_QPACK_TOKEN__SCHEME:
        case NGHTTP3_QPACK_TOKEN__PROTOCOL: break;
        default:
            if (s->fields.size() >= conn_ref_.config().limits.max_headers) {
                s->reject_status = 431;
                s->reject_reason = "the request has more header fields than the limit";
                return;
            }
            s->fields.push_back(f);
    }
}

void Session::on_h3_data(std::int64_t id, Stream* s, const std::uint8_t* data, std::size_t length) {
    if (s && s->upload) return deliver(*s, {reinterpret_cast<const char*>(data), length});
    consumed(id, length);  // buffered (or discarded): the bytes go back to the windows at once
    // Not wanted: refused, answered, or the rest of a streamed body after it was cut off.
    if (!s || s->reject_status || s->app_owned || s->submitted || s->request.body_streamed()) return;
    const net::Limits& limits = conn_ref_.config().limits;
    // A body without a (small enough) declared length that grows large: offered for streaming now.
    if (s->headers_done && !s->upload_offered && s->body.size() + length > limits.stream_body_threshold &&
        accept_upload(*s)) {
        s->body.append(reinterpret_cast<const char*>(data), length);
        s->upload_precredited = s->body.size();  // given back to the stream's window as it came
        return start_upload(*s);
    }
    if (s->body.size() + length > limits.max_body_bytes) {
        s->reject_status = http::body_too_large.status;
        s->reject_reason = http::body_too_large.reason;
        std::string().swap(s->body);
        // The rest of the body is not wanted: the answer goes now, and the client stops sending (STOP_SENDING).
        ngtcp2_conn_shutdown_stream_read(conn_, s->id, h3_no_error);
        reject(*s, s->reject_status, s->reject_reason);
        return;
    }
    s->body.append(reinterpret_cast<const char*>(data), length);
}

void Session::on_h3_end_headers(Stream& s, bool fin) {
    s.headers_done = true;
    if (s.reject_status || !build_request(s)) return;
    if (fin) return;  // no body: dispatched at the end of the stream (h3_end_stream, next)
    if (s.content_length == UINT64_MAX) {
        open_bodies_ = true;  // still open once this packet is used up: offered then (stream_open_bodies)
        return;
    }
    // A declared length over the streaming threshold: offered for streaming before the body comes.
    const net::Limits& limits = conn_ref_.config().limits;
    if (s.content_length > limits.stream_body_threshold) {
        if (accept_upload(s))
            start_upload(s);
        else if (s.content_length > limits.max_body_bytes) {  // only streamed may it be that long
            ngtcp2_conn_shutdown_stream_read(conn_, s.id, h3_no_error);
            reject(s, http::body_too_large.status, http::body_too_large.reason);
        }
    }
}

int Session::on_h3_end_stream(Stream* s) {
    if (s->upload) {
        end_upload(*s);
        return 0;
    }
    if (s->submitted || s->app_owned) return 0;
    if (s->reject_status) {
        reject(*s, s->reject_status, s->reject_reason);
        return 0;
    }
    if (!s->headers_done) return 0;  // no header block came: nghttp3 refuses such a stream itself
    dispatch(*s);
    return 0;
}

// Makes the Request once its header block is complete; false (and the stream answered) when it is refused.
bool Session::build_request(Stream& s) {
    Request& r = s.request;
    const http::RequestLimits limits = http::RequestLimits::from(conn_ref_.config().limits);
    http::RequestBuilder b(r, limits);
    b.start();
    if (!s.has_method || !s.has_path) {
        reject(s, 400, "the request has no :method or no :path (RFC 9114 §4.3.1)");
        return false;
    }
    if (const http::RequestError e = b.method(s.view(s.method.value_off, s.method.value_len));
        e || r.method() == Method::connect) {
        reject(s, e ? e.status : 501, e ? e.reason : "CONNECT is not supported");
        return false;
    }
    s.head_only = r.method() == Method::head;
    if (early_streams_.contains(s.id) && r.method() != Method::get && r.method() != Method::head &&
        r.method() != Method::options) {
        // Sent in 0-RTT, which an attacker can replay: only safe methods run from it (RFC 8470 §5.2).
        reject(s, 425, "the request came in 0-RTT early data; send it again after the handshake");
        return false;
    }
    b.target(s.view(s.path.value_off, s.path.value_len));
    r.reserve_headers(s.fields.size() + 1);
    bool host = false;
    for (const Stream::Field& f : s.fields) {
        const std::string_view name = s.view(f.name_off, f.name_len);
        host = host || name == "host";
        (void)b.header(name, s.view(f.value_off, f.value_len));
    }
    if (!host && s.has_authority) r.add_header("host", s.view(s.authority.value_off, s.authority.value_len));
    if (const auto cl = r.header("content-length")) {
        if (const std::optional<std::uint64_t> n = http::parse_content_length(*cl)) {
            s.content_length = *n;
            // Over max_body_bytes but within the streamed limit: 413 unless it streams (on_h3_end_headers).
            if (b.declared_length(*n) == http::DeclaredBody::too_large) {
                ngtcp2_conn_shutdown_stream_read(conn_, s.id, h3_no_error);
                reject(s, http::body_too_large.status, http::body_too_large.reason);
                return false;
            }
        }
    }
    r.set_version(3, 0);
    r.set_keep_alive(true);
    r.set_client(conn_ref_.peer_address(), conn_ref_.peer_port());
    r.set_received_at(conn_ref_.loop().now());
    fill_tls_info();
    r.set_tls(&tls_info_);
    if (conn_ref_.proxy_trusted()) http::apply_proxy_headers(r, conn_ref_.config().proxy_headers.trusted);
    return true;
}

void Session::dispatch(Stream& s, bool streamed) {
    s.app_owned = true;
    ++outstanding_;
    net::WorkerContext::current().stats.count_request();
    s.request.set_body(streamed ? std::string_view{} : std::string_view(s.body));
    s.request.set_body_streamed(streamed);
    const auto id = static_cast<std::uint64_t>(s.id);
    RequestDispatcher& dispatcher = endpoint_.shared().dispatcher;
    try {
        if (!s.app_state || s.app_state_owner != &dispatcher) {  // the pool is the worker's, shared by servers
            s.app_state = dispatcher.make_exchange_state();
            s.app_state_owner = &dispatcher;
        }
        dispatcher.dispatch(
            s.request, s.app_state.get(),
            Responder(net::ConnectionRef(endpoint_.host().home().link(), conn_ref_.id(), conn_ref_.protocol_epoch()),
                      this, id, streamed));
    } catch (...) {
        // The Responder was destroyed unanswered on the way out: the client got a 500.
    }
}

// ---- streamed request bodies ----

// After a packet: request bodies without a declared length that are still open are offered for streaming now,
// with what came so far as their first bytes, so that the handler sees them at once and may answer before the
// body ends (full duplex).
void Session::stream_open_bodies() {
    open_bodies_ = false;
    std::vector<std::int64_t> waiting;
    for (const auto& [id, s] : streams_)
        if (s->headers_done && !s->reject_status && !s->upload_offered && !s->app_owned && !s->submitted &&
            s->content_length == UINT64_MAX && s->h3_open)
            waiting.push_back(id);
    for (std::int64_t id : waiting) {  // dispatching may answer inline: look each one up again
        const auto it = streams_.find(id);
        if (it == streams_.end() || !accept_upload(*it->second)) continue;
        it->second->upload_precredited = it->second->body.size();
        start_upload(*it->second);
    }
}

bool Session::accept_upload(Stream& s) {
    s.upload_offered = true;
    try {
        return endpoint_.shared().dispatcher.stream_body(s.request) &&
               s.body.size() <= http::RequestLimits::from(conn_ref_.config().limits).stream_limit();
    } catch (...) {
        return false;
    }
}

void Session::start_upload(Stream& s) {
    s.upload = true;
    s.upload_hold = std::move(s.body);
    s.body.clear();
    s.upload_bytes = s.upload_unacked = s.upload_hold.size();
    upload_unacked_ += s.upload_unacked;
    dispatch(s, /*streamed=*/true);
}

// Bytes of a streamed body: the stream's window opens again only as the reader acknowledges them
// (body_consumed); the connection's at once, unless the streamed bodies hold more than a connection window.
void Session::deliver(Stream& s, std::string_view chunk) {
    if (s.upload_bytes + chunk.size() > http::RequestLimits::from(conn_ref_.config().limits).stream_limit()) {
        consumed(s.id, chunk.size());
        return fail_upload(s, 413,
                           "the request body is larger than the streamed body size limit (max_stream_body_bytes)");
    }
    s.upload_bytes += chunk.size();
    s.upload_unacked += chunk.size();
    upload_unacked_ += chunk.size();
    if (upload_unacked_ > endpoint_.shared().config.http3.connection_window)
        window_owed_ += chunk.size();
    else
        ngtcp2_conn_extend_max_offset(conn_, chunk.size());
    if (s.reader && s.upload_hold.empty())
        std::shared_ptr<BodyReader>(s.reader)->on_data(chunk);  // it may answer
    else
        s.upload_hold.append(chunk);
}

void Session::end_upload(Stream& s) {
    s.upload = false;
    if (std::shared_ptr<BodyReader> r = s.reader)
        r->on_end();
    else
        s.upload_ended = true;
}

void Session::abort_upload(Stream& s, int status, std::string_view why) {
    if (!s.upload) return;
    s.upload = false;
    s.upload_hold.clear();
    forget_unacked(s);  // nobody acknowledges them any more
    if (std::shared_ptr<BodyReader> r = std::move(s.reader)) r->on_error(status, why);
}

// The server refuses the rest of a streamed body (its size limit): the reader hears why, the client stops
// sending (STOP_SENDING) and gets the error response unless the application has started one.
void Session::fail_upload(Stream& s, int status, std::string_view why) {
    abort_upload(s, status, why);
    if (!s.h3_open || closed_) return;
    ngtcp2_conn_shutdown_stream_read(conn_, s.id, NGHTTP3_H3_REQUEST_CANCELLED);
    if (s.submitted) return;
    std::string body = std::to_string(status);
    body.append(" ").append(http::reason_phrase(status)).append(": ").append(why).append("\n");
    s.response = Response::text(std::move(body), status);
    s.head_only = false;
    submit(s, /*streaming=*/false);  // the application's answer, when it comes, is dropped
    mark_dirty();
}

// The response is complete before the body: the rest is not wanted (RFC 9114 §4.1: STOP_SENDING with
// H3_NO_ERROR), and the reader hears that the exchange ended.
void Session::refuse_rest(Stream& s) {
    if (!s.upload) return;
    abort_upload(s, 0, "the response ended before the request body did");
    if (s.h3_open && !closed_) ngtcp2_conn_shutdown_stream_read(conn_, s.id, h3_no_error);
}

void Session::forget_unacked(Stream& s) noexcept {
    upload_unacked_ -= std::min(upload_unacked_, s.upload_unacked);
    s.upload_unacked = s.upload_precredited = 0;
    reopen_connection_window();
}

void Session::reopen_connection_window() noexcept {
    if (window_owed_ == 0 || closed_ || upload_unacked_ > endpoint_.shared().config.http3.connection_window) return;
    ngtcp2_conn_extend_max_offset(conn_, std::exchange(window_owed_, 0));
    mark_dirty();
}

void Session::body_read(std::uint64_t exchange, std::shared_ptr<BodyReader> reader) {
    const auto it = streams_.find(static_cast<std::int64_t>(exchange));
    covet::detail::install_body_reader(it == streams_.end() ? nullptr : it->second.get(), std::move(reader));
}

void Session::body_consumed(std::uint64_t exchange, std::size_t bytes) {
    const auto it = streams_.find(static_cast<std::int64_t>(exchange));
    if (it == streams_.end() || closed_) return;
    Stream& s = *it->second;
    std::uint64_t n = std::min<std::uint64_t>(s.upload_unacked, bytes);
    s.upload_unacked -= n;
    upload_unacked_ -= std::min(upload_unacked_, n);
    const std::uint64_t skip = std::min(s.upload_precredited, n);  // already back in the stream's window
    s.upload_precredited -= skip;
    n -= skip;
    if (n > 0 && s.h3_open) {
        ngtcp2_conn_extend_max_stream_offset(conn_, s.id, n);
        mark_dirty();  // MAX_STREAM_DATA
    }
    reopen_connection_window();
}

void Session::reject(Stream& s, int status, std::string_view why) {
    if (s.submitted || s.app_owned) return;
    if (conn_ref_.config().ops.record_metrics) metrics::protocol_refusal(status);
    std::string body = std::to_string(status);
    body.append(" ").append(http::reason_phrase(status)).append(": ").append(why).append("\n");
    s.response = Response::text(std::move(body), status);
    if (status == 405 || status == 501) s.response.add_header("Allow", "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS");
    s.head_only = false;
    submit(s, /*streaming=*/false);
    mark_dirty();
}

Stream* Session::owned(std::uint64_t exchange) noexcept {
    const auto it = streams_.find(static_cast<std::int64_t>(exchange));
    return it != streams_.end() && it->second->app_owned ? it->second.get() : nullptr;
}

void Session::finish_app(Stream& s) {
    s.close_flow();
    if (!s.app_owned) return;
    s.app_owned = false;
    if (outstanding_ > 0) --outstanding_;
}

// The response head to nghttp3: ":status", Server, Date, Content-Type/Length as over TCP, then the application's.
void Session::submit(Stream& s, bool streaming) {
    Response& r = s.response;
    const bool body_allowed = http::status_allows_body(r.status());
    HeaderList& h = header_list();
    char num[24];
    h.add(":status",
          std::string_view(num, static_cast<std::size_t>(std::to_chars(num, num + sizeof num, r.status()).ptr - num)));
    h.add("server", "covet");
    h.add("date", http::DateCache::thread_local_instance().get());
    if (http::status_keeps_content_type(r.status()) && !r.content_type().empty())
        h.add("content-type", r.content_type());
    if (body_allowed) {
        std::optional<std::uint64_t> length;
        if (!streaming)
            length = r.content_length(s.head_only);
        else
            length = r.head_length();
        if (length) {
            const char* end = std::to_chars(num, num + sizeof num, *length).ptr;
            h.add("content-length", std::string_view(num, static_cast<std::size_t>(end - num)));
        }
    }
    for (const Fields::Field f : r.headers()) h.add(f.name, f.value);
    for (std::size_t i = 0; const SharedFields* shared = r.shared_fields(i); ++i)
        for (const Fields::Field f : shared->fields) h.add(f.name, f.value);
    const bool has_data = !s.head_only && body_allowed;
    if (has_data) {
        s.out.append(std::move(r.body()));
        if (r.has_file_body()) {
            s.file_offset = r.file_body().offset();
            s.file_left = r.file_body().length();
        }
    }
    r.body().clear();
    s.streaming = streaming;
    s.ended = !streaming;
    s.has_trailers = !r.trailers().empty();
    s.submitted = true;
    nghttp3_data_reader reader{h3_read_body};
    const auto& nv = h.finish();
    const bool needs_reader = (has_data && (streaming || s.out.unacked() > 0 || s.file_left > 0)) || s.has_trailers;
    if (nghttp3_conn_submit_response(h3_, s.id, nv.data(), nv.size(), needs_reader ? &reader : nullptr) != 0) {
        ngtcp2_conn_shutdown_stream_write(conn_, s.id, NGHTTP3_H3_INTERNAL_ERROR);
        return;
    }
    if (!has_data) {
        s.ended = true;
        // A streamed answer complete with its head (HEAD, 204, 304): so is the exchange's record (metrics, the
        // access log), which stream_end skips for an ended stream.
        if (streaming) endpoint_.shared().dispatcher.filter_body(s.app_state.get(), {}, true);
    }
}

nghttp3_ssize Session::read_body(Stream* s, nghttp3_vec* vec, std::size_t count, std::uint32_t* flags) {
    if (!s) return 0;
    if (s->out.all_given() && s->file_left > 0) {  // the next piece of a file body
        std::string piece(std::min<std::uint64_t>(s->file_left, file_piece), '\0');
        const ssize_t n =
            ::pread(s->response.file_body().fd(), piece.data(), piece.size(), static_cast<off_t>(s->file_offset));
        if (n <= 0) {
            logging::warn("HTTP/3: reading a file body failed (the stream was reset)");
            return NGHTTP3_ERR_CALLBACK_FAILURE;
        }
        piece.resize(static_cast<std::size_t>(n));
        s->file_offset += static_cast<std::uint64_t>(n);
        s->file_left -= static_cast<std::uint64_t>(n);
        s->out.append(std::move(piece));
    }
    const std::size_t n = s->out.take(vec, count);
    if (n == 0 && !s->ended) {
        s->blocked = true;
        return NGHTTP3_ERR_WOULDBLOCK;
    }
    if (s->ended && s->out.all_given() && s->file_left == 0) {
        *flags |= NGHTTP3_DATA_FLAG_EOF;
        if (s->has_trailers) {
            *flags |= NGHTTP3_DATA_FLAG_NO_END_STREAM;
            HeaderList& h = header_list();
            for (const Fields::Field f : s->response.trailers()) h.add(f.name, f.value);
            const auto& nv = h.finish();
            nghttp3_conn_submit_trailers(h3_, s->id, nv.data(), nv.size());
            s->has_trailers = false;
        }
    }
    return static_cast<nghttp3_ssize>(n);
}

void Session::on_h3_acked(Stream* s, std::uint64_t length) {
    s->out.ack(length);
    if (s->flow) publish(*s);
}

void Session::publish(Stream& s) {
    if (s.flow) s.flow->publish(static_cast<std::size_t>(s.out.unacked()));
}

void Session::early_stream(std::int64_t id) {
    if (!ngtcp2_conn_get_handshake_completed(conn_)) early_streams_.insert(id);
}

void Session::on_h3_stream_close(std::int64_t id) {
    early_streams_.erase(id);
    const auto it = streams_.find(id);
    if (it == streams_.end()) return;
    Stream& s = *it->second;
    abort_upload(s, 0, "the client reset the stream before the request body ended");
    s.h3_open = false;
    s.close_flow();
    if (ngtcp2_is_bidi_stream(id)) ngtcp2_conn_extend_max_streams_bidi(conn_, 1);
    settle(s);
}

void Session::settle(Stream& s) {
    if (s.h3_open || s.app_owned) return;
    // An exchange the client reset ends now (aborted), not when the pooled slot is next used (by any connection).
    if (s.app_state && s.app_state_owner == &endpoint_.shared().dispatcher)
        endpoint_.shared().dispatcher.exchange_over(s.app_state.get());
    const auto it = streams_.find(s.id);
    stream_pool().release(std::move(it->second));
    streams_.erase(it);
}

void Session::resume(Stream& s) {
    if (!s.blocked || !s.h3_open) return;
    s.blocked = false;
    nghttp3_conn_resume_stream(h3_, s.id);
}

// ---- ExchangeSink ----

void Session::complete(std::uint64_t exchange, Response&& response) {
    Stream* s = owned(exchange);
    if (!s) return;
    finish_app(*s);
    refuse_rest(*s);
    if (s->h3_open && !s->submitted && !closed_) {
        endpoint_.shared().dispatcher.finalize(s->request, s->app_state.get(), response);
        s->response = std::move(response);
        submit(*s, /*streaming=*/false);
    }
    settle(*s);
    mark_dirty();
}

void Session::stream_begin(std::uint64_t exchange, Response&& head) {
    Stream* s = owned(exchange);
    if (!s || s->submitted) return;
    if (!s->h3_open || closed_) {
        s->submitted = s->streaming = true;  // writes are dropped; stream_end releases it
        return;
    }
    RequestDispatcher& d = endpoint_.shared().dispatcher;
    d.finalize_stream(s->request, s->app_state.get(), head);
    std::string first = std::move(head.body());
    head.body().clear();
    s->response = std::move(head);
    submit(*s, /*streaming=*/true);
    if (!first.empty() && !s->head_only) s->out.append(d.filter_body(s->app_state.get(), first, false));
    mark_dirty();
}

void Session::stream_write(std::uint64_t exchange, std::string_view chunk) {
    Stream* s = owned(exchange);
    if (!s) return;
    if (!s->streaming || !s->h3_open || closed_ || s->head_only) {
        if (s->flow) publish(*s);
        return;
    }
    s->out.append(endpoint_.shared().dispatcher.filter_body(s->app_state.get(), chunk, false));
    resume(*s);
    if (s->flow) publish(*s);
    mark_dirty();
}

void Session::stream_end(std::uint64_t exchange) {
    Stream* s = owned(exchange);
    if (!s) return;
    finish_app(*s);
    refuse_rest(*s);
    if (s->streaming && s->h3_open && !closed_ && !s->ended) {
        if (!s->head_only) s->out.append(endpoint_.shared().dispatcher.filter_body(s->app_state.get(), {}, true));
        s->ended = true;
        resume(*s);
    }
    settle(*s);
    mark_dirty();
}

void Session::stream_end_trailers(std::uint64_t exchange, const Fields& trailers) {
    Stream* s = owned(exchange);
    if (!s) return;
    if (s->streaming && !s->ended && !s->head_only) {
        for (const Fields::Field f : trailers) s->response.trailer(f.name, f.value);
        s->has_trailers = !s->response.trailers().empty();
    }
    stream_end(exchange);
}

void Session::early_hint(std::uint64_t exchange, const Fields& fields) {
    Stream* s = owned(exchange);
    if (!s || s->submitted || !s->h3_open || closed_ || !h3_) return;
    HeaderList& h = header_list();
    h.add(":status", "103");
    for (const Fields::Field f : fields) h.add(f.name, f.value);
    const auto& nv = h.finish();
    nghttp3_conn_submit_info(h3_, s->id, nv.data(), nv.size());
    mark_dirty();
}

void Session::stream_abort(std::uint64_t exchange) {
    Stream* s = owned(exchange);
    if (!s) return;
    finish_app(*s);
    refuse_rest(*s);
    // The client must see the response cut off, not a short body that looks whole.
    if (s->h3_open && !closed_) {
        ngtcp2_conn_shutdown_stream(conn_, s->id, NGHTTP3_H3_INTERNAL_ERROR);
        s->ended = true;
    }
    settle(*s);
    mark_dirty();
}

void Session::stream_watch(std::uint64_t exchange, std::shared_ptr<StreamFlow> flow) {
    if (!flow) return;
    Stream* s = owned(exchange);
    if (!s || !s->h3_open || closed_) {
        flow->close();
        return;
    }
    if (s->flow != flow) s->close_flow();
    s->flow = std::move(flow);
    publish(*s);
}

}  // namespace covet::http3::detail
