// HPACK: header blocks decoded by nghttp2's inflater and handed, field by field, to the project's header
// handling (src/http2/protocol.cpp: pseudo-header rules, name/value validation, the header-list limit, cookie
// crumbs joined, :authority as host). Input: blocks, each a 2-byte big-endian length then that many bytes;
// each is sent as a complete request's HEADERS frame on the next stream of one connection, so the dynamic
// table carries over from block to block as it does for a real client.
// Properties: no crash, leak or sanitizer report; the server's first frame is its SETTINGS.
#include <cstdint>

#include "covet/http2/protocol.hpp"
#include "fuzz_support.hpp"

namespace {

std::string frame(std::uint8_t type, std::uint8_t flags, std::uint32_t stream, std::string_view payload) {
    const auto len = static_cast<std::uint32_t>(payload.size());
    std::string f{static_cast<char>(len >> 16),    static_cast<char>(len >> 8),    static_cast<char>(len),
                  static_cast<char>(type),         static_cast<char>(flags),       static_cast<char>(stream >> 24),
                  static_cast<char>(stream >> 16), static_cast<char>(stream >> 8), static_cast<char>(stream)};
    f.append(payload);
    return f;
}

constexpr std::uint8_t headers_type = 0x1, end_stream = 0x1, end_headers = 0x4;
constexpr std::size_t max_block = 16 * 1024;  // the default SETTINGS_MAX_FRAME_SIZE

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    covet_fuzz::Input in(data, size);
    std::string wire(covet::http2::client_preface);
    wire += frame(0x4, 0, 0, {});  // empty SETTINGS
    std::uint32_t stream = 1;
    while (!in.empty() && stream < 200) {
        const std::string_view block = in.take(std::min<std::size_t>(in.u16(), max_block));
        wire += frame(headers_type, end_stream | end_headers, stream, block);
        stream += 2;
    }
    covet::net::ServerConfig config;
    config.limits.max_headers = 32;
    config.http2_limits.max_header_list_bytes = 4096;
    covet_test::FakeDispatcher dispatcher;
    covet_fuzz::ConnectionHarness h(std::move(config));
    h.conn.set_protocol(covet::http2::make_protocol(h.conn, h.driver, dispatcher));
    covet_fuzz::Splitter whole(0);
    h.feed(wire, whole);
    h.finish();
    covet_fuzz::check(h.out.size() >= 9 && h.out[3] == 0x04, "the server did not start with SETTINGS");
    return 0;
}
