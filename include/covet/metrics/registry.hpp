// covet::metrics::Registry: counters, gauges and histograms recorded without locks or allocation, merged
// on scrape.
//
// Storage. Every process has one *region*: a header, a table of metric families (name, help, kind,
// histogram bounds) and a number of *cells*. A cell is an open-addressing table of series (one label set
// of one family, its label text rendered once when the series is first seen). A thread that records gets
// a cell of its own on first use (thread_local): its writes are plain relaxed loads and stores, no locked
// read-modify-write, and the lookup of a known series is a hash probe with no allocation. Threads beyond
// the cells, and Python code, share cell 0, whose writes are relaxed fetch_adds and whose inserts take a
// mutex.
//
// Multi-process. With COVET_METRICS_DIR set (`covet run --workers N` sets it to a directory the supervisor
// made under /dev/shm), the region is a file `<pid>-<nonce>.metrics` there, mapped shared. A scrape in any
// process maps every file of the directory and merges them: one scrape answers for the whole process group.
// A worker that exits (or is SIGKILLed) is folded, by the next scrape or the supervisor, into the directory's one
// `retired.metrics` region (series matched by label text) and its file deleted: its counters, histograms and CPU
// time stay in the sum, so they never go backwards when it is replaced, and the file count stays bounded; its
// gauges leave the sum (they describe a live process).
// Without the variable the region is anonymous memory and a scrape sees this process only.
//
// Families and label sets are bounded by their callers (covet/metrics/http_labels.hpp for the engine's);
// a thread whose cell is 3/4 full takes another free cell of the region for its next series (up to max_cells in
// all); when none is left, new series are dropped and counted (covet_metrics_dropped_series_total).
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace covet::metrics {

enum class Kind : std::uint8_t { counter = 1, gauge = 2, histogram = 3 };

using FamilyId = std::uint32_t;

inline constexpr std::size_t max_families = 256;
inline constexpr std::size_t max_bounds = 15;        // histogram bucket bounds (+Inf is implicit)
inline constexpr std::size_t max_label_bytes = 296;  // rendered `k="v",k2="v2"`
inline constexpr std::size_t max_name_bytes = 96;
inline constexpr std::size_t max_help_bytes = 240;
inline constexpr std::size_t cell_capacity = 512;  // series per cell (a power of two)
inline constexpr std::size_t max_cells = 24;       // cell 0 is shared; 1.. belong to one thread each

// One label set of one family in one cell. Written by the cell's owner (or under the shared cell's rules),
// read by scrapes from any process.
struct alignas(64) SeriesSlot {
    std::atomic<std::uint32_t> state;  // 0 empty, 1 being filled, 2 ready (published with release)
    std::uint32_t family;
    std::uint64_t key;
    // counter: count; gauge: int64 bits; histogram: observations (not read: the scrape sums the buckets). A
    // floating family's counter or gauge: double bits.
    std::atomic<std::uint64_t> value;
    // histogram: the sum, as double bits, or an integer count of units when the family has a sum_divisor
    std::atomic<std::uint64_t> sum;
    std::atomic<std::uint64_t> buckets[max_bounds + 1];  // histogram: per bucket (not cumulative); last: +Inf
    // The retired region only: what rounding left out of a floating `value` / `sum` (double bits) when exited
    // processes were folded in, so that the scrape's exact total is the same before and after a fold.
    std::atomic<std::uint64_t> value_low;
    std::atomic<std::uint64_t> sum_low;
    std::uint16_t label_len;
    char labels[max_label_bytes];
};

struct alignas(64) FamilySlot {
    std::atomic<std::uint32_t> state;  // 0 empty, 2 ready
    Kind kind;
    std::uint8_t bound_count;
    std::uint8_t floating;  // counter/gauge values are doubles (Python's metrics), else integers
    double sum_divisor;     // histogram: 0, sums are doubles; else integers, divided by this on scrape
    char name[max_name_bytes];
    char help[max_help_bytes];
    double bounds[max_bounds];
};

struct Cell {
    SeriesSlot series[cell_capacity];
};

struct RegionHeader {
    std::uint64_t magic;
    std::uint32_t version;
    std::int32_t pid;
    double start_time;                        // Unix seconds
    std::atomic<std::uint32_t> closed;        // 1 after a clean exit: gauges leave the sum
    std::atomic<std::uint32_t> family_count;  // FamilySlots in use
    std::atomic<std::uint32_t> cells_used;    // cells handed out (cell 0 always)
    std::atomic<std::uint64_t> dropped;       // series refused because a cell was full
    // The process's CPU time (user + system, seconds as double bits) last seen: by a scrape (any process of the
    // group), or by the process itself at exit. A dead process's counts in process_cpu_seconds_total with it.
    std::atomic<std::uint64_t> cpu_seconds;
};

struct alignas(64) Region {
    RegionHeader header;
    FamilySlot families[max_families];
    Cell cells[max_cells];
};

inline constexpr std::uint64_t region_magic = 0x31764d54'45564f43ULL;  // "COVETMv1"
inline constexpr std::uint32_t region_version = 2;

// A series in the calling thread's cell. `exclusive`: the cell is this thread's alone (plain stores).
struct SeriesRef {
    SeriesSlot* slot = nullptr;
    bool exclusive = false;
    explicit operator bool() const noexcept { return slot != nullptr; }

    void add(std::uint64_t n = 1) const noexcept {
        if (exclusive)
            slot->value.store(slot->value.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
        else
            slot->value.fetch_add(n, std::memory_order_relaxed);
    }
    void gauge_add(std::int64_t n) const noexcept { add(static_cast<std::uint64_t>(n)); }
    void gauge_set(std::int64_t v) const noexcept {
        slot->value.store(static_cast<std::uint64_t>(v), std::memory_order_relaxed);
    }
    // A floating family's value (shared cell: compare-and-swap).
    void add_double(double n) const noexcept {
        std::uint64_t old = slot->value.load(std::memory_order_relaxed);
        while (!slot->value.compare_exchange_weak(old, std::bit_cast<std::uint64_t>(std::bit_cast<double>(old) + n),
                                                  std::memory_order_relaxed)) {
        }
    }
    void set_double(double v) const noexcept {
        slot->value.store(std::bit_cast<std::uint64_t>(v), std::memory_order_relaxed);
    }
    // `bucket`: the index of the first bound >= value (bound_count for +Inf); see Registry::bucket_of.
    void observe(std::size_t bucket, double value) const noexcept {
        std::atomic<std::uint64_t>& b = slot->buckets[bucket];
        if (exclusive) {
            b.store(b.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
            const double s = std::bit_cast<double>(slot->sum.load(std::memory_order_relaxed)) + value;
            slot->sum.store(std::bit_cast<std::uint64_t>(s), std::memory_order_relaxed);
            slot->value.store(slot->value.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
            return;
        }
        b.fetch_add(1, std::memory_order_relaxed);
        std::uint64_t old = slot->sum.load(std::memory_order_relaxed);
        while (!slot->sum.compare_exchange_weak(old, std::bit_cast<std::uint64_t>(std::bit_cast<double>(old) + value),
                                                std::memory_order_relaxed)) {
        }
        slot->value.fetch_add(1, std::memory_order_relaxed);
    }
    // The same in a family with a sum_divisor: `units` (nanoseconds, bytes) added to the integer sum.
    void observe_units(std::size_t bucket, std::uint64_t units) const noexcept {
        std::atomic<std::uint64_t>& b = slot->buckets[bucket];
        if (exclusive) {
            b.store(b.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
            slot->sum.store(slot->sum.load(std::memory_order_relaxed) + units, std::memory_order_relaxed);
            return;
        }
        b.fetch_add(1, std::memory_order_relaxed);
        slot->sum.fetch_add(units, std::memory_order_relaxed);
    }
};

// Writes a series' labels (`k="v",...`, values escaped: see append_label) when it is first seen.
using LabelWriter = void (*)(const void* context, std::string& out);

// Appends `name="value"` (with a comma before it unless `out` is empty), escaping \ " and newlines as the
// Prometheus text format requires.
void append_label(std::string& out, std::string_view name, std::string_view value);

class Registry {
public:
    // The process's registry (region made on first use: see the file comment for COVET_METRICS_DIR).
    static Registry& global();
    // A registry on anonymous memory, for tests.
    Registry();
    // A registry whose region is a new file in `directory` (merged with the other files there on scrape).
    explicit Registry(const std::string& directory);
    ~Registry();
    Registry(const Registry&) = delete;
    Registry& operator=(const Registry&) = delete;

    // Declares a family (idempotent by name; the same name with another kind or bounds throws
    // std::invalid_argument naming both). Names follow Prometheus: [a-zA-Z_:][a-zA-Z0-9_:]*; counters are
    // declared without the `_total` suffix, which the exposition adds.
    // `floating`: counters and gauges hold doubles (add_double/set_double), for Python's metrics.
    // `sum_divisor`: a histogram whose sums are integers (observe_units), shown divided by this (the engine's:
    // 1e9 for nanoseconds, 1 for bytes); 0: sums are doubles (observe).
    FamilyId family(std::string_view name, std::string_view help, Kind kind, std::span<const double> bounds = {},
                    bool floating = false, double sum_divisor = 0);

    // The calling thread's series of `family` with `key` (the caller's compact encoding of its label set,
    // unique per family); `write` renders its labels the first time. Null when the cell is full.
    SeriesRef series(FamilyId family, std::uint64_t key, LabelWriter write, const void* context) noexcept {
        Cell* cell;
        bool exclusive;
        local_cell(cell, exclusive);
        std::size_t i = slot_index(family, key);
        for (std::size_t probe = 0; probe < cell_capacity; ++probe, i = (i + 1) & (cell_capacity - 1)) {
            SeriesSlot& s = cell->series[i];
            const std::uint32_t st = s.state.load(std::memory_order_acquire);
            if (st == 0) break;
            if (st == 2 && s.key == key && s.family == family) return {&s, exclusive};
        }
        return exclusive ? find_or_insert_chained(family, key, write, context)
                         : insert(*cell, false, family, key, write, context);
    }
    // The same in the shared cell (any thread; Python's metrics).
    SeriesRef shared_series(FamilyId family, std::uint64_t key, LabelWriter write, const void* context) noexcept;

    // The bucket index of `value` in `family` (a histogram).
    std::size_t bucket_of(FamilyId family, double value) const noexcept {
        const FamilySlot& f = region_->families[family];
        std::size_t b = 0;
        while (b < f.bound_count && value > f.bounds[b]) ++b;
        return b;
    }

    // ---- scraping ----
    struct MergedSeries {
        std::string labels;
        double value = 0;  // counter or gauge
        std::uint64_t count = 0;
        double sum = 0;
        std::vector<std::uint64_t> buckets;  // not cumulative, bound_count + 1
    };
    struct MergedFamily {
        std::string name, help;
        Kind kind{};
        std::vector<double> bounds;
        std::vector<MergedSeries> series;  // sorted by labels
    };
    struct Snapshot {
        std::vector<MergedFamily> families;  // in the order this process declared them, then others'
        std::vector<int> live_pids;          // processes whose regions are live (this one first)
        double start_time = 0;               // the earliest live region's
        std::uint64_t dropped = 0;
        // User + system CPU seconds of the group's processes, those that exited included (their last figure:
        // seen by a scrape, or kept at their exit): monotonic across worker exits and restarts.
        double cpu_seconds = 0;
    };
    // Merges this region with the other regions of its directory (if any). The regions of processes that exited
    // are folded first into the directory's one retired region (their counters and CPU time kept, their gauges
    // dropped) and their files deleted: the directory holds the live processes' files and one more.
    Snapshot snapshot() const;
    // Only that fold (the supervisor's, when it reaps a worker, so that files do not pile up between scrapes).
    void retire_dead() const;

    const std::string& directory() const noexcept { return directory_; }
    const std::string& file() const noexcept { return file_; }
    // Marks the region closed (gauges leave the merged sums) and keeps the process's CPU time in it; done by the
    // destructor too, and at exit for the global registry.
    void close() noexcept;

private:
    static std::size_t slot_index(FamilyId family, std::uint64_t key) noexcept {
        std::uint64_t h = key ^ (std::uint64_t{family} * 0x9E3779B97F4A7C15ULL);
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 33;
        return static_cast<std::size_t>(h) & (cell_capacity - 1);
    }
    void local_cell(Cell*& cell, bool& exclusive) noexcept;
    // A thread whose own cell is 3/4 full continues in further cells of its own (while the region has some), so
    // that an app with many routes is not limited to one cell's series; lookups stay short (no cell is fuller).
    SeriesRef find_or_insert_chained(FamilyId family, std::uint64_t key, LabelWriter write,
                                     const void* context) noexcept;
    SeriesRef insert(Cell& cell, bool exclusive, FamilyId family, std::uint64_t key, LabelWriter write,
                     const void* context) noexcept;
    void init_region();

    Region* region_ = nullptr;
    std::size_t mapped_bytes_ = 0;
    std::string directory_;
    std::string file_;
    std::uint64_t id_;          // tells this registry's thread-local cell cache apart from others'
    mutable std::mutex mutex_;  // families, the shared cell's inserts, cell hand-out

public:
    // The cells one thread owns (filled to 3/4 each before the next is taken) and how many series each holds.
    // When a thread exits, its chain goes back to its registry and the next new thread takes it over, series
    // and all: a process whose threads come and go does not use up the region's cells.
    static constexpr std::size_t max_cells_per_thread = 8;
    struct CellChain {
        std::array<Cell*, max_cells_per_thread> cells{};
        std::array<std::uint16_t, max_cells_per_thread> filled{};
        std::uint8_t count = 0;
    };
    // Called at a thread's exit for each registry it recorded in (by id: the registry may be gone).
    static void give_back(std::uint64_t registry, const CellChain& chain) noexcept;

private:
    std::vector<CellChain> free_chains_;  // under mutex_
};

}  // namespace covet::metrics
