// JwtVerifier: checks a JWS compact token (RFC 7515 §7.1, RFC 7519) against a KeySet and the verifier's
// policy, with secure defaults:
//   - the accepted algorithms are given (no default list, "none" does not exist) and each key pins its own;
//   - the header is parsed, the signature checked, and only then the claims are parsed and checked;
//   - exp is required; exp/nbf/iat are checked with a leeway of at most max_leeway (5 minutes);
//   - iss must equal `issuer` when one is set; aud (a string or an array) must contain one of `audiences`
//     when set, and a token carrying aud is refused when no audience is configured (it was meant for
//     another service);
//   - a "crit" header is refused (no extension is implemented), duplicate JSON names are refused, and the
//     token size and JSON nesting are bounded before any parsing.
//
//     auto keys = std::make_shared<KeySet>(*KeySet::from_jwks_json(jwks_text, status));
//     JwtVerifier verifier({.algorithms = {JwtAlgorithm::RS256}, .issuer = "https://id.example.com",
//                           .audiences = {"api"}}, keys);
//     VerifiedToken token;
//     if (JwtStatus s = verifier.verify(bearer, token); !s) return unauthorized(s.message());
//     std::string_view subject = token.claims.string_member("sub");
//
// verify() is thread-safe and takes no lock beyond reading the current KeySet, which set_keys() replaces
// atomically (a JWKS refresh); verification uses the set taken at its start.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "covet/security/json.hpp"
#include "covet/security/jwk.hpp"
#include "covet/security/jwt_algorithm.hpp"
#include "covet/security/jwt_error.hpp"

namespace covet::security {

struct VerifyOptions {
    static constexpr std::chrono::seconds max_leeway{300};

    AlgorithmSet algorithms{};             // required: the algorithms this service accepts
    std::string issuer{};                  // "": iss not checked
    std::vector<std::string> audiences{};  // empty: a token with aud is refused
    std::chrono::seconds leeway{0};        // clock skew allowed on exp/nbf/iat, 0..max_leeway
    bool require_exp = true;
    bool require_iat = false;
    bool require_nbf = false;
    std::size_t max_token_bytes = 8192;
    json::Limits json_limits{.max_depth = 8, .max_members = 256};
    // Tokens already verified with the same KeySet, kept for their signature check (clients send the same
    // token with every request until it expires). A hit still re-checks exp/nbf/iat against the clock and
    // compares the whole token; only successes are kept; 0 turns the cache off.
    std::size_t cache_entries = 512;
};

struct VerifiedToken {
    JwtAlgorithm algorithm = JwtAlgorithm::HS256;
    std::string kid;
    json::Value header;
    json::Value claims;       // the claims set (an object)
    std::string claims_json;  // its decoded JSON text, as signed
};

class JwtVerifier {
public:
    // Throws std::invalid_argument for options that cannot be secure: no algorithms, a leeway out of range,
    // a max_token_bytes of 0.
    explicit JwtVerifier(VerifyOptions options, std::shared_ptr<const KeySet> keys = nullptr);

    const VerifyOptions& options() const noexcept { return options_; }
    void set_keys(std::shared_ptr<const KeySet> keys);
    std::shared_ptr<const KeySet> keys() const;

    // Verifies with the current keys at the current time.
    JwtStatus verify(std::string_view token, VerifiedToken& out) const;
    // With an explicit key set and time (seconds since the epoch): for tests and for callers that hold
    // their own key set (the Python binding).
    JwtStatus verify(std::string_view token, VerifiedToken& out, const KeySet& keys, std::int64_t now) const;

    // Cache hits so far (for tests and metrics).
    std::uint64_t cache_hits() const noexcept { return cache_hits_.load(std::memory_order_relaxed); }

private:
    struct CacheEntry {
        std::uint64_t key_set_id;
        std::shared_ptr<const VerifiedToken> token;
    };
    JwtStatus check_claims(const json::Value& claims, std::int64_t now) const;
    JwtStatus verify_uncached(std::string_view token, VerifiedToken& out, const KeySet& keys, std::int64_t now) const;
    VerifyOptions options_;
    mutable std::mutex cache_mutex_;
    mutable std::unordered_map<std::string, CacheEntry> cache_;
    mutable std::atomic<std::uint64_t> cache_hits_{0};
    mutable std::mutex keys_mutex_;  // guards keys_ (held only to copy the pointer)
    std::shared_ptr<const KeySet> keys_;
};

}  // namespace covet::security
