// WebSocket after the upgrade: the protocol handler (src/ws/protocol.cpp) with its frame parser
// (src/ws/frame.cpp), unmasking, fragmentation, control frames, the closing handshake, UTF-8 checks and,
// when negotiated, permessage-deflate (src/ws/deflate.cpp) both ways (messages are echoed back, so the
// server's compressor runs too). Input: one byte choosing how reads are split, one choosing the options
// (deflate on/off, context takeover, window bits, a small message limit), then the client's bytes.
// Properties: no crash, leak or sanitizer report; a server frame is never masked.
#include <cstdint>
#include <memory>

#include "covet/ws/protocol.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace ws = covet::ws;
    covet_fuzz::Input in(data, size);
    covet_fuzz::Splitter split(in.byte());
    const std::uint8_t knobs = in.byte();

    ws::Options options;
    options.max_message_bytes = (knobs & 1) ? 100 : 64 * 1024;
    options.max_send_buffer = 16 * 1024;
    options.deflate.min_compress_bytes = 8;
    ws::Accepted accepted;
    accepted.deflate.enabled = (knobs & 2) != 0;
    accepted.deflate.client_no_context_takeover = (knobs & 4) != 0;
    accepted.deflate.server_no_context_takeover = (knobs & 8) != 0;
    accepted.deflate.client_max_window_bits = 9 + (knobs >> 4) % 7;
    accepted.deflate.server_max_window_bits = 9 + (knobs >> 4) % 7;

    auto handlers = std::make_shared<ws::Handlers>();
    handlers->on_message = [](ws::WebSocket s, std::string_view d, bool binary) { s.send(d, binary); };
    covet_fuzz::ConnectionHarness h(covet::net::ServerConfig{});
    h.conn.switch_protocol(ws::make_protocol(h.conn, h.driver, handlers, std::move(options), accepted, "/ws"));
    h.conn.receive(std::span<const char>());  // the first on_data opens it, as after a real switch
    h.feed(in.rest(), split);
    h.finish();
    if (h.out.size() >= 2)
        covet_fuzz::check((static_cast<unsigned char>(h.out[1]) & 0x80) == 0, "a masked server frame");
    return 0;
}
