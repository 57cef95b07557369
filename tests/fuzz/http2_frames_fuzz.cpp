// HTTP/2 after the client preface: the nghttp2 server session with the project's callbacks
// (src/http2/protocol.cpp: stream assembly, header validation, cookie joining, flow control, the abuse
// limits), fed raw frames. Input: one byte choosing how reads are split, one choosing the limits, then the
// frames (libFuzzer's dictionary tests/fuzz/http2_frames.dict names frame headers).
// Properties: no crash, leak or sanitizer report; the server's first frame is its SETTINGS.
#include <cstdint>

#include "covet/http2/protocol.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    covet_fuzz::Input in(data, size);
    covet_fuzz::Splitter split(in.byte());
    const std::uint8_t knobs = in.byte();
    covet::net::ServerConfig config;
    config.limits.max_headers = 16;
    config.limits.max_body_bytes = (knobs & 1) ? 64 : 4096;
    config.limits.stream_body_threshold = 1024;
    config.http2_limits.max_concurrent_streams = (knobs & 2) ? 2 : 100;
    config.http2_limits.max_header_list_bytes = (knobs & 4) ? 256 : 16 * 1024;
    config.http2_limits.initial_window_size = (knobs & 8) ? 100 : 65535;
    config.http2_limits.max_resets_per_second = 4;
    config.http2_limits.max_continuations = 3;

    covet_test::FakeDispatcher dispatcher;
    covet_fuzz::ConnectionHarness h(std::move(config));
    h.conn.set_protocol(covet::http2::make_protocol(h.conn, h.driver, dispatcher));
    std::string wire(covet::http2::client_preface);
    wire.append(in.rest());
    h.feed(wire, split);
    h.finish();
    covet_fuzz::check(h.out.size() >= 9 && h.out[3] == 0x04, "the server did not start with SETTINGS");
    return 0;
}
