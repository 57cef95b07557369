// Writes a connection's output queue to its socket from the loop thread, without blocking: bytes with
// sendmsg(MSG_DONTWAIT), file segments with sendfile(2) (zero-copy: the page cache goes to the socket). Both
// backends use it for queues holding a file (Asio for every queue). sendfile has no per-call non-blocking
// flag: the socket must be O_NONBLOCK while it runs (see NonBlocking). Nor MSG_NOSIGNAL: a peer that has gone
// raises SIGPIPE, which the engine's worker threads block and Python ignores; a C++ program that drives an
// embedded server on its own thread must ignore SIGPIPE (signal(SIGPIPE, SIG_IGN)), as servers generally do.
#pragma once

#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>

#include "covet/io/output_queue.hpp"

namespace covet::net {

enum class SendOutcome : std::uint8_t {
    drained,      // the queue is empty
    would_block,  // the socket is full: wait until it is writable
    failed,       // the socket failed (errno): close the connection
    file_short,   // a file ended before its segment did (it shrank): close (io::file_shrank_message)
};

// The largest count sendfile transfers in one call.
inline constexpr std::size_t sendfile_max = 0x7ffff000;

inline SendOutcome send_queue(int fd, io::OutputQueue& q) {
    iovec iov[io::OutputQueue::max_iovecs];
    while (true) {
        if (const std::size_t n = q.prepare_send(iov); n > 0) {
            msghdr msg{};
            msg.msg_iov = iov;
            msg.msg_iovlen = n;
            // A response head followed by its file: let the kernel put them in the same TCP segments.
            const int more = q.has_file() ? MSG_MORE : 0;
            const ssize_t sent = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT | more);
            if (sent < 0) {
                if (errno == EINTR) continue;
                return errno == EAGAIN || errno == EWOULDBLOCK ? SendOutcome::would_block : SendOutcome::failed;
            }
            q.consume(static_cast<std::size_t>(sent));
            continue;
        }
        const io::OutputQueue::FileChunk f = q.front_file();
        if (!f.file) return SendOutcome::drained;
        auto offset = static_cast<off_t>(f.file_offset());
        const ssize_t sent = ::sendfile(fd, f.fd(), &offset, std::min<std::uint64_t>(f.length, sendfile_max));
        if (sent < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return SendOutcome::would_block;
            return SendOutcome::failed;
        }
        if (sent == 0) return SendOutcome::file_short;
        q.consume(static_cast<std::size_t>(sent));
    }
}

// Sets O_NONBLOCK on a blocking socket for the scope (the io_uring backend's sockets are blocking: the ring
// does their waiting), so that sendfile returns EAGAIN instead of stopping the loop thread.
class NonBlocking {
public:
    explicit NonBlocking(int fd) noexcept : fd_(fd), flags_(::fcntl(fd, F_GETFL)) {
        if (flags_ >= 0 && !(flags_ & O_NONBLOCK)) ::fcntl(fd_, F_SETFL, flags_ | O_NONBLOCK);
    }
    ~NonBlocking() {
        if (flags_ >= 0 && !(flags_ & O_NONBLOCK)) ::fcntl(fd_, F_SETFL, flags_);
    }
    NonBlocking(const NonBlocking&) = delete;
    NonBlocking& operator=(const NonBlocking&) = delete;

private:
    int fd_, flags_;
};

}  // namespace covet::net
