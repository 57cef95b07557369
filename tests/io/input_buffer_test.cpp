// io::InputBuffer: pipelined input consumed from the front by a read position, compacted when the consumed
// front is at least half of what is held.
#include "covet/io/input_buffer.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

TEST(InputBuffer, ConsumesFromTheFrontAndKeepsTheRest) {
    covet::io::InputBuffer b;
    EXPECT_TRUE(b.empty());
    b.append("GET /a\r\n\r\nGET /b\r\n\r\nGET /c");
    b.consume(10);
    EXPECT_EQ(b.view(), "GET /b\r\n\r\nGET /c");
    EXPECT_EQ(b.size(), 16u);
    b.append("\r\n\r\n");
    EXPECT_EQ(b.view(), "GET /b\r\n\r\nGET /c\r\n\r\n");
    b.consume(10);
    EXPECT_EQ(b.view(), "GET /c\r\n\r\n");
    b.consume(100);  // more than is left: all of it
    EXPECT_TRUE(b.empty());
    EXPECT_EQ(b.view(), "");
    b.assign("x");
    EXPECT_EQ(b.view(), "x");
    b.clear();
    EXPECT_TRUE(b.empty());
}

TEST(InputBuffer, ManySmallConsumesSeeEveryByteInOrder) {
    // 10,000 pipelined requests of 20 bytes consumed one at a time, with input appended between them: every
    // request is seen whole and in order through the compactions.
    covet::io::InputBuffer b;
    std::string expected;
    int next_in = 0, next_out = 0;
    const auto request = [](int i) {
        std::string r = "GET /" + std::to_string(i);
        r.resize(20, ' ');
        return r;
    };
    while (next_out < 10000) {
        while (next_in < 10000 && b.size() < 4000) b.append(request(next_in++));
        ASSERT_GE(b.size(), 20u);
        ASSERT_EQ(b.view().substr(0, 20), request(next_out));
        b.consume(20);
        ++next_out;
    }
    EXPECT_TRUE(b.empty());
}

}  // namespace
