// Which reactor backend runs the workers: io_uring when the kernel allows it, Boost.Asio (epoll) otherwise.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace covet::io {

enum class Backend { uring, asio };

constexpr std::string_view to_string(Backend b) noexcept { return b == Backend::uring ? "uring" : "asio"; }

std::optional<Backend> parse_backend(std::string_view name) noexcept;  // "uring" | "asio" (not "auto")

struct UringSupport {
    bool usable = false;
    std::string reason;  // why not, when !usable (e.g. "io_uring_setup: Operation not permitted")
};

// Probes once per process (a small ring plus an opcode probe); later calls return the cached answer.
const UringSupport& probe_uring();

// Resolves the backend to use: `requested` if set, else env COVET_BACKEND (uring|asio|auto), else auto
// (io_uring when the probe passes). Requesting uring on a kernel that refuses it falls back to asio with a
// warning naming the reason rather than failing.
Backend select_backend(std::optional<Backend> requested = std::nullopt);

}  // namespace covet::io
