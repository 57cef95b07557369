// Frame header parsing (every byte split), unmasking, frame writing and UTF-8 validation.
#include "covet/ws/frame.hpp"

#include <gtest/gtest.h>

#include "covet/ws/utf8.hpp"
#include "ws_harness.hpp"

namespace ws_test {
namespace {

using ws::FrameParser;

// Parses one header fed in two pieces cut at `cut`; returns the parser.
FrameParser parse_split(std::string_view bytes, std::size_t cut, std::size_t* used, bool rsv1 = false) {
    FrameParser p(rsv1);
    *used = p.parse(std::span<const char>(bytes.data(), cut));
    if (!p.ready() && !p.failed()) *used += p.parse(std::span<const char>(bytes.data() + cut, bytes.size() - cut));
    return p;
}

TEST(WsFrameParser, HeaderFormsAtEveryCut) {
    for (std::size_t n : {0u, 5u, 125u, 126u, 300u, 65535u, 65536u, 70000u}) {
        const std::string payload(n, 'x');
        const std::string f = client_frame(Opcode::binary, payload);
        const std::size_t header = f.size() - n;
        for (std::size_t cut = 0; cut <= header; ++cut) {
            std::size_t used = 0;
            FrameParser p = parse_split(f, cut, &used);
            ASSERT_TRUE(p.ready()) << n << " cut " << cut;
            EXPECT_EQ(used, header) << "the parser stops at the payload";
            EXPECT_EQ(p.header().length, n);
            EXPECT_EQ(p.header().opcode, Opcode::binary);
            EXPECT_TRUE(p.header().fin);
            EXPECT_EQ(p.header().mask[0], 0x37);
            EXPECT_EQ(p.header().mask[3], 0x3D);
        }
    }
}

TEST(WsFrameParser, ByteByByte) {
    const std::string f = client_frame(Opcode::text, std::string(300, 'a'), false, false, true, 64);
    FrameParser p;
    std::size_t i = 0;
    for (; i < f.size() && !p.ready(); ++i) EXPECT_EQ(p.parse(std::span<const char>(f.data() + i, 1)), 1u);
    ASSERT_TRUE(p.ready());
    EXPECT_EQ(i, 14u);  // 2 + 8 + 4: a 64-bit length even for a small payload is accepted
    EXPECT_EQ(p.header().length, 300u);
    EXPECT_FALSE(p.header().fin);
    EXPECT_TRUE(p.in_message());
}

TEST(WsFrameParser, Violations) {
    struct Case {
        std::string bytes;
        bool rsv1_allowed;
        const char* what;
    };
    const Case cases[] = {
        {client_frame(Opcode::text, "hi", true, false, false), false, "must be masked"},
        {client_frame(Opcode::text, "hi", true, true), false, "RSV1 set without"},
        {client_frame(Opcode::text, "hi", true, false, true, 0, 0x20), true, "reserved bits"},
        {client_frame(Opcode::text, "hi", true, false, true, 0, 0x10), true, "reserved bits"},
        {client_frame(Opcode::ping, "hi", true, true), true, "RSV1 outside"},
        {client_frame(static_cast<Opcode>(3), "hi"), false, "reserved opcode"},
        {client_frame(static_cast<Opcode>(0xB), "hi"), false, "reserved opcode"},
        {client_frame(Opcode::ping, "hi", false), false, "fragmented control"},
        {client_frame(Opcode::ping, std::string(126, 'p')), false, "longer than 125"},
        {client_frame(Opcode::close, std::string(126, 'p')), false, "longer than 125"},
        {client_frame(Opcode::continuation, "hi"), false, "continuation frame without"},
    };
    for (const Case& c : cases) {
        FrameParser p(c.rsv1_allowed);
        p.parse(std::span<const char>(c.bytes.data(), c.bytes.size()));
        ASSERT_TRUE(p.failed()) << c.what;
        EXPECT_NE(std::string(p.error()).find(c.what), std::string::npos) << p.error();
    }
}

TEST(WsFrameParser, LengthWithTopBitIsRefused) {
    std::string f = client_frame(Opcode::binary, "", true, false, true, 64);
    f[2] = static_cast<char>(0x80);  // most significant byte of the 64-bit length
    FrameParser p;
    p.parse(std::span<const char>(f.data(), f.size()));
    EXPECT_TRUE(p.failed());
}

TEST(WsFrameParser, ContinuationRules) {
    FrameParser p;
    auto feed = [&](const std::string& f) {
        p.parse(std::span<const char>(f.data(), 6));  // the header only: 2 bytes + mask
        const bool ok = p.ready();
        p.next();
        return ok;
    };
    EXPECT_TRUE(feed(client_frame(Opcode::text, "hi", false)));
    EXPECT_TRUE(feed(client_frame(Opcode::ping, "hi")));  // control frames may interleave
    EXPECT_TRUE(feed(client_frame(Opcode::continuation, "hi", false)));
    EXPECT_TRUE(feed(client_frame(Opcode::continuation, "hi", true)));
    EXPECT_FALSE(p.in_message());
    EXPECT_TRUE(feed(client_frame(Opcode::binary, "hi", false)));
    EXPECT_FALSE(feed(client_frame(Opcode::text, "hi")));  // a new message inside one
    EXPECT_TRUE(p.failed());
}

TEST(WsFrame, UnmaskAtAnyOffset) {
    const std::string payload = "The quick brown fox jumps over the lazy dog, twice over.";
    const std::string f = client_frame(Opcode::text, payload);
    const std::uint8_t mask[4] = {0x37, 0xFA, 0x21, 0x3D};
    for (std::size_t cut = 0; cut <= payload.size(); ++cut) {
        std::string masked = f.substr(6);
        ws::unmask(masked.data(), cut, mask, 0);
        ws::unmask(masked.data() + cut, masked.size() - cut, mask, cut);
        EXPECT_EQ(masked, payload) << cut;
    }
}

TEST(WsFrame, WriterUsesTheShortestLengthAndNoMask) {
    for (std::size_t n : {0u, 125u, 126u, 65535u, 65536u}) {
        io::OutputQueue q;
        ws::write_frame(q, Opcode::binary, std::string(n, 'b'));
        const std::string out = covet_test::drain(q);
        const std::size_t header = n < 126 ? 2 : n <= 0xFFFF ? 4 : 10;
        EXPECT_EQ(out.size(), header + n);
        auto frames = parse_server_frames(out);
        ASSERT_EQ(frames.size(), 1u);
        EXPECT_EQ(frames[0].payload.size(), n);
        EXPECT_TRUE(frames[0].fin);
    }
}

TEST(WsFrame, CloseReasonIsCutAtACodePointBoundary) {
    io::OutputQueue q;
    std::string reason;
    for (int i = 0; i < 50; ++i) reason += "\xE2\x82\xAC";  // 150 bytes of euro signs
    ws::write_close(q, 1000, reason);
    const std::string out = covet_test::drain(q);
    auto frames = parse_server_frames(out);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_LE(frames[0].payload.size(), 125u);
    EXPECT_EQ(frames[0].close_code(), 1000);
    EXPECT_TRUE(ws::Utf8Validator::valid(frames[0].payload.substr(2)));
    EXPECT_EQ(frames[0].payload.size(), 2u + 41 * 3);
}

TEST(WsFrame, CloseCodes) {
    for (int code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999})
        EXPECT_TRUE(ws::valid_close_code(static_cast<std::uint16_t>(code))) << code;
    for (int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535})
        EXPECT_FALSE(ws::valid_close_code(static_cast<std::uint16_t>(code))) << code;
}

TEST(WsUtf8, ValidAndInvalidSequences) {
    using V = ws::Utf8Validator;
    EXPECT_TRUE(V::valid(""));
    EXPECT_TRUE(V::valid("plain ascii text that is longer than eight bytes"));
    EXPECT_TRUE(V::valid("\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"));  // κόσμε
    EXPECT_TRUE(V::valid("\xF4\x8F\xBF\xBF"));                              // U+10FFFF
    EXPECT_TRUE(V::valid("\xED\x9F\xBF"));                                  // U+D7FF
    EXPECT_FALSE(V::valid("\xC0\xAF"));                                     // overlong /
    EXPECT_FALSE(V::valid("\xE0\x80\xAF"));                                 // overlong
    EXPECT_FALSE(V::valid("\xF0\x80\x80\xAF"));                             // overlong
    EXPECT_FALSE(V::valid("\xED\xA0\x80"));                                 // surrogate U+D800
    EXPECT_FALSE(V::valid("\xF4\x90\x80\x80"));                             // > U+10FFFF
    EXPECT_FALSE(V::valid("\xF5\x80\x80\x80"));
    EXPECT_FALSE(V::valid("\x80"));      // lone continuation
    EXPECT_FALSE(V::valid("\xE2\x82"));  // truncated
    EXPECT_FALSE(V::valid("abcdefgh\xFF"));
}

TEST(WsUtf8, IncrementalAtEveryCut) {
    const std::string good = "a\xE2\x82\xAC\xF0\x9F\x98\x80z\xCE\xBA";
    for (std::size_t cut = 0; cut <= good.size(); ++cut) {
        ws::Utf8Validator v;
        EXPECT_TRUE(v.feed(std::string_view(good).substr(0, cut)));
        EXPECT_TRUE(v.feed(std::string_view(good).substr(cut)));
        EXPECT_TRUE(v.complete());
    }
    ws::Utf8Validator v;
    EXPECT_TRUE(v.feed("\xE2\x82"));
    EXPECT_FALSE(v.complete());
    EXPECT_FALSE(v.feed("\x28"));  // the third byte is not a continuation byte
}

}  // namespace
}  // namespace ws_test
