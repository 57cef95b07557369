// Whether a request is a gRPC call (content-type application/grpc, application/grpc+proto, ...; gRPC-Web is
// answered as plain HTTP). The engine treats such calls apart in two places: a call no route serves is answered
// UNIMPLEMENTED at once (covet::App), and a call's streamed body is not timed by Timeouts::body, body_deadline or
// min_body_rate (the protocols): its client may wait for answers before it sends more, for as long as the call
// lasts, and the call's deadline is the client's (grpc-timeout) and the application's.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "covet/http/request.hpp"

namespace covet::http {

enum class GrpcContent : std::uint8_t { none, grpc, web, web_text };

// What a content-type names: application/grpc, application/grpc-web or application/grpc-web-text, alone or
// followed by "+format" or ";parameters" (as grpc-go reads them; application/grpcx is none of them).
inline GrpcContent grpc_content(std::string_view type) noexcept {
    const auto is = [type](std::string_view base) {
        return type.starts_with(base) &&
               (type.size() == base.size() || type[base.size()] == '+' || type[base.size()] == ';');
    };
    if (is("application/grpc")) return GrpcContent::grpc;  // first, the common case: no base matches another's
    if (is("application/grpc-web")) return GrpcContent::web;
    if (is("application/grpc-web-text")) return GrpcContent::web_text;
    return GrpcContent::none;
}

inline bool is_grpc_call(const Request& request) noexcept {
    return grpc_content(request.header("content-type").value_or("")) == GrpcContent::grpc;
}

// `message` as a grpc-message value: UTF-8 with every byte outside printable ASCII (0x20-0x7E), and '%',
// percent-encoded (the gRPC over HTTP/2 spec).
inline std::string grpc_percent_encode(std::string_view message) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(message.size());
    for (const char ch : message) {
        const auto c = static_cast<unsigned char>(ch);
        if (c >= 0x20 && c <= 0x7E && c != '%') {
            out += ch;
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 0xF];
        }
    }
    return out;
}

}  // namespace covet::http
