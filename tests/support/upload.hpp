// Test doubles for streamed request bodies (covet/http/body_stream.hpp), shared by the HTTP/1.1 and
// HTTP/2 protocol tests: a dispatcher that accepts (or declines) streaming and a reader that records.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "covet/http/body_stream.hpp"
#include "covet/http/exchange.hpp"
#include "fake_driver.hpp"

namespace covet_test {

struct RecordingReader final : covet::BodyReader {
    void on_data(std::string_view chunk) noexcept override {
        data.append(chunk);
        chunks.emplace_back(chunk);
        if (on_chunk) on_chunk(chunk);
    }
    void on_end() noexcept override { ++ended; }
    void on_error(int status, std::string_view why) noexcept override {
        error = status;
        reason = why;
    }

    std::string data;
    std::vector<std::string> chunks;
    int ended = 0;
    int error = -1;  // -1: none
    std::string reason;
    std::function<void(std::string_view)> on_chunk;
};

// Accepts streaming (`accept`), keeps the Responder and the RequestBody of the latest exchange, and
// installs `reader` at once unless `install` is false. Requests that come whole are echoed.
class UploadDispatcher final : public covet::RequestDispatcher {
public:
    bool stream_body(Request& r) override {
        ++offers;
        offered_targets.emplace_back(r.target());
        return accept;
    }
    void dispatch(Request& request, covet::ExchangeState*, Responder responder) override {
        seen.push_back(snapshot(request));
        streamed.push_back(request.body_streamed());
        if (!request.body_streamed()) {
            responder.send(Response::text(echo_text(request)));
            return;
        }
        body = responder.body();
        this->responder = std::move(responder);
        reader = std::make_shared<RecordingReader>();
        if (install) body.read(reader);
        if (on_dispatch) on_dispatch(request);
    }

    bool accept = true;
    bool install = true;
    int offers = 0;
    std::vector<std::string> offered_targets;
    std::vector<Seen> seen;
    std::vector<bool> streamed;
    Responder responder;
    covet::RequestBody body;
    std::shared_ptr<RecordingReader> reader;
    std::function<void(Request&)> on_dispatch;
};

}  // namespace covet_test
