// Everything queued in an OutputQueue, taken out the way a backend sends it (prepare_send/consume).
#pragma once

#include <sys/uio.h>

#include <string>

#include "covet/io/output_queue.hpp"

namespace covet_test {

inline std::string drain(covet::io::OutputQueue& queue) {
    std::string out;
    iovec iov[covet::io::OutputQueue::max_iovecs];
    while (const std::size_t n = queue.prepare_send(iov)) {
        std::size_t bytes = 0;
        for (std::size_t i = 0; i < n; ++i) {
            out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
            bytes += iov[i].iov_len;
        }
        queue.consume(bytes);
    }
    return out;
}

}  // namespace covet_test
