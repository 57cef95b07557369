// See runtime_metrics.hpp. Both record into the process's metrics registry (its shared cell: they run on
// whatever thread collects, or on the probe's own thread), so they land in /_metrics with the engine's.
#include "runtime_metrics.hpp"

#include <array>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "covet/metrics/registry.hpp"

namespace py = pybind11;
namespace metrics = covet::metrics;

namespace covet_py {
namespace {

using Clock = std::chrono::steady_clock;

// Pauses from 10 µs (a young collection) to 1 s (a full one over a large heap).
constexpr std::array<double, 15> pause_bounds{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                              0.005,   0.01,     0.025,   0.05,   0.1,     0.25,   1.0};

void write_generation(const void* context, std::string& out) {
    metrics::append_label(out, "generation", *static_cast<const std::string*>(context));
}
void write_nothing(const void*, std::string&) {}

// The series of the GC families, per generation, looked up once (shared-cell slots never move).
struct GcSeries {
    metrics::FamilyId pause, collections, collected, uncollectable;
    std::array<metrics::SeriesRef, 3> pause_of{}, collections_of{}, collected_of{}, uncollectable_of{};

    GcSeries() {
        metrics::Registry& r = metrics::Registry::global();
        pause = r.family("python_gc_pause_seconds", "Time the cyclic garbage collector stopped the interpreter.",
                         metrics::Kind::histogram, pause_bounds);
        collections =
            r.family("python_gc_collections", "Collections of the cyclic garbage collector.", metrics::Kind::counter);
        collected = r.family("python_gc_objects_collected", "Objects the cyclic garbage collector freed.",
                             metrics::Kind::counter);
        uncollectable = r.family("python_gc_objects_uncollectable",
                                 "Objects the cyclic garbage collector found uncollectable.", metrics::Kind::counter);
        for (std::size_t g = 0; g < 3; ++g) {
            const std::string label = std::to_string(g);
            pause_of[g] = r.shared_series(pause, g, write_generation, &label);
            collections_of[g] = r.shared_series(collections, g, write_generation, &label);
            collected_of[g] = r.shared_series(collected, g, write_generation, &label);
            uncollectable_of[g] = r.shared_series(uncollectable, g, write_generation, &label);
        }
    }
    static GcSeries& get() {
        static GcSeries series;
        return series;
    }
};

// gc.callbacks entry: ("start"|"stop", {"generation": g, "collected": n, "uncollectable": n}). The GIL is held
// and collections do not nest, so one start time serves.
Clock::time_point gc_started{};

void gc_callback(const py::str& phase, const py::dict& info) {
    const bool start = PyUnicode_CompareWithASCIIString(phase.ptr(), "start") == 0;
    if (start) {
        gc_started = Clock::now();
        return;
    }
    if (gc_started == Clock::time_point{}) return;  // installed during this collection: no start to time from
    const double seconds = std::chrono::duration<double>(Clock::now() - gc_started).count();
    gc_started = {};
    GcSeries& s = GcSeries::get();
    PyObject* given = PyDict_GetItemString(info.ptr(), "generation");  // borrowed; null when absent
    const long generation = given != nullptr && PyLong_Check(given) ? PyLong_AsLong(given) : -1;
    if (generation < 0 || generation > 2) {
        PyErr_Clear();
        return;
    }
    const auto g = static_cast<std::size_t>(generation);
    if (s.pause_of[g]) s.pause_of[g].observe(metrics::Registry::global().bucket_of(s.pause, seconds), seconds);
    if (s.collections_of[g]) s.collections_of[g].add();
    const auto count = [&](const char* key) -> std::uint64_t {
        PyObject* v = PyDict_GetItemString(info.ptr(), key);
        const long n = v != nullptr && PyLong_Check(v) ? PyLong_AsLong(v) : 0;
        if (n < 0) PyErr_Clear();
        return n > 0 ? static_cast<std::uint64_t>(n) : 0;
    };
    if (s.collected_of[g]) s.collected_of[g].add(count("collected"));
    if (s.uncollectable_of[g]) s.uncollectable_of[g].add(count("uncollectable"));
}

// Waits from 1 µs (the GIL was free) to 1 s; 5 ms is the interpreter's switch interval, what a thread waits
// when another one runs Python without pause.
constexpr std::array<double, 15> gil_bounds{0.000001, 0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
                                            0.001,    0.0025,   0.005,   0.01,     0.025,   0.1,    1.0};

// A native thread that, every interval, wakes up and takes the GIL, timing how long that took: the wait any
// thread (a sync handler's, a library's) sees when it needs the interpreter. It holds the GIL for no work.
class GilProbe {
public:
    explicit GilProbe(std::chrono::nanoseconds interval) : interval_(interval) {
        metrics::Registry& r = metrics::Registry::global();
        family_ = r.family("covet_gil_wait_seconds",
                           "Time a thread waking up waited for the GIL (a probe thread, every interval).",
                           metrics::Kind::histogram, gil_bounds);
        series_ = r.shared_series(family_, 0, write_nothing, nullptr);
        thread_ = std::thread([this] { run(); });
    }
    ~GilProbe() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        wake_.notify_all();
        if (thread_.joinable()) {
            if (PyGILState_Check()) {
                py::gil_scoped_release unlocked;  // the probe may be waiting for the GIL this thread holds
                thread_.join();
            } else {
                thread_.join();
            }
        }
    }
    GilProbe(const GilProbe&) = delete;
    GilProbe& operator=(const GilProbe&) = delete;

private:
    void run() {
        const PyGILState_STATE state = PyGILState_Ensure();  // a thread state of its own, kept for every tick
        PyThreadState* thread_state = PyEval_SaveThread();
        std::unique_lock lock(mutex_);
        while (!wake_.wait_for(lock, interval_, [this] { return stop_; })) {
            lock.unlock();
            const Clock::time_point woke = Clock::now();
            PyEval_RestoreThread(thread_state);
            const double waited = std::chrono::duration<double>(Clock::now() - woke).count();
            thread_state = PyEval_SaveThread();
            if (series_) series_.observe(metrics::Registry::global().bucket_of(family_, waited), waited);
            lock.lock();
        }
        lock.unlock();
        PyEval_RestoreThread(thread_state);
        PyGILState_Release(state);
    }

    std::chrono::nanoseconds interval_;
    metrics::FamilyId family_ = 0;
    metrics::SeriesRef series_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stop_ = false;
    std::thread thread_;
};

std::unique_ptr<GilProbe>& gil_probe() {
    static std::unique_ptr<GilProbe> probe;
    return probe;
}

}  // namespace

void register_runtime_metrics(py::module_& m) {
    m.def("runtime_gc_callback", &gc_callback, py::arg("phase"), py::arg("info"),
          "A gc.callbacks entry recording python_gc_pause_seconds{generation} and the collections' counts.");
    m.def(
        "runtime_gc_declare", [] { GcSeries::get(); },
        "Declares the GC families and their series (listed on /_metrics before the first collection).");
    m.def(
        "runtime_gil_probe",
        [](double interval) {
            if (!(interval > 0)) throw py::value_error("the GIL probe's interval must be > 0 seconds");
            gil_probe().reset();
            gil_probe() = std::make_unique<GilProbe>(
                std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(interval)));
        },
        py::arg("interval"),
        "Starts (or restarts) the thread measuring covet_gil_wait_seconds every `interval` seconds.");
    m.def(
        "runtime_gil_probe_stop", [] { gil_probe().reset(); },
        "Stops the GIL probe thread (call before the interpreter exits: covet.observability.runtime does, atexit).");
}

}  // namespace covet_py
