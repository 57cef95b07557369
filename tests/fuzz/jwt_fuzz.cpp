// JWT/JWS (include/covet/security): the strict JSON reader, strict base64url, JWK and JWK-set parsing (RSA,
// EC, OKP and octet keys into OpenSSL), and the verifier with fixed keys. A token with a fuzzed header and
// payload is also signed with the fixed HMAC key by the target itself, so that the checks after the
// signature (typ, crit, the claims: exp, nbf, iat, iss, aud) are reached, not only the parsing before it.
// Input: one byte of mode, then the text.
// Properties: no crash, leak or sanitizer report; base64url decoding is canonical (what decodes re-encodes
// to the same text); a refusal always names its error; a verified token's claims are an object.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdint>
#include <memory>
#include <string>

#include "covet/security/base64url.hpp"
#include "covet/security/json.hpp"
#include "covet/security/jwk.hpp"
#include "covet/security/jwt_verifier.hpp"
#include "fuzz_support.hpp"

namespace {

namespace sec = covet::security;
using covet_fuzz::check;

constexpr std::string_view secret = "fuzzing-secret-of-at-least-32-bytes!!";
constexpr std::int64_t now = 1'800'000'000;  // a fixed clock: the same input always takes the same path

const sec::KeySet& keys() {
    static const sec::KeySet set = [] {
        sec::JwtStatus st;
        auto key = sec::JwtKey::from_secret(secret, {}, "k1", st);
        check(key.has_value(), "the fixed key was refused");
        return sec::KeySet({*key});
    }();
    return set;
}

const sec::JwtVerifier& verifier() {
    static const sec::JwtVerifier v = [] {
        sec::VerifyOptions o;
        o.algorithms = {sec::JwtAlgorithm::HS256, sec::JwtAlgorithm::HS384, sec::JwtAlgorithm::HS512,
                        sec::JwtAlgorithm::RS256, sec::JwtAlgorithm::ES256, sec::JwtAlgorithm::EdDSA};
        o.issuer = "https://issuer.example";
        o.audiences = {"api"};
        o.leeway = std::chrono::seconds(30);
        o.cache_entries = 0;
        return sec::JwtVerifier(std::move(o));
    }();
    return v;
}

void verify(std::string_view token) {
    sec::VerifiedToken out;
    const sec::JwtStatus st = verifier().verify(token, out, keys(), now);
    if (st) {
        check(out.claims.is_object(), "verified claims that are not an object");
    } else {
        check(!st.message().empty(), "a refusal without a message");
    }
}

// header.payload + "." + HMAC-SHA256 signature with the fixed key.
std::string signed_token(std::string_view signing_input) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac, &mac_len);
    std::string token(signing_input);
    token += '.';
    token += sec::base64url_encode(std::string_view(reinterpret_cast<const char*>(mac), mac_len));
    return token;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    covet_fuzz::Input in(data, size);
    const std::uint8_t mode = in.byte();
    const std::string_view text = in.rest();
    switch (mode % 6) {
        case 0: {  // the JSON reader
            sec::json::Value v;
            std::string error;
            if (!sec::json::parse(text, v, error)) check(!error.empty(), "a JSON refusal without a reason");
            break;
        }
        case 1: {  // base64url
            std::string decoded;
            if (sec::base64url_decode(text, decoded))
                check(sec::base64url_encode(decoded) == text, "base64url decoding is not canonical");
            break;
        }
        case 2: {  // one JWK, and a JWK set
            sec::JwtStatus st;
            (void)sec::JwtKey::from_jwk_json(text, st);
            (void)sec::KeySet::from_jwks_json(text, st, nullptr, (mode & 0x80) != 0);
            break;
        }
        case 3:  // a whole token, as sent
            verify(text);
            break;
        case 4: {  // JSON header and claims, encoded and signed here: the claims checks are reached
            const std::size_t nl = text.find('\n');
            const std::string_view header = text.substr(0, nl);
            const std::string_view claims = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
            verify(signed_token(sec::base64url_encode(header) + "." + sec::base64url_encode(claims)));
            break;
        }
        default:  // the encoded header.payload as given, signed here
            verify(signed_token(text));
            break;
    }
    return 0;
}
