#include "covet/net/server.hpp"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <csignal>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../logging.hpp"
#include "covet/net/listener.hpp"
#include "covet/net/tls_context.hpp"
#include "worker.hpp"

namespace covet::net {

struct Server::Impl {
    ServerConfig config;
    ProtocolFactory factory;
    PortDatagramFactory datagrams;             // HTTP/3 (set_datagram_factory), or empty
    std::function<void(std::uint16_t)> bound;  // on_bound
    std::function<void()> tls_reloaded;        // on_reload_tls
    std::unique_ptr<TlsContext> tls;           // declared before the workers: destroyed after them
    std::unique_ptr<ClientLimiter> limiter;    // the same; null without ServerConfig::client_limits
    io::Backend backend = io::Backend::asio;
    std::uint16_t port = 0;
    std::vector<int> listeners;
    std::vector<std::unique_ptr<Worker>> workers;
    // Each worker's sweep-timer stamp (Worker::set_tick_stamp), by index: made before the workers run and never
    // moved, so another thread (liveness) reads them while a worker is replaced (the io_uring -> asio fallback).
    std::unique_ptr<std::atomic<io::Clock::rep>[]> ticks;
    unsigned tick_count = 0;
    std::vector<std::thread> threads;
    std::mutex mutex;
    std::condition_variable cv;
    unsigned started = 0, failed = 0;
    std::string failure;
    bool stopped = false;
    bool embedded = false;

    // The first worker's listener. For port 0 with HTTP/3 on the same port number, a port also free on UDP: the
    // kernel picks the TCP port alone, and a UDP socket (a client's, another server's) may hold that number.
    int open_first_listener() const {
        const ServerConfig& cfg = config;
        const bool udp_follows = cfg.port == 0 && datagrams && cfg.http3.port == 0 &&
                                 cfg.http3.inherited_sockets.empty() && !cfg.shared_port;
        for (int attempt = 1;; ++attempt) {
            const int fd = open_listener(cfg.host, cfg.port, cfg.listen_backlog, cfg.shared_port);
            if (!udp_follows || attempt == 32 || udp_port_free(cfg.host, bound_port(fd))) return fd;
            ::close(fd);  // another pick; after 32 the endpoint's bind names the clash
        }
    }

    // One listener per worker: SO_REUSEPORT siblings bound here, or duplicates of an inherited socket.
    void open_listeners(unsigned count) {
        const ServerConfig& cfg = config;
        for (unsigned i = 0; i < count; ++i) {
            if (cfg.inherited_listener >= 0)
                listeners.push_back(adopt_listener(cfg.inherited_listener));
            else if (i == 0)
                listeners.push_back(open_first_listener());
            else
                listeners.push_back(open_listener(cfg.host, port, cfg.listen_backlog, /*join_existing=*/true));
            if (i == 0) port = bound_port(listeners[0]);
        }
    }

    void run_worker(unsigned i) {
        if (config.pin_threads) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(i % std::max(1u, std::thread::hardware_concurrency()), &set);
            pthread_setaffinity_np(pthread_self(), sizeof set, &set);
        }
        workers[i]->on_ready([this] { report_started(); });
        try {
            workers[i]->run();
        } catch (const ServiceStartError& e) {  // e.g. the HTTP/3 port is taken: another backend would not help
            logging::critical("worker {} stopped: {}", i, e.what());
            report_failed(e.what());
        } catch (const std::exception& e) {
            if (backend == io::Backend::uring && workers[i]->live_connections() == 0) {
                // The probe passed but this ring could not be set up (e.g. memory limits): degrade, don't die.
                logging::warn("worker {}: io_uring failed ({}); this worker falls back to asio", i, e.what());
                try {
                    workers[i] = make_asio_worker(i, config, listeners[i], factory);
                    workers[i]->set_tick_stamp(&ticks[i]);
                    equip(*workers[i]);
                    workers[i]->on_ready([this] { report_started(); });
                    workers[i]->run();
                    return;
                } catch (const std::exception& e2) {
                    logging::critical("worker {} stopped: {}", i, e2.what());
                }
            } else {
                logging::critical("worker {} stopped: {}", i, e.what());
            }
            report_failed(e.what());
        }
    }

    // What every worker gets before it runs: the TLS context, the client limiter, the datagram service.
    void equip(Worker& w) const {
        w.set_tls(tls.get());
        w.set_client_limiter(limiter.get());
        if (datagrams) w.set_datagram_factory([f = datagrams, p = port](DatagramHost& host) { return f(host, p); });
    }

    // The liveness stamps, one per worker made (before they run), each started at now.
    void make_ticks() {
        tick_count = static_cast<unsigned>(workers.size());
        ticks = std::make_unique<std::atomic<io::Clock::rep>[]>(tick_count);
        const io::Clock::rep now = io::Clock::now().time_since_epoch().count();
        for (unsigned i = 0; i < tick_count; ++i) {
            ticks[i].store(now, std::memory_order_relaxed);
            workers[i]->set_tick_stamp(&ticks[i]);
        }
    }

    // A worker that could not start must not leave start() waiting forever.
    void report_failed(const std::string& what) {
        std::lock_guard lock(mutex);
        ++failed;
        failure = what;
        cv.notify_all();
    }

    // One context for all workers, loaded before anything is bound so that a certificate error is the
    // first (and only) thing start() reports.
    void make_tls() {
        if (!config.tls || tls) return;
        std::vector<std::string> alpn =
            config.http2 ? std::vector<std::string>{"h2", "http/1.1"} : std::vector<std::string>{"http/1.1"};
        tls = std::make_unique<TlsContext>(*config.tls, std::move(alpn));
    }
    void make_limiter() {
        if (config.client_limits.any() && !limiter) limiter = std::make_unique<ClientLimiter>(config.client_limits);
    }

    void stop_workers() noexcept {
        for (auto& w : workers) w->request_stop();
    }

    void join_workers() {
        for (auto& t : threads)
            if (t.joinable()) t.join();
    }

    // After a failed start: the workers stopped and joined, the listeners closed (the port free at once, not when
    // the Server goes), so that the caller may report the error and start() again.
    void release() noexcept {
        stop_workers();
        join_workers();
        threads.clear();
        workers.clear();
        for (int fd : listeners) ::close(fd);
        listeners.clear();
        port = 0;
        std::lock_guard lock(mutex);
        started = failed = 0;
        failure.clear();
    }

    void report_started() {
        std::lock_guard lock(mutex);
        ++started;
        cv.notify_all();
    }
};

Server::Server(ServerConfig config, ProtocolFactory factory) : impl_(std::make_unique<Impl>()) {
    impl_->config = std::move(config);
    impl_->factory = std::move(factory);
}

Server::~Server() {
    stop();
    wait();
    for (int fd : impl_->listeners) ::close(fd);
}

void Server::start() {
    Impl& s = *impl_;
    if (!s.workers.empty()) return;
    ServerConfig& cfg = s.config;
    if (cfg.threads == 0) cfg.threads = std::max(1u, std::thread::hardware_concurrency());
    s.backend = io::select_backend(cfg.backend);
    s.make_tls();
    s.make_limiter();

    try {
        // Bind every listener first: a port-0 request resolves to one port that all workers share.
        s.open_listeners(cfg.threads);
        if (s.bound) s.bound(s.port);

        for (unsigned i = 0; i < cfg.threads; ++i)
            s.workers.push_back(s.backend == io::Backend::uring ? make_uring_worker(i, cfg, s.listeners[i], s.factory)
                                                                : make_asio_worker(i, cfg, s.listeners[i], s.factory));
        s.make_ticks();
        for (auto& w : s.workers) s.equip(*w);

        // Workers never take SIGINT/SIGTERM/SIGHUP: the thread that waits for them does
        // (wait_for_termination_signal, and App::run for SIGHUP).
        sigset_t block, previous;
        sigemptyset(&block);
        sigaddset(&block, SIGINT);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGPIPE);
        sigaddset(&block, SIGHUP);  // certificate reload: taken by the thread in App::run, or default there
        pthread_sigmask(SIG_BLOCK, &block, &previous);
        struct RestoreMask {
            const sigset_t& mask;
            ~RestoreMask() { pthread_sigmask(SIG_SETMASK, &mask, nullptr); }
        } restore{previous};
        for (unsigned i = 0; i < cfg.threads; ++i) s.threads.emplace_back([&s, i] { s.run_worker(i); });
    } catch (...) {
        s.release();
        throw;
    }

    std::unique_lock lock(s.mutex);
    s.cv.wait(lock, [&] { return s.started + s.failed >= cfg.threads; });
    if (s.failed) {
        const std::string why = "covet: " + std::to_string(s.failed) + " worker(s) failed to start: " + s.failure;
        lock.unlock();
        s.release();
        throw std::runtime_error(why);
    }
    logging::info("listening on {}:{} backend={} threads={}", cfg.host, s.port, io::to_string(s.backend), cfg.threads);
}

void Server::start_embedded() {
    Impl& s = *impl_;
    if (!s.workers.empty()) return;
    ServerConfig& cfg = s.config;
    cfg.threads = 1;
    s.backend = io::select_backend(cfg.backend);
    if (s.backend != io::Backend::uring)
        throw std::runtime_error(
            "covet: running on the caller's event loop needs the io_uring backend, and "
            "this process uses asio; start() with a thread instead");
    s.make_tls();
    s.make_limiter();
    try {
        s.open_listeners(1);
        if (s.bound) s.bound(s.port);
        s.workers.push_back(make_uring_worker(0, cfg, s.listeners[0], s.factory));
        s.make_ticks();
        s.equip(*s.workers[0]);
        s.workers[0]->open_embedded();
    } catch (...) {
        s.release();
        throw;
    }
    s.embedded = true;
    logging::info("listening on {}:{} backend={} on the caller's loop", cfg.host, s.port, io::to_string(s.backend));
}

void Server::set_datagram_factory(PortDatagramFactory factory) { impl_->datagrams = std::move(factory); }
void Server::on_bound(std::function<void(std::uint16_t)> fn) { impl_->bound = std::move(fn); }
void Server::on_reload_tls(std::function<void()> fn) { impl_->tls_reloaded = std::move(fn); }

bool Server::embedded() const noexcept { return impl_->embedded; }
int Server::poll_fd() const noexcept { return impl_->embedded ? impl_->workers[0]->poll_fd() : -1; }
bool Server::poll() { return impl_->embedded && impl_->workers[0]->poll(); }
bool Server::flush() { return impl_->embedded && impl_->workers[0]->flush(); }
void Server::on_output(std::function<void()> hook) {
    if (impl_->embedded) impl_->workers[0]->on_output(std::move(hook));
}

void Server::stop() { impl_->stop_workers(); }

void Server::wait() { impl_->join_workers(); }

void Server::reload_tls() {
    // The context is created by start() and lives until the Server does; reload() locks internally.
    if (!impl_->tls)
        throw std::runtime_error(
            "covet: reload_tls(): TLS is not configured (ServerConfig::tls) or the server is not started");
    impl_->tls->reload();
    if (impl_->tls_reloaded) impl_->tls_reloaded();
}

std::chrono::milliseconds Server::longest_stall() const noexcept {
    const Impl& s = *impl_;
    const io::Clock::rep now = io::Clock::now().time_since_epoch().count();
    io::Clock::rep longest = 0;
    for (unsigned i = 0; i < s.tick_count; ++i)
        longest = std::max(longest, now - s.ticks[i].load(std::memory_order_relaxed));
    return std::chrono::duration_cast<std::chrono::milliseconds>(io::Clock::duration(longest));
}

std::uint16_t Server::port() const noexcept { return impl_->port; }
io::Backend Server::backend() const noexcept { return impl_->backend; }
unsigned Server::threads() const noexcept { return impl_->config.threads; }
const ServerConfig& Server::config() const noexcept { return impl_->config; }

namespace {
sigset_t termination_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    return set;
}
}  // namespace

void block_termination_signals() {
    sigset_t set = termination_signals();
    sigaddset(&set, SIGHUP);  // App::run takes it: reload TLS certificates (threads started earlier inherit this)
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int wait_for_termination_signal(const std::function<bool()>& stop_requested) {
    block_termination_signals();
    const sigset_t set = termination_signals();
    const timespec tick{0, 100'000'000};
    while (!(stop_requested && stop_requested())) {
        const int sig = sigtimedwait(&set, nullptr, &tick);
        if (sig > 0) return sig;
    }
    return 0;
}

}  // namespace covet::net
