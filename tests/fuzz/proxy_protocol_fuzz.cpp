// The PROXY protocol parser (include/covet/net/proxy_protocol.hpp): the first bytes of a connection from a
// trusted load balancer, parsed before TLS or HTTP. Input: those bytes.
// Properties: no crash or sanitizer report; a complete header consumes at most the input and the format's bound,
// is version 1 or 2, and names a client address unless it is a LOCAL/UNKNOWN one; the same header followed by
// more bytes parses the same way (nothing after the header is read); an incomplete input stays within the bound
// and a longer prefix of it never turns invalid into complete with fewer bytes.
#include <cstdint>
#include <span>
#include <vector>

#include "covet/net/proxy_protocol.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace pp = covet::net::proxy_protocol;
    using covet_fuzz::check;
    const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);
    const pp::Result r = pp::parse(input);
    switch (r.status) {
        case pp::Status::complete: {
            check(r.consumed > 0 && r.consumed <= size, "a header longer than the input");
            check(r.version == 1 || r.version == 2, "a complete header without a version");
            check(r.consumed <= (r.version == 1 ? pp::max_v1_bytes : pp::max_v2_bytes), "a header past its bound");
            check(r.local || !r.address_text().empty(), "a proxied header without a client address");
            std::vector<std::byte> longer(input.begin(), input.begin() + static_cast<std::ptrdiff_t>(r.consumed));
            longer.insert(longer.end(), {std::byte{'G'}, std::byte{'E'}, std::byte{'T'}, std::byte{' '}});
            const pp::Result again = pp::parse(longer);
            check(again.status == pp::Status::complete && again.consumed == r.consumed && again.port == r.port &&
                      again.local == r.local && again.address_text() == r.address_text(),
                  "the bytes after a header changed how it parsed");
            break;
        }
        case pp::Status::incomplete:
            check(size < pp::max_v2_bytes, "an input past every bound still incomplete");
            break;
        case pp::Status::invalid: check(r.error != nullptr && r.error[0] != '\0', "a refusal without a reason"); break;
    }
    return 0;
}
