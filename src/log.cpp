#include "covet/log.hpp"

#include "logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <string>

namespace covet {
namespace {

void json_escape(std::string& out, std::string_view s) {
    for (char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += c;
                }
        }
    }
}

// ISO 8601 UTC with milliseconds, as Python's side writes it ("2026-01-02T03:04:05.678Z").
void append_time(std::string& out) {
    const auto now = std::chrono::system_clock::now();
    const std::time_t secs = std::chrono::system_clock::to_time_t(now);
    const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(millis));
    out += buf;
}

// The message of a JSON line, escaped (it may hold a client's bytes: a request target in an error).
class JsonMessage final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
        std::string out;
        json_escape(out, std::string_view(msg.payload.data(), msg.payload.size()));
        dest.append(out.data(), out.data() + out.size());
    }
    std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonMessage>(); }
};

// The shape of covet.logger.JsonFormatter's records: one parser for the engine's and Python's lines.
std::unique_ptr<spdlog::formatter> json_formatter() {
    auto f = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    f->add_flag<JsonMessage>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","logger":"covet.engine","thread":%t,"msg":"%*"})");
    return f;
}

// The process's "access" logger (kept alive by the static: no reference count per line).
spdlog::logger& access_logger() {
    static const std::shared_ptr<spdlog::logger> logger = [] {
        auto l = spdlog::get("access");
        if (!l) l = spdlog::stderr_logger_mt("access");
        l->set_pattern("%v");
        return l;
    }();
    return *logger;
}

}  // namespace

namespace logging {
namespace {

spdlog::level::level_enum spdlog_level(Level level) noexcept {
    switch (level) {
        case Level::trace: return spdlog::level::trace;
        case Level::debug: return spdlog::level::debug;
        case Level::info: return spdlog::level::info;
        case Level::warn: return spdlog::level::warn;
        case Level::error: return spdlog::level::err;
        case Level::critical: return spdlog::level::critical;
    }
    return spdlog::level::critical;
}

// PerformanceMiddleware writes whole lines (text or JSON), so its logger prints them as they are ("%v"). It is not
// registered with spdlog: covet::configure_logging (also run when Python changes the log level at run time) sets
// every registered logger's pattern, which would wrap the lines again; the level it sets is read from the
// default logger instead. An embedding app or a test may register its own "covet.performance" logger first.
spdlog::logger& performance_logger() {
    static const std::shared_ptr<spdlog::logger> logger = [] {
        if (auto own = spdlog::get("covet.performance")) return own;
        auto l =
            std::make_shared<spdlog::logger>("covet.performance", std::make_shared<spdlog::sinks::stderr_sink_mt>());
        l->set_pattern("%v");
        return l;
    }();
    return *logger;
}

}  // namespace

bool enabled(Level level) noexcept { return spdlog::default_logger_raw()->should_log(spdlog_level(level)); }

void write(Level level, std::string_view line) noexcept {
    spdlog::default_logger_raw()->log(spdlog_level(level), spdlog::string_view_t(line.data(), line.size()));
}

void vwrite(Level level, fmt::string_view format, fmt::format_args args) noexcept {
    try {
        write(level, fmt::vformat(format, args));
    } catch (...) {  // out of memory: the format string alone says what happened
        write(level, std::string_view(format.data(), format.size()));
    }
}

bool performance_warnings_enabled() noexcept {
    return performance_logger().should_log(spdlog::level::warn) &&
           spdlog::default_logger_raw()->should_log(spdlog::level::warn);
}

void write_performance_warning(std::string_view line) noexcept {
    performance_logger().log(spdlog::level::warn, spdlog::string_view_t(line.data(), line.size()));
}

}  // namespace logging

void configure_logging(std::string_view level, LogFormat format) {
    // Logs go to stderr: stdout belongs to the application (the examples print their address there).
    static const bool stderr_default = [] {
        spdlog::set_default_logger(spdlog::stderr_logger_mt("covet"));
        return true;
    }();
    (void)stderr_default;
    const auto lvl = spdlog::level::from_str(std::string(level));
    if (lvl == spdlog::level::off && level != "off")
        throw std::invalid_argument("unknown log level '" + std::string(level) +
                                    "': use trace, debug, info, warn, error, critical or off");
    spdlog::set_level(lvl);
    if (format == LogFormat::json)
        spdlog::set_formatter(json_formatter());
    else
        spdlog::set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
    access_logger().set_pattern("%v");
}

AccessLogMiddleware::AccessLogMiddleware(LogFormat format) : format_(format) { access_logger(); }

namespace {

// The request's part of an access line, up to its byte count: written when the answer is complete, which for a
// streamed response is when its stream ends (the record then keeps this part from the head).
void append_request(std::string& line, LogFormat format, const Request& r, int status) {
    if (format == LogFormat::json) {
        // The shape of covet.observability's JSON log records (time, level, logger, msg, ids), plus the request's
        // fields: one parser for every line on the stream. The time goes in front when the line is written.
        line += R"(","level":"info","logger":"covet.access","msg":")";
        line += r.method_name();
        line += ' ';
        json_escape(line, r.path());
        line += ' ';
        line += std::to_string(status);
        line += R"(","client":")";
        json_escape(line, r.client_address());
        line += R"(","method":")";
        line += r.method_name();
        line += R"(","target":")";
        json_escape(line, r.target());
        line += R"(","protocol":")";
        line += r.protocol();
        line += R"(","status":)";
        line += std::to_string(status);
    } else {
        line.append(r.client_address()).append(" \"").append(r.method_name()).append(" ");
        for (char c : r.target()) line += (c == '"' || static_cast<unsigned char>(c) < 0x20) ? '?' : c;
        line.append(" ").append(r.protocol()).append("\" ").append(std::to_string(status));
    }
}

// Writes the line: the time (JSON), the request's part, then the body's bytes as sent, the duration and the ids.
void log_access(LogFormat format, std::string_view request_part, std::uint64_t bytes, io::Clock::time_point received,
                bool completed, const RequestContext& context) {
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(io::Clock::now() - received).count();
    std::string line;
    line.reserve(request_part.size() + 128);
    const trace::SpanState& span = context.span();
    char trace_hex[32], span_hex[16];
    if (format == LogFormat::json) {
        line += R"({"time":")";
        append_time(line);
        line += request_part;
        line += R"(,"bytes":)";
        line += std::to_string(bytes);
        line += R"(,"duration_us":)";
        line += std::to_string(micros);
        if (!completed) line += R"(,"aborted":true)";
        line += R"(,"request_id":")";
        json_escape(line, context.request_id());
        line += '"';
        if (span.active) {
            line.append(R"(,"trace_id":")").append(trace::to_hex(span.trace_id, trace_hex));
            line.append(R"(","span_id":")").append(trace::to_hex(span.span_id, span_hex)).append("\"");
        }
        line += '}';
    } else {
        line += request_part;
        line.append(" ").append(std::to_string(bytes)).append(" ").append(std::to_string(micros)).append("us");
        if (!completed) line.append(" aborted");
        if (!context.request_id().empty()) line.append(" id=").append(context.request_id());
        if (span.active) line.append(" trace=").append(trace::to_hex(span.trace_id, trace_hex));
    }
    access_logger().info(line);
}

// A streamed response's line, kept from its head to the stream's end.
class StreamedAccessRecord final : public StreamEndHook {
public:
    StreamedAccessRecord(LogFormat format, std::string request_part, io::Clock::time_point received)
        : format_(format), request_part_(std::move(request_part)), received_(received) {}
    void stream_end(const RequestContext& context, std::uint64_t body_bytes, bool completed) noexcept override {
        try {
            log_access(format_, request_part_, body_bytes, received_, completed, context);
        } catch (...) {  // out of memory: the line is lost, the server goes on
        }
    }

private:
    LogFormat format_;
    std::string request_part_;
    io::Clock::time_point received_;
};

}  // namespace

void AccessLogMiddleware::after(const Request& r, const RequestContext& context, Response& resp) {
    if (!access_logger().should_log(spdlog::level::info)) return;
    std::string request_part;
    request_part.reserve(128);
    append_request(request_part, format_, r, resp.status());
    // The body as it goes out: none for HEAD, a file body's region (sendfile) as well as an in-memory one.
    log_access(format_, request_part, r.method() == Method::head ? 0 : resp.body_size(), r.received_at(), true,
               context);
}

void AccessLogMiddleware::after_stream(const Request& r, RequestContext& context, Response& head) {
    if (!access_logger().should_log(spdlog::level::info)) return;
    std::string request_part;
    request_part.reserve(128);
    append_request(request_part, format_, r, head.status());
    context.add_stream_end_hook(
        std::make_unique<StreamedAccessRecord>(format_, std::move(request_part), r.received_at()));
}

}  // namespace covet
