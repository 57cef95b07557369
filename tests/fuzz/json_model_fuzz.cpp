// Typed JSON bodies (include/covet/json/model.hpp on simdjson's DOM): what a client may POST to a json_body
// route. Input: the body. Properties: no crash or sanitizer report; a body is either accepted or refused with
// at least one error, and a refusal's 422 body is itself valid JSON; an accepted model writes back to JSON
// that parses to the same model and writes identically again.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "covet/json/document.hpp"
#include "covet/json/model.hpp"
#include "fuzz_support.hpp"

namespace {

struct Box {
    double width = 0;
    std::optional<std::int32_t> depth;
};

struct Item {
    std::string name;
    double price = 0;
    std::vector<std::string> tags;
    std::string description = "-";
    std::optional<std::uint16_t> stock;
    std::vector<Box> boxes;
    bool active = true;
};

}  // namespace

template <>
struct covet::json::Model<Box> {
    static constexpr auto fields = std::tuple{field("width", &Box::width), field("depth", &Box::depth)};
};
template <>
struct covet::json::Model<Item> {
    static constexpr auto fields = std::tuple{field("name", &Item::name),
                                              field("price", &Item::price),
                                              field("tags", &Item::tags),
                                              field("description", &Item::description, has_default),
                                              field("stock", &Item::stock),
                                              field("boxes", &Item::boxes, has_default),
                                              field("active", &Item::active, has_default)};
};

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using covet_fuzz::check;
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    Item item;
    covet::json::Errors errors;
    if (!covet::json::parse(body, item, errors)) {
        check(!errors.empty(), "a refused body without an error");
        covet::json::Document detail;
        check(detail.parse(errors.detail()), "a 422 body that is not JSON");
        return 0;
    }
    check(errors.empty(), "an accepted body with errors");
    const std::string written = covet::json::to_json(item);
    Item again;
    check(covet::json::parse(written, again, errors), "a written model does not parse back");
    check(covet::json::to_json(again) == written, "a written model does not write back the same");
    return 0;
}
