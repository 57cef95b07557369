// Private to src/net: the OpenSSL objects behind TlsContext and the per-connection TlsTransport.
#pragma once

#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "covet/io/loop.hpp"
#include "covet/io/output_queue.hpp"
#include "covet/net/tls_config.hpp"
#include "covet/net/tls_info.hpp"
#include "covet/net/transport.hpp"

namespace covet::net::tls {

struct SslCtxFree {
    void operator()(SSL_CTX* p) const noexcept { SSL_CTX_free(p); }
};
struct SslFree {
    void operator()(SSL* p) const noexcept { SSL_free(p); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using SslPtr = std::unique_ptr<SSL, SslFree>;

// One generation of loaded certificates. Immutable once built; reload() builds a new one. Each transport
// keeps its generation alive (shared_ptr), so the SNI callback's SSL_CTX switch and the ALPN list stay
// valid for the connection's whole life even after a reload.
struct Certs {
    struct Entry {
        SslCtxPtr ctx;
        std::vector<std::string> names;  // lower-case SAN DNS names (else CN); may start with "*."
    };
    std::vector<Entry> entries;            // [0] is the default certificate
    std::vector<unsigned char> alpn_wire;  // server preference, ALPN wire format (length-prefixed)
    std::chrono::milliseconds handshake_timeout{10'000};

    // The entry whose names match `host` (exact, or a one-label "*." wildcard); null when none does.
    const Entry* match(std::string_view host) const noexcept;
};

// Builds a generation from the config; throws std::runtime_error naming the file, the reason and the fix.
std::shared_ptr<const Certs> load(const TlsConfig& config, const std::vector<std::string>& alpn);

class TlsTransport final : public Transport {
public:
    TlsTransport(std::shared_ptr<const Certs> certs, io::OutputQueue& wire);
    ~TlsTransport() override;

    bool on_receive(std::span<const char> wire, const std::function<void(std::span<const char>)>& deliver) override;
    io::OutputQueue& plaintext_out() override { return plaintext_; }
    void flush_to(io::OutputQueue& wire) override;
    const TlsInfo* tls() const noexcept override { return handshake_done_ ? &info_ : nullptr; }
    bool expired(io::Clock::time_point now) const noexcept override;
    bool failed() const noexcept override { return failed_; }

    // Whether the SSL object could be created (false only when out of memory).
    bool valid() const noexcept { return ssl_ != nullptr; }

private:
    bool receive(std::span<const char> wire, const std::function<void(std::span<const char>)>& deliver);
    bool reject_non_tls(std::span<const char> first);
    void fill_info();
    void drain_wbio(io::OutputQueue& wire);
    // Encrypts the file segment at the front of the plaintext queue, a piece at a time, until the wire queue
    // holds file_refill_bytes. False when the file ended early (it shrank) or a write failed.
    bool write_file(io::OutputQueue& wire);
    void fail(const char* what) noexcept;

    std::shared_ptr<const Certs> certs_;
    io::OutputQueue& wire_;
    SslPtr ssl_;
    BIO* rbio_ = nullptr;  // owned by ssl_
    BIO* wbio_ = nullptr;  // owned by ssl_
    io::OutputQueue plaintext_;
    TlsInfo info_;
    io::Clock::time_point accepted_ = io::Clock::now();
    bool sniffed_ = false;  // the first bytes were checked for a TLS record
    bool handshake_done_ = false;
    bool failed_ = false;
    mutable bool timeout_logged_ = false;
};

}  // namespace covet::net::tls
