// The settings every real-socket App test starts from: quiet logs, a loopback port the kernel picks, and a short
// graceful stop.
#pragma once

#include <chrono>

#include "covet/covet.hpp"

namespace covet_test {

inline void configure_local_app(covet::App& app, std::chrono::milliseconds shutdown = std::chrono::seconds(2)) {
    covet::configure_logging("off");
    app.config().host = "127.0.0.1";
    app.config().port = 0;
    app.config().timeouts.shutdown = shutdown;
}

}  // namespace covet_test
