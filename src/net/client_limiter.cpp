#include <cstring>
#include <memory>

#include "covet/net/client_limits.hpp"
#include "covet/net/trusted_proxies.hpp"
#include "covet/ratelimit/gcra.hpp"
#include "covet/ratelimit/shared_table.hpp"

namespace covet::net {

std::optional<ClientKey> client_key(std::string_view address) noexcept {
    const std::optional<IpBytes> ip = parse_ip(address);  // IPv4 as ::ffff:a.b.c.d
    if (!ip) return std::nullopt;
    ClientKey key;
    std::memcpy(&key.high, ip->data(), 8);
    static constexpr std::uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(ip->data(), v4_mapped, sizeof v4_mapped) == 0)
        std::memcpy(&key.low, ip->data() + 8, 8);  // IPv4: the whole address (high is 0)
    // IPv6: the /64 prefix alone (low stays 0). `::/64` (::1 among them) never equals an IPv4 key, whose
    // low half carries the 0xffff marker.
    return key;
}

ClientLimiter::ClientLimiter(const ClientLimits& limits) : limits_(limits) {
    // The rate's state is a TAT per address in the rate limiter's table: shared by the worker processes of
    // one `covet run` (COVET_METRICS_DIR), else by this process's threads.
    if (limits_.new_connections_per_ip != 0)
        rate_table_ =
            std::make_unique<ratelimit::SharedTable>(ratelimit::SharedTable::open("connections", std::size_t{1} << 16));
}

ClientLimiter::~ClientLimiter() = default;

ClientVerdict ClientLimiter::admit_connection(ClientKey key, std::int64_t now_ns) noexcept {
    Shard& s = shard(key);
    {
        std::lock_guard lock(s.mutex);
        const auto it = s.counts.find(key);
        if (limits_.max_connections_per_ip != 0 && it != s.counts.end() &&
            it->second.connections >= limits_.max_connections_per_ip)
            return ClientVerdict::too_many_connections;
    }
    // The rate is charged only for a connection the count would admit (a refused one must not use up the
    // budget of the next), and outside the shard's lock (the table is lock-free).
    if (rate_table_) {
        const ratelimit::GcraPolicy policy = ratelimit::GcraPolicy::make(
            limits_.new_connections_per_ip, limits_.new_connections_period, limits_.new_connections_burst);
        const std::uint64_t hash = rate_table_->hash(std::string_view(reinterpret_cast<const char*>(&key), sizeof key));
        if (!rate_table_->acquire(hash, policy, now_ns).allowed) return ClientVerdict::too_many_new_connections;
    }
    std::lock_guard lock(s.mutex);
    try {
        Counts& c = s.counts[key];
        // Another thread may have admitted one in between: the count stays exact, at most one over is refused.
        if (limits_.max_connections_per_ip != 0 && c.connections >= limits_.max_connections_per_ip)
            return ClientVerdict::too_many_connections;
        ++c.connections;
    } catch (...) {  // out of memory: the connection goes uncounted rather than refused
        return ClientVerdict::admitted;
    }
    return ClientVerdict::admitted;
}

void ClientLimiter::release(ClientKey key, std::uint32_t Counts::*count) noexcept {
    Shard& s = shard(key);
    std::lock_guard lock(s.mutex);
    const auto it = s.counts.find(key);
    if (it == s.counts.end()) return;
    if (it->second.*count > 0) --(it->second.*count);
    if (it->second.connections == 0 && it->second.streams == 0) s.counts.erase(it);
}

void ClientLimiter::release_connection(ClientKey key) noexcept { release(key, &Counts::connections); }

bool ClientLimiter::admit_stream(ClientKey key) noexcept {
    Shard& s = shard(key);
    std::lock_guard lock(s.mutex);
    const auto it = s.counts.find(key);
    if (it == s.counts.end()) return true;  // an uncounted connection (see admit_connection)
    if (limits_.max_streams_per_ip != 0 && it->second.streams >= limits_.max_streams_per_ip) return false;
    ++it->second.streams;
    return true;
}

void ClientLimiter::release_stream(ClientKey key) noexcept { release(key, &Counts::streams); }

bool ClientLimiter::should_log(ClientKey key, std::int64_t now_ns) noexcept {
    std::atomic<std::int64_t>& last = last_log_[Hash{}(key) % log_slots];
    const std::int64_t interval = std::chrono::nanoseconds(limits_.log_interval).count();
    std::int64_t seen = last.load(std::memory_order_relaxed);
    if (seen != 0 && now_ns - seen < interval) return false;
    return last.compare_exchange_strong(seen, now_ns, std::memory_order_relaxed);
}

std::uint32_t ClientLimiter::connections(ClientKey key) const noexcept {
    const Shard& s = shard(key);
    std::lock_guard lock(s.mutex);
    const auto it = s.counts.find(key);
    return it == s.counts.end() ? 0 : it->second.connections;
}

std::uint32_t ClientLimiter::streams(ClientKey key) const noexcept {
    const Shard& s = shard(key);
    std::lock_guard lock(s.mutex);
    const auto it = s.counts.find(key);
    return it == s.counts.end() ? 0 : it->second.streams;
}

}  // namespace covet::net
