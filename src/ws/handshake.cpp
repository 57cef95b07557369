// WebSocket opening handshake: request validation, Sec-WebSocket-Accept (OpenSSL SHA-1 + base64), and
// the 101 response head.
#include "covet/ws/handshake.hpp"

#include <openssl/evp.h>

#include "covet/http/ascii.hpp"

namespace covet::ws {
namespace {

constexpr std::string_view guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";  // RFC 6455 §1.3

// Whether any header named `name` lists `token` (a list may be split over repeated headers).
bool any_header_has_token(const Request& r, std::string_view name, std::string_view token,
                          bool exact = false) noexcept {
    for (const Header& h : r.headers())
        if (iequals(h.name, name) && lists_token(h.value, token, exact)) return true;
    return false;
}

Response refuse(std::string_view why) {
    Response r = Response::text("Bad WebSocket handshake: " + std::string(why) + "\n", 400);
    return r;
}

bool is_base64_char(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

}  // namespace

bool valid_key(std::string_view key) noexcept {
    // 16 bytes encode to 22 characters and "==". The last character carries 2 bits of data, so its low
    // 4 bits must be 0 (A, Q, g, w) for the decoded length to be exactly 16.
    if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
    for (std::size_t i = 0; i < 22; ++i)
        if (!is_base64_char(key[i])) return false;
    const char last = key[21];
    return last == 'A' || last == 'Q' || last == 'g' || last == 'w';
}

std::string accept_key(std::string_view key) {
    std::string input;
    input.reserve(key.size() + guid.size());
    input.append(key).append(guid);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (EVP_Digest(input.data(), input.size(), digest, &digest_len, EVP_sha1(), nullptr) != 1) return {};
    unsigned char encoded[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    const int n = EVP_EncodeBlock(encoded, digest, static_cast<int>(digest_len));
    return std::string(reinterpret_cast<const char*>(encoded), static_cast<std::size_t>(n));
}

bool is_upgrade_request(const Request& request) noexcept {
    return any_header_has_token(request, "upgrade", "websocket");
}

std::variant<Accepted, Response> accept_upgrade(const Request& request, const Options& options) {
    if (request.method() != Method::get) return refuse("the method must be GET");
    if (request.version_major() != 1 || request.version_minor() < 1) return refuse("HTTP/1.1 or later is required");
    if (!is_upgrade_request(request)) return refuse("missing \"Upgrade: websocket\"");
    if (!any_header_has_token(request, "connection", "upgrade"))
        return refuse("the Connection header must list \"upgrade\"");
    const auto version = request.header("sec-websocket-version");
    if (!version || trim_ows(*version) != "13") {
        Response r = Response::text("Unsupported WebSocket version: 13 is required\n", 426);
        r.add_header("Sec-WebSocket-Version", "13");
        r.add_header("Upgrade", "websocket");
        r.add_header("Connection", "Upgrade");
        return r;
    }
    const auto key = request.header("sec-websocket-key");
    if (!key) return refuse("missing Sec-WebSocket-Key");
    const std::string_view k = trim_ows(*key);
    if (!valid_key(k)) return refuse("Sec-WebSocket-Key must be base64 of 16 bytes");

    Accepted a;
    const std::string accept = accept_key(k);
    if (accept.empty()) return Response::text("Internal Server Error: SHA-1 unavailable\n", 500);
    if (options.permessage_deflate) {
        for (const Header& h : request.headers()) {
            if (!iequals(h.name, "sec-websocket-extensions")) continue;
            if (auto p = negotiate_deflate(h.value, options.deflate)) {
                a.deflate = *p;
                break;
            }
        }
    }
    // Subprotocols in our order of preference (case-sensitive tokens); the client's list may span
    // repeated headers.
    for (const std::string& ours : options.subprotocols) {
        if (any_header_has_token(request, "sec-websocket-protocol", ours, true)) {
            a.subprotocol = ours;
            break;
        }
    }
    a.accept = accept;
    a.head = handshake_head(a, a.subprotocol);
    return a;
}

std::string handshake_head(const Accepted& a, std::string_view subprotocol, const Fields& extra) {
    std::string head;
    head.reserve(256);
    head.append("HTTP/1.1 101 Switching Protocols\r\nServer: covet\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
    head.append("Sec-WebSocket-Accept: ").append(a.accept).append("\r\n");
    if (!subprotocol.empty()) head.append("Sec-WebSocket-Protocol: ").append(subprotocol).append("\r\n");
    if (a.deflate.enabled) head.append("Sec-WebSocket-Extensions: ").append(a.deflate.response()).append("\r\n");
    for (const Fields::Field f : extra) {
        // The handshake's own fields are ours.
        if (iequals(f.name, "upgrade") || iequals(f.name, "connection") || iequals(f.name, "sec-websocket-accept") ||
            iequals(f.name, "sec-websocket-extensions") || iequals(f.name, "sec-websocket-protocol") ||
            iequals(f.name, "server") || iequals(f.name, "content-length") || iequals(f.name, "transfer-encoding"))
            continue;
        head.append(f.name).append(": ").append(f.value).append("\r\n");
    }
    head.append("\r\n");
    return head;
}

}  // namespace covet::ws
