// covet::json: typed parsing with pydantic-shaped errors, the 422 body, writing, and json_body's handler.
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "covet/app/json_body.hpp"
#include "covet/json/model.hpp"

namespace {

struct Dimensions {
    double width = 0;
    double height = 0;
};

struct Item {
    std::string name;
    double price = 0;
    std::vector<std::string> tags;
    std::string description = "none";
    std::optional<int> stock;
    std::optional<Dimensions> size;
    std::vector<Dimensions> boxes;
    bool active = true;
    std::uint8_t rating = 0;
};

struct Summary {
    std::string name;
    std::size_t tag_count;
};

struct Numbers {
    std::uint64_t big = 0;
    std::int64_t signed_big = 0;
    std::uint32_t small = 0;
    float ratio = 0;
};

// A check that parses again (an embedded JSON document): the thread's shared parser is in use meanwhile.
struct Envelope {
    std::string kind;
    std::string payload;  // JSON text of a Dimensions
};

}  // namespace

template <>
struct covet::json::Model<Numbers> {
    static constexpr auto fields =
        std::tuple{field("big", &Numbers::big, has_default), field("signed_big", &Numbers::signed_big, has_default),
                   field("small", &Numbers::small, has_default), field("ratio", &Numbers::ratio, has_default)};
};

template <>
struct covet::json::Model<Dimensions> {
    static constexpr auto fields = std::tuple{field("width", &Dimensions::width), field("height", &Dimensions::height)};
};

template <>
struct covet::json::Model<Item> {
    static constexpr auto fields = std::tuple{
        field("name", &Item::name),
        field("price", &Item::price),
        field("tags", &Item::tags),
        field("description", &Item::description, has_default),
        field("stock", &Item::stock),
        field("size", &Item::size),
        field("boxes", &Item::boxes, has_default),
        field("active", &Item::active, has_default),
        field("rating", &Item::rating, has_default),
    };
    static void check(const Item& item, Checks& c) {
        if (item.price < 0) {
            c.fail("price", "greater_than_equal", "Input should be greater than or equal to 0");
        }
    }
};

template <>
struct covet::json::Model<Envelope> {
    static constexpr auto fields = std::tuple{field("kind", &Envelope::kind), field("payload", &Envelope::payload)};
    static void check(const Envelope& e, Checks& c) {
        Dimensions inner;
        Errors errors;
        if (!covet::json::parse(e.payload, inner, errors)) {
            // A name built on the spot: the error keeps its own copy (ASan would see a dangling view).
            c.fail(std::string("pay") + "load", "value_error", "Value error, payload is not a Dimensions");
        }
    }
};

template <>
struct covet::json::Model<Summary> {
    static constexpr auto fields = std::tuple{field("name", &Summary::name), field("tag_count", &Summary::tag_count)};
};

namespace {

using covet::json::Errors;

std::string loc(const covet::json::ValidationError& e) {
    std::string out;
    for (const auto& step : e.loc) {
        out += "/";
        out += step.name.empty() ? std::to_string(step.index) : std::string(step.name);
    }
    return out;
}

TEST(JsonModel, ParsesEveryMemberKind) {
    Item item;
    Errors errors;
    ASSERT_TRUE(covet::json::parse(
        R"({"name":"w\u00e9dget \"x\"","price":9.99,"tags":["red","green"],"stock":null,"size":{"width":2,"height":3.5},)"
        R"("boxes":[{"width":1,"height":1}],"active":false,"rating":200,"unknown":{"deep":[1,2,3]}})",
        item, errors))
        << errors.detail();
    EXPECT_EQ(item.name,
              "w\xc3\xa9"
              "dget \"x\"");
    EXPECT_DOUBLE_EQ(item.price, 9.99);
    EXPECT_EQ(item.tags, (std::vector<std::string>{"red", "green"}));
    EXPECT_EQ(item.description, "none");  // absent, has_default: the member's initializer stays
    EXPECT_FALSE(item.stock.has_value());
    ASSERT_TRUE(item.size.has_value());
    EXPECT_DOUBLE_EQ(item.size->height, 3.5);
    ASSERT_EQ(item.boxes.size(), 1u);
    EXPECT_FALSE(item.active);
    EXPECT_EQ(item.rating, 200);
}

TEST(JsonModel, AnIntegerIsAValidFloatButNotTheOtherWayRound) {
    Item item;
    Errors errors;
    ASSERT_TRUE(covet::json::parse(R"({"name":"a","price":3,"tags":[],"stock":7})", item, errors));
    EXPECT_DOUBLE_EQ(item.price, 3.0);
    EXPECT_EQ(item.stock, 7);
    EXPECT_FALSE(covet::json::parse(R"({"name":"a","price":3,"tags":[],"stock":7.0})", item, errors));
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].type, "int_type");
    EXPECT_EQ(loc(errors[0]), "/stock");
}

TEST(JsonModel, ReportsEveryProblemWithItsLocationAndInput) {
    Item item;
    Errors errors;
    EXPECT_FALSE(covet::json::parse(
        R"({"price":"cheap","tags":["ok",5],"size":{"width":1},"boxes":[{"width":1,"height":1},{"width":"x","height":2}],)"
        R"("rating":300,"active":"yes"})",
        item, errors));
    std::vector<std::string> got;
    for (const auto& e : errors.list()) {
        got.push_back(e.type + " " + loc(e) + " " + e.input);
    }
    // In the model's order (pydantic's), each with the value it is about: a missing field's is the whole object.
    EXPECT_EQ(got, (std::vector<std::string>{
                       std::string("missing /name ") + R"({"price":"cheap","tags":["ok",5],"size":{"width":1},)" +
                           R"("boxes":[{"width":1,"height":1},{"width":"x","height":2}],"rating":300,"active":"yes"})",
                       "float_type /price \"cheap\"",
                       "string_type /tags/1 5",
                       "missing /size/height {\"width\":1}",
                       "float_type /boxes/1/width \"x\"",
                       "bool_type /active \"yes\"",
                       "less_than_equal /rating 300",
                   }))
        << errors.detail();
    EXPECT_EQ(errors[6].msg, "Input should be less than or equal to 255");
}

TEST(JsonModel, TheDetailBodyIsFastApis) {
    Item item;
    Errors errors;
    EXPECT_FALSE(covet::json::parse(R"({"name":"a","price":1,"tags":"red","stock":"x"})", item, errors));
    EXPECT_EQ(
        errors.detail(),
        R"({"detail":[{"type":"list_type","loc":["body","tags"],"msg":"Input should be a valid list","input":"red"},)"
        R"({"type":"int_type","loc":["body","stock"],"msg":"Input should be a valid integer","input":"x"}]})");
    errors.clear();
    EXPECT_FALSE(covet::json::parse(R"({"name":"a","price":-1,"tags":["red"]})", item, errors));
    EXPECT_EQ(errors.detail(), R"({"detail":[{"type":"greater_than_equal","loc":["body","price"],)"
                               R"("msg":"Input should be greater than or equal to 0","input":-1}]})");
}

TEST(JsonModel, MalformedJsonIsOneJsonInvalidError) {
    for (const char* bad : {"{", R"({"name":"a",})", R"({"name":"\xff"})", "{\"name\":\"\xff\"}",
                            "{\"name\":\"\xed\xa0\x80\"}", "[1,2", R"({"a":1} x)", "nul", R"({"name":"a","price":01})",
                            "{\"name\":\"a\tb\"}", R"({"n":1e400})", R"({"n":123456789012345678901234})"}) {
        Item item;
        Errors errors;
        EXPECT_FALSE(covet::json::parse(bad, item, errors)) << bad;
        ASSERT_EQ(errors.size(), 1u) << bad;
        EXPECT_EQ(errors[0].type, "json_invalid");
        EXPECT_FALSE(errors[0].context.empty());
        EXPECT_NE(errors.detail().find(R"("loc":["body"],"msg":"JSON decode error","input":{},"ctx":{"error":)"),
                  std::string::npos)
            << errors.detail();
    }
}

TEST(JsonModel, IntegersAreRangeCheckedForTheMembersType) {
    Numbers n;
    Errors errors;
    ASSERT_TRUE(covet::json::parse(
        R"({"big":18446744073709551615,"signed_big":-9223372036854775808,"small":4294967295})", n, errors))
        << errors.detail();
    EXPECT_EQ(n.big, 18446744073709551615u);
    EXPECT_EQ(n.signed_big, INT64_MIN);
    EXPECT_EQ(n.small, 4294967295u);
    EXPECT_FALSE(covet::json::parse(R"({"big":-1,"signed_big":9223372036854775808,"small":4294967296,"ratio":1e39})", n,
                                    errors));
    ASSERT_EQ(errors.size(), 4u) << errors.detail();
    EXPECT_EQ(errors[0].type, "greater_than_equal");
    EXPECT_EQ(errors[0].msg, "Input should be greater than or equal to 0");
    EXPECT_EQ(errors[1].type, "less_than_equal");
    EXPECT_EQ(errors[1].msg, "Input should be less than or equal to 9223372036854775807");
    EXPECT_EQ(errors[2].msg, "Input should be less than or equal to 4294967295");
    EXPECT_EQ(errors[3].type, "finite_number");  // beyond a float's range: refused, not converted
}

TEST(JsonModel, ChecksRunOnlyOnValidFieldsAndMayParseAgain) {
    Item item;
    Errors errors;
    EXPECT_FALSE(covet::json::parse(R"({"price":-1,"tags":[]})", item, errors));
    ASSERT_EQ(errors.size(), 1u) << errors.detail();  // name missing: price's check does not run
    EXPECT_EQ(errors[0].type, "missing");
    Envelope e;
    errors.clear();
    ASSERT_TRUE(covet::json::parse(R"({"kind":"dims","payload":"{\"width\":1,\"height\":2}"})", e, errors))
        << errors.detail();
    EXPECT_EQ(e.kind, "dims");
    EXPECT_FALSE(covet::json::parse(R"({"kind":"dims","payload":"{\"width\":1}"})", e, errors));
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].type, "value_error");
    EXPECT_EQ(loc(errors[0]), "/payload");
    EXPECT_EQ(errors[0].input, R"("{\"width\":1}")");  // read from the outer document after the inner parse
    EXPECT_NE(errors.detail().find(R"("loc":["body","payload"])"), std::string::npos) << errors.detail();
}

TEST(JsonModel, AnEmptyBodyIsMissing) {
    Item item;
    Errors errors;
    EXPECT_FALSE(covet::json::parse("", item, errors));
    EXPECT_EQ(errors.detail(), R"({"detail":[{"type":"missing","loc":["body"],"msg":"Field required","input":null}]})");
}

TEST(JsonModel, LargeInputsAreNotQuotedBack) {
    Item item;
    Errors errors;
    const std::string pad(100 * 1024, 'p');
    EXPECT_FALSE(covet::json::parse(R"({"pad":")" + pad + R"(","price":")" + pad + R"("})", item, errors));
    ASSERT_EQ(errors.size(), 3u);  // name and tags missing, price not a number
    EXPECT_LT(errors.detail().size(), 1024u);
}

TEST(JsonModel, NotAnObjectAndTooDeep) {
    Item item;
    Errors errors;
    EXPECT_FALSE(covet::json::parse("[1]", item, errors));
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].type, "model_attributes_type");
    errors.clear();
    std::string deep = R"({"name":"a","price":1,"tags":[],"x":)" + std::string(300, '[') + std::string(300, ']') + "}";
    EXPECT_FALSE(covet::json::parse(deep, item, errors));
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].type, "json_invalid");
}

TEST(JsonModel, ALargeDocumentThenSmallOnesOnTheSameThread) {
    std::string big = R"({"name":")" + std::string(200 * 1024, 'n') + R"(","price":1,"tags":[]})";
    Item item;
    Errors errors;
    ASSERT_TRUE(covet::json::parse(big, item, errors));
    EXPECT_EQ(item.name.size(), 200u * 1024);
    ASSERT_TRUE(covet::json::parse(R"({"name":"small","price":2,"tags":["t"]})", item, errors));
    EXPECT_EQ(item.name, "small");
}

TEST(JsonModel, WritesWhatItReads) {
    Item item;
    item.name = "a \"quoted\"\n\x01 \xc3\xa9";
    item.price = 9.99;
    item.tags = {"x"};
    item.stock = 3;
    item.size = Dimensions{1.5, 2};
    EXPECT_EQ(covet::json::to_json(item), R"({"name":"a \"quoted\"\n\u0001 )"
                                          "\xc3\xa9"
                                          R"(","price":9.99,"tags":["x"],"description":"none","stock":3,)"
                                          R"("size":{"width":1.5,"height":2.0},"boxes":[],"active":true,"rating":0})");
    Item back;
    Errors errors;
    ASSERT_TRUE(covet::json::parse(covet::json::to_json(item), back, errors)) << errors.detail();
    EXPECT_EQ(back.name, item.name);
    EXPECT_EQ(covet::json::to_json(back), covet::json::to_json(item));
    std::string out;
    covet::json::write_number(out, 1e300 * 1e300);
    EXPECT_EQ(out, "null");
}

TEST(JsonWriter, InvalidUtf8BecomesReplacementCharacters) {
    const auto written = [](std::string_view s) {
        std::string out;
        covet::json::write_string(out, s);
        return out;
    };
    EXPECT_EQ(written("caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac"), "\"caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac\"");
    EXPECT_EQ(written("a\xff"), R"("a\ufffd")");
    EXPECT_EQ(written("\xc0\xaf"), R"("\ufffd\ufffd")");                      // overlong
    EXPECT_EQ(written("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");            // a surrogate
    EXPECT_EQ(written("\xf4\x90\x80\x80"), R"("\ufffd\ufffd\ufffd\ufffd")");  // past U+10FFFF
    EXPECT_EQ(written("x\xe2\x82"), R"("x\ufffd\ufffd")");                    // cut short
    covet::json::Document doc;
    for (std::string_view s : {"\xff\xfe", "ok \xc3", "\xe2\x82\xac\x80"}) {
        EXPECT_TRUE(doc.parse(written(s))) << written(s);
    }
}

covet::Request post(std::string_view body, std::string_view content_type) {
    covet::Request r;
    r.set_body(body);  // a view: the tests pass literals
    if (!content_type.empty()) {
        r.add_header("content-type", content_type);
    }
    return r;
}

TEST(JsonBody, RunsTheHandlerOnlyWithAValidBody) {
    int calls = 0;
    auto handler = covet::json_body<Item>([&calls](Item& item, covet::Request&) {
        ++calls;
        return Summary{item.name, item.tags.size()};
    });
    auto ok = post(R"({"name":"widget","price":9.99,"tags":["a","b","c"]})", "application/json; charset=utf-8");
    auto res = handler(ok);
    EXPECT_EQ(res.status(), 200);
    EXPECT_EQ(res.body(), R"({"name":"widget","tag_count":3})");
    auto bad = post(R"({"name":"widget","price":"cheap"})", "");
    res = handler(bad);
    EXPECT_EQ(res.status(), 422);
    EXPECT_NE(res.body().find(R"("type":"float_type","loc":["body","price"])"), std::string::npos) << res.body();
    auto form = post("name=widget", "application/x-www-form-urlencoded");
    res = handler(form);
    EXPECT_EQ(res.status(), 422);
    EXPECT_NE(res.body().find("model_attributes_type"), std::string::npos);
    auto problem = post(R"({"name":"w","price":1,"tags":[]})", "application/problem+json");
    EXPECT_EQ(handler(problem).status(), 200);
    EXPECT_EQ(calls, 2);
}

}  // namespace
