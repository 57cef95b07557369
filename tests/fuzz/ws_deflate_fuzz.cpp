// permessage-deflate (RFC 7692) on its own: the offer negotiation (negotiate_deflate) on a fuzzed
// Sec-WebSocket-Extensions value, the bounded Inflater fed arbitrary compressed frames, and a round trip
// through the server's Deflater and an Inflater of the same parameters. Input: one byte choosing the
// parameters, one the output limit, then messages, each a 2-byte length, a flag byte (bit 0: last frame of
// the message) and the bytes; the whole rest is also tried as an extensions header.
// Properties: no crash, leak or sanitizer report; the inflater never returns more than its limit (one byte
// over when it says too_big); a
// compressed message inflates back to itself.
#include <cstdint>
#include <string>

#include "covet/ws/deflate.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace ws = covet::ws;
    using covet_fuzz::check;
    covet_fuzz::Input in(data, size);
    const std::uint8_t knobs = in.byte();
    const std::size_t limit = 16 + std::size_t{in.byte()} * 64;

    ws::DeflateOptions options;
    options.server_no_context_takeover = (knobs & 4) != 0;
    options.client_no_context_takeover = (knobs & 8) != 0;
    options.server_max_window_bits = 9 + (knobs >> 4) % 7;
    (void)ws::negotiate_deflate(in.rest(), options);

    ws::DeflateParams params;
    params.enabled = true;
    params.client_no_context_takeover = params.server_no_context_takeover = (knobs & 1) != 0;
    params.client_max_window_bits = params.server_max_window_bits = 9 + (knobs >> 4) % 7;
    ws::Inflater inflater(params);
    ws::Deflater deflater(params, options);
    ws::Inflater mirror(params);  // the client's view of what the deflater sends
    std::string out, compressed, back;
    bool corrupt = false;
    while (!in.empty()) {
        const std::string_view message = in.take(in.u16());
        const bool last = (in.byte() & 1) != 0;
        if (!corrupt) {
            ws::Inflater::Status st = inflater.feed(message, out, limit);
            if (st == ws::Inflater::Status::ok && last) st = inflater.finish(out, limit);
            // It stops one byte over the limit (enough to know the message is too big), never further.
            check(out.size() <= (st == ws::Inflater::Status::ok ? limit : limit + 1),
                  "the inflater went past its limit");
            if (st != ws::Inflater::Status::ok) corrupt = true;  // the connection would be failed here
            if (last) out.clear();
        }
        compressed.clear();
        back.clear();
        check(deflater.compress(message, compressed), "the deflater failed");
        check(mirror.feed(compressed, back, message.size() + 1) == ws::Inflater::Status::ok &&
                  mirror.finish(back, message.size() + 1) == ws::Inflater::Status::ok,
              "the deflater's output does not inflate");
        check(back == message, "a compressed message did not inflate back to itself");
    }
    return 0;
}
