// The registry's region (anonymous or a shared file), its slow paths (declaring families, first sight of a
// series) and the merge of all regions of a directory on scrape.
#include "covet/metrics/registry.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <map>
#include <random>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace covet::metrics {
namespace {

std::atomic<std::uint64_t> next_registry_id{1};

double unix_now() {
    using namespace std::chrono;
    return duration<double>(system_clock::now().time_since_epoch()).count();
}

bool pid_alive(int pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

// A mapped region of another process (read only), unmapped when done.
struct Mapped {
    const Region* region = nullptr;
    std::size_t bytes = 0;
    Mapped() = default;
    Mapped(const Mapped&) = delete;
    Mapped& operator=(const Mapped&) = delete;
    Mapped(Mapped&& o) noexcept : region(std::exchange(o.region, nullptr)), bytes(o.bytes) {}
    Mapped& operator=(Mapped&& o) noexcept {
        if (this != &o) {
            release();
            region = std::exchange(o.region, nullptr);
            bytes = o.bytes;
        }
        return *this;
    }
    ~Mapped() { release(); }
    void release() noexcept {
        if (region) ::munmap(const_cast<Region*>(region), bytes);
        region = nullptr;
    }
};

Mapped map_file(const std::string& path) {
    Mapped m;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return m;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && static_cast<std::size_t>(st.st_size) >= sizeof(Region)) {
        void* p = ::mmap(nullptr, sizeof(Region), PROT_READ, MAP_SHARED, fd, 0);
        if (p != MAP_FAILED) {
            m.region = static_cast<const Region*>(p);
            m.bytes = sizeof(Region);
            // The writer publishes the magic last (release); read it first (acquire). Read-only mapping: a load only.
            auto& magic = const_cast<std::uint64_t&>(m.region->header.magic);
            if (std::atomic_ref<std::uint64_t>(magic).load(std::memory_order_acquire) != region_magic ||
                m.region->header.version != region_version)
                m = Mapped{};
        }
    }
    ::close(fd);
    return m;
}

// Thread-local cache of the cells a thread was given (one per registry it recorded in).
struct CellCache {
    struct Entry {
        std::uint64_t registry = 0;
        Cell* cell = nullptr;
        bool exclusive = false;
    };
    Entry entries[4];
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
        const char* dir = std::getenv("COVET_METRICS_DIR");
        if (dir && *dir) {
            try {
                return new Registry(std::string(dir));  // NOLINT: lives for the process (threads may record at exit)
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

Registry::~Registry() {
    close();
    if (region_) ::munmap(region_, mapped_bytes_);
}

void Registry::close() noexcept { region_->header.closed.store(1, std::memory_order_release); }

FamilyId Registry::family(std::string_view name, std::string_view help, Kind kind, std::span<const double> bounds,
                          bool floating) {
    const bool valid_name = !name.empty() && name.size() < max_name_bytes &&
                            std::all_of(name.begin(), name.end(),
                                        [](char c) {
                                            return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                                   (c >= '0' && c <= '9') || c == '_' || c == ':';
                                        }) &&
                            !(name[0] >= '0' && name[0] <= '9');
    if (!valid_name)
        throw std::invalid_argument("metric name '" + std::string(name) +
                                    "' is not valid: use letters, digits, '_' and ':' (not first a digit), at most " +
                                    std::to_string(max_name_bytes - 1) + " characters");
    if (kind != Kind::histogram && !bounds.empty())
        throw std::invalid_argument("metric '" + std::string(name) + "': only histograms have bucket bounds");
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
        if (f.kind != kind || !same_bounds || (f.floating != 0) != floating)
            throw std::invalid_argument("metric '" + std::string(name) +
                                        "' is already declared with another type or other buckets");
        return i;
    }
    if (count >= max_families)
        throw std::length_error("covet metrics: more than " + std::to_string(max_families) + " metric families");
    FamilySlot& f = region_->families[count];
    f.kind = kind;
    f.floating = floating ? 1 : 0;
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
    // First record of this thread here: a cell of its own while there are some, else the shared one.
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
    if (!free_entry) free_entry = &cell_cache.entries[id_ % 4];  // rare: a thread in more than 4 registries
    *free_entry = {id_, cell, exclusive};
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

Registry::Snapshot Registry::snapshot() const {
    // Regions: this one, then the directory's others.
    std::vector<Mapped> others;
    std::vector<const Region*> regions{region_};
    if (!directory_.empty()) {
        if (DIR* d = ::opendir(directory_.c_str())) {
            while (const dirent* e = ::readdir(d)) {
                const std::string_view n(e->d_name);
                if (n.size() < 9 || n.substr(n.size() - 8) != ".metrics") continue;
                const std::string path = directory_ + "/" + std::string(n);
                if (path == file_) continue;
                Mapped m = map_file(path);
                if (m.region) others.push_back(std::move(m));
            }
            ::closedir(d);
        }
        for (const Mapped& m : others) regions.push_back(m.region);
    }

    Snapshot out;
    std::map<std::string, std::size_t, std::less<>> family_index;
    std::vector<std::map<std::string, MergedSeries, std::less<>>> series;
    for (const Region* r : regions) {
        const RegionHeader& h = r->header;
        const bool live = r == region_ || (h.closed.load(std::memory_order_acquire) == 0 && pid_alive(h.pid));
        if (live) {
            out.live_pids.push_back(h.pid);
            if (out.start_time == 0 || h.start_time < out.start_time) out.start_time = h.start_time;
        }
        out.dropped += h.dropped.load(std::memory_order_relaxed);
        const std::uint32_t family_count = std::min<std::uint32_t>(h.family_count.load(std::memory_order_acquire),
                                                                   static_cast<std::uint32_t>(max_families));
        std::vector<std::size_t> local_to_merged(family_count, SIZE_MAX);
        std::vector<bool> floating(family_count, false);
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
                    MergedSeries ms;
                    ms.labels = std::string(labels);
                    ms.buckets.assign(fam.bounds.size() + 1, 0);
                    it = bucket_map.emplace(ms.labels, std::move(ms)).first;
                }
                MergedSeries& ms = it->second;
                const std::uint64_t v = s.value.load(std::memory_order_relaxed);
                if (floating[s.family] && fam.kind != Kind::histogram) {
                    ms.value += std::bit_cast<double>(v);
                } else if (fam.kind == Kind::counter) {
                    ms.value += static_cast<double>(v);
                } else if (fam.kind == Kind::gauge) {
                    ms.value += static_cast<double>(static_cast<std::int64_t>(v));
                } else {
                    // Buckets first, then the count: a concurrent observation never shows a count larger than
                    // the buckets' sum (the +Inf bucket is derived from the buckets, see exposition).
                    for (std::size_t b = 0; b <= fam.bounds.size(); ++b)
                        ms.buckets[b] += s.buckets[b].load(std::memory_order_relaxed);
                    ms.count += v;
                    ms.sum += std::bit_cast<double>(s.sum.load(std::memory_order_relaxed));
                }
            }
        }
    }
    for (std::size_t i = 0; i < out.families.size(); ++i)
        for (auto& [labels, s] : series[i]) out.families[i].series.push_back(std::move(s));
    return out;
}

}  // namespace covet::metrics
