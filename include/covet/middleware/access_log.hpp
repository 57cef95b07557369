// One log line per response through spdlog's "access" logger: text or JSON lines. The bytes are the body's as sent
// (none for HEAD); a streamed response is logged when its stream ends, with its whole body and duration, or marked
// aborted when it ended without its last chunk.
#pragma once

#include "covet/middleware/middleware.hpp"

namespace covet {

enum class LogFormat { text, json };

class AccessLogMiddleware final : public Middleware {
public:
    explicit AccessLogMiddleware(LogFormat format = LogFormat::text);
    void after(const Request& r, const RequestContext& c, Response& resp) override;
    void after_stream(const Request& r, RequestContext& c, Response& head) override;

private:
    LogFormat format_;
};

}  // namespace covet
