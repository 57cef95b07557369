// TLS transport over memory BIOs: the reactor moves ciphertext between the socket and two in-memory BIOs,
// so the same code runs on io_uring and Asio. Nothing here throws into the reactor: failures return false
// (the connection sends the queued alert, then closes) and are logged one line per second at most.
#include "tls_transport.hpp"

#include "../logging.hpp"
#include "covet/metrics/http_metrics.hpp"
#include "covet/net/socket_send.hpp"

#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <sys/uio.h>

#include <array>
#include <atomic>
#include <cctype>
#include <cstdio>

namespace covet::net::tls {
namespace {

struct BioFree {
    void operator()(BIO* p) const noexcept { BIO_free(p); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

// A mem BIO that reports "retry" rather than EOF when empty: more bytes may arrive from the socket.
BioPtr make_mem_bio() {
    BioPtr b(BIO_new(BIO_s_mem()));
    if (b) BIO_set_mem_eof_return(b.get(), -1);
    return b;
}

// Mem BIO buffers keep their largest size; past this a drained BIO is replaced so that idle connections
// don't each pin a big buffer after one large transfer.
constexpr std::size_t bio_keep_capacity = std::size_t{64} * 1024;

bool oversized(BIO* b) {
    BUF_MEM* bm = nullptr;
    BIO_get_mem_ptr(b, &bm);
    return bm && bm->length == 0 && bm->max > bio_keep_capacity;
}

// ---- rate-limited logging: a flood of bad clients must not flood the log (one line/s per process) ----
std::atomic<std::int64_t> last_log_second{-1};
std::atomic<std::uint64_t> suppressed{0};

bool log_slot(std::uint64_t& dropped) noexcept {
    const std::int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
    std::int64_t last = last_log_second.load(std::memory_order_relaxed);
    if (last != now && last_log_second.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
        dropped = suppressed.exchange(0, std::memory_order_relaxed);
        return true;
    }
    suppressed.fetch_add(1, std::memory_order_relaxed);
    return false;
}

void log_event(std::string_view what, std::string_view detail) noexcept {
    std::uint64_t dropped = 0;
    if (!log_slot(dropped)) return;
    try {
        if (dropped)
            logging::warn("TLS: {}{}{} ({} similar events suppressed in the last second)", what,
                          detail.empty() ? "" : ": ", detail, dropped);
        else
            logging::warn("TLS: {}{}{}", what, detail.empty() ? "" : ": ", detail);
    } catch (...) {
    }
}

// Why the handshake failed, in words: the certificate verdict when that was the cause, else OpenSSL's reason.
std::string failure_reason(SSL* ssl) {
    std::string reason;
    const long verify = SSL_get_verify_result(ssl);
    const unsigned long code = ERR_peek_last_error();
    if (code != 0) {
        const char* r = ERR_reason_error_string(code);
        reason = r ? r : "error " + std::to_string(code);
    }
    if (verify != X509_V_OK) {
        if (!reason.empty()) reason += "; ";
        reason += "client certificate: ";
        reason += X509_verify_cert_error_string(verify);
    }
    if (reason.empty()) reason = "connection error";
    return reason;
}

// "GET / HTTP/1.1": a method token (3+ capital letters), then a space or the end of what arrived so far.
bool looks_like_http(std::span<const char> b) {
    std::size_t i = 0;
    while (i < b.size() && i < 16 && b[i] >= 'A' && b[i] <= 'Z') ++i;
    return i >= 3 && (i == b.size() || b[i] == ' ');
}

constexpr std::string_view https_only_body = "This port speaks HTTPS: use https:// to reach it.\n";

const std::string& https_only_response() {
    static const std::string r = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: " +
                                 std::to_string(https_only_body.size()) + "\r\nConnection: close\r\n\r\n" +
                                 std::string(https_only_body);
    return r;
}

// Plaintext chunks handed to the protocol are only valid during the call, so one buffer per worker thread
// serves every connection (a per-connection buffer would cost 16 KB x connections).
std::span<char> read_buffer() {
    thread_local std::vector<char> buf;
    if (buf.empty()) buf.resize(std::size_t{16} * 1024);
    return buf;
}

std::string subject_rfc2253(X509* cert) {
    BioPtr out = make_mem_bio();
    if (!out) return {};
    // RFC 2253, but UTF-8 kept as is rather than escaped byte by byte.
    X509_NAME_print_ex(out.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    BUF_MEM* bm = nullptr;
    BIO_get_mem_ptr(out.get(), &bm);
    return bm ? std::string(bm->data, bm->length) : std::string();
}

std::string common_name(X509* cert) {
    X509_NAME* subject = X509_get_subject_name(cert);
    const int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (idx < 0) return {};
    const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
    unsigned char* utf8 = nullptr;
    const int n = ASN1_STRING_to_UTF8(&utf8, s);
    if (n < 0) return {};
    std::string cn(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n));
    OPENSSL_free(utf8);
    return cn;
}

}  // namespace

TlsTransport::TlsTransport(std::shared_ptr<const Certs> certs, io::OutputQueue& wire)
    : certs_(std::move(certs)), wire_(wire) {
    SslPtr ssl(SSL_new(certs_->entries.front().ctx.get()));
    BioPtr r = make_mem_bio(), w = make_mem_bio();
    if (!ssl || !r || !w) return;  // valid() is false; make_transport reports it
    rbio_ = r.get();
    wbio_ = w.get();
    SSL_set_bio(ssl.get(), r.release(), w.release());
    SSL_set_accept_state(ssl.get());
    ssl_ = std::move(ssl);
}

TlsTransport::~TlsTransport() {
    // A connection that ends without close_notify would otherwise have its session evicted from the
    // server cache (OpenSSL treats it as possibly truncated); a healthy one stays resumable.
    if (ssl_ && handshake_done_ && !failed_) SSL_set_shutdown(ssl_.get(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
}

bool TlsTransport::on_receive(std::span<const char> wire, const std::function<void(std::span<const char>)>& deliver) {
    if (failed_ || !ssl_) return false;
    try {
        return receive(wire, deliver);
    } catch (const std::exception& e) {  // the reactor must never see an exception from here
        fail(e.what());
    } catch (...) {
        fail("unknown exception");
    }
    return false;
}

bool TlsTransport::receive(std::span<const char> wire, const std::function<void(std::span<const char>)>& deliver) {
    if (wire.empty()) return true;
    if (!sniffed_) {
        sniffed_ = true;
        // Every TLS connection opens with a handshake record (content type 22).
        if (static_cast<unsigned char>(wire[0]) != 0x16) return reject_non_tls(wire);
    }
    std::size_t written = 0;
    if (BIO_write_ex(rbio_, wire.data(), wire.size(), &written) != 1 || written != wire.size()) {
        fail("out of memory buffering input");
        return false;
    }
    SSL* ssl = ssl_.get();
    if (!handshake_done_) {
        ERR_clear_error();
        const int r = SSL_do_handshake(ssl);
        if (r != 1) {
            const int e = SSL_get_error(ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return true;
            failed_ = true;
            metrics::tls_handshake(false);
            log_event("handshake failed", failure_reason(ssl));
            ERR_clear_error();
            return false;
        }
        handshake_done_ = true;
        metrics::tls_handshake(true);
        fill_info();
    }
    const std::span<char> buf = read_buffer();
    for (;;) {
        std::size_t n = 0;
        ERR_clear_error();
        const int r = SSL_read_ex(ssl, buf.data(), buf.size(), &n);
        if (r == 1) {
            deliver({buf.data(), n});
            if (failed_) return false;
            continue;
        }
        const int e = SSL_get_error(ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
        if (e == SSL_ERROR_ZERO_RETURN) break;  // close_notify: the TCP EOF that follows ends the connection
        failed_ = true;
        log_event("connection failed", failure_reason(ssl));
        ERR_clear_error();
        return false;
    }
    if (oversized(rbio_)) {
        if (BioPtr fresh = make_mem_bio()) {
            rbio_ = fresh.get();
            SSL_set0_rbio(ssl, fresh.release());
        }
    }
    return true;
}

bool TlsTransport::reject_non_tls(std::span<const char> first) {
    failed_ = true;
    if (looks_like_http(first)) {
        // Answer in plaintext so that a browser or curl user sees what went wrong.
        wire_.append(std::string_view(https_only_response()));
        log_event("plain HTTP request on the TLS port", "answered 400 (use https://)");
    } else {
        char detail[64];
        std::snprintf(detail, sizeof detail, "first byte 0x%02x, closed", static_cast<unsigned char>(first[0]));
        log_event("not a TLS handshake", detail);
    }
    return false;
}

void TlsTransport::fill_info() {
    SSL* ssl = ssl_.get();
    info_.version = SSL_get_version(ssl);
    if (const SSL_CIPHER* c = SSL_get_current_cipher(ssl)) info_.cipher = SSL_CIPHER_get_name(c);
    const unsigned char* alpn = nullptr;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    info_.alpn = alpn ? std::string_view(reinterpret_cast<const char*>(alpn), alpn_len) : std::string_view();
    if (const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) info_.server_name = sni;
    info_.session_reused = SSL_session_reused(ssl) == 1;
    if (X509* peer = SSL_get0_peer_certificate(ssl)) {
        info_.client_verified = SSL_get_verify_result(ssl) == X509_V_OK;
        info_.client_subject = subject_rfc2253(peer);
        info_.client_common_name = common_name(peer);
    }
}

void TlsTransport::flush_to(io::OutputQueue& wire) {
    if (!ssl_) return;
    try {
        // Application data waits for the handshake; after a failure it is dropped (only the alert goes out).
        if (handshake_done_ && !failed_) {
            SSL* ssl = ssl_.get();
            std::array<iovec, io::OutputQueue::max_iovecs> iov;
            while (!plaintext_.empty() && !failed_) {
                const std::size_t n = plaintext_.prepare_send(iov);
                if (n == 0) {
                    // A file body: at most file_refill_bytes of it queued as ciphertext; the rest on refill.
                    if (!plaintext_.front_file().file || wire.size() >= file_refill_bytes) break;
                    if (!write_file(wire)) {
                        failed_ = true;
                        break;
                    }
                    if (wire.size() + BIO_ctrl_pending(wbio_) >= file_refill_bytes) break;  // the rest: refill
                    continue;
                }
                std::size_t done = 0;
                for (std::size_t i = 0; i < n; ++i) {
                    std::size_t w = 0;
                    ERR_clear_error();
                    if (SSL_write_ex(ssl, iov[i].iov_base, iov[i].iov_len, &w) != 1) {
                        failed_ = true;
                        log_event("write failed", failure_reason(ssl));
                        ERR_clear_error();
                        break;
                    }
                    done += w;
                    // Hand big bodies over in pieces so the wbio doesn't hold a second copy of all of it.
                    if (BIO_ctrl_pending(wbio_) >= std::size_t{256} * 1024) drain_wbio(wire);
                }
                plaintext_.consume(done);
            }
            if (failed_) plaintext_.clear();
        }
        drain_wbio(wire);
    } catch (...) {  // out of memory while queueing: give the connection up, not the reactor
        fail("out of memory queueing output");
    }
}

bool TlsTransport::write_file(io::OutputQueue& wire) {
    // One scratch buffer per thread: each piece is encrypted into the wbio before the next is read.
    static constexpr std::size_t piece = std::size_t{64} * 1024;
    thread_local std::unique_ptr<char[]> scratch;
    if (!scratch) scratch = std::make_unique<char[]>(piece);
    while (true) {
        const io::OutputQueue::FileChunk f = plaintext_.front_file();
        if (!f.file) return true;
        const ssize_t got = f.file->read_at(f.at, scratch.get(), piece);
        if (got <= 0) {
            log_event("connection closed", got == 0 ? io::file_shrank_message : "reading a file body failed");
            plaintext_.clear();
            return false;
        }
        std::size_t w = 0;
        ERR_clear_error();
        if (SSL_write_ex(ssl_.get(), scratch.get(), static_cast<std::size_t>(got), &w) != 1) {
            log_event("write failed", failure_reason(ssl_.get()));
            ERR_clear_error();
            plaintext_.clear();
            return false;
        }
        plaintext_.consume(w);
        drain_wbio(wire);
        if (wire.size() >= file_refill_bytes) return true;
    }
}

// Ciphertext → the wire queue: one copy, straight from the BIO into the queue's own buffer.
void TlsTransport::drain_wbio(io::OutputQueue& wire) {
    const std::size_t pending = BIO_ctrl_pending(wbio_);
    if (pending == 0) return;
    std::size_t got = 0;
    if (pending >= io::OutputQueue::own_segment_threshold) {
        std::string seg(pending, '\0');
        BIO_read_ex(wbio_, seg.data(), pending, &got);
        seg.resize(got);
        wire.append(std::move(seg));
    } else {
        std::string& tail = wire.tail();
        const std::size_t old = tail.size();
        tail.resize(old + pending);
        BIO_read_ex(wbio_, tail.data() + old, pending, &got);
        tail.resize(old + got);
        wire.note_tail_growth(got);
    }
    if (oversized(wbio_)) {
        if (BioPtr fresh = make_mem_bio()) {
            wbio_ = fresh.get();
            SSL_set0_wbio(ssl_.get(), fresh.release());
        }
    }
}

bool TlsTransport::expired(io::Clock::time_point now) const noexcept {
    if (handshake_done_ || now - accepted_ < certs_->handshake_timeout) return false;
    if (!timeout_logged_ && !failed_) {
        timeout_logged_ = true;
        metrics::tls_handshake(false);
        log_event("handshake timed out", "closed");
    }
    return true;
}

void TlsTransport::fail(const char* what) noexcept {
    failed_ = true;
    try {
        plaintext_.clear();
    } catch (...) {
    }
    ERR_clear_error();
    log_event("connection closed", what ? what : "");
}

}  // namespace covet::net::tls
