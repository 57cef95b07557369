// A gRPC call's outcome: the status code and message sent in its trailers (grpc-status, grpc-message).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace covet::grpc {

// https://grpc.github.io/grpc/core/md_doc_statuscodes.html
enum class StatusCode : std::uint8_t {
    ok = 0,
    cancelled = 1,
    unknown = 2,
    invalid_argument = 3,
    deadline_exceeded = 4,
    not_found = 5,
    already_exists = 6,
    permission_denied = 7,
    resource_exhausted = 8,
    failed_precondition = 9,
    aborted = 10,
    out_of_range = 11,
    unimplemented = 12,
    internal = 13,
    unavailable = 14,
    data_loss = 15,
    unauthenticated = 16,
};

struct Status {
    StatusCode code = StatusCode::ok;
    std::string message;  // UTF-8; percent-encoded on the wire

    Status() = default;
    Status(StatusCode c, std::string m = {}) : code(c), message(std::move(m)) {}  // NOLINT(google-explicit-constructor)
    bool ok() const noexcept { return code == StatusCode::ok; }
};

// `message` as a grpc-message value: UTF-8 with every byte outside printable ASCII (0x20-0x7E), and '%',
// percent-encoded (the gRPC over HTTP/2 spec).
std::string encode_status_message(std::string_view message);

}  // namespace covet::grpc
