// Streamed request bodies for Python: the engine's BodyReader (I/O thread, or the loop thread inside
// poll() in embedded mode; never with the GIL) queues the chunks; the Python thread takes them one by one
// and acknowledges each as it goes, which is what lets the connection read more (back-pressure).
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "covet/covet.hpp"

namespace covet_py {

// The chunks of one body that Python has not taken yet: at most `chunk_bytes` each (64 KiB,
// STREAM_CHUNK_SIZE). Python takes what has arrived as soon as there is any (a waiting reader is woken by
// the first bytes: an application may answer each message of a body that stays open, full duplex); bytes
// that arrive while Python is busy join the last chunk until it is full, so a reader slower than the
// network still handles few, large chunks.
class BodyQueue {
public:
    explicit BodyQueue(std::size_t chunk_bytes) : chunk_bytes_(std::max<std::size_t>(chunk_bytes, 1)) {}

    enum class Take : std::uint8_t { chunk, waiting, ended, failed };

    // Producer side (the connection's thread). Each returns true when Python waits for news (armed) and
    // there is some: the caller then tells the Python thread.
    bool push(std::string_view data) {
        std::lock_guard lock(mutex_);
        while (!data.empty()) {
            if (chunks_.empty() || chunks_.back().size() >= chunk_bytes_) {
                chunks_.emplace_back();
                chunks_.back().reserve(chunk_bytes_);
            }
            std::string& last = chunks_.back();
            const std::size_t n = std::min(chunk_bytes_ - last.size(), data.size());
            last.append(data.substr(0, n));
            data.remove_prefix(n);
        }
        return takeable() && std::exchange(armed_, false);
    }
    bool end() {
        std::lock_guard lock(mutex_);
        ended_ = true;
        return std::exchange(armed_, false);
    }
    bool fail(int status, std::string_view reason) {
        std::lock_guard lock(mutex_);
        // The server refused the body and answers the request itself: the connection lets the request go
        // once this returns, so Python's reads (under hold_request()) fail from now on instead of reading
        // freed memory.
        if (status > 0 && !request_gone_) {
            request_gone_ = true;
            gone_status_ = status;
            gone_reason_ = reason;
        }
        if (ended_ || failed_) return false;
        failed_ = true;
        status_ = status;
        reason_ = reason;
        return std::exchange(armed_, false);
    }

    // Consumer side (the Python thread): the next chunk, or why there is none; `waiting` arms the queue.
    Take take(std::string& out) {
        std::lock_guard lock(mutex_);
        if (takeable() && !chunks_.empty()) {
            out = std::move(chunks_.front());
            chunks_.pop_front();
            return Take::chunk;
        }
        if (failed_) return Take::failed;
        if (ended_) return Take::ended;
        armed_ = true;
        return Take::waiting;
    }
    std::pair<int, std::string> error() {
        std::lock_guard lock(mutex_);
        return {status_, reason_};
    }

    // The Python thread reads the request (which the connection owns) while holding this; a refusal
    // (fail() with a status) waits for the read to end. Then request_gone() says whether it may be read.
    std::unique_lock<std::mutex> hold_request() { return std::unique_lock<std::mutex>(mutex_); }
    // Under hold_request(): the status and reason of the server's own answer, or status 0 while the request
    // is there.
    std::pair<int, std::string_view> request_gone() const noexcept {
        return {request_gone_ ? gone_status_ : 0, gone_reason_};
    }

private:
    bool takeable() const noexcept { return ended_ || failed_ || !chunks_.empty(); }

    const std::size_t chunk_bytes_;
    std::mutex mutex_;
    std::deque<std::string> chunks_;
    bool ended_ = false, failed_ = false, armed_ = false, request_gone_ = false;
    int status_ = 0, gone_status_ = 0;
    std::string reason_, gone_reason_;
};

// Installed on the engine's RequestBody; `notify(id)` wakes the Python side (the Bridge's body events).
class QueueReader final : public covet::BodyReader {
public:
    QueueReader(std::shared_ptr<BodyQueue> queue, std::function<void(std::uintptr_t)> notify)
        : queue_(std::move(queue)), notify_(std::move(notify)) {}
    ~QueueReader() override {
        // The connection went away without a verdict (closed under the body): Python must not wait forever.
        if (!done_) signal(queue_->fail(0, "the connection closed before the request body ended"));
    }
    void on_data(std::string_view chunk) noexcept override {
        try {
            signal(queue_->push(chunk));
        } catch (...) {  // out of memory: the body cannot be delivered whole
            done_ = true;
            signal(queue_->fail(0, "out of memory while receiving the request body"));
        }
    }
    void on_end() noexcept override {
        done_ = true;
        signal(queue_->end());
    }
    void on_error(int status, std::string_view reason) noexcept override {
        done_ = true;
        signal(queue_->fail(status, reason));
    }

private:
    void signal(bool armed) noexcept {
        if (!armed) return;
        try {
            notify_(reinterpret_cast<std::uintptr_t>(queue_.get()));
        } catch (...) {
        }
    }
    std::shared_ptr<BodyQueue> queue_;
    std::function<void(std::uintptr_t)> notify_;
    bool done_ = false;
};

}  // namespace covet_py
