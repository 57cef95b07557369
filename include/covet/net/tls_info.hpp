// What a request can learn about the TLS session it arrived on. Owned by the connection's transport;
// valid while the connection lives.
#pragma once

#include <string>
#include <string_view>

namespace covet::net {

struct TlsInfo {
    std::string_view version;     // "TLSv1.3"
    std::string_view cipher;      // "TLS_AES_128_GCM_SHA256"
    std::string_view alpn;        // "h2", "http/1.1" or empty
    std::string server_name;      // SNI the client sent, or empty
    bool session_reused = false;  // resumed from a ticket
    // mTLS: a client certificate that verified against TlsConfig::ca_file. Empty when none was sent.
    bool client_verified = false;
    std::string client_subject;  // RFC 2253 form, e.g. "CN=alice,O=Example"
    std::string client_common_name;
};

}  // namespace covet::net
