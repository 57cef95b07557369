// Per-client-address limits enforced by the net layer before a byte of a connection is parsed (issue 17):
// concurrent connections per address, new connections per address per period (GCRA, the rate limiter's
// arithmetic and shared table), and concurrent HTTP/2 streams per address across all of its connections.
//
// Which address. The connection's peer; on a PROXY-protocol connection the client the PROXY header names, so
// such a connection is counted only once its header has been read (a load balancer's own address would
// otherwise carry every client's budget). X-Forwarded-For / Forwarded never count here: they arrive with
// each request, after the connection was admitted.
//
// IPv4 addresses count whole. IPv6 addresses count by their /64 prefix: one subscriber, host or VM is
// usually given a whole /64 (RFC 6177, cloud providers), so an attacker holding one can open 2^64 distinct
// addresses for free, and a limit per full address would bound nothing. IPv4-mapped IPv6 (::ffff:a.b.c.d,
// from a dual-stack socket) counts as the IPv4 address.
//
// Scope. Concurrent counts (connections, streams) are per process, shared by its worker threads: with
// `covet run --workers N` a client may hold up to N times the limit (the kernel spreads its connections over
// the processes). They are not kept in shared memory on purpose: a worker process that crashes would leave
// its counts behind forever, locking clients out. The new-connection rate is a GCRA time stamp, which
// cannot leak (it ages out), so it lives in the rate limiter's shared table (COVET_METRICS_DIR) and one
// budget holds for the whole worker group.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>

namespace covet::ratelimit {
class SharedTable;
}

namespace covet::net {

struct ClientLimits {
    // Open connections from one address (IPv6: one /64) at a time; one more is closed at once. 0: no limit.
    std::uint32_t max_connections_per_ip = 0;
    // New connections from one address per `new_connections_period`, bursts of `new_connections_burst`
    // (0: the same as the rate); more are closed at once. 0: no limit.
    std::uint32_t new_connections_per_ip = 0;
    std::chrono::milliseconds new_connections_period{1000};
    std::uint32_t new_connections_burst = 0;
    // Open HTTP/2 streams from one address over all of its connections; more are refused with RST_STREAM
    // (REFUSED_STREAM). 0: no limit (each connection still has Http2Limits::max_concurrent_streams).
    std::uint32_t max_streams_per_ip = 0;
    // At most one warning per address per this interval about refused connections.
    std::chrono::milliseconds log_interval{1000};

    bool any() const noexcept {
        return max_connections_per_ip != 0 || new_connections_per_ip != 0 || max_streams_per_ip != 0;
    }
};

// What an address counts as: IPv4 whole, IPv6 by /64 (see above).
struct ClientKey {
    std::uint64_t high = 0, low = 0;
    friend bool operator==(ClientKey, ClientKey) = default;
};
// The key of an address text ("10.1.2.3", "2001:db8::1"); nullopt for anything else (never limited).
std::optional<ClientKey> client_key(std::string_view address) noexcept;

enum class ClientVerdict : std::uint8_t { admitted, too_many_connections, too_many_new_connections };

// The counts of one server's process, shared by its workers (thread-safe: sharded mutexes; entries exist
// only while an address holds a connection, so memory is bounded by the open connections).
class ClientLimiter {
public:
    explicit ClientLimiter(const ClientLimits& limits);
    ~ClientLimiter();
    ClientLimiter(const ClientLimiter&) = delete;
    ClientLimiter& operator=(const ClientLimiter&) = delete;

    const ClientLimits& limits() const noexcept { return limits_; }

    // A new connection from `key` at `now_ns` (CLOCK_MONOTONIC): admitted ones are counted until
    // release_connection.
    ClientVerdict admit_connection(ClientKey key, std::int64_t now_ns) noexcept;
    void release_connection(ClientKey key) noexcept;
    // A new HTTP/2 stream of a counted connection: false when the address is at max_streams_per_ip.
    bool admit_stream(ClientKey key) noexcept;
    void release_stream(ClientKey key) noexcept;
    // Whether a refusal of `key` should be logged now (at most once per log_interval per address; a slot
    // shared by two addresses only makes one of them quieter).
    bool should_log(ClientKey key, std::int64_t now_ns) noexcept;

    // The counts held for `key` (tests and diagnostics).
    std::uint32_t connections(ClientKey key) const noexcept;
    std::uint32_t streams(ClientKey key) const noexcept;

private:
    struct Hash {
        std::size_t operator()(ClientKey k) const noexcept {
            return std::hash<std::uint64_t>{}(k.high * 0x9E3779B97F4A7C15ull ^ k.low);
        }
    };
    struct Counts {
        std::uint32_t connections = 0, streams = 0;
    };
    struct Shard {
        mutable std::mutex mutex;
        std::unordered_map<ClientKey, Counts, Hash> counts;
    };
    static constexpr std::size_t shard_count = 16;
    static constexpr std::size_t log_slots = 1024;

    Shard& shard(ClientKey key) noexcept { return shards_[Hash{}(key) % shard_count]; }
    const Shard& shard(ClientKey key) const noexcept { return shards_[Hash{}(key) % shard_count]; }
    // One fewer of `count` (connections or streams) for `key`; the entry goes when both are 0.
    void release(ClientKey key, std::uint32_t Counts::*count) noexcept;

    ClientLimits limits_;
    std::array<Shard, shard_count> shards_;
    std::array<std::atomic<std::int64_t>, log_slots> last_log_{};
    std::unique_ptr<ratelimit::SharedTable> rate_table_;  // set when new_connections_per_ip is
};

}  // namespace covet::net
