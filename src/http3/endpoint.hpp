// One worker's HTTP/3 endpoint (private to src/http3): its UDP socket, the connection IDs of its QUIC connections,
// their timers, and the packets they send. The connections themselves (session.hpp) live in the worker's table.
#pragma once

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "covet/http/exchange.hpp"
#include "covet/net/datagram.hpp"
#include "covet/net/server_config.hpp"

namespace covet::http3::detail {

// The certificates and keys of ServerConfig::tls, loaded by GnuTLS. A session keeps the set it started with.
class Endpoint;

class Credentials {
public:
    explicit Credentials(const net::TlsConfig& tls);  // throws naming the file that failed
    ~Credentials();
    Credentials(const Credentials&) = delete;
    Credentials& operator=(const Credentials&) = delete;
    gnutls_certificate_credentials_t get() const noexcept { return handle_; }

private:
    gnutls_certificate_credentials_t handle_ = nullptr;
};

// What every worker's endpoint shares (made once per server).
struct Shared {
    Shared(const net::ServerConfig& c, RequestDispatcher& d) : config(c), dispatcher(d) {}
    ~Shared() {
        if (anti_replay) gnutls_anti_replay_deinit(anti_replay);
    }
    Shared(const Shared&) = delete;
    Shared& operator=(const Shared&) = delete;

    const net::ServerConfig& config;
    RequestDispatcher& dispatcher;
    std::array<std::uint8_t, 32> secret{};  // Retry and stateless-reset tokens
    // GnuTLS's session-ticket master key (it derives rotating keys from it): the same in every worker and process.
    std::array<std::uint8_t, 64> ticket_key{};
    gnutls_anti_replay_t anti_replay = nullptr;  // 0-RTT (Http3Options::early_data)
    // The ClientHellos whose early data this process accepted, until they expire (GnuTLS asks through
    // anti_replay's add function; a second one with the same key is a replay and its early data is refused).
    std::mutex replay_mutex;
    std::unordered_map<std::string, time_t> seen_hellos;
    gnutls_datum_t ticket_datum() const noexcept {
        return {const_cast<unsigned char*>(ticket_key.data()), static_cast<unsigned>(ticket_key.size())};
    }
    // Each worker's endpoint by worker index (the first byte of the connection IDs it issues), so that a packet
    // that lands on another worker's socket (a client's NAT rebinding changes the 4-tuple SO_REUSEPORT hashes)
    // is handed to the worker that owns its connection. Set and cleared by the endpoints; read by any.
    std::array<std::atomic<Endpoint*>, 256> endpoints{};
    // The workers bind their sockets one at a time; the first binds without SO_REUSEPORT so that a port someone
    // else holds is refused rather than silently shared (see open_udp).
    std::mutex bind_mutex;
    bool bound = false;

    // The current certificates (any thread): replaced by a reload; new connections take the new set.
    std::shared_ptr<const Credentials> credentials() const {
        std::lock_guard lock(mutex_);
        return credentials_;
    }
    void set_credentials(std::shared_ptr<const Credentials> c) {
        std::lock_guard lock(mutex_);
        credentials_ = std::move(c);
    }

private:
    mutable std::mutex mutex_;
    std::shared_ptr<const Credentials> credentials_;
};

// A peer's address as the socket API and ngtcp2 take it.
struct Address {
    sockaddr_storage storage{};
    socklen_t length = 0;
    const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }
    sockaddr* get() noexcept { return reinterpret_cast<sockaddr*>(&storage); }
    // The remote side of a path ngtcp2 wrote a packet for.
    static Address of(const ngtcp2_addr& a) noexcept {
        Address out;
        std::memcpy(&out.storage, a.addr, a.addrlen);
        out.length = a.addrlen;
        return out;
    }
    bool operator==(const ngtcp2_addr& a) const noexcept {
        return a.addrlen == length && std::memcmp(a.addr, &storage, length) == 0;
    }
};

// Where a datagram came from, on which of the endpoint's sockets, with its ECN mark.
struct Arrival {
    Address from;
    std::size_t socket = 0;  // Endpoint::local(socket) is the path's local side
    ngtcp2_pkt_info info{};
};

ngtcp2_tstamp timestamp() noexcept;

class Endpoint final : public net::DatagramService, public net::ConnectionDriver {
public:
    Endpoint(net::DatagramHost& host, Shared& shared, std::uint16_t port);
    ~Endpoint() override;

    // ---- DatagramService ----
    void flush() override;
    void shutdown() override;

    // ---- ConnectionDriver (for the QUIC connections' net::Connection) ----
    void request_send(net::Connection& c) override;
    void set_reading(net::Connection&, bool) override {}  // QUIC flow control paces the peer
    void close(net::Connection& c) override;
    io::Loop& loop() noexcept override { return host_.host_loop(); }
    const net::ServerConfig& config() const noexcept override { return shared_.config; }

    // ---- for sessions ----
    const Shared& shared() const noexcept { return shared_; }
    net::DatagramHost& host() noexcept { return host_; }
    // The address of socket `socket` (0: the listener's; 1: Http3Options::preferred_address's).
    const Address& local(std::size_t socket = 0) const noexcept { return sockets_[socket].local; }
    // The socket whose address is a path's local side (`local` of an ngtcp2_path).
    std::size_t socket_of(const ngtcp2_addr& local) const noexcept {
        return sockets_[1].fd >= 0 && sockets_[1].local == local ? 1 : 0;
    }
    // The preferred address offered to clients (its socket is open), or null.
    const Address* preferred() const noexcept { return sockets_[1].fd >= 0 ? &sockets_[1].local : nullptr; }
    bool stopping() const noexcept { return stopping_; }
    void add_cid(std::string_view cid, net::ConnectionId id) { cids_[std::string(cid)] = id; }
    void remove_cid(std::string_view cid) { cids_.erase(std::string(cid)); }
    // The connection's next timer (ngtcp2_conn_get_expiry); UINT64_MAX: none.
    void schedule(net::ConnectionId id, ngtcp2_tstamp& current, ngtcp2_tstamp expiry);
    // Sends one UDP payload (or several of `segment` bytes each, with GSO) to `to`. Best effort: a full socket
    // buffer drops it, and QUIC's loss recovery sends it again.
    // `ecn`: the packets' ECN codepoint (ngtcp2_pkt_info::ecn), set in the IP header.
    // `socket`: the one it leaves from (socket_of the path's local address).
    void send(const Address& to, const std::uint8_t* data, std::size_t length, std::size_t segment = 0,
              unsigned ecn = 0, std::size_t socket = 0);
    // The byte a new connection ID starts with, for routing between workers: the worker's index, plus
    // Http3Options::cid_base when its socket is a supervisor's (its index in the routed group).
    std::uint8_t cid_prefix() const noexcept {
        return static_cast<std::uint8_t>(shared_.config.http3.cid_base + host_.worker_index());
    }
    // A new connection's ID: random after the prefix byte (and the routed group's tag).
    ngtcp2_cid new_cid(std::size_t length) const;
    // Handshakes in progress (address validation starts above Http3Options::retry_above_handshakes).
    void handshake_started() noexcept { ++handshaking_; }
    void handshake_ended() noexcept { --handshaking_; }

private:
    struct Socket {
        int fd = -1;
        Address local;
    };
    void on_readable(std::size_t socket);
    void on_timer();
    // `forwarded`: handed over by another worker's endpoint (never handed on again).
    void on_datagram(const Arrival& arrival, std::uint8_t* data, std::size_t length, bool forwarded);
    // Hands a datagram for one of `owner`'s connections to its loop (another worker's thread).
    static void forward(Endpoint& owner, const Arrival& arrival, const std::uint8_t* data, std::size_t length);
    // A stateless answer (`length` bytes, none when not positive) to where `to` came from, on its socket.
    void reply(const Arrival& to, const std::uint8_t* data, ngtcp2_ssize length);
    void send_version_negotiation(const Arrival& to, const ngtcp2_version_cid& vc);
    void send_retry(const Arrival& to, const ngtcp2_pkt_hd& hd);
    void send_refusal(const Arrival& to, const ngtcp2_pkt_hd& hd, std::uint64_t error);
    void send_stateless_reset(const Arrival& to, const ngtcp2_version_cid& vc, std::size_t received);
    void accept(const Arrival& arrival, std::uint8_t* data, std::size_t length);
    void arm_timer();
    class Session* session(net::ConnectionId id);

    net::DatagramHost& host_;
    Shared& shared_;
    std::array<Socket, 2> sockets_;
    int timer_fd_ = -1;
    bool stopping_ = false, gso_ = true;
    std::unordered_map<std::string, net::ConnectionId> cids_;
    std::vector<net::ConnectionId> dirty_, sending_;
    std::multimap<ngtcp2_tstamp, net::ConnectionId> timers_;
    ngtcp2_tstamp armed_at_ = UINT64_MAX;
    std::size_t handshaking_ = 0;
    // Stateless resets sent in the current second (a budget: each answers a packet from an address we cannot
    // verify, so they must not turn the server into a reflector).
    std::uint64_t reset_second_ = 0;
    unsigned resets_ = 0;
    // recvmmsg's batch: a buffer of max_datagram bytes per message (left uninitialised: the kernel fills only what
    // arrives, so untouched pages cost no memory), its source address and its control messages (ECN, GRO).
    std::unique_ptr<std::uint8_t[]> receive_buffers_;
    std::vector<mmsghdr> receive_messages_;
    std::vector<iovec> receive_iovecs_;
    std::vector<Address> receive_from_;
    struct alignas(cmsghdr) Control {
        char bytes[128];
    };
    std::vector<Control> receive_control_;
};

}  // namespace covet::http3::detail
