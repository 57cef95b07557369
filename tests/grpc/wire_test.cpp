// covet/grpc/wire.hpp: length-prefixed messages cut anywhere, the size limit before the bytes, compressed
// messages (and a gzip bomb), grpc-timeout, base64 metadata, grpc-message's percent-encoding.
#include "covet/grpc/wire.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>
#include <vector>

namespace {

using covet::grpc::MessageReader;
using covet::grpc::StatusCode;

std::vector<std::string> read_all(MessageReader& reader, const std::vector<std::string>& chunks,
                                  covet::grpc::Status* status = nullptr) {
    std::vector<std::string> messages;
    for (const std::string& chunk : chunks) {
        const auto s = reader.feed(chunk, [&](std::string_view m) { messages.emplace_back(m); });
        if (!s.ok()) {
            if (status) *status = s;
            break;
        }
    }
    return messages;
}

std::string gzip(std::string_view data) {
    z_stream z{};
    deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    std::string out(deflateBound(&z, static_cast<uLong>(data.size())), '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));  // NOLINT: zlib's API
    z.avail_in = static_cast<uInt>(data.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    deflate(&z, Z_FINISH);
    out.resize(z.total_out);
    deflateEnd(&z);
    return out;
}

std::string compressed_frame(std::string_view payload) {
    std::string f = covet::grpc::frame_message(payload);
    f[0] = 1;
    return f;
}

TEST(GrpcWire, FramesAndReadsMessagesCutAnywhere) {
    const std::string wire = covet::grpc::frame_message("hello") + covet::grpc::frame_message("") +
                             covet::grpc::frame_message(std::string(70000, 'x'));
    for (std::size_t cut = 1; cut < 20; ++cut) {
        MessageReader reader(1 << 20, "");
        std::vector<std::string> chunks;
        for (std::size_t i = 0; i < wire.size(); i += cut) chunks.push_back(wire.substr(i, cut));
        const auto messages = read_all(reader, chunks);
        ASSERT_EQ(messages.size(), 3u) << "cut " << cut;
        EXPECT_EQ(messages[0], "hello");
        EXPECT_EQ(messages[1], "");
        EXPECT_EQ(messages[2], std::string(70000, 'x'));
        EXPECT_TRUE(reader.finish().ok());
    }
}

TEST(GrpcWire, ATruncatedMessageIsInternalAtTheEnd) {
    MessageReader reader(1024, "");
    const std::string wire = covet::grpc::frame_message("0123456789");
    EXPECT_TRUE(read_all(reader, {wire.substr(0, 8)}).empty());
    const auto status = reader.finish();
    EXPECT_EQ(status.code, StatusCode::internal);
    EXPECT_NE(status.message.find("ended inside a message"), std::string::npos) << status.message;
}

TEST(GrpcWire, ALengthOverTheLimitIsRefusedFromItsPrefix) {
    MessageReader reader(1024, "");
    covet::grpc::Status status;
    const std::string prefix = covet::grpc::frame_message(std::string(2000, 'a')).substr(0, 5);
    EXPECT_TRUE(read_all(reader, {prefix}, &status).empty());
    EXPECT_EQ(status.code, StatusCode::resource_exhausted);
    EXPECT_NE(status.message.find("2000 bytes"), std::string::npos) << status.message;
}

TEST(GrpcWire, GzipMessagesAreReadAndBombsRefused) {
    MessageReader reader(1024, "gzip");
    const auto messages = read_all(reader, {compressed_frame(gzip("compressed hello"))});
    ASSERT_EQ(messages.size(), 1u);
    EXPECT_EQ(messages[0], "compressed hello");

    MessageReader small(1024, "gzip");
    covet::grpc::Status status;
    const std::string bomb = gzip(std::string(1'000'000, '\0'));
    ASSERT_LT(bomb.size(), 1024u);
    EXPECT_TRUE(read_all(small, {compressed_frame(bomb)}, &status).empty());
    EXPECT_EQ(status.code, StatusCode::resource_exhausted);

    MessageReader corrupt(1024, "gzip");
    EXPECT_TRUE(read_all(corrupt, {compressed_frame("not gzip at all")}, &status).empty());
    EXPECT_EQ(status.code, StatusCode::internal);
}

TEST(GrpcWire, CompressedFlagNeedsASupportedEncoding) {
    covet::grpc::Status status;
    MessageReader none(1024, "identity");
    read_all(none, {compressed_frame("x")}, &status);
    EXPECT_EQ(status.code, StatusCode::internal);
    MessageReader snappy(1024, "snappy");
    read_all(snappy, {compressed_frame("x")}, &status);
    EXPECT_EQ(status.code, StatusCode::unimplemented);
    MessageReader flag2(1024, "");
    std::string f = covet::grpc::frame_message("x");
    f[0] = 2;
    read_all(flag2, {f}, &status);
    EXPECT_EQ(status.code, StatusCode::internal);
}

TEST(GrpcWire, ParsesTimeouts) {
    using namespace std::chrono;
    EXPECT_EQ(covet::grpc::parse_timeout("1H"), duration_cast<nanoseconds>(hours(1)));
    EXPECT_EQ(covet::grpc::parse_timeout("20S"), duration_cast<nanoseconds>(seconds(20)));
    EXPECT_EQ(covet::grpc::parse_timeout("99999999m"), duration_cast<nanoseconds>(milliseconds(99999999)));
    EXPECT_EQ(covet::grpc::parse_timeout("5n"), nanoseconds(5));
    const auto year = duration_cast<nanoseconds>(hours(24 * 365));  // the cap: 8 digits of hours overflow ns
    EXPECT_EQ(covet::grpc::parse_timeout("99999999H"), year);
    EXPECT_EQ(covet::grpc::parse_timeout("99999999M"), year);
    EXPECT_EQ(covet::grpc::parse_timeout("99999999S"), year);
    for (const char* bad : {"", "S", "123456789S", "10x", "-1S", "1.5S", " 1S"})
        EXPECT_FALSE(covet::grpc::parse_timeout(bad)) << bad;
}

TEST(GrpcWire, Base64BothWays) {
    std::string out;
    for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", std::string("\x00\xff\x10", 3)}) {
        const std::string encoded = covet::grpc::base64_encode(s);
        EXPECT_EQ(encoded.find('='), std::string::npos);
        ASSERT_TRUE(covet::grpc::base64_decode(encoded, out)) << encoded;
        EXPECT_EQ(out, s);
    }
    ASSERT_TRUE(covet::grpc::base64_decode("AP8Q", out));
    EXPECT_EQ(out, std::string("\x00\xff\x10", 3));
    EXPECT_EQ(covet::grpc::base64_encode("a", /*pad=*/true), "YQ==");  // gRPC-Web text frames are padded
    EXPECT_EQ(covet::grpc::base64_encode("abc", /*pad=*/true), "YWJj");
    ASSERT_TRUE(covet::grpc::base64_decode("YQ==", out));  // padded
    EXPECT_EQ(out, "a");
    EXPECT_FALSE(covet::grpc::base64_decode("a$bc", out));
    EXPECT_FALSE(covet::grpc::base64_decode("abcde", out));  // 1 mod 4
}

TEST(GrpcWire, CompressedFramesReadBackThroughTheReader) {
    const std::string message(3000, 'z');
    for (const char* encoding : {"gzip", "deflate"}) {
        const std::string framed = covet::grpc::frame_message(message, encoding);
        ASSERT_GE(framed.size(), 5u);
        EXPECT_EQ(framed[0], 1) << encoding;         // the compressed flag
        EXPECT_LT(framed.size(), 100u) << encoding;  // 3000 equal bytes deflate to a few dozen
        MessageReader reader(1 << 20, encoding);
        EXPECT_EQ(read_all(reader, {framed}), std::vector<std::string>{message}) << encoding;
    }
    for (const char* none : {"", "identity", "br"})  // anything else: the plain frame
        EXPECT_EQ(covet::grpc::frame_message(message, none), covet::grpc::frame_message(message)) << none;
}

TEST(GrpcWire, StatusMessagesArePercentEncoded) {
    EXPECT_EQ(covet::grpc::encode_status_message("plain text"), "plain text");
    EXPECT_EQ(covet::grpc::encode_status_message("100%\t\n"), "100%25%09%0A");
    EXPECT_EQ(covet::grpc::encode_status_message("\xE2\x98\xBA"), "%E2%98%BA");  // U+263A
}

}  // namespace
