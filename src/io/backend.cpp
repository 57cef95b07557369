// Backend choice: probe io_uring once per process, honour COVET_BACKEND, fall back to Asio (epoll).
#include "covet/io/backend.hpp"

#include "../logging.hpp"
#include "covet/io/errno_text.hpp"

#include <liburing.h>

#include <sys/utsname.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace covet::io {

std::optional<Backend> parse_backend(std::string_view name) noexcept {
    if (name == "uring" || name == "io_uring") return Backend::uring;
    if (name == "asio" || name == "epoll") return Backend::asio;
    return std::nullopt;
}

const UringSupport& probe_uring() {
    static UringSupport support;
    static std::once_flag once;
    std::call_once(once, [] {
        // Multishot recv with provided buffers (our receive path) arrived in Linux 6.0; the opcode probe
        // cannot tell, so check the version rather than closing every connection on -EINVAL later.
        if (utsname u{}; uname(&u) == 0) {
            int major = 0, minor = 0;
            std::sscanf(u.release, "%d.%d", &major, &minor);
            if (major < 6) {
                support.reason = std::string("kernel ") + u.release + " lacks multishot recv (needs Linux 6.0)";
                return;
            }
        }
        io_uring ring{};
        // Docker's default seccomp answers EPERM or ENOSYS; kernel.io_uring_disabled answers EPERM.
        if (int rc = io_uring_queue_init(8, &ring, 0); rc < 0) {
            support.reason = std::string("io_uring_setup: ") + errno_text(-rc);
            return;
        }
        io_uring_probe* probe = io_uring_get_probe_ring(&ring);
        const int needed[] = {IORING_OP_ACCEPT,  IORING_OP_RECV,         IORING_OP_SENDMSG,        IORING_OP_READ,
                              IORING_OP_TIMEOUT, IORING_OP_ASYNC_CANCEL, IORING_OP_PROVIDE_BUFFERS};
        const char* names[] = {"accept", "recv", "sendmsg", "read", "timeout", "async_cancel", "provide_buffers"};
        if (!probe) {
            support.reason = "io_uring opcode probe failed (kernel too old?)";
        } else {
            support.usable = true;
            for (std::size_t i = 0; i < std::size(needed); ++i) {
                if (!io_uring_opcode_supported(probe, needed[i])) {
                    support.usable = false;
                    support.reason = std::string("io_uring lacks the ") + names[i] + " opcode";
                    break;
                }
            }
            io_uring_free_probe(probe);
        }
        io_uring_queue_exit(&ring);
    });
    return support;
}

Backend select_backend(std::optional<Backend> requested) {
    std::optional<Backend> want = requested;
    if (!want) {
        // Read when a server starts; the engine never changes the environment.
        const char* env = std::getenv("COVET_BACKEND");  // NOLINT(concurrency-mt-unsafe)
        if (env && *env && std::string_view(env) != "auto") {
            want = parse_backend(env);
            if (!want) logging::warn("COVET_BACKEND={} is not one of uring|asio|auto; choosing automatically", env);
        }
    }
    if (want == Backend::asio) return Backend::asio;
    const UringSupport& s = probe_uring();
    if (s.usable) return Backend::uring;
    if (want == Backend::uring)
        logging::warn("io_uring was requested but is unavailable ({}); using the asio (epoll) backend", s.reason);
    else
        logging::info("io_uring unavailable ({}); using the asio (epoll) backend", s.reason);
    return Backend::asio;
}

}  // namespace covet::io
