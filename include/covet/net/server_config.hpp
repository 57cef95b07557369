// Listener, limit and timeout settings of a server. Defaults follow common production servers.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "covet/io/backend.hpp"
#include "covet/net/client_limits.hpp"
#include "covet/net/proxy_protocol.hpp"
#include "covet/net/tls_config.hpp"
#include "covet/net/trusted_proxies.hpp"

namespace covet::net {

struct Limits {
    std::size_t max_url_bytes = std::size_t{8} * 1024;     // longer request line/URL → 414
    std::size_t max_header_bytes = std::size_t{8} * 1024;  // request line + headers → 431
    std::size_t max_headers = 100;                         // more header fields → 431
    std::size_t max_body_bytes = std::size_t{1024} * 1024;  // a body received whole before the handler runs: more → 413
    // Large bodies can stream to handlers that accept them (RequestDispatcher::stream_body): a body whose
    // Content-Length exceeds `stream_body_threshold` is offered to the route at its head; one without a
    // length, once it is still open after a read (or grows past the threshold within one). Accepted, it is dispatched
    // at once and its bytes reach the handler as they arrive (reading pauses while more than `max_buffered_input` of
    // them wait to be acknowledged); its size limit is `max_stream_body_bytes` instead of `max_body_bytes` (0: no
    // limit).
    std::size_t stream_body_threshold = std::size_t{64} * 1024;
    std::size_t max_stream_body_bytes = std::size_t{1} << 30;      // 1 GiB → 413
    std::size_t max_connections = 10000;                           // per process, split evenly across workers
    std::size_t max_buffered_input = std::size_t{1024} * 1024;     // pipelined input held while a response is pending
    std::size_t output_high_water = std::size_t{4} * 1024 * 1024;  // stop reading while more than this is unsent
    // A streamed response's producer (covet.StreamingResponse ...) pauses while more than this of what it
    // wrote is unsent (covet::StreamFlow), and resumes below half of it.
    std::size_t stream_send_buffer = std::size_t{1024} * 1024;
};

struct Timeouts {
    std::chrono::milliseconds header{10'000};  // first byte of a request head → its end (slowloris)
    std::chrono::milliseconds body{30'000};    // between body bytes (idle gap)
    // A request body that trickles in (one byte every few seconds never trips `body`) is ended by a data
    // rate floor, as Kestrel's MinRequestBodyDataRate: once `min_body_rate_grace` has passed since the
    // body started, the bytes received must average at least `min_body_rate` bytes/second over the whole
    // body so far, or the request gets 408 (HTTP/1.1: and the connection closes; HTTP/2: on its stream
    // only). 0 turns the floor off. Time during which the server itself stopped reading (back-pressure
    // from unsent output) does not count against the client: the window restarts.
    std::size_t min_body_rate = 240;                       // bytes/second; 0: off
    std::chrono::milliseconds min_body_rate_grace{5'000};  // body start → the floor applies
    // A hard limit on the whole body, from the end of the request head to the last body byte
    // (nginx-style). Off by default (0): a large legitimate upload over a slow link must not be cut
    // by a fixed deadline; the rate floor is what stops trickles. Set it when every body is small.
    std::chrono::milliseconds body_deadline{0};
    std::chrono::milliseconds keep_alive{60'000};  // idle between requests
    std::chrono::milliseconds shutdown{10'000};    // graceful drain deadline
};

// HTTP/2 SETTINGS and abuse limits (per connection).
struct Http2Limits {
    std::uint32_t max_concurrent_streams = 100;
    std::uint32_t initial_window_size = 1024 * 1024;  // per stream receive window (bytes)
    std::uint32_t max_frame_size = 16 * 1024;         // largest frame we accept (SETTINGS_MAX_FRAME_SIZE)
    std::uint32_t max_header_list_bytes = 16 * 1024;  // decoded header list (HPACK bombs) → stream refused
    std::uint32_t max_resets_per_second = 200;        // RST_STREAM from the client (rapid reset) → GOAWAY
    std::uint32_t max_continuations = 8;              // CONTINUATION frames per header block
    // Streamed request bodies (Limits::stream_body_threshold) on one connection: bytes delivered to their
    // handlers and not yet acknowledged (RequestBody::consume), all streams together. Over it the connection
    // window stays shut until handlers catch up, so uploads whose handlers do not read hold at most this
    // plus one connection window, not one stream window each.
    std::uint64_t max_unacked_upload_bytes = std::uint64_t{4} * 1024 * 1024;
    // Keep-alive pings (gRPC's keepalive_time and keepalive_timeout, same defaults): when nothing has come from
    // the client for `ping_interval` while a stream is open, the server sends a PING; when nothing comes back
    // within `ping_timeout` the peer is taken as gone (a dead link or host sends no FIN) and the connection
    // closes, so the handlers of its streams hear it. Connections without streams are ended by
    // Timeouts::keep_alive instead. 0: no pings.
    std::chrono::milliseconds ping_interval{std::chrono::hours{2}};
    std::chrono::milliseconds ping_timeout{20'000};
};

// HTTP/3 over QUIC (covet/http3/): a UDP socket per worker beside the TLS listener, with the same certificates
// (ServerConfig::tls is required). Off by default.
struct Http3Options {
    bool enabled = false;
    std::uint16_t port = 0;  // UDP port; 0: the TCP listener's port (what Alt-Svc advertises)
    // Alt-Svc on TCP responses, so browsers upgrade (RFC 7838): `h3=":<port>"; ma=<alt_svc_max_age>`.
    bool advertise = true;
    std::chrono::seconds alt_svc_max_age{86'400};
    std::uint64_t max_streams_bidi = 100;                              // concurrent request streams per connection
    std::uint64_t stream_window = std::uint64_t{1024} * 1024;          // per-stream receive window (bytes)
    std::uint64_t connection_window = std::uint64_t{8} * 1024 * 1024;  // per-connection receive window (bytes)
    std::chrono::milliseconds idle_timeout{30'000};                    // QUIC max_idle_timeout
    std::chrono::milliseconds handshake_timeout{10'000};
    // Address validation (RFC 9000 §8.1): a new client first gets a Retry and must echo its token, so that a
    // flood of Initials from spoofed addresses costs the server no handshake state. On for every new client
    // (`retry`), or once more than `retry_above_handshakes` handshakes are in progress on a worker.
    bool retry = false;
    std::size_t retry_above_handshakes = 1024;
    std::chrono::seconds retry_token_lifetime{10};
    // 0-RTT: a resuming client may send requests with its first flight. Such early data can be replayed by an
    // attacker, so only GET, HEAD and OPTIONS run from it; other methods get 425 Too Early (RFC 8470) and the
    // client repeats them after the handshake. GnuTLS's anti-replay window rejects a ClientHello seen before
    // by this process; replays sent to another process are possible. Off by default.
    bool early_data = false;
    // Connection migration to a preferred address (RFC 9000 §9.6): "IP:port" (IPv6 as "[addr]:port"), numeric.
    // The server also listens there and offers it in its transport parameters; clients move their connection
    // to it once the handshake is done (a server on a shared or anycast address sends them to its own). Empty:
    // none.
    std::string preferred_address;
    // Sockets handed down by a supervisor (`covet run`'s master): one per worker thread, in worker order, already
    // bound to the HTTP/3 port in one SO_REUSEPORT group that routes packets by connection ID
    // (covet/http3/cid_router.hpp). Worker i's IDs start with the byte `cid_base + i` (its socket's index in the
    // group) followed by `cid_tag`. The engine owns them from start (it closes them). Empty: each worker binds
    // its own socket, and a packet on the wrong worker's is handed over within the process only.
    std::vector<int> inherited_sockets;
    std::uint8_t cid_base = 0;
    std::uint16_t cid_tag = 0;
};

// Operations endpoints and metrics (docs/operations.md, "Metrics"). The engine records its metrics unless
// `record_metrics` is off (the cost is a few hash probes per request); the endpoints are opt-in.
struct OpsConfig {
    bool record_metrics = true;
    // Answer GET /_metrics, /_health and /_ready natively on the app's own listener.
    bool endpoints = false;
    // A separate listener for the three (never the app's port or accept queue); 0: none. With it the app's
    // port does not answer them (unless `endpoints`).
    std::uint16_t port = 0;
    std::string host = "127.0.0.1";
    std::string metrics_path = "/_metrics";  // must start with "/_": the engine looks at those paths only
    // Non-empty: GET /_metrics requires `Authorization: Bearer <token>` (401 otherwise).
    std::string token;
    // From the start of a graceful stop: /_ready answers 503 this long while the listeners still accept
    // and requests are served, so that load balancers take the instance out first (Kubernetes).
    std::chrono::milliseconds drain_delay{0};
    // GET /_health answers 503 once a loop of the app (an engine worker's, or the host's that reports through
    // App::loop_turned) has not turned for this long: a handler that blocks it, a deadlock. 0: never (only
    // whether the listener answers). Not during a graceful stop. Keep it well above the 250 ms sweep interval
    // (a second or more), and above the longest a handler may legitimately hold its loop (an inline sync
    // handler, a WSGI app run on the loop's thread).
    std::chrono::milliseconds health_stall{30'000};
    // An already-listening socket for `port` handed down by a supervisor (`covet run`'s master), adopted like
    // ServerConfig::inherited_listener: every worker process accepts from its one queue, so a worker that dies
    // loses no queued connection (with one SO_REUSEPORT socket each, the kernel resets those in the dead one's
    // queue). -1: bind `port` (joining the other workers' SO_REUSEPORT group).
    int inherited_listener = -1;
};

struct ServerConfig {
    std::string host = "0.0.0.0";
    std::uint16_t port = 8000;  // 0: pick a free port (all workers share it)
    unsigned threads = 0;       // 0: one per core
    bool pin_threads = false;   // pin worker i to CPU i
    // Several processes serve one port (pre-forked workers): join an existing SO_REUSEPORT group instead
    // of refusing a port that is already in use.
    bool shared_port = false;
    // An already-listening socket handed down by a supervisor (e.g. `covet run`): the workers accept on
    // duplicates of it instead of binding. The supervisor keeps it open across worker generations, so the
    // connections waiting in its accept queue outlive any restart; stopping never shuts it down.
    int inherited_listener = -1;
    std::optional<io::Backend> backend;  // unset: COVET_BACKEND or auto
    int listen_backlog = 4096;
    Limits limits;
    Timeouts timeouts;
    std::optional<TlsConfig> tls;  // set: every connection is TLS (ALPN picks h2 or http/1.1)
    bool http2 = true;             // h2 via ALPN, h2c by prior knowledge or Upgrade: h2c
    Http2Limits http2_limits;
    Http3Options http3;
    // X-Forwarded-Proto / X-Forwarded-For from trusted peers set the request's scheme and client (uvicorn's
    // --proxy-headers and --forwarded-allow-ips; on, with 127.0.0.1 trusted, by default). Set before start:
    // `config.proxy_headers.trusted = net::TrustedProxies("10.0.0.0/8, ::1")`, or `.enabled = false`.
    ProxyHeaders proxy_headers;
    // PROXY protocol v1/v2 from trusted load balancers (off by default): `config.proxy_protocol.enabled = true;
    // config.proxy_protocol.trusted = net::TrustedProxies("10.0.0.0/8")`. See covet/net/proxy_protocol.hpp.
    ProxyProtocolConfig proxy_protocol;
    // Per client address (IPv6: per /64): concurrent connections, new connections per period, HTTP/2
    // streams across its connections. All off by default; see covet/net/client_limits.hpp.
    ClientLimits client_limits;
    OpsConfig ops;
};

}  // namespace covet::net
