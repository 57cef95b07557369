// JWS compact verification and JWT claims checks (see covet/security/jwt_verifier.hpp).
#include "covet/security/jwt_verifier.hpp"

#include <stdexcept>

#include "covet/security/base64url.hpp"

namespace covet::security {

namespace {

JwtStatus error(JwtError code, std::string detail = {}) { return {code, std::move(detail)}; }

// A NumericDate claim: absent (false, ok), a number (true), or of another type (bad_claim).
bool numeric_date(const json::Value& claims, std::string_view name, double& out, JwtStatus& status) {
    const json::Value* v = claims.find(name);
    if (v == nullptr) return false;
    if (!v->is_number()) {
        status = error(JwtError::bad_claim, std::string(name) + " is not a number");
        return false;
    }
    out = v->as_number();
    return true;
}

}  // namespace

JwtVerifier::JwtVerifier(VerifyOptions options, std::shared_ptr<const KeySet> keys)
    : options_(std::move(options)), keys_(keys ? std::move(keys) : std::make_shared<const KeySet>()) {
    if (options_.algorithms.empty())
        throw std::invalid_argument("JwtVerifier: no algorithms accepted; list the ones your issuer signs with");
    if (options_.leeway.count() < 0 || options_.leeway > VerifyOptions::max_leeway)
        throw std::invalid_argument("JwtVerifier: leeway must be between 0 and 300 seconds");
    if (options_.max_token_bytes == 0 || options_.json_limits.max_depth == 0)
        throw std::invalid_argument("JwtVerifier: max_token_bytes and json_limits.max_depth must be positive");
}

void JwtVerifier::set_keys(std::shared_ptr<const KeySet> keys) {
    if (!keys) keys = std::make_shared<const KeySet>();
    const std::lock_guard lock(keys_mutex_);
    keys_.swap(keys);  // the old set is released outside the lock, when `keys` goes
}

std::shared_ptr<const KeySet> JwtVerifier::keys() const {
    const std::lock_guard lock(keys_mutex_);
    return keys_;
}

JwtStatus JwtVerifier::verify(std::string_view token, VerifiedToken& out) const {
    const auto now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    const std::shared_ptr<const KeySet> keys = this->keys();
    return verify(token, out, *keys, now);
}

JwtStatus JwtVerifier::verify(std::string_view token, VerifiedToken& out, const KeySet& keys, std::int64_t now) const {
    if (options_.cache_entries == 0 || token.size() > options_.max_token_bytes)
        return verify_uncached(token, out, keys, now);
    std::shared_ptr<const VerifiedToken> cached;
    {
        const std::lock_guard lock(cache_mutex_);
        // unordered_map<std::string> has no heterogeneous lookup in C++20's libstdc++ 12: one copy of the key.
        if (auto it = cache_.find(std::string(token)); it != cache_.end() && it->second.key_set_id == keys.id())
            cached = it->second.token;
    }
    if (cached) {
        cache_hits_.fetch_add(1, std::memory_order_relaxed);
        out = *cached;
        return check_claims(out.claims, now);  // the time checks are the clock's, never cached
    }
    JwtStatus status = verify_uncached(token, out, keys, now);
    if (!status) return status;
    auto entry = std::make_shared<const VerifiedToken>(out);
    const std::lock_guard lock(cache_mutex_);
    if (cache_.size() >= options_.cache_entries) cache_.erase(cache_.begin());  // any one: bounded, not LRU
    cache_.insert_or_assign(std::string(token), CacheEntry{keys.id(), std::move(entry)});
    return status;
}

JwtStatus JwtVerifier::verify_uncached(std::string_view token, VerifiedToken& out, const KeySet& keys,
                                       std::int64_t now) const {
    if (token.size() > options_.max_token_bytes) return error(JwtError::token_too_large);
    const std::size_t dot1 = token.find('.');
    const std::size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos || dot1 == 0)
        return error(JwtError::malformed);
    const std::string_view header_b64 = token.substr(0, dot1);
    const std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
    const std::string_view signature_b64 = token.substr(dot2 + 1);

    std::string buffer;
    std::string json_error;
    if (!base64url_decode(header_b64, buffer)) return error(JwtError::bad_base64, "header");
    if (!json::parse(buffer, out.header, json_error, options_.json_limits) || !out.header.is_object())
        return error(JwtError::bad_json, "header" + (json_error.empty() ? "" : ": " + json_error));

    const json::Value* alg_v = out.header.find("alg");
    if (alg_v == nullptr || !alg_v->is_string()) return error(JwtError::unsupported_algorithm, "no alg");
    const auto alg = parse_jwt_algorithm(alg_v->as_string());
    if (!alg) {
        const bool none = alg_v->as_string().size() == 4 && (alg_v->as_string()[0] | 0x20) == 'n' &&
                          (alg_v->as_string()[1] | 0x20) == 'o' && (alg_v->as_string()[2] | 0x20) == 'n' &&
                          (alg_v->as_string()[3] | 0x20) == 'e';
        return error(JwtError::unsupported_algorithm, none ? "alg none is never accepted" : "");
    }
    if (!options_.algorithms.contains(*alg))
        return error(JwtError::algorithm_not_allowed, std::string(jwt_algorithm_name(*alg)));
    if (out.header.find("crit") != nullptr) return error(JwtError::critical_header);
    const json::Value* kid_v = out.header.find("kid");
    if (kid_v != nullptr && !kid_v->is_string()) return error(JwtError::bad_json, "header: kid is not a string");
    out.algorithm = *alg;
    out.kid.assign(kid_v != nullptr ? kid_v->as_string() : std::string_view{});

    std::string signature;
    if (!base64url_decode(signature_b64, signature)) return error(JwtError::bad_base64, "signature");
    const std::string_view signing_input = token.substr(0, dot2);

    // The key: by kid when the header names one, else any key that accepts the algorithm.
    bool kid_found = false;
    bool alg_fits = false;
    bool verified = false;
    for (const JwtKey& key : keys.keys()) {
        if (kid_v != nullptr && key.kid() != out.kid) continue;
        kid_found = true;
        if (!key.accepts(*alg)) continue;
        alg_fits = true;
        if (key.verify(*alg, signing_input, signature)) {
            verified = true;
            break;
        }
    }
    if (kid_v != nullptr && !kid_found) return error(JwtError::unknown_kid);
    if (!alg_fits)
        return error(kid_v != nullptr ? JwtError::algorithm_not_allowed : JwtError::no_matching_key,
                     kid_v != nullptr ? "the key does not accept " + std::string(jwt_algorithm_name(*alg))
                                      : std::string(jwt_algorithm_name(*alg)));
    if (!verified) return error(JwtError::bad_signature);

    // Signed: now the claims.
    if (!base64url_decode(payload_b64, out.claims_json)) return error(JwtError::bad_base64, "payload");
    if (!json::parse(out.claims_json, out.claims, json_error, options_.json_limits) || !out.claims.is_object())
        return error(JwtError::bad_json, "claims" + (json_error.empty() ? "" : ": " + json_error));
    return check_claims(out.claims, now);
}

JwtStatus JwtVerifier::check_claims(const json::Value& claims, std::int64_t now_seconds) const {
    JwtStatus status;
    const auto now = static_cast<double>(now_seconds);
    const auto leeway = static_cast<double>(options_.leeway.count());
    double t = 0;
    if (numeric_date(claims, "exp", t, status)) {
        if (now - leeway >= t) return error(JwtError::expired);
    } else if (!status) {
        return status;
    } else if (options_.require_exp) {
        return error(JwtError::missing_claim, "exp");
    }
    if (numeric_date(claims, "nbf", t, status)) {
        if (now + leeway < t) return error(JwtError::not_yet_valid);
    } else if (!status) {
        return status;
    } else if (options_.require_nbf) {
        return error(JwtError::missing_claim, "nbf");
    }
    if (numeric_date(claims, "iat", t, status)) {
        if (now + leeway < t) return error(JwtError::issued_in_future);
    } else if (!status) {
        return status;
    } else if (options_.require_iat) {
        return error(JwtError::missing_claim, "iat");
    }
    if (const json::Value* sub = claims.find("sub"); sub != nullptr && !sub->is_string())
        return error(JwtError::bad_claim, "sub is not a string");

    if (!options_.issuer.empty()) {
        const json::Value* iss = claims.find("iss");
        if (iss == nullptr) return error(JwtError::missing_claim, "iss");
        if (!iss->is_string()) return error(JwtError::bad_claim, "iss is not a string");
        if (iss->as_string() != options_.issuer) return error(JwtError::wrong_issuer);
    }

    const json::Value* aud = claims.find("aud");
    if (options_.audiences.empty()) {
        if (aud != nullptr) return error(JwtError::wrong_audience, "this service expects no audience");
        return {};
    }
    if (aud == nullptr) return error(JwtError::missing_claim, "aud");
    auto expected = [&](std::string_view a) {
        for (const std::string& e : options_.audiences)
            if (e == a) return true;
        return false;
    };
    if (aud->is_string()) return expected(aud->as_string()) ? JwtStatus{} : error(JwtError::wrong_audience);
    if (!aud->is_array()) return error(JwtError::bad_claim, "aud is not a string or an array");
    bool match = false;
    for (const json::Value& a : aud->items()) {
        if (!a.is_string()) return error(JwtError::bad_claim, "aud holds a non-string");
        match = match || expected(a.as_string());
    }
    return match ? JwtStatus{} : error(JwtError::wrong_audience);
}

}  // namespace covet::security
