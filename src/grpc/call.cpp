// One gRPC call on the server: see covet/grpc/call.hpp.
#include "covet/grpc/call.hpp"

#include <algorithm>
#include <stdexcept>

#include "../logging.hpp"
#include "covet/http/ascii.hpp"
#include "covet/http/grpc_call.hpp"
#include "covet/net/connection_ref.hpp"
#include "covet/net/worker_context.hpp"

namespace covet::grpc {

namespace {

constexpr std::string_view accept_encoding = "identity,deflate,gzip";

// Header fields that are the protocol's, not the call's metadata (grpcio and grpc-go leave user-agent in).
bool reserved(std::string_view key) noexcept {
    return key.empty() || key.front() == ':' || key == "content-type" || key == "te" || key == "grpc-timeout" ||
           key == "grpc-encoding" || key == "grpc-accept-encoding" || key == "content-length" || key == "host" ||
           key == "connection" || key == "transfer-encoding";
}

bool ends_with_bin(std::string_view key) noexcept { return key.size() > 4 && key.substr(key.size() - 4) == "-bin"; }

void add_metadata(Fields& fields, std::string_view key, std::string_view value, const char* kind) {
    const auto refuse = [key](const char* why) {
        throw std::invalid_argument("covet::grpc: metadata key \"" + std::string(key) + "\" " + why);
    };
    if (key.empty()) refuse("is empty");
    const auto key_char = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    };
    if (!std::all_of(key.begin(), key.end(), key_char)) refuse("must be lower-case letters, digits, '-', '_' and '.'");
    if ((key.starts_with("grpc-") && key != "grpc-status-details-bin") || reserved(key) || key == "user-agent")
        refuse("is reserved by gRPC or HTTP; choose another name");
    if (ends_with_bin(key)) {
        fields.add(key, base64_encode(value), kind);
        return;
    }
    for (const char c : value)
        if (c < 0x20 || c > 0x7E)
            refuse("has a text value with a byte outside printable ASCII: name the key \"...-bin\" to send bytes");
    fields.add(key, value, kind);
}

// The connection's thread hands the request's streamed body to the call.
}  // namespace

class CallBody final : public BodyReader {
public:
    explicit CallBody(std::weak_ptr<ServerCall> call) : call_(std::move(call)) {}
    void on_data(std::string_view chunk) noexcept override {
        if (auto call = call_.lock()) {
            try {
                call->receive(chunk);
            } catch (const std::exception& e) {
                call->fail(e.what());
            } catch (...) {
                call->fail("an exception that is not a std::exception");
            }
        }
    }
    void on_end() noexcept override {
        if (auto call = call_.lock()) {
            try {
                call->receive_end();
            } catch (const std::exception& e) {
                call->fail(e.what());
            } catch (...) {
                call->fail("an exception that is not a std::exception");
            }
        }
    }
    void on_error(int /*status*/, std::string_view /*reason*/) noexcept override {
        if (auto call = call_.lock()) call->receive_failed();
    }

private:
    std::weak_ptr<ServerCall> call_;
};

ServerCall::ServerCall(Token /*token*/, Responder responder, const CallOptions& options)
    : max_send_message_bytes_(options.max_send_message_bytes),
      max_unsent_reply_bytes_(options.max_unsent_reply_bytes),
      responder_(std::move(responder)) {}

ServerCall::~ServerCall() = default;  // an unanswered Responder answers 500; a started stream ends

std::shared_ptr<ServerCall> ServerCall::accept(Request& request, Responder responder, const CallOptions& options) {
    const http::GrpcContent content = http::grpc_content(request.header("content-type").value_or(""));
    if (content == http::GrpcContent::none) {
        responder.send(Response::text(
            "gRPC requests need content-type application/grpc (HTTP/2), or application/grpc-web\n", 415));
        return nullptr;
    }
    auto call = std::make_shared<ServerCall>(Token{}, std::move(responder), options);
    if (content != http::GrpcContent::grpc)
        call->web_ = content == http::GrpcContent::web_text ? Web::text : Web::binary;
    call->method_.assign(request.path());
    call->peer_ = std::string(request.client_address()) + ":" + std::to_string(request.client_port());
    std::string_view encoding;
    Status refusal;
    for (const Header& h : request.headers()) {
        std::string key(h.name);
        std::transform(key.begin(), key.end(), key.begin(), [](char c) { return ascii_lower(c); });
        if (reserved(key)) {
            if (key == "grpc-timeout") {
                const auto timeout = parse_timeout(h.value);
                if (!timeout)
                    refusal = {StatusCode::internal, "malformed grpc-timeout \"" + std::string(h.value) +
                                                         "\" (expected up to 8 digits and one of H, M, S, m, u, n)"};
                else
                    call->deadline_ = request.received_at() + std::chrono::duration_cast<io::Clock::duration>(*timeout);
            } else if (key == "grpc-encoding") {
                encoding = h.value;
            } else if (key == "grpc-accept-encoding") {
                call->accepted_encodings_.assign(h.value);
            }
            continue;
        }
        Metadatum entry{std::move(key), {}};
        if (ends_with_bin(entry.key)) {
            if (!base64_decode(h.value, entry.value))
                refusal = {StatusCode::internal, "metadata \"" + entry.key + "\" is not valid base64"};
        } else {
            entry.value.assign(h.value);
        }
        call->metadata_.push_back(std::move(entry));
    }
    io::Loop* loop = net::WorkerContext::current().loop;
    const std::optional<io::Clock::time_point> deadline = call->deadline_;
    // The clock itself, not the loop's turn time (the request's receipt time is that, so a grpc-timeout of 1n
    // would not count as passed).
    if (refusal.ok() && deadline && *deadline <= io::Clock::now())
        refusal = {StatusCode::deadline_exceeded, "the call's deadline (grpc-timeout) passed before it started"};
    if (!refusal.ok()) {
        call->finish(refusal);
        return nullptr;
    }
    if (!options.compression.empty()) call->set_compression(options.compression);
    call->reader_ = std::make_unique<MessageReader>(options.max_receive_message_bytes, encoding);
    call->self_ = call;
    // The exchange's flow: room to send again, and its end (the client went away, reset the stream). The
    // protocol runs `notify` inside its own callbacks: the call hears of it on the loop's next turn instead.
    call->flow_ = std::make_shared<StreamFlow>(options.send_buffer_bytes,
                                               [weak = std::weak_ptr<ServerCall>(call), loop](StreamFlow& flow) {
                                                   const bool closed = !flow.is_open();
                                                   if (loop == nullptr) return;
                                                   loop->post([weak, closed] {
                                                       if (auto c = weak.lock()) c->flow_event(closed);
                                                   });
                                               });
    call->responder_.watch(call->flow_);
    call->flow_->arm_close();
    call->loop_ = loop;
    if (deadline && loop != nullptr) {
        if (net::ConnectionHome* home = net::ConnectionHome::current()) call->home_link_ = home->link();
        call->deadline_timer_ = loop->post_at(*deadline, [weak = std::weak_ptr<ServerCall>(call)] {
            if (auto c = weak.lock()) c->deadline_passed();
        });
    }
    return call;
}

std::optional<std::string_view> ServerCall::metadata(std::string_view key) const noexcept {
    for (const Metadatum& m : metadata_)
        if (m.key == key) return m.value;
    return std::nullopt;
}

void ServerCall::add_initial_metadata(std::string_view key, std::string_view value) {
    const std::lock_guard lock(mutex_);
    if (stream_ || state_.load() != open_state)
        throw std::logic_error("covet::grpc: initial metadata must come before the first write");
    add_metadata(initial_, key, value, "metadata");
}

void ServerCall::add_trailing_metadata(std::string_view key, std::string_view value) {
    const std::lock_guard lock(mutex_);
    add_metadata(trailing_, key, value, "metadata");
}

bool ServerCall::set_compression(std::string_view encoding) {
    std::string_view chosen;
    if (encoding == "gzip" || encoding == "deflate")
        chosen = encoding == "gzip" ? "gzip" : "deflate";  // static storage: send_encoding_ views it
    else if (!encoding.empty() && encoding != "identity")
        throw std::invalid_argument("covet::grpc: compression \"" + std::string(encoding) +
                                    "\" is not supported (gzip, deflate or identity)");
    const std::lock_guard lock(mutex_);
    if (stream_ || state_.load() != open_state)
        throw std::logic_error("covet::grpc: set_compression must come before the first write (and the call's end)");
    const bool accepted = !chosen.empty() && lists_token(accepted_encodings_, chosen, /*exact=*/true);
    send_encoding_ = accepted ? chosen : std::string_view{};
    return accepted || chosen.empty();
}

void ServerCall::on_done(std::function<void(const ServerCall&, const Status&)> callback) {
    {
        const std::lock_guard lock(mutex_);
        if (state_.load() == open_state) {
            on_done_.push_back(std::move(callback));
            return;
        }
    }
    if (callback) callback(*this, final_status_);
}

std::string_view ServerCall::content_type() const noexcept {
    switch (web_) {
        case Web::binary: return "application/grpc-web+proto";
        case Web::text: return "application/grpc-web-text+proto";
        case Web::none: break;
    }
    return "application/grpc";
}

// A framed message as the body carries it (gRPC-Web text: base64, each frame padded).
std::string ServerCall::body_bytes(std::string framed) const {
    if (web_ == Web::text) return base64_encode(framed, /*pad=*/true);
    return framed;  // moved out
}

// gRPC-Web's trailers: the body's last frame (flag 0x80), the fields as HTTP/1 header lines.
std::string ServerCall::trailer_frame(const Status& status) const {
    std::string lines;
    for (const auto& field : trailers(status)) {
        lines.append(field.name).append(":").append(field.value).append("\r\n");
    }
    std::string framed = frame_message(lines);
    framed[0] = static_cast<char>(0x80);
    return body_bytes(std::move(framed));
}

// The reply's head when it carries messages (a stream, or a unary reply in one response).
Response ServerCall::reply_head() const {
    Response head(200);
    head.set_content_type(content_type());
    head.add_prechecked_header("grpc-accept-encoding", accept_encoding);
    if (!send_encoding_.empty()) head.add_prechecked_header("grpc-encoding", send_encoding_);
    head.add_prechecked_headers(initial_);
    return head;
}

void ServerCall::start_stream() { stream_ = responder_.stream(reply_head(), flow_); }

bool ServerCall::write(std::string_view message) {
    // Compressed outside the lock, which the connection's thread takes to cancel the call (send_encoding_ is set
    // before the first write, by this producer).
    std::string compressed;
    if (!send_encoding_.empty() && message.size() <= max_send_message_bytes_)
        compressed = frame_message(message, send_encoding_);
    {
        const std::lock_guard lock(mutex_);
        if (state_.load() != open_state) return false;
        if (message.size() <= max_send_message_bytes_ && (!flow_ || flow_->buffered() <= max_unsent_reply_bytes_)) {
            if (!stream_) start_stream();
            stream_.write(body_bytes(compressed.empty() ? frame_message(message) : std::move(compressed)));
            return true;
        }
    }
    if (message.size() > max_send_message_bytes_)
        finish(
            {StatusCode::resource_exhausted, "a reply message of " + std::to_string(message.size()) +
                                                 " bytes is larger than the server's limit (max_send_message_bytes)"});
    else
        finish({StatusCode::resource_exhausted,
                "the client is not reading: more than " + std::to_string(max_unsent_reply_bytes_) +
                    " bytes of replies are unsent (max_unsent_reply_bytes); a long stream should wait for ready() / "
                    "on_ready (Service::server_streaming_pull does)"});
    return false;
}

bool ServerCall::ready() const noexcept { return !flow_ || !flow_->over_limit(); }

void ServerCall::on_ready(std::function<void(ServerCall&)> callback) {
    {
        const std::lock_guard lock(mutex_);
        if (state_.load() == open_state && flow_ && flow_->arm()) {  // flow_event runs it when there is room
            on_ready_ = std::move(callback);
            return;
        }
    }
    if (callback) callback(*this);  // room already, or the call is over
}

Fields ServerCall::trailers(const Status& status) const {
    Fields fields;
    fields.add_prechecked("grpc-status", std::to_string(static_cast<int>(status.code)));
    if (!status.message.empty()) fields.add_prechecked("grpc-message", encode_status_message(status.message));
    fields.append(trailing_);
    return fields;
}

// Ends the exchange with `status` (the caller holds the lock and has moved the state on): the stream's
// trailers, or Trailers-Only (one HEADERS frame) when nothing was sent.
void ServerCall::end_locked(const Status& status) {
    final_status_ = status;
    if (stream_) {
        if (web_ != Web::none) {
            stream_.write(trailer_frame(status));
            stream_.end();
        } else {
            stream_.end(trailers(status));
        }
        return;
    }
    Response r(200);
    r.set_content_type(content_type());
    r.add_prechecked_headers(initial_);
    r.add_prechecked_headers(trailers(status));
    responder_.send(std::move(r));
}

void ServerCall::finish(const Status& status) {
    {
        const std::lock_guard lock(mutex_);
        State expected = open_state;
        if (!state_.compare_exchange_strong(expected, finished_state)) return;
        end_locked(status);
        on_ready_ = nullptr;
    }
    ended();
}

void ServerCall::finish_with_message(std::string_view message, const Status& status) {
    if (!status.ok() || message.size() > max_send_message_bytes_) {
        if (!status.ok())
            finish(status);
        else
            write(message);  // finishes with RESOURCE_EXHAUSTED
        return;
    }
    {
        const std::lock_guard lock(mutex_);
        State expected = open_state;
        if (!state_.compare_exchange_strong(expected, finished_state)) return;
        on_ready_ = nullptr;
        final_status_ = status;
        if (web_ != Web::none) {  // gRPC-Web: the message and the trailer frame in the body
            if (!stream_) start_stream();
            stream_.write(body_bytes(frame_message(message, send_encoding_)) + trailer_frame(status));
            stream_.end();
        } else if (stream_) {
            stream_.write(frame_message(message, send_encoding_));
            stream_.end(trailers(status));
        } else {  // a unary reply: one response, its trailers after the body
            Response r = reply_head();
            r.set_body(frame_message(message, send_encoding_));
            for (const auto& field : trailers(status)) r.trailer(field.name, field.value);
            responder_.send(std::move(r));
        }
    }
    ended();
}

bool ServerCall::finished() const { return state_.load() != open_state; }

bool ServerCall::cancelled() const { return state_.load() == cancelled_state; }

// The call's hold on itself goes (it stays while anyone else holds it). Both the producer's finish and the
// connection's cancel may get here.
void ServerCall::release_self() {
    std::shared_ptr<ServerCall> keep;
    const std::lock_guard lock(mutex_);
    keep = std::move(self_);
}

// The call has ended (state and final_status_ set): its deadline's timer goes (it would hold the call's memory
// until the deadline), its on_done callbacks run, then it lets itself go.
void ServerCall::ended() {
    cancel_deadline();
    std::vector<std::function<void(const ServerCall&, const Status&)>> done;
    {
        const std::lock_guard lock(mutex_);
        done.swap(on_done_);
    }
    for (const auto& callback : done) {
        try {
            if (callback) callback(*this, final_status_);
        } catch (const std::exception& e) {
            logging::error("covet::grpc: an on_done callback of {} threw (it must not): {}", method_, e.what());
        } catch (...) {
            logging::error("covet::grpc: an on_done callback of {} threw (it must not)", method_);
        }
    }
    release_self();
}

// On the worker's thread directly; from another thread only while the worker is alive (its HomeLink, as a
// Responder does): a call may end after the server has gone.
void ServerCall::cancel_deadline() {
    if (deadline_timer_.seq == 0 || loop_ == nullptr) return;
    const io::TimerId id = std::exchange(deadline_timer_, {});
    if (net::WorkerContext::current().loop == loop_) {
        loop_->cancel(id);
    } else if (home_link_) {
        const std::lock_guard lock(home_link_->mutex);
        if (home_link_->home != nullptr) loop_->cancel(id);
    }
}

void ServerCall::start_reading(Request& request, RequestBody body) {
    auto keep = shared_from_this();  // a callback may end the call
    if (request.body_streamed() && body) {
        body_ = std::move(body);
        body_.read(std::make_shared<CallBody>(weak_from_this()));
        return;
    }
    try {
        receive(request.body());
        receive_end();
    } catch (const std::exception& e) {
        fail(e.what());
    } catch (...) {
        fail("an exception that is not a std::exception");
    }
}

// gRPC-Web text: `chunk`'s base64, with what an earlier chunk left of a group of 4 characters, decoded group by
// group (frames may each end with padding); `chunk` then views the decoded bytes.
Status ServerCall::decode_text(std::string_view& chunk) {
    pending_text_.append(chunk);
    const std::size_t whole = pending_text_.size() - pending_text_.size() % 4;
    decoded_text_.clear();
    std::string group;
    for (std::size_t i = 0; i < whole; i += 4) {
        if (!base64_decode(std::string_view(pending_text_).substr(i, 4), group))
            return {StatusCode::internal, "a grpc-web-text request body is not valid base64"};
        decoded_text_ += group;
    }
    pending_text_.erase(0, whole);
    chunk = decoded_text_;
    return {};
}

void ServerCall::receive(std::string_view chunk) {
    if (!reading_) return;
    const std::size_t received = chunk.size();
    Status status = web_ == Web::text ? decode_text(chunk) : Status{};
    if (status.ok()) {
        status = reader_->feed(chunk, [this](std::string_view message) {
            if (on_message_ && !finished()) on_message_(*this, message);
        });
    }
    if (body_) body_.consume(received);
    if (!status.ok()) {
        reading_ = false;
        finish(status);
    }
    after_callback();
}

void ServerCall::receive_end() {
    if (!reading_) return;
    reading_ = false;
    const Status status = reader_->finish();
    if (!status.ok())
        finish(status);
    else if (on_end_ && !finished())
        on_end_(*this);
    after_callback();
}

// A callback threw (or memory ran out) while the request was read: the call ends with UNKNOWN.
void ServerCall::fail(const char* what) noexcept {
    reading_ = false;
    try {
        finish({StatusCode::unknown, std::string("the method failed: ") + what});
    } catch (...) {  // nothing left to do: the Responder answers when the call goes
    }
}

void ServerCall::receive_failed() {
    reading_ = false;  // the client went away or reset the stream: the flow's close says so too
}

void ServerCall::flow_event(bool closed) {
    if (closed) {
        cancel_now();
        return;
    }
    std::function<void(ServerCall&)> run;
    {
        const std::lock_guard lock(mutex_);
        run = std::exchange(on_ready_, nullptr);
    }
    if (run) run(*this);
}

// The exchange ended before the call did: the method hears it once (on_cancel), a waiting writer too.
// Runs on the loop's turn after the flow closed, outside the protocol's callbacks: the exchange is ended here
// (aborted, or answered CANCELLED if nothing was sent), so that the engine lets it go whoever still holds the call.
void ServerCall::cancel_now() { stop(nullptr); }

// The deadline passed first: the client gets DEADLINE_EXCEEDED, the method hears it as a cancel.
void ServerCall::deadline_passed() {
    const Status answer{StatusCode::deadline_exceeded, "the call's deadline (grpc-timeout) passed"};
    stop(&answer);
}

// The call ends before its method finished it: `answer` sent to the client, or (null) the exchange aborted.
void ServerCall::stop(const Status* answer) {
    std::function<void(ServerCall&)> ready;
    bool stopped = false, end_later = false;
    {
        const std::lock_guard lock(mutex_);
        State expected = open_state;
        if (!state_.compare_exchange_strong(expected, cancelled_state)) {
            on_ready_ = nullptr;
        } else {
            stopped = true;
            if (answer && stream_ && loop_ != nullptr) {
                final_status_ = *answer;  // the trailers follow below
                end_later = true;
            } else if (answer) {
                end_locked(*answer);
            } else if (stream_) {
                final_status_ = {StatusCode::cancelled, "the client went away"};
                stream_.abort();
            } else {
                end_locked({StatusCode::cancelled, "the client went away"});
            }
            ready = std::exchange(on_ready_, nullptr);
        }
    }
    if (end_later) {
        // A producer on another thread may have begun the stream and written to it through tasks posted to this
        // loop that have not run yet (no more can come: the call is over): the trailers go after them.
        loop_->post([self = shared_from_this(), status = *answer] {
            const std::lock_guard lock(self->mutex_);
            self->end_locked(status);
        });
    }
    if (state_.load() == cancelled_state && !std::exchange(cancel_heard_, true)) {
        reading_ = false;
        if (on_cancel_) on_cancel_(*this);
        if (ready) ready(*this);
    }
    after_callback();
    if (stopped)
        ended();
    else
        release_self();
}

// On the connection's thread, out of every callback: a call that is over drops its callbacks (and whatever
// they captured).
void ServerCall::after_callback() {
    if (!finished()) return;
    reading_ = false;
    on_message_ = nullptr;
    on_end_ = nullptr;
    on_cancel_ = nullptr;
}

}  // namespace covet::grpc
