// File segments in covet::io::OutputQueue and their sending (covet/net/socket_send.hpp): order with the bytes
// around them, partial writes and EAGAIN on a full socket, a file that shrinks while it is sent, descriptor
// ownership; and the per-thread LargeBuffers pool.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "covet/io/file_region.hpp"
#include "covet/io/large_buffers.hpp"
#include "covet/io/output_queue.hpp"
#include "covet/net/socket_send.hpp"

namespace {

using covet::io::FileRegion;
using covet::io::LargeBuffers;
using covet::io::OutputQueue;
using covet::net::send_queue;
using covet::net::SendOutcome;

std::string pattern(std::size_t n, unsigned seed = 1) {
    std::string s(n, '\0');
    unsigned x = seed;
    for (char& c : s) {
        x = x * 1103515245u + 12345u;
        c = static_cast<char>(x >> 16);
    }
    return s;
}

// A temporary file holding `content`, unlinked at once; fd() opens a new descriptor on it.
class TempFile {
public:
    explicit TempFile(const std::string& content) {
        char name[] = "/tmp/covet-oq-XXXXXX";
        fd_ = ::mkstemp(name);
        EXPECT_GE(fd_, 0);
        ::unlink(name);
        EXPECT_EQ(::pwrite(fd_, content.data(), content.size(), 0), static_cast<ssize_t>(content.size()));
    }
    ~TempFile() { ::close(fd_); }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    int dup() const { return ::fcntl(fd_, F_DUPFD_CLOEXEC, 0); }
    void truncate(off_t size) const { ASSERT_EQ(::ftruncate(fd_, size), 0); }

private:
    int fd_ = -1;
};

// A connected non-blocking socket pair with small buffers, so that large sends hit EAGAIN.
struct SocketPair {
    int out = -1, in = -1;
    explicit SocketPair(int sndbuf = 0) {
        int fds[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
        out = fds[0], in = fds[1];
        if (sndbuf) ::setsockopt(out, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    }
    ~SocketPair() {
        ::close(out);
        ::close(in);
    }
    SocketPair(const SocketPair&) = delete;
    SocketPair& operator=(const SocketPair&) = delete;
    // Everything readable now.
    std::string read_available() const {
        std::string got;
        char buf[65536];
        while (true) {
            const ssize_t n = ::read(in, buf, sizeof buf);
            if (n <= 0) break;
            got.append(buf, static_cast<std::size_t>(n));
        }
        return got;
    }
};

bool fd_open(int fd) { return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

TEST(OutputQueueFile, PrepareSendStopsAtTheFileAndFrontFileDescribesIt) {
    TempFile f(pattern(1000));
    OutputQueue q;
    q.append(std::string_view("HEAD"));
    q.append(FileRegion(f.dup(), 100, 500));
    q.append(std::string_view("TAIL"));
    EXPECT_EQ(q.size(), 4u + 500u + 4u);
    EXPECT_TRUE(q.has_file());

    iovec iov[8];
    ASSERT_EQ(q.prepare_send(iov), 1u);
    EXPECT_EQ(std::string_view(static_cast<char*>(iov[0].iov_base), iov[0].iov_len), "HEAD");
    q.consume(2);  // a partial write of the head
    ASSERT_EQ(q.prepare_send(iov), 1u);
    EXPECT_EQ(iov[0].iov_len, 2u);
    EXPECT_FALSE(q.front_file().file);
    q.consume(2);

    EXPECT_EQ(q.prepare_send(iov), 0u);  // the file is next
    OutputQueue::FileChunk c = q.front_file();
    ASSERT_TRUE(c.file);
    EXPECT_EQ(c.file_offset(), 100u);
    EXPECT_EQ(c.length, 500u);
    q.consume(123);  // part of the file went out
    EXPECT_EQ(q.prepare_send(iov), 0u);
    c = q.front_file();
    EXPECT_EQ(c.file_offset(), 223u);
    EXPECT_EQ(c.length, 377u);
    q.consume(377);

    ASSERT_EQ(q.prepare_send(iov), 1u);  // the bytes after the file
    EXPECT_EQ(std::string_view(static_cast<char*>(iov[0].iov_base), iov[0].iov_len), "TAIL");
    q.consume(4);
    EXPECT_TRUE(q.empty());
    EXPECT_FALSE(q.has_file());
}

TEST(OutputQueueFile, EmptyRegionIsDroppedAndClearClosesTheDescriptor) {
    TempFile f("abc");
    OutputQueue q;
    const int empty = f.dup();
    q.append(FileRegion(empty, 0, 0));
    EXPECT_TRUE(q.empty());
    EXPECT_FALSE(fd_open(empty));

    const int fd = f.dup();
    q.append(FileRegion(fd, 0, 3));
    EXPECT_TRUE(fd_open(fd));
    q.clear();
    EXPECT_FALSE(fd_open(fd));
    EXPECT_TRUE(q.empty());
}

TEST(OutputQueueFile, SentFileIsClosedAsSoonAsItIsConsumed) {
    TempFile f("abcdef");
    OutputQueue q;
    const int fd = f.dup();
    q.append(FileRegion(fd, 0, 6));
    q.append(std::string_view("x"));
    iovec iov[4];
    EXPECT_EQ(q.prepare_send(iov), 0u);
    q.consume(6);
    EXPECT_FALSE(fd_open(fd));
    EXPECT_EQ(q.size(), 1u);
}

TEST(SendQueue, HeadFileAndTailArriveInOrder) {
    const std::string content = pattern(200'000);
    TempFile f(content);
    SocketPair sp;
    OutputQueue q;
    q.append(std::string_view("HTTP/1.1 200 OK\r\n\r\n"));
    q.append(FileRegion(f.dup(), 10, 150'000));
    q.append(std::string_view("next"));
    std::string got;
    for (int i = 0; i < 1000; ++i) {
        const SendOutcome o = send_queue(sp.out, q);
        got += sp.read_available();
        if (o == SendOutcome::drained) break;
        ASSERT_EQ(o, SendOutcome::would_block);
    }
    got += sp.read_available();
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(got, "HTTP/1.1 200 OK\r\n\r\n" + content.substr(10, 150'000) + "next");
}

TEST(SendQueue, FullSocketGivesWouldBlockAndResumesWherePartialWritesStopped) {
    const std::string content = pattern(3 * 1024 * 1024, 7);
    TempFile f(content);
    SocketPair sp(4096);
    OutputQueue q;
    q.append(std::string_view("H"));
    q.append(FileRegion(f.dup(), 0, content.size()));
    EXPECT_EQ(send_queue(sp.out, q), SendOutcome::would_block);  // 3 MB do not fit a small socket buffer
    EXPECT_GT(q.size(), 0u);
    std::string got;
    int blocked = 0;
    while (true) {
        got += sp.read_available();
        const SendOutcome o = send_queue(sp.out, q);
        if (o == SendOutcome::drained) break;
        ASSERT_EQ(o, SendOutcome::would_block);
        ++blocked;
    }
    got += sp.read_available();
    EXPECT_GT(blocked, 1);
    EXPECT_EQ(got.size(), content.size() + 1);
    EXPECT_TRUE(got == "H" + content);
}

TEST(SendQueue, FileThatShrinksBeforeItIsSentIsFileShort) {
    TempFile f(pattern(100'000));
    SocketPair sp;
    OutputQueue q;
    q.append(std::string_view("HEAD"));
    q.append(FileRegion(f.dup(), 0, 100'000));
    f.truncate(10'000);
    SendOutcome o;
    std::string got;
    for (int i = 0; i < 100; ++i) {
        o = send_queue(sp.out, q);
        got += sp.read_available();
        if (o != SendOutcome::would_block) break;
    }
    EXPECT_EQ(o, SendOutcome::file_short);
    EXPECT_EQ(got.size(), 4u + 10'000u);  // what the file still had, then the caller closes
}

TEST(SendQueue, FileThatShrinksMidwayIsFileShort) {
    TempFile f(pattern(2 * 1024 * 1024, 3));
    SocketPair sp(4096);
    OutputQueue q;
    q.append(FileRegion(f.dup(), 0, 2 * 1024 * 1024));
    ASSERT_EQ(send_queue(sp.out, q), SendOutcome::would_block);
    f.truncate(1);  // below what was sent already
    SendOutcome o = SendOutcome::would_block;
    for (int i = 0; i < 10'000 && o == SendOutcome::would_block; ++i) {
        sp.read_available();
        o = send_queue(sp.out, q);
    }
    EXPECT_EQ(o, SendOutcome::file_short);
}

TEST(SendQueue, ClosedPeerFails) {
    // sendfile has no MSG_NOSIGNAL: the engine's worker threads block SIGPIPE, Python ignores it, and an
    // embedding C++ host must ignore it too (as this test does).
    std::signal(SIGPIPE, SIG_IGN);
    TempFile f(pattern(1'000'000));
    SocketPair sp;
    ::close(sp.in);
    sp.in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    OutputQueue q;
    q.append(FileRegion(f.dup(), 0, 1'000'000));
    EXPECT_EQ(send_queue(sp.out, q), SendOutcome::failed);  // EPIPE, without SIGPIPE killing the test
}

TEST(FileRegion, CopyDupsMoveTransfersReadAtStopsAtTheEnd) {
    TempFile f("0123456789");
    FileRegion a(f.dup(), 2, 5);
    FileRegion b = a;
    EXPECT_NE(a.fd(), b.fd());
    EXPECT_GE(b.fd(), 0);
    char buf[16];
    EXPECT_EQ(b.read_at(0, buf, sizeof buf), 5);
    EXPECT_EQ(std::string(buf, 5), "23456");
    EXPECT_EQ(b.read_at(5, buf, sizeof buf), 0);
    const int fd = a.fd();
    FileRegion c = std::move(a);
    EXPECT_EQ(c.fd(), fd);
    EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
    f.truncate(4);
    EXPECT_EQ(c.read_at(0, buf, sizeof buf), 2);  // shrank: fewer bytes, then 0
    EXPECT_EQ(c.read_at(2, buf, sizeof buf), 0);
}

TEST(LargeBuffers, ReusesAKeptBufferAndBoundsThePool) {
    std::string big = LargeBuffers::take(1 << 20);
    EXPECT_GE(big.capacity(), std::size_t{1} << 20);
    big.assign(1 << 20, 'x');
    const char* data = big.data();
    LargeBuffers::give(std::move(big));
    std::string again = LargeBuffers::take(1000 * 1000);
    EXPECT_EQ(again.data(), data);  // the same pages: no new allocation, no page faults
    EXPECT_TRUE(again.empty());

    LargeBuffers::give(std::string(100, 'x'));  // small: not kept
    std::string huge;
    huge.reserve(LargeBuffers::max_capacity + 1);
    LargeBuffers::give(std::move(huge));  // too large: not kept
    EXPECT_EQ(LargeBuffers::kept_count(), 0u);
    for (int i = 0; i < 40; ++i) LargeBuffers::give(std::string(std::size_t{1} << 20, 'y'));
    EXPECT_LE(LargeBuffers::kept_count(), LargeBuffers::max_buffers);
    EXPECT_LE(LargeBuffers::kept_count() * (std::size_t{1} << 20), LargeBuffers::max_kept_bytes);
}

TEST(LargeBuffers, OutputQueueGivesSentLargeSegmentsBack) {
    while (LargeBuffers::kept_count() > 0) (void)LargeBuffers::take(1);
    OutputQueue q;
    q.append(std::string(std::size_t{1} << 20, 'z'));
    iovec iov[4];
    ASSERT_EQ(q.prepare_send(iov), 1u);
    q.consume(std::size_t{1} << 20);
    EXPECT_EQ(LargeBuffers::kept_count(), 1u);
}

}  // namespace
