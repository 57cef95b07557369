// See covet/ratelimit/shared_table.hpp.
#include "covet/ratelimit/shared_table.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <system_error>
#include <utility>

#include "covet/http/ascii.hpp"

namespace covet::ratelimit {

namespace {

constexpr std::uint64_t mix(std::uint64_t x) noexcept {  // splitmix64's finaliser
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

std::string file_name(std::string_view name, std::size_t capacity) {
    std::string out = "ratelimit-";
    for (const char c : name)  // the name comes from configuration: keep it a plain file name
        out.push_back((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ? c : '_');
    return out + "-" + std::to_string(capacity) + ".table";
}

}  // namespace

SharedTable::SharedTable(std::string_view name, std::size_t capacity, const std::string& directory) {
    const std::size_t slots = std::bit_ceil(std::max(capacity, probe_window));
    mask_ = slots - 1;
    bytes_ = sizeof(Header) + slots * sizeof(Slot);
    if (directory.empty()) {
        mapping_ = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (mapping_ == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "covet ratelimit: mmap");
    } else {
        file_ = directory + "/" + file_name(name, slots);
        const int fd = ::open(file_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            throw std::system_error(errno, std::generic_category(),
                                    "covet ratelimit: cannot open " + file_ + " (is COVET_METRICS_DIR writable?)");
        struct stat st {};
        // Every process truncates to the same size (the capacity is in the name): sparse zeros, an empty table.
        if (::fstat(fd, &st) != 0 ||
            (static_cast<std::size_t>(st.st_size) < bytes_ && ::ftruncate(fd, static_cast<off_t>(bytes_)) != 0)) {
            const int e = errno;
            ::close(fd);
            throw std::system_error(e, std::generic_category(), "covet ratelimit: cannot size " + file_);
        }
        mapping_ = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        const int e = errno;
        ::close(fd);
        if (mapping_ == MAP_FAILED)
            throw std::system_error(e, std::generic_category(), "covet ratelimit: mmap " + file_);
    }
    header_ = static_cast<Header*>(mapping_);
    slots_ = reinterpret_cast<Slot*>(static_cast<char*>(mapping_) + sizeof(Header));
    std::uint64_t seed = header_->seed.load(std::memory_order_acquire);
    if (seed == 0) {
        std::random_device random;
        std::uint64_t mine = (static_cast<std::uint64_t>(random()) << 32) ^ random();
        if (mine == 0) mine = 1;
        // The first process to get here sets it; the others take theirs.
        if (header_->seed.compare_exchange_strong(seed, mine, std::memory_order_acq_rel)) seed = mine;
    }
    seed_ = seed;
}

SharedTable SharedTable::open(std::string_view name, std::size_t capacity) {
    const char* dir = std::getenv("COVET_METRICS_DIR");  // NOLINT(concurrency-mt-unsafe): covet never sets it
    return SharedTable(name, capacity, dir && *dir ? std::string(dir) : std::string());
}

SharedTable::SharedTable(SharedTable&& o) noexcept
    : mapping_(std::exchange(o.mapping_, nullptr)),
      bytes_(o.bytes_),
      header_(o.header_),
      slots_(o.slots_),
      mask_(o.mask_),
      seed_(o.seed_),
      file_(std::move(o.file_)),
      evictions_live_(o.evictions_live_.load()) {}

SharedTable::~SharedTable() {
    if (mapping_) ::munmap(mapping_, bytes_);
}

std::uint64_t SharedTable::hash(std::string_view key, std::uint64_t salt) const noexcept {
    // Fixed-size loads only (a variable-length memcpy is a libc call): keys up to 16 bytes, addresses and most
    // API keys, take two overlapping words.
    const auto load4 = [](const char* p) noexcept {
        std::uint32_t w;
        std::memcpy(&w, p, 4);
        return std::uint64_t{w};
    };
    const char* p = key.data();
    const std::size_t n = key.size();
    std::uint64_t h = seed_ ^ (salt * 0x9e3779b97f4a7c15ULL) ^ (n * 0xff51afd7ed558ccdULL);
    std::uint64_t a = 0, b = 0;
    if (n >= 8) {
        for (std::size_t i = 0; i + 16 < n; i += 8) h = mix(h ^ load8(p + i));  // all but the last 16 bytes
        const std::size_t tail = n >= 16 ? n - 16 : 0;
        a = load8(p + tail);
        b = load8(p + n - 8);
    } else if (n >= 4) {
        a = load4(p);
        b = load4(p + n - 4);
    } else if (n > 0) {
        a = (std::uint64_t{static_cast<unsigned char>(p[0])} << 16) |
            (std::uint64_t{static_cast<unsigned char>(p[n / 2])} << 8) | static_cast<unsigned char>(p[n - 1]);
    }
    h = mix(mix(h ^ a) ^ b);  // each word through the seeded state: no collision holds for every seed
    return h == 0 ? 1 : h;
}

SharedTable::Slot* SharedTable::claim(std::uint64_t key_hash, std::int64_t now_ns) noexcept {
    for (int attempt = 0; attempt < 4; ++attempt) {
        Slot* oldest = nullptr;
        std::int64_t oldest_tat = 0;
        std::uint64_t oldest_key = 0;
        for (std::size_t i = 0; i < probe_window; ++i) {
            Slot& s = slots_[(key_hash + i) & mask_];
            std::uint64_t k = s.key.load(std::memory_order_acquire);
            if (k == key_hash) return &s;
            if (k == 0) {
                // Slots never empty again, so a key is never stored past an empty slot of its window: absent.
                if (s.key.compare_exchange_strong(k, key_hash, std::memory_order_acq_rel)) return &s;
                if (k == key_hash) return &s;  // another thread inserted the same key
                continue;
            }
            const std::int64_t t = s.tat.load(std::memory_order_relaxed);
            if (!oldest || t < oldest_tat) oldest = &s, oldest_tat = t, oldest_key = k;
        }
        // The window is full: take over the slot nearest to a full bucket.
        if (oldest->key.compare_exchange_strong(oldest_key, key_hash, std::memory_order_acq_rel)) {
            if (oldest_tat > now_ns) evictions_live_.fetch_add(1, std::memory_order_relaxed);
            // The previous key's TAT is not ours; if a straggler moved it meanwhile, keep theirs (bounded error).
            std::int64_t expected = oldest_tat;
            oldest->tat.compare_exchange_strong(expected, 0, std::memory_order_relaxed);
            return oldest;
        }
        if (oldest_key == key_hash) return oldest;
    }
    return nullptr;
}

GcraDecision SharedTable::acquire(std::uint64_t key_hash, const GcraPolicy& policy, std::int64_t now_ns,
                                  std::uint32_t cost) noexcept {
    const Admission a = admit(key_hash, policy, now_ns, cost);
    return a.allowed ? gcra_allowed(policy, a.tat, now_ns) : gcra(policy, a.tat, now_ns, cost);
}

std::int64_t SharedTable::tat(std::uint64_t key_hash) const noexcept {
    for (std::size_t i = 0; i < probe_window; ++i) {
        const Slot& s = slots_[(key_hash + i) & mask_];
        const std::uint64_t k = s.key.load(std::memory_order_acquire);
        if (k == key_hash) return s.tat.load(std::memory_order_relaxed);
        if (k == 0) return 0;
    }
    return 0;
}

}  // namespace covet::ratelimit
