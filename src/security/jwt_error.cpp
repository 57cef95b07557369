// Names and texts of JwtError (see covet/security/jwt_error.hpp). The texts go into HTTP headers
// (error_description): printable ASCII without '"' or '\'.
#include "covet/security/jwt_error.hpp"

namespace covet::security {

std::string_view jwt_error_name(JwtError e) noexcept {
    switch (e) {
        case JwtError::none: return "none";
        case JwtError::token_too_large: return "token_too_large";
        case JwtError::malformed: return "malformed";
        case JwtError::bad_base64: return "bad_base64";
        case JwtError::bad_json: return "bad_json";
        case JwtError::unsupported_algorithm: return "unsupported_algorithm";
        case JwtError::algorithm_not_allowed: return "algorithm_not_allowed";
        case JwtError::critical_header: return "critical_header";
        case JwtError::unknown_kid: return "unknown_kid";
        case JwtError::no_matching_key: return "no_matching_key";
        case JwtError::bad_signature: return "bad_signature";
        case JwtError::expired: return "expired";
        case JwtError::not_yet_valid: return "not_yet_valid";
        case JwtError::issued_in_future: return "issued_in_future";
        case JwtError::missing_claim: return "missing_claim";
        case JwtError::bad_claim: return "bad_claim";
        case JwtError::wrong_issuer: return "wrong_issuer";
        case JwtError::wrong_audience: return "wrong_audience";
        case JwtError::bad_key: return "bad_key";
    }
    return "unknown";
}

std::string_view jwt_error_message(JwtError e) noexcept {
    switch (e) {
        case JwtError::none: return "valid";
        case JwtError::token_too_large: return "token too large";
        case JwtError::malformed: return "malformed token (expected three base64url parts separated by dots)";
        case JwtError::bad_base64: return "token part is not valid base64url";
        case JwtError::bad_json: return "token header or claims are not a valid JSON object";
        case JwtError::unsupported_algorithm: return "unsupported signature algorithm";
        case JwtError::algorithm_not_allowed: return "signature algorithm not allowed";
        case JwtError::critical_header: return "unsupported critical header parameter";
        case JwtError::unknown_kid: return "unknown key id";
        case JwtError::no_matching_key: return "no key for this algorithm";
        case JwtError::bad_signature: return "invalid signature";
        case JwtError::expired: return "token expired";
        case JwtError::not_yet_valid: return "token not yet valid";
        case JwtError::issued_in_future: return "token issued in the future";
        case JwtError::missing_claim: return "required claim missing";
        case JwtError::bad_claim: return "claim of the wrong type";
        case JwtError::wrong_issuer: return "wrong issuer";
        case JwtError::wrong_audience: return "wrong audience";
        case JwtError::bad_key: return "unusable key";
    }
    return "invalid token";
}

}  // namespace covet::security
