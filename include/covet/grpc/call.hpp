// One gRPC call on the server: the request's method, metadata and deadline; its messages as they arrive;
// the reply's metadata, messages (with back-pressure) and status.
//
// Threads: the call is made, and its on_message / on_end / on_cancel / on_ready callbacks run, on the
// connection's thread. write(), finish() and the metadata setters may be called from any thread, one thread at
// a time (one producer, as grpc's ServerWriter). Callbacks must not throw. The call keeps itself alive until it is
// finished or cancelled: callbacks receive it and need not capture it (capturing its shared_ptr in its own callbacks
// would keep it forever). A call whose method never finishes it is cancelled when the client goes away or its
// deadline passes.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "covet/grpc/status.hpp"
#include "covet/grpc/wire.hpp"
#include "covet/http/body_stream.hpp"
#include "covet/http/exchange.hpp"
#include "covet/http/request.hpp"
#include "covet/io/loop.hpp"

namespace covet::net {
struct HomeLink;
}

namespace covet::grpc {

// One metadata entry: the key lower-case; a "-bin" key's value is the decoded bytes.
struct Metadatum {
    std::string key;
    std::string value;
};

class ServerCall;

// Runs before the method, on the connection's thread, with the call's method, metadata and deadline: a status
// other than OK ends the call with it and the method never runs (authentication, quotas). It may register
// ServerCall::on_done to see how the call ended (logging, metrics) and add metadata to the reply.
using Interceptor = std::function<Status(ServerCall& call)>;

// How the calls of the services added with them are served (add_service).
struct CallOptions {
    std::size_t max_receive_message_bytes = std::size_t{4} * 1024 * 1024;  // grpcio's and grpc-go's default
    std::size_t max_send_message_bytes = SIZE_MAX;
    std::size_t send_buffer_bytes = std::size_t{1024} * 1024;  // write() past this: ready() is false
    // A writer that ignores ready() (or a method that writes a whole stream at once on the connection's thread,
    // Service::server_streaming) to a client that does not read: past this many unsent bytes the call ends with
    // RESOURCE_EXHAUSTED instead of holding more memory.
    std::size_t max_unsent_reply_bytes = std::size_t{16} * 1024 * 1024;
    // Reply messages compressed with this encoding ("gzip" or "deflate") for clients that accept it
    // (grpc-accept-encoding); others get them uncompressed. "": none (ServerCall::set_compression per call).
    std::string compression;
    std::vector<Interceptor> interceptors;  // in order; the first to refuse ends the call
};

class ServerCall : public std::enable_shared_from_this<ServerCall> {
    struct Token {};

public:
    // What covet::grpc::Service does for each request (on the connection's thread): the call, or null when the
    // request is not one (a content-type other than application/grpc: answered 415; malformed grpc-timeout or
    // binary metadata: answered with INTERNAL; a deadline already past: DEADLINE_EXCEEDED).
    static std::shared_ptr<ServerCall> accept(Request& request, Responder responder, const CallOptions& options);
    ServerCall(Token, Responder responder, const CallOptions& options);
    ~ServerCall();
    ServerCall(const ServerCall&) = delete;
    ServerCall& operator=(const ServerCall&) = delete;

    // -- the request ------------------------------------------------------------------------------------------
    std::string_view method() const noexcept { return method_; }  // "/package.Service/Method"
    const std::vector<Metadatum>& metadata() const noexcept { return metadata_; }
    std::optional<std::string_view> metadata(std::string_view key) const noexcept;
    // From grpc-timeout. When it passes before the call is finished, the client gets DEADLINE_EXCEEDED and the
    // call is cancelled (on_cancel runs; write and finish do nothing). The loop's sweep checks it, so it may act
    // up to 250 ms late; the client keeps its own deadline.
    std::optional<io::Clock::time_point> deadline() const noexcept { return deadline_; }
    std::string_view peer_address() const noexcept { return peer_; }

    // -- receiving: set before the method returns (messages are delivered once it has), on that thread ---------
    void on_message(std::function<void(ServerCall&, std::string_view message)> callback) {
        on_message_ = std::move(callback);
    }
    // The client sent its last message (half-close).
    void on_end(std::function<void(ServerCall&)> callback) { on_end_ = std::move(callback); }
    // The client went away or reset the stream, or the deadline passed, before the call finished.
    void on_cancel(std::function<void(ServerCall&)> callback) { on_cancel_ = std::move(callback); }
    // Runs once the call has ended, with the status the client got (CANCELLED when it went away): on the thread
    // that ended it; at once when it has ended already. Several may be added. For interceptors (logging,
    // metrics); must not throw.
    void on_done(std::function<void(const ServerCall&, const Status&)> callback);

    // -- the reply (any thread) ---------------------------------------------------------------------------------
    // Before the first write (or finish): headers of the reply; a "-bin" key's value is sent base64-encoded.
    // Throws std::invalid_argument for a key that is not a lower-case token, or a text value with CR, LF, NUL.
    void add_initial_metadata(std::string_view key, std::string_view value);
    void add_trailing_metadata(std::string_view key, std::string_view value);
    // Before the first write: reply messages compressed with `encoding` ("gzip", "deflate"; "" or "identity":
    // none), if the client accepts it (else they go uncompressed: false). Throws std::invalid_argument for
    // another encoding, std::logic_error after the first write or the call's end.
    bool set_compression(std::string_view encoding);
    // Sends one message; false once the call is over (finished, cancelled), or when the message is over the send
    // limit or the unsent replies over CallOptions::max_unsent_reply_bytes (the call then finishes with
    // RESOURCE_EXHAUSTED).
    bool write(std::string_view message);
    // False while more than CallOptions::send_buffer_bytes are unsent: stop writing until on_ready runs.
    bool ready() const noexcept;
    // Runs `callback` once, when the unsent bytes have fallen to half the limit or the call ended (at once,
    // on this thread, when that is so already; else on the connection's thread).
    void on_ready(std::function<void(ServerCall&)> callback);
    // Ends the call with `status` and the trailing metadata. Once; later calls are ignored.
    void finish(const Status& status);
    // A unary reply: `message` and then `status`, in one go (HEADERS, DATA, trailing HEADERS); an error
    // status sends no message.
    void finish_with_message(std::string_view message, const Status& status);
    bool finished() const;
    bool cancelled() const;

    // (covet::grpc::Service) delivers the request's messages: its whole body now, or a streamed one as it comes.
    void start_reading(Request& request, RequestBody body);

private:
    friend class CallBody;
    enum State : std::uint8_t { open_state, finished_state, cancelled_state };
    enum class Web : std::uint8_t { none, binary, text };  // gRPC-Web (application/grpc-web, -text: base64)
    void receive(std::string_view chunk);                  // the connection's thread, from here on
    Status decode_text(std::string_view& chunk);
    void receive_end();
    void receive_failed();
    void fail(const char* what) noexcept;
    void flow_event(bool closed);  // posted to the loop by the flow's notify: outside the protocol's callbacks
    void cancel_now();
    void deadline_passed();
    void stop(const Status* answer);
    void ended();
    void cancel_deadline();
    Response reply_head() const;
    void start_stream();
    Fields trailers(const Status& status) const;
    std::string_view content_type() const noexcept;
    std::string body_bytes(std::string framed) const;
    std::string trailer_frame(const Status& status) const;
    void end_locked(const Status& status);
    void release_self();
    void after_callback();

    std::string method_;
    std::vector<Metadatum> metadata_;
    std::optional<io::Clock::time_point> deadline_;
    io::Loop* loop_ = nullptr;  // the connection's
    io::TimerId deadline_timer_;
    std::shared_ptr<net::HomeLink> home_link_;  // the worker's, to cancel the timer from another thread
    std::string peer_;
    std::size_t max_send_message_bytes_;
    std::size_t max_unsent_reply_bytes_;
    std::unique_ptr<MessageReader> reader_;
    RequestBody body_;
    bool reading_ = true;
    Web web_ = Web::none;
    std::string pending_text_;  // gRPC-Web text: base64 not yet a multiple of 4 characters
    std::string decoded_text_;
    std::shared_ptr<ServerCall> self_;  // alive until finished or cancelled, whoever else holds it

    std::function<void(ServerCall&, std::string_view)> on_message_;
    std::function<void(ServerCall&)> on_end_;
    std::function<void(ServerCall&)> on_cancel_;
    std::function<void(ServerCall&)> on_ready_;

    bool cancel_heard_ = false;  // on_cancel ran (the connection's thread)

    mutable std::mutex mutex_;  // the reply's side below (the producer, and the connection's thread on cancel)
    std::atomic<State> state_{open_state};
    Responder responder_;
    StreamWriter stream_;
    std::shared_ptr<StreamFlow> flow_;
    Fields initial_;
    Fields trailing_;
    std::string accepted_encodings_;  // the client's grpc-accept-encoding
    std::string_view send_encoding_;  // the reply messages' ("": none)
    std::vector<std::function<void(const ServerCall&, const Status&)>> on_done_;
    Status final_status_;  // once the call has ended
};

}  // namespace covet::grpc
