// HTTP/1.1 from the first byte: the session (src/http1/session.cpp) over the llhttp-based request reader,
// started the way a plain TCP connection is (app::ProtocolSwitch: HTTP/1.1, HTTP/2 with prior knowledge,
// Upgrade: h2c), with small limits so that every refusal (413, 414, 431, 400, 501, 505) is within reach.
// Input: one byte choosing how reads are split, then the bytes a client sends.
// Properties: no crash, leak or sanitizer report; whatever comes back starts with a status line (HTTP/1.1
// or, after a switch, an HTTP/2 SETTINGS frame); nothing is written after the connection was closed.
#include <cstdint>

#include "covet/app/protocol_switch.hpp"
#include "covet/http2/protocol.hpp"
#include "fuzz_support.hpp"

namespace {

covet::net::ServerConfig small_limits() {
    covet::net::ServerConfig c;
    c.limits.max_header_bytes = 2048;
    c.limits.max_url_bytes = 512;
    c.limits.max_headers = 16;
    c.limits.max_body_bytes = 4096;
    c.limits.stream_body_threshold = 1024;
    c.limits.max_buffered_input = 8192;
    return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    covet_fuzz::Input in(data, size);
    covet_fuzz::Splitter split(in.byte());
    covet_test::FakeDispatcher dispatcher;
    covet::app::ProtocolSwitch switcher(dispatcher);
    covet_fuzz::ConnectionHarness h(small_limits());
    h.conn.set_protocol(switcher.connection_protocol(h.conn, h.driver));
    h.feed(in.rest(), split);
    h.finish();
    if (!h.out.empty()) {
        const std::string_view out = h.out;
        const bool http1 = out.starts_with("HTTP/1.1 ");
        const bool http2 = out.size() >= 9 && out[3] == 0x04;  // a SETTINGS frame first (prior knowledge)
        covet_fuzz::check(http1 || http2, "the server's first bytes are neither a status line nor SETTINGS");
    }
    return 0;
}
