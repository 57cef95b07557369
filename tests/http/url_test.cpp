// Tests for covet::http::percent_decode, needs_decoding, for_each_query_pair and query_value.
#include "covet/http/url.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using covet::http::for_each_query_pair;
using covet::http::needs_decoding;
using covet::http::percent_decode;
using covet::http::query_value;

TEST(PercentDecode, PlainTextIsUnchanged) {
    EXPECT_EQ(percent_decode("", false), "");
    EXPECT_EQ(percent_decode("/users/42", false), "/users/42");
}

TEST(PercentDecode, DecodesEscapesInEitherCase) {
    EXPECT_EQ(percent_decode("a%20b", false), "a b");
    EXPECT_EQ(percent_decode("%2f%2F", false), "//");
    EXPECT_EQ(percent_decode("%41%42%43", false), "ABC");
    EXPECT_EQ(percent_decode("%C3%A9", false), "\xC3\xA9");  // UTF-8 bytes pass through
    EXPECT_EQ(percent_decode("%00", false), std::string(1, '\0'));
    EXPECT_EQ(percent_decode("%ff", false), "\xff");
}

TEST(PercentDecode, EscapeAtTheVeryEnd) {
    EXPECT_EQ(percent_decode("x%41", false), "xA");
    EXPECT_EQ(percent_decode("%41", false), "A");
}

TEST(PercentDecode, MalformedEscapesAreKeptVerbatim) {
    EXPECT_EQ(percent_decode("%", false), "%");
    EXPECT_EQ(percent_decode("%4", false), "%4");
    EXPECT_EQ(percent_decode("a%", false), "a%");
    EXPECT_EQ(percent_decode("%zz", false), "%zz");
    EXPECT_EQ(percent_decode("%4g", false), "%4g");
    EXPECT_EQ(percent_decode("%g4", false), "%g4");
    EXPECT_EQ(percent_decode("100%", false), "100%");
    EXPECT_EQ(percent_decode("%%41", false), "%A");  // the first '%' is literal, the second starts an escape
    EXPECT_EQ(percent_decode("%2", false), "%2");
}

TEST(PercentDecode, DecodedPercentIsNotDecodedAgain) { EXPECT_EQ(percent_decode("%2541", false), "%41"); }

TEST(PercentDecode, PlusIsSpaceOnlyWhenAsked) {
    EXPECT_EQ(percent_decode("a+b", false), "a+b");
    EXPECT_EQ(percent_decode("a+b", true), "a b");
    EXPECT_EQ(percent_decode("++", true), "  ");
    EXPECT_EQ(percent_decode("%2B", true), "+") << "an escaped plus is a literal plus";
    EXPECT_EQ(percent_decode("%+1", true), "% 1");
}

TEST(NeedsDecoding, DetectsPercentAndPlus) {
    EXPECT_FALSE(needs_decoding("abc", true));
    EXPECT_TRUE(needs_decoding("a%20", false));
    EXPECT_FALSE(needs_decoding("a+b", false));
    EXPECT_TRUE(needs_decoding("a+b", true));
}

std::vector<std::pair<std::string, std::string>> pairs(std::string_view q) {
    std::vector<std::pair<std::string, std::string>> out;
    for_each_query_pair(q, [&](std::string_view k, std::string_view v) {
        out.emplace_back(k, v);
        return true;
    });
    return out;
}

TEST(QueryPairs, SplitsOnAmpersandAndFirstEquals) {
    using P = std::vector<std::pair<std::string, std::string>>;
    EXPECT_EQ(pairs(""), P{});
    EXPECT_EQ(pairs("a=1&b=2"), (P{{"a", "1"}, {"b", "2"}}));
    EXPECT_EQ(pairs("a=b=c"), (P{{"a", "b=c"}}));
    EXPECT_EQ(pairs("flag&x="), (P{{"flag", ""}, {"x", ""}}));
    EXPECT_EQ(pairs("&&a=1&&"), (P{{"a", "1"}})) << "empty pairs are skipped";
    EXPECT_EQ(pairs("=v"), (P{{"", "v"}}));
    EXPECT_EQ(pairs("a%20b=c+d"), (P{{"a%20b", "c+d"}})) << "pairs are raw (not decoded)";
}

TEST(QueryPairs, StopsWhenTheCallbackSaysSo) {
    int calls = 0;
    for_each_query_pair("a=1&b=2&c=3", [&](std::string_view, std::string_view) { return ++calls < 2; });
    EXPECT_EQ(calls, 2);
}

TEST(QueryValue, FindsAndDecodesValues) {
    EXPECT_EQ(query_value("q=hello+world&page=2", "q"), "hello world");
    EXPECT_EQ(query_value("q=hello+world&page=2", "page"), "2");
    EXPECT_EQ(query_value("path=%2Fetc%2Fpasswd", "path"), "/etc/passwd");
    EXPECT_EQ(query_value("v=a%2Bb", "v"), "a+b");
}

TEST(QueryValue, MissingKeyIsNullopt) {
    EXPECT_EQ(query_value("", "q"), std::nullopt);
    EXPECT_EQ(query_value("a=1&b=2", "c"), std::nullopt);
    EXPECT_EQ(query_value("qq=1&q_=2", "q"), std::nullopt) << "keys match exactly, not by prefix";
    EXPECT_EQ(query_value("Q=1", "q"), std::nullopt) << "keys are case-sensitive";
}

TEST(QueryValue, RepeatedKeyYieldsTheFirst) {
    EXPECT_EQ(query_value("tag=a&tag=b&tag=c", "tag"), "a");
    EXPECT_EQ(query_value("x=1&tag=&tag=b", "tag"), "") << "an empty first value still wins";
}

TEST(QueryValue, EmptyAndValuelessParametersArePresent) {
    const auto empty = query_value("a=&b=2", "a");
    ASSERT_TRUE(empty.has_value());
    EXPECT_EQ(*empty, "");
    const auto flag = query_value("debug&b=2", "debug");
    ASSERT_TRUE(flag.has_value());
    EXPECT_EQ(*flag, "");
}

TEST(QueryValue, EncodedKeysAreDecodedBeforeComparison) {
    EXPECT_EQ(query_value("first%20name=Ada", "first name"), "Ada");
    EXPECT_EQ(query_value("first+name=Ada", "first name"), "Ada");
    EXPECT_EQ(query_value("a%5Bb%5D=1", "a[b]"), "1");
    EXPECT_EQ(query_value("a%5Bb%5D=1", "a%5Bb%5D"), std::nullopt) << "the raw key is not a match";
    EXPECT_EQ(query_value("a+b=1", "a+b"), std::nullopt) << "'+' in a key is a space";
}

TEST(QueryValue, MalformedEscapesInValuesAreKept) {
    EXPECT_EQ(query_value("p=100%&x=%zz", "p"), "100%");
    EXPECT_EQ(query_value("p=100%&x=%zz", "x"), "%zz");
}

}  // namespace
