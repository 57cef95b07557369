// The registry's region (anonymous or a shared file), its slow paths (declaring families, first sight of a
// series) and the merge of all regions of a directory on scrape.
#include "covet/metrics/registry.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace covet::metrics {
namespace {

// Floating totals across regions are added in a wider type and rounded once, so that the order of the regions
// (and folding an exited process into the retired region) cannot move a total down by a rounding step:
// Prometheus reads any decrease of a counter or a histogram's _sum as a reset.
#if defined(__SIZEOF_FLOAT128__)
// NOLINTNEXTLINE(modernize-use-using): __extension__ (no -Wpedantic warning for __float128) takes a typedef
__extension__ typedef __float128 WideSum;  // __extension__: GCC's and clang's type, -Wpedantic
#else
using WideSum = long double;
#endif

std::atomic<std::uint64_t> next_registry_id{1};

double unix_now() {
    using namespace std::chrono;
    return duration<double>(system_clock::now().time_since_epoch()).count();
}

bool pid_alive(int pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

// A mapped region of another process, unmapped when done. Writable when the file is (a scrape stores the CPU time
// it saw in it; the retired region is written), else read only.
struct Mapped {
    Region* region = nullptr;
    std::size_t bytes = 0;
    bool writable = false;
    Mapped() = default;
    Mapped(const Mapped&) = delete;
    Mapped& operator=(const Mapped&) = delete;
    Mapped(Mapped&& o) noexcept : region(std::exchange(o.region, nullptr)), bytes(o.bytes), writable(o.writable) {}
    Mapped& operator=(Mapped&& o) noexcept {
        if (this != &o) {
            release();
            region = std::exchange(o.region, nullptr);
            bytes = o.bytes;
            writable = o.writable;
        }
        return *this;
    }
    ~Mapped() { release(); }
    void release() noexcept {
        if (region) ::munmap(region, bytes);
        region = nullptr;
    }
};

Mapped map_file(const std::string& path) {
    Mapped m;
    bool writable = true;
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        writable = false;
        fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) return m;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && static_cast<std::size_t>(st.st_size) >= sizeof(Region)) {
        void* p = ::mmap(nullptr, sizeof(Region), writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED) {
            m.region = static_cast<Region*>(p);
            m.bytes = sizeof(Region);
            m.writable = writable;
            // The writer publishes the magic last (release); read it first (acquire).
            if (std::atomic_ref<std::uint64_t>(m.region->header.magic).load(std::memory_order_acquire) !=
                    region_magic ||
                m.region->header.version != region_version)
                m = Mapped{};
        }
    }
    ::close(fd);
    return m;
}

// User + system CPU seconds of a live process (/proc/<pid>/stat fields 14 and 15), or a negative number.
double cpu_seconds_of(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    if (!std::getline(f, text)) return -1;
    const std::size_t paren = text.rfind(')');
    if (paren == std::string::npos || paren + 2 > text.size()) return -1;
    const char* p = text.c_str() + paren + 2;
    double ticks = 0;
    for (int field = 3; field <= 15 && *p; ++field) {  // state is field 3
        char* end = nullptr;
        if (field >= 14) ticks += std::strtod(p, &end);
        while (*p && *p != ' ') ++p;
        while (*p == ' ') ++p;
    }
    static const auto per_second = static_cast<double>(::sysconf(_SC_CLK_TCK));
    return ticks / per_second;
}

// CPU seconds as whole microseconds: the totals of several regions are added as integers, so that neither their
// order nor folding an exited process into the retired region can move the total down by a rounding step.
std::int64_t micros(double seconds) noexcept { return std::llround(seconds * 1e6); }

// Raises a region's stored CPU time to `seen` (never lowers it: several scrapers may race) and returns it.
double raise_cpu(Region& r, double seen) noexcept {
    std::uint64_t old = r.header.cpu_seconds.load(std::memory_order_relaxed);
    while (std::bit_cast<double>(old) < seen &&
           !r.header.cpu_seconds.compare_exchange_weak(old, std::bit_cast<std::uint64_t>(seen),
                                                       std::memory_order_relaxed)) {
    }
    return std::max(std::bit_cast<double>(old), seen);
}

constexpr std::string_view retired_name = "retired.metrics";

std::uint64_t hash_text(std::string_view text) noexcept {  // FNV-1a
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (const char c : text) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
    return h;
}

// The retired region of a directory: the counters of the processes that exited, folded into one file whose series
// are keyed by their label text (the processes' own keys are theirs: route ids differ between processes). Held
// under an exclusive flock for the whole scrape, so that no scrape sees a folded file and its fold both, or
// neither. The retired region's cells are one table (max_cells * cell_capacity series).
class Retired {
public:
    explicit Retired(const std::string& directory) {
        const std::string path = directory + "/" + std::string(retired_name);
        fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd_ < 0) return;
        if (::flock(fd_, LOCK_EX) != 0) return;
        struct stat st {};
        if (::fstat(fd_, &st) != 0) return;
        if (static_cast<std::size_t>(st.st_size) < sizeof(Region) && ::ftruncate(fd_, sizeof(Region)) != 0) return;
        void* p = ::mmap(nullptr, sizeof(Region), PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
        if (p == MAP_FAILED) return;
        region_ = static_cast<Region*>(p);
        RegionHeader& h = region_->header;
        if (std::atomic_ref<std::uint64_t>(h.magic).load(std::memory_order_acquire) != region_magic) {
            h.version = region_version;
            h.pid = 0;
            h.start_time = 0;
            h.closed.store(1, std::memory_order_relaxed);  // never live: its gauges (it has none) leave the sum
            h.cells_used.store(max_cells, std::memory_order_relaxed);
            std::atomic_ref<std::uint64_t>(h.magic).store(region_magic, std::memory_order_release);
        } else if (h.version != region_version) {
            ::munmap(region_, sizeof(Region));
            region_ = nullptr;
        }
    }
    ~Retired() {
        if (region_) ::munmap(region_, sizeof(Region));
        if (fd_ >= 0) ::close(fd_);  // releases the lock
    }
    Retired(const Retired&) = delete;
    Retired& operator=(const Retired&) = delete;

    Region* region() const noexcept { return region_; }

    // Adds the counters and histograms of `dead` (a process that exited) to this region. False when some of
    // them could not be kept (a family declared otherwise, a full table): the caller keeps the file then.
    bool fold(const Region& dead) noexcept {
        if (!region_) return false;
        const RegionHeader& h = dead.header;
        const std::uint32_t family_count = std::min<std::uint32_t>(h.family_count.load(std::memory_order_acquire),
                                                                   static_cast<std::uint32_t>(max_families));
        std::uint32_t mapped[max_families];
        for (std::uint32_t i = 0; i < family_count; ++i) {
            mapped[i] = UINT32_MAX;
            const FamilySlot& f = dead.families[i];
            if (f.state.load(std::memory_order_acquire) != 2 || f.kind == Kind::gauge) continue;
            mapped[i] = family_of(f);
            if (mapped[i] == UINT32_MAX) return false;
        }
        // Two passes: first check that every series finds room, so that a fold is all or nothing.
        for (const bool write : {false, true}) {
            const std::uint32_t cells = std::min<std::uint32_t>(h.cells_used.load(std::memory_order_acquire),
                                                                static_cast<std::uint32_t>(max_cells));
            for (std::uint32_t c = 0; c < cells; ++c) {
                for (const SeriesSlot& s : dead.cells[c].series) {
                    if (s.state.load(std::memory_order_acquire) != 2 || s.family >= family_count) continue;
                    const std::uint32_t family = mapped[s.family];
                    if (family == UINT32_MAX) continue;  // a gauge (or a family not published)
                    const std::string_view labels(s.labels, std::min<std::size_t>(s.label_len, max_label_bytes));
                    SeriesSlot* into = series_of(family, labels, write);
                    if (!into) {
                        if (write) continue;  // cannot happen: the first pass found room
                        return false;
                    }
                    if (write) add(region_->families[family], *into, s);
                }
            }
        }
        region_->header.dropped.fetch_add(h.dropped.load(std::memory_order_relaxed), std::memory_order_relaxed);
        const double cpu =
            static_cast<double>(
                micros(std::bit_cast<double>(h.cpu_seconds.load(std::memory_order_relaxed))) +
                micros(std::bit_cast<double>(region_->header.cpu_seconds.load(std::memory_order_relaxed)))) /
            1e6;
        region_->header.cpu_seconds.store(std::bit_cast<std::uint64_t>(cpu), std::memory_order_relaxed);
        return true;
    }

private:
    static constexpr std::size_t table_size = max_cells * cell_capacity;

    std::uint32_t family_of(const FamilySlot& f) noexcept {
        const std::string_view name(f.name, ::strnlen(f.name, max_name_bytes));
        RegionHeader& h = region_->header;
        const std::uint32_t count = h.family_count.load(std::memory_order_relaxed);
        for (std::uint32_t i = 0; i < count; ++i) {
            const FamilySlot& r = region_->families[i];
            if (name != std::string_view(r.name, ::strnlen(r.name, max_name_bytes))) continue;
            const bool same =
                r.kind == f.kind && r.bound_count == f.bound_count && r.floating == f.floating &&
                r.sum_divisor == f.sum_divisor &&
                std::equal(f.bounds, f.bounds + std::min<std::size_t>(f.bound_count, max_bounds), r.bounds);
            return same ? i : UINT32_MAX;
        }
        if (count >= max_families) return UINT32_MAX;
        FamilySlot& r = region_->families[count];
        r.kind = f.kind;
        r.bound_count = std::min<std::uint8_t>(f.bound_count, max_bounds);
        r.floating = f.floating;
        r.sum_divisor = f.sum_divisor;
        std::copy(f.bounds, f.bounds + r.bound_count, r.bounds);
        std::memcpy(r.name, f.name, max_name_bytes);
        r.name[max_name_bytes - 1] = 0;
        std::memcpy(r.help, f.help, max_help_bytes);
        r.help[max_help_bytes - 1] = 0;
        r.state.store(2, std::memory_order_release);
        h.family_count.store(count + 1, std::memory_order_release);
        return count;
    }

    // The series of `family` with `labels`, made when `make` (else an empty slot found is enough: non-null).
    SeriesSlot* series_of(std::uint32_t family, std::string_view labels, bool make) noexcept {
        const std::uint64_t key = hash_text(labels) ^ (std::uint64_t{family} * 0x9E3779B97F4A7C15ULL);
        std::size_t i = static_cast<std::size_t>(key) % table_size;
        for (std::size_t probe = 0; probe < table_size; ++probe, i = (i + 1) % table_size) {
            SeriesSlot& s = region_->cells[i / cell_capacity].series[i % cell_capacity];
            if (s.state.load(std::memory_order_relaxed) == 2) {
                if (s.key == key && s.family == family &&
                    std::string_view(s.labels, std::min<std::size_t>(s.label_len, max_label_bytes)) == labels)
                    return &s;
                continue;
            }
            if (!make) return &s;
            s.family = family;
            s.key = key;
            s.label_len = static_cast<std::uint16_t>(labels.size());
            labels.copy(s.labels, labels.size());
            s.state.store(2, std::memory_order_release);
            return &s;
        }
        return nullptr;
    }

    static void add(const FamilySlot& f, SeriesSlot& into, const SeriesSlot& from) noexcept {
        const auto plus = [](std::atomic<std::uint64_t>& a, std::uint64_t n) {
            a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
        };
        // A floating total kept as two doubles, high and low, whose sum is the exact total (to WideSum's precision).
        const auto plus_double = [](std::atomic<std::uint64_t>& high, std::atomic<std::uint64_t>& low,
                                    std::uint64_t bits, std::uint64_t low_bits) {
            const auto as_double = [](const std::atomic<std::uint64_t>& a) {
                return std::bit_cast<double>(a.load(std::memory_order_relaxed));
            };
            const WideSum total = static_cast<WideSum>(as_double(high)) + static_cast<WideSum>(as_double(low)) +
                                  static_cast<WideSum>(std::bit_cast<double>(bits)) +
                                  static_cast<WideSum>(std::bit_cast<double>(low_bits));
            const auto h = static_cast<double>(total);
            high.store(std::bit_cast<std::uint64_t>(h), std::memory_order_relaxed);
            low.store(std::bit_cast<std::uint64_t>(static_cast<double>(total - static_cast<WideSum>(h))),
                      std::memory_order_relaxed);
        };
        const std::uint64_t value = from.value.load(std::memory_order_relaxed);
        if (f.kind != Kind::histogram) {
            if (f.floating)
                plus_double(into.value, into.value_low, value, from.value_low.load(std::memory_order_relaxed));
            else
                plus(into.value, value);
            return;
        }
        for (std::size_t b = 0; b <= std::min<std::size_t>(f.bound_count, max_bounds); ++b)
            plus(into.buckets[b], from.buckets[b].load(std::memory_order_relaxed));
        plus(into.value, value);
        if (f.sum_divisor != 0)
            plus(into.sum, from.sum.load(std::memory_order_relaxed));
        else
            plus_double(into.sum, into.sum_low, from.sum.load(std::memory_order_relaxed),
                        from.sum_low.load(std::memory_order_relaxed));
    }

    int fd_ = -1;
    Region* region_ = nullptr;
};

// Thread-local cache of the cells a thread was given (one per registry it recorded in).
// Series a thread puts in one of its own cells before it takes another: linear probing stays short (a lookup
// always meets an empty slot soon), and a lookup that misses the first cell goes on to the next.
constexpr std::size_t cell_fill_limit = cell_capacity * 3 / 4;
constexpr std::size_t max_chain = Registry::max_cells_per_thread;

// The registries alive in this process, by id: a thread's exit hands its cells back to the one it recorded in.
std::mutex& live_registries_mutex() {
    static std::mutex m;
    return m;
}
std::vector<std::pair<std::uint64_t, Registry*>>& live_registries() {
    static std::vector<std::pair<std::uint64_t, Registry*>> v;
    return v;
}

struct CellCache {
    struct Entry {
        std::uint64_t registry = 0;
        Cell* cell = nullptr;
        bool exclusive = false;
        // The thread's cells (chain.cells[0] == cell) and the series it put in each: only its owner inserts into
        // an exclusive cell, so the counts are exact without atomics.
        Registry::CellChain chain{};
    };
    Entry entries[4];
    CellCache() = default;
    CellCache(const CellCache&) = delete;
    CellCache& operator=(const CellCache&) = delete;
    ~CellCache() {
        for (const Entry& e : entries)
            if (e.registry != 0 && e.exclusive) Registry::give_back(e.registry, e.chain);
    }
};
thread_local CellCache cell_cache;

}  // namespace

void append_label(std::string& out, std::string_view name, std::string_view value) {
    if (!out.empty()) out.push_back(',');
    out.append(name).append("=\"");
    for (const char c : value) {
        if (c == '\\')
            out.append("\\\\");
        else if (c == '"')
            out.append("\\\"");
        else if (c == '\n')
            out.append("\\n");
        else
            out.push_back(c);
    }
    out.push_back('"');
}

Registry& Registry::global() {
    static Registry* const registry = [] {
        const char* dir = std::getenv("COVET_METRICS_DIR");  // NOLINT(concurrency-mt-unsafe): covet never sets it
        if (dir && *dir) {
            try {
                auto* shared =
                    new Registry(std::string(dir));  // NOLINT: lives for the process (threads record at exit)
                // At a normal exit: the CPU time it used stays in the group's total, its gauges leave the sum.
                std::atexit([] { Registry::global().close(); });
                return shared;
            } catch (const std::exception&) {
                // The directory is gone or not writable: this process records alone.
            }
        }
        return new Registry();  // NOLINT: as above
    }();
    return *registry;
}

Registry::Registry() : id_(next_registry_id.fetch_add(1)) {
    void* p = ::mmap(nullptr, sizeof(Region), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "covet metrics: mmap");
    region_ = static_cast<Region*>(p);
    mapped_bytes_ = sizeof(Region);
    init_region();
    const std::lock_guard<std::mutex> live_lock(live_registries_mutex());
    live_registries().emplace_back(id_, this);
}

Registry::Registry(const std::string& directory) : directory_(directory), id_(next_registry_id.fetch_add(1)) {
    std::random_device random;
    file_ = directory + "/" + std::to_string(::getpid()) + "-" + std::to_string(random()) + ".metrics";
    const int fd = ::open(file_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        throw std::system_error(errno, std::generic_category(),
                                "covet metrics: cannot create " + file_ + " (is COVET_METRICS_DIR writable?)");
    if (::ftruncate(fd, sizeof(Region)) != 0) {  // sparse: only the pages written take memory
        const int e = errno;
        ::close(fd);
        throw std::system_error(e, std::generic_category(), "covet metrics: ftruncate " + file_);
    }
    void* p = ::mmap(nullptr, sizeof(Region), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    const int e = errno;
    ::close(fd);
    if (p == MAP_FAILED) throw std::system_error(e, std::generic_category(), "covet metrics: mmap " + file_);
    region_ = static_cast<Region*>(p);
    mapped_bytes_ = sizeof(Region);
    init_region();
    const std::lock_guard<std::mutex> live_lock(live_registries_mutex());
    live_registries().emplace_back(id_, this);
}

void Registry::init_region() {
    RegionHeader& h = region_->header;
    h.version = region_version;
    h.pid = static_cast<std::int32_t>(::getpid());
    h.start_time = unix_now();
    h.cells_used.store(1, std::memory_order_relaxed);
    // Published last, with release: a scraper that reads the magic (acquire) sees the fields above. An atomic_ref
    // store rather than a fence, which ThreadSanitizer does not support.
    std::atomic_ref<std::uint64_t>(h.magic).store(region_magic, std::memory_order_release);
}

void Registry::give_back(std::uint64_t registry, const CellChain& chain) noexcept {
    const std::lock_guard<std::mutex> live_lock(live_registries_mutex());
    for (const auto& [id, r] : live_registries()) {
        if (id != registry) continue;
        const std::lock_guard<std::mutex> lock(r->mutex_);
        try {
            r->free_chains_.push_back(chain);
        } catch (...) {  // no memory: the cells stay unused, as before
        }
        return;
    }
}

Registry::~Registry() {
    {
        const std::lock_guard<std::mutex> live_lock(live_registries_mutex());
        std::erase_if(live_registries(), [this](const auto& entry) { return entry.second == this; });
    }
    close();
    if (region_) ::munmap(region_, mapped_bytes_);
}

void Registry::close() noexcept {
    // The CPU time this process used, kept for process_cpu_seconds_total once it is gone.
    rusage usage{};
    if (::getrusage(RUSAGE_SELF, &usage) == 0) {
        const auto seconds = [](const timeval& t) {
            return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
        };
        raise_cpu(*region_, seconds(usage.ru_utime) + seconds(usage.ru_stime));
    }
    region_->header.closed.store(1, std::memory_order_release);
}

FamilyId Registry::family(std::string_view name, std::string_view help, Kind kind, std::span<const double> bounds,
                          bool floating, double sum_divisor) {
    const bool valid_name = !name.empty() && name.size() < max_name_bytes &&
                            std::all_of(name.begin(), name.end(),
                                        [](char c) {
                                            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                                   (c >= '0' && c <= '9') || c == '_' || c == ':';
                                        }) &&
                            (name[0] < '0' || name[0] > '9');
    if (!valid_name)
        throw std::invalid_argument("metric name '" + std::string(name) +
                                    "' is not valid: use letters, digits, '_' and ':' (not first a digit), at most " +
                                    std::to_string(max_name_bytes - 1) + " characters");
    if (kind != Kind::histogram && !bounds.empty())
        throw std::invalid_argument("metric '" + std::string(name) + "': only histograms have bucket bounds");
    if (sum_divisor != 0 && kind != Kind::histogram)
        throw std::invalid_argument("metric '" + std::string(name) + "': only histograms have a sum divisor");
    if (bounds.size() > max_bounds)
        throw std::invalid_argument("histogram '" + std::string(name) + "' has " + std::to_string(bounds.size()) +
                                    " bucket bounds; at most " + std::to_string(max_bounds));
    if (!std::is_sorted(bounds.begin(), bounds.end()) ||
        std::adjacent_find(bounds.begin(), bounds.end()) != bounds.end())
        throw std::invalid_argument("histogram '" + std::string(name) + "': bucket bounds must increase");
    std::lock_guard lock(mutex_);
    const std::uint32_t count = region_->header.family_count.load(std::memory_order_relaxed);
    for (std::uint32_t i = 0; i < count; ++i) {
        const FamilySlot& f = region_->families[i];
        if (name != std::string_view(f.name)) continue;
        const bool same_bounds = std::equal(bounds.begin(), bounds.end(), f.bounds, f.bounds + f.bound_count);
        if (f.kind != kind || !same_bounds || (f.floating != 0) != floating || f.sum_divisor != sum_divisor)
            throw std::invalid_argument("metric '" + std::string(name) +
                                        "' is already declared with another type or other buckets");
        return i;
    }
    if (count >= max_families)
        throw std::length_error("covet metrics: more than " + std::to_string(max_families) + " metric families");
    FamilySlot& f = region_->families[count];
    f.kind = kind;
    f.floating = floating ? 1 : 0;
    f.sum_divisor = sum_divisor;
    f.bound_count = static_cast<std::uint8_t>(bounds.size());
    std::copy(bounds.begin(), bounds.end(), f.bounds);
    name.copy(f.name, max_name_bytes - 1);
    help.substr(0, max_help_bytes - 1).copy(f.help, max_help_bytes - 1);
    f.state.store(2, std::memory_order_release);
    region_->header.family_count.store(count + 1, std::memory_order_release);
    return count;
}

void Registry::local_cell(Cell*& cell, bool& exclusive) noexcept {
    CellCache::Entry* free_entry = nullptr;
    for (CellCache::Entry& e : cell_cache.entries) {
        if (e.registry == id_) {
            cell = e.cell;
            exclusive = e.exclusive;
            return;
        }
        if (!free_entry && e.registry == 0) free_entry = &e;
    }
    if (!free_entry) free_entry = &cell_cache.entries[id_ % 4];  // rare: a thread in more than 4 registries
    // First record of this thread here: the cells of a thread that exited, if any, else a cell of its own while
    // there are some, else the shared one.
    {
        const std::lock_guard<std::mutex> lock(mutex_);
        if (!free_chains_.empty()) {
            const CellChain chain = free_chains_.back();
            free_chains_.pop_back();
            cell = chain.cells[0];
            exclusive = true;
            *free_entry = {id_, cell, true, chain};
            return;
        }
    }
    std::uint32_t used = region_->header.cells_used.load(std::memory_order_relaxed);
    std::uint32_t mine = 0;
    while (used < max_cells) {
        if (region_->header.cells_used.compare_exchange_weak(used, used + 1, std::memory_order_relaxed)) {
            mine = used;
            break;
        }
    }
    cell = &region_->cells[mine];
    exclusive = mine != 0;
    CellChain chain{};
    chain.cells[0] = cell;
    chain.count = 1;
    *free_entry = {id_, cell, exclusive, chain};
}

namespace {

// The slot of `family`/`key` in `cell`, or the empty slot where its probe ended (nullptr: neither, a full cell).
SeriesSlot* probe_cell(Cell& cell, std::size_t start, FamilyId family, std::uint64_t key, bool& found) noexcept {
    found = false;
    for (std::size_t probe = 0, i = start; probe < cell_capacity; ++probe, i = (i + 1) & (cell_capacity - 1)) {
        SeriesSlot& s = cell.series[i];
        const std::uint32_t st = s.state.load(std::memory_order_acquire);
        if (st == 0) return &s;
        if (st == 2 && s.key == key && s.family == family) {
            found = true;
            return &s;
        }
    }
    return nullptr;
}

}  // namespace

SeriesRef Registry::find_or_insert_chained(FamilyId family, std::uint64_t key, LabelWriter write,
                                           const void* context) noexcept {
    CellCache::Entry* entry = nullptr;
    for (CellCache::Entry& e : cell_cache.entries)
        if (e.registry == id_) entry = &e;
    if (!entry || !entry->exclusive) return {};  // series() made the entry (and called us) for exclusive cells only
    const std::size_t start = slot_index(family, key);
    bool found = false;
    for (std::size_t c = 1; c < entry->chain.count; ++c) {  // cells[0]: series() looked there already
        if (SeriesSlot* s = probe_cell(*entry->chain.cells[c], start, family, key, found); s && found) return {s, true};
    }
    std::size_t last = entry->chain.count - 1;
    if (entry->chain.filled[last] >= cell_fill_limit) {  // take another cell of the region, if any is left
        std::uint32_t used = region_->header.cells_used.load(std::memory_order_relaxed);
        std::uint32_t taken = 0;
        while (entry->chain.count < max_chain && used < max_cells) {
            if (region_->header.cells_used.compare_exchange_weak(used, used + 1, std::memory_order_relaxed)) {
                taken = used;
                break;
            }
        }
        if (taken == 0) {
            region_->header.dropped.fetch_add(1, std::memory_order_relaxed);
            return {};
        }
        last = entry->chain.count++;
        entry->chain.cells[last] = &region_->cells[taken];
        entry->chain.filled[last] = 0;
    }
    const SeriesRef ref = insert(*entry->chain.cells[last], true, family, key, write, context);
    if (ref) ++entry->chain.filled[last];
    return ref;
}

SeriesRef Registry::insert(Cell& cell, bool exclusive, FamilyId family, std::uint64_t key, LabelWriter write,
                           const void* context) noexcept {
    std::unique_lock<std::mutex> lock(mutex_, std::defer_lock);
    if (!exclusive) lock.lock();  // the shared cell: writers on several threads may insert
    std::size_t i = slot_index(family, key);
    for (std::size_t probe = 0; probe < cell_capacity; ++probe, i = (i + 1) & (cell_capacity - 1)) {
        SeriesSlot& s = cell.series[i];
        const std::uint32_t st = s.state.load(std::memory_order_acquire);
        if (st == 2 && s.key == key && s.family == family) return {&s, exclusive};  // another thread's, meanwhile
        if (st != 0) continue;
        std::string labels;
        try {
            if (write) write(context, labels);
        } catch (...) {
            return {};
        }
        if (labels.size() > max_label_bytes) labels.resize(max_label_bytes);  // never: label values are bounded
        s.state.store(1, std::memory_order_relaxed);
        s.family = family;
        s.key = key;
        s.label_len = static_cast<std::uint16_t>(labels.size());
        labels.copy(s.labels, labels.size());
        s.state.store(2, std::memory_order_release);
        return {&s, exclusive};
    }
    region_->header.dropped.fetch_add(1, std::memory_order_relaxed);
    return {};
}

SeriesRef Registry::shared_series(FamilyId family, std::uint64_t key, LabelWriter write, const void* context) noexcept {
    Cell& cell = region_->cells[0];
    std::size_t i = slot_index(family, key);
    for (std::size_t probe = 0; probe < cell_capacity; ++probe, i = (i + 1) & (cell_capacity - 1)) {
        SeriesSlot& s = cell.series[i];
        const std::uint32_t st = s.state.load(std::memory_order_acquire);
        if (st == 0) break;
        if (st == 2 && s.key == key && s.family == family) return {&s, false};
    }
    return insert(cell, false, family, key, write, context);
}

namespace {

// The region files of `directory` but `own` and the retired one, mapped; those of processes that exited are folded
// into `retired` and deleted when it can keep all of their counters.
std::vector<Mapped> live_regions(const std::string& directory, const std::string& own, Retired* retired) {
    std::vector<Mapped> out;
    DIR* d = ::opendir(directory.c_str());
    if (!d) return out;
    // glibc's readdir is thread-safe on distinct streams (this one is local); readdir_r is deprecated.
    while (const dirent* e = ::readdir(d)) {  // NOLINT(concurrency-mt-unsafe)
        const std::string_view n(e->d_name);
        if (n.size() < 9 || n.substr(n.size() - 8) != ".metrics" || n == retired_name) continue;
        const std::string path = directory + "/" + std::string(n);
        if (path == own) continue;
        Mapped m = map_file(path);
        if (!m.region) continue;
        if (retired && !pid_alive(m.region->header.pid) && retired->fold(*m.region)) {
            ::unlink(path.c_str());  // its counters live on in the retired region
            continue;
        }
        out.push_back(std::move(m));
    }
    ::closedir(d);
    return out;
}

}  // namespace

void Registry::retire_dead() const {
    if (directory_.empty()) return;
    Retired retired(directory_);
    if (retired.region()) live_regions(directory_, file_, &retired);
}

Registry::Snapshot Registry::snapshot() const {
    // Regions: this one, then the directory's others (the retired one last), under the retired region's lock: a
    // process that exited is folded into it and its file deleted, atomically for every scraper.
    std::optional<Retired> retired;
    std::vector<Mapped> others;
    std::vector<Region*> regions{region_};
    if (!directory_.empty()) {
        retired.emplace(directory_);
        others = live_regions(directory_, file_, retired->region() ? &*retired : nullptr);
        for (const Mapped& m : others) regions.push_back(m.region);
        if (retired->region()) regions.push_back(retired->region());
    }

    Snapshot out;
    std::int64_t cpu_micros = 0;
    std::map<std::string, std::size_t, std::less<>> family_index;
    // A merged series and its exact totals (rounded into `series.value` / `series.sum` at the end).
    struct Accumulated {
        MergedSeries series;
        WideSum value = 0;        // floating counters and gauges
        WideSum sum = 0;          // floating histogram sums
        std::uint64_t units = 0;  // integer histogram sums (sum_divisor units)
        double divisor = 0;
    };
    std::vector<std::map<std::string, Accumulated, std::less<>>> series;
    for (std::size_t ri = 0; ri < regions.size(); ++ri) {
        Region* const r = regions[ri];
        RegionHeader& h = r->header;
        const bool live = r == region_ || (h.closed.load(std::memory_order_acquire) == 0 && pid_alive(h.pid));
        if (live) {
            out.live_pids.push_back(h.pid);
            if (out.start_time == 0 || h.start_time < out.start_time) out.start_time = h.start_time;
        }
        // CPU time: a running process's from /proc, kept in its region (so that it still counts once the process
        // is gone); an exited process's as last kept. Never lower than a scrape showed before.
        const bool writable = r == region_ || (ri >= 1 && ri <= others.size() && others[ri - 1].writable) ||
                              (retired && r == retired->region());
        const double seen = h.pid > 0 && pid_alive(h.pid) ? cpu_seconds_of(h.pid) : -1;
        if (seen >= 0 && writable) {
            cpu_micros += micros(raise_cpu(*r, seen));
        } else {
            cpu_micros += micros(std::max(seen, std::bit_cast<double>(h.cpu_seconds.load(std::memory_order_relaxed))));
        }
        out.dropped += h.dropped.load(std::memory_order_relaxed);
        const std::uint32_t family_count = std::min<std::uint32_t>(h.family_count.load(std::memory_order_acquire),
                                                                   static_cast<std::uint32_t>(max_families));
        std::vector<std::size_t> local_to_merged(family_count, SIZE_MAX);
        std::vector<bool> floating(family_count, false);
        std::vector<double> sum_divisor(family_count, 0.0);
        for (std::uint32_t i = 0; i < family_count; ++i) {
            const FamilySlot& f = r->families[i];
            if (f.state.load(std::memory_order_acquire) != 2) continue;
            const std::string name(f.name, ::strnlen(f.name, max_name_bytes));
            auto it = family_index.find(name);
            if (it == family_index.end()) {
                MergedFamily m;
                m.name = name;
                m.help.assign(f.help, ::strnlen(f.help, max_help_bytes));
                m.kind = f.kind;
                m.bounds.assign(f.bounds, f.bounds + std::min<std::size_t>(f.bound_count, max_bounds));
                it = family_index.emplace(name, out.families.size()).first;
                out.families.push_back(std::move(m));
                series.emplace_back();
            }
            const MergedFamily& m = out.families[it->second];
            if (m.kind != f.kind || m.bounds.size() != f.bound_count) continue;  // a mismatched declaration
            local_to_merged[i] = it->second;
            floating[i] = f.floating != 0;
            sum_divisor[i] = f.sum_divisor;
        }
        const std::uint32_t cells = std::min<std::uint32_t>(h.cells_used.load(std::memory_order_acquire),
                                                            static_cast<std::uint32_t>(max_cells));
        for (std::uint32_t c = 0; c < cells; ++c) {
            for (const SeriesSlot& s : r->cells[c].series) {
                if (s.state.load(std::memory_order_acquire) != 2 || s.family >= family_count) continue;
                const std::size_t fi = local_to_merged[s.family];
                if (fi == SIZE_MAX) continue;
                const MergedFamily& fam = out.families[fi];
                if (fam.kind == Kind::gauge && !live) continue;
                const std::string_view labels(s.labels, std::min<std::size_t>(s.label_len, max_label_bytes));
                auto& bucket_map = series[fi];
                auto it = bucket_map.find(labels);
                if (it == bucket_map.end()) {
                    Accumulated a;
                    a.series.labels = std::string(labels);
                    a.series.buckets.assign(fam.bounds.size() + 1, 0);
                    it = bucket_map.emplace(a.series.labels, std::move(a)).first;
                }
                Accumulated& acc = it->second;
                MergedSeries& ms = acc.series;
                const std::uint64_t v = s.value.load(std::memory_order_relaxed);
                const auto wide = [](const std::atomic<std::uint64_t>& a) {
                    return static_cast<WideSum>(std::bit_cast<double>(a.load(std::memory_order_relaxed)));
                };
                if (floating[s.family] && fam.kind != Kind::histogram) {
                    acc.value += static_cast<WideSum>(std::bit_cast<double>(v)) + wide(s.value_low);
                } else if (fam.kind == Kind::counter) {
                    ms.value += static_cast<double>(v);
                } else if (fam.kind == Kind::gauge) {
                    ms.value += static_cast<double>(static_cast<std::int64_t>(v));
                } else {
                    // The count is the buckets' sum (the engine's hot path stores no count; the +Inf bucket and
                    // _count are derived from the buckets, see exposition).
                    for (std::size_t b = 0; b <= fam.bounds.size(); ++b) {
                        const std::uint64_t n = s.buckets[b].load(std::memory_order_relaxed);
                        ms.buckets[b] += n;
                        ms.count += n;
                    }
                    const double divisor = sum_divisor[s.family];
                    if (divisor != 0) {
                        acc.units += s.sum.load(std::memory_order_relaxed);
                        acc.divisor = divisor;
                    } else {
                        acc.sum += wide(s.sum) + wide(s.sum_low);
                    }
                }
            }
        }
    }
    out.cpu_seconds = static_cast<double>(cpu_micros) / 1e6;
    for (std::size_t i = 0; i < out.families.size(); ++i) {
        for (auto& [labels, a] : series[i]) {
            a.series.value += static_cast<double>(a.value);
            a.series.sum = a.divisor != 0 ? static_cast<double>(a.units) / a.divisor : static_cast<double>(a.sum);
            out.families[i].series.push_back(std::move(a.series));
        }
    }
    return out;
}

}  // namespace covet::metrics
