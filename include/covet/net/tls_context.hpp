// A listener's TLS state: certificates (SNI), ALPN choice, session tickets, client verification. Shared
// by all workers; reload() swaps in freshly loaded certificates for new connections without a restart.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "covet/io/output_queue.hpp"
#include "covet/net/tls_config.hpp"
#include "covet/net/transport.hpp"

namespace covet::net {

class TlsContext {
public:
    // Loads certificates and keys. Throws std::runtime_error naming the file, the cause and the fix.
    // `alpn`: protocols offered in preference order, e.g. {"h2", "http/1.1"}.
    TlsContext(TlsConfig config, std::vector<std::string> alpn);
    ~TlsContext();
    TlsContext(const TlsContext&) = delete;
    TlsContext& operator=(const TlsContext&) = delete;

    // Reloads the certificate files; any thread. On failure the old certificates stay in use and the
    // error is thrown. Connections already established keep their session.
    void reload();

    // A transport for one new connection; the worker's thread. `wire` is the connection's socket queue.
    std::unique_ptr<Transport> make_transport(io::OutputQueue& wire);

    const TlsConfig& config() const noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace covet::net
