// HTTP/3 after the QUIC handshake: the server's request, control and QPACK streams (src/http3/session.cpp on
// nghttp3: header validation and limits, bodies, the request's build, QPACK tables) fed raw stream bytes through
// a real, encrypted QUIC connection. The server is the engine itself (covet::App with HTTP/3 on loopback UDP, in
// this process, started once); the client is a bare ngtcp2 connection with GnuTLS that writes the fuzzer's bytes
// as they are: a fuzzed packet could not get past QUIC's packet protection, fuzzed stream data can.
//
// Input: records of [stream byte][length byte][length bytes]. The stream byte's low 3 bits pick where the bytes
// go: 0-3 four request streams; 4 the control stream, 5 the QPACK encoder stream, 6 the QPACK decoder stream (each
// opened with its type byte first); 7 a unidirectional stream whose type is the data's. Bit 0x80 ends the stream
// (FIN) after the record. Then a probe: a GET with a static-table QPACK header block on a fresh request stream.
// Properties: no crash, leak or sanitizer report in the server; within a few seconds the server either answers the
// probe (starting with a HEADERS frame) or closes the connection (a connection error the input caused); and it
// still completes a new handshake for the next input.
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netinet/in.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "covet/covet.hpp"
#include "fuzz_support.hpp"

namespace {

using covet_fuzz::check;

std::uint64_t now_ns() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
}

// ---- the server ------------------------------------------------------------------------------------------------

void write_file(const std::filesystem::path& path, const gnutls_datum_t& pem) {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(pem.data), pem.size);
}

// A self-signed ECDSA certificate for "localhost" (the client does not verify it), in a fresh directory.
std::pair<std::string, std::string> make_certificate() {
    char dir_template[] = "/tmp/covet-h3-fuzz-XXXXXX";
    const char* dir = mkdtemp(dir_template);
    check(dir != nullptr, "mkdtemp failed");
    gnutls_x509_privkey_t key = nullptr;
    gnutls_x509_crt_t crt = nullptr;
    check(gnutls_x509_privkey_init(&key) == 0 && gnutls_x509_crt_init(&crt) == 0, "gnutls x509 init failed");
    check(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) == 0,
          "key generation failed");
    const unsigned char serial = 1;
    const std::time_t now = std::time(nullptr);
    check(gnutls_x509_crt_set_version(crt, 3) == 0 && gnutls_x509_crt_set_serial(crt, &serial, 1) == 0 &&
              gnutls_x509_crt_set_activation_time(crt, now - 3600) == 0 &&
              gnutls_x509_crt_set_expiration_time(crt, now + 86400) == 0 &&
              gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "localhost", 9) == 0 &&
              gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9, GNUTLS_FSAN_SET) == 0 &&
              gnutls_x509_crt_set_key(crt, key) == 0 && gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0) == 0,
          "self-signing the certificate failed");
    gnutls_datum_t crt_pem{}, key_pem{};
    check(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &crt_pem) == 0 &&
              gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &key_pem) == 0,
          "exporting the certificate failed");
    const std::filesystem::path base(dir);
    write_file(base / "cert.pem", crt_pem);
    write_file(base / "key.pem", key_pem);
    gnutls_free(crt_pem.data);
    gnutls_free(key_pem.data);
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_privkey_deinit(key);
    return {(base / "cert.pem").string(), (base / "key.pem").string()};
}

// The engine with HTTP/3 on 127.0.0.1 (one worker), small limits so that inputs reach them; started once.
struct Server {
    covet::App app;
    std::uint16_t port = 0;

    Server() {
        covet::configure_logging("off");
        const auto [cert, key] = make_certificate();
        covet::net::ServerConfig& cfg = app.config();
        cfg.host = "127.0.0.1";
        cfg.port = 0;
        cfg.threads = 1;
        cfg.limits.max_headers = 16;
        cfg.limits.max_body_bytes = 4096;
        cfg.limits.stream_body_threshold = 1024;
        covet::net::TlsConfig tls;
        tls.certificates.push_back({cert, key});
        cfg.tls = std::move(tls);
        cfg.http3.enabled = true;
        cfg.http3.max_streams_bidi = 8;
        cfg.http3.idle_timeout = std::chrono::seconds(2);
        app.get("/", [](covet::Request&) { return covet::Response(200, "ok", "text/plain"); });
        app.post("/echo", [](covet::Request& r) { return covet::Response(200, std::string(r.body()), "text/plain"); });
        app.get("/headers", [](covet::Request& r) {
            return covet::Response(200, std::string(r.header("x-a").value_or("none")), "text/plain");
        });
        app.start(1);
        std::filesystem::remove_all(std::filesystem::path(cert).parent_path());  // loaded: not needed any more
        port = app.port();
    }
};

Server& server() {
    static Server s;
    return s;
}

// ---- the client ------------------------------------------------------------------------------------------------

// What the client writes on one stream: the whole of it is known before the first write, because ngtcp2 keeps
// pointers into unacknowledged data (the buffer must not move).
struct Outgoing {
    std::int64_t id = -1;
    std::string data;
    std::size_t sent = 0;
    bool fin = false, fin_sent = false, blocked = false;
    bool pending() const noexcept { return !blocked && (sent < data.size() || (fin && !fin_sent)); }
};

struct Client {
    int fd = -1;
    sockaddr_in local{}, remote{};
    ngtcp2_conn* quic = nullptr;
    gnutls_session_t tls = nullptr;
    ngtcp2_crypto_conn_ref ref{};
    std::vector<Outgoing> out;
    std::int64_t probe = -1;
    std::string probe_answer;
    bool probe_done = false, handshake_done = false, closed = false;

    ~Client() {
        if (quic) ngtcp2_conn_del(quic);
        if (tls) gnutls_deinit(tls);
        if (fd >= 0) ::close(fd);
    }
    ngtcp2_path path() {
        return {{reinterpret_cast<sockaddr*>(&local), sizeof local},
                {reinterpret_cast<sockaddr*>(&remote), sizeof remote},
                nullptr};
    }
    bool dial(std::uint16_t port, gnutls_certificate_credentials_t credentials);
    void write();
    void receive();
    // Runs the connection until `done()` or `deadline` (ns): false on the deadline.
    template <typename Done>
    bool run_until(std::uint64_t deadline, Done done);
};

Client* of(void* user) { return static_cast<Client*>(user); }

int recv_stream_data(ngtcp2_conn* conn, std::uint32_t flags, std::int64_t id, std::uint64_t, const std::uint8_t* data,
                     std::size_t length, void* user, void*) {
    Client* c = of(user);
    if (id == c->probe) {
        c->probe_answer.append(reinterpret_cast<const char*>(data), length);
        if (flags & NGTCP2_STREAM_DATA_FLAG_FIN) c->probe_done = true;
    }
    ngtcp2_conn_extend_max_stream_offset(conn, id, length);
    ngtcp2_conn_extend_max_offset(conn, length);
    return 0;
}

int stream_reset(ngtcp2_conn*, std::int64_t id, std::uint64_t, std::uint64_t, void* user, void*) {
    if (of(user)->probe == id) of(user)->probe_done = true;  // refused (e.g. the server is going away)
    return 0;
}

int handshake_completed(ngtcp2_conn*, void* user) {
    of(user)->handshake_done = true;
    return 0;
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

ngtcp2_conn* conn_of(ngtcp2_crypto_conn_ref* ref) { return static_cast<Client*>(ref->user_data)->quic; }

bool Client::dial(std::uint16_t port, gnutls_certificate_credentials_t credentials) {
    fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    remote.sin_family = AF_INET;
    remote.sin_port = htons(port);
    remote.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof local;
    if (fd < 0 || ::connect(fd, reinterpret_cast<const sockaddr*>(&remote), sizeof remote) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) != 0)
        return false;

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
    cb.stream_reset = stream_reset;
    cb.handshake_completed = handshake_completed;
    ngtcp2_settings settings;
    ngtcp2_settings_default(&settings);
    settings.initial_ts = now_ns();
    ngtcp2_transport_params params;
    ngtcp2_transport_params_default(&params);
    params.initial_max_streams_uni = 8;
    params.initial_max_stream_data_bidi_local = 1 << 20;
    params.initial_max_stream_data_uni = 1 << 20;
    params.initial_max_data = 8 << 20;
    params.max_idle_timeout = 10 * NGTCP2_SECONDS;
    ngtcp2_cid dcid{}, scid{};
    dcid.datalen = 18;
    scid.datalen = 17;
    gnutls_rnd(GNUTLS_RND_RANDOM, dcid.data, dcid.datalen);
    gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen);
    const ngtcp2_path p = path();
    if (ngtcp2_conn_client_new(&quic, &dcid, &scid, &p, NGTCP2_PROTO_VER_V1, &cb, &settings, &params, nullptr, this) !=
        0)
        return false;
    gnutls_datum_t alpn{reinterpret_cast<unsigned char*>(const_cast<char*>("h3")), 2};
    if (gnutls_init(&tls, GNUTLS_CLIENT | GNUTLS_NO_END_OF_EARLY_DATA) != 0 ||
        gnutls_priority_set_direct(tls, "NORMAL:-VERS-ALL:+VERS-TLS1.3:%DISABLE_TLS13_COMPAT_MODE", nullptr) != 0 ||
        ngtcp2_crypto_gnutls_configure_client_session(tls) != 0 ||
        gnutls_credentials_set(tls, GNUTLS_CRD_CERTIFICATE, credentials) != 0 ||
        gnutls_alpn_set_protocols(tls, &alpn, 1, GNUTLS_ALPN_MANDATORY) != 0 ||
        gnutls_server_name_set(tls, GNUTLS_NAME_DNS, "localhost", 9) != 0)
        return false;
    ref.get_conn = conn_of;
    ref.user_data = this;
    gnutls_session_set_ptr(tls, &ref);
    ngtcp2_conn_set_tls_native_handle(quic, tls);
    return true;
}

// Writes what is pending on every stream, then what ngtcp2 has of its own (ACKs, handshake, retransmissions).
void Client::write() {
    if (closed) return;
    std::array<std::uint8_t, 1500> packet;
    for (Outgoing& o : out) o.blocked = false;
    for (;;) {
        Outgoing* o = nullptr;
        for (Outgoing& candidate : out)
            if (candidate.id >= 0 && candidate.pending()) {
                o = &candidate;
                break;
            }
        ngtcp2_vec vec{};
        std::uint32_t flags = 0;
        if (o) {
            vec = {reinterpret_cast<std::uint8_t*>(o->data.data()) + o->sent, o->data.size() - o->sent};
            flags = NGTCP2_WRITE_STREAM_FLAG_MORE | (o->fin ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0);
        }
        ngtcp2_path_storage ps;
        ngtcp2_path_storage_zero(&ps);
        ngtcp2_pkt_info pi{};
        ngtcp2_ssize taken = -1;
        const ngtcp2_ssize n =
            ngtcp2_conn_writev_stream(quic, &ps.path, &pi, packet.data(), packet.size(), &taken, flags, o ? o->id : -1,
                                      o ? &vec : nullptr, o ? 1 : 0, now_ns());
        if (o && taken >= 0) {
            o->sent += static_cast<std::size_t>(taken);
            o->fin_sent = o->fin && o->sent == o->data.size();
        }
        if (n == NGTCP2_ERR_WRITE_MORE) continue;
        if (o && (n == NGTCP2_ERR_STREAM_DATA_BLOCKED || n == NGTCP2_ERR_STREAM_SHUT_WR ||
                  n == NGTCP2_ERR_STREAM_NOT_FOUND)) {
            o->blocked = true;  // the server's flow control, or it stopped the stream: the others go on
            continue;
        }
        if (n < 0) {
            closed = true;  // e.g. the server closed the connection
            return;
        }
        if (n == 0) break;
        (void)::send(fd, packet.data(), static_cast<std::size_t>(n), 0);
    }
    // No ngtcp2_conn_update_pkt_tx_time: a client on loopback has nothing to pace, it sends at once.
}

void Client::receive() {
    std::array<std::uint8_t, 65536> buffer;
    const ngtcp2_path p = path();
    const ngtcp2_pkt_info pi{};
    for (;;) {
        const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
        if (n <= 0) return;
        if (closed) continue;
        if (ngtcp2_conn_read_pkt(quic, &p, &pi, buffer.data(), static_cast<std::size_t>(n), now_ns()) != 0)
            closed = true;  // draining (the server closed it), or a protocol error of the server's making
    }
}

template <typename Done>
bool Client::run_until(std::uint64_t deadline, Done done) {
    write();
    while (!done()) {
        const std::uint64_t now = now_ns();
        if (now >= deadline) return false;
        const std::uint64_t expiry = closed ? UINT64_MAX : ngtcp2_conn_get_expiry(quic);
        const std::uint64_t wake = std::min(deadline, expiry);
        pollfd p{fd, POLLIN, 0};
        ::poll(&p, 1, wake <= now ? 0 : static_cast<int>(std::min<std::uint64_t>((wake - now) / 1'000'000 + 1, 50)));
        receive();
        if (!closed && ngtcp2_conn_get_expiry(quic) <= now_ns() && ngtcp2_conn_handle_expiry(quic, now_ns()) != 0)
            closed = true;  // idle timeout, or too many retransmissions
        write();
    }
    return true;
}

// GET / with a QPACK header block of static-table references and one literal (no dynamic table): a HEADERS frame.
std::string probe_request() {
    std::string block("\x00\x00", 2);  // required insert count 0, base 0
    block += '\xd1';                   // :method GET (static 17)
    block += '\xd7';                   // :scheme https (static 23)
    block += '\xc1';                   // :path / (static 1)
    block += '\x50';                   // :authority (static 0's name), literal value:
    block += '\x09';
    block += "localhost";
    return std::string{'\x01', static_cast<char>(block.size())} + block;
}

gnutls_certificate_credentials_t client_credentials() {
    static gnutls_certificate_credentials_t credentials = [] {
        gnutls_certificate_credentials_t c = nullptr;
        check(gnutls_certificate_allocate_credentials(&c) == 0, "gnutls credentials");
        return c;
    }();
    return credentials;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Server& s = server();
    Client client;
    check(client.dial(s.port, client_credentials()), "the client could not be set up");
    const std::uint64_t start = now_ns();
    check(client.run_until(start + 5'000'000'000ull, [&] { return client.handshake_done || client.closed; }) &&
              client.handshake_done,
          "the server did not complete a QUIC handshake within 5 s (it stopped answering)");

    // The input's streams, opened in the order they first appear.
    constexpr char uni_types[] = {0x00, 0x02, 0x03};
    std::array<int, 8> slot;
    slot.fill(-1);
    client.out.reserve(9);
    covet_fuzz::Input in(data, size);
    while (!in.empty()) {
        const std::uint8_t selector = in.byte();
        const std::string_view bytes = in.take(in.byte());
        const unsigned target = selector & 7;
        if (slot[target] < 0) {
            Outgoing o;
            const int rv = target < 4 ? ngtcp2_conn_open_bidi_stream(client.quic, &o.id, nullptr)
                                      : ngtcp2_conn_open_uni_stream(client.quic, &o.id, nullptr);
            if (rv != 0) continue;  // over the server's stream limit: the record is dropped
            if (target >= 4 && target < 7) o.data += uni_types[target - 4];
            slot[target] = static_cast<int>(client.out.size());
            client.out.push_back(std::move(o));
        }
        Outgoing& o = client.out[static_cast<std::size_t>(slot[target])];
        if (o.fin) continue;  // nothing after the end of a stream
        o.data.append(bytes);
        o.fin = (selector & 0x80) != 0;
    }
    Outgoing probe;
    if (ngtcp2_conn_open_bidi_stream(client.quic, &probe.id, nullptr) == 0) {
        probe.data = probe_request();
        probe.fin = true;
        client.probe = probe.id;
        client.out.push_back(std::move(probe));
    }
    const bool settled = client.run_until(now_ns() + 5'000'000'000ull,
                                          [&] { return client.closed || client.probe < 0 || client.probe_done; });
    check(settled, "the server neither answered the probe request nor closed the connection within 5 s");
    if (client.probe_done && !client.closed && !client.probe_answer.empty())
        check(client.probe_answer[0] == '\x01', "the probe's answer does not start with a HEADERS frame");

    // Close at once, so that the server's connection table does not fill up with idle connections.
    if (!client.closed) {
        std::array<std::uint8_t, 1500> packet;
        ngtcp2_path_storage ps;
        ngtcp2_path_storage_zero(&ps);
        ngtcp2_pkt_info pi{};
        ngtcp2_connection_close_error error;
        ngtcp2_connection_close_error_set_application_error(&error, 0x100, nullptr, 0);  // H3_NO_ERROR
        const ngtcp2_ssize n = ngtcp2_conn_write_connection_close(client.quic, &ps.path, &pi, packet.data(),
                                                                  packet.size(), &error, now_ns());
        if (n > 0) (void)::send(client.fd, packet.data(), static_cast<std::size_t>(n), 0);
    }
    return 0;
}
