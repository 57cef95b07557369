// The gRPC bench's Greeter on the C++ gRPC server (Debian's libgrpc++-dev, grpc_cpp_plugin): the callback API
// (grpc::CallbackService), the one gRPC recommends for performance; the grpc-cpp peer of `python -m bench`
// (bench/servers.py generates the code from examples/native/grpc_greeter/greeter.proto and builds this into
// bench/.grpc/greeter-cpp): `greeter-cpp PORT`.
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <memory>
#include <string>

#include "greeter.grpc.pb.h"

namespace {

class Greeter final : public bench::Greeter::CallbackService {
    grpc::ServerUnaryReactor* SayHello(grpc::CallbackServerContext* context, const bench::HelloRequest* request,
                                       bench::HelloReply* reply) override {
        reply->set_message("Hello, " + request->name());
        grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
        reactor->Finish(grpc::Status::OK);
        return reactor;
    }

    grpc::ServerWriteReactor<bench::HelloReply>* SayHellos(grpc::CallbackServerContext*,
                                                           const bench::HelloRequest* request) override {
        class Writer final : public grpc::ServerWriteReactor<bench::HelloReply> {
        public:
            explicit Writer(const bench::HelloRequest* request) : left_(request->count()) {
                reply_.set_message("Hello, " + request->name());
                Next();
            }
            void OnWriteDone(bool ok) override {
                if (!ok) {
                    Finish(grpc::Status(grpc::StatusCode::UNKNOWN, "write failed"));
                    return;
                }
                Next();
            }
            void OnDone() override { delete this; }  // the callback API's ownership rule

        private:
            void Next() {
                if (left_-- > 0)
                    StartWrite(&reply_);
                else
                    Finish(grpc::Status::OK);
            }
            bench::HelloReply reply_;
            int left_;
        };
        return new Writer(request);  // freed in OnDone, as the callback API requires
    }
};

}  // namespace

int main(int argc, char** argv) {
    const std::string address = std::string("127.0.0.1:") + (argc > 1 ? argv[1] : "50051");
    Greeter service;
    grpc::ServerBuilder builder;
    builder.AddListeningPort(address, grpc::InsecureServerCredentials());
    builder.RegisterService(&service);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (!server) {
        std::fprintf(stderr, "greeter-cpp: cannot listen on %s\n", address.c_str());
        return 1;
    }
    std::printf("serving on http://%s\n", address.c_str());
    std::fflush(stdout);
    server->Wait();
}
