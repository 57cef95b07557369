// Validation errors of a JSON body, shaped as pydantic v2 reports them and FastAPI answers them (422):
// {"detail":[{"type":"missing","loc":["body","name"],"msg":"Field required","input":{...}}, ...]}.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "covet/json/writer.hpp"

namespace covet::json {

// One step of an error's location: a member name or an array index.
struct LocationStep {
    std::string name;  // empty for an index
    std::size_t index = 0;
};

struct ValidationError {
    std::string type;               // pydantic's error type: missing, string_type, int_type, json_invalid ...
    std::vector<LocationStep> loc;  // below the body
    std::string msg;                // pydantic's message for that type
    std::string input;              // the offending value as JSON text; empty: none (written as {})
    std::string context;            // json_invalid: why the text is not JSON (ctx.error)
};

class Errors {
public:
    bool empty() const noexcept { return list_.empty(); }
    std::size_t size() const noexcept { return list_.size(); }
    const std::vector<ValidationError>& list() const noexcept { return list_; }
    const ValidationError& operator[](std::size_t i) const noexcept { return list_[i]; }
    void add(ValidationError e) { list_.push_back(std::move(e)); }
    void clear() noexcept { list_.clear(); }

    // FastAPI's 422 body, every location under `root` ("body").
    std::string detail(std::string_view root = "body") const {
        std::string out = R"({"detail":[)";
        for (std::size_t i = 0; i < list_.size(); ++i) {
            const auto& e = list_[i];
            out += i ? R"(,{"type":)" : R"({"type":)";
            write_string(out, e.type);
            out += R"(,"loc":[)";
            write_string(out, root);
            for (const auto& step : e.loc) {
                out.push_back(',');
                if (step.name.empty()) {
                    write_number(out, step.index);
                } else {
                    write_string(out, step.name);
                }
            }
            out += R"(],"msg":)";
            write_string(out, e.msg);
            out += R"(,"input":)";
            out += e.input.empty() ? std::string_view("{}") : std::string_view(e.input);
            if (!e.context.empty()) {
                out += R"(,"ctx":{"error":)";
                write_string(out, e.context);
                out.push_back('}');
            }
            out.push_back('}');
        }
        out += "]}";
        return out;
    }

private:
    std::vector<ValidationError> list_;
};

}  // namespace covet::json
