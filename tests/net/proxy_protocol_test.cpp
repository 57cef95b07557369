// Tests for covet::net::proxy_protocol::parse (PROXY protocol v1 and v2): good headers, every prefix of them
// (incomplete, never invalid), malformed and oversized ones.
#include "covet/net/proxy_protocol.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace pp = covet::net::proxy_protocol;

namespace {

pp::Result parse(std::string_view s) { return pp::parse(std::as_bytes(std::span<const char>(s.data(), s.size()))); }

const std::string v2_sig("\r\n\r\n\0\r\nQUIT\n", 12);

// A v2 header: version/command byte, family/transport byte, then `block` as the address block.
std::string v2(unsigned char ver_cmd, unsigned char fam, const std::string& block) {
    std::string out = v2_sig;
    out += static_cast<char>(ver_cmd);
    out += static_cast<char>(fam);
    out += static_cast<char>(block.size() >> 8);
    out += static_cast<char>(block.size() & 0xff);
    return out + block;
}

std::string ipv4_block() {  // 192.0.2.10:51234 -> 10.0.0.1:443
    return std::string("\xc0\x00\x02\x0a\x0a\x00\x00\x01\xc8\x22\x01\xbb", 12);
}

}  // namespace

TEST(ProxyProtocolV1, Tcp4) {
    const std::string h = "PROXY TCP4 192.0.2.10 10.0.0.1 51234 443\r\n";
    const pp::Result r = parse(h + "GET / HTTP/1.1\r\n");
    ASSERT_EQ(r.status, pp::Status::complete) << r.error;
    EXPECT_EQ(r.version, 1);
    EXPECT_EQ(r.consumed, h.size());
    EXPECT_FALSE(r.local);
    EXPECT_EQ(r.address_text(), "192.0.2.10");
    EXPECT_EQ(r.port, 51234);
}

TEST(ProxyProtocolV1, Tcp6IsCanonicalised) {
    const pp::Result r = parse("PROXY TCP6 2001:DB8:0:0::1 ::1 1 65535\r\n");
    ASSERT_EQ(r.status, pp::Status::complete) << r.error;
    EXPECT_EQ(r.address_text(), "2001:db8::1");
    EXPECT_EQ(r.port, 1);
}

TEST(ProxyProtocolV1, UnknownKeepsTheConnectionsAddress) {
    const pp::Result r = parse("PROXY UNKNOWN ffff:f...f:ffff 1 2\r\nrest");
    ASSERT_EQ(r.status, pp::Status::complete);
    EXPECT_TRUE(r.local);
    EXPECT_EQ(r.consumed, std::string_view("PROXY UNKNOWN ffff:f...f:ffff 1 2\r\n").size());
}

TEST(ProxyProtocolV1, EveryPrefixIsIncomplete) {
    const std::string h = "PROXY TCP4 192.0.2.10 10.0.0.1 51234 443\r\n";
    for (std::size_t n = 0; n < h.size(); ++n) EXPECT_EQ(parse(h.substr(0, n)).status, pp::Status::incomplete) << n;
}

TEST(ProxyProtocolV1, Malformed) {
    for (const char* bad : {
             "PROXY TCP4 192.0.2.10 10.0.0.1 51234\r\n",        // a field missing
             "PROXY TCP4 192.0.2.10 10.0.0.1 51234 443 x\r\n",  // one too many
             "PROXY TCP4 ::1 ::1 1 2\r\n",                      // IPv6 under TCP4
             "PROXY TCP6 192.0.2.10 10.0.0.1 1 2\r\n",          // IPv4 under TCP6
             "PROXY TCP4 192.0.2.10 10.0.0.1 65536 443\r\n",    // port out of range
             "PROXY TCP4 192.0.2.10 10.0.0.1 0443 443\r\n",     // leading zero
             "PROXY TCP4 192.0.2.10 10.0.0.1 -1 443\r\n",       // not a number
             "PROXY UDP4 192.0.2.10 10.0.0.1 1 2\r\n",          // not TCP
             "PROXY TCP4 192.0.2.10 10.0.0.1 1 2\n",            // LF alone
             "PROXY TCP4 192.0.2.10 10.0.0.1 1 2\rX",           // CR alone
             "PROXY TCP4  192.0.2.10 10.0.0.1 1 2\r\n",         // double space
             "PROXY TCP4 192.0.2.10\t10.0.0.1 1 2\r\n",         // a control byte
             "PROXX TCP4 192.0.2.10 10.0.0.1 1 2\r\n",          // not the prefix
             "GET / HTTP/1.1\r\nHost: x\r\n\r\n",               // plain HTTP
             "\x16\x03\x01\x02\x00",                            // a TLS ClientHello
         }) {
        const pp::Result r = parse(bad);
        EXPECT_EQ(r.status, pp::Status::invalid) << bad;
        EXPECT_NE(std::string_view(r.error), "") << bad;
    }
}

TEST(ProxyProtocolV1, LongerThan107BytesIsRefused) {
    const std::string no_crlf = "PROXY TCP6 " + std::string(200, '1');
    EXPECT_EQ(parse(no_crlf.substr(0, 106)).status, pp::Status::incomplete);
    EXPECT_EQ(parse(no_crlf.substr(0, 107)).status, pp::Status::invalid);
    EXPECT_EQ(parse(no_crlf).status, pp::Status::invalid);
    // CRLF as bytes 107 and 108: one byte over.
    const std::string over = "PROXY UNKNOWN " + std::string(107 - 14 - 1, 'a') + "\r\n";
    ASSERT_EQ(over.size(), 108u);
    EXPECT_EQ(parse(over).status, pp::Status::invalid);
    const std::string at = over.substr(0, 105) + "\r\n";  // exactly 107
    EXPECT_EQ(parse(at).status, pp::Status::complete);
}

TEST(ProxyProtocolV2, Ipv4) {
    const std::string h = v2(0x21, 0x11, ipv4_block());
    const pp::Result r = parse(h + "GET /");
    ASSERT_EQ(r.status, pp::Status::complete) << r.error;
    EXPECT_EQ(r.version, 2);
    EXPECT_EQ(r.consumed, 28u);
    EXPECT_EQ(r.address_text(), "192.0.2.10");
    EXPECT_EQ(r.port, 51234);
}

TEST(ProxyProtocolV2, Ipv6WithTlvs) {
    std::string block(36, '\0');
    block[0] = '\x20', block[1] = '\x01', block[2] = '\x0d', block[3] = '\xb8', block[15] = '\x07';
    block[32] = '\x00', block[33] = '\x50';
    block += std::string("\x02\x00\x0bexample.com", 14);  // PP2_TYPE_AUTHORITY
    const pp::Result r = parse(v2(0x21, 0x21, block));
    ASSERT_EQ(r.status, pp::Status::complete) << r.error;
    EXPECT_EQ(r.address_text(), "2001:db8::7");
    EXPECT_EQ(r.port, 80);
    EXPECT_EQ(r.consumed, 16 + block.size());
}

TEST(ProxyProtocolV2, LocalAndUnspecKeepTheConnectionsAddress) {
    EXPECT_TRUE(parse(v2(0x20, 0x00, "")).local);            // LOCAL (a health check)
    EXPECT_TRUE(parse(v2(0x21, 0x00, "")).local);            // PROXY, UNSPEC
    EXPECT_TRUE(parse(v2(0x21, 0x12, ipv4_block())).local);  // UDP over IPv4
    EXPECT_EQ(parse(v2(0x20, 0x11, ipv4_block())).status, pp::Status::complete);
}

TEST(ProxyProtocolV2, EveryPrefixIsIncomplete) {
    const std::string h = v2(0x21, 0x11, ipv4_block());
    for (std::size_t n = 0; n < h.size(); ++n) EXPECT_EQ(parse(h.substr(0, n)).status, pp::Status::incomplete) << n;
}

TEST(ProxyProtocolV2, Malformed) {
    EXPECT_EQ(parse(v2(0x11, 0x11, ipv4_block())).status, pp::Status::invalid);  // version 1 in a v2 header
    EXPECT_EQ(parse(v2(0x22, 0x11, ipv4_block())).status, pp::Status::invalid);  // command 2
    EXPECT_EQ(parse(v2(0x21, 0x11, ipv4_block().substr(0, 11))).status, pp::Status::invalid);  // block too short
    EXPECT_EQ(parse(v2(0x21, 0x21, std::string(35, '\0'))).status, pp::Status::invalid);
    std::string bad_sig = v2(0x21, 0x11, ipv4_block());
    bad_sig[8] = 'X';
    EXPECT_EQ(parse(bad_sig).status, pp::Status::invalid);
}

TEST(ProxyProtocolV2, LengthIsBounded) {
    // A length over the bound is refused from the 16-byte head alone: nothing more is buffered.
    std::string head = v2_sig + std::string("\x21\x11\xff\xff", 4);
    const pp::Result r = parse(head);
    EXPECT_EQ(r.status, pp::Status::invalid);
    EXPECT_NE(std::string_view(r.error).find("longer"), std::string_view::npos);
    const std::string at_bound = v2(0x21, 0x11, ipv4_block() + std::string(pp::max_v2_bytes - 16 - 12, '\0'));
    EXPECT_EQ(parse(at_bound).status, pp::Status::complete);
    const std::string over = v2(0x21, 0x11, ipv4_block() + std::string(pp::max_v2_bytes - 16 - 11, '\0'));
    EXPECT_EQ(parse(over).status, pp::Status::invalid);
}

TEST(ProxyProtocol, EmptyIsIncomplete) { EXPECT_EQ(parse("").status, pp::Status::incomplete); }
