// permessage-deflate: negotiation (RFC 7692 §7.1) and compression against zlib used directly.
#include "covet/ws/deflate.hpp"

#include <gtest/gtest.h>

#include "ws_harness.hpp"

namespace ws_test {
namespace {

using ws::DeflateOptions;
using ws::DeflateParams;
using ws::negotiate_deflate;

TEST(WsDeflateNegotiation, PlainOffer) {
    auto p = negotiate_deflate("permessage-deflate", {});
    ASSERT_TRUE(p);
    EXPECT_TRUE(p->enabled);
    EXPECT_FALSE(p->server_no_context_takeover);
    EXPECT_FALSE(p->client_no_context_takeover);
    EXPECT_EQ(p->server_max_window_bits, 15);
    EXPECT_EQ(p->response(), "permessage-deflate");
}

TEST(WsDeflateNegotiation, ParametersAreHonoured) {
    auto p = negotiate_deflate(
        "permessage-deflate; client_max_window_bits; server_no_context_takeover; server_max_window_bits=10", {});
    ASSERT_TRUE(p);
    EXPECT_TRUE(p->server_no_context_takeover);
    EXPECT_EQ(p->server_max_window_bits, 10);
    EXPECT_EQ(p->response(), "permessage-deflate; server_no_context_takeover; server_max_window_bits=10");

    auto q = negotiate_deflate("PerMessage-Deflate ;client_no_context_takeover; server_max_window_bits=\"12\"", {});
    ASSERT_TRUE(q);
    EXPECT_TRUE(q->client_no_context_takeover);
    EXPECT_EQ(q->server_max_window_bits, 12);
    EXPECT_EQ(q->response(), "permessage-deflate; client_no_context_takeover; server_max_window_bits=12");
}

TEST(WsDeflateNegotiation, ServerPolicyIsAdded) {
    DeflateOptions o;
    o.server_no_context_takeover = true;
    o.client_no_context_takeover = true;
    o.server_max_window_bits = 11;
    auto p = negotiate_deflate("permessage-deflate; server_max_window_bits=13", o);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->response(),
              "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11");
}

TEST(WsDeflateNegotiation, BadOffersAreDeclined) {
    for (const char* offer : {
             "permessage-deflate; server_max_window_bits",  // value required
             "permessage-deflate; server_max_window_bits=16",
             "permessage-deflate; server_max_window_bits=7",
             "permessage-deflate; server_max_window_bits=010",
             "permessage-deflate; server_max_window_bits=8",  // zlib cannot do 256-byte windows
             "permessage-deflate; client_max_window_bits=20",
             "permessage-deflate; server_no_context_takeover=1",
             "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
             "permessage-deflate; unknown_param",
             "permessage-deflate;",
             "x-webkit-deflate-frame",
         })
        EXPECT_FALSE(negotiate_deflate(offer, {})) << offer;
}

TEST(WsDeflateNegotiation, FallsBackToTheNextOffer) {
    auto p = negotiate_deflate(
        "permessage-deflate; server_max_window_bits=8, permessage-deflate; client_no_context_takeover", {});
    ASSERT_TRUE(p);
    EXPECT_TRUE(p->client_no_context_takeover);
    EXPECT_EQ(p->server_max_window_bits, 15);
}

std::string repeat(std::string_view s, int n) {
    std::string r;
    for (int i = 0; i < n; ++i) r += s;
    return r;
}

TEST(WsDeflate, ServerToClientWithContextTakeover) {
    DeflateParams p;
    p.enabled = true;
    ws::Deflater d(p, {});
    ZClient client;
    const std::string m = repeat("hello websocket ", 100);
    std::string first, second;
    ASSERT_TRUE(d.compress(m, first));
    ASSERT_TRUE(d.compress(m, second));
    EXPECT_LT(first.size(), m.size() / 10);
    EXPECT_LT(second.size(), first.size()) << "the second message refers back to the first";
    EXPECT_EQ(client.decompress(first), m);
    EXPECT_EQ(client.decompress(second), m);
}

// An empty message is one 0x00 octet (RFC 7692 §7.2.3.6), also right after another message, where zlib has
// nothing left to flush: zero bytes there made the client's appended tail swallow the next message (found by
// tests/fuzz/ws_deflate_fuzz.cpp; its input is the seed tests/fuzz/corpus/ws_deflate/regression_empty_message).
TEST(WsDeflate, EmptyMessagesBetweenOthersInflate) {
    for (bool reset : {false, true}) {
        DeflateParams p;
        p.enabled = true;
        p.server_no_context_takeover = reset;
        ws::Deflater d(p, {});
        ZClient client(reset);
        for (const std::string m : {"", "first message", "", "", "after empty ones", ""}) {
            std::string out;
            ASSERT_TRUE(d.compress(m, out));
            EXPECT_FALSE(out.empty());
            EXPECT_EQ(client.decompress(out), m) << "reset " << reset;
        }
    }
}

TEST(WsDeflate, ServerToClientWithoutContextTakeover) {
    DeflateParams p;
    p.enabled = true;
    p.server_no_context_takeover = true;
    ws::Deflater d(p, {});
    const std::string m = repeat("abcdefgh", 200);
    std::string first, second;
    ASSERT_TRUE(d.compress(m, first));
    ASSERT_TRUE(d.compress(m, second));
    EXPECT_EQ(first, second) << "every message starts from an empty window";
    ZClient fresh(true);
    EXPECT_EQ(fresh.decompress(second), m);
}

TEST(WsDeflate, ClientToServerWithAndWithoutContextTakeover) {
    for (bool reset : {false, true}) {
        DeflateParams p;
        p.enabled = true;
        p.client_no_context_takeover = reset;
        ws::Inflater inflater(p);
        ZClient client(reset);
        for (int i = 0; i < 3; ++i) {
            const std::string m = repeat("message " + std::to_string(i) + " ", 50);
            const std::string c = client.compress(m);
            std::string out;
            // Frame-sized pieces, as a fragmented message arrives.
            const std::size_t half = c.size() / 2;
            ASSERT_EQ(inflater.feed(std::string_view(c).substr(0, half), out, 1 << 20), ws::Inflater::Status::ok);
            ASSERT_EQ(inflater.feed(std::string_view(c).substr(half), out, 1 << 20), ws::Inflater::Status::ok);
            ASSERT_EQ(inflater.finish(out, 1 << 20), ws::Inflater::Status::ok);
            EXPECT_EQ(out, m) << "reset=" << reset << " i=" << i;
        }
    }
}

TEST(WsDeflate, BombStopsAtTheLimitWithoutInflatingEverything) {
    ZClient client;
    const std::string zeros(10 * 1024 * 1024, '\0');
    const std::string bomb = client.compress(zeros);
    EXPECT_LT(bomb.size(), 20 * 1024u);
    DeflateParams p;
    p.enabled = true;
    ws::Inflater inflater(p);
    std::string out;
    const std::size_t limit = 1024 * 1024;
    EXPECT_EQ(inflater.feed(bomb, out, limit), ws::Inflater::Status::too_big);
    EXPECT_LE(out.size(), limit + 1);
    EXPECT_LT(out.capacity(), 3 * limit) << "output grew in bounded steps, not to 10 MB";
}

TEST(WsDeflate, CorruptInputIsReported) {
    DeflateParams p;
    p.enabled = true;
    ws::Inflater inflater(p);
    std::string out;
    EXPECT_EQ(inflater.feed(std::string("\xff\xff\xff\xff\xff", 5), out, 1 << 20), ws::Inflater::Status::corrupt);
}

}  // namespace
}  // namespace ws_test
