// TLS: TlsContext + the transport driven against an in-memory OpenSSL client (handshake, versions, ALPN,
// SNI, resumption, mTLS, reload, non-TLS input, timeouts, config errors), then real sockets through
// net::Server on the backend named by COVET_BACKEND (ctest runs this binary once per backend).
// Certificates are generated at start-up with the OpenSSL API, in a temporary directory.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../support/drain.hpp"
#include "../support/http_client.hpp"
#include "covet/io/output_queue.hpp"
#include "covet/log.hpp"
#include "covet/net/connection.hpp"
#include "covet/net/server.hpp"
#include "covet/net/tls_context.hpp"

namespace {

using namespace std::chrono_literals;
using covet::io::OutputQueue;
using covet::net::ClientAuth;
using covet::net::TlsConfig;
using covet::net::TlsContext;
using covet::net::Transport;
namespace fs = std::filesystem;

struct Free {
    void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
    void operator()(X509* p) const noexcept { X509_free(p); }
    void operator()(SSL_CTX* p) const noexcept { SSL_CTX_free(p); }
    void operator()(SSL* p) const noexcept { SSL_free(p); }
    void operator()(SSL_SESSION* p) const noexcept { SSL_SESSION_free(p); }
    void operator()(FILE* p) const noexcept { std::fclose(p); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Free>;
using X509Ptr = std::unique_ptr<X509, Free>;
using CtxPtr = std::unique_ptr<SSL_CTX, Free>;
using SslPtr = std::unique_ptr<SSL, Free>;
using SessionPtr = std::unique_ptr<SSL_SESSION, Free>;
using FilePtr = std::unique_ptr<FILE, Free>;

// ---- certificates ----

struct Issued {
    KeyPtr key;
    X509Ptr cert;
};

Issued issue(const std::vector<std::pair<std::string, std::string>>& subject, const Issued* issuer, bool ca,
             const std::string& san, long serial) {
    Issued out;
    out.key.reset(EVP_EC_gen("P-256"));
    out.cert.reset(X509_new());
    X509* x = out.cert.get();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
    X509_set_pubkey(x, out.key.get());
    X509_NAME* name = X509_get_subject_name(x);
    for (const auto& [k, v] : subject)
        X509_NAME_add_entry_by_txt(name, k.c_str(), MBSTRING_ASC, reinterpret_cast<const unsigned char*>(v.c_str()), -1,
                                   -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer->cert.get()) : name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer ? issuer->cert.get() : x, x, nullptr, nullptr, 0);
    auto add = [&](int nid, const std::string& value) {
        X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
        EXPECT_NE(e, nullptr) << value;
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    };
    if (ca) {
        add(NID_basic_constraints, "critical,CA:TRUE");
        add(NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add(NID_basic_constraints, "CA:FALSE");
        if (!san.empty()) add(NID_subject_alt_name, san);
    }
    X509_sign(x, issuer ? issuer->key.get() : out.key.get(), EVP_sha256());
    return out;
}

void write_pem(const fs::path& path, X509* cert, const X509* chain = nullptr) {
    FilePtr f(std::fopen(path.c_str(), "w"));
    ASSERT_TRUE(f);
    PEM_write_X509(f.get(), cert);
    if (chain) PEM_write_X509(f.get(), chain);
}
void write_key(const fs::path& path, EVP_PKEY* key) {
    FilePtr f(std::fopen(path.c_str(), "w"));
    ASSERT_TRUE(f);
    PEM_write_PrivateKey(f.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
}

void write_file(const fs::path& p, const std::string& s) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << s;
}

// Files shared by every test: a CA, the server's certificate (localhost), a second certificate picked by
// SNI, and client certificates from the CA and from a rogue CA.
struct Pki {
    fs::path dir;
    fs::path ca, server_cert, server_key, sni_cert, sni_key, client_cert, client_key, rogue_cert, rogue_key;

    Pki() {
        char tmpl[] = "/tmp/covet-tls-XXXXXX";
        dir = ::mkdtemp(tmpl);
        Issued ca_ = issue({{"O", "Covet Test"}, {"CN", "Covet Test CA"}}, nullptr, true, "", 1);
        Issued server = issue({{"CN", "localhost"}}, &ca_, false, "DNS:localhost,IP:127.0.0.1", 2);
        Issued sni =
            issue({{"CN", "other.example.com"}}, &ca_, false, "DNS:other.example.com,DNS:*.wild.example.com", 3);
        Issued client = issue({{"O", "Example"}, {"CN", "alice"}}, &ca_, false, "", 4);
        Issued rogue_ca = issue({{"CN", "Rogue CA"}}, nullptr, true, "", 5);
        Issued rogue = issue({{"O", "Example"}, {"CN", "mallory"}}, &rogue_ca, false, "", 6);
        ca = dir / "ca.pem";
        write_pem(ca, ca_.cert.get());
        server_cert = dir / "server.pem", server_key = dir / "server.key";
        write_pem(server_cert, server.cert.get(), ca_.cert.get());
        write_key(server_key, server.key.get());
        sni_cert = dir / "sni.pem", sni_key = dir / "sni.key";
        write_pem(sni_cert, sni.cert.get(), ca_.cert.get());
        write_key(sni_key, sni.key.get());
        client_cert = dir / "client.pem", client_key = dir / "client.key";
        write_pem(client_cert, client.cert.get());
        write_key(client_key, client.key.get());
        rogue_cert = dir / "rogue.pem", rogue_key = dir / "rogue.key";
        write_pem(rogue_cert, rogue.cert.get());
        write_key(rogue_key, rogue.key.get());
    }
    ~Pki() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
};

Pki& pki() {
    static Pki p;
    return p;
}

TlsConfig server_config() {
    TlsConfig c;
    c.certificates.push_back({pki().server_cert, pki().server_key});
    c.certificates.push_back({pki().sni_cert, pki().sni_key});
    return c;
}

// ---- an in-memory client ----

struct ClientOptions {
    int max_version = 0;  // 0: any
    std::vector<std::string> alpn{};
    std::string sni{};
    fs::path cert{}, key{};
    SSL_SESSION* session = nullptr;
};

std::string peer_cn(SSL* ssl) {
    X509* peer = SSL_get0_peer_certificate(ssl);
    if (!peer) return {};
    char buf[256] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, buf, sizeof buf);
    return buf;
}

CtxPtr client_ctx(const ClientOptions& o) {
    CtxPtr ctx(SSL_CTX_new(TLS_client_method()));
    if (o.max_version) SSL_CTX_set_max_proto_version(ctx.get(), o.max_version);
    SSL_CTX_load_verify_locations(ctx.get(), pki().ca.c_str(), nullptr);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    // No client cache: freeing a context flushes its cache, which marks the sessions not resumable.
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
    if (!o.alpn.empty()) {
        std::string wire;
        for (const auto& p : o.alpn) wire += static_cast<char>(p.size()) + p;
        SSL_CTX_set_alpn_protos(ctx.get(), reinterpret_cast<const unsigned char*>(wire.data()),
                                static_cast<unsigned>(wire.size()));
    }
    if (!o.cert.empty()) {
        EXPECT_EQ(SSL_CTX_use_certificate_file(ctx.get(), o.cert.c_str(), SSL_FILETYPE_PEM), 1);
        EXPECT_EQ(SSL_CTX_use_PrivateKey_file(ctx.get(), o.key.c_str(), SSL_FILETYPE_PEM), 1);
    }
    return ctx;
}

// A server transport and an OpenSSL client connected by memory BIOs; pump() moves bytes until both are quiet.
struct Pair {
    OutputQueue wire;  // the connection's socket queue
    std::unique_ptr<Transport> server;
    CtxPtr cctx;
    SslPtr client;
    BIO* c_in = nullptr;   // server → client
    BIO* c_out = nullptr;  // client → server
    std::string server_got, client_got;
    bool server_ok = true, client_failed = false;

    Pair(TlsContext& ctx, const ClientOptions& o = {}) : server(ctx.make_transport(wire)), cctx(client_ctx(o)) {
        client.reset(SSL_new(cctx.get()));
        c_in = BIO_new(BIO_s_mem());
        c_out = BIO_new(BIO_s_mem());
        BIO_set_mem_eof_return(c_in, -1);
        SSL_set_bio(client.get(), c_in, c_out);
        SSL_set_connect_state(client.get());
        if (!o.sni.empty()) SSL_set_tlsext_host_name(client.get(), o.sni.c_str());
        if (o.session) SSL_set_session(client.get(), o.session);
    }

    // Bytes the server queued for the socket, as the peer would receive them.
    std::string take_wire() { return covet_test::drain(wire); }

    void client_step() {
        SSL* c = client.get();
        if (client_failed) return;
        if (!SSL_is_init_finished(c)) {
            const int r = SSL_do_handshake(c);
            if (r != 1 && SSL_get_error(c, r) != SSL_ERROR_WANT_READ) client_failed = true;
            if (r != 1) return;
        }
        char buf[4096];
        std::size_t n = 0;
        for (;;) {
            const int r = SSL_read_ex(c, buf, sizeof buf, &n);
            if (r == 1) {
                client_got.append(buf, n);
                continue;
            }
            const int e = SSL_get_error(c, r);
            if (e != SSL_ERROR_WANT_READ) client_failed = true;
            break;
        }
        ERR_clear_error();
    }

    bool feed_server(std::string_view bytes) {
        server_ok =
            server->on_receive(bytes, [this](std::span<const char> p) { server_got.append(p.data(), p.size()); });
        server->flush_to(wire);
        return server_ok;
    }

    void pump() {
        for (int round = 0; round < 50; ++round) {
            client_step();
            bool moved = false;
            const std::size_t pending = BIO_ctrl_pending(c_out);
            if (pending) {
                std::string bytes(pending, '\0');
                std::size_t got = 0;
                BIO_read_ex(c_out, bytes.data(), pending, &got);
                moved = true;
                if (server_ok) feed_server(bytes);
            }
            server->flush_to(wire);
            const std::string back = take_wire();
            if (!back.empty()) {
                BIO_write(c_in, back.data(), static_cast<int>(back.size()));
                moved = true;
            }
            if (!moved) break;
        }
    }

    void client_send(std::string_view s) {
        std::size_t w = 0;
        ASSERT_EQ(SSL_write_ex(client.get(), s.data(), s.size(), &w), 1);
        pump();
    }
    void server_send(std::string_view s) {
        server->plaintext_out().append(s);
        server->flush_to(wire);
        pump();
    }
    bool established() const { return server_ok && server->tls() != nullptr && !client_failed; }
};

class TlsTest : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        const char* level = std::getenv("COVET_TEST_LOG");  // e.g. "warn" to see the transport's lines
        covet::configure_logging(level ? level : "off");
        pki();
    }
};

// ---- the transport against an in-memory client ----

TEST_F(TlsTest, HandshakeAndEchoBothWays) {
    TlsContext ctx(server_config(), {"http/1.1"});
    Pair p(ctx);
    EXPECT_EQ(p.server->tls(), nullptr);  // nothing yet
    p.pump();
    ASSERT_TRUE(p.established());
    EXPECT_EQ(SSL_get_verify_result(p.client.get()), X509_V_OK);  // the chain verifies against the CA
    EXPECT_EQ(peer_cn(p.client.get()), "localhost");
    p.client_send("hello from the client");
    EXPECT_EQ(p.server_got, "hello from the client");
    p.server_send("hello from the server");
    EXPECT_EQ(p.client_got, "hello from the server");
    // A large body crosses several records both ways.
    const std::string big(300 * 1024, 'x');
    p.server_send(big);
    EXPECT_EQ(p.client_got.size(), std::string("hello from the server").size() + big.size());
    p.server_got.clear();
    p.client_send(std::string(100 * 1024, 'y'));
    EXPECT_EQ(p.server_got, std::string(100 * 1024, 'y'));
}

TEST_F(TlsTest, PlaintextQueuedDuringHandshakeIsSentAfterIt) {
    TlsContext ctx(server_config(), {});
    Pair p(ctx);
    p.server->plaintext_out().append(std::string_view("early"));
    p.pump();
    ASSERT_TRUE(p.established());
    EXPECT_EQ(p.client_got, "early");
}

TEST_F(TlsTest, Tls13ByDefault) {
    TlsContext ctx(server_config(), {});
    Pair p(ctx);
    p.pump();
    ASSERT_TRUE(p.established());
    EXPECT_EQ(p.server->tls()->version, "TLSv1.3");
    EXPECT_FALSE(p.server->tls()->cipher.empty());
    EXPECT_FALSE(p.server->tls()->session_reused);
}

TEST_F(TlsTest, Tls12ClientAcceptedWhenAllowed) {
    TlsContext ctx(server_config(), {});
    Pair p(ctx, {.max_version = TLS1_2_VERSION});
    p.pump();
    ASSERT_TRUE(p.established());
    EXPECT_EQ(p.server->tls()->version, "TLSv1.2");
    // Only ECDHE + AEAD suites by default.
    const std::string cipher(p.server->tls()->cipher);
    EXPECT_EQ(cipher.rfind("ECDHE-", 0), 0u) << cipher;
    EXPECT_TRUE(cipher.find("GCM") != std::string::npos || cipher.find("CHACHA20") != std::string::npos) << cipher;
}

TEST_F(TlsTest, Tls12ClientRefusedWhenDisabled) {
    TlsConfig cfg = server_config();
    cfg.allow_tls12 = false;
    TlsContext ctx(cfg, {});
    Pair p(ctx, {.max_version = TLS1_2_VERSION});
    p.pump();
    EXPECT_FALSE(p.server_ok);
    EXPECT_EQ(p.server->tls(), nullptr);
    EXPECT_TRUE(p.client_failed);  // the alert reached the client
}

TEST_F(TlsTest, AlpnUsesServerPreference) {
    TlsContext ctx(server_config(), {"h2", "http/1.1"});
    {
        Pair p(ctx, {.alpn = {"http/1.1", "h2"}});
        p.pump();
        ASSERT_TRUE(p.established());
        EXPECT_EQ(p.server->tls()->alpn, "h2");
    }
    {
        Pair p(ctx, {.alpn = {"http/1.1"}});
        p.pump();
        ASSERT_TRUE(p.established());
        EXPECT_EQ(p.server->tls()->alpn, "http/1.1");
    }
    {
        Pair p(ctx, {.alpn = {"spdy/3", "imap"}});  // no overlap: no ALPN, still connected
        p.pump();
        ASSERT_TRUE(p.established());
        EXPECT_EQ(p.server->tls()->alpn, "");
    }
    {
        Pair p(ctx);
        p.pump();
        ASSERT_TRUE(p.established());
        EXPECT_EQ(p.server->tls()->alpn, "");
    }
    TlsContext h1_only(server_config(), {"http/1.1"});
    Pair p(h1_only, {.alpn = {"h2", "http/1.1"}});
    p.pump();
    ASSERT_TRUE(p.established());
    EXPECT_EQ(p.server->tls()->alpn, "http/1.1");
}

TEST_F(TlsTest, SniSelectsTheMatchingCertificate) {
    TlsContext ctx(server_config(), {"h2", "http/1.1"});
    struct Case {
        std::string sni, expected_cn;
    } cases[] = {{"other.example.com", "other.example.com"},
                 {"OTHER.example.com", "other.example.com"},
                 {"a.wild.example.com", "other.example.com"},
                 {"a.b.wild.example.com", "localhost"},  // a wildcard covers one label only
                 {"localhost", "localhost"},
                 {"unknown.test", "localhost"},
                 {"", "localhost"}};
    for (const Case& c : cases) {
        Pair p(ctx, {.alpn = {"h2"}, .sni = c.sni});
        p.pump();
        ASSERT_TRUE(p.established()) << c.sni;
        EXPECT_EQ(peer_cn(p.client.get()), c.expected_cn) << c.sni;
        EXPECT_EQ(p.server->tls()->server_name, c.sni);
        EXPECT_EQ(p.server->tls()->alpn, "h2") << "ALPN still works after the SNI switch: " << c.sni;
    }
}

TEST_F(TlsTest, SessionResumedFromTicket) {
    TlsContext ctx(server_config(), {});
    SessionPtr session;
    {
        Pair p(ctx);
        p.pump();
        ASSERT_TRUE(p.established());
        EXPECT_FALSE(p.server->tls()->session_reused);
        session.reset(SSL_get1_session(p.client.get()));
        ASSERT_TRUE(session);
        // Without close_notify OpenSSL marks the session not resumable when the SSL is freed.
        SSL_shutdown(p.client.get());
    }
    ASSERT_TRUE(SSL_SESSION_is_resumable(session.get()));
    Pair p(ctx, {.session = session.get()});
    p.pump();
    ASSERT_TRUE(p.established());
    EXPECT_TRUE(p.server->tls()->session_reused);
    EXPECT_TRUE(SSL_session_reused(p.client.get()));
    p.client_send("after resumption");
    EXPECT_EQ(p.server_got, "after resumption");
}

TEST_F(TlsTest, NoResumptionWhenTicketsAreOff) {
    TlsConfig cfg = server_config();
    cfg.session_tickets = false;
    TlsContext ctx(cfg, {});
    SessionPtr session;
    {
        Pair p(ctx);
        p.pump();
        ASSERT_TRUE(p.established());
        session.reset(SSL_get1_session(p.client.get()));
        SSL_shutdown(p.client.get());
    }
    Pair p(ctx, {.session = session.get()});
    p.pump();
    ASSERT_TRUE(p.established());
    EXPECT_FALSE(p.server->tls()->session_reused);
}

TlsConfig mtls_config(ClientAuth mode) {
    TlsConfig c = server_config();
    c.client_auth = mode;
    c.ca_file = pki().ca;
    return c;
}

TEST_F(TlsTest, MtlsRequiredRefusesAClientWithoutCertificate) {
    TlsContext ctx(mtls_config(ClientAuth::required), {});
    Pair p(ctx);
    p.pump();
    EXPECT_FALSE(p.server_ok);
    EXPECT_EQ(p.server->tls(), nullptr);
}

TEST_F(TlsTest, MtlsRequiredAcceptsAGoodCertificate) {
    TlsContext ctx(mtls_config(ClientAuth::required), {});
    Pair p(ctx, {.cert = pki().client_cert, .key = pki().client_key});
    p.pump();
    ASSERT_TRUE(p.established());
    const covet::net::TlsInfo& info = *p.server->tls();
    EXPECT_TRUE(info.client_verified);
    EXPECT_EQ(info.client_subject, "CN=alice,O=Example");
    EXPECT_EQ(info.client_common_name, "alice");
    // The client was told which CAs are acceptable.
    STACK_OF(X509_NAME)* cas = SSL_get_client_CA_list(p.client.get());
    ASSERT_NE(cas, nullptr);
    EXPECT_EQ(sk_X509_NAME_num(cas), 1);
}

TEST_F(TlsTest, MtlsRequiredRefusesARogueCertificate) {
    TlsContext ctx(mtls_config(ClientAuth::required), {});
    Pair p(ctx, {.cert = pki().rogue_cert, .key = pki().rogue_key});
    p.pump();
    EXPECT_FALSE(p.server_ok);
    EXPECT_EQ(p.server->tls(), nullptr);
}

TEST_F(TlsTest, MtlsOptionalAcceptsAClientWithoutCertificate) {
    TlsContext ctx(mtls_config(ClientAuth::optional), {});
    {
        Pair p(ctx);
        p.pump();
        ASSERT_TRUE(p.established());
        EXPECT_FALSE(p.server->tls()->client_verified);
        EXPECT_EQ(p.server->tls()->client_subject, "");
    }
    Pair p(ctx, {.cert = pki().client_cert, .key = pki().client_key});
    p.pump();
    ASSERT_TRUE(p.established());
    EXPECT_TRUE(p.server->tls()->client_verified);
    EXPECT_EQ(p.server->tls()->client_common_name, "alice");
}

TEST_F(TlsTest, ReloadSwapsCertificatesForNewConnectionsOnly) {
    const fs::path cert = pki().dir / "reload.pem", key = pki().dir / "reload.key";
    fs::copy_file(pki().server_cert, cert, fs::copy_options::overwrite_existing);
    fs::copy_file(pki().server_key, key, fs::copy_options::overwrite_existing);
    TlsConfig cfg;
    cfg.certificates.push_back({cert, key});
    TlsContext ctx(cfg, {"http/1.1"});

    Pair before(ctx);
    before.pump();
    ASSERT_TRUE(before.established());
    EXPECT_EQ(peer_cn(before.client.get()), "localhost");

    fs::copy_file(pki().sni_cert, cert, fs::copy_options::overwrite_existing);
    fs::copy_file(pki().sni_key, key, fs::copy_options::overwrite_existing);
    ctx.reload();
    Pair after(ctx);
    after.pump();
    ASSERT_TRUE(after.established());
    EXPECT_EQ(peer_cn(after.client.get()), "other.example.com");
    EXPECT_EQ(after.server->tls()->alpn, "");  // the client offered none; the list survived the reload
    // The connection made before the reload is unaffected.
    before.client_send("still here");
    EXPECT_EQ(before.server_got, "still here");

    // A broken key: reload throws, naming the file; the last good certificate stays in use.
    write_file(key, "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n");
    try {
        ctx.reload();
        ADD_FAILURE() << "reload with a broken key did not throw";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(key.string()), std::string::npos) << e.what();
    }
    Pair later(ctx);
    later.pump();
    ASSERT_TRUE(later.established());
    EXPECT_EQ(peer_cn(later.client.get()), "other.example.com");
}

TEST_F(TlsTest, PlainHttpRequestGets400AndClose) {
    TlsContext ctx(server_config(), {});
    Pair p(ctx);
    EXPECT_FALSE(p.feed_server("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    const std::string out = p.take_wire();
    EXPECT_EQ(out.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << out;
    EXPECT_NE(out.find("Connection: close\r\n"), std::string::npos);
    EXPECT_NE(out.find("https://"), std::string::npos);
    EXPECT_EQ(p.server->tls(), nullptr);
    EXPECT_TRUE(p.server_got.empty());
    // Further input is refused.
    EXPECT_FALSE(p.feed_server("more"));
}

TEST_F(TlsTest, GarbageIsRefusedWithoutAnswer) {
    TlsContext ctx(server_config(), {});
    {
        Pair p(ctx);
        const char junk[] = {'\x00', '\x01', '\x7f', '\xff', 'a', 'b'};
        EXPECT_FALSE(p.feed_server({junk, sizeof junk}));
        EXPECT_TRUE(p.take_wire().empty());
    }
    {
        // Starts like a handshake record but is not one: a handshake failure (an alert, then close).
        Pair p(ctx);
        std::string bad = "\x16\x03\x01\x00\x05";
        bad += std::string(5, '\xee');
        EXPECT_FALSE(p.feed_server(bad));
        EXPECT_EQ(p.server->tls(), nullptr);
    }
    {
        Pair p(ctx);
        EXPECT_FALSE(p.feed_server("hello there"));  // lower case: not an HTTP request line
        EXPECT_TRUE(p.take_wire().empty());
    }
}

TEST_F(TlsTest, HandshakeTimeout) {
    TlsConfig cfg = server_config();
    cfg.handshake_timeout = 200ms;
    TlsContext ctx(cfg, {});
    Pair stalled(ctx);
    const auto now = covet::io::Clock::now();
    EXPECT_FALSE(stalled.server->expired(now));
    EXPECT_TRUE(stalled.server->expired(now + 1s));
    Pair done(ctx);
    done.pump();
    ASSERT_TRUE(done.established());
    EXPECT_FALSE(done.server->expired(now + 1h));
}

std::string error_of(const TlsConfig& cfg) {
    try {
        TlsContext ctx(cfg, {"http/1.1"});
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "(no error)";
}

TEST_F(TlsTest, ConfigErrorsNameTheFileAndTheFix) {
    EXPECT_NE(error_of(TlsConfig{}).find("no certificate"), std::string::npos);

    TlsConfig missing;
    missing.certificates.push_back({"/nonexistent/cert.pem", pki().server_key});
    EXPECT_NE(error_of(missing).find("/nonexistent/cert.pem"), std::string::npos) << error_of(missing);

    TlsConfig no_key;
    no_key.certificates.push_back({pki().server_cert, "/nonexistent/key.pem"});
    const std::string e1 = error_of(no_key);
    EXPECT_NE(e1.find("'/nonexistent/key.pem'"), std::string::npos) << e1;
    EXPECT_NE(e1.find("unencrypted"), std::string::npos) << e1;

    TlsConfig mismatch;
    mismatch.certificates.push_back({pki().server_cert, pki().sni_key});
    const std::string e2 = error_of(mismatch);
    EXPECT_NE(e2.find(pki().sni_key.string()), std::string::npos) << e2;

    TlsConfig no_ca = server_config();
    no_ca.client_auth = ClientAuth::required;
    EXPECT_NE(error_of(no_ca).find("ca_file"), std::string::npos) << error_of(no_ca);

    TlsConfig bad_ca = mtls_config(ClientAuth::optional);
    bad_ca.ca_file = "/nonexistent/ca.pem";
    EXPECT_NE(error_of(bad_ca).find("/nonexistent/ca.pem"), std::string::npos) << error_of(bad_ca);

    TlsConfig bad_ciphers = server_config();
    bad_ciphers.ciphers = "NOT-A-CIPHER";
    EXPECT_NE(error_of(bad_ciphers).find("NOT-A-CIPHER"), std::string::npos) << error_of(bad_ciphers);
}

// ---- real sockets through net::Server ----

// Echoes what it receives; the first reply is prefixed with the negotiated ALPN: "[h2]ping".
class Echo final : public covet::net::ProtocolHandler {
public:
    explicit Echo(covet::net::Connection& c) : c_(c) {}
    void on_data(std::span<const char> bytes) override {
        std::string reply;
        if (first_) {  // once: TLS records may split later data into several calls
            first_ = false;
            const covet::net::TlsInfo* tls = c_.tls();
            reply = "[" + std::string(tls ? tls->alpn : std::string_view("no-tls")) + "]";
        }
        reply.append(bytes.data(), bytes.size());
        c_.out().append(std::string_view(reply));
        c_.flush();
    }
    void on_peer_closed() override { c_.close_after_flush(); }
    void on_tick(covet::io::Clock::time_point) override {}
    void on_shutdown() override { c_.close_after_flush(); }

private:
    covet::net::Connection& c_;
    bool first_ = true;
};

covet::net::ProtocolFactory echo_factory() {
    return [](covet::net::Connection& c, covet::net::ConnectionHome&) { return std::make_unique<Echo>(c); };
}

int connect_to(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// A blocking OpenSSL client on a socket; verifies the server as "localhost" against the test CA.
struct SocketClient {
    CtxPtr ctx;
    SslPtr ssl;
    int fd = -1;

    explicit SocketClient(std::uint16_t port, std::vector<std::string> alpn = {"h2", "http/1.1"})
        : ctx(client_ctx({.alpn = std::move(alpn)})) {
        fd = connect_to(port);
        ssl.reset(SSL_new(ctx.get()));
        SSL_set_fd(ssl.get(), fd);
        SSL_set_tlsext_host_name(ssl.get(), "localhost");
        SSL_set1_host(ssl.get(), "localhost");
    }
    ~SocketClient() {
        ssl.reset();
        if (fd >= 0) ::close(fd);
    }
    bool handshake() {
        if (fd < 0) return false;
        int rc;
        do rc = SSL_connect(ssl.get());
        while (rc != 1 && interrupted(rc));
        return rc == 1;
    }
    // Sends `msg`, reads until `expect_size` bytes arrived (or error; the error is appended to the answer so
    // that a failing expectation shows it).
    std::string exchange(const std::string& msg, std::size_t expect_size) {
        std::size_t w = 0;
        int rc;
        do rc = SSL_write_ex(ssl.get(), msg.data(), msg.size(), &w);
        while (rc != 1 && interrupted(rc));
        if (rc != 1) return "(write failed)";
        std::string got;
        char buf[16384];
        while (got.size() < expect_size) {
            std::size_t n = 0;
            rc = SSL_read_ex(ssl.get(), buf, sizeof buf, &n);
            if (rc == 1) {
                got.append(buf, n);
                continue;
            }
            if (interrupted(rc)) continue;
            got += "(read failed after " + std::to_string(got.size()) + " bytes: SSL error " +
                   std::to_string(SSL_get_error(ssl.get(), rc)) + ", " + std::strerror(errno) + ")";
            break;
        }
        return got;
    }

private:
    // A blocking socket read or write cut short by a signal: OpenSSL's socket BIO reports EINTR as "retry"
    // (SSL_ERROR_WANT_*), and with SO_RCVTIMEO Linux never restarts the call (signal(7)), so a stop/continue
    // of the test process would otherwise read as "no answer". A timeout (EAGAIN) is not retried.
    bool interrupted(int rc) const {
        const int saved = errno;
        const int e = SSL_get_error(ssl.get(), rc);
        return (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && saved == EINTR;
    }
};

std::string plain_request(std::uint16_t port, const std::string& req) {
    const int fd = connect_to(port);
    if (fd < 0) return "(connect failed)";
    ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    std::string got;
    char buf[4096];
    for (;;) {
        const ssize_t n = covet_test::recv_through_signals(fd, buf, sizeof buf);
        if (n == 0) break;  // EOF: the server closed after its answer
        if (n < 0) {        // said in the answer, so that a failing expectation shows it
            got += "(recv failed after " + std::to_string(got.size()) + " bytes: " + std::strerror(errno) + ")";
            break;
        }
        got.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return got;
}

class TlsServerTest : public TlsTest {
protected:
    covet::net::ServerConfig config(bool http2 = true) {
        covet::net::ServerConfig c;
        c.host = "127.0.0.1";
        c.port = 0;
        c.threads = 2;
        c.timeouts.shutdown = 2s;
        c.tls = server_config();
        c.http2 = http2;
        return c;
    }
};

TEST_F(TlsServerTest, ConcurrentClientsAndAPlaintextClient) {
    covet::net::Server server(config(), echo_factory());
    server.start();
    const std::uint16_t port = server.port();

    // A TLS client that stays connected while the plaintext client is refused.
    SocketClient first(port);
    ASSERT_TRUE(first.handshake());
    EXPECT_EQ(SSL_get_verify_result(first.ssl.get()), X509_V_OK);
    EXPECT_EQ(first.exchange("one", 7), "[h2]one");

    const std::string answer = plain_request(port, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    EXPECT_EQ(answer.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << answer;
    EXPECT_NE(answer.find("https://"), std::string::npos) << answer;

    EXPECT_EQ(first.exchange("two", 3), "two");

    constexpr int clients = 8;
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < clients; ++i)
        threads.emplace_back([&, i] {
            SocketClient c(port, i % 2 ? std::vector<std::string>{"http/1.1"} : std::vector<std::string>{"h2"});
            if (!c.handshake()) return;
            const std::string proto = i % 2 ? "http/1.1" : "h2";
            bool all = c.exchange("hello", proto.size() + 7) == "[" + proto + "]hello";
            for (int round = 0; round < 5; ++round) {
                const std::string msg = "client " + std::to_string(i) + " round " + std::to_string(round);
                all = all && c.exchange(msg, msg.size()) == msg;
            }
            // A body bigger than one TLS record.
            const std::string big(64 * 1024 + 7, static_cast<char>('a' + i));
            all = all && c.exchange(big, big.size()) == big;
            if (all) ++ok;
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(ok.load(), clients);
    EXPECT_EQ(first.exchange("three", 5), "three");
}

TEST_F(TlsServerTest, AlpnOffersOnlyHttp11WithoutHttp2) {
    covet::net::Server server(config(/*http2=*/false), echo_factory());
    server.start();
    SocketClient c(server.port(), {"h2", "http/1.1"});
    ASSERT_TRUE(c.handshake());
    EXPECT_EQ(c.exchange("x", 11), "[http/1.1]x");
}

TEST_F(TlsServerTest, ReloadTlsServesTheNewCertificate) {
    const fs::path cert = pki().dir / "server-reload.pem", key = pki().dir / "server-reload.key";
    fs::copy_file(pki().server_cert, cert, fs::copy_options::overwrite_existing);
    fs::copy_file(pki().server_key, key, fs::copy_options::overwrite_existing);
    covet::net::ServerConfig cfg = config();
    cfg.tls->certificates = {{cert, key}};
    covet::net::Server server(cfg, echo_factory());
    server.start();
    {
        SocketClient c(server.port());
        ASSERT_TRUE(c.handshake());
        EXPECT_EQ(peer_cn(c.ssl.get()), "localhost");
    }
    fs::copy_file(pki().sni_cert, cert, fs::copy_options::overwrite_existing);
    fs::copy_file(pki().sni_key, key, fs::copy_options::overwrite_existing);
    server.reload_tls();
    SocketClient c(server.port());
    SSL_set1_host(c.ssl.get(), "other.example.com");
    ASSERT_TRUE(c.handshake());
    EXPECT_EQ(peer_cn(c.ssl.get()), "other.example.com");
    EXPECT_EQ(c.exchange("ok", 6), "[h2]ok");
}

TEST_F(TlsServerTest, StalledHandshakeIsClosedAfterTheTimeout) {
    covet::net::ServerConfig cfg = config();
    cfg.tls->handshake_timeout = 300ms;
    covet::net::Server server(cfg, echo_factory());
    server.start();
    const int fd = connect_to(server.port());
    ASSERT_GE(fd, 0);
    const auto start = std::chrono::steady_clock::now();
    char buf[64];
    const ssize_t n = covet_test::recv_through_signals(fd, buf, sizeof buf);  // until the server gives up (5 s)
    const auto waited = std::chrono::steady_clock::now() - start;
    ::close(fd);
    EXPECT_EQ(n, 0) << "expected the server to close the connection";
    EXPECT_GE(waited, 250ms);
    EXPECT_LT(waited, 3s);
    // The server still serves others.
    SocketClient c(server.port());
    ASSERT_TRUE(c.handshake());
    EXPECT_EQ(c.exchange("x", 5), "[h2]x");
}

TEST_F(TlsServerTest, EmbeddedModeServesTls) {
    const char* backend = std::getenv("COVET_BACKEND");
    if (backend && std::string(backend) == "asio") GTEST_SKIP() << "embedded mode needs the io_uring backend";
    covet::net::ServerConfig cfg = config();
    cfg.threads = 1;
    covet::net::Server server(cfg, echo_factory());
    server.start_embedded();
    const std::uint16_t port = server.port();
    std::atomic<bool> done{false};
    std::string got;
    std::thread client([&] {
        SocketClient c(port);
        if (c.handshake()) got = c.exchange("embedded", 12);
        done = true;
    });
    // The caller's loop: poll when the engine's fd is readable, then flush.
    const int ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = server.poll_fd();
    epoll_ctl(ep, EPOLL_CTL_ADD, server.poll_fd(), &ev);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    auto turn = [&] {
        epoll_event out{};
        bool running = true;
        if (epoll_wait(ep, &out, 1, 20) > 0) running = server.poll();
        while (server.flush()) running = server.poll();
        return running;
    };
    while (!done && std::chrono::steady_clock::now() < deadline) turn();
    client.join();
    EXPECT_EQ(got, "[h2]embedded");
    server.stop();
    while (std::chrono::steady_clock::now() < deadline && turn()) {
    }
    ::close(ep);
}

TEST_F(TlsServerTest, StartFailsWithTheCertificateErrorAndReloadNeedsTls) {
    covet::net::ServerConfig cfg = config();
    cfg.tls->certificates = {{"/nonexistent/server.pem", pki().server_key}};
    covet::net::Server bad(cfg, echo_factory());
    try {
        bad.start();
        ADD_FAILURE() << "start() with a missing certificate did not throw";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent/server.pem"), std::string::npos) << e.what();
    }

    covet::net::ServerConfig plain = config();
    plain.tls.reset();
    covet::net::Server server(plain, echo_factory());
    server.start();
    EXPECT_THROW(server.reload_tls(), std::runtime_error);
}

}  // namespace
