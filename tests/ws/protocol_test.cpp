// The WebSocket protocol handler driven without sockets: frames in (split anywhere), messages out,
// the closing handshake, limits, timeouts, backpressure and permessage-deflate end to end.
#include "covet/ws/protocol.hpp"

#include <gtest/gtest.h>

#include <random>

#include "../support/drain.hpp"
#include "ws_harness.hpp"

namespace ws_test {
namespace {

ws::Options small(std::size_t max_message) {
    ws::Options o;
    o.max_message_bytes = max_message;
    return o;
}

// The connection was failed with `code`: a close frame with it, on_close with it, the socket closing.
void expect_failed(Client& c, std::uint16_t code) {
    const auto frames = c.frames();
    ASSERT_FALSE(frames.empty());
    EXPECT_EQ(frames.back().opcode, Opcode::close);
    EXPECT_EQ(frames.back().close_code(), code);
    ASSERT_EQ(c.closes.size(), 1u);
    EXPECT_EQ(c.closes[0].first, code);
    EXPECT_TRUE(c.closing());
}

TEST(WsProtocol, OpensOnceAndEchoes) {
    FakeWorker w;
    Client c(w);
    EXPECT_EQ(c.opens, 1);
    EXPECT_TRUE(c.socket.is_open());
    EXPECT_EQ(c.socket.path(), "/chat");
    c.on_message = [](ws::WebSocket s, std::string_view d, bool binary) { EXPECT_TRUE(s.send(d, binary)); };
    c.feed(client_frame(Opcode::text, "hello") + client_frame(Opcode::binary, std::string("\0\1\2", 3)));
    ASSERT_EQ(c.messages.size(), 2u);
    EXPECT_EQ(c.messages[0].data, "hello");
    EXPECT_FALSE(c.messages[0].binary);
    EXPECT_TRUE(c.messages[1].binary);
    const auto frames = c.frames();
    ASSERT_EQ(frames.size(), 2u);
    EXPECT_EQ(frames[0].opcode, Opcode::text);
    EXPECT_EQ(frames[0].payload, "hello");
    EXPECT_EQ(frames[1].opcode, Opcode::binary);
    EXPECT_EQ(frames[1].payload, std::string("\0\1\2", 3));
    EXPECT_TRUE(c.closes.empty());
    EXPECT_FALSE(c.closing());
}

// A stream of many frame kinds, cut at every byte boundary, gives the same messages and replies.
TEST(WsProtocol, SplitAtEveryByteBoundary) {
    std::string big(300, 'B');
    const std::string stream = client_frame(Opcode::text, "Hel", false) + client_frame(Opcode::ping, "p1") +
                               client_frame(Opcode::continuation, "lo \xE2\x82", false) +
                               client_frame(Opcode::continuation, "\xAC!", true) + client_frame(Opcode::binary, big) +
                               client_frame(Opcode::text, "") +
                               client_frame(Opcode::binary, "x", true, false, true, 64) +
                               client_frame(Opcode::pong, "") + client_frame(Opcode::close, close_payload(1000, "bye"));
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        FakeWorker w;
        Client c(w);
        c.feed(std::string_view(stream).substr(0, cut));
        c.feed(std::string_view(stream).substr(cut));
        ASSERT_EQ(c.messages.size(), 3u + 1) << "cut " << cut;
        EXPECT_EQ(c.messages[0].data, "Hello \xE2\x82\xAC!");
        EXPECT_EQ(c.messages[1].data, big);
        EXPECT_EQ(c.messages[2].data, "");
        EXPECT_EQ(c.messages[3].data, "x");
        const auto frames = c.frames();
        ASSERT_EQ(frames.size(), 2u) << "cut " << cut;
        EXPECT_EQ(frames[0].opcode, Opcode::pong);
        EXPECT_EQ(frames[0].payload, "p1");
        EXPECT_EQ(frames[1].opcode, Opcode::close);
        EXPECT_EQ(frames[1].close_code(), 1000);
        ASSERT_EQ(c.closes.size(), 1u);
        EXPECT_EQ(c.closes[0], std::make_pair(std::uint16_t{1000}, std::string("bye")));
        EXPECT_TRUE(c.closing());
    }
    // And one byte per receive.
    FakeWorker w;
    Client c(w);
    for (char ch : stream) c.feed(std::string_view(&ch, 1));
    EXPECT_EQ(c.messages.size(), 4u);
    EXPECT_EQ(c.closes.size(), 1u);
}

TEST(WsProtocol, FragmentedTextWithInterleavedPing) {
    FakeWorker w;
    Client c(w);
    c.feed(client_frame(Opcode::text, "Hel", false));
    c.feed(client_frame(Opcode::ping, "are you there"));
    auto frames = c.frames();
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].opcode, Opcode::pong);
    EXPECT_EQ(frames[0].payload, "are you there");
    EXPECT_TRUE(c.messages.empty());
    c.feed(client_frame(Opcode::continuation, "lo ", false) + client_frame(Opcode::continuation, "world", true));
    ASSERT_EQ(c.messages.size(), 1u);
    EXPECT_EQ(c.messages[0].data, "Hello world");
}

TEST(WsProtocol, UnmaskedFrameIs1002) {
    FakeWorker w;
    Client c(w);
    c.feed(client_frame(Opcode::text, "hi", true, false, false));
    expect_failed(c, 1002);
    EXPECT_TRUE(c.messages.empty());
    c.feed(client_frame(Opcode::text, "later"));
    EXPECT_TRUE(c.messages.empty()) << "nothing is read after the failure";
}

TEST(WsProtocol, ReservedBitsAre1002) {
    for (std::uint8_t bits : {std::uint8_t{0x40}, std::uint8_t{0x20}, std::uint8_t{0x10}}) {
        FakeWorker w;
        Client c(w);  // no extension negotiated: even RSV1 is reserved
        c.feed(client_frame(Opcode::text, "hi", true, false, true, 0, bits));
        expect_failed(c, 1002);
    }
}

TEST(WsProtocol, ControlFrameRules) {
    {
        FakeWorker w;
        Client c(w);
        c.feed(client_frame(Opcode::ping, "frag", false));
        expect_failed(c, 1002);
    }
    {
        FakeWorker w;
        Client c(w);
        c.feed(client_frame(Opcode::ping, std::string(126, 'x')));
        expect_failed(c, 1002);
    }
    {
        FakeWorker w;
        Client c(w);
        c.feed(client_frame(Opcode::continuation, "orphan"));
        expect_failed(c, 1002);
    }
    {
        FakeWorker w;
        Client c(w);
        c.feed(client_frame(Opcode::text, "a", false) + client_frame(Opcode::text, "b"));
        expect_failed(c, 1002);
    }
}

TEST(WsProtocol, InvalidUtf8AcrossFragmentsIs1007BeforeTheLastFrame) {
    FakeWorker w;
    Client c(w);
    c.feed(client_frame(Opcode::text, "ok \xE2\x82", false));
    EXPECT_TRUE(c.closes.empty()) << "an unfinished code point is fine so far";
    c.feed(client_frame(Opcode::continuation, "\x28 more", false));  // not a continuation byte
    expect_failed(c, 1007);
    EXPECT_TRUE(c.messages.empty());
}

TEST(WsProtocol, TruncatedUtf8AtMessageEndIs1007) {
    FakeWorker w;
    Client c(w);
    c.feed(client_frame(Opcode::text, "ok \xE2\x82", false) + client_frame(Opcode::continuation, "", true));
    expect_failed(c, 1007);
}

TEST(WsProtocol, BinaryIsNotUtf8Checked) {
    FakeWorker w;
    Client c(w);
    c.feed(client_frame(Opcode::binary, "\xFF\xFE"));
    ASSERT_EQ(c.messages.size(), 1u);
    EXPECT_TRUE(c.closes.empty());
}

TEST(WsProtocol, OversizedMessageIs1009) {
    {
        FakeWorker w;
        Client c(w, small(100));
        c.feed(client_frame(Opcode::binary, std::string(100, 'a')));
        EXPECT_EQ(c.messages.size(), 1u) << "exactly the limit is fine";
        c.feed(client_frame(Opcode::binary, std::string(101, 'a')).substr(0, 8));  // the header is enough
        expect_failed(c, 1009);
    }
    {
        FakeWorker w;
        Client c(w, small(100));
        c.feed(client_frame(Opcode::text, std::string(60, 'a'), false));
        c.feed(client_frame(Opcode::continuation, std::string(41, 'a'), true));
        expect_failed(c, 1009);
        EXPECT_TRUE(c.messages.empty());
    }
}

struct CloseCase {
    std::uint16_t sent;
    std::uint16_t expected;  // what the server answers with
};

class WsCloseCodes : public ::testing::TestWithParam<CloseCase> {};

TEST_P(WsCloseCodes, EchoedOrRefused) {
    FakeWorker w;
    Client c(w);
    c.feed(client_frame(Opcode::close, close_payload(GetParam().sent, "why")));
    const auto frames = c.frames();
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].close_code(), GetParam().expected);
    ASSERT_EQ(c.closes.size(), 1u);
    EXPECT_EQ(c.closes[0].first, GetParam().expected);
    EXPECT_TRUE(c.closing());
}

INSTANTIATE_TEST_SUITE_P(Codes, WsCloseCodes,
                         ::testing::Values(CloseCase{1000, 1000}, CloseCase{1001, 1001}, CloseCase{1003, 1003},
                                           CloseCase{1007, 1007}, CloseCase{1011, 1011}, CloseCase{1012, 1012},
                                           CloseCase{3000, 3000}, CloseCase{4999, 4999}, CloseCase{0, 1002},
                                           CloseCase{999, 1002}, CloseCase{1004, 1002}, CloseCase{1005, 1002},
                                           CloseCase{1006, 1002}, CloseCase{1015, 1002}, CloseCase{1016, 1002},
                                           CloseCase{2999, 1002}, CloseCase{5000, 1002}));

TEST(WsProtocol, CloseFramePayloadRules) {
    {
        FakeWorker w;
        Client c(w);
        c.feed(client_frame(Opcode::close, ""));
        const auto frames = c.frames();
        ASSERT_EQ(frames.size(), 1u);
        EXPECT_EQ(frames[0].payload, "") << "no code in, no code out";
        ASSERT_EQ(c.closes.size(), 1u);
        EXPECT_EQ(c.closes[0].first, 1005);
    }
    {
        FakeWorker w;
        Client c(w);
        c.feed(client_frame(Opcode::close, "\x03"));
        expect_failed(c, 1002);
    }
    {
        FakeWorker w;
        Client c(w);
        c.feed(client_frame(Opcode::close, close_payload(1000, "\xC0\xAF")));
        expect_failed(c, 1007);
    }
}

TEST(WsProtocol, ServerInitiatedCloseWaitsForTheReply) {
    FakeWorker w;
    Client c(w);
    c.socket.close(4000, "done");
    EXPECT_FALSE(c.socket.is_open());
    EXPECT_FALSE(c.socket.send_text("too late"));
    auto frames = c.frames();
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].close_code(), 4000);
    EXPECT_EQ(frames[0].payload.substr(2), "done");
    EXPECT_FALSE(c.closing()) << "waits for the client's close";
    c.feed(client_frame(Opcode::text, "in flight"));
    EXPECT_TRUE(c.messages.empty()) << "data after our close is dropped";
    c.feed(client_frame(Opcode::close, close_payload(4000)));
    EXPECT_TRUE(c.frames().empty()) << "no second close frame";
    ASSERT_EQ(c.closes.size(), 1u);
    EXPECT_EQ(c.closes[0].first, 4000);
    EXPECT_TRUE(c.closing());
}

TEST(WsProtocol, CloseTimeout) {
    FakeWorker w;
    ws::Options o;
    o.close_timeout = 5s;
    Client c(w, o);
    c.socket.close();
    c.tick_after(4s);
    EXPECT_TRUE(c.closes.empty());
    c.tick_after(2s);
    ASSERT_EQ(c.closes.size(), 1u);
    EXPECT_EQ(c.closes[0].first, 1006);
    EXPECT_TRUE(w.is_closed(1));
}

TEST(WsProtocol, InvalidAppCloseCodeBecomes1000) {
    FakeWorker w;
    Client c(w);
    c.socket.close(1005);
    const auto frames = c.frames();
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].close_code(), 1000);
}

TEST(WsProtocol, PeerEofIs1006) {
    FakeWorker w;
    Client c(w);
    c.conn.peer_closed();
    ASSERT_EQ(c.closes.size(), 1u);
    EXPECT_EQ(c.closes[0].first, 1006);
    EXPECT_FALSE(c.socket.is_open());
}

TEST(WsProtocol, ShutdownSendsGoingAway) {
    FakeWorker w;
    Client c(w);
    c.conn.shutdown();
    const auto frames = c.frames();
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].close_code(), 1001);
    c.feed(client_frame(Opcode::close, close_payload(1001)));
    ASSERT_EQ(c.closes.size(), 1u);
    EXPECT_TRUE(c.closing());
}

TEST(WsProtocol, IdleTimeoutPingsThenCloses) {
    FakeWorker w;
    ws::Options o;
    o.idle_timeout = 60s;
    o.ping_interval = 20s;
    Client c(w, o);
    c.tick_after(19s);
    EXPECT_TRUE(c.frames().empty());
    c.tick_after(2s);  // 21 s quiet
    auto frames = c.frames();
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].opcode, Opcode::ping);
    c.tick_after(1s);
    EXPECT_TRUE(c.frames().empty()) << "one ping per interval";
    c.feed(client_frame(Opcode::pong, ""));  // alive: the quiet period restarts
    c.tick_after(50s);
    EXPECT_TRUE(c.closes.empty());
    frames = c.frames();
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].opcode, Opcode::ping);
    c.tick_after(11s);  // 61 s without a byte
    expect_failed(c, 1001);
}

TEST(WsProtocol, BackpressureRefusesAndDrains) {
    FakeWorker w;
    ws::Options o;
    o.max_send_buffer = 1000;
    o.permessage_deflate = false;
    Client c(w, o);
    const std::string chunk(600, 'x');
    EXPECT_TRUE(c.socket.send_binary(chunk));
    EXPECT_FALSE(c.socket.send_binary(chunk)) << "1204 bytes would be buffered";
    EXPECT_TRUE(c.socket.send_binary("small")) << "fits under the limit";
    EXPECT_EQ(c.drains, 0);
    EXPECT_GT(c.socket.buffered_amount(), 600u);
    c.take();  // the socket drained
    c.conn.output_drained();
    EXPECT_EQ(c.drains, 1);
    EXPECT_EQ(c.socket.buffered_amount(), 0u);
    EXPECT_TRUE(c.socket.send_binary(chunk));
    c.take();
    c.conn.output_drained();
    EXPECT_EQ(c.drains, 1) << "on_drain only after a refusal";
    // A message larger than the limit still goes when nothing is buffered.
    EXPECT_TRUE(c.socket.send_binary(std::string(5000, 'y')));
}

TEST(WsProtocol, ReadingPausesWhileTheClientDoesNotRead) {
    FakeWorker w;
    ws::Options o;
    o.max_send_buffer = 1000;
    Client c(w, o);
    std::string pings;
    for (int i = 0; i < 10; ++i) pings += client_frame(Opcode::ping, std::string(125, 'p'));
    c.feed(pings);
    ASSERT_FALSE(w.reading.empty());
    EXPECT_FALSE(w.reading.back());
    c.take();
    c.conn.output_drained();
    EXPECT_TRUE(w.reading.back());
}

TEST(WsProtocol, SendFromAnotherThreadIsPosted) {
    FakeWorker w;
    ws::Options o;
    o.max_send_buffer = 1000;
    Client c(w, o);
    ws::WebSocket s = c.socket;
    w.set_home_thread(false);
    EXPECT_TRUE(s.send_text(std::string(600, 'a')));
    EXPECT_EQ(s.buffered_amount(), 600u);
    EXPECT_FALSE(s.send_text(std::string(600, 'b'))) << "posted bytes count against the limit";
    EXPECT_TRUE(s.ping("x"));
    EXPECT_TRUE(c.take().empty()) << "nothing written off the connection's thread";
    EXPECT_EQ(w.run_posted(), 2);
    const auto frames = c.frames();
    ASSERT_EQ(frames.size(), 2u);
    EXPECT_EQ(frames[0].payload, std::string(600, 'a'));
    EXPECT_EQ(frames[1].opcode, Opcode::ping);
    w.set_home_thread(true);
}

TEST(WsProtocol, HandlerExceptionIs1011) {
    FakeWorker w;
    Client c(w);
    c.on_message = [](ws::WebSocket, std::string_view, bool) { throw std::runtime_error("boom"); };
    c.feed(client_frame(Opcode::text, "hi"));
    expect_failed(c, 1011);
}

TEST(WsProtocol, SteadyStateReusesTheMessageBuffer) {
    FakeWorker w;
    Client c(w);
    const char* first = nullptr;
    bool same = true;
    int n = 0;
    auto h = std::const_pointer_cast<ws::Handlers>(c.handlers);
    h->on_message = [&](ws::WebSocket, std::string_view d, bool) {
        if (!first)
            first = d.data();
        else
            same = same && d.data() == first;
        ++n;
    };
    c.feed(client_frame(Opcode::text, std::string(1000, 'a')));  // sets the capacity
    for (int i = 0; i < 20; ++i)
        c.feed(client_frame(Opcode::text, std::string(static_cast<std::size_t>(10 + i * 40), 'b')));
    EXPECT_EQ(n, 21);
    EXPECT_TRUE(same);
}

// The HTTP/1.1 side's one call: 101 head first, then the handler, which gets the bytes after the request
// and whose on_open handle already works (it carries the new protocol epoch).
TEST(WsProtocol, SwitchToWebsocketQueuesTheHeadAndFeedsTheRest) {
    FakeWorker w;
    net::Connection conn(w, -1, net::ConnectionId{7, 1}, "127.0.0.1", 40000);
    w.connections.push_back(&conn);
    auto h = std::make_shared<ws::Handlers>();
    std::vector<std::string> got;
    h->on_open = [](ws::WebSocket s) { EXPECT_TRUE(s.send_text("welcome")); };
    h->on_message = [&](ws::WebSocket, std::string_view d, bool) { got.emplace_back(d); };
    ws::Accepted a;
    a.head = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
    const std::string rest = client_frame(Opcode::text, "early") + client_frame(Opcode::ping, "p");
    ws::switch_to_websocket(conn, w, h, {}, a, "/room", std::span<const char>(rest.data(), rest.size()));
    std::string out = covet_test::drain(conn.wire_out());
    ASSERT_EQ(out.rfind(a.head, 0), 0u);
    const auto frames = parse_server_frames(std::string_view(out).substr(a.head.size()));
    ASSERT_EQ(frames.size(), 2u);
    EXPECT_EQ(frames[0].payload, "welcome");
    EXPECT_EQ(frames[1].opcode, Opcode::pong);
    EXPECT_EQ(got, std::vector<std::string>{"early"});
    EXPECT_EQ(conn.protocol_epoch(), 1u);
    std::erase(w.connections, &conn);
}

// ---- deferred accept (Options::defer_accept) ----

using covet::Response;

ws::Options deferred() {
    ws::Options o;
    o.defer_accept = true;
    return o;
}

TEST(WsProtocolDeferred, OpensBeforeThe101AndAcceptSendsItThenFrames) {
    FakeWorker w;
    Client c(w, deferred());
    EXPECT_EQ(c.opens, 1);
    EXPECT_EQ(c.take(), "");                    // no 101 yet
    EXPECT_FALSE(c.socket.send_text("early"));  // nothing goes before the accept
    c.feed(client_frame(Opcode::text, "sent too soon"));
    EXPECT_TRUE(c.messages.empty());  // held until the accept
    c.on_message = [](ws::WebSocket s, std::string_view d, bool binary) { EXPECT_TRUE(s.send(d, binary)); };
    covet::Fields extra;
    extra.add("X-Session", "s1").add("Sec-WebSocket-Accept", "forged");  // the handshake's own fields are ours
    c.socket.accept("chat.v2", std::move(extra));
    EXPECT_EQ(c.socket.subprotocol(), "chat.v2");
    const std::string out = c.take();
    const std::size_t end = out.find("\r\n\r\n");
    ASSERT_NE(end, std::string::npos) << out;
    const std::string head = out.substr(0, end + 4);
    EXPECT_TRUE(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n")) << head;
    EXPECT_NE(head.find("\r\nSec-WebSocket-Protocol: chat.v2\r\n"), std::string::npos) << head;
    EXPECT_NE(head.find("\r\nX-Session: s1\r\n"), std::string::npos) << head;
    EXPECT_EQ(head.find("forged"), std::string::npos) << head;
    const auto frames = parse_server_frames(std::string_view(out).substr(end + 4));
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].payload, "sent too soon");  // the held frame, delivered after the accept and echoed
    c.socket.accept();                              // decided already: nothing
    c.socket.deny(Response(403));
    EXPECT_EQ(c.take(), "");
    EXPECT_TRUE(c.socket.send_text("now"));
    EXPECT_EQ(c.frames().size(), 1u);
    EXPECT_FALSE(c.closing());
}

TEST(WsProtocolDeferred, DenySendsAnHttpResponseAndCloses) {
    FakeWorker w;
    Client c(w, deferred());
    Response r = Response::text("go away", 401);
    r.add_header("WWW-Authenticate", "Bearer");
    c.socket.deny(std::move(r));
    const std::string out = c.take();
    EXPECT_TRUE(out.starts_with("HTTP/1.1 401 Unauthorized\r\n")) << out;
    EXPECT_NE(out.find("\r\nWWW-Authenticate: Bearer\r\n"), std::string::npos) << out;
    EXPECT_NE(out.find("\r\nConnection: close\r\n"), std::string::npos) << out;
    EXPECT_TRUE(out.ends_with("\r\n\r\ngo away")) << out;
    ASSERT_EQ(c.closes.size(), 1u);
    EXPECT_EQ(c.closes[0], (std::pair<std::uint16_t, std::string>{1006, "denied"}));
    EXPECT_TRUE(c.closing());
    EXPECT_FALSE(c.socket.is_open());
    c.socket.accept();  // decided already
    EXPECT_EQ(c.take(), "");
}

TEST(WsProtocolDeferred, CloseBeforeAcceptIs403) {
    FakeWorker w;
    Client c(w, deferred());
    c.socket.close(1008, "policy");
    const std::string out = c.take();
    EXPECT_TRUE(out.starts_with("HTTP/1.1 403 Forbidden\r\n")) << out;
    EXPECT_NE(out.find("Content-Length: 0\r\n"), std::string::npos) << out;
    ASSERT_EQ(c.closes.size(), 1u);
    EXPECT_TRUE(c.closing());
}

TEST(WsProtocolDeferred, DecisionsFromAnotherThreadArePosted) {
    FakeWorker w;
    Client c(w, deferred());
    w.set_home_thread(false);
    c.socket.accept();
    EXPECT_EQ(c.take(), "");
    w.run_posted();
    EXPECT_TRUE(c.take().starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    w.set_home_thread(true);
    Client d(w, deferred(), {}, 2);
    w.set_home_thread(false);
    d.socket.deny(Response::text("no", 404));
    w.run_posted();
    w.set_home_thread(true);
    EXPECT_TRUE(d.take().starts_with("HTTP/1.1 404 Not Found\r\n"));
    EXPECT_TRUE(d.closing());
}

TEST(WsProtocolDeferred, UndecidedTimesOutWith503AndShutdownRefuses) {
    FakeWorker w;
    Client c(w, deferred());
    c.tick_after(w.config().timeouts.header - 1ms);
    EXPECT_EQ(c.take(), "");
    c.tick_after(1ms);
    EXPECT_TRUE(c.take().starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    ASSERT_EQ(c.closes.size(), 1u);
    EXPECT_EQ(c.closes[0].second, "accept timeout");
    Client d(w, deferred(), {}, 2);
    d.conn.protocol()->on_shutdown();
    EXPECT_TRUE(d.take().starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
    EXPECT_TRUE(d.closing());
}

TEST(WsProtocolDeferred, PeerGoneBeforeTheDecisionIs1006AndHeldInputIsBounded) {
    FakeWorker w;
    Client c(w, deferred());
    c.feed(std::string(70 * 1024, 'x'));  // a client that does not wait for the 101: reading pauses
    ASSERT_FALSE(w.reading.empty());
    EXPECT_FALSE(w.reading.back());
    c.conn.protocol()->on_peer_closed();
    ASSERT_EQ(c.closes.size(), 1u);
    EXPECT_EQ(c.closes[0].first, 1006);
    c.socket.accept();  // too late: nothing
    EXPECT_EQ(c.take(), "");
}

// ---- permessage-deflate end to end ----

ws::DeflateParams deflate_params(bool server_reset, bool client_reset) {
    ws::DeflateParams p;
    p.enabled = true;
    p.server_no_context_takeover = server_reset;
    p.client_no_context_takeover = client_reset;
    return p;
}

TEST(WsProtocolDeflate, RoundTripWithAndWithoutContextTakeover) {
    for (bool reset : {false, true}) {
        FakeWorker w;
        Client c(w, {}, deflate_params(reset, reset));
        c.on_message = [](ws::WebSocket s, std::string_view d, bool binary) { s.send(d, binary); };
        ZClient client(reset);
        for (int i = 0; i < 3; ++i) {
            std::string m;
            for (int k = 0; k < 40; ++k) m += "message number " + std::to_string(i) + "; ";
            const std::string z = client.compress(m);
            // Fragmented: RSV1 on the first frame only.
            c.feed(client_frame(Opcode::text, z.substr(0, z.size() / 2), false, true) +
                   client_frame(Opcode::continuation, z.substr(z.size() / 2), true));
            ASSERT_EQ(c.messages.size(), static_cast<std::size_t>(i + 1)) << "reset=" << reset;
            EXPECT_EQ(c.messages.back().data, m);
            const auto frames = c.frames();
            ASSERT_EQ(frames.size(), 1u);
            EXPECT_TRUE(frames[0].rsv1) << "the echo is compressed";
            EXPECT_LT(frames[0].payload.size(), m.size());
            EXPECT_EQ(client.decompress(frames[0].payload), m);
        }
        EXPECT_TRUE(c.closes.empty());
    }
}

TEST(WsProtocolDeflate, SmallMessagesGoUncompressed) {
    FakeWorker w;
    Client c(w, {}, deflate_params(false, false));
    c.socket.send_text("tiny");
    const auto frames = c.frames();
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_FALSE(frames[0].rsv1);
    EXPECT_EQ(frames[0].payload, "tiny");
}

TEST(WsProtocolDeflate, Rsv1OnContinuationIs1002) {
    FakeWorker w;
    Client c(w, {}, deflate_params(false, false));
    c.feed(client_frame(Opcode::text, "a", false) + client_frame(Opcode::continuation, "b", true, true));
    expect_failed(c, 1002);
}

TEST(WsProtocolDeflate, BombIs1009) {
    FakeWorker w;
    Client c(w, small(1024 * 1024), deflate_params(false, false));
    ZClient client;
    const std::string bomb = client.compress(std::string(10 * 1024 * 1024, '\0'));
    ASSERT_LT(bomb.size(), 20 * 1024u);
    c.feed(client_frame(Opcode::binary, bomb, true, true));
    expect_failed(c, 1009);
    EXPECT_TRUE(c.messages.empty());
}

TEST(WsProtocolDeflate, CorruptDataIs1007) {
    FakeWorker w;
    Client c(w, {}, deflate_params(false, false));
    c.feed(client_frame(Opcode::binary, std::string("\xff\xff\xff\xff", 4), true, true));
    expect_failed(c, 1007);
}

}  // namespace
}  // namespace ws_test

namespace ws_test {
namespace {

// Random messages (text and binary, fragmented, with pings between fragments) cut into random pieces:
// every message arrives whole, in order, and every ping gets its pong.
TEST(WsProtocolRandom, RandomFragmentationAndSplits) {
    std::mt19937 rng(12345);
    for (int run = 0; run < 30; ++run) {
        FakeWorker w;
        Client c(w);
        std::string stream;
        std::vector<std::string> expected;
        int pings = 0;
        for (int m = 0; m < 20; ++m) {
            const bool binary = rng() % 2;
            std::string body(rng() % 3000, '\0');
            for (char& ch : body) ch = binary ? static_cast<char>(rng()) : static_cast<char>('a' + rng() % 26);
            expected.push_back(body);
            const std::size_t pieces = 1 + rng() % 4;
            std::size_t from = 0;
            for (std::size_t p = 0; p < pieces; ++p) {
                const std::size_t to = p + 1 == pieces ? body.size() : from + (body.size() - from) / 2;
                stream += client_frame(p == 0 ? (binary ? Opcode::binary : Opcode::text) : Opcode::continuation,
                                       body.substr(from, to - from), p + 1 == pieces);
                from = to;
                if (rng() % 3 == 0) stream += client_frame(Opcode::ping, std::to_string(pings++));
            }
        }
        for (std::size_t pos = 0; pos < stream.size();) {
            const std::size_t n = std::min<std::size_t>(1 + rng() % 700, stream.size() - pos);
            c.feed(std::string_view(stream).substr(pos, n));
            pos += n;
        }
        ASSERT_EQ(c.messages.size(), expected.size()) << "run " << run;
        for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(c.messages[i].data, expected[i]);
        const auto frames = c.frames();
        ASSERT_EQ(frames.size(), static_cast<std::size_t>(pings));
        for (int i = 0; i < pings; ++i) EXPECT_EQ(frames[static_cast<std::size_t>(i)].payload, std::to_string(i));
        EXPECT_TRUE(c.closes.empty());
    }
}

// Garbage never crashes (ASan/UBSan builds) and always ends in a close frame or in waiting for more.
TEST(WsProtocolRandom, GarbageIsRefusedCleanly) {
    std::mt19937 rng(777);
    for (int run = 0; run < 300; ++run) {
        FakeWorker w;
        ws::DeflateParams p;
        p.enabled = run % 2 == 0;
        Client c(w, small(4096), p);
        std::string junk(rng() % 200, '\0');
        for (char& ch : junk) ch = static_cast<char>(rng());
        if (run % 3 == 0 && junk.size() > 1) junk[1] = static_cast<char>(junk[1] | 0x80);  // masked: goes further
        for (std::size_t pos = 0; pos < junk.size();) {
            const std::size_t n = std::min<std::size_t>(1 + rng() % 16, junk.size() - pos);
            c.feed(std::string_view(junk).substr(pos, n));
            pos += n;
        }
        c.conn.peer_closed();
        ASSERT_EQ(c.closes.size(), 1u);
        const std::uint16_t code = c.closes[0].first;
        EXPECT_TRUE(code == 1002 || code == 1007 || code == 1009 || code == 1006 || ws::valid_close_code(code)) << code;
    }
}

}  // namespace
}  // namespace ws_test
