// gRPC services on a covet::App, next to its REST routes on the same port (HTTP/2: h2c or TLS with ALPN h2).
//
//     covet::grpc::Service greeter("helloworld.Greeter");
//     greeter.unary("SayHello", [](covet::grpc::ServerCall& call, std::string_view request, std::string& reply) {
//         reply = ...;                                   // the serialized reply message
//         return covet::grpc::Status{};                  // or {StatusCode::not_found, "no such user"}
//     });
//     covet::grpc::add_service(app, std::move(greeter));
//
// Each service is one route, POST /<package.Service>/{method}. Messages are bytes here: covet/grpc/protobuf.hpp
// adapts handlers that take and return protobuf messages. Handlers run on the connection's thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "covet/app/app.hpp"
#include "covet/grpc/call.hpp"
#include "covet/grpc/status.hpp"

namespace covet::grpc {

// Unary: the request message in, the reply message out (`reply`, when the status is OK).
using UnaryHandler = std::function<Status(ServerCall& call, std::string_view request, std::string& reply)>;
// Server streaming: the request message in; `call.write(message)` each reply, then the status returned. It runs
// to its end on the connection's thread, so its replies are buffered whole (up to
// CallOptions::max_unsent_reply_bytes): for short streams.
using ServerStreamingHandler = std::function<Status(ServerCall& call, std::string_view request)>;
// Server streaming, pulled: the source is asked for the next reply whenever the client has room for it, so a
// stream of any length holds at most about CallOptions::send_buffer_bytes. It returns a message, or nullopt once
// the stream is over, after setting `status` if it is not OK. Runs on the connection's thread.
using ReplySource = std::function<std::optional<std::string>(Status& status)>;
using ServerStreamingOpener = std::function<ReplySource(ServerCall& call, std::string_view request)>;
// Any shape, asynchronous (client streaming, bidirectional, or a reply computed elsewhere): set the call's
// callbacks, keep the pointer as long as needed, finish() it from any thread.
using CallHandler = std::function<void(std::shared_ptr<ServerCall> call)>;

class Service {
public:
    explicit Service(std::string name) : name_(std::move(name)) {}
    Service& unary(std::string method, UnaryHandler handler);
    Service& server_streaming(std::string method, ServerStreamingHandler handler);
    Service& server_streaming_pull(std::string method, ServerStreamingOpener open);
    Service& call(std::string method, CallHandler handler);
    const std::string& name() const noexcept { return name_; }

private:
    friend void add_service(App& app, Service service, CallOptions options);
    std::string name_;
    std::map<std::string, CallHandler, std::less<>> methods_;
};

// Serves `service` on `app` (route POST /<name>/{method}); an unknown method of it answers UNIMPLEMENTED. Each call
// goes through `options.interceptors`, then the method.
void add_service(App& app, Service service, CallOptions options = {});

}  // namespace covet::grpc
