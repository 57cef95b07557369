// covet::ratelimit::SharedTable: the GCRA state of many keys, shared by every thread and every worker
// process of one `covet run --workers N`, without locks.
//
// Layout. A fixed-size open-addressing table of 16-byte slots (a 64-bit key hash, an 8-byte TAT), after a
// 64-byte header holding the hash seed. With a directory (COVET_METRICS_DIR, which the supervisor makes under
// /dev/shm and the workers inherit) the table is the file `ratelimit-<name>-<capacity>.table` there, created
// by whichever process comes first and mapped shared; all-zero is a valid empty table, so there is nothing to
// initialise but the seed, which the first process to look sets by compare-and-swap. Without a directory it
// is anonymous memory: one process's threads share it.
//
// A key is looked for in a window of `probe_window` slots from its hash. Updates are a CAS on the TAT (a
// refused request writes nothing). A new key takes the first empty slot of its window; failing that the
// slot whose TAT is the oldest: a TAT in the past is a full bucket, so forgetting it loses nothing, and
// when every key of the window is live the one nearest to full is forgotten (it regains its budget early;
// counted in evictions_live()). So a flood of distinct keys bounds the memory and never blocks a request. (A
// request of the new key racing, on another thread, with its takeover of a live slot may be decided on the
// forgotten key's TAT, once: the price of one 8-byte CAS per update instead of a 16-byte one.)
// Keys are 64-bit hashes (seeded per table, so clients cannot aim collisions): two keys sharing a hash
// share a budget, with odds of about n²/2⁶⁵ for n live keys.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "covet/ratelimit/gcra.hpp"

namespace covet::ratelimit {

class SharedTable {
public:
    static constexpr std::size_t probe_window = 16;

    // `capacity` is rounded up to a power of two (at least probe_window). `directory` empty: process-local.
    // Throws std::system_error naming the file when the directory is not usable.
    SharedTable(std::string_view name, std::size_t capacity, const std::string& directory);
    // The table of COVET_METRICS_DIR when it is set, else process-local.
    static SharedTable open(std::string_view name, std::size_t capacity);
    SharedTable(SharedTable&& other) noexcept;
    SharedTable& operator=(SharedTable&&) = delete;
    SharedTable(const SharedTable&) = delete;
    ~SharedTable();

    // The hash of a key's bytes under this table's seed (never 0, which marks an empty slot).
    std::uint64_t hash(std::string_view key, std::uint64_t salt = 0) const noexcept;
    // Decides one request of `cost` for `key_hash` at `now_ns` and records it when allowed.
    GcraDecision acquire(std::uint64_t key_hash, const GcraPolicy& policy, std::int64_t now_ns,
                         std::uint32_t cost = 1) noexcept;
    // The same decision, for the request path: only whether it passed and the TAT. Allowed: the key's TAT after
    // this request (recorded); refused: its TAT as read (unchanged), from which gcra() gives the refusal's figures.
    // Inline: a key already in its first slot costs a load, the arithmetic and one CAS.
    struct Admission {
        bool allowed;
        std::int64_t tat;
    };
    Admission admit(std::uint64_t key_hash, const GcraPolicy& policy, std::int64_t now_ns,
                    std::uint32_t cost = 1) noexcept {
        Slot* s = &slots_[key_hash & mask_];  // most keys sit in their first slot
        if (s->key.load(std::memory_order_acquire) != key_hash) [[unlikely]]
            s = claim(key_hash, now_ns);
        const std::int64_t step = policy.emission_ns * static_cast<std::int64_t>(cost);
        if (!s) [[unlikely]] {  // contention beyond reason: decided as a new key, recorded nowhere
            const std::int64_t new_tat = now_ns + step;
            return new_tat - policy.tolerance_ns > now_ns ? Admission{false, 0} : Admission{true, new_tat};
        }
        return advance(*s, step, policy.tolerance_ns, now_ns);
    }
    // admit() for a key in its first slot (most are): true when allowed (and recorded); false when refused or when
    // the key is elsewhere, which admit() then decides. Inline without a call, for the request path's fast case.
    bool admit_in_first_slot(std::uint64_t key_hash, const GcraPolicy& policy, std::int64_t now_ns) noexcept {
        Slot& s = slots_[key_hash & mask_];
        if (s.key.load(std::memory_order_acquire) != key_hash) return false;
        return advance(s, policy.emission_ns, policy.tolerance_ns, now_ns).allowed;
    }
    // The key's TAT (0 when absent), for tests and diagnostics.
    std::int64_t tat(std::uint64_t key_hash) const noexcept;

    // The seed hash() mixes in: hash(key, salt) is a function of (seed, salt, key) alone (so it can be memoized).
    std::uint64_t seed() const noexcept { return seed_; }
    std::size_t capacity() const noexcept { return mask_ + 1; }
    const std::string& file() const noexcept { return file_; }
    // Live keys forgotten because their window was full (this process's count).
    std::uint64_t evictions_live() const noexcept { return evictions_live_.load(std::memory_order_relaxed); }

private:
    struct Slot {
        std::atomic<std::uint64_t> key;
        std::atomic<std::int64_t> tat;
    };
    static_assert(sizeof(Slot) == 16 && std::atomic<std::uint64_t>::is_always_lock_free);
    struct Header {
        std::atomic<std::uint64_t> seed;
        std::uint64_t reserved[7];
    };
    static_assert(sizeof(Header) == 64);

    Slot* claim(std::uint64_t key_hash, std::int64_t now_ns) noexcept;
    // GCRA on one slot: moves its TAT by `step` (CAS) when the request fits within `tolerance` of now.
    [[gnu::always_inline]] static Admission advance(Slot& s, std::int64_t step, std::int64_t tolerance,
                                                    std::int64_t now_ns) noexcept {
        std::int64_t t = s.tat.load(std::memory_order_relaxed);
        for (;;) {
            const std::int64_t new_tat = std::max(t, now_ns) + step;
            if (new_tat - tolerance > now_ns) return {false, t};
            if (s.tat.compare_exchange_weak(t, new_tat, std::memory_order_relaxed)) return {true, new_tat};
        }
    }

    void* mapping_ = nullptr;
    std::size_t bytes_ = 0;
    Header* header_ = nullptr;
    Slot* slots_ = nullptr;
    std::size_t mask_ = 0;
    std::uint64_t seed_ = 0;
    std::string file_;
    std::atomic<std::uint64_t> evictions_live_{0};
};

}  // namespace covet::ratelimit
