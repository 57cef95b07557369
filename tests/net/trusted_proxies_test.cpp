// Tests for covet::net::TrustedProxies (--forwarded-allow-ips) and covet::http::apply_proxy_headers
// (X-Forwarded-Proto / X-Forwarded-For with uvicorn's meaning).
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <string_view>

#include "covet/http/proxy_headers.hpp"
#include "covet/http/request.hpp"
#include "covet/net/server_config.hpp"
#include "covet/net/trusted_proxies.hpp"

namespace {

using covet::Request;
using covet::net::ProxyHeaders;
using covet::net::TrustedProxies;

std::string refusal(std::string_view list) {
    try {
        TrustedProxies t(list);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}

TEST(TrustedProxies, SingleIpv4Address) {
    const TrustedProxies t("127.0.0.1");
    EXPECT_TRUE(t.contains("127.0.0.1"));
    EXPECT_FALSE(t.contains("127.0.0.2"));
    EXPECT_FALSE(t.contains("10.0.0.1"));
    EXPECT_FALSE(t.contains(""));
    EXPECT_FALSE(t.contains("localhost"));
    EXPECT_FALSE(t.contains("127.0.0.1:80"));
    EXPECT_TRUE(t.contains("::ffff:127.0.0.1"));  // an IPv4 peer on a dual-stack socket
    EXPECT_FALSE(t.contains("::1"));
    EXPECT_EQ(t.text(), "127.0.0.1");
}

TEST(TrustedProxies, Ipv4Networks) {
    const TrustedProxies t(" 10.0.0.0/8 ,192.168.1.0/24");
    EXPECT_TRUE(t.contains("10.255.1.2"));
    EXPECT_TRUE(t.contains("192.168.1.200"));
    EXPECT_FALSE(t.contains("192.168.2.1"));
    EXPECT_FALSE(t.contains("11.0.0.1"));
    EXPECT_FALSE(t.contains("::a00:1"));  // ::10.0.0.1 (IPv4-compatible, not mapped) is another address
    EXPECT_EQ(t.text(), "10.0.0.0/8, 192.168.1.0/24");
    const TrustedProxies odd("172.16.0.0/12");
    EXPECT_TRUE(odd.contains("172.31.255.255"));
    EXPECT_FALSE(odd.contains("172.32.0.0"));
    const TrustedProxies any4("0.0.0.0/0");
    EXPECT_TRUE(any4.contains("8.8.8.8"));
    EXPECT_FALSE(any4.contains("2001:db8::1"));
}

TEST(TrustedProxies, Ipv6AddressesAndNetworks) {
    const TrustedProxies t("::1, fd00::/8, 2001:db8:0:0:0:0:0:7");
    EXPECT_TRUE(t.contains("::1"));
    EXPECT_TRUE(t.contains("0:0:0:0:0:0:0:1"));  // another spelling of the same address
    EXPECT_TRUE(t.contains("fd12:3456::9"));
    EXPECT_TRUE(t.contains("2001:db8::7"));
    EXPECT_FALSE(t.contains("2001:db8::8"));
    EXPECT_FALSE(t.contains("fe80::1"));
    EXPECT_FALSE(t.contains("127.0.0.1"));
    const TrustedProxies odd("2001:db8:80::/41");
    EXPECT_TRUE(odd.contains("2001:db8:ff::1"));
    EXPECT_FALSE(odd.contains("2001:db8:7f::1"));
}

TEST(TrustedProxies, StarTrustsEveryPeer) {
    const TrustedProxies t("*");
    EXPECT_TRUE(t.trusts_all());
    EXPECT_TRUE(t.contains("203.0.113.9"));
    EXPECT_TRUE(t.contains("::1"));
    EXPECT_TRUE(t.contains("not an address"));
}

TEST(TrustedProxies, EmptyTrustsNobody) {
    for (const char* list : {"", " ", ",", " , "}) {
        const TrustedProxies t(list);
        EXPECT_TRUE(t.empty()) << list;
        EXPECT_FALSE(t.contains("127.0.0.1")) << list;
    }
    EXPECT_FALSE(TrustedProxies().contains("127.0.0.1"));
}

TEST(TrustedProxies, BadEntriesAreRefusedByName) {
    EXPECT_NE(refusal("localhost").find("'localhost' is not an IP address"), std::string::npos);
    EXPECT_NE(refusal("127.0.0.1, 10.0.0.1/8").find("'10.0.0.1/8' has host bits set: did you mean 10.0.0.0/8?"),
              std::string::npos);
    EXPECT_NE(refusal("fd00::1/8").find("did you mean fd00::/8?"), std::string::npos);
    EXPECT_NE(refusal("10.0.0.0/33").find("prefix length (0 to 32)"), std::string::npos);
    EXPECT_NE(refusal("::/129").find("prefix length (0 to 128)"), std::string::npos);
    EXPECT_NE(refusal("10.0.0.0/").find("prefix length"), std::string::npos);
    EXPECT_NE(refusal("10.0.0.0/x").find("prefix length"), std::string::npos);
    EXPECT_NE(refusal("example.com/24").find("is not a network"), std::string::npos);
    EXPECT_NE(refusal("1.2.3.4.5").find("'1.2.3.4.5'"), std::string::npos);
    EXPECT_EQ(refusal("10.0.0.0/8"), "");
}

TEST(ProxyHeaders, DefaultsTrustTheLoopbackAddressAsUvicorn) {
    const covet::net::ServerConfig config;
    EXPECT_TRUE(config.proxy_headers.enabled);
    EXPECT_TRUE(config.proxy_headers.trusts("127.0.0.1"));
    EXPECT_FALSE(config.proxy_headers.trusts("10.0.0.1"));
    ProxyHeaders off;
    off.enabled = false;
    EXPECT_FALSE(off.trusts("127.0.0.1"));
}

// ---------------------------------------------------------------- apply_proxy_headers

struct Applied {
    std::string scheme, host;
    std::uint16_t port;
};

Applied apply(std::initializer_list<std::pair<std::string_view, std::string_view>> headers,
              std::string_view trusted = "127.0.0.1", const covet::net::TlsInfo* tls = nullptr) {
    Request r;
    r.set_tls(tls);
    r.set_client("127.0.0.1", 40000);
    for (const auto& [name, value] : headers) r.add_header(name, value);
    covet::http::apply_proxy_headers(r, TrustedProxies(trusted));
    return {std::string(r.scheme()), std::string(r.client_address()), r.client_port()};
}

TEST(ApplyProxyHeaders, NoHeadersLeaveThePeer) {
    const Applied a = apply({{"host", "example.com"}});
    EXPECT_EQ(a.scheme, "http");
    EXPECT_EQ(a.host, "127.0.0.1");
    EXPECT_EQ(a.port, 40000);
}

TEST(ApplyProxyHeaders, ForwardedProtoSetsTheScheme) {
    EXPECT_EQ(apply({{"X-Forwarded-Proto", "https"}}).scheme, "https");
    EXPECT_EQ(apply({{"x-forwarded-proto", " wss "}}).scheme, "wss");
    EXPECT_EQ(apply({{"x-forwarded-proto", "ws"}}).scheme, "ws");
    EXPECT_EQ(apply({{"x-forwarded-proto", "ftp"}}).scheme, "http");    // unknown: ignored
    EXPECT_EQ(apply({{"x-forwarded-proto", "HTTPS"}}).scheme, "http");  // as uvicorn: compared as sent
    EXPECT_EQ(apply({{"x-forwarded-proto", "https, http"}}).scheme, "http");
    // The last X-Forwarded-Proto wins.
    EXPECT_EQ(apply({{"x-forwarded-proto", "http"}, {"x-forwarded-proto", "https"}}).scheme, "https");
    const covet::net::TlsInfo tls{};
    EXPECT_EQ(apply({{"x-forwarded-proto", "http"}}, "127.0.0.1", &tls).scheme, "http");
    EXPECT_EQ(apply({}, "127.0.0.1", &tls).scheme, "https");
}

TEST(ApplyProxyHeaders, ForwardedForTakesTheRightMostUntrustedEntry) {
    Applied a = apply({{"x-forwarded-for", "203.0.113.7"}});
    EXPECT_EQ(a.host, "203.0.113.7");
    EXPECT_EQ(a.port, 0);
    a = apply({{"x-forwarded-for", "198.51.100.1, 203.0.113.7, 10.0.0.2"}}, "127.0.0.1, 10.0.0.0/8");
    EXPECT_EQ(a.host, "203.0.113.7");  // 10.0.0.2 is a trusted proxy: the client is the one before it
    a = apply({{"x-forwarded-for", "10.0.0.3, 10.0.0.2"}}, "127.0.0.1, 10.0.0.0/8");
    EXPECT_EQ(a.host, "10.0.0.3");  // all trusted: the left-most
    a = apply({{"x-forwarded-for", "198.51.100.1, 203.0.113.7"}}, "*");
    EXPECT_EQ(a.host, "198.51.100.1");  // everyone trusted: the left-most
    // Several headers are one list, in order.
    a = apply({{"x-forwarded-for", "198.51.100.1"}, {"X-Forwarded-For", "203.0.113.7, 10.0.0.2"}},
              "127.0.0.1, 10.0.0.0/8");
    EXPECT_EQ(a.host, "203.0.113.7");
    a = apply({{"x-forwarded-for", "198.51.100.1"}, {"x-forwarded-for", "10.0.0.2"}}, "127.0.0.1, 10.0.0.0/8");
    EXPECT_EQ(a.host, "198.51.100.1");
}

TEST(ApplyProxyHeaders, ForwardedForPortsAndIpv6) {
    Applied a = apply({{"x-forwarded-for", "203.0.113.7:5678"}});
    EXPECT_EQ(a.host, "203.0.113.7");
    EXPECT_EQ(a.port, 5678);
    a = apply({{"x-forwarded-for", "[2001:db8::5]:443"}});
    EXPECT_EQ(a.host, "2001:db8::5");
    EXPECT_EQ(a.port, 443);
    a = apply({{"x-forwarded-for", "2001:db8::5"}});
    EXPECT_EQ(a.host, "2001:db8::5");
    EXPECT_EQ(a.port, 0);
    a = apply({{"x-forwarded-for", "[2001:db8::5]"}});
    EXPECT_EQ(a.host, "2001:db8::5");
    a = apply({{"x-forwarded-for", "203.0.113.7:http"}});  // not a port: kept whole
    EXPECT_EQ(a.host, "203.0.113.7:http");
    EXPECT_EQ(a.port, 0);
    a = apply({{"x-forwarded-for", "2001:db8::5, ::1"}}, "::1");
    EXPECT_EQ(a.host, "2001:db8::5");
    a = apply({{"x-forwarded-for", "unknown"}});
    EXPECT_EQ(a.host, "unknown");
}

TEST(ApplyProxyHeaders, AnEmptyChoiceKeepsThePeer) {
    Applied a = apply({{"x-forwarded-for", ""}});
    EXPECT_EQ(a.host, "127.0.0.1");
    EXPECT_EQ(a.port, 40000);
    a = apply({{"x-forwarded-for", "203.0.113.7, "}});  // the right-most entry is empty: chosen, so no change
    EXPECT_EQ(a.host, "127.0.0.1");
}

TEST(ApplyProxyHeaders, AReusedRequestStartsFromTheConnectionsScheme) {
    Request r;
    r.set_client("127.0.0.1", 1);
    r.add_header("x-forwarded-proto", "https");
    covet::http::apply_proxy_headers(r, TrustedProxies("127.0.0.1"));
    EXPECT_EQ(r.scheme(), "https");
    r.reset();
    EXPECT_EQ(r.scheme(), "http");
    r.add_header("x-forwarded-proto", "https");
    covet::http::apply_proxy_headers(r, TrustedProxies("127.0.0.1"));
    r.reset();
    r.add_header("host", "a");
    covet::http::apply_proxy_headers(r, TrustedProxies("127.0.0.1"));
    EXPECT_EQ(r.scheme(), "http");
}

TEST(ApplyProxyHeaders, TheClientFollowsTheHeadBytesWhenTheyMove) {
    std::string head = "x-forwarded-for: 203.0.113.7";
    Request r;
    r.set_client("127.0.0.1", 1);
    r.add_header(std::string_view(head).substr(0, 15), std::string_view(head).substr(17));
    covet::http::apply_proxy_headers(r, TrustedProxies("127.0.0.1"));
    std::string moved = head;
    r.rebase_head(head.data(), head.size(), moved.data());
    head.assign(head.size(), 'x');
    EXPECT_EQ(r.client_address(), "203.0.113.7");
}

// ---------------------------------------------------------------- Forwarded (RFC 7239)

TEST(Forwarded, ForProtoAndQuotedValues) {
    Applied a = apply({{"Forwarded", "for=192.0.2.60;proto=https;by=203.0.113.43"}});
    EXPECT_EQ(a.host, "192.0.2.60");
    EXPECT_EQ(a.port, 0);
    EXPECT_EQ(a.scheme, "https");
    a = apply({{"forwarded", "For=\"192.0.2.60:8080\" ; Proto=HTTPS"}});  // names and proto: any case; OWS
    EXPECT_EQ(a.host, "192.0.2.60");
    EXPECT_EQ(a.port, 8080);
    EXPECT_EQ(a.scheme, "https");
    a = apply({{"forwarded", "for=\"[2001:db8:cafe::17]:4711\""}});
    EXPECT_EQ(a.host, "2001:db8:cafe::17");
    EXPECT_EQ(a.port, 4711);
    a = apply({{"forwarded", "for=\"[2001:db8:cafe::17]\";proto=wss"}});
    EXPECT_EQ(a.host, "2001:db8:cafe::17");
    EXPECT_EQ(a.scheme, "wss");
    a = apply({{"forwarded", "for=\"192.0.2.60:_hidden\""}});  // obfuscated port: none
    EXPECT_EQ(a.host, "192.0.2.60");
    EXPECT_EQ(a.port, 0);
    EXPECT_EQ(apply({{"forwarded", "proto=ftp"}}).scheme, "http");       // unknown scheme: ignored
    EXPECT_EQ(apply({{"forwarded", "proto=https"}}).host, "127.0.0.1");  // no for=: the peer stays
    EXPECT_EQ(apply({{"forwarded", "proto=https"}}).scheme, "https");
}

TEST(Forwarded, ObfuscatedAndUnknownAreNotAddresses) {
    for (const char* v : {"for=unknown", "for=_hidden", "for=_SEVKISEK", "for=\"_x:80\"", "for=example.com",
                          "for=\"2001:db8::1\"",          // IPv6 must be bracketed
                          "for=\"[192.0.2.1]\"",          // brackets are for IPv6
                          "for=\"[2001:db8::1]:99999\"",  // port out of range
                          "for=\"[2001:db8::1\"", "for=\"192.0.2.1\\\"\""}) {
        const Applied a = apply({{"forwarded", v}});
        EXPECT_EQ(a.host, "127.0.0.1") << v;
        EXPECT_EQ(a.port, 40000) << v;
    }
    // An unknown hop stops the walk: nothing left of it is believed.
    EXPECT_EQ(apply({{"forwarded", "for=198.51.100.1, for=unknown"}}).host, "127.0.0.1");
}

TEST(Forwarded, RightMostUntrustedHopAcrossElementsAndFields) {
    Applied a = apply({{"forwarded", "for=198.51.100.1, for=203.0.113.7;proto=https, for=10.0.0.2;proto=http"}},
                      "127.0.0.1, 10.0.0.0/8");
    EXPECT_EQ(a.host, "203.0.113.7");  // 10.0.0.2 is a trusted proxy
    EXPECT_EQ(a.scheme, "https");      // the chosen element's proto
    a = apply({{"forwarded", "for=198.51.100.1"}, {"Forwarded", "for=203.0.113.7, for=10.0.0.2"}},
              "127.0.0.1, 10.0.0.0/8");
    EXPECT_EQ(a.host, "203.0.113.7");
    a = apply({{"forwarded", "for=10.0.0.3;proto=https, for=10.0.0.2"}}, "127.0.0.1, 10.0.0.0/8");
    EXPECT_EQ(a.host, "10.0.0.3");  // all trusted: the left-most
    EXPECT_EQ(a.scheme, "https");
    a = apply({{"forwarded", "for=198.51.100.1, for=203.0.113.7"}}, "*");
    EXPECT_EQ(a.host, "198.51.100.1");
    a = apply({{"forwarded", "for=198.51.100.1,, for=203.0.113.7 ,"}});  // empty elements are skipped
    EXPECT_EQ(a.host, "203.0.113.7");
}

TEST(Forwarded, MalformedElementsAreIgnoredSafely) {
    // A client's garbage to the left of the proxy's element does not hide it.
    Applied a = apply({{"forwarded", "for=\"unterminated, for=203.0.113.7"}});
    EXPECT_EQ(a.host, "127.0.0.1");  // the quote swallows the rest: one malformed element, the peer stays
    a = apply({{"forwarded", "garbage;;=, for=203.0.113.7"}});
    EXPECT_EQ(a.host, "203.0.113.7");
    for (const char* v : {"for", "for=", "=1.2.3.4", "for=1.2.3.4;for=5.6.7.8", "for=1.2.3.4 x", "for=1.2.3.4;",
                          "for=1.2.3.4;proto=https;proto=http", "for=[::1]", "for=1.2.3.4:", "\"", ";", "for=\"\""}) {
        a = apply({{"forwarded", v}});
        EXPECT_EQ(a.host, "127.0.0.1") << v;
        EXPECT_EQ(a.scheme, "http") << v;
    }
    // Many elements: the last 32 are kept, and the right-most untrusted one still wins.
    std::string many;
    for (int i = 0; i < 1000; ++i) many += "for=198.51.100." + std::to_string(i % 250) + ", ";
    many += "for=203.0.113.9";
    EXPECT_EQ(apply({{"forwarded", many}}).host, "203.0.113.9");
}

TEST(Forwarded, XForwardedHeadersTakePrecedence) {
    Applied a = apply({{"forwarded", "for=198.51.100.1;proto=https"}, {"x-forwarded-for", "203.0.113.7"}});
    EXPECT_EQ(a.host, "203.0.113.7");
    EXPECT_EQ(a.scheme, "https");  // X-Forwarded-Proto absent: Forwarded's proto
    a = apply({{"forwarded", "for=198.51.100.1;proto=https"}, {"x-forwarded-proto", "http"}});
    EXPECT_EQ(a.host, "198.51.100.1");  // X-Forwarded-For absent: Forwarded's for
    EXPECT_EQ(a.scheme, "http");
}

}  // namespace
