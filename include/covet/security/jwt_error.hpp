// Why a JWT or a key was refused: an enum for code to branch on and a short fixed text for logs and for the
// error_description of a 401 (RFC 6750 §3). The texts name the cause and never quote the token or a key.
#pragma once

#include <string>
#include <string_view>

namespace covet::security {

enum class JwtError : unsigned char {
    none = 0,
    token_too_large,        // over VerifyOptions::max_token_bytes
    malformed,              // not three base64url parts separated by '.'
    bad_base64,             // a part is not strict base64url
    bad_json,               // the header or claims are not a JSON object within the limits
    unsupported_algorithm,  // alg missing, "none", or not one this library implements
    algorithm_not_allowed,  // alg not in the verifier's list, or not pinned by the key
    critical_header,        // a "crit" header names extensions this library does not implement
    unknown_kid,            // no key with the header's kid (a JWKS refresh may find it)
    no_matching_key,        // no key accepts this algorithm
    bad_signature,          // signature does not verify (or has the wrong length)
    expired,                // exp is past (beyond the leeway)
    not_yet_valid,          // nbf is ahead (beyond the leeway)
    issued_in_future,       // iat is ahead (beyond the leeway)
    missing_claim,          // a required claim is absent
    bad_claim,              // exp/nbf/iat not a number, or iss/aud/sub of the wrong type
    wrong_issuer,           // iss differs from the expected issuer
    wrong_audience,         // none of aud is an expected audience (or aud is present and none is expected)
    bad_key,                // a key (JWK/PEM/secret) is unusable: unsupported, malformed, too weak
};

// A stable identifier ("expired", "bad_signature", ...) and a sentence for humans.
std::string_view jwt_error_name(JwtError e) noexcept;
std::string_view jwt_error_message(JwtError e) noexcept;

// An error with an optional detail that is safe to show (which claim, which offset; never token bytes).
struct JwtStatus {
    JwtError code = JwtError::none;
    std::string detail;

    explicit operator bool() const noexcept { return code == JwtError::none; }
    // "token expired" / "malformed JSON in header: at offset 12".
    std::string message() const {
        std::string m(jwt_error_message(code));
        if (!detail.empty()) m.append(": ").append(detail);
        return m;
    }
};

}  // namespace covet::security
