// The per-worker broadcast hub: one frame per subscriber, closed ones skipped and dropped, posting from
// other threads, compression once per configuration.
#include "covet/ws/hub.hpp"

#include <gtest/gtest.h>

#include "ws_harness.hpp"

namespace ws_test {
namespace {

TEST(WsHub, PublishReachesEverySubscriberOnceAndSkipsClosedOnes) {
    FakeWorker w;
    Client a(w, {}, {}, 1), b(w, {}, {}, 2), c(w, {}, {}, 3), outsider(w, {}, {}, 4);
    ws::Hub hub(w);
    hub.subscribe(a.socket, "news");
    hub.subscribe(b.socket, "news");
    hub.subscribe(b.socket, "news");  // twice is once
    hub.subscribe(c.socket, "news");
    hub.subscribe(outsider.socket, "sport");
    EXPECT_EQ(hub.subscribers("news"), 3u);

    c.feed(client_frame(Opcode::close, close_payload(1000)));
    c.take();
    EXPECT_EQ(hub.publish("news", "headline"), 2u);
    for (Client* x : {&a, &b}) {
        const auto frames = x->frames();
        ASSERT_EQ(frames.size(), 1u);
        EXPECT_EQ(frames[0].opcode, Opcode::text);
        EXPECT_EQ(frames[0].payload, "headline");
    }
    EXPECT_TRUE(c.take().empty());
    EXPECT_TRUE(outsider.take().empty());
    EXPECT_EQ(hub.subscribers("news"), 2u) << "the closed connection was dropped";

    hub.unsubscribe(a.socket, "news");
    EXPECT_EQ(hub.publish("news", std::string("\x01\x02", 2), true), 1u);
    EXPECT_TRUE(a.take().empty());
    const auto frames = b.frames();
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].opcode, Opcode::binary);
    EXPECT_EQ(hub.publish("nobody", "x"), 0u);
}

TEST(WsHub, PublishFromAnotherThreadIsPosted) {
    FakeWorker w;
    Client a(w);
    ws::Hub hub(w);
    hub.subscribe(a.socket, "t");
    w.set_home_thread(false);
    EXPECT_EQ(hub.publish("t", "later"), 0u);
    EXPECT_TRUE(a.take().empty());
    EXPECT_EQ(w.run_posted(), 1);
    const auto frames = a.frames();
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].payload, "later");
    w.set_home_thread(true);
}

TEST(WsHub, PostedWorkOutlivingTheHubDoesNothing) {
    FakeWorker w;
    Client a(w);
    {
        ws::Hub hub(w);
        hub.subscribe(a.socket, "t");
        w.set_home_thread(false);
        hub.publish("t", "orphan");
        w.set_home_thread(true);
    }
    EXPECT_EQ(w.run_posted(), 1);
    EXPECT_TRUE(a.take().empty());
}

TEST(WsHub, CompressedOncePerConfigurationAndPerConnectionWithContextTakeover) {
    FakeWorker w;
    ws::DeflateParams reset;
    reset.enabled = true;
    reset.server_no_context_takeover = true;
    ws::DeflateParams takeover;
    takeover.enabled = true;
    Client a(w, {}, reset, 1), b(w, {}, reset, 2), c(w, {}, takeover, 3), plain(w, {}, {}, 4);
    ws::Hub hub(w);
    for (Client* x : {&a, &b, &c, &plain}) hub.subscribe(x->socket, "t");
    std::string m;
    for (int i = 0; i < 50; ++i) m += "broadcast ";
    ZClient ca(true), cc(false);
    for (int round = 0; round < 2; ++round) {
        EXPECT_EQ(hub.publish("t", m), 4u);
        const auto fa = a.frames(), fb = b.frames(), fc = c.frames(), fp = plain.frames();
        ASSERT_EQ(fa.size(), 1u);
        ASSERT_EQ(fb.size(), 1u);
        ASSERT_EQ(fc.size(), 1u);
        ASSERT_EQ(fp.size(), 1u);
        EXPECT_TRUE(fa[0].rsv1);
        EXPECT_EQ(fa[0].payload, fb[0].payload) << "the same configuration, the same bytes";
        EXPECT_EQ(ca.decompress(fa[0].payload), m);
        EXPECT_TRUE(fc[0].rsv1);
        EXPECT_EQ(cc.decompress(fc[0].payload), m) << "round " << round << ": its own stream";
        EXPECT_FALSE(fp[0].rsv1);
        EXPECT_EQ(fp[0].payload, m);
    }
}

TEST(WsHub, ThisWorkerIsPerThread) {
    FakeWorker w;
    Client a(w);
    ws::Hub* h1 = ws::Hub::this_worker(a.socket);
    ASSERT_NE(h1, nullptr);
    EXPECT_EQ(ws::Hub::this_worker(a.socket), h1);
}

}  // namespace
}  // namespace ws_test
