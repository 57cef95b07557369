// gRPC services on a covet::App: see covet/grpc/service.hpp.
#include "covet/grpc/service.hpp"

#include <exception>
#include <stdexcept>

namespace covet::grpc {

namespace {

// A unary request's message, collected until the client's half-close.
struct SingleMessage {
    std::string message;
    int count = 0;
};

Status method_failed(const std::exception& e) {
    return {StatusCode::unknown, std::string("the method failed: ") + e.what()};
}

// Collects the one request message, then runs `run(call, message)` at the half-close.
template <class Run>
CallHandler with_single_message(Run run) {
    return [run = std::move(run)](const std::shared_ptr<ServerCall>& call) {
        auto state = std::make_shared<SingleMessage>();
        call->on_message([state](ServerCall&, std::string_view message) {
            if (++state->count == 1) state->message.assign(message);
        });
        call->on_end([state, run](ServerCall& c) {
            if (state->count != 1) {
                c.finish({StatusCode::unimplemented, state->count == 0
                                                         ? "a unary method got no request message (expected one)"
                                                         : "a unary method got more than one request message"});
                return;
            }
            run(c, std::string_view(state->message));
        });
    };
}

// Writes what `source` gives while the client has room, then waits for on_ready; finishes at its end.
void pull_replies(ServerCall& call, const std::shared_ptr<ReplySource>& source) {
    while (!call.finished()) {
        if (!call.ready()) {
            call.on_ready([source](ServerCall& c) { pull_replies(c, source); });
            return;
        }
        Status status;
        std::optional<std::string> reply;
        try {
            reply = (*source)(status);
        } catch (const std::exception& e) {
            call.finish(method_failed(e));
            return;
        }
        if (!reply) {
            call.finish(status);
            return;
        }
        if (!call.write(*reply)) return;
    }
}

}  // namespace

Service& Service::unary(std::string method, UnaryHandler handler) {
    methods_[std::move(method)] = with_single_message([h = std::move(handler)](ServerCall& call, std::string_view m) {
        std::string reply;
        Status status;
        try {
            status = h(call, m, reply);
        } catch (const std::exception& e) {
            status = method_failed(e);
        }
        call.finish_with_message(reply, status);
    });
    return *this;
}

Service& Service::server_streaming(std::string method, ServerStreamingHandler handler) {
    methods_[std::move(method)] = with_single_message([h = std::move(handler)](ServerCall& call, std::string_view m) {
        Status status;
        try {
            status = h(call, m);
        } catch (const std::exception& e) {
            status = method_failed(e);
        }
        call.finish(status);
    });
    return *this;
}

Service& Service::server_streaming_pull(std::string method, ServerStreamingOpener open) {
    methods_[std::move(method)] = with_single_message([o = std::move(open)](ServerCall& call, std::string_view m) {
        std::shared_ptr<ReplySource> source;
        try {
            source = std::make_shared<ReplySource>(o(call, m));
        } catch (const std::exception& e) {
            call.finish(method_failed(e));
            return;
        }
        pull_replies(call, source);
    });
    return *this;
}

Service& Service::call(std::string method, CallHandler handler) {
    methods_[std::move(method)] = std::move(handler);
    return *this;
}

void add_service(App& app, Service service, CallOptions options) {
    const std::string_view compression = options.compression;
    if (!compression.empty() && compression != "identity" && compression != "gzip" && compression != "deflate")
        throw std::invalid_argument("covet::grpc::add_service: CallOptions::compression \"" + options.compression +
                                    "\" is not supported (gzip, deflate, identity or empty)");
    auto shared = std::make_shared<const Service>(std::move(service));
    auto opts = std::make_shared<const CallOptions>(std::move(options));
    const std::string pattern = "/" + shared->name() + "/{method}";
    app.post(pattern, [shared, opts](Request& request, Responder responder, RequestBody body) {
        std::shared_ptr<ServerCall> call = ServerCall::accept(request, std::move(responder), *opts);
        if (!call) return;
        const auto found = shared->methods_.find(request.param("method").value_or(""));
        if (found == shared->methods_.end()) {
            call->finish({StatusCode::unimplemented, "Method not found: " + std::string(request.path())});
            return;
        }
        try {
            for (const Interceptor& intercept : opts->interceptors) {
                Status refusal = intercept(*call);
                if (!refusal.ok()) {
                    call->finish(refusal);
                    return;
                }
            }
            found->second(call);
        } catch (const std::exception& e) {
            call->finish(method_failed(e));
            return;
        }
        call->start_reading(request, std::move(body));
    });
}

}  // namespace covet::grpc
