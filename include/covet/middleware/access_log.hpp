// One log line per response through spdlog's "access" logger: text or JSON lines.
#pragma once

#include "covet/middleware/middleware.hpp"

namespace covet {

enum class LogFormat { text, json };

class AccessLogMiddleware final : public Middleware {
public:
    explicit AccessLogMiddleware(LogFormat format = LogFormat::text);
    void after(const Request& r, const RequestContext& c, Response& resp) override;

private:
    LogFormat format_;
};

}  // namespace covet
