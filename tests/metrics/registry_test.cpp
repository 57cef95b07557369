// The registry: buckets, merging across threads and across region files, gauges of closed regions, label
// bounding, and the exposition's text.
#include <gtest/gtest.h>
#include <unistd.h>

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
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path), {}), 2);

    first.reset();  // the process exited: its file stays, its gauges leave the sum
    snap = second.snapshot();
    EXPECT_EQ(find(snap, "served")->series.at(0).value, 10);  // counters never go backwards
    EXPECT_EQ(find(snap, "open_now")->series.at(0).value, 2);
}

TEST(MetricsRegistry, AFullCellDropsNewSeriesAndCountsThem) {
    m::Registry r;
    const m::FamilyId c = r.family("many", "h", m::Kind::counter);
    std::thread([&] {
        for (std::uint64_t k = 0; k < m::cell_capacity + 10; ++k) {
            if (m::SeriesRef s = r.series(c, k, no_labels, nullptr)) s.add();
        }
    }).join();
    const auto snap = r.snapshot();
    EXPECT_EQ(snap.dropped, 10u);
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

TEST(MetricsExposition, ProcessStatsReadProc) {
    const int self = ::getpid();
    const m::ProcessStats s = m::process_stats(std::span<const int>(&self, 1));
    EXPECT_TRUE(s.known);
    EXPECT_GT(s.resident_bytes, 1e6);
}
