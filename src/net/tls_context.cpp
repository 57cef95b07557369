// TlsContext: loads certificate generations (one SSL_CTX per certificate, chosen by SNI) and hands out
// transports. Loading happens off the hot path (start, reload); make_transport only copies a shared_ptr.
#include "covet/net/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <stdexcept>

#include "tls_transport.hpp"

namespace covet::net {
namespace tls {
namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
    return out;
}

// OpenSSL's reason for the last failure, then the error queue is cleared (it is per thread and would
// otherwise leak into the next, unrelated, check).
std::string openssl_reason() {
    unsigned long code = ERR_peek_last_error();
    std::string reason;
    if (code != 0) {
        const char* r = ERR_reason_error_string(code);
        reason = r ? r : "error code " + std::to_string(code);
    } else {
        reason = "unknown error";
    }
    ERR_clear_error();
    return reason;
}

[[noreturn]] void fail(const std::string& what, const std::string& file, const std::string& fix) {
    throw std::runtime_error("TLS: " + what + " '" + file + "': " + openssl_reason() + " (" + fix + ")");
}

// Never prompt on the terminal for a passphrase: an encrypted key is a configuration error.
int no_password(char*, int, int, void*) { return 0; }

// SAN DNS names, else the subject CN, lower-cased.
std::vector<std::string> names_of(X509* cert) {
    std::vector<std::string> names;
    if (!cert) return names;
    if (auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr))) {
        for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
            const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, i);
            if (n->type != GEN_DNS) continue;
            const ASN1_IA5STRING* s = n->d.dNSName;
            names.push_back(lower({reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                   static_cast<std::size_t>(ASN1_STRING_length(s))}));
        }
        GENERAL_NAMES_free(sans);
    }
    if (names.empty()) {
        X509_NAME* subject = X509_get_subject_name(cert);
        int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
        if (idx >= 0) {
            const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
            names.push_back(lower({reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                   static_cast<std::size_t>(ASN1_STRING_length(s))}));
        }
    }
    return names;
}

bool name_matches(std::string_view pattern, std::string_view host) noexcept {
    if (pattern == host) return true;
    // "*.example.com" covers exactly one label: "a.example.com", not "example.com" or "a.b.example.com".
    if (pattern.size() > 2 && pattern.substr(0, 2) == "*.") {
        const std::size_t dot = host.find('.');
        return dot != std::string_view::npos && dot > 0 && host.substr(dot) == pattern.substr(1);
    }
    return false;
}

// SNI: switch the connection to the certificate that names the requested host; otherwise keep the default.
int on_servername(SSL* ssl, int*, void* arg) {
    const auto* certs = static_cast<const Certs*>(arg);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name || !*name) return SSL_TLSEXT_ERR_OK;
    const Certs::Entry* e = certs->match(name);
    if (e && e != &certs->entries.front()) SSL_set_SSL_CTX(ssl, e->ctx.get());
    return SSL_TLSEXT_ERR_OK;
}

// ALPN with server preference; no common protocol → carry on without ALPN (the default protocol).
int on_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
            void* arg) {
    const auto* certs = static_cast<const Certs*>(arg);
    const std::vector<unsigned char>& ours = certs->alpn_wire;
    for (std::size_t i = 0; i < ours.size(); i += 1 + ours[i]) {
        const unsigned char len = ours[i];
        for (unsigned int j = 0; j < inlen; j += 1u + in[j]) {
            if (in[j] == len && j + 1 + len <= inlen && std::equal(&ours[i + 1], &ours[i + 1] + len, &in[j + 1])) {
                *out = &ours[i + 1];  // points into the generation, which outlives the handshake
                *outlen = len;
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

constexpr const char* default_tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// TLS 1.3: AES-128-GCM first (as fast as 256 with AES-NI, and what nginx and most clients prefer), while
// OpenSSL's own default order, with server preference on, would pick AES-256.
constexpr const char* default_tls13_ciphersuites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

constexpr unsigned char session_id_context[] = "covet";

SslCtxPtr make_ctx(const TlsConfig& config, const TlsCertificate& cert, Certs& certs) {
    SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx) throw std::runtime_error("TLS: cannot create an SSL context: " + openssl_reason());
    SSL_CTX* c = ctx.get();

    SSL_CTX_set_min_proto_version(c, config.allow_tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
    SSL_CTX_set_options(c, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    // RELEASE_BUFFERS: idle connections hold no record buffers (matters at 100K connections). The write
    // modes let a partial SSL_write continue from a moved buffer (never needed with memory BIOs, but safe).
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_set_cipher_list(c, config.ciphers.empty() ? default_tls12_ciphers : config.ciphers.c_str()) != 1)
        throw std::runtime_error("TLS: invalid cipher list '" + config.ciphers + "': " + openssl_reason() +
                                 " (use OpenSSL cipher names, e.g. ECDHE-RSA-AES128-GCM-SHA256)");
    if (SSL_CTX_set_ciphersuites(
            c, config.ciphersuites.empty() ? default_tls13_ciphersuites : config.ciphersuites.c_str()) != 1)
        throw std::runtime_error("TLS: invalid TLS 1.3 ciphersuites '" + config.ciphersuites +
                                 "': " + openssl_reason() + " (e.g. TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384)");

    // Sessions: the id context must be set or resumption fails once client verification is on.
    SSL_CTX_set_session_id_context(c, session_id_context, sizeof session_id_context - 1);
    if (config.session_tickets) {
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
    } else {
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(c, 0);
    }

    SSL_CTX_set_default_passwd_cb(c, no_password);
    if (SSL_CTX_use_certificate_chain_file(c, cert.cert_file.c_str()) != 1)
        fail("cannot load certificate chain", cert.cert_file, "is it PEM, the leaf certificate first, then its chain?");
    if (SSL_CTX_use_PrivateKey_file(c, cert.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
        fail("cannot load private key", cert.key_file, "is it PEM, unencrypted, and the key for this certificate?");
    if (SSL_CTX_check_private_key(c) != 1)
        fail("private key does not match the certificate", cert.key_file,
             "use the key that was generated with '" + cert.cert_file + "'");

    if (config.client_auth != ClientAuth::none) {
        if (SSL_CTX_load_verify_locations(c, config.ca_file.c_str(), nullptr) != 1)
            fail("cannot load client CA file", config.ca_file, "a PEM bundle of the CAs that sign client certificates");
        STACK_OF(X509_NAME)* cas = SSL_load_client_CA_file(config.ca_file.c_str());
        if (!cas) fail("no CA names in client CA file", config.ca_file, "a PEM bundle of CA certificates");
        SSL_CTX_set_client_CA_list(c, cas);  // takes ownership
        SSL_CTX_set_verify(
            c, SSL_VERIFY_PEER | (config.client_auth == ClientAuth::required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
            nullptr);
    }

    // Callbacks are set on every context: after an SNI switch OpenSSL consults the new one for ALPN.
    SSL_CTX_set_tlsext_servername_callback(c, on_servername);
    SSL_CTX_set_tlsext_servername_arg(c, &certs);
    SSL_CTX_set_alpn_select_cb(c, on_alpn, &certs);
    return ctx;
}

}  // namespace

const Certs::Entry* Certs::match(std::string_view host) const noexcept {
    std::string h;
    try {
        h = lower(host);
    } catch (...) {
        return nullptr;
    }
    if (!h.empty() && h.back() == '.') h.pop_back();  // "example.com." is "example.com"
    for (const Entry& e : entries)
        for (const std::string& n : e.names)
            if (name_matches(n, h)) return &e;
    return nullptr;
}

std::shared_ptr<const Certs> load(const TlsConfig& config, const std::vector<std::string>& alpn) {
    if (config.certificates.empty())
        throw std::runtime_error(
            "TLS: no certificate configured (TlsConfig::certificates needs at least one "
            "PEM certificate chain and its key)");
    if (config.client_auth != ClientAuth::none && config.ca_file.empty())
        throw std::runtime_error(
            "TLS: client certificates are requested but no CA file is set (set "
            "TlsConfig::ca_file to the PEM bundle that client certificates must chain to)");
    auto certs = std::make_shared<Certs>();
    for (const std::string& p : alpn) {
        if (p.empty() || p.size() > 255) throw std::runtime_error("TLS: invalid ALPN protocol name '" + p + "'");
        certs->alpn_wire.push_back(static_cast<unsigned char>(p.size()));
        certs->alpn_wire.insert(certs->alpn_wire.end(), p.begin(), p.end());
    }
    certs->handshake_timeout = config.handshake_timeout;
    ERR_clear_error();
    for (const TlsCertificate& cert : config.certificates) {
        Certs::Entry e;
        e.ctx = make_ctx(config, cert, *certs);
        e.names = names_of(SSL_CTX_get0_certificate(e.ctx.get()));
        certs->entries.push_back(std::move(e));
    }
    return certs;
}

}  // namespace tls

struct TlsContext::Impl {
    TlsConfig config;
    std::vector<std::string> alpn;
    std::mutex mutex;  // guards `current` (workers copy it, reload swaps it)
    std::shared_ptr<const tls::Certs> current;
};

TlsContext::TlsContext(TlsConfig config, std::vector<std::string> alpn) : impl_(std::make_unique<Impl>()) {
    impl_->config = std::move(config);
    impl_->alpn = std::move(alpn);
    impl_->current = tls::load(impl_->config, impl_->alpn);
}

TlsContext::~TlsContext() = default;

void TlsContext::reload() {
    // Load outside the lock: workers keep accepting with the old generation meanwhile.
    auto fresh = tls::load(impl_->config, impl_->alpn);
    std::lock_guard lock(impl_->mutex);
    impl_->current = std::move(fresh);
}

std::unique_ptr<Transport> TlsContext::make_transport(io::OutputQueue& wire) {
    std::shared_ptr<const tls::Certs> certs;
    {
        std::lock_guard lock(impl_->mutex);
        certs = impl_->current;
    }
    auto t = std::make_unique<tls::TlsTransport>(std::move(certs), wire);
    if (!t->valid()) {
        ERR_clear_error();
        throw std::runtime_error("TLS: cannot create a connection's SSL object (out of memory?)");
    }
    return t;
}

const TlsConfig& TlsContext::config() const noexcept { return impl_->config; }

}  // namespace covet::net
