// A region of an open file that is a response body: sent with sendfile(2) on plain TCP (no copy through user
// space), read in bounded pieces where the bytes must pass through the process (TLS, HTTP/2 frames).
//
// The region owns its descriptor (closed on destruction; a copy dup()s it). Its length is fixed when the
// response head is written (Content-Length): a file that shrinks under it cannot honour that any more, so
// readers report it (read_at returns 0 before the end) and the connection is closed.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <utility>

namespace covet::io {

// Logged when a connection (or an HTTP/2 stream) is cut short because its file body shrank.
inline constexpr const char* file_shrank_message =
    "a file sent as a response body shrank while it was being sent, so the response was cut short before its "
    "Content-Length (replace served files atomically: write a new file and rename it over the old one)";

class FileRegion {
public:
    FileRegion() = default;
    // Takes ownership of `fd`.
    FileRegion(int fd, std::uint64_t offset, std::uint64_t length) noexcept
        : fd_(fd), offset_(offset), length_(length) {}
    ~FileRegion() { reset(); }
    FileRegion(FileRegion&& o) noexcept
        : fd_(std::exchange(o.fd_, -1)), offset_(o.offset_), length_(std::exchange(o.length_, 0)) {}
    FileRegion& operator=(FileRegion&& o) noexcept {
        if (this != &o) {
            reset();
            fd_ = std::exchange(o.fd_, -1);
            offset_ = o.offset_;
            length_ = std::exchange(o.length_, 0);
        }
        return *this;
    }
    // A copy shares the open file through a new descriptor (responses are rarely copied).
    FileRegion(const FileRegion& o)
        : fd_(o.fd_ >= 0 ? ::fcntl(o.fd_, F_DUPFD_CLOEXEC, 0) : -1), offset_(o.offset_), length_(o.length_) {}
    FileRegion& operator=(const FileRegion& o) {
        if (this != &o) *this = FileRegion(o);
        return *this;
    }

    explicit operator bool() const noexcept { return fd_ >= 0; }
    int fd() const noexcept { return fd_; }
    std::uint64_t offset() const noexcept { return offset_; }
    std::uint64_t length() const noexcept { return length_; }

    // Reads up to `n` bytes at `offset() + at` into `out`. Returns the count read; 0 when the file ended before
    // the region did (it shrank); -1 on an error (errno).
    ssize_t read_at(std::uint64_t at, char* out, std::size_t n) const noexcept {
        if (at >= length_) return 0;
        if (n > length_ - at) n = static_cast<std::size_t>(length_ - at);
        while (true) {
            const ssize_t got = ::pread(fd_, out, n, static_cast<off_t>(offset_ + at));
            if (got < 0 && errno == EINTR) continue;
            return got;
        }
    }

    void reset() noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
        length_ = 0;
    }

private:
    int fd_ = -1;
    std::uint64_t offset_ = 0, length_ = 0;
};

}  // namespace covet::io
