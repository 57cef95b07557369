// TLS settings of a listener (OpenSSL underneath, see tls_context.hpp). Plain TCP when unset.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace covet::net {

struct TlsCertificate {
    std::string cert_file;  // PEM: the leaf certificate, then its chain
    std::string key_file;   // PEM private key
};

enum class ClientAuth { none, optional, required };

struct TlsConfig {
    // The first is the default; the others are chosen by SNI, matching the names in each certificate
    // (subjectAltName DNS entries, else the subject CN; "*.example.com" wildcards included).
    std::vector<TlsCertificate> certificates;
    // mTLS: CA bundle (PEM) that client certificates must chain to. Required unless client_auth is none.
    std::string ca_file;
    ClientAuth client_auth = ClientAuth::none;
    bool allow_tls12 = true;                              // TLS 1.3 is always on; 1.2 for older clients unless disabled
    std::string ciphers;                                  // TLS 1.2 cipher list; empty: ECDHE + AEAD only
    std::string ciphersuites;                             // TLS 1.3 suites; empty: OpenSSL's default
    bool session_tickets = true;                          // stateless resumption (keys rotate with each reload)
    std::chrono::milliseconds handshake_timeout{10'000};  // accept → handshake done, else closed
};

}  // namespace covet::net
