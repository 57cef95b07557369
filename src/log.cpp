#include "covet/log.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <ctime>
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

std::shared_ptr<spdlog::logger> access_logger() {
    static std::shared_ptr<spdlog::logger> logger = [] {
        auto l = spdlog::get("access");
        if (!l) l = spdlog::stderr_logger_mt("access");
        l->set_pattern("%v");
        return l;
    }();
    return logger;
}

}  // namespace

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
    access_logger()->set_pattern("%v");
}

AccessLogMiddleware::AccessLogMiddleware(LogFormat format) : format_(format) { access_logger(); }

void AccessLogMiddleware::after(const Request& r, const RequestContext& context, Response& resp) {
    auto logger = access_logger();
    if (!logger->should_log(spdlog::level::info)) return;
    const auto micros =
        std::chrono::duration_cast<std::chrono::microseconds>(io::Clock::now() - r.received_at()).count();
    std::string line;
    line.reserve(192);
    const trace::SpanState& span = context.span();
    char trace_hex[32], span_hex[16];
    if (format_ == LogFormat::json) {
        // The shape of covet.observability's JSON log records (time, level, logger, msg, ids), plus the
        // request's fields: one parser for every line on the stream.
        line += R"({"time":")";
        append_time(line);
        line += R"(","level":"info","logger":"covet.access","msg":")";
        line += r.method_name();
        line += ' ';
        json_escape(line, r.path());
        line += ' ';
        line += std::to_string(resp.status());
        line += R"(","client":")";
        json_escape(line, r.client_address());
        line += R"(","method":")";
        line += r.method_name();
        line += R"(","target":")";
        json_escape(line, r.target());
        line += R"(","protocol":")";
        line += r.protocol();
        line += R"(","status":)";
        line += std::to_string(resp.status());
        line += R"(,"bytes":)";
        line += std::to_string(resp.body().size());
        line += R"(,"duration_us":)";
        line += std::to_string(micros);
        line += R"(,"request_id":")";
        json_escape(line, context.request_id());
        line += '"';
        if (span.active) {
            line.append(R"(,"trace_id":")").append(trace::to_hex(span.trace_id, trace_hex));
            line.append(R"(","span_id":")").append(trace::to_hex(span.span_id, span_hex)).append("\"");
        }
        line += '}';
    } else {
        line.append(r.client_address()).append(" \"").append(r.method_name()).append(" ");
        for (char c : r.target()) line += (c == '"' || static_cast<unsigned char>(c) < 0x20) ? '?' : c;
        line.append(" ").append(r.protocol()).append("\" ").append(std::to_string(resp.status())).append(" ");
        line.append(std::to_string(resp.body().size())).append(" ").append(std::to_string(micros)).append("us");
        if (!context.request_id().empty()) line.append(" id=").append(context.request_id());
        if (span.active) line.append(" trace=").append(trace::to_hex(span.trace_id, trace_hex));
    }
    logger->info(line);
}

}  // namespace covet
