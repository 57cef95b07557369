// The registry: buckets, merging across threads and across region files, gauges of closed regions, label
// bounding, and the exposition's text.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>

#include <array>
#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "covet/metrics/exposition.hpp"
#include "covet/metrics/http_metrics.hpp"
#include "covet/metrics/registry.hpp"

namespace m = covet::metrics;

namespace {

void no_labels(const void*, std::string&) {}
void route_label(const void* context, std::string& out) {
    m::append_label(out, "route", *static_cast<const std::string_view*>(context));
}

const m::Registry::MergedFamily* find(const m::Registry::Snapshot& s, std::string_view name) {
    for (const auto& f : s.families)
        if (f.name == name) return &f;
    return nullptr;
}

// A directory for region files, removed afterwards.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        char tmpl[] = "/tmp/covet-metrics-test-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST(MetricsRegistry, HistogramBucketsAreUpperInclusive) {
    m::Registry r;
    const std::array<double, 3> bounds = {0.1, 1, 10};
    const m::FamilyId h = r.family("test_seconds", "help", m::Kind::histogram, bounds);
    for (const double v : {0.05, 0.1, 0.5, 1.0, 5.0, 100.0}) {
        m::SeriesRef s = r.series(h, 0, no_labels, nullptr);
        ASSERT_TRUE(s);
        s.observe(r.bucket_of(h, v), v);
    }
    const auto snap = r.snapshot();
    const auto* f = find(snap, "test_seconds");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(f->series.size(), 1u);
    EXPECT_EQ(f->series[0].buckets, (std::vector<std::uint64_t>{2, 2, 1, 1}));  // <=0.1, <=1, <=10, +Inf
    EXPECT_EQ(f->series[0].count, 6u);
    EXPECT_DOUBLE_EQ(f->series[0].sum, 106.65);
}

TEST(MetricsRegistry, FamiliesAreIdempotentAndCheckedByName) {
    m::Registry r;
    const m::FamilyId a = r.family("requests", "h", m::Kind::counter);
    EXPECT_EQ(r.family("requests", "other help", m::Kind::counter), a);
    EXPECT_THROW(r.family("requests", "h", m::Kind::gauge), std::invalid_argument);
    EXPECT_THROW(r.family("9bad", "h", m::Kind::counter), std::invalid_argument);
    EXPECT_THROW(r.family("bad-name", "h", m::Kind::counter), std::invalid_argument);
    const std::array<double, 2> unsorted = {2, 1};
    EXPECT_THROW(r.family("h2", "h", m::Kind::histogram, unsorted), std::invalid_argument);
}

TEST(MetricsRegistry, ThreadsRecordInTheirOwnCellsAndTheScrapeMergesThem) {
    m::Registry r;
    const m::FamilyId c = r.family("hits", "h", m::Kind::counter);
    constexpr int threads = 4, per_thread = 10000;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            const std::string_view route = t % 2 ? "/a" : "/b";
            for (int i = 0; i < per_thread; ++i) {
                m::SeriesRef s = r.series(c, t % 2, route_label, &route);
                ASSERT_TRUE(s.exclusive);  // each thread has a cell of its own
                s.add();
            }
        });
    for (auto& t : pool) t.join();
    const auto snap = r.snapshot();
    const auto* f = find(snap, "hits");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(f->series.size(), 2u);
    EXPECT_EQ(f->series[0].labels, R"(route="/a")");
    EXPECT_EQ(f->series[0].value, threads / 2 * per_thread);
    EXPECT_EQ(f->series[1].value, threads / 2 * per_thread);
}

TEST(MetricsRegistry, SharedCellTakesConcurrentWriters) {
    m::Registry r;
    const m::FamilyId c = r.family("shared_hits", "h", m::Kind::counter);
    std::vector<std::thread> pool;
    for (int t = 0; t < 4; ++t)
        pool.emplace_back([&] {
            for (int i = 0; i < 5000; ++i) r.shared_series(c, 7, no_labels, nullptr).add();
        });
    for (auto& t : pool) t.join();
    EXPECT_EQ(find(r.snapshot(), "shared_hits")->series.at(0).value, 20000);
}

TEST(MetricsRegistry, RegionsOfOneDirectoryMergeAndClosedOnesKeepCountersButNotGauges) {
    TempDir dir;
    auto first = std::make_unique<m::Registry>(dir.path.string());
    m::Registry second(dir.path.string());
    for (m::Registry* r : {first.get(), &second}) {
        const m::FamilyId c = r->family("served", "h", m::Kind::counter);
        const m::FamilyId g = r->family("open_now", "h", m::Kind::gauge);
        std::thread([&] {  // a thread of its own: a cell in each registry
            r->series(c, 0, no_labels, nullptr).add(5);
            r->series(g, 0, no_labels, nullptr).gauge_add(2);
        })
            .join();
    }
    auto snap = second.snapshot();
    EXPECT_EQ(find(snap, "served")->series.at(0).value, 10);
    EXPECT_EQ(find(snap, "open_now")->series.at(0).value, 4);
    // The two regions and the retired one (where exited processes' counters are folded).
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path), {}), 3);

    first.reset();  // the process exited: its file stays, its gauges leave the sum
    snap = second.snapshot();
    EXPECT_EQ(find(snap, "served")->series.at(0).value, 10);  // counters never go backwards
    EXPECT_EQ(find(snap, "open_now")->series.at(0).value, 2);
}

namespace {

std::size_t files_in(const std::filesystem::path& dir) {
    return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator(dir), {}));
}

// A worker process: records `n` requests (a counter and a histogram with an integer sum) in a region of `dir`,
// burns some CPU, then exits normally (`kill`: waits to be SIGKILLed instead). Returns its pid.
pid_t worker(const std::filesystem::path& dir, int n, bool kill, int ready_pipe) {
    const pid_t pid = ::fork();
    if (pid != 0) return pid;
    {
        m::Registry r(dir.string());
        const m::FamilyId c = r.family("served", "h", m::Kind::counter);
        const std::array<double, 2> bounds = {64, 1024};
        const m::FamilyId h = r.family("sizes_bytes", "h", m::Kind::histogram, bounds, false, 1);
        const std::string_view route = n % 2 ? "/odd" : "/even";
        for (int i = 0; i < n; ++i) {
            r.series(c, 0, no_labels, nullptr).add();
            r.series(h, 7, route_label, &route).observe_units(1, 100);
        }
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(20);
        volatile std::uint64_t spin = 0;
        while (std::chrono::steady_clock::now() < until) spin = spin + 1;
        if (kill) {
            const char c1 = 1;
            (void)!::write(ready_pipe, &c1, 1);
            for (;;) ::pause();
        }
        r.close();
    }
    ::_exit(0);
}

double served(const m::Registry::Snapshot& s) {
    const auto* f = find(s, "served");
    return f && !f->series.empty() ? f->series.at(0).value : 0;
}

}  // namespace

// Workers that exit (normally or SIGKILLed) are folded into one retired region and their files deleted: the
// directory's file count stays bounded however many restart, and the counters, histograms and CPU time of the
// group never go backwards.
TEST(MetricsRegistry, ExitedProcessesAreFoldedIntoOneRetiredRegion) {
    TempDir dir;
    m::Registry scraper(dir.path.string());
    double last_cpu = 0, last_served = 0;
    std::uint64_t expected = 0;
    for (int i = 1; i <= 12; ++i) {
        const bool kill = i % 3 == 0;
        int pipe_fds[2];
        ASSERT_EQ(::pipe(pipe_fds), 0);
        const pid_t pid = worker(dir.path, i, kill, pipe_fds[1]);
        ASSERT_GT(pid, 0);
        expected += static_cast<std::uint64_t>(i);
        if (kill) {
            char c = 0;
            ASSERT_EQ(::read(pipe_fds[0], &c, 1), 1);
            const auto live = scraper.snapshot();  // seen alive: its CPU time is kept in its region from here
            EXPECT_EQ(served(live), static_cast<double>(expected));
            EXPECT_GE(live.cpu_seconds, last_cpu);
            last_cpu = live.cpu_seconds;
            ::kill(pid, SIGKILL);
        }
        ::close(pipe_fds[0]);
        ::close(pipe_fds[1]);
        int status = 0;
        ASSERT_EQ(::waitpid(pid, &status, 0), pid);
        const auto snap = scraper.snapshot();
        EXPECT_EQ(served(snap), static_cast<double>(expected)) << "after worker " << i;
        EXPECT_GE(served(snap), last_served);
        EXPECT_GE(snap.cpu_seconds, last_cpu) << "after worker " << i;
        last_served = served(snap);
        last_cpu = snap.cpu_seconds;
        EXPECT_EQ(files_in(dir.path), 2u) << "the scraper's region and the retired one";
    }
    const auto snap = scraper.snapshot();
    const auto* sizes = find(snap, "sizes_bytes");
    ASSERT_NE(sizes, nullptr);
    ASSERT_EQ(sizes->series.size(), 2u);  // /even and /odd, each folded into one series by its labels
    std::uint64_t count = 0;
    double sum = 0;
    for (const auto& s : sizes->series) {
        count += s.count;
        sum += s.sum;
        EXPECT_EQ(s.buckets.at(0), 0u);
        EXPECT_EQ(s.buckets.at(1), s.count);  // 100 bytes: <= 1024
    }
    EXPECT_EQ(count, expected);
    EXPECT_DOUBLE_EQ(sum, 100.0 * static_cast<double>(expected));
    // Each worker burnt 20 ms; those that exited normally kept their whole CPU time at exit.
    EXPECT_GT(snap.cpu_seconds, 0.1);
    // The supervisor's fold, without a scrape: one more worker gone, its file deleted.
    const pid_t pid = worker(dir.path, 1, false, -1);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_EQ(files_in(dir.path), 3u);
    scraper.retire_dead();
    EXPECT_EQ(files_in(dir.path), 2u);
    EXPECT_EQ(served(scraper.snapshot()), static_cast<double>(expected + 1));
}

// The engine's histograms record integers (nanoseconds, bytes) and show seconds and bytes.
TEST(MetricsLabels, EngineHistogramsRecordIntegersAndShowSecondsAndBytes) {
    m::HttpSeriesCache cache;
    for (int i = 0; i < 3; ++i) {
        cache.begin(0, false, 1);
        cache.route(m::route_id("/integer/{id}"));
        cache.end(200, m::ErrorType::none, 7'500'000 /* 7.5 ms */, 0, 65);
    }
    const std::string text = m::render(m::Registry::global().snapshot(), m::Format::prometheus);
    const std::string labels =
        R"({http_request_method="GET",url_scheme="http",http_route="/integer/{id}",http_response_status_code="200",network_protocol_version="1.1")";
    EXPECT_NE(text.find("http_server_request_duration_seconds_bucket" + labels + R"(,le="0.005"} 0)"),
              std::string::npos);
    EXPECT_NE(text.find("http_server_request_duration_seconds_bucket" + labels + R"(,le="0.01"} 3)"),
              std::string::npos);
    EXPECT_NE(text.find("http_server_request_duration_seconds_sum" + labels + "} 0.0225"), std::string::npos);
    EXPECT_NE(text.find("http_server_request_duration_seconds_count" + labels + "} 3"), std::string::npos);
    EXPECT_NE(text.find("http_server_response_body_size_bytes_bucket" + labels + R"(,le="256"} 3)"), std::string::npos);
    EXPECT_NE(text.find("http_server_response_body_size_bytes_sum" + labels + "} 195"), std::string::npos);
    EXPECT_NE(text.find(R"(http_server_active_requests{http_request_method="GET",url_scheme="http"} 0)"),
              std::string::npos);
}

TEST(MetricsRegistry, AThreadGoesOnInMoreCellsThenDropsNewSeriesAndCountsThem) {
    // An app with many routes records more series than one cell holds: the thread takes further cells (8 in all,
    // each filled to 3/4), finds every earlier series again, and only then drops new ones.
    m::Registry r;
    const m::FamilyId c = r.family("many", "h", m::Kind::counter);
    constexpr std::uint64_t per_thread = 8 * m::cell_capacity * 3 / 4;
    std::thread([&] {
        for (std::uint64_t k = 0; k < per_thread + 10; ++k) {
            if (m::SeriesRef s = r.series(c, k, no_labels, nullptr)) s.add();
        }
        for (std::uint64_t k = 0; k < per_thread; k += 97) {  // found again, in whichever cell holds it
            m::SeriesRef s = r.series(c, k, no_labels, nullptr);
            ASSERT_TRUE(s) << k;
            s.add();
        }
    }).join();
    const auto snap = r.snapshot();
    EXPECT_EQ(snap.dropped, 10u);
    const auto* f = find(snap, "many");
    ASSERT_NE(f, nullptr);
    // One merged series (no labels) holding every recorded add: each key once, every 97th twice.
    double total = 0;
    for (const auto& series : f->series) total += series.value;
    EXPECT_EQ(total, static_cast<double>(per_thread + (per_thread + 96) / 97));
}

TEST(MetricsRegistry, ThreadsThatComeAndGoReuseTheCellsOfExitedOnes) {
    // 60 threads one after another (more than the region's 24 cells), each recording its own series and a
    // shared one: an exited thread's cells go to the next thread, so nothing falls back to the shared cell or
    // is dropped, and every count survives.
    m::Registry r;
    const m::FamilyId c = r.family("per_thread", "h", m::Kind::counter);
    for (std::uint64_t t = 0; t < 60; ++t) {
        std::thread([&] {
            if (m::SeriesRef s = r.series(c, 1000 + t, no_labels, nullptr)) s.add();
            m::SeriesRef shared = r.series(c, 7, no_labels, nullptr);
            ASSERT_TRUE(shared);
            EXPECT_TRUE(shared.exclusive) << "thread " << t << " fell back to the shared cell";
            shared.add();
        }).join();
    }
    const auto snap = r.snapshot();
    EXPECT_EQ(snap.dropped, 0u);
    const auto* f = find(snap, "per_thread");
    ASSERT_NE(f, nullptr);
    double total = 0;
    for (const auto& series : f->series) total += series.value;
    EXPECT_EQ(total, 120.0);
}

TEST(MetricsLabels, RoutesAreTemplatesAndCatchAllsAreEmpty) {
    EXPECT_EQ(m::route_id("/{covet_unmatched:path}"), 0);
    EXPECT_EQ(m::route_id(""), 0);
    const std::uint16_t id = m::route_id("/users/{id:int}");
    EXPECT_NE(id, 0);
    EXPECT_EQ(m::route_id("/users/{id:int}"), id);
    EXPECT_EQ(m::route_template(id), "/users/{id}");  // the template as declared, without converters
    EXPECT_EQ(m::route_id("/users/{id}"), id);        // a typed route and its untyped fallback: one label
    EXPECT_EQ(m::route_template(0), "");
}

TEST(MetricsLabels, UnknownMethodsAndStatusesAreOther) {
    std::thread([] {
        m::HttpExchange x;
        x.method = m::method_other;
        x.status = 1234;
        x.version = 2;
        m::finished_request(x, 0.003, 0, 10);
        x.method = 0;
        x.status = 503;
        x.error = m::ErrorType::status;
        m::finished_request(x, 0.2, 5, 10);
    }).join();
    const std::string text = m::scrape(m::Format::prometheus);
    EXPECT_NE(text.find(R"(http_server_request_duration_seconds_count{http_request_method="_OTHER",url_scheme="http",)"
                        R"(http_route="",http_response_status_code="_OTHER",network_protocol_version="2"} 1)"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find(R"(http_response_status_code="503",network_protocol_version="2",error_type="503"} 1)"),
              std::string::npos);
}

// Every line of the text format is a comment (# HELP/# TYPE) or `name{labels} value`, histograms are
// cumulative and end in +Inf equal to _count; OpenMetrics types counters without _total and ends in # EOF.
TEST(MetricsExposition, TextFormatsAreWellFormed) {
    m::Registry r;
    const std::array<double, 2> bounds = {0.5, 1};
    const m::FamilyId c = r.family("jobs", "Jobs done.\nSecond line", m::Kind::counter);
    const m::FamilyId h = r.family("job_seconds", "Job time.", m::Kind::histogram, bounds);
    const std::string_view weird = "a\"b\\c\nd";
    r.series(c, 1, route_label, &weird).add(3);
    for (const double v : {0.25, 0.75, 3.0}) r.series(h, 0, no_labels, nullptr).observe(r.bucket_of(h, v), v);
    const auto snap = r.snapshot();

    const std::string prom = m::render(snap, m::Format::prometheus);
    const std::regex sample_line(
        R"re(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? [-+0-9.eEInfa]+$)re");
    std::istringstream lines(prom);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) continue;
        EXPECT_TRUE(std::regex_match(line, sample_line)) << line;
    }
    EXPECT_NE(prom.find("# HELP jobs_total Jobs done.\\nSecond line\n# TYPE jobs_total counter\n"), std::string::npos);
    EXPECT_NE(prom.find(R"(jobs_total{route="a\"b\\c\nd"} 3)"), std::string::npos) << prom;
    EXPECT_NE(prom.find("job_seconds_bucket{le=\"0.5\"} 1\njob_seconds_bucket{le=\"1\"} 2\n"
                        "job_seconds_bucket{le=\"+Inf\"} 3\njob_seconds_sum 4\njob_seconds_count 3\n"),
              std::string::npos)
        << prom;

    const std::string om = m::render(snap, m::Format::openmetrics);
    EXPECT_NE(om.find("# TYPE jobs counter\n"), std::string::npos);
    EXPECT_NE(om.find("job_seconds_bucket{le=\"1.0\"} 2\n"), std::string::npos) << om;
    EXPECT_EQ(om.substr(om.size() - 6), "# EOF\n");
    EXPECT_EQ(m::negotiate("application/openmetrics-text; version=1.0.0,text/plain;q=0.5"), m::Format::openmetrics);
    EXPECT_EQ(m::negotiate("text/plain"), m::Format::prometheus);
    EXPECT_EQ(m::negotiate(""), m::Format::prometheus);
}

// The Accept header's q-values decide (RFC 9110 §12.5.1), not the mere mention of OpenMetrics.
TEST(MetricsExposition, NegotiationWeighsTheQValues) {
    // Prometheus 3's scrape header: OpenMetrics first
    EXPECT_EQ(m::negotiate("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
                           "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;"
                           "escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"),
              m::Format::openmetrics);
    EXPECT_EQ(m::negotiate("Application/OpenMetrics-Text"), m::Format::openmetrics);  // media types ignore case
    EXPECT_EQ(m::negotiate("application/openmetrics-text;q=0, text/plain"), m::Format::prometheus);
    EXPECT_EQ(m::negotiate("text/plain;q=0, application/openmetrics-text;q=0"), m::Format::prometheus);
    EXPECT_EQ(m::negotiate("text/plain, application/openmetrics-text;q=0.5"), m::Format::prometheus);
    EXPECT_EQ(m::negotiate("*/*, application/openmetrics-text;q=0.9"), m::Format::prometheus);
    EXPECT_EQ(m::negotiate("application/openmetrics-text, */*;q=0.1"), m::Format::openmetrics);
    // the most specific range gives text/plain's q: 0.1 here, whatever */* offers
    EXPECT_EQ(m::negotiate("application/openmetrics-text;q=0.5, text/plain;q=0.1, */*;q=0.9"), m::Format::openmetrics);
    EXPECT_EQ(m::negotiate("application/openmetrics-text;q=0.5, text/*;q=0.6, */*;q=0.1"), m::Format::prometheus);
    EXPECT_EQ(m::negotiate("application/openmetrics-text;q=bad"), m::Format::prometheus);  // malformed: ignored
    EXPECT_EQ(m::negotiate("application/json"), m::Format::prometheus);
}

TEST(MetricsExposition, ProcessStatsReadProc) {
    const int self = ::getpid();
    const m::ProcessStats s = m::process_stats(std::span<const int>(&self, 1));
    EXPECT_TRUE(s.known);
    EXPECT_GT(s.resident_bytes, 1e6);
}
