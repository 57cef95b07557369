// Verification keys for JWTs: JwtKey (one key, from a JWK per RFC 7517/7518/8037, a PEM public key, or an
// HMAC secret) and KeySet (a JWK Set: the keys an issuer publishes, looked up by "kid").
//
// Every key pins the algorithms it accepts: a JWK's "alg" when it has one, else every algorithm of its type
// (an RSA key: RS*/PS*; a P-256 key: ES256 only; Ed25519: EdDSA; an octet secret: the HS* its length allows).
// A key's type decides the family whatever else is configured, so a token cannot make an RSA or EC public
// key act as an HMAC secret. Weak keys are refused when made: RSA under 2048 bits, secrets under 32 bytes
// (and under the hash size for HS384/HS512, RFC 7518 §3.2), EC points not on their curve, and secrets that
// look like PEM or SSH public keys (the confusion again, by configuration).
//
// Keys are immutable and cheap to copy (the OpenSSL key is shared); verify() is thread-safe.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "covet/security/json.hpp"
#include "covet/security/jwt_algorithm.hpp"
#include "covet/security/jwt_error.hpp"

namespace covet::security {

class JwtKey {
public:
    // One JWK object: kty RSA (n, e), EC (crv P-256/P-384/P-521, x, y), OKP (crv Ed25519, x) or oct (k).
    // "use" other than "sig" and "key_ops" without "verify" make it unusable for verification (bad_key).
    static std::optional<JwtKey> from_jwk(const json::Value& jwk, JwtStatus& status);
    static std::optional<JwtKey> from_jwk_json(std::string_view text, JwtStatus& status);
    // A PEM SubjectPublicKeyInfo ("-----BEGIN PUBLIC KEY-----") or X.509 certificate; `algorithms` are
    // intersected with those its type allows (empty: all of them), and an empty result is an error.
    static std::optional<JwtKey> from_pem(std::string_view pem, AlgorithmSet algorithms, std::string kid,
                                          JwtStatus& status);
    // An HMAC secret for HS256/384/512 (`algorithms` empty: those its length allows).
    static std::optional<JwtKey> from_secret(std::string_view secret, AlgorithmSet algorithms, std::string kid,
                                             JwtStatus& status);

    std::string_view kid() const noexcept { return kid_; }
    KeyType type() const noexcept { return type_; }
    AlgorithmSet algorithms() const noexcept { return algorithms_; }
    bool accepts(JwtAlgorithm a) const noexcept { return algorithms_.contains(a) && key_type_for(a) == type_; }

    // Whether `signature` (the decoded third part) signs `signing_input` ("header.payload") with `alg`.
    // False too when the key does not accept `alg`. Constant-time for HMAC.
    bool verify(JwtAlgorithm alg, std::string_view signing_input, std::string_view signature) const noexcept;

    struct Native;  // the OpenSSL key or the secret (src/security/jwk.cpp)

private:
    JwtKey(std::shared_ptr<const Native> native, KeyType type, AlgorithmSet algorithms, std::string kid)
        : native_(std::move(native)), type_(type), algorithms_(algorithms), kid_(std::move(kid)) {}
    static std::optional<JwtKey> make(std::shared_ptr<Native> native, KeyType type, AlgorithmSet requested,
                                      std::string kid, JwtStatus& status);
    std::shared_ptr<const Native> native_;
    KeyType type_;
    AlgorithmSet algorithms_;
    std::string kid_;
};

class KeySet {
public:
    KeySet() = default;
    explicit KeySet(std::vector<JwtKey> keys) : keys_(std::move(keys)) {}
    // A copy is another set (its own id): JwtVerifier's cache of verified tokens never carries a result
    // over from one set to another, whatever keys either holds.
    KeySet(const KeySet& other) : keys_(other.keys_) {}
    KeySet& operator=(const KeySet& other) {
        keys_ = other.keys_;
        id_ = next_id();
        return *this;
    }
    KeySet(KeySet&&) = default;
    KeySet& operator=(KeySet&&) = default;
    ~KeySet() = default;

    // Unique among the sets of this process (a verified-token cache key; add() keeps it: adding keys
    // never invalidates a verification already made).
    std::uint64_t id() const noexcept { return id_; }

    // A JWK Set document ({"keys": [...]}). Keys this library cannot use (another kty or curve, "use":
    // "enc", too weak) are skipped, not fatal: an issuer may publish encryption keys next to signing ones;
    // `skipped` (optional) receives why each was. Octet keys (HMAC secrets) are skipped too unless
    // `allow_secrets`: a secret in a published JWKS is a secret anyone can read. Fails only when the
    // document itself is not a JWK Set.
    static std::optional<KeySet> from_jwks_json(std::string_view text, JwtStatus& status,
                                                std::vector<std::string>* skipped = nullptr,
                                                bool allow_secrets = false);

    void add(JwtKey key) { keys_.push_back(std::move(key)); }
    const std::vector<JwtKey>& keys() const noexcept { return keys_; }
    std::size_t size() const noexcept { return keys_.size(); }
    bool has_kid(std::string_view kid) const noexcept {
        for (const JwtKey& k : keys_)
            if (k.kid() == kid) return true;
        return false;
    }

private:
    static std::uint64_t next_id() noexcept {
        static std::atomic<std::uint64_t> counter{0};
        return counter.fetch_add(1, std::memory_order_relaxed) + 1;
    }
    std::vector<JwtKey> keys_;
    std::uint64_t id_ = next_id();
};

}  // namespace covet::security
