// The opening handshake: validation, Sec-WebSocket-Accept, subprotocol and extension negotiation.
#include "covet/ws/handshake.hpp"

#include <gtest/gtest.h>

#include <variant>

namespace ws_test {
namespace {

namespace ws = covet::ws;
using covet::Request;
using covet::Response;

// A request whose header views point into `storage` (kept alive by the test).
struct Upgrade {
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Host", "example.com"},         {"Upgrade", "websocket"},
        {"Connection", "Upgrade"},       {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
        {"Sec-WebSocket-Version", "13"},
    };
    covet::Method method = covet::Method::get;
    int minor = 1;
    Request request;

    Upgrade& set(std::string_view name, std::string value) {
        for (auto& [n, v] : headers)
            if (covet::iequals(n, name)) {
                v = std::move(value);
                return *this;
            }
        headers.emplace_back(std::string(name), std::move(value));
        return *this;
    }
    Upgrade& drop(std::string_view name) {
        std::erase_if(headers, [&](const auto& h) { return covet::iequals(h.first, name); });
        return *this;
    }
    const Request& build() {
        request.reset();
        request.set_method(method);
        request.set_version(1, minor);
        request.set_target("/chat");
        for (const auto& [n, v] : headers) request.add_header(n, v);
        return request;
    }
};

std::string head_of(const std::variant<ws::Accepted, Response>& r) {
    const auto* a = std::get_if<ws::Accepted>(&r);
    return a ? a->head : "";
}
int status_of(const std::variant<ws::Accepted, Response>& r) {
    const auto* resp = std::get_if<Response>(&r);
    return resp ? resp->status() : 101;
}

// RFC 6455 §1.3's example (the accept value is "...zhZRbK+xOo=", with an R).
TEST(WsHandshake, Rfc6455ExampleKey) {
    EXPECT_EQ(ws::accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WsHandshake, Accepts) {
    Upgrade u;
    const auto r = ws::accept_upgrade(u.build(), {});
    ASSERT_EQ(status_of(r), 101);
    const std::string head = head_of(r);
    EXPECT_EQ(head.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0), 0u);
    EXPECT_NE(head.find("\r\nUpgrade: websocket\r\n"), std::string::npos);
    EXPECT_NE(head.find("\r\nConnection: Upgrade\r\n"), std::string::npos);
    EXPECT_NE(head.find("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), std::string::npos);
    EXPECT_EQ(head.find("Sec-WebSocket-Extensions"), std::string::npos);
    EXPECT_EQ(head.find("Sec-WebSocket-Protocol"), std::string::npos);
    EXPECT_TRUE(head.ends_with("\r\n\r\n"));
}

// A deferred accept's head: the application's subprotocol and extra fields; the handshake's own are kept.
TEST(WsHandshake, DeferredHeadWithTheApplicationsChoice) {
    Upgrade u;
    const auto r = ws::accept_upgrade(u.build(), {});
    const auto* a = std::get_if<ws::Accepted>(&r);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    EXPECT_EQ(ws::handshake_head(*a, a->subprotocol), a->head);
    covet::Fields extra;
    extra.add("X-Session", "s1").add("connection", "close").add("Sec-WebSocket-Protocol", "other");
    const std::string head = ws::handshake_head(*a, "graphql-ws", extra);
    EXPECT_NE(head.find("\r\nSec-WebSocket-Protocol: graphql-ws\r\nX-Session: s1\r\n\r\n"), std::string::npos) << head;
    EXPECT_EQ(head.find("close"), std::string::npos) << head;
    EXPECT_EQ(head.find("other"), std::string::npos) << head;
    EXPECT_NE(head.find("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), std::string::npos);
}

TEST(WsHandshake, TokenListsAndCase) {
    Upgrade u;
    u.set("Connection", "keep-alive, UPGRADE").set("Upgrade", "foo/1, WebSocket");
    EXPECT_EQ(status_of(ws::accept_upgrade(u.build(), {})), 101);
    EXPECT_TRUE(ws::is_upgrade_request(u.build()));
    u.set("Upgrade", "h2c");
    EXPECT_FALSE(ws::is_upgrade_request(u.build()));
}

TEST(WsHandshake, Refusals) {
    struct Case {
        std::function<void(Upgrade&)> change;
        int status;
        const char* words;
    };
    const Case cases[] = {
        {[](Upgrade& u) { u.method = covet::Method::post; }, 400, "GET"},
        {[](Upgrade& u) { u.minor = 0; }, 400, "HTTP/1.1"},
        {[](Upgrade& u) { u.drop("Upgrade"); }, 400, "Upgrade"},
        {[](Upgrade& u) { u.set("Connection", "keep-alive"); }, 400, "Connection"},
        {[](Upgrade& u) { u.set("Connection", "upgraded"); }, 400, "Connection"},
        {[](Upgrade& u) { u.drop("Sec-WebSocket-Key"); }, 400, "missing Sec-WebSocket-Key"},
        {[](Upgrade& u) { u.set("Sec-WebSocket-Key", "short=="); }, 400, "16 bytes"},
        {[](Upgrade& u) { u.set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ"); }, 400, "16 bytes"},
        {[](Upgrade& u) { u.set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZR=="); }, 400, "16 bytes"},
        {[](Upgrade& u) { u.set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25j*Q=="); }, 400, "16 bytes"},
        {[](Upgrade& u) { u.set("Sec-WebSocket-Version", "8"); }, 426, "13"},
        {[](Upgrade& u) { u.drop("Sec-WebSocket-Version"); }, 426, "13"},
    };
    for (const Case& c : cases) {
        Upgrade u;
        c.change(u);
        const auto r = ws::accept_upgrade(u.build(), {});
        ASSERT_EQ(status_of(r), c.status) << c.words;
        const Response& resp = std::get<Response>(r);
        EXPECT_NE(resp.body().find(c.words), std::string::npos) << resp.body();
        if (c.status == 426) {
            EXPECT_EQ(resp.headers().get("Sec-WebSocket-Version"), "13");
        }
    }
}

TEST(WsHandshake, SubprotocolInServerPreference) {
    Upgrade u;
    u.set("Sec-WebSocket-Protocol", "chat.v1, chat.v2");
    ws::Options o;
    o.subprotocols = {"chat.v2", "chat.v1"};
    const auto r = ws::accept_upgrade(u.build(), o);
    ASSERT_EQ(status_of(r), 101);
    EXPECT_EQ(std::get<ws::Accepted>(r).subprotocol, "chat.v2");
    EXPECT_NE(head_of(r).find("\r\nSec-WebSocket-Protocol: chat.v2\r\n"), std::string::npos);

    o.subprotocols = {"other"};
    EXPECT_EQ(head_of(ws::accept_upgrade(u.build(), o)).find("Sec-WebSocket-Protocol"), std::string::npos);
}

TEST(WsHandshake, PermessageDeflateIsNegotiated) {
    Upgrade u;
    u.set("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits");
    auto r = ws::accept_upgrade(u.build(), {});
    ASSERT_EQ(status_of(r), 101);
    EXPECT_TRUE(std::get<ws::Accepted>(r).deflate.enabled);
    EXPECT_NE(head_of(r).find("\r\nSec-WebSocket-Extensions: permessage-deflate\r\n"), std::string::npos);

    ws::Options off;
    off.permessage_deflate = false;
    r = ws::accept_upgrade(u.build(), off);
    EXPECT_FALSE(std::get<ws::Accepted>(r).deflate.enabled);
    EXPECT_EQ(head_of(r).find("Sec-WebSocket-Extensions"), std::string::npos);

    u.set("Sec-WebSocket-Extensions", "permessage-deflate; bogus");
    r = ws::accept_upgrade(u.build(), {});
    EXPECT_FALSE(std::get<ws::Accepted>(r).deflate.enabled) << "a bad offer is declined, not an error";
}

}  // namespace
}  // namespace ws_test
