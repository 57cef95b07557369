#include "endpoint.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "../logging.hpp"
#include "covet/http/proxy_headers.hpp"
#include "covet/http3/cid_router.hpp"
#include "covet/http3/server.hpp"
#include "covet/io/errno_text.hpp"
#include "covet/net/listener.hpp"
#include "session.hpp"

#include <ngtcp2/ngtcp2_crypto.h>

namespace covet::http3 {
namespace detail {

ngtcp2_tstamp timestamp() noexcept {
    return static_cast<ngtcp2_tstamp>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
}

namespace {

// mTLS: runs once the client's Certificate arrived; non-zero fails the handshake (alert bad_certificate).
int verify_client_certificate(gnutls_session_t session) {
    unsigned count = 0;
    if (!gnutls_certificate_get_peers(session, &count) || count == 0) return 0;  // none: the request mode decides
    unsigned status = 0;
    if (gnutls_certificate_verify_peers2(session, &status) == 0 && status == 0) return 0;
    logging::debug("HTTP/3: a client certificate failed verification (status {:#x})", status);
    return GNUTLS_E_CERTIFICATE_ERROR;
}

}  // namespace

Credentials::Credentials(const net::TlsConfig& tls) {
    if (gnutls_certificate_allocate_credentials(&handle_) != 0)
        throw std::runtime_error("HTTP/3: gnutls_certificate_allocate_credentials failed");
    for (const net::TlsCertificate& c : tls.certificates)
        if (const int rc = gnutls_certificate_set_x509_key_file(handle_, c.cert_file.c_str(), c.key_file.c_str(),
                                                                GNUTLS_X509_FMT_PEM);
            rc < 0) {
            gnutls_certificate_free_credentials(handle_);
            throw std::runtime_error("HTTP/3: cannot load the certificate " + c.cert_file + " and key " + c.key_file +
                                     ": " + gnutls_strerror(rc));
        }
    if (tls.client_auth != net::ClientAuth::none) {  // mTLS: the CAs client certificates must chain to
        const int loaded = gnutls_certificate_set_x509_trust_file(handle_, tls.ca_file.c_str(), GNUTLS_X509_FMT_PEM);
        if (loaded <= 0) {
            gnutls_certificate_free_credentials(handle_);
            throw std::runtime_error("HTTP/3: cannot load the client CA bundle " + tls.ca_file + ": " +
                                     (loaded < 0 ? gnutls_strerror(loaded) : "no certificate in it") +
                                     " (TlsConfig::ca_file, --ssl-ca-certs: PEM certificates)");
        }
        gnutls_certificate_set_verify_function(handle_, verify_client_certificate);
    }
}

Credentials::~Credentials() { gnutls_certificate_free_credentials(handle_); }

namespace {

constexpr std::size_t datagrams_per_wakeup = 64;  // fairness with the TCP connections on the same loop
constexpr std::size_t receive_batch = 16;         // datagrams per recvmmsg
constexpr std::size_t max_datagram = 65536;       // also what UDP GRO coalesces at most
constexpr std::size_t short_header_cid_length = routed_cid_length;  // ours (cid_router.hpp)
constexpr unsigned max_resets_per_second = 100;

// A QUIC server's socket buffers must hold a burst of full windows: the kernel's default (~208 KiB) dropped ~3% of
// the datagrams of 1 MiB transfers in the bench. SO_RCVBUF/SO_SNDBUF are capped by net.core.rmem_max/wmem_max;
// with CAP_NET_ADMIN the *FORCE variants pass the cap (quic-go does the same).
void size_socket_buffers(int fd) {
    constexpr int wanted = 8 * 1024 * 1024;
    for (const auto& [set, force] : {std::pair{SO_RCVBUF, SO_RCVBUFFORCE}, std::pair{SO_SNDBUF, SO_SNDBUFFORCE}}) {
        setsockopt(fd, SOL_SOCKET, set, &wanted, sizeof wanted);
        int got = 0;
        socklen_t length = sizeof got;
        if (getsockopt(fd, SOL_SOCKET, set, &got, &length) == 0 && got < wanted)
            setsockopt(fd, SOL_SOCKET, force, &wanted, sizeof wanted);
    }
    int got = 0;
    socklen_t length = sizeof got;
    static std::atomic<bool> warned{false};
    if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &length) == 0 && got < wanted && !warned.exchange(true))
        logging::info(
            "HTTP/3: the UDP receive buffer is {} KiB (wanted {} KiB): raise net.core.rmem_max (sysctl) "
            "so that bursts are not dropped",
            got / 1024, wanted / 1024);
}

// What every endpoint socket needs, whether it binds it (open_udp) or adopts a supervisor's (adopt_udp).
void configure_udp(int fd, int family) {
    const int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_RECVTOS, &one, sizeof one);  // ECN marks of what arrives (RFC 9000 §13.4)
    // A burst of one client's datagrams may arrive as one buffer (split by on_readable); best effort.
    setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one);
    if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_RECVTCLASS, &one, sizeof one);
    size_socket_buffers(fd);
}

// One UDP socket per worker on `host:port`, joined to the other workers' by SO_REUSEPORT. `numeric`: `host` is an
// address (Http3Options::preferred_address), not a name. `exclusive` (the server's first socket there): it binds
// without SO_REUSEPORT, so the bind fails if another socket holds the port (it would otherwise join that
// socket's group and get part of its traffic, or give it part of ours; a TCP port the kernel picked may be in
// use on UDP), and enables it afterwards for the other workers.
int open_udp(const std::string& host, std::uint16_t port, Address& local, bool exclusive, bool numeric = false) {
    const std::string service = std::to_string(port);
    int rc = 0;
    const net::AddressList found = net::resolve_passive(host, port, SOCK_DGRAM, rc, numeric ? AI_NUMERICHOST : 0);
    if (!found) throw std::runtime_error("HTTP/3: cannot resolve " + host + ": " + gai_strerror(rc));
    std::string why = "no address";
    int fd = -1;
    for (addrinfo* a = found.get(); a; a = a->ai_next) {
        fd = ::socket(a->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) continue;
        const int one = 1;
        if (!exclusive) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        if (a->ai_family == AF_INET6) {
            const int zero = 0;
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        }
        configure_udp(fd, a->ai_family);
        if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 &&
            (!exclusive || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0)) {
            local.length = sizeof local.storage;
            getsockname(fd, local.get(), &local.length);
            break;
        }
        why = io::errno_text(errno);
        ::close(fd);
        fd = -1;
    }
    if (fd < 0)
        throw std::runtime_error("HTTP/3: cannot bind UDP " + host + ":" + service + ": " + why +
                                 (numeric ? " (is Http3Options::preferred_address one of this host's addresses, "
                                            "and its port free?)"
                                          : " (is another server using the port? set Http3Options::port)"));
    return fd;
}

// One of Http3Options::inherited_sockets (a supervisor's, bound to `port`), set up like open_udp's own.
int adopt_udp(int fd, std::uint16_t port, Address& local) {
    int type = 0;
    socklen_t type_length = sizeof type;
    local.length = sizeof local.storage;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_length) != 0 || type != SOCK_DGRAM ||
        getsockname(fd, local.get(), &local.length) != 0 ||
        (local.storage.ss_family != AF_INET && local.storage.ss_family != AF_INET6))
        throw std::runtime_error("HTTP/3: inherited socket " + std::to_string(fd) +
                                 " is not a bound UDP socket (Http3Options::inherited_sockets must hold the "
                                 "supervisor's sockets, passed to this process)");
    const auto bound =
        ntohs(local.storage.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in*>(&local.storage)->sin_port
                                                 : reinterpret_cast<const sockaddr_in6*>(&local.storage)->sin6_port);
    if (bound != port)
        throw std::runtime_error("HTTP/3: inherited socket " + std::to_string(fd) + " is bound to port " +
                                 std::to_string(bound) + ", not the HTTP/3 port " + std::to_string(port));
    // The file status flags are shared with the supervisor's copy (which never reads): non-blocking for us.
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);  // not the app's subprocesses'
    configure_udp(fd, local.storage.ss_family);
    return fd;
}

// Http3Options::preferred_address ("IP:port", "[IPv6]:port") as the host and port open_udp takes.
std::pair<std::string, std::uint16_t> split_preferred(const std::string& text) {
    const http::detail::HostPort split = http::detail::split_host_port(text);
    const std::string host(split.host);
    in6_addr any{};
    if (split.port == 0 ||
        (inet_pton(AF_INET, host.c_str(), &any) != 1 && inet_pton(AF_INET6, host.c_str(), &any) != 1))
        throw std::runtime_error("HTTP/3: Http3Options::preferred_address \"" + text +
                                 "\" is not a numeric IP:port (write 192.0.2.1:443 or [2001:db8::1]:443)");
    return {host, split.port};
}

bool unspecified(const Address& a) {
    if (a.storage.ss_family == AF_INET)
        return reinterpret_cast<const sockaddr_in*>(&a.storage)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&reinterpret_cast<const sockaddr_in6*>(&a.storage)->sin6_addr);
}

std::string peer_text(const Address& a, std::uint16_t& port) {
    char text[INET6_ADDRSTRLEN] = "";
    if (a.storage.ss_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(&a.storage);
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
        port = ntohs(in->sin_port);
    } else if (a.storage.ss_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], text, sizeof text);
        else
            inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
        port = ntohs(in6->sin6_port);
    }
    return text;
}

}  // namespace

Endpoint::Endpoint(net::DatagramHost& host, Shared& shared, std::uint16_t port)
    : host_(host),
      shared_(shared),
      receive_buffers_(std::make_unique_for_overwrite<std::uint8_t[]>(receive_batch * max_datagram)),
      receive_messages_(receive_batch),
      receive_iovecs_(receive_batch),
      receive_from_(receive_batch),
      receive_control_(receive_batch) {
    const auto close_all = [this] {
        for (Socket& s : sockets_)
            if (s.fd >= 0) ::close(s.fd);
    };
    const net::Http3Options& o = shared.config.http3;
    std::unique_lock bind_lock(shared.bind_mutex);
    // Worker processes that share the port (their TCP listener is a supervisor's, or shared_port) join each other.
    const bool exclusive = !shared.bound && !shared.config.shared_port && shared.config.inherited_listener < 0;
    if (o.inherited_sockets.empty()) {
        sockets_[0].fd = open_udp(shared.config.host, port, sockets_[0].local, exclusive);
    } else {
        if (host.worker_index() >= o.inherited_sockets.size() || cid_prefix() < o.cid_base)
            throw std::runtime_error("HTTP/3: " + std::to_string(o.inherited_sockets.size()) +
                                     " inherited UDP sockets for more worker threads (one each; worker " +
                                     std::to_string(host.worker_index()) + " has none, or its ID byte passes 255)");
        sockets_[0].fd = adopt_udp(o.inherited_sockets[host.worker_index()], port, sockets_[0].local);
    }
    try {
        if (!shared.config.http3.preferred_address.empty()) {
            const auto [address, preferred_port] = split_preferred(shared.config.http3.preferred_address);
            sockets_[1].fd = open_udp(address, preferred_port, sockets_[1].local, exclusive, /*numeric=*/true);
            if (unspecified(sockets_[1].local))
                throw std::runtime_error("HTTP/3: Http3Options::preferred_address " +
                                         shared.config.http3.preferred_address +
                                         " is a wildcard address; clients need one they can send to (this host's "
                                         "own address, e.g. 192.0.2.1:8443)");
        }
    } catch (...) {
        close_all();
        throw;
    }
    shared.bound = true;
    bind_lock.unlock();
    timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (timer_fd_ < 0) {
        close_all();
        throw std::runtime_error(std::string("HTTP/3: timerfd_create: ") + io::errno_text(errno));
    }
    for (std::size_t i = 0; i < sockets_.size(); ++i)
        if (sockets_[i].fd >= 0) host.watch_readable(sockets_[i].fd, [this, i] { on_readable(i); });
    host.watch_readable(timer_fd_, [this] { on_timer(); });
    shared.endpoints[cid_prefix()].store(this, std::memory_order_release);
}

Endpoint::~Endpoint() {
    // Workers are destroyed after every worker thread has stopped: no other thread forwards to this one now.
    shared_.endpoints[cid_prefix()].store(nullptr, std::memory_order_release);
    // The worker's backend is gone by now: nothing to unwatch, only the descriptors to close.
    if (timer_fd_ >= 0) ::close(timer_fd_);
    for (Socket& s : sockets_)
        if (s.fd >= 0) ::close(s.fd);
}

Session* Endpoint::session(net::ConnectionId id) {
    net::Connection* c = host_.home().find(id);
    return c ? static_cast<Session*>(c->protocol()) : nullptr;
}

void Endpoint::on_readable(std::size_t socket) {
    const int fd = sockets_[socket].fd;
    for (std::size_t done = 0; done < datagrams_per_wakeup;) {
        for (std::size_t i = 0; i < receive_batch; ++i) {
            receive_iovecs_[i] = {receive_buffers_.get() + i * max_datagram, max_datagram};
            msghdr& msg = receive_messages_[i].msg_hdr;
            msg = {};
            msg.msg_name = receive_from_[i].get();
            msg.msg_namelen = sizeof receive_from_[i].storage;
            msg.msg_iov = &receive_iovecs_[i];
            msg.msg_iovlen = 1;
            msg.msg_control = receive_control_[i].bytes;
            msg.msg_controllen = sizeof receive_control_[i].bytes;
        }
        const int count = ::recvmmsg(fd, receive_messages_.data(), static_cast<unsigned>(receive_batch), 0, nullptr);
        if (count <= 0) {
            if (count < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                logging::debug("HTTP/3: recvmmsg: {}", io::errno_text(errno));
            return;
        }
        for (std::size_t i = 0; i < static_cast<std::size_t>(count); ++i) {
            msghdr& msg = receive_messages_[i].msg_hdr;
            Arrival arrival;
            arrival.from = receive_from_[i];
            arrival.from.length = msg.msg_namelen;
            arrival.socket = socket;
            std::size_t segment = 0;  // UDP GRO: the size of each coalesced datagram (the last may be shorter)
            for (cmsghdr* cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
                const auto as_int = [cm] {
                    int value = 0;
                    if (cm->cmsg_len >= CMSG_LEN(sizeof value)) std::memcpy(&value, CMSG_DATA(cm), sizeof value);
                    return value;
                };
                if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_TOS && cm->cmsg_len > CMSG_LEN(0))
                    arrival.info.ecn = *CMSG_DATA(cm) & 0x3u;  // one byte
                else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_TCLASS)
                    arrival.info.ecn = static_cast<std::uint32_t>(as_int()) & 0x3u;
                else if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO && as_int() > 0)
                    segment = static_cast<std::size_t>(as_int());
            }
            std::uint8_t* data = receive_buffers_.get() + i * max_datagram;
            const std::size_t length = receive_messages_[i].msg_len;
            if (msg.msg_flags & MSG_TRUNC) continue;  // larger than any QUIC datagram we accept: dropped
            const std::size_t step = segment ? segment : std::max<std::size_t>(length, 1);
            for (std::size_t at = 0; at < length; at += step)
                on_datagram(arrival, data + at, std::min(step, length - at), false);
        }
        done += static_cast<std::size_t>(count);
        if (static_cast<std::size_t>(count) < receive_batch) return;  // drained
    }
}

void Endpoint::forward(Endpoint& owner, const Arrival& arrival, const std::uint8_t* data, std::size_t length) {
    owner.host_.host_loop().post(
        [&owner, arrival, bytes = std::string(reinterpret_cast<const char*>(data), length)]() mutable {
            owner.on_datagram(arrival, reinterpret_cast<std::uint8_t*>(bytes.data()), bytes.size(), /*forwarded=*/true);
        });
}

void Endpoint::on_datagram(const Arrival& arrival, std::uint8_t* data, std::size_t length, bool forwarded) {
    ngtcp2_version_cid vc{};
    switch (ngtcp2_pkt_decode_version_cid(&vc, data, length, short_header_cid_length)) {
        case 0: break;
        case NGTCP2_ERR_VERSION_NEGOTIATION: return send_version_negotiation(arrival, vc);
        default: return;  // not QUIC, or truncated: dropped
    }
    const auto known = cids_.find(std::string(reinterpret_cast<const char*>(vc.dcid), vc.dcidlen));
    if (known != cids_.end()) {
        if (Session* s = session(known->second)) s->on_packet(arrival, data, length);
        return;
    }
    // Another worker's connection (its ID's first byte): that worker's loop takes it.
    if (!forwarded && vc.dcidlen == short_header_cid_length && vc.dcid[0] != cid_prefix())
        if (Endpoint* owner = shared_.endpoints[vc.dcid[0]].load(std::memory_order_acquire))
            return forward(*owner, arrival, data, length);
    if (data[0] & 0x80) return accept(arrival, data, length);
    // A short-header packet for a connection we do not know (restarted, or another server's): a stateless
    // reset tells the client at once instead of after its idle timeout (RFC 9000 §10.3).
    send_stateless_reset(arrival, vc, length);
}

void Endpoint::accept(const Arrival& arrival, std::uint8_t* data, std::size_t length) {
    ngtcp2_pkt_hd hd{};
    if (ngtcp2_accept(&hd, data, length) != 0) return;  // not a client's first Initial: dropped
    if (stopping_) return;
    const net::Http3Options& o = shared_.config.http3;
    const Address& from = arrival.from;
    ngtcp2_cid original{};
    const ngtcp2_cid* retried = nullptr;
    if (hd.token.len > 0 && hd.token.base[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY) {
        const auto lifetime = static_cast<ngtcp2_duration>(o.retry_token_lifetime.count()) * 1'000'000'000ULL;
        if (ngtcp2_crypto_verify_retry_token(&original, hd.token.base, hd.token.len, shared_.secret.data(),
                                             shared_.secret.size(), hd.version, from.get(), from.length, &hd.dcid,
                                             lifetime, timestamp()) != 0)
            return send_refusal(arrival, hd, NGTCP2_INVALID_TOKEN);  // forged, expired, or from another address
        retried = &original;
    } else if (o.retry || handshaking_ >= o.retry_above_handshakes) {
        if (hd.dcid.datalen < NGTCP2_MIN_INITIAL_DCIDLEN) return;
        return send_retry(arrival, hd);
    }
    std::uint16_t port = 0;
    const std::string peer = peer_text(from, port);
    net::Connection* c = host_.adopt_datagram(*this, peer, port, [&](net::Connection& conn) {
        return std::make_unique<Session>(conn, *this, hd, arrival, retried);
    });
    if (!c) return send_refusal(arrival, hd, NGTCP2_CONNECTION_REFUSED);  // at the connection limit
    static_cast<Session*>(c->protocol())->on_packet(arrival, data, length);
}

ngtcp2_cid Endpoint::new_cid(std::size_t length) const {
    ngtcp2_cid cid{};
    cid.datalen = length;
    gnutls_rnd(GNUTLS_RND_NONCE, cid.data, length);
    if (length > 0) cid.data[0] = cid_prefix();
    if (length >= 3 && !shared_.config.http3.inherited_sockets.empty()) {  // the group's tag (cid_router.hpp)
        cid.data[1] = static_cast<std::uint8_t>(shared_.config.http3.cid_tag >> 8);
        cid.data[2] = static_cast<std::uint8_t>(shared_.config.http3.cid_tag);
    }
    return cid;
}

void Endpoint::send_retry(const Arrival& to, const ngtcp2_pkt_hd& hd) {
    const ngtcp2_cid scid = new_cid(short_header_cid_length);
    std::array<std::uint8_t, NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN> token;
    const ngtcp2_ssize token_length =
        ngtcp2_crypto_generate_retry_token(token.data(), shared_.secret.data(), shared_.secret.size(), hd.version,
                                           to.from.get(), to.from.length, &scid, &hd.dcid, timestamp());
    if (token_length < 0) return;
    std::array<std::uint8_t, NGTCP2_MAX_UDP_PAYLOAD_SIZE> buffer;
    const ngtcp2_ssize n = ngtcp2_crypto_write_retry(buffer.data(), buffer.size(), hd.version, &hd.scid, &scid,
                                                     &hd.dcid, token.data(), static_cast<std::size_t>(token_length));
    reply(to, buffer.data(), n);
}

// CONNECTION_CLOSE in an Initial packet, without any connection state (a bad token, the connection limit).
void Endpoint::send_refusal(const Arrival& to, const ngtcp2_pkt_hd& hd, std::uint64_t error) {
    std::array<std::uint8_t, NGTCP2_MAX_UDP_PAYLOAD_SIZE> buffer;
    const ngtcp2_ssize n = ngtcp2_crypto_write_connection_close(buffer.data(), buffer.size(), hd.version, &hd.scid,
                                                                &hd.dcid, error, nullptr, 0);
    reply(to, buffer.data(), n);
}

void Endpoint::send_stateless_reset(const Arrival& to, const ngtcp2_version_cid& vc, std::size_t received) {
    // Smaller than what came (so two endpoints never loop), and no shorter than a real short-header packet.
    constexpr std::size_t min_reset = NGTCP2_MIN_STATELESS_RESET_RANDLEN + NGTCP2_STATELESS_RESET_TOKENLEN + 1;
    if (received <= min_reset || vc.dcidlen != short_header_cid_length) return;
    const std::uint64_t second = timestamp() / 1'000'000'000ULL;
    if (second != reset_second_) reset_second_ = second, resets_ = 0;
    if (++resets_ > max_resets_per_second) return;
    ngtcp2_cid cid{};
    cid.datalen = vc.dcidlen;
    std::memcpy(cid.data, vc.dcid, vc.dcidlen);
    std::array<std::uint8_t, NGTCP2_STATELESS_RESET_TOKENLEN> token;
    if (ngtcp2_crypto_generate_stateless_reset_token(token.data(), shared_.secret.data(), shared_.secret.size(),
                                                     &cid) != 0)
        return;
    const std::size_t random_length = std::min<std::size_t>(received - 1, 43) - NGTCP2_STATELESS_RESET_TOKENLEN;
    std::array<std::uint8_t, 64> random;
    gnutls_rnd(GNUTLS_RND_NONCE, random.data(), random_length);
    std::array<std::uint8_t, 64> buffer;
    const ngtcp2_ssize n =
        ngtcp2_pkt_write_stateless_reset(buffer.data(), buffer.size(), token.data(), random.data(), random_length);
    reply(to, buffer.data(), n);
}

void Endpoint::send_version_negotiation(const Arrival& to, const ngtcp2_version_cid& vc) {
    std::array<std::uint8_t, NGTCP2_MAX_UDP_PAYLOAD_SIZE> buffer;
    const std::uint32_t versions[] = {NGTCP2_PROTO_VER_V1};
    std::uint8_t unused = 0;
    gnutls_rnd(GNUTLS_RND_NONCE, &unused, 1);
    // The reply swaps the IDs: its destination is the client's source ID (RFC 9000 §17.2.1).
    const ngtcp2_ssize n = ngtcp2_pkt_write_version_negotiation(buffer.data(), buffer.size(), unused, vc.scid,
                                                                vc.scidlen, vc.dcid, vc.dcidlen, versions, 1);
    reply(to, buffer.data(), n);
}

void Endpoint::reply(const Arrival& to, const std::uint8_t* data, ngtcp2_ssize length) {
    if (length > 0) send(to.from, data, static_cast<std::size_t>(length), 0, 0, to.socket);
}

void Endpoint::send(const Address& to, const std::uint8_t* data, std::size_t length, std::size_t segment, unsigned ecn,
                    std::size_t socket) {
    iovec iov{const_cast<std::uint8_t*>(data), length};
    msghdr msg{};
    msg.msg_name = const_cast<sockaddr*>(to.get());
    msg.msg_namelen = to.length;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(std::uint16_t)) + CMSG_SPACE(sizeof(int))]{};
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    std::size_t used = 0;
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    const bool gso = gso_ && segment > 0 && length > segment;
    if (gso) {
        cm->cmsg_level = SOL_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
        const auto size = static_cast<std::uint16_t>(segment);
        std::memcpy(CMSG_DATA(cm), &size, sizeof size);
        used += CMSG_SPACE(sizeof(std::uint16_t));
        cm = CMSG_NXTHDR(&msg, cm);
    }
    if (ecn != 0) {  // the ECN codepoint ngtcp2 chose for these packets (ECT(0) while it validates the path)
        const int tos = static_cast<int>(ecn);
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&to.storage);
        const bool v6 = to.storage.ss_family == AF_INET6 && !IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr);
        cm->cmsg_level = v6 ? IPPROTO_IPV6 : IPPROTO_IP;
        cm->cmsg_type = v6 ? IPV6_TCLASS : IP_TOS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(cm), &tos, sizeof tos);
        used += CMSG_SPACE(sizeof(int));
    }
    msg.msg_controllen = used;
    if (used == 0) msg.msg_control = nullptr;
    while (::sendmsg(sockets_[socket].fd, &msg, 0) < 0) {
        if (errno == EINTR) continue;
        if (gso && (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT)) {
            gso_ = false;  // no UDP GSO here (kernel or device): one datagram per packet from now on
            for (std::size_t at = 0; at < length; at += segment)
                send(to, data + at, std::min(segment, length - at), 0, ecn, socket);
            return;
        }
        return;  // a full socket buffer (EAGAIN) drops it: QUIC's loss recovery sends it again
    }
}

void Endpoint::request_send(net::Connection& c) {
    dirty_.push_back(c.id());
    host_.datagram_output();
}

void Endpoint::close(net::Connection& c) { host_.close_datagram(c); }

void Endpoint::flush() {
    while (!dirty_.empty()) {
        sending_.swap(dirty_);
        for (net::ConnectionId id : sending_)
            if (Session* s = session(id)) s->write();
        sending_.clear();
    }
    arm_timer();
}

void Endpoint::shutdown() { stopping_ = true; }

void Endpoint::schedule(net::ConnectionId id, ngtcp2_tstamp& current, ngtcp2_tstamp expiry) {
    if (current == expiry) return;
    if (current != UINT64_MAX) {
        auto [first, last] = timers_.equal_range(current);
        for (auto it = first; it != last; ++it)
            if (it->second == id) {
                timers_.erase(it);
                break;
            }
    }
    current = expiry;
    if (expiry != UINT64_MAX) timers_.emplace(expiry, id);
}

void Endpoint::arm_timer() {
    const ngtcp2_tstamp next = timers_.empty() ? UINT64_MAX : timers_.begin()->first;
    if (next == armed_at_) return;
    armed_at_ = next;
    itimerspec spec{};
    if (next != UINT64_MAX) {
        const ngtcp2_tstamp now = timestamp();
        const ngtcp2_tstamp wait = next > now ? next - now : 1;  // 0 would disarm it
        spec.it_value.tv_sec = static_cast<time_t>(wait / 1'000'000'000);
        spec.it_value.tv_nsec = static_cast<long>(wait % 1'000'000'000);
    }
    timerfd_settime(timer_fd_, 0, &spec, nullptr);
}

void Endpoint::on_timer() {
    std::uint64_t expirations = 0;
    [[maybe_unused]] const ssize_t n = ::read(timer_fd_, &expirations, sizeof expirations);
    armed_at_ = UINT64_MAX;
    const ngtcp2_tstamp now = timestamp();
    std::vector<net::ConnectionId> due;
    while (!timers_.empty() && timers_.begin()->first <= now) {
        due.push_back(timers_.begin()->second);
        timers_.erase(timers_.begin());
    }
    for (net::ConnectionId id : due)
        if (Session* s = session(id)) {
            s->scheduled() = UINT64_MAX;  // its entry went above; the write after the expiry files the next
            s->on_expiry();
        }
    arm_timer();
}

}  // namespace detail

namespace {
// Keys of Retry and stateless-reset tokens and of session tickets: derived from the server's private key, so that
// every worker process
// of one `covet run` (and the next generation after a restart) issues and recognises the same tokens. A client
// whose packets reach another process (SO_REUSEPORT re-hashes when processes join the group) then gets a stateless
// reset it believes, and reconnects at once instead of waiting for its idle timeout. Random when the key cannot be
// read here.
// GnuTLS's anti-replay store for 0-RTT: 0 for a ClientHello not seen before, GNUTLS_E_DB_ENTRY_EXISTS for a replay.
int remember_hello(void* ptr, time_t expires, const gnutls_datum_t* key, const gnutls_datum_t*) {
    auto& shared = *static_cast<detail::Shared*>(ptr);
    const time_t now = std::time(nullptr);
    std::lock_guard lock(shared.replay_mutex);
    if (shared.seen_hellos.size() > 4096)
        std::erase_if(shared.seen_hellos, [now](const auto& entry) { return entry.second < now; });
    auto [it, fresh] =
        shared.seen_hellos.try_emplace(std::string(reinterpret_cast<const char*>(key->data), key->size), expires);
    if (!fresh && it->second >= now) return GNUTLS_E_DB_ENTRY_EXISTS;
    it->second = expires;
    return 0;
}

template <std::size_t N>
std::array<std::uint8_t, N> key_secret(const net::TlsConfig& tls, std::string_view label) {
    static_assert(N == 32 || N == 64);
    std::array<std::uint8_t, N> secret{};
    std::ifstream in(tls.certificates.front().key_file, std::ios::binary);
    std::string material(label);
    const std::size_t label_size = material.size();
    material.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (!in.bad() && material.size() > label_size &&
        gnutls_hash_fast(N == 32 ? GNUTLS_DIG_SHA256 : GNUTLS_DIG_SHA512, material.data(), material.size(),
                         secret.data()) == 0)
        return secret;
    gnutls_rnd(GNUTLS_RND_KEY, secret.data(), secret.size());
    return secret;
}
}  // namespace

Service make_service(const net::ServerConfig& config, RequestDispatcher& dispatcher) {
    if (!config.tls || config.tls->certificates.empty())
        throw std::runtime_error(
            "HTTP/3 needs TLS: set ServerConfig::tls with a certificate and key (QUIC always encrypts)");
    auto shared = std::make_shared<detail::Shared>(config, dispatcher);
    shared->set_credentials(std::make_shared<const detail::Credentials>(*config.tls));
    shared->secret = key_secret<32>(*config.tls, "covet http3 token secret v1\n");
    // Session tickets (resumption) from any worker process are accepted by the others for the same reason.
    shared->ticket_key = key_secret<64>(*config.tls, "covet http3 session ticket key v1\n");
    // 0-RTT requests would run before a client certificate is seen: none under mTLS.
    if (config.http3.early_data && config.tls->client_auth != net::ClientAuth::none)
        logging::warn("HTTP/3: 0-RTT (early_data) is off because client certificates are verified (mTLS)");
    else if (config.http3.early_data) {
        if (gnutls_anti_replay_init(&shared->anti_replay) != 0)
            throw std::runtime_error("HTTP/3: gnutls_anti_replay_init failed");
        gnutls_anti_replay_set_ptr(shared->anti_replay, shared.get());
        gnutls_anti_replay_set_add_function(shared->anti_replay, remember_hello);
    }
    Service service;
    service.factory = [shared](net::DatagramHost& host,
                               std::uint16_t tcp_port) -> std::unique_ptr<net::DatagramService> {
        const std::uint16_t port = shared->config.http3.port ? shared->config.http3.port : tcp_port;
        return std::make_unique<detail::Endpoint>(host, *shared, port);
    };
    service.reload_tls = [shared] {
        shared->set_credentials(std::make_shared<const detail::Credentials>(*shared->config.tls));
    };
    return service;
}

std::string alt_svc_value(const net::Http3Options& options, std::uint16_t udp_port) {
    return "h3=\":" + std::to_string(udp_port) + "\"; ma=" + std::to_string(options.alt_svc_max_age.count());
}

}  // namespace covet::http3
