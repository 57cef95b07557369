// Tests for the HTTP/2 protocol handler (covet::http2::make_protocol) and h2c (through the HTTP/1.1
// handler), without sockets.
//
// The connection runs on a FakeDriver (tests/support/fake_driver.hpp). An nghttp2 *client* session in the
// test produces the frames and parses the responses; abuse cases (floods, oversized frames) are written
// as raw frames, and the server's output is then read with a small frame parser instead.
#include "covet/http2/protocol.hpp"
#include "covet/app/protocol_switch.hpp"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "../support/drain.hpp"
#include "../support/fake_driver.hpp"
#include "../support/upload.hpp"
#include "covet/http1/protocol.hpp"

namespace {

namespace net = covet::net;
namespace io = covet::io;
using covet::Request;
using covet::Responder;
using covet::Response;
using covet::StreamWriter;
using covet_test::FakeDispatcher;
using covet_test::FakeDriver;
using covet_test::Seen;
using namespace std::chrono_literals;

using Fields = std::vector<std::pair<std::string, std::string>>;

const std::regex imf_fixdate(
    R"((Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-3][0-9] (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} )"
    R"([0-2][0-9]:[0-5][0-9]:[0-6][0-9] GMT)");

std::string field(const Fields& f, std::string_view name) {
    for (const auto& [n, v] : f)
        if (n == name) return v;
    return "<none>";
}

// ================================================================ harness

enum class Start { http2, http1 };

// Stands in for a TLS transport whose handshake is done: bytes pass unchanged, tls() is set.
class FakeTlsTransport final : public net::Transport {
public:
    FakeTlsTransport() {
        info.version = "TLSv1.3";
        info.alpn = "h2";
    }
    bool on_receive(std::span<const char> wire, const std::function<void(std::span<const char>)>& deliver) override {
        deliver(wire);
        return true;
    }
    io::OutputQueue& plaintext_out() override { return plain_; }
    void flush_to(io::OutputQueue& wire) override { wire.append(covet_test::drain(plain_)); }
    const net::TlsInfo* tls() const noexcept override { return &info; }
    net::TlsInfo info;

private:
    io::OutputQueue plain_;
};

// A connection over a fake driver, with the dispatcher the test needs (FakeDispatcher, or UploadDispatcher for
// streamed bodies).
template <class Dispatcher>
class BasicHarness {
public:
    explicit BasicHarness(net::ServerConfig config = {}, Start start = Start::http2, bool tls = false)
        : driver(std::move(config)), conn(driver, -1, net::ConnectionId{3, 7}, "10.0.0.1", 5555) {
        driver.connection = &conn;
        if (tls) conn.set_transport(std::make_unique<FakeTlsTransport>());
        if (start == Start::http2)
            conn.set_protocol(covet::http2::make_protocol(conn, driver, dispatcher));
        else
            conn.set_protocol(switcher.connection_protocol(conn, driver));  // HTTP/1.1, h2c through the switch
    }
    ~BasicHarness() { driver.connection = nullptr; }

    // One receive() from a buffer that is scribbled over afterwards: views into consumed input show.
    void feed(std::string_view bytes) {
        if (bytes.empty()) return;
        inputs_.emplace_back(bytes);
        std::string& buf = inputs_.back();
        conn.receive(std::span<const char>(buf.data(), buf.size()));
        buf.assign(buf.size(), '#');
    }
    // Everything sent so far, drained like a backend does (and told so).
    std::string take() {
        std::string raw = covet_test::drain(conn.wire_out());
        if (!raw.empty() && !driver.closed) conn.output_drained();
        return raw;
    }
    void advance(io::Clock::duration d) {
        driver.clock += d;
        conn.tick(driver.clock);
    }

    FakeDriver driver;
    Dispatcher dispatcher;
    covet::app::ProtocolSwitch switcher{dispatcher};
    net::Connection conn;

private:
    std::deque<std::string> inputs_;
};
using Harness = BasicHarness<FakeDispatcher>;

// ---- raw frames ----

std::string frame(std::uint8_t type, std::uint8_t flags, std::int32_t stream, std::string_view payload) {
    std::string f;
    const auto len = static_cast<std::uint32_t>(payload.size());
    f.push_back(static_cast<char>(len >> 16));
    f.push_back(static_cast<char>(len >> 8));
    f.push_back(static_cast<char>(len));
    f.push_back(static_cast<char>(type));
    f.push_back(static_cast<char>(flags));
    for (int shift = 24; shift >= 0; shift -= 8)
        f.push_back(static_cast<char>((static_cast<std::uint32_t>(stream) >> shift) & 0xff));
    f.append(payload);
    return f;
}
std::string u32(std::uint32_t v) {
    return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

// HPACK-encodes a header list (one encoder per connection: it keeps a dynamic table).
class Encoder {
public:
    Encoder() { nghttp2_hd_deflate_new(&d_, 4096); }
    ~Encoder() { nghttp2_hd_deflate_del(d_); }
    std::string encode(const Fields& fields) {
        std::vector<nghttp2_nv> nv;
        for (const auto& [n, v] : fields)
            nv.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())),
                          reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                          NGHTTP2_NV_FLAG_NONE});
        std::string out(nghttp2_hd_deflate_bound(d_, nv.data(), nv.size()), '\0');
        const ssize_t n =
            nghttp2_hd_deflate_hd(d_, reinterpret_cast<std::uint8_t*>(out.data()), out.size(), nv.data(), nv.size());
        EXPECT_GE(n, 0);
        out.resize(static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
        return out;
    }

private:
    nghttp2_hd_deflater* d_ = nullptr;
};

// Decodes a header block (a fresh decoder: only for the first block a server sent).
Fields decode_block(std::string_view block) {
    nghttp2_hd_inflater* inf = nullptr;
    nghttp2_hd_inflate_new(&inf);
    Fields out;
    auto* in = reinterpret_cast<const std::uint8_t*>(block.data());
    std::size_t left = block.size();
    for (;;) {
        nghttp2_nv nv;
        int flags = 0;
        const ssize_t n = nghttp2_hd_inflate_hd2(inf, &nv, &flags, in, left, 1);
        if (n < 0) break;
        in += n;
        left -= static_cast<std::size_t>(n);
        if (flags & NGHTTP2_HD_INFLATE_EMIT)
            out.emplace_back(std::string(reinterpret_cast<char*>(nv.name), nv.namelen),
                             std::string(reinterpret_cast<char*>(nv.value), nv.valuelen));
        if (flags & NGHTTP2_HD_INFLATE_FINAL) break;
        if (n == 0 && left == 0) break;
    }
    nghttp2_hd_inflate_del(inf);
    return out;
}

Fields get_fields(std::string_view path) {
    return {{":method", "GET"}, {":scheme", "http"}, {":path", std::string(path)}, {":authority", "test"}};
}

struct Frame {
    std::uint8_t type = 0, flags = 0;
    std::int32_t stream = 0;
    std::string payload;
    std::uint32_t word(std::size_t at) const {
        std::uint32_t v = 0;
        for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(payload[at + i]);
        return v;
    }
};
std::vector<Frame> parse_frames(std::string_view bytes) {
    std::vector<Frame> frames;
    while (bytes.size() >= 9) {
        const auto b = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])); };
        const std::size_t len = (b(0) << 16) | (b(1) << 8) | b(2);
        if (bytes.size() < 9 + len) break;
        Frame f;
        f.type = static_cast<std::uint8_t>(b(3));
        f.flags = static_cast<std::uint8_t>(b(4));
        f.stream = static_cast<std::int32_t>(((b(5) << 24) | (b(6) << 16) | (b(7) << 8) | b(8)) & 0x7fffffff);
        f.payload.assign(bytes.substr(9, len));
        frames.push_back(std::move(f));
        bytes.remove_prefix(9 + len);
    }
    EXPECT_TRUE(bytes.empty()) << "trailing partial frame";
    return frames;
}
const Frame* find_frame(const std::vector<Frame>& frames, std::uint8_t type, std::int32_t stream = -1) {
    for (const Frame& f : frames)
        if (f.type == type && (stream < 0 || f.stream == stream)) return &f;
    return nullptr;
}

// The client's side of a raw connection: preface and an empty SETTINGS.
std::string raw_preface() { return std::string(covet::http2::client_preface) + frame(NGHTTP2_SETTINGS, 0, 0, ""); }

// ---- an nghttp2 client session ----

struct ClientStream {
    int status = 0;
    Fields headers, trailers;
    Fields all;  // every field received, in order (:status of each head included): interim responses
    std::string body;
    bool closed = false;
    std::uint32_t close_error = 0;
    bool reset = false;  // RST_STREAM received
    std::uint32_t rst_error = 0;
};

class Client {
public:
    explicit Client(std::vector<nghttp2_settings_entry> settings = {}) {
        nghttp2_session_callbacks* cb = nullptr;
        nghttp2_session_callbacks_new(&cb);
        nghttp2_session_callbacks_set_on_header_callback(cb, &on_header);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &on_data);
        nghttp2_session_callbacks_set_on_stream_close_callback(cb, &on_close);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &on_frame);
        nghttp2_option* opt = nullptr;
        nghttp2_option_new(&opt);
        // The client estimates a header block by its decoded size; the HPACK bomb test needs it to send one.
        nghttp2_option_set_max_send_header_block_length(opt, 1 << 20);
        nghttp2_session_client_new2(&session, cb, this, opt);
        nghttp2_option_del(opt);
        nghttp2_session_callbacks_del(cb);
        nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
    }
    ~Client() { nghttp2_session_del(session); }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // Submits a request; `body` (if any) goes in DATA frames.
    // `stall`: the body never comes (the data provider defers forever).
    std::int32_t request(const Fields& fields, std::string body = {}, bool with_body = false, bool stall = false) {
        std::vector<nghttp2_nv> nv = to_nv(fields);
        bodies_.push_back({std::move(body), 0, stall});
        nghttp2_data_provider provider{};
        provider.source.ptr = &bodies_.back();
        provider.read_callback = &read_body;
        const std::int32_t id =
            nghttp2_submit_request(session, nullptr, nv.data(), nv.size(),
                                   with_body || !bodies_.back().data.empty() ? &provider : nullptr, nullptr);
        EXPECT_GT(id, 0);
        return id;
    }
    // A request whose body is sent piece by piece (send_more), open until its last piece.
    std::int32_t open_request(const Fields& fields) {
        const std::int32_t id = request(fields, {}, true, /*stall=*/true);
        open_bodies_[id] = &bodies_.back();
        open_bodies_[id]->open = true;
        return id;
    }
    void send_more(std::int32_t id, std::string_view data, bool last = false) {
        Body& b = *open_bodies_.at(id);
        b.data.append(data);
        b.stall = false;
        b.open = !last;
        nghttp2_session_resume_data(session, id);
    }
    std::int32_t get(std::string_view path, Fields extra = {}) {
        Fields f = get_fields(path);
        f.insert(f.end(), extra.begin(), extra.end());
        return request(f);
    }
    std::int32_t post(std::string_view path, std::string body) {
        Fields f = {{":method", "POST"}, {":scheme", "http"}, {":path", std::string(path)}, {":authority", "test"}};
        return request(f, std::move(body), true);
    }

    std::string output() {
        std::string out;
        for (;;) {
            const std::uint8_t* data = nullptr;
            const ssize_t n = nghttp2_session_mem_send(session, &data);
            EXPECT_GE(n, 0);
            if (n <= 0) break;
            out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
        }
        return out;
    }
    void input(std::string_view bytes) {
        frames_in += bytes;
        const ssize_t n =
            nghttp2_session_mem_recv(session, reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
        EXPECT_EQ(n, static_cast<ssize_t>(bytes.size())) << nghttp2_strerror(static_cast<int>(n));
    }

    nghttp2_session* session = nullptr;
    std::map<std::int32_t, ClientStream> streams;
    std::vector<nghttp2_settings_entry> server_settings;
    int goaways = 0;
    int pings = 0;  // PINGs from the server (not ACKs)
    std::uint32_t goaway_error = 0;
    std::int32_t goaway_last_stream = -1;
    std::string frames_in;  // everything the server sent

private:
    struct Body {
        std::string data;
        std::size_t sent;
        bool stall;
        bool open = false;  // more may come (send_more): no END_STREAM when all is sent
    };
    static std::vector<nghttp2_nv> to_nv(const Fields& fields) {
        std::vector<nghttp2_nv> nv;
        for (const auto& [n, v] : fields)
            nv.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())),
                          reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                          NGHTTP2_NV_FLAG_NONE});
        return nv;
    }
    static Client& self(void* p) { return *static_cast<Client*>(p); }
    static ssize_t read_body(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t len, std::uint32_t* flags,
                             nghttp2_data_source* src, void*) {
        Body& b = *static_cast<Body*>(src->ptr);
        if (b.stall) return NGHTTP2_ERR_DEFERRED;
        const std::size_t n = std::min(len, b.data.size() - b.sent);
        if (n == 0 && b.open) return NGHTTP2_ERR_DEFERRED;
        std::memcpy(buf, b.data.data() + b.sent, n);
        b.sent += n;
        if (b.sent == b.data.size() && !b.open) *flags |= NGHTTP2_DATA_FLAG_EOF;
        return static_cast<ssize_t>(n);
    }
    static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name, std::size_t namelen,
                         const std::uint8_t* value, std::size_t valuelen, std::uint8_t, void* user) {
        ClientStream& s = self(user).streams[frame->hd.stream_id];
        const std::string n(reinterpret_cast<const char*>(name), namelen),
            v(reinterpret_cast<const char*>(value), valuelen);
        s.all.emplace_back(n, v);
        if (n == ":status")
            s.status = std::stoi(v);
        else if (frame->headers.cat == NGHTTP2_HCAT_HEADERS)
            s.trailers.emplace_back(n, v);  // after the response head
        else
            s.headers.emplace_back(n, v);
        return 0;
    }
    static int on_data(nghttp2_session*, std::uint8_t, std::int32_t id, const std::uint8_t* data, std::size_t len,
                       void* user) {
        self(user).streams[id].body.append(reinterpret_cast<const char*>(data), len);
        return 0;
    }
    static int on_close(nghttp2_session*, std::int32_t id, std::uint32_t error, void* user) {
        ClientStream& s = self(user).streams[id];
        s.closed = true;
        s.close_error = error;
        return 0;
    }
    static int on_frame(nghttp2_session*, const nghttp2_frame* frame, void* user) {
        Client& c = self(user);
        if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK))
            c.server_settings.insert(c.server_settings.end(), frame->settings.iv,
                                     frame->settings.iv + frame->settings.niv);
        if (frame->hd.type == NGHTTP2_PING && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) ++c.pings;
        if (frame->hd.type == NGHTTP2_GOAWAY) {
            ++c.goaways;
            c.goaway_error = frame->goaway.error_code;
            c.goaway_last_stream = frame->goaway.last_stream_id;
        }
        if (frame->hd.type == NGHTTP2_RST_STREAM) {
            ClientStream& s = c.streams[frame->hd.stream_id];
            s.reset = true;
            s.rst_error = frame->rst_stream.error_code;
        }
        return 0;
    }

    std::deque<Body> bodies_;  // addresses stay put for the data providers
    std::map<std::int32_t, Body*> open_bodies_;
};

// Moves bytes both ways until neither side has anything to say.
void pump(Harness& h, Client& c) {
    for (int i = 0; i < 1000; ++i) {
        const std::string up = c.output();
        h.feed(up);
        const std::string down = h.take();
        if (!down.empty()) c.input(down);
        if (up.empty() && down.empty()) return;
    }
    ADD_FAILURE() << "pump did not settle";
}

net::ServerConfig config_with(auto&& tweak) {
    net::ServerConfig c;
    tweak(c);
    return c;
}

// ================================================================ exchanges

TEST(Http2Protocol, AdvertisesSettingsFromLimits) {
    Harness h(config_with([](net::ServerConfig& c) {
        c.http2_limits.max_concurrent_streams = 7;
        c.http2_limits.initial_window_size = 100000;
        c.http2_limits.max_header_list_bytes = 9000;
        c.http2_limits.max_frame_size = 32768;
    }));
    Client c;
    pump(h, c);
    std::map<std::int32_t, std::uint32_t> got;
    for (const auto& e : c.server_settings) got[e.settings_id] = e.value;
    EXPECT_EQ(got[NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS], 7u);
    EXPECT_EQ(got[NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE], 100000u);
    EXPECT_EQ(got[NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE], 9000u);
    EXPECT_EQ(got[NGHTTP2_SETTINGS_MAX_FRAME_SIZE], 32768u);
    // The server's first frame is its SETTINGS (the server connection preface), and the only one: every setting,
    // the stream limit too, comes in it (grpcio's client ran away when the limit came in a second frame).
    const auto frames = parse_frames(c.frames_in);
    ASSERT_FALSE(frames.empty());
    EXPECT_EQ(frames[0].type, NGHTTP2_SETTINGS);
    EXPECT_EQ(frames[0].payload.size(), 4u * 6u);
    EXPECT_EQ(std::count_if(frames.begin(), frames.end(),
                            [](const Frame& f) { return f.type == NGHTTP2_SETTINGS && !(f.flags & NGHTTP2_FLAG_ACK); }),
              1);
    EXPECT_EQ(c.server_settings.size(), 4u);
    EXPECT_FALSE(h.conn.closing());
}

TEST(Http2Protocol, ProxyHeadersFromATrustedPeerPerStream) {
    net::ServerConfig config;
    config.proxy_headers.trusted = net::TrustedProxies("10.0.0.1");
    Harness h(config);
    std::vector<std::string> seen;
    h.dispatcher.handler = [&](Request& r, Responder& res) {
        seen.push_back(std::string(r.scheme()) + " " + std::string(r.client_address()) + ":" +
                       std::to_string(r.client_port()));
        res.send(Response::text("ok"));
    };
    Client c;
    c.get("/a", {{"x-forwarded-proto", "https"}, {"x-forwarded-for", "[2001:db8::5]:443"}});
    pump(h, c);
    c.get("/b");
    pump(h, c);
    EXPECT_EQ(seen, (std::vector<std::string>{"https 2001:db8::5:443", "http 10.0.0.1:5555"}));
    Harness untrusted;  // 127.0.0.1 by default
    untrusted.dispatcher.handler = h.dispatcher.handler;
    Client c2;
    c2.get("/a", {{"x-forwarded-proto", "https"}, {"x-forwarded-for", "203.0.113.7"}});
    pump(untrusted, c2);
    EXPECT_EQ(seen.back(), "http 10.0.0.1:5555");
}

// A 204/304 carries no body and no content-length, but a content-type set on it (FastAPI's 204 says JSON).
TEST(Http2Protocol, BodylessStatusKeepsAnExplicitContentType) {
    Harness h;
    h.dispatcher.handler = [](Request& r, Responder& res) {
        res.send(r.path() == "/j" ? Response::json("null", 204) : Response::empty(204));
    };
    Client c;
    const auto j = c.get("/j");
    const auto e = c.get("/e");
    pump(h, c);
    EXPECT_EQ(c.streams[j].status, 204);
    EXPECT_EQ(field(c.streams[j].headers, "content-type"), "application/json");
    EXPECT_EQ(field(c.streams[j].headers, "content-length"), "<none>");
    EXPECT_EQ(c.streams[j].body, "");
    EXPECT_EQ(field(c.streams[e].headers, "content-type"), "<none>");
}

TEST(Http2Protocol, GetWithHeadersQueryAndAuthorityAsHost) {
    Harness h;
    h.dispatcher.handler = [&](Request& r, Responder& res) {
        EXPECT_EQ(r.client_address(), "10.0.0.1");
        EXPECT_EQ(r.client_port(), 5555);
        EXPECT_EQ(r.received_at(), h.driver.clock);
        EXPECT_EQ(r.version_major(), 2);
        EXPECT_EQ(r.version_minor(), 0);
        EXPECT_EQ(r.tls(), nullptr);
        EXPECT_EQ(r.query("name"), "x y");
        res.send(Response::text("hello"));
    };
    Client c;
    const auto id = c.get("/hello?name=x%20y", {{"user-agent", "t"}, {"x-multi", "1"}, {"x-multi", "2"}});
    pump(h, c);
    ASSERT_EQ(h.dispatcher.seen.size(), 1u);
    const Seen& s = h.dispatcher.seen[0];
    EXPECT_EQ(s.method, "GET");
    EXPECT_EQ(s.target, "/hello?name=x%20y");
    EXPECT_EQ(s.path, "/hello");
    EXPECT_EQ(s.query, "name=x%20y");
    EXPECT_EQ(s.protocol, "HTTP/2");
    EXPECT_TRUE(s.keep_alive);
    EXPECT_EQ(s.headers, (Fields{{"user-agent", "t"}, {"x-multi", "1"}, {"x-multi", "2"}, {"host", "test"}}));

    const ClientStream& r = c.streams[id];
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "hello");
    EXPECT_TRUE(r.closed);
    EXPECT_EQ(r.close_error, 0u);
    EXPECT_EQ(field(r.headers, "content-type"), "text/plain; charset=utf-8");
    EXPECT_EQ(field(r.headers, "content-length"), "5");
    EXPECT_EQ(field(r.headers, "server"), "covet");
    EXPECT_TRUE(std::regex_match(field(r.headers, "date"), imf_fixdate)) << field(r.headers, "date");
    EXPECT_EQ(h.dispatcher.finalized, 1);
    EXPECT_FALSE(h.conn.closing());
    EXPECT_FALSE(h.conn.protocol()->exchange_outstanding());
}

TEST(Http2Protocol, HostHeaderWinsOverAuthority) {
    Harness h;
    Client c;
    c.request(
        {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":authority", "a.example"}, {"host", "a.example"}});
    pump(h, c);
    ASSERT_EQ(h.dispatcher.seen.size(), 1u);
    EXPECT_EQ(h.dispatcher.seen[0].headers, (Fields{{"host", "a.example"}}));
}

TEST(Http2Protocol, CookieCrumbsAreJoined) {
    Harness h;
    Client c;
    c.get("/", {{"cookie", "a=1"}, {"x-other", "o"}, {"cookie", "b=2"}, {"cookie", "c=3"}});
    pump(h, c);
    ASSERT_EQ(h.dispatcher.seen.size(), 1u);
    EXPECT_EQ(h.dispatcher.seen[0].headers, (Fields{{"cookie", "a=1; b=2; c=3"}, {"x-other", "o"}, {"host", "test"}}));
}

TEST(Http2Protocol, PostBody) {
    Harness h;
    Client c;
    const auto id = c.post("/submit", "field=value&x=1");
    pump(h, c);
    ASSERT_EQ(h.dispatcher.seen.size(), 1u);
    EXPECT_EQ(h.dispatcher.seen[0].method, "POST");
    EXPECT_EQ(h.dispatcher.seen[0].body, "field=value&x=1");
    EXPECT_EQ(c.streams[id].status, 200);
    EXPECT_EQ(c.streams[id].body, "POST /submit field=value&x=1");
}

TEST(Http2Protocol, ResponseHeadersAreLowercaseWithoutConnectionSpecificOnes) {
    Harness h;
    h.dispatcher.handler = [](Request&, Responder& res) {
        Response r = Response::json("{}", 201);
        r.add_header("X-Custom", "Yes").add_header("Connection", "close").add_header("Keep-Alive", "timeout=5");
        r.add_header("Transfer-Encoding", "chunked").add_header("Upgrade", "h2c").add_header("Set-Cookie", "a=1");
        res.send(std::move(r));
    };
    Client c;
    const auto id = c.get("/");
    pump(h, c);
    const ClientStream& r = c.streams[id];
    EXPECT_EQ(r.status, 201);
    EXPECT_EQ(r.body, "{}");
    EXPECT_EQ(field(r.headers, "x-custom"), "Yes");
    EXPECT_EQ(field(r.headers, "set-cookie"), "a=1");
    EXPECT_EQ(field(r.headers, "content-type"), "application/json");
    for (const char* gone : {"connection", "keep-alive", "transfer-encoding", "upgrade"})
        EXPECT_EQ(field(r.headers, gone), "<none>") << gone;
    EXPECT_FALSE(h.conn.closing());  // close_connection has no meaning per stream
}

TEST(Http2Protocol, ConcurrentStreamsCompletedOutOfOrder) {
    Harness h;
    h.dispatcher.defer = true;
    Client c;
    std::vector<std::int32_t> ids;
    for (int i = 0; i < 10; ++i) ids.push_back(c.get("/r" + std::to_string(i)));
    pump(h, c);
    ASSERT_EQ(h.dispatcher.held.size(), 10u);
    EXPECT_TRUE(h.conn.protocol()->exchange_outstanding());
    // Answer from the last to the first; each answer must reach its own stream.
    for (int i = 9; i >= 0; --i) {
        h.dispatcher.held[static_cast<std::size_t>(i)].send(Response::text("answer " + std::to_string(i)));
        pump(h, c);
        EXPECT_EQ(c.streams[ids[static_cast<std::size_t>(i)]].body, "answer " + std::to_string(i));
        if (i > 0) {
            EXPECT_FALSE(c.streams[ids[0]].closed);
        }
    }
    for (std::size_t i = 0; i < ids.size(); ++i) {
        EXPECT_EQ(c.streams[ids[i]].status, 200);
        EXPECT_EQ(h.dispatcher.seen[i].path, "/r" + std::to_string(i));
    }
    EXPECT_FALSE(h.conn.protocol()->exchange_outstanding());
    // One dispatcher state per concurrent stream; each finalize gets its own stream's.
    EXPECT_EQ(h.dispatcher.states_made, 10);
    std::vector<covet::ExchangeState*> dispatched = h.dispatcher.dispatch_states;
    std::vector<covet::ExchangeState*> finalized = h.dispatcher.finalize_states;
    std::reverse(finalized.begin(), finalized.end());  // answered last to first
    EXPECT_EQ(finalized, dispatched);
    std::sort(dispatched.begin(), dispatched.end());
    EXPECT_EQ(std::adjacent_find(dispatched.begin(), dispatched.end()), dispatched.end()) << "all distinct";
    // Pooled streams keep theirs: ten more requests make no new state.
    for (int i = 0; i < 10; ++i) c.get("/again" + std::to_string(i));
    h.dispatcher.defer = false;
    pump(h, c);
    EXPECT_EQ(h.dispatcher.finalized, 20);
    EXPECT_EQ(h.dispatcher.states_made, 10);
}

TEST(Http2Protocol, RequestViewsStayValidUntilTheResponse) {
    Harness h;
    h.dispatcher.defer = true;
    Client c;
    c.post("/keep?x=1", "the body");
    c.get("/other", {{"x-h", "v"}});
    pump(h, c);
    ASSERT_EQ(h.dispatcher.held.size(), 2u);
    // Input buffers were scribbled over and a second stream arrived: the held requests are intact.
    EXPECT_EQ(covet_test::snapshot(*h.dispatcher.held_request), h.dispatcher.seen[1]);
    h.dispatcher.held[1].send(Response::text("ok"));
    pump(h, c);
    h.dispatcher.held[0].send(Response::text("ok"));
    pump(h, c);
}

TEST(Http2Protocol, CompletionFromAnotherThreadIsPosted) {
    Harness h;
    h.dispatcher.defer = true;
    Client c;
    const auto id = c.get("/x");
    pump(h, c);
    h.driver.set_home_thread(false);
    h.dispatcher.held[0].send(Response::text("later"));
    h.driver.set_home_thread(true);
    EXPECT_EQ(h.driver.run_posted(), 1);
    pump(h, c);
    EXPECT_EQ(c.streams[id].body, "later");
}

TEST(Http2Protocol, StreamingResponse) {
    Harness h;
    StreamWriter writer;
    h.dispatcher.handler = [&](Request&, Responder& res) {
        Response head = Response::text("first,");
        head.add_header("X-Stream", "1");
        writer = res.stream(std::move(head));
    };
    Client c;
    const auto id = c.get("/s");
    pump(h, c);
    EXPECT_EQ(c.streams[id].status, 200);
    EXPECT_EQ(field(c.streams[id].headers, "content-length"), "<none>");
    EXPECT_EQ(field(c.streams[id].headers, "x-stream"), "1");
    EXPECT_EQ(c.streams[id].body, "first,");
    EXPECT_FALSE(c.streams[id].closed);
    EXPECT_TRUE(h.conn.protocol()->exchange_outstanding());
    writer.write("second,");
    pump(h, c);
    EXPECT_EQ(c.streams[id].body, "first,second,");
    writer.write("third");
    writer.end();
    pump(h, c);
    EXPECT_EQ(c.streams[id].body, "first,second,third");
    EXPECT_TRUE(c.streams[id].closed);
    EXPECT_EQ(c.streams[id].close_error, 0u);
    EXPECT_FALSE(h.conn.protocol()->exchange_outstanding());
}

TEST(Http2Protocol, StreamAbortResetsTheStream) {
    Harness h;
    StreamWriter writer;
    h.dispatcher.handler = [&](Request& r, Responder& res) {
        if (r.path() != "/s") return res.send(Response::text(covet_test::echo_text(r)));
        writer = res.stream(Response::text("part"));
    };
    Client c;
    const auto id = c.get("/s");
    pump(h, c);
    writer.abort();
    pump(h, c);
    EXPECT_TRUE(c.streams[id].reset);
    EXPECT_EQ(c.streams[id].rst_error, static_cast<std::uint32_t>(NGHTTP2_INTERNAL_ERROR));
    EXPECT_FALSE(h.conn.closing());
    // The connection is still usable.
    const auto next = c.get("/after");
    pump(h, c);
    EXPECT_EQ(c.streams[next].body, "GET /after");
}

// A producer that declares its body's length (Response::set_head_length on the head): content-length goes out;
// more or less than declared resets the stream (INTERNAL_ERROR), the connection stays usable.
TEST(Http2Protocol, StreamWithADeclaredLengthSendsItAndResetsOnAMismatch) {
    Harness h;
    StreamWriter writer;
    h.dispatcher.handler = [&](Request& r, Responder& res) {
        if (r.path() == "/next") return res.send(Response::text(covet_test::echo_text(r)));
        Response head = Response::text("hel");
        head.set_head_length(5);
        writer = res.stream(std::move(head));
    };
    Client c;
    const auto exact = c.get("/exact");
    pump(h, c);
    writer.write("lo");
    writer.end();
    pump(h, c);
    EXPECT_EQ(c.streams[exact].body, "hello");
    EXPECT_FALSE(c.streams[exact].reset);
    bool declared = false;
    for (const auto& f : c.streams[exact].headers)
        declared = declared || (f.first == "content-length" && f.second == "5");
    EXPECT_TRUE(declared);
    const auto longer = c.get("/longer");
    pump(h, c);
    writer.write("lo!");
    writer.end();
    pump(h, c);
    EXPECT_TRUE(c.streams[longer].reset);
    EXPECT_EQ(c.streams[longer].rst_error, static_cast<std::uint32_t>(NGHTTP2_INTERNAL_ERROR));
    const auto shorter = c.get("/shorter");
    pump(h, c);
    writer.end();
    pump(h, c);
    EXPECT_TRUE(c.streams[shorter].reset);
    EXPECT_FALSE(h.conn.closing());
    const auto next = c.get("/next");
    pump(h, c);
    EXPECT_EQ(c.streams[next].body, "GET /next");
    EXPECT_FALSE(h.conn.protocol()->exchange_outstanding());
}

// The same covet::Fields the HTTP/1.1 serializer writes go out as HTTP/2 fields without a detour through
// text: a repeated field keeps both values in order, names are lowercased, values are untouched (a ':' or
// a ", " inside one included), and trailers arrive after the body.
TEST(Http2Protocol, RepeatedFieldsAndTrailersArriveIntact) {
    Harness h;
    h.dispatcher.handler = [](Request&, Responder& res) {
        Response r = Response::text("body");
        r.add_header("Set-Cookie", "a=1; Path=/").add_header("X-Time", "12:30:00, UTC");
        r.add_header("set-cookie", "b=2; HttpOnly").trailer("X-Checksum", "abc:def").trailer("grpc-status", "0");
        res.send(std::move(r));
    };
    Client c;
    const auto id = c.get("/");
    pump(h, c);
    const ClientStream& r = c.streams[id];
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "body");
    Fields own;
    for (const auto& f : r.headers)
        if (f.first == "set-cookie" || f.first == "x-time") own.push_back(f);
    EXPECT_EQ(own,
              (Fields{{"set-cookie", "a=1; Path=/"}, {"x-time", "12:30:00, UTC"}, {"set-cookie", "b=2; HttpOnly"}}));
    EXPECT_EQ(r.trailers, (Fields{{"x-checksum", "abc:def"}, {"grpc-status", "0"}}));
    EXPECT_TRUE(r.closed);
}

TEST(Http2Protocol, Trailers) {
    Harness h;
    h.dispatcher.handler = [](Request& r, Responder& res) {
        if (r.path() == "/empty") return res.send(Response(200).trailer("grpc-status", "0"));
        res.send(
            Response::bytes("payload", "application/grpc").trailer("Grpc-Status", "0").trailer("grpc-message", "ok"));
    };
    Client c;
    const auto id = c.get("/t");
    const auto empty = c.get("/empty");
    pump(h, c);
    EXPECT_EQ(c.streams[id].body, "payload");
    EXPECT_EQ(c.streams[id].trailers, (Fields{{"grpc-status", "0"}, {"grpc-message", "ok"}}));
    EXPECT_EQ(field(c.streams[id].headers, "grpc-status"), "<none>");
    EXPECT_TRUE(c.streams[id].closed);
    EXPECT_EQ(c.streams[empty].body, "");
    EXPECT_EQ(c.streams[empty].trailers, (Fields{{"grpc-status", "0"}}));
}

TEST(Http2Protocol, StreamingResponseWithTrailers) {
    Harness h;
    StreamWriter writer;
    h.dispatcher.handler = [&](Request&, Responder& res) {
        writer = res.stream(Response::bytes("", "application/grpc").trailer("grpc-status", "0"));
    };
    Client c;
    const auto id = c.get("/s");
    pump(h, c);
    writer.write("m1");
    writer.end();
    pump(h, c);
    EXPECT_EQ(c.streams[id].body, "m1");
    EXPECT_EQ(c.streams[id].trailers, (Fields{{"grpc-status", "0"}}));
}

TEST(Http2Protocol, StreamEndedWithTrailers) {
    Harness h;
    StreamWriter writer;
    h.dispatcher.handler = [&](Request&, Responder& res) {
        writer = res.stream(Response::bytes("", "application/grpc"));
    };
    Client c;
    const auto id = c.get("/s");
    pump(h, c);
    writer.write("m1");
    pump(h, c);
    covet::Fields trailers;
    trailers.add("Grpc-Status", "0").add("grpc-message", "fine");
    writer.end(std::move(trailers));
    pump(h, c);
    EXPECT_EQ(c.streams[id].body, "m1");
    EXPECT_EQ(c.streams[id].trailers, (Fields{{"grpc-status", "0"}, {"grpc-message", "fine"}}));
    EXPECT_TRUE(c.streams[id].closed);
    EXPECT_EQ(c.streams[id].close_error, 0u);
}

TEST(Http2Protocol, EarlyHintsAreInterimHeaders) {
    Harness h;
    h.dispatcher.defer = true;
    Client c;
    const auto id = c.get("/page");
    pump(h, c);
    ASSERT_EQ(h.dispatcher.held.size(), 1u);
    covet::Fields hints;
    hints.add("Link", "</a.css>; rel=preload");
    h.dispatcher.held[0].early_hint(hints);
    h.dispatcher.held[0].early_hint(hints);
    pump(h, c);
    EXPECT_FALSE(c.streams[id].closed);
    h.dispatcher.held[0].send(Response::text("page"));
    pump(h, c);
    const Fields& all = c.streams[id].all;
    ASSERT_GE(all.size(), 5u);
    EXPECT_EQ(all[0], (std::pair<std::string, std::string>{":status", "103"}));
    EXPECT_EQ(all[1], (std::pair<std::string, std::string>{"link", "</a.css>; rel=preload"}));
    EXPECT_EQ(all[2], (std::pair<std::string, std::string>{":status", "103"}));
    EXPECT_EQ(all[4], (std::pair<std::string, std::string>{":status", "200"}));
    EXPECT_EQ(c.streams[id].status, 200);
    EXPECT_EQ(c.streams[id].body, "page");
    EXPECT_TRUE(c.streams[id].closed);
    EXPECT_EQ(c.streams[id].close_error, 0u);
}

TEST(Http2Protocol, HeadSendsHeadersWithoutBody) {
    Harness h;
    Client c;
    const auto id = c.request({{":method", "HEAD"}, {":scheme", "http"}, {":path", "/h"}, {":authority", "t"}});
    pump(h, c);
    EXPECT_EQ(c.streams[id].status, 200);
    EXPECT_EQ(field(c.streams[id].headers, "content-length"), std::to_string(std::string("HEAD /h").size()));
    EXPECT_EQ(c.streams[id].body, "");
    EXPECT_TRUE(c.streams[id].closed);
    EXPECT_EQ(c.streams[id].close_error, 0u);
}

TEST(Http2Protocol, HeadNeverSendsABody) {
    Harness h;
    StreamWriter writer;
    h.dispatcher.handler = [&](Request& r, Responder& res) {
        if (r.path() == "/trailers") return res.send(Response::text("abc").trailer("x-t", "1"));
        writer = res.stream(Response::text("first"));
    };
    Client c;
    const Fields head = {{":method", "HEAD"}, {":scheme", "http"}, {":authority", "t"}};
    Fields a = head, b = head;
    a.emplace_back(":path", "/trailers");
    b.emplace_back(":path", "/stream");
    const auto with_trailers = c.request(a);
    const auto streamed = c.request(b);
    pump(h, c);
    writer.write("more");
    writer.end();
    pump(h, c);
    EXPECT_EQ(c.streams[with_trailers].status, 200);
    EXPECT_EQ(c.streams[with_trailers].body, "");
    EXPECT_EQ(field(c.streams[with_trailers].headers, "content-length"), "3");
    EXPECT_EQ(c.streams[with_trailers].trailers, (Fields{{"x-t", "1"}}));
    EXPECT_EQ(c.streams[streamed].status, 200);
    EXPECT_EQ(c.streams[streamed].body, "");
    EXPECT_TRUE(c.streams[streamed].closed);
    EXPECT_EQ(c.streams[streamed].close_error, 0u);
}

TEST(Http2Protocol, AbortWhileDataIsQueuedBehindFlowControl) {
    Harness h;
    StreamWriter writer;
    h.dispatcher.handler = [&](Request&, Responder& res) { writer = res.stream(Response::text("")); };
    Client c;  // 65535-byte windows: most of what follows waits for WINDOW_UPDATE
    const auto id = c.get("/s");
    pump(h, c);
    writer.write(std::string(200 * 1000, 'q'));
    c.input(h.take());  // read, but no WINDOW_UPDATE sent yet: the rest stays queued
    writer.abort();
    pump(h, c);
    EXPECT_TRUE(c.streams[id].reset);
    EXPECT_EQ(c.streams[id].rst_error, static_cast<std::uint32_t>(NGHTTP2_INTERNAL_ERROR));
    EXPECT_LT(c.streams[id].body.size(), 200u * 1000);
    EXPECT_FALSE(h.conn.protocol()->exchange_outstanding());
    EXPECT_FALSE(h.conn.closing());
}

TEST(Http2Protocol, LargeBodiesObeyFlowControl) {
    Harness h;
    const std::string big(300 * 1000, 'b');
    h.dispatcher.handler = [&](Request& r, Responder& res) {
        res.send(Response::text(r.path() == "/upload" ? std::to_string(r.body().size()) : big));
    };
    Client c;  // default client window: 65535, so the server must wait for WINDOW_UPDATEs
    const auto down = c.get("/download");
    pump(h, c);
    EXPECT_EQ(c.streams[down].body.size(), big.size());
    EXPECT_EQ(c.streams[down].body, big);
    const auto up = c.post("/upload", std::string(200 * 1000, 'u'));  // above the default 65535 window
    pump(h, c);
    EXPECT_EQ(c.streams[up].body, "200000");
}

TEST(Http2Protocol, SlowReaderPausesOutputAtHighWater) {
    Harness h(config_with([](net::ServerConfig& c) { c.limits.output_high_water = 20000; }));
    const std::string big(200 * 1000, 'z');
    h.dispatcher.handler = [&](Request&, Responder& res) { res.send(Response::text(big)); };
    Client c({{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}});
    nghttp2_session_set_local_window_size(c.session, NGHTTP2_FLAG_NONE, 0, 1 << 20);
    const auto id = c.get("/");
    h.feed(c.output());
    // Not drained: the server stops once more than the high water is queued.
    const std::size_t queued = h.conn.wire_out().size();
    EXPECT_LT(queued, 20000u + 20000u);
    EXPECT_GT(queued, 0u);
    EXPECT_FALSE(h.driver.reading.empty());
    EXPECT_FALSE(h.driver.reading.back());
    pump(h, c);  // draining resumes it
    EXPECT_EQ(c.streams[id].body.size(), big.size());
    EXPECT_TRUE(h.driver.reading.back());
}

TEST(Http2Protocol, UnknownMethodIs501AndConnectIsRefused) {
    Harness h;
    Client c;
    const auto brew = c.request({{":method", "BREW"}, {":scheme", "http"}, {":path", "/"}, {":authority", "t"}});
    const auto connect = c.request({{":method", "CONNECT"}, {":authority", "example.com:443"}});
    pump(h, c);
    EXPECT_EQ(c.streams[brew].status, 501);
    EXPECT_EQ(field(c.streams[brew].headers, "allow"), "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS");
    EXPECT_EQ(c.streams[connect].status, 501);
    EXPECT_TRUE(h.dispatcher.seen.empty());
    EXPECT_FALSE(h.conn.closing());
    // A known method goes to the application, as over HTTP/1.1.
    const auto trace = c.request({{":method", "TRACE"}, {":scheme", "http"}, {":path", "/t"}, {":authority", "t"}});
    pump(h, c);
    EXPECT_EQ(c.streams[trace].body, "TRACE /t");
}

// ================================================================ limits and abuse

TEST(Http2Protocol, BodyOverLimitIs413AndConnectionStaysUsable) {
    Harness h(config_with([](net::ServerConfig& c) { c.limits.max_body_bytes = 1000; }));
    Client c;
    const auto big = c.post("/big", std::string(5000, 'x'));  // no content-length: found while receiving
    pump(h, c);
    EXPECT_EQ(c.streams[big].status, 413);
    Fields with_length = {
        {":method", "POST"}, {":scheme", "http"}, {":path", "/cl"}, {":authority", "t"}, {"content-length", "5000"}};
    const auto declared = c.request(with_length, std::string(5000, 'y'));
    pump(h, c);
    EXPECT_EQ(c.streams[declared].status, 413);
    EXPECT_TRUE(h.dispatcher.seen.empty());
    const auto small = c.post("/small", "ok");
    pump(h, c);
    EXPECT_EQ(c.streams[small].body, "POST /small ok");
    EXPECT_FALSE(h.conn.closing());
}

TEST(Http2Protocol, BodiesInFlightShareOneBudgetPerConnection) {
    Harness h(config_with([](net::ServerConfig& c) {
        c.limits.max_body_bytes = 10000;
        c.limits.max_buffered_input = 5000;  // in flight on one connection: 15000
    }));
    Client c;
    Fields f = {{":method", "POST"}, {":scheme", "http"}, {":path", "/p"}, {":authority", "t"}};
    // Bodies that never end: each stays below the body limit, together they go over the budget.
    Encoder enc;
    std::string in = raw_preface();
    for (std::int32_t id : {1, 3}) in += frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, id, enc.encode(f));
    in += frame(NGHTTP2_DATA, 0, 1, std::string(8000, 'a'));
    in += frame(NGHTTP2_DATA, 0, 3, std::string(6000, 'b'));
    h.feed(in);
    auto frames = parse_frames(h.take());
    EXPECT_EQ(find_frame(frames, NGHTTP2_HEADERS), nullptr);
    h.feed(frame(NGHTTP2_DATA, 0, 3, std::string(2000, 'b')));  // 16000 > 15000
    frames = parse_frames(h.take());
    const Frame* refused = find_frame(frames, NGHTTP2_HEADERS, 3);
    ASSERT_NE(refused, nullptr);
    EXPECT_EQ(field(decode_block(refused->payload), ":status"), "503");
    EXPECT_EQ(find_frame(frames, NGHTTP2_HEADERS, 1), nullptr);
    // Stream 1 finishes within its limit once stream 3's bytes no longer count.
    h.feed(frame(NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, 1, std::string(1000, 'a')));
    h.take();
    ASSERT_EQ(h.dispatcher.seen.size(), 1u);
    EXPECT_EQ(h.dispatcher.seen[0].body.size(), 9000u);
    EXPECT_FALSE(h.conn.closing());
}

TEST(Http2Protocol, HpackBombIsRefusedAndConnectionStaysUsable) {
    Harness h(config_with([](net::ServerConfig& c) { c.http2_limits.max_header_list_bytes = 16 * 1024; }));
    Client c;
    // ~2 KB on the wire (the field is indexed once, then referenced), ~180 KB decoded.
    Fields bomb = get_fields("/bomb");
    for (int i = 0; i < 90; ++i) bomb.emplace_back("x-bomb", std::string(2000, 'a'));
    const auto id = c.request(bomb);
    const std::string wire = c.output();
    EXPECT_LT(wire.size(), 4000u);
    h.feed(wire);
    c.input(h.take());
    pump(h, c);
    EXPECT_EQ(c.streams[id].status, 431);
    EXPECT_TRUE(h.dispatcher.seen.empty());
    const auto next = c.get("/fine");
    pump(h, c);
    EXPECT_EQ(c.streams[next].body, "GET /fine");
    EXPECT_FALSE(h.conn.closing());
}

TEST(Http2Protocol, TooManyHeaderFieldsIs431) {
    Harness h(config_with([](net::ServerConfig& c) { c.limits.max_headers = 5; }));
    Client c;
    Fields many = get_fields("/many");
    for (int i = 0; i < 6; ++i) many.emplace_back("x-h" + std::to_string(i), "v");
    const auto id = c.request(many);
    pump(h, c);
    EXPECT_EQ(c.streams[id].status, 431);
    EXPECT_TRUE(h.dispatcher.seen.empty());
}

TEST(Http2Protocol, StreamsOverTheConcurrencyLimitAreRefused) {
    Harness h(config_with([](net::ServerConfig& c) { c.http2_limits.max_concurrent_streams = 2; }));
    h.dispatcher.defer = true;
    Encoder enc;
    std::string in = raw_preface();
    for (std::int32_t id : {1, 3, 5})
        in += frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, id,
                    enc.encode(get_fields("/c")));
    h.feed(in);
    const auto frames = parse_frames(h.take());
    const Frame* rst = find_frame(frames, NGHTTP2_RST_STREAM, 5);
    ASSERT_NE(rst, nullptr);
    EXPECT_EQ(rst->word(0), static_cast<std::uint32_t>(NGHTTP2_REFUSED_STREAM));
    EXPECT_EQ(find_frame(frames, NGHTTP2_RST_STREAM, 1), nullptr);
    EXPECT_EQ(h.dispatcher.held.size(), 2u);
    EXPECT_EQ(find_frame(frames, NGHTTP2_GOAWAY), nullptr);
    EXPECT_FALSE(h.conn.closing());
    for (Responder& r : h.dispatcher.held) r.send(Response::text("x"));
    EXPECT_EQ(parse_frames(h.take()).size(), 4u);  // HEADERS + DATA for each
}

TEST(Http2Protocol, StreamsOverTheLimitAreRefusedAfterTheSettingsAreAcked) {
    Harness h(config_with([](net::ServerConfig& c) { c.http2_limits.max_concurrent_streams = 2; }));
    h.dispatcher.defer = true;
    Encoder enc;
    h.feed(raw_preface());
    const auto server_settings = parse_frames(h.take());
    ASSERT_EQ(std::count_if(server_settings.begin(), server_settings.end(),
                            [](const Frame& f) { return f.type == NGHTTP2_SETTINGS && !(f.flags & NGHTTP2_FLAG_ACK); }),
              1);
    // The SETTINGS acknowledged (the ACK split across reads): nghttp2 has applied the settings it knows of.
    const std::string ack = frame(NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0, "");
    h.feed(ack.substr(0, 4));
    h.feed(ack.substr(4));
    std::string in;
    for (std::int32_t id : {1, 3, 5, 7})
        in += frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, id,
                    enc.encode(get_fields("/c")));
    h.feed(in);
    const auto frames = parse_frames(h.take());
    for (std::int32_t id : {5, 7}) {
        const Frame* rst = find_frame(frames, NGHTTP2_RST_STREAM, id);
        ASSERT_NE(rst, nullptr) << id;
        EXPECT_EQ(rst->word(0), static_cast<std::uint32_t>(NGHTTP2_REFUSED_STREAM));
    }
    EXPECT_EQ(find_frame(frames, NGHTTP2_GOAWAY), nullptr);
    EXPECT_FALSE(h.conn.closing());
    EXPECT_EQ(h.dispatcher.held.size(), 2u);
    // Once a stream is answered, a new one fits again.
    h.dispatcher.held[0].send(Response::text("x"));
    h.take();
    h.feed(frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 9, enc.encode(get_fields("/d"))));
    EXPECT_EQ(find_frame(parse_frames(h.take()), NGHTTP2_RST_STREAM), nullptr);
    EXPECT_EQ(h.dispatcher.held.size(), 3u);
}

TEST(Http2Protocol, InputOneByteAtATime) {
    Harness h;
    Client c;
    const auto a = c.post("/a", std::string(3000, 'p'));
    const auto b = c.get("/b", {{"x-h", "v"}});
    for (int round = 0; round < 20; ++round) {
        const std::string up = c.output();
        for (char ch : up) h.feed(std::string_view(&ch, 1));
        const std::string down = h.take();
        if (!down.empty()) c.input(down);
        if (up.empty() && down.empty()) break;
    }
    EXPECT_EQ(c.streams[a].body, "POST /a " + std::string(3000, 'p'));
    EXPECT_EQ(c.streams[b].body, "GET /b");
    EXPECT_FALSE(h.conn.closing());
}

TEST(Http2Protocol, RapidResetEndsTheConnection) {
    Harness h(config_with([](net::ServerConfig& c) { c.http2_limits.max_resets_per_second = 20; }));
    h.dispatcher.defer = true;
    Encoder enc;
    std::string in = raw_preface();
    for (std::int32_t id = 1; id < 2 * 200; id += 2) {
        in += frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, id, enc.encode(get_fields("/r")));
        in += frame(NGHTTP2_RST_STREAM, 0, id, u32(NGHTTP2_CANCEL));
    }
    h.feed(in);
    const auto frames = parse_frames(h.take());
    const Frame* goaway = find_frame(frames, NGHTTP2_GOAWAY);
    ASSERT_NE(goaway, nullptr);
    EXPECT_EQ(goaway->word(4), static_cast<std::uint32_t>(NGHTTP2_ENHANCE_YOUR_CALM));
    EXPECT_LE(goaway->word(0), 2u * 21);  // the 21st reset is one too many
    EXPECT_EQ(std::count_if(frames.begin(), frames.end(), [](const Frame& f) { return f.type == NGHTTP2_GOAWAY; }), 1);
    EXPECT_TRUE(h.conn.closing());
    EXPECT_TRUE(h.dispatcher.seen.empty());  // no stream ended: nothing was dispatched
}

TEST(Http2Protocol, ResetBudgetRefillsOverTime) {
    Harness h(config_with([](net::ServerConfig& c) { c.http2_limits.max_resets_per_second = 20; }));
    Encoder enc;
    h.feed(raw_preface());
    std::int32_t id = 1;
    // 15 resets a second for 5 seconds: 75 in all, never more than the budget at once.
    for (int second = 0; second < 5; ++second) {
        std::string in;
        for (int i = 0; i < 15; ++i, id += 2) {
            in += frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, id, enc.encode(get_fields("/r")));
            in += frame(NGHTTP2_RST_STREAM, 0, id, u32(NGHTTP2_CANCEL));
        }
        h.feed(in);
        h.driver.clock += 1s;
    }
    EXPECT_EQ(find_frame(parse_frames(h.take()), NGHTTP2_GOAWAY), nullptr);
    EXPECT_FALSE(h.conn.closing());
}

TEST(Http2Protocol, FewResetsAreFine) {
    Harness h(config_with([](net::ServerConfig& c) { c.http2_limits.max_resets_per_second = 20; }));
    Encoder enc;
    std::string in = raw_preface();
    for (std::int32_t id = 1; id < 2 * 10; id += 2) {
        in += frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, id, enc.encode(get_fields("/r")));
        in += frame(NGHTTP2_RST_STREAM, 0, id, u32(NGHTTP2_CANCEL));
    }
    h.feed(in);
    EXPECT_EQ(find_frame(parse_frames(h.take()), NGHTTP2_GOAWAY), nullptr);
    EXPECT_FALSE(h.conn.closing());
}

TEST(Http2Protocol, ContinuationFloodEndsTheConnection) {
    Harness h(config_with([](net::ServerConfig& c) { c.http2_limits.max_continuations = 8; }));
    Encoder enc;
    Fields f = get_fields("/flood");
    f.emplace_back("x-long", std::string(200, 'c'));
    const std::string block = enc.encode(f);
    ASSERT_GT(block.size(), 40u);
    std::string in = raw_preface() + frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_STREAM, 1, block.substr(0, 4));
    for (std::size_t at = 4; at < 4 + 30; ++at) in += frame(NGHTTP2_CONTINUATION, 0, 1, block.substr(at, 1));
    h.feed(in);
    const auto frames = parse_frames(h.take());
    ASSERT_NE(find_frame(frames, NGHTTP2_GOAWAY), nullptr);
    EXPECT_TRUE(h.conn.closing());
    EXPECT_TRUE(h.dispatcher.seen.empty());
}

TEST(Http2Protocol, FewContinuationsAreFine) {
    Harness h;
    Encoder enc;
    const std::string block = enc.encode(get_fields("/cont"));
    std::string in = raw_preface() + frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_STREAM, 1, block.substr(0, 2));
    in += frame(NGHTTP2_CONTINUATION, 0, 1, block.substr(2, 2));
    in += frame(NGHTTP2_CONTINUATION, NGHTTP2_FLAG_END_HEADERS, 1, block.substr(4));
    h.feed(in);
    h.take();
    ASSERT_EQ(h.dispatcher.seen.size(), 1u);
    EXPECT_EQ(h.dispatcher.seen[0].path, "/cont");
}

TEST(Http2Protocol, FrameLargerThanMaxFrameSizeIsFrameSizeError) {
    Harness h;  // SETTINGS_MAX_FRAME_SIZE 16384
    Encoder enc;
    std::string block = enc.encode(get_fields("/big"));
    const std::string payload = block + std::string(16385 - block.size(), '\0');
    h.feed(raw_preface() + frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1, payload));
    const auto frames = parse_frames(h.take());
    const Frame* goaway = find_frame(frames, NGHTTP2_GOAWAY);
    ASSERT_NE(goaway, nullptr);
    EXPECT_EQ(goaway->word(4), static_cast<std::uint32_t>(NGHTTP2_FRAME_SIZE_ERROR));
    EXPECT_TRUE(h.conn.closing());
    EXPECT_TRUE(h.dispatcher.seen.empty());
}

TEST(Http2Protocol, GarbageInsteadOfPrefaceCloses) {
    Harness h;
    h.feed("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    h.take();
    EXPECT_TRUE(h.conn.closing());
    EXPECT_TRUE(h.dispatcher.seen.empty());
}

TEST(Http2Protocol, ProtocolErrorAffectsOnlyItsConnection) {
    Harness bad, good;
    Client c;
    const auto id = c.get("/ok");
    bad.feed(raw_preface() + frame(NGHTTP2_DATA, 0, 0, "x"));  // DATA on stream 0: connection error
    EXPECT_TRUE(bad.conn.closing());
    ASSERT_NE(find_frame(parse_frames(bad.take()), NGHTTP2_GOAWAY), nullptr);
    pump(good, c);
    EXPECT_EQ(c.streams[id].body, "GET /ok");
    EXPECT_FALSE(good.conn.closing());
}

// ================================================================ lifecycle

TEST(Http2Protocol, ShutdownSendsGoawayAndFinishesInFlightStreams) {
    Harness h;
    h.dispatcher.defer = true;
    Client c;
    const auto id = c.get("/slow");
    pump(h, c);
    ASSERT_EQ(h.dispatcher.held.size(), 1u);
    h.conn.shutdown();
    pump(h, c);
    EXPECT_EQ(c.goaways, 1);
    EXPECT_EQ(c.goaway_last_stream, (1u << 31) - 1);  // the shutdown notice
    h.advance(100ms);
    pump(h, c);
    EXPECT_EQ(c.goaways, 2);
    EXPECT_EQ(c.goaway_last_stream, id);
    EXPECT_EQ(c.goaway_error, static_cast<std::uint32_t>(NGHTTP2_NO_ERROR));
    EXPECT_FALSE(h.conn.closing());
    EXPECT_TRUE(h.conn.protocol()->exchange_outstanding());
    h.dispatcher.held[0].send(Response::text("done"));
    EXPECT_TRUE(h.conn.closing());
    pump(h, c);
    EXPECT_EQ(c.streams[id].body, "done");
}

TEST(Http2Protocol, ShutdownWhenIdleClosesAtOnce) {
    Harness h;
    Client c;
    const auto id = c.get("/x");
    pump(h, c);
    h.conn.shutdown();
    pump(h, c);
    EXPECT_EQ(c.goaways, 1);
    EXPECT_EQ(c.goaway_last_stream, id);
    EXPECT_TRUE(h.conn.closing());
}

TEST(Http2Protocol, CompletionAfterClientResetIsIgnored) {
    Harness h;
    h.dispatcher.defer = true;
    Client c;
    const auto id = c.get("/gone?x=1", {{"x-h", "value"}});
    pump(h, c);
    ASSERT_EQ(h.dispatcher.held.size(), 1u);
    nghttp2_submit_rst_stream(c.session, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    pump(h, c);
    // The stream is gone for nghttp2, but the handler's Request must still be readable.
    EXPECT_TRUE(h.conn.protocol()->exchange_outstanding());
    EXPECT_EQ(covet_test::snapshot(*h.dispatcher.held_request), h.dispatcher.seen[0]);
    h.dispatcher.held[0].send(Response::text("too late"));
    EXPECT_TRUE(h.take().empty());
    EXPECT_FALSE(h.conn.protocol()->exchange_outstanding());
    EXPECT_EQ(h.dispatcher.finalized, 0);
    h.dispatcher.defer = false;
    const auto next = c.get("/next");
    pump(h, c);
    EXPECT_EQ(c.streams[next].body, "GET /next");
}

// Writes after the client reset a stream are dropped, and the exchange is over once the application lets go.
TEST(Http2Protocol, StreamWritesAfterClientResetAreIgnored) {
    Harness h;
    StreamWriter writer;
    h.dispatcher.handler = [&](Request&, Responder& res) { writer = res.stream(Response::text("a")); };
    Client c;
    const auto id = c.get("/s");
    pump(h, c);
    nghttp2_submit_rst_stream(c.session, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    pump(h, c);
    EXPECT_TRUE(h.dispatcher.over_states.empty()) << "the application still holds it";
    writer.write("more");
    writer.end();
    EXPECT_TRUE(h.take().empty());
    EXPECT_FALSE(h.conn.protocol()->exchange_outstanding());
    // Over (exchange_over) as soon as the application let go, not when its pooled slot is next used; a completed
    // stream's slot is handed back the same way.
    ASSERT_EQ(h.dispatcher.over_states.size(), 1u);
    EXPECT_EQ(h.dispatcher.over_states[0], h.dispatcher.dispatch_states.at(0));
    h.dispatcher.handler = nullptr;  // echo
    c.get("/next");
    pump(h, c);
    EXPECT_EQ(h.dispatcher.over_states.size(), 2u);
    EXPECT_EQ(h.dispatcher.dispatch_states.at(1), h.dispatcher.dispatch_states.at(0)) << "the slot was pooled";
}

// A watched stream (StreamFlow): its unsent bytes count until the output drained; a producer that waits is
// woken then, and when the client resets the stream.
TEST(Http2Protocol, StreamFlowCountsUnsentBytesAndClosesOnReset) {
    Harness h;
    StreamWriter writer;
    int woken = 0;
    auto flow = std::make_shared<covet::StreamFlow>(100, [&woken](covet::StreamFlow&) { ++woken; });
    h.dispatcher.handler = [&](Request&, Responder& res) { writer = res.stream(Response::text("a"), flow); };
    Client c;
    const auto id = c.get("/s");
    pump(h, c);
    EXPECT_TRUE(flow->is_open());
    writer.write(std::string(300, 'b'));
    EXPECT_GE(flow->buffered(), 300u) << "unsent";
    EXPECT_TRUE(flow->arm());
    pump(h, c);
    h.conn.output_drained();
    EXPECT_EQ(c.streams[id].body, "a" + std::string(300, 'b'));
    EXPECT_EQ(woken, 1);
    EXPECT_EQ(flow->buffered(), 0u);
    writer.write(std::string(300, 'c'));
    EXPECT_TRUE(flow->arm());
    nghttp2_submit_rst_stream(c.session, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    pump(h, c);
    EXPECT_FALSE(flow->is_open()) << "reset by the client";
    EXPECT_EQ(woken, 2);
    writer.end();
}

// A finished stream's flow closes; so does one whose connection goes away.
TEST(Http2Protocol, StreamFlowClosesWhenTheStreamEndsOrTheConnectionGoes) {
    auto flow = std::make_shared<covet::StreamFlow>(100);
    {
        Harness h;
        StreamWriter writer;
        h.dispatcher.handler = [&](Request&, Responder& res) { writer = res.stream(Response::text("a"), flow); };
        Client c;
        c.get("/s");
        pump(h, c);
        EXPECT_TRUE(flow->is_open());
        writer.end();
        EXPECT_FALSE(flow->is_open());
    }
    auto flow2 = std::make_shared<covet::StreamFlow>(100);
    {
        Harness h;
        StreamWriter kept;
        h.dispatcher.handler = [&](Request&, Responder& res) { kept = res.stream(Response::text("a"), flow2); };
        Client c;
        c.get("/s");
        pump(h, c);
        EXPECT_TRUE(flow2->is_open());
        h.conn.peer_closed();
        EXPECT_FALSE(flow2->is_open());
    }
}

// A handler waiting for the client to go away (StreamFlow::arm_close) is notified when the client resets its
// stream (RST_STREAM) or the connection goes, not before.
TEST(Http2Protocol, CloseWatchNotifiesOnResetAndOnConnectionLoss) {
    for (const bool reset : {true, false}) {
        Harness h;
        Responder kept;
        h.dispatcher.handler = [&](Request&, Responder& res) { kept = std::move(res); };
        int woken = 0;
        auto flow = std::make_shared<covet::StreamFlow>(100, [&woken](covet::StreamFlow&) { ++woken; });
        Client c;
        const auto id = c.get("/w");
        pump(h, c);
        kept.watch(flow);
        EXPECT_TRUE(flow->arm_close());
        pump(h, c);
        EXPECT_EQ(woken, 0);
        if (reset) {
            nghttp2_submit_rst_stream(c.session, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
            pump(h, c);
        } else {
            h.conn.peer_closed();
        }
        EXPECT_EQ(woken, 1) << (reset ? "RST_STREAM" : "connection loss");
        EXPECT_FALSE(flow->arm_close());
        kept.send(Response::text("late"));
    }
}

TEST(Http2Protocol, KeepAliveIdleTimeout) {
    Harness h(config_with([](net::ServerConfig& c) { c.timeouts.keep_alive = 5s; }));
    Client c;
    c.get("/x");
    pump(h, c);
    h.advance(4s);
    EXPECT_FALSE(h.conn.closing());
    h.advance(2s);
    EXPECT_TRUE(h.conn.closing());
    pump(h, c);
    EXPECT_EQ(c.goaways, 1);
    EXPECT_EQ(c.goaway_error, static_cast<std::uint32_t>(NGHTTP2_NO_ERROR));
}

TEST(Http2Protocol, NoIdleTimeoutWhileAStreamIsOpen) {
    Harness h(config_with([](net::ServerConfig& c) { c.timeouts.keep_alive = 5s; }));
    h.dispatcher.defer = true;
    Client c;
    c.get("/x");
    pump(h, c);
    h.advance(60s);
    EXPECT_FALSE(h.conn.closing());
    h.dispatcher.held[0].send(Response::text("x"));
    pump(h, c);
    h.advance(6s);
    EXPECT_TRUE(h.conn.closing());
}

net::ServerConfig ping_config() {
    return config_with([](net::ServerConfig& c) {
        c.http2_limits.ping_interval = 10s;
        c.http2_limits.ping_timeout = 5s;
    });
}

TEST(Http2Protocol, KeepAlivePingAfterTheClientIsSilentWhileAStreamIsOpen) {
    Harness h(ping_config());
    h.dispatcher.defer = true;  // a long call: the stream stays open
    Client c;
    c.get("/watch");
    pump(h, c);
    h.advance(9s);
    pump(h, c);
    EXPECT_EQ(c.pings, 0);
    h.advance(2s);
    pump(h, c);  // the client answers (nghttp2 ACKs PINGs itself)
    EXPECT_EQ(c.pings, 1);
    h.advance(6s);  // past ping_timeout: the ACK counted, the connection stays
    EXPECT_FALSE(h.conn.closing());
    h.advance(5s);  // silent again for ping_interval: the next PING
    pump(h, c);
    EXPECT_EQ(c.pings, 2);
    EXPECT_FALSE(h.conn.closing());
    h.dispatcher.held[0].send(Response::text("done"));
    pump(h, c);
    EXPECT_EQ(c.goaways, 0);
}

TEST(Http2Protocol, UnansweredKeepAlivePingClosesTheConnection) {
    Harness h(ping_config());
    h.dispatcher.defer = true;
    Client c;
    c.get("/watch");
    pump(h, c);
    h.advance(11s);
    c.input(h.take());  // the PING reaches the client, whose answer never reaches the server (a dead link)
    EXPECT_EQ(c.pings, 1);
    h.advance(4s);
    EXPECT_FALSE(h.conn.closing());
    h.advance(2s);
    EXPECT_TRUE(h.conn.closing());
    EXPECT_TRUE(h.driver.closed);  // at once: output queued for a dead peer would keep the socket for minutes
    c.input(h.take());
    EXPECT_EQ(c.goaways, 1);
    EXPECT_EQ(c.goaway_error, static_cast<std::uint32_t>(NGHTTP2_NO_ERROR));
}

TEST(Http2Protocol, AClientTakingALongDownloadIsNotTakenForGone) {
    Harness h(config_with([](net::ServerConfig& c) {
        c.http2_limits.ping_interval = 10s;
        c.http2_limits.ping_timeout = 5s;
        c.limits.output_high_water = 20000;
    }));
    const std::string big(60 * 1000, 'b');
    h.dispatcher.handler = [&](Request&, Responder& res) { res.send(Response::text(big)); };
    Client c;
    const auto id = c.get("/download");
    h.feed(c.output());  // the answer fills the output past its high-water mark: the server stops reading
    for (int i = 0; i < 8; ++i) {
        h.advance(5s);  // the socket takes nothing for 40 s (a slow link), so no answer can be read either
        ASSERT_FALSE(h.conn.closing()) << "closed after " << (i + 1) * 5 << " s";
    }
    pump(h, c);
    EXPECT_EQ(c.streams[id].body, big);
    EXPECT_FALSE(h.conn.closing());
}

TEST(Http2Protocol, NoKeepAlivePingsWhenTheyAreOffOrNoStreamIsOpen) {
    Harness off(config_with([](net::ServerConfig& c) { c.http2_limits.ping_interval = 0s; }));
    off.dispatcher.defer = true;
    Client a;
    a.get("/watch");
    pump(off, a);
    off.advance(3h);
    pump(off, a);
    EXPECT_EQ(a.pings, 0);
    EXPECT_FALSE(off.conn.closing());

    Harness idle(config_with([](net::ServerConfig& c) {
        c.http2_limits.ping_interval = 1s;
        c.timeouts.keep_alive = 30s;
    }));
    Client b;
    b.get("/x");  // answered at once: no stream stays open
    pump(idle, b);
    idle.advance(20s);
    pump(idle, b);
    EXPECT_EQ(b.pings, 0);
}

TEST(Http2Protocol, ClientThatKeepsItsWindowShutIsDisconnected) {
    Harness h(config_with([](net::ServerConfig& c) { c.timeouts.keep_alive = 5s; }));
    const std::string big(300 * 1000, 'b');
    h.dispatcher.handler = [&](Request&, Responder& res) { res.send(Response::text(big)); };
    Client c;
    const auto id = c.get("/download");
    h.feed(c.output());
    c.input(h.take());  // the first window's worth; the client then never sends a WINDOW_UPDATE
    EXPECT_LT(c.streams[id].body.size(), big.size());
    h.advance(4s);
    EXPECT_FALSE(h.conn.closing());
    h.advance(2s);
    EXPECT_TRUE(h.conn.closing());
}

TEST(Http2Protocol, SlowButProgressingDownloadIsNotCut) {
    Harness h(config_with([](net::ServerConfig& c) { c.timeouts.keep_alive = 5s; }));
    const std::string big(300 * 1000, 'b');
    h.dispatcher.handler = [&](Request&, Responder& res) { res.send(Response::text(big)); };
    Client c;
    const auto id = c.get("/download");
    for (int i = 0; i < 30 && c.streams[id].body.size() < big.size(); ++i) {
        h.feed(c.output());  // WINDOW_UPDATEs trickle in 4 s apart: slow, but never 5 s without progress
        c.input(h.take());
        h.advance(4s);
        ASSERT_FALSE(h.conn.closing()) << "cut after " << c.streams[id].body.size() << " bytes";
    }
    EXPECT_EQ(c.streams[id].body, big);
}

TEST(Http2Protocol, StalledBodyGets408OnItsStreamOnly) {
    Harness h(config_with([](net::ServerConfig& c) { c.timeouts.body = 2s; }));
    Client c;
    Fields f = {{":method", "POST"}, {":scheme", "http"}, {":path", "/slow"}, {":authority", "t"}};
    const auto slow = c.request(f, {}, /*with_body=*/true, /*stall=*/true);
    pump(h, c);
    h.advance(1s);
    const auto quick = c.get("/quick");
    pump(h, c);
    EXPECT_EQ(c.streams[quick].body, "GET /quick");
    h.advance(1500ms);
    pump(h, c);
    EXPECT_EQ(c.streams[slow].status, 408);
    EXPECT_TRUE(c.streams[slow].reset);  // answered before its body ended: the client is told to stop
    EXPECT_EQ(c.streams[slow].rst_error, static_cast<std::uint32_t>(NGHTTP2_NO_ERROR));
    EXPECT_FALSE(h.conn.closing());
    EXPECT_TRUE(h.dispatcher.seen.size() == 1u);
}

// ---- body pace per stream: the whole-body deadline and the minimum data rate

net::ServerConfig pace(std::size_t rate, std::chrono::milliseconds grace, std::chrono::milliseconds deadline = {}) {
    return config_with([&](net::ServerConfig& c) {
        c.timeouts.body = 1h;  // the idle gap between body bytes is not under test
        c.timeouts.min_body_rate = rate;
        c.timeouts.min_body_rate_grace = grace;
        c.timeouts.body_deadline = deadline;
    });
}

const Fields slow_post = {{":method", "POST"}, {":scheme", "http"}, {":path", "/slow"}, {":authority", "t"}};

// The frames the server sends for a stream it refused while the body was arriving: the response (its
// first header block on the connection), then RST_STREAM(NO_ERROR) so that the client stops sending.
void expect_408_then_reset(const std::vector<Frame>& frames, std::int32_t id, std::string_view why) {
    const auto at = [&](std::uint8_t type) {
        return std::find_if(frames.begin(), frames.end(),
                            [&](const Frame& f) { return f.type == type && f.stream == id; });
    };
    const auto head = at(NGHTTP2_HEADERS), data = at(NGHTTP2_DATA), rst = at(NGHTTP2_RST_STREAM);
    ASSERT_NE(head, frames.end());
    EXPECT_EQ(field(decode_block(head->payload), ":status"), "408");
    ASSERT_NE(data, frames.end());
    EXPECT_EQ(data->payload, "408 Request Timeout: " + std::string(why) + "\n");
    EXPECT_TRUE(data->flags & NGHTTP2_FLAG_END_STREAM);
    ASSERT_NE(rst, frames.end());
    EXPECT_GT(rst - frames.begin(), data - frames.begin()) << "the reset must not overtake the response";
    EXPECT_EQ(rst->word(0), static_cast<std::uint32_t>(NGHTTP2_NO_ERROR));
}

TEST(Http2Protocol, TrickledStreamBodyGets408AndResetOnItsStreamOnly) {
    Harness h(pace(100, 2s));
    Encoder enc;
    h.feed(raw_preface() + frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, enc.encode(slow_post)));
    h.take();
    for (int i = 0; i < 7; ++i) {  // one byte every 250 ms
        h.feed(frame(NGHTTP2_DATA, 0, 1, "x"));
        h.advance(250ms);
    }
    EXPECT_EQ(find_frame(parse_frames(h.take()), NGHTTP2_HEADERS), nullptr);  // 1750 ms: within the grace period
    h.feed(frame(NGHTTP2_DATA, 0, 1, "x"));
    h.advance(250ms);
    expect_408_then_reset(
        parse_frames(h.take()), 1,
        "the request body arrived slower than the minimum data rate of 100 bytes/s (8 bytes in 2000 ms); "
        "to accept slower uploads, lower it or turn it off (0) with min_body_rate / --min-body-rate");
    // More trickle on the reset stream is ignored; the connection serves other streams.
    h.feed(frame(NGHTTP2_DATA, 0, 1, "x") + frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM,
                                                  3, enc.encode(get_fields("/quick"))));
    const auto frames = parse_frames(h.take());
    const Frame* quick = find_frame(frames, NGHTTP2_DATA, 3);
    ASSERT_NE(quick, nullptr);
    EXPECT_EQ(quick->payload, "GET /quick");
    EXPECT_EQ(find_frame(frames, NGHTTP2_GOAWAY), nullptr);
    EXPECT_FALSE(h.conn.closing());
    ASSERT_EQ(h.dispatcher.seen.size(), 1u);
    EXPECT_EQ(h.dispatcher.seen[0].target, "/quick");
}

TEST(Http2Protocol, OnlyTheSlowStreamOfTwoIsRefused) {
    Harness h(pace(100, 1s));
    Encoder enc;
    const std::string first = enc.encode(slow_post);  // in this order: the encoder's table is shared
    const std::string second = enc.encode(slow_post);
    h.feed(raw_preface() + frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, first) +
           frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 3, second));
    h.take();
    for (int i = 0; i < 4; ++i) {  // stream 1: 4 bytes/s; stream 3: 200 bytes/s
        h.feed(frame(NGHTTP2_DATA, 0, 1, "x") + frame(NGHTTP2_DATA, 0, 3, std::string(50, 'y')));
        h.advance(250ms);
    }
    auto frames = parse_frames(h.take());
    EXPECT_NE(find_frame(frames, NGHTTP2_RST_STREAM, 1), nullptr);
    EXPECT_EQ(find_frame(frames, NGHTTP2_HEADERS, 3), nullptr);
    h.feed(frame(NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, 3, std::string(50, 'y')));
    frames = parse_frames(h.take());
    const Frame* done = find_frame(frames, NGHTTP2_DATA, 3);
    ASSERT_NE(done, nullptr);
    EXPECT_EQ(done->payload, "POST /slow " + std::string(250, 'y'));
    EXPECT_EQ(find_frame(frames, NGHTTP2_RST_STREAM, 3), nullptr);
}

TEST(Http2Protocol, FastStreamBodyIsServed) {
    Harness h(pace(1000, 1s));
    Client c;
    const auto id = c.post("/fast", std::string(20000, 'f'));  // all at once: far above the floor
    pump(h, c);
    h.advance(10s);
    EXPECT_EQ(c.streams[id].status, 200);
    EXPECT_EQ(c.streams[id].body, "POST /fast " + std::string(20000, 'f'));
    EXPECT_FALSE(c.streams[id].reset);
}

TEST(Http2Protocol, StreamBodyPastTheDeadlineIs408) {
    Harness h(pace(0, 0s, 3s));
    Encoder enc;
    h.feed(raw_preface() + frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, enc.encode(slow_post)));
    h.take();
    for (int i = 0; i < 11; ++i) {  // 4 KB/s, but not done within 3 s
        h.feed(frame(NGHTTP2_DATA, 0, 1, std::string(1000, 'z')));
        h.advance(250ms);
    }
    EXPECT_EQ(find_frame(parse_frames(h.take()), NGHTTP2_HEADERS), nullptr);
    h.advance(250ms);
    expect_408_then_reset(parse_frames(h.take()), 1,
                          "the request body took longer than the body deadline of 3000 ms; to accept slower uploads, "
                          "raise it or turn it off (0) with body_deadline_ms / --body-deadline");
    EXPECT_FALSE(h.conn.closing());
    EXPECT_TRUE(h.dispatcher.seen.empty());
}

TEST(Http2Protocol, StalledHeaderBlockEndsTheConnection) {
    Harness h(config_with([](net::ServerConfig& c) { c.timeouts.header = 1s; }));
    Encoder enc;
    const std::string block = enc.encode(get_fields("/stall"));
    h.feed(raw_preface() + frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_STREAM, 1, block.substr(0, 3)));
    h.take();
    h.advance(500ms);
    EXPECT_FALSE(h.conn.closing());
    h.advance(600ms);
    EXPECT_TRUE(h.conn.closing());
    EXPECT_NE(find_frame(parse_frames(h.take()), NGHTTP2_GOAWAY), nullptr);
}

TEST(Http2Protocol, PeerCloseWaitsForInFlightResponses) {
    Harness h;
    h.dispatcher.defer = true;
    Client c;
    const auto id = c.get("/x");
    pump(h, c);
    h.conn.peer_closed();
    EXPECT_FALSE(h.conn.closing());
    h.dispatcher.held[0].send(Response::text("bye"));
    EXPECT_TRUE(h.conn.closing());
    c.input(h.take());
    EXPECT_EQ(c.streams[id].body, "bye");
}

// ================================================================ h2c (through the HTTP/1.1 handler)

TEST(H2c, PriorKnowledge) {
    Harness h({}, Start::http1);
    Client c;
    const auto id = c.get("/pk?q=1");
    const std::string up = c.output();
    // The preface split inside itself: the HTTP/1.1 handler waits for all of it.
    h.feed(up.substr(0, 10));
    EXPECT_TRUE(h.take().empty());
    h.feed(up.substr(10));
    c.input(h.take());
    pump(h, c);
    EXPECT_EQ(c.streams[id].status, 200);
    EXPECT_EQ(c.streams[id].body, "GET /pk?q=1");
    ASSERT_EQ(h.dispatcher.seen.size(), 1u);
    EXPECT_EQ(h.dispatcher.seen[0].protocol, "HTTP/2");
    EXPECT_FALSE(h.conn.closing());
}

std::string settings_header(const std::vector<nghttp2_settings_entry>& iv) {
    std::uint8_t buf[64];
    const ssize_t n = nghttp2_pack_settings_payload(buf, sizeof buf, iv.data(), iv.size());
    EXPECT_GE(n, 0);
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (ssize_t i = 0; i < n; ++i) {
        acc = (acc << 8) | buf[i];
        bits += 8;
        while (bits >= 6) out.push_back(alphabet[(acc >> (bits -= 6)) & 63]);
    }
    if (bits > 0) out.push_back(alphabet[(acc << (6 - bits)) & 63]);
    return out;
}

TEST(H2c, UpgradeAnswersStreamOneOverHttp2) {
    Harness h({}, Start::http1);
    const std::vector<nghttp2_settings_entry> iv = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
                                                    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 65535}};
    const std::string settings = settings_header(iv);
    h.feed(
        "POST /up?x=1 HTTP/1.1\r\nHost: up.example\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        "HTTP2-Settings: " +
        settings + "\r\nContent-Length: 4\r\n\r\nbody");
    const std::string out = h.take();
    const std::string_view switching =
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
    ASSERT_EQ(out.substr(0, switching.size()), switching);
    ASSERT_EQ(h.dispatcher.seen.size(), 1u);
    EXPECT_EQ(h.dispatcher.seen[0].protocol, "HTTP/2");
    EXPECT_EQ(h.dispatcher.seen[0].body, "body");
    EXPECT_EQ(h.dispatcher.seen[0].header("host"), "up.example");
    EXPECT_EQ(h.dispatcher.seen[0].header("upgrade"), "<none>");
    EXPECT_EQ(h.dispatcher.seen[0].header("http2-settings"), "<none>");

    Client c;
    std::uint8_t payload[64];
    const ssize_t n = nghttp2_pack_settings_payload(payload, sizeof payload, iv.data(), iv.size());
    ASSERT_EQ(nghttp2_session_upgrade2(c.session, payload, static_cast<std::size_t>(n), 0, nullptr), 0);
    c.input(std::string_view(out).substr(switching.size()));
    pump(h, c);
    EXPECT_EQ(c.streams[1].status, 200);
    EXPECT_EQ(c.streams[1].body, "POST /up?x=1 body");
    const auto next = c.get("/second");
    pump(h, c);
    EXPECT_EQ(c.streams[next].body, "GET /second");
    EXPECT_FALSE(h.conn.closing());
}

TEST(H2c, InvalidSettingsAreAnsweredOverHttp1) {
    Harness h({}, Start::http1);
    h.feed(
        "GET /x HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: "
        "!!!\r\n\r\n");
    const std::string out = h.take();
    EXPECT_EQ(out.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << out;
    EXPECT_NE(out.find("\r\n\r\nGET /x"), std::string::npos);
}

TEST(H2c, DisabledMeansPlainHttp1) {
    auto no_h2 = config_with([](net::ServerConfig& c) { c.http2 = false; });
    {
        Harness h(no_h2, Start::http1);
        h.feed("GET /x HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: " +
               settings_header({}) + "\r\n\r\n");
        const std::string out = h.take();
        EXPECT_EQ(out.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << out;
        EXPECT_FALSE(h.conn.closing());
    }
    {
        Harness h(no_h2, Start::http1);
        Client c;
        c.get("/");
        h.feed(c.output());
        const std::string out = h.take();
        EXPECT_EQ(out.rfind("HTTP/1.1 505", 0), 0u) << out;
        EXPECT_TRUE(h.conn.closing());
        EXPECT_TRUE(h.dispatcher.seen.empty());
    }
}

TEST(Http2Protocol, RequestsCarryTheTlsSession) {
    Harness h({}, Start::http2, /*tls=*/true);
    const net::TlsInfo* seen = nullptr;
    std::string scheme;
    h.dispatcher.handler = [&](Request& r, Responder& res) {
        seen = r.tls();
        scheme = r.scheme();
        res.send(Response::text("s"));
    };
    Client c;
    const auto id = c.get("/");
    pump(h, c);
    EXPECT_EQ(c.streams[id].body, "s");
    ASSERT_NE(seen, nullptr);
    EXPECT_EQ(seen, h.conn.tls());
    EXPECT_EQ(seen->alpn, "h2");
    EXPECT_EQ(scheme, "https");
}

TEST(H2c, NotOverTls) {
    {
        Harness h({}, Start::http1, /*tls=*/true);
        Client c;
        c.get("/");
        h.feed(c.output());
        const std::string out = h.take();
        EXPECT_EQ(out.rfind("HTTP/1.1 505", 0), 0u) << out;
        EXPECT_TRUE(h.conn.closing());
    }
    {
        Harness h({}, Start::http1, /*tls=*/true);
        const net::TlsInfo* seen = nullptr;
        h.dispatcher.handler = [&](Request& r, Responder& res) {
            seen = r.tls();
            res.send(Response::text("x"));
        };
        h.feed("GET /x HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: " +
               settings_header({}) + "\r\n\r\n");
        const std::string out = h.take();
        EXPECT_EQ(out.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << out;
        EXPECT_EQ(seen, h.conn.tls());  // the HTTP/1.1 handler sets the TLS session too
        EXPECT_NE(seen, nullptr);
    }
}

TEST(H2c, PrefaceLaterInTheConnectionIsNotHttp2) {
    Harness h({}, Start::http1);
    h.feed("GET /first HTTP/1.1\r\nHost: t\r\n\r\n");
    h.take();
    h.feed(std::string(covet::http2::client_preface));
    const std::string out = h.take();
    EXPECT_EQ(out.rfind("HTTP/1.1 505", 0), 0u) << out;
    EXPECT_TRUE(h.conn.closing());
}

// ================================================================ streamed request bodies

class UploadHarness : public BasicHarness<covet_test::UploadDispatcher> {
public:
    explicit UploadHarness(net::ServerConfig config = upload_config()) : BasicHarness(std::move(config)) {}
    static net::ServerConfig upload_config() {
        net::ServerConfig c;
        c.limits.stream_body_threshold = 1000;
        c.limits.max_body_bytes = 2000;
        c.http2_limits.initial_window_size = 32768;
        c.timeouts.body = 2s;
        c.timeouts.min_body_rate = 0;
        return c;
    }
    void pump(Client& c) {
        for (int i = 0; i < 1000; ++i) {
            const std::string up = c.output();
            feed(up);
            const std::string down = take();
            if (!down.empty()) c.input(down);
            if (up.empty() && down.empty()) return;
        }
        ADD_FAILURE() << "pump did not settle";
    }
    covet_test::RecordingReader& reader() { return *dispatcher.reader; }
};

std::string pattern(std::size_t n) {
    std::string s(n, ' ');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 26) % 26);
    return s;
}
Fields upload_fields(std::string_view path, std::size_t length = 0) {
    Fields f = {{":method", "POST"}, {":scheme", "http"}, {":path", std::string(path)}, {":authority", "t"}};
    if (length) f.emplace_back("content-length", std::to_string(length));
    return f;
}

TEST(Http2Upload, LargeBodyStreamsAndItsWindowOpensOnlyAsTheReaderConsumes) {
    UploadHarness h;
    Client c;
    const std::string body = pattern(200000);  // 100 × max_body_bytes
    const auto id = c.request(upload_fields("/up", body.size()), body);
    h.pump(c);
    ASSERT_EQ(h.dispatcher.streamed, std::vector<bool>{true});
    EXPECT_EQ(h.dispatcher.seen[0].body, "");
    // Without acknowledgements the client can send one stream window, no more (the protocol's default
    // 64 KiB: it sent before our SETTINGS arrived).
    EXPECT_LE(h.reader().data.size(), 65535u);
    EXPECT_GT(h.reader().data.size(), 16000u);
    const std::size_t first = h.reader().data.size();
    h.pump(c);
    EXPECT_EQ(h.reader().data.size(), first);
    std::size_t acked = 0;
    for (int round = 0; round < 100 && !h.reader().ended; ++round) {
        const std::size_t now = h.reader().data.size();
        h.dispatcher.body.consume(now - acked);
        acked = now;
        h.pump(c);
    }
    EXPECT_EQ(h.reader().data, body);
    EXPECT_EQ(h.reader().ended, 1);
    h.dispatcher.responder.send(Response::text("stored"));
    h.pump(c);
    EXPECT_EQ(c.streams[id].status, 200);
    EXPECT_EQ(c.streams[id].body, "stored");
    EXPECT_FALSE(c.streams[id].reset);
}

TEST(Http2Upload, AHeldUploadDoesNotStallOtherStreams) {
    UploadHarness h;
    Client c;
    c.request(upload_fields("/up", 100000), pattern(100000));
    h.pump(c);
    ASSERT_EQ(h.dispatcher.streamed, std::vector<bool>{true});
    const std::size_t held = h.reader().data.size();
    for (int i = 0; i < 80; ++i) {  // 72000 bytes: more than any window; the held stream shuts none but its own
        const auto small = c.post("/small", pattern(900));
        const auto get = c.get("/g");
        h.pump(c);
        EXPECT_EQ(c.streams[small].body, "POST /small " + pattern(900));
        EXPECT_EQ(c.streams[get].body, "GET /g");
    }
    EXPECT_EQ(h.reader().data.size(), held);
}

TEST(Http2Upload, BodyWithoutLengthIsOfferedWhenItGrowsPastTheThreshold) {
    UploadHarness h;
    Client c;
    const std::string body = pattern(20000);
    c.request(upload_fields("/nolength"), body, true);
    h.pump(c);
    ASSERT_EQ(h.dispatcher.streamed, std::vector<bool>{true});
    h.dispatcher.body.consume(h.reader().data.size());
    h.pump(c);
    EXPECT_EQ(h.reader().data, body);
    EXPECT_EQ(h.reader().ended, 1);
}

// Full duplex: a body without a length still open after a read streams from its first bytes (gRPC
// bidirectional streams), and the handler answers each piece before the body ends.
TEST(Http2Upload, BodyWithoutLengthStreamsFromItsFirstBytes) {
    UploadHarness h;
    Client c;
    const auto id = c.open_request(upload_fields("/bidi"));
    c.send_more(id, "ping1");
    h.pump(c);
    ASSERT_EQ(h.dispatcher.streamed, std::vector<bool>{true});  // 5 bytes, far below the threshold
    EXPECT_EQ(h.reader().data, "ping1");
    StreamWriter w = h.dispatcher.responder.stream(Response::text(""));
    w.write("pong1");
    h.pump(c);
    EXPECT_EQ(c.streams[id].status, 200);
    EXPECT_EQ(c.streams[id].body, "pong1");
    c.send_more(id, "ping2");
    h.pump(c);
    EXPECT_EQ(h.reader().data, "ping1ping2");
    w.write("pong2");
    c.send_more(id, "", /*last=*/true);
    h.pump(c);
    EXPECT_EQ(h.reader().ended, 1);
    w.end();
    h.pump(c);
    EXPECT_EQ(c.streams[id].body, "pong1pong2");
    EXPECT_TRUE(c.streams[id].closed);
    EXPECT_FALSE(c.streams[id].reset);
}

TEST(Http2Upload, HeadersAloneStartTheStreamOfABodyWithoutLength) {
    UploadHarness h;
    Client c;
    const auto id = c.open_request(upload_fields("/bidi"));
    h.pump(c);
    ASSERT_EQ(h.dispatcher.streamed, std::vector<bool>{true});  // the handler runs before any DATA
    EXPECT_EQ(h.reader().data, "");
    c.send_more(id, "late", /*last=*/true);
    h.pump(c);
    EXPECT_EQ(h.reader().data, "late");
    EXPECT_EQ(h.reader().ended, 1);
}

TEST(Http2Upload, SmallBodyWithoutLengthThatEndsWithinTheReadComesWhole) {
    UploadHarness h;
    Client c;
    const auto id = c.post("/small", "whole");
    h.pump(c);
    EXPECT_EQ(h.dispatcher.offers, 0);
    EXPECT_EQ(h.dispatcher.streamed, std::vector<bool>{false});
    EXPECT_EQ(c.streams[id].body, "POST /small whole");
}

// Once the response has started, the client may wait for it before it sends more: the body is not timed.
TEST(Http2Upload, BodyIsNotTimedOnceTheResponseHasStarted) {
    net::ServerConfig cfg = UploadHarness::upload_config();  // body timeout 2 s
    cfg.timeouts.min_body_rate = 100;
    cfg.timeouts.min_body_rate_grace = 1s;
    UploadHarness h(cfg);
    Client c;
    const auto id = c.open_request(upload_fields("/bidi"));
    c.send_more(id, "a");
    h.pump(c);
    StreamWriter w = h.dispatcher.responder.stream(Response::text(""));
    w.write("A");
    h.pump(c);
    for (int i = 0; i < 4; ++i) {
        h.advance(2500ms);
        h.pump(c);
    }
    EXPECT_EQ(c.streams[id].status, 200);
    EXPECT_FALSE(c.streams[id].reset);
    EXPECT_EQ(h.reader().error, -1);
    c.send_more(id, "b", /*last=*/true);
    h.pump(c);
    EXPECT_EQ(h.reader().data, "ab");
    EXPECT_EQ(h.reader().ended, 1);
}

TEST(Http2Upload, StalledBodyWithoutLengthAndNoResponseIs408) {
    UploadHarness h;  // body timeout 2 s
    Client c;
    const auto id = c.open_request(upload_fields("/bidi"));
    c.send_more(id, "a");
    h.pump(c);
    ASSERT_EQ(h.dispatcher.streamed, std::vector<bool>{true});
    h.advance(2500ms);
    h.pump(c);
    EXPECT_EQ(c.streams[id].status, 408);
    EXPECT_EQ(h.reader().error, 408);
    EXPECT_FALSE(h.conn.closing());
}

// A gRPC call's client may wait for answers before it sends more, as long as the call lasts: its upload is not
// timed (covet/http/grpc_call.hpp), where another request's is (the test above).
TEST(Http2Upload, GrpcCallUploadIsNotTimed) {
    UploadHarness h;  // body timeout 2 s
    Client c;
    Fields fields = upload_fields("/bidi");
    fields.emplace_back("content-type", "application/grpc");
    const auto id = c.open_request(fields);
    c.send_more(id, "a");
    h.pump(c);
    ASSERT_EQ(h.dispatcher.streamed, std::vector<bool>{true});
    h.advance(10s);
    h.pump(c);
    EXPECT_EQ(c.streams[id].status, 0);  // no answer: not a 408
    EXPECT_EQ(h.reader().error, -1);     // none
    c.send_more(id, "b");
    h.pump(c);
    EXPECT_EQ(h.reader().data, "ab");
}

TEST(Http2Upload, ResponseBeforeTheBodyEndsResetsTheRestOfTheUpload) {
    UploadHarness h;
    Client c;
    const auto id = c.request(upload_fields("/up", 100000), pattern(100000));
    h.pump(c);
    h.dispatcher.responder.send(Response::text("no thanks", 403));
    h.pump(c);
    EXPECT_EQ(c.streams[id].status, 403);
    EXPECT_EQ(c.streams[id].body, "no thanks");
    EXPECT_TRUE(c.streams[id].reset);
    EXPECT_EQ(c.streams[id].rst_error, static_cast<std::uint32_t>(NGHTTP2_NO_ERROR));
    EXPECT_EQ(h.reader().error, 0);
    const auto next = c.get("/after");  // the connection goes on
    h.pump(c);
    EXPECT_EQ(c.streams[next].body, "GET /after");
}

TEST(Http2Upload, StreamedBodyOverItsLimitIs413) {
    net::ServerConfig cfg = UploadHarness::upload_config();
    cfg.limits.max_stream_body_bytes = 10000;
    UploadHarness h(cfg);
    Client c;
    const auto declared = c.request(upload_fields("/up", 10001), pattern(10001));
    h.pump(c);
    EXPECT_EQ(c.streams[declared].status, 413);
    EXPECT_TRUE(h.dispatcher.seen.empty());
    const auto unknown = c.request(upload_fields("/up"), pattern(30000), true);
    for (int i = 0; i < 10; ++i) {
        h.pump(c);
        if (h.dispatcher.reader) h.dispatcher.body.consume(100000);
    }
    EXPECT_EQ(c.streams[unknown].status, 413);
    EXPECT_EQ(h.reader().error, 413);
    EXPECT_FALSE(h.conn.closing());
}

TEST(Http2Upload, RouteThatDeclinesKeepsTheBufferedLimit) {
    UploadHarness h;
    h.dispatcher.accept = false;
    Client c;
    const auto id = c.request(upload_fields("/up", 5000), pattern(5000));
    h.pump(c);
    EXPECT_EQ(h.dispatcher.offers, 1);
    EXPECT_EQ(c.streams[id].status, 413);
    const auto ok = c.request(upload_fields("/ok", 1500), pattern(1500));  // over the threshold, within the limit
    h.pump(c);
    EXPECT_EQ(c.streams[ok].body, "POST /ok " + pattern(1500));
}

TEST(Http2Upload, StalledStreamedBodyTimesOutButNotWhileTheReaderHoldsIt) {
    UploadHarness h;  // body timeout 2 s
    Client c;
    const auto id = c.request(upload_fields("/up", 100000), pattern(100000));
    h.pump(c);  // one window delivered, not acknowledged: the client waits for us
    h.advance(5s);
    h.pump(c);
    EXPECT_EQ(c.streams[id].status, 0);
    EXPECT_EQ(h.reader().error, -1);
    Client stalled;
    UploadHarness h2;
    const auto sid = stalled.request(upload_fields("/up", 100000), {}, true, /*stall=*/true);
    h2.pump(stalled);
    ASSERT_EQ(h2.dispatcher.streamed, std::vector<bool>{true});
    h2.advance(2500ms);
    h2.pump(stalled);
    EXPECT_EQ(stalled.streams[sid].status, 408);
    EXPECT_EQ(h2.reader().error, 408);
    EXPECT_FALSE(h2.conn.closing());
}

TEST(Http2Upload, ClientResetTellsTheReader) {
    UploadHarness h;
    Client c;
    const auto id = c.request(upload_fields("/up", 100000), pattern(100000));
    h.pump(c);
    nghttp2_submit_rst_stream(c.session, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    h.pump(c);
    EXPECT_EQ(h.reader().error, 0);
    h.dispatcher.responder.send(Response::text("late"));  // dropped
    h.pump(c);
    EXPECT_FALSE(h.conn.closing());
}

TEST(Http2Upload, UploadsThatAreNotReadHoldAtMostTheConnectionBudget) {
    net::ServerConfig cfg = UploadHarness::upload_config();  // 32 KiB stream windows
    cfg.http2_limits.max_unacked_upload_bytes = 40000;
    UploadHarness h(cfg);
    struct Upload {
        std::shared_ptr<covet_test::RecordingReader> reader;
        covet::RequestBody body;
        Responder responder;
    };
    std::vector<Upload> uploads;
    h.dispatcher.on_dispatch = [&](Request&) {
        uploads.push_back({h.dispatcher.reader, std::move(h.dispatcher.body), std::move(h.dispatcher.responder)});
    };
    Client c;
    constexpr int n = 10;
    const std::string body = pattern(100000);
    std::vector<std::int32_t> ids;
    for (int i = 0; i < n; ++i) ids.push_back(c.request(upload_fields("/up", body.size()), body));
    const auto held = [&] {
        std::size_t total = 0;
        for (const Upload& u : uploads) total += u.reader->data.size();
        return total;
    };
    for (int i = 0; i < 5; ++i) h.pump(c);
    ASSERT_EQ(uploads.size(), static_cast<std::size_t>(n));
    // One stream window each would be 10 × 32 KiB; the budget holds them to it plus one connection window
    // (65535: the client's default) and a frame.
    EXPECT_LE(held(), 40000u + 65535u + 16384u);
    EXPECT_GT(held(), 40000u);
    const std::size_t first = held();
    h.pump(c);
    EXPECT_EQ(held(), first);  // nothing more until handlers acknowledge

    std::vector<std::size_t> acked(n, 0);
    for (int round = 0; round < 400 && held() < n * body.size(); ++round) {
        for (int i = 0; i < n; ++i) {
            const std::size_t now = uploads[i].reader->data.size();
            uploads[i].body.consume(now - acked[i]);
            acked[i] = now;
        }
        h.pump(c);
    }
    for (int i = 0; i < n; ++i) {
        EXPECT_EQ(uploads[i].reader->data, body) << i;
        EXPECT_EQ(uploads[i].reader->ended, 1) << i;
        uploads[i].responder.send(Response::text("stored"));
    }
    h.pump(c);
    for (const std::int32_t id : ids) EXPECT_EQ(c.streams[id].body, "stored");
    const auto next = c.get("/after");  // the connection window is open again
    h.pump(c);
    EXPECT_EQ(c.streams[next].body, "GET /after");
}

}  // namespace
