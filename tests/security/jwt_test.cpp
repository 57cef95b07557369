// JWT verification (covet/security): strict base64url and JSON, every algorithm with keys made here by
// OpenSSL (JWK and PEM), the RFC 7515 A.1 and RFC 8037 A.4 examples, and the attacks: alg none, algorithm
// confusion, tampering, claims out of range, unknown kid, oversize and malformed input.
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "covet/covet.hpp"
#include "covet/security/base64url.hpp"
#include "covet/security/json.hpp"
#include "covet/security/jwk.hpp"
#include "covet/security/jwt_middleware.hpp"
#include "covet/security/jwt_verifier.hpp"
#include "support/http_client.hpp"

using namespace covet::security;

namespace {

constexpr std::int64_t now = 1'700'000'000;

struct PkeyFree {
    void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

Pkey keygen(const char* type, const char* curve_or_null, std::size_t rsa_bits = 2048) {
    if (std::string_view(type) == "RSA") return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", rsa_bits));
    if (curve_or_null != nullptr) return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve_or_null));
    return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, type));
}

// Keys made once: RSA generation is slow under the sanitizers.
EVP_PKEY* rsa_key() {
    static Pkey k = keygen("RSA", nullptr);
    return k.get();
}
EVP_PKEY* p256_key() {
    static Pkey k = keygen("EC", "P-256");
    return k.get();
}
EVP_PKEY* p384_key() {
    static Pkey k = keygen("EC", "P-384");
    return k.get();
}
EVP_PKEY* ed25519_key() {
    static Pkey k = keygen("ED25519", nullptr);
    return k.get();
}

const EVP_MD* md_of(JwtAlgorithm a) {
    const std::string_view n = jwt_algorithm_name(a);
    if (n == "EdDSA") return nullptr;
    if (n.ends_with("256")) return EVP_sha256();
    if (n.ends_with("384")) return EVP_sha384();
    return EVP_sha512();
}

std::string b64(std::string_view s) { return base64url_encode(s); }

std::string bn_bytes(const BIGNUM* bn, int pad = 0) {
    std::string out(static_cast<std::size_t>(pad > 0 ? pad : BN_num_bytes(bn)), '\0');
    BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size()));
    return out;
}

// The signature of `input` as JWS carries it (ES: raw r||s).
std::string sign(JwtAlgorithm alg, EVP_PKEY* key, std::string_view input, std::string_view secret = {}) {
    std::string sig(1024, '\0');
    std::size_t len = sig.size();
    const auto* data = reinterpret_cast<const unsigned char*>(input.data());
    if (key_type_for(alg) == KeyType::oct) {
        unsigned int mac_len = 0;
        HMAC(md_of(alg), secret.data(), static_cast<int>(secret.size()), data, input.size(),
             reinterpret_cast<unsigned char*>(sig.data()), &mac_len);
        sig.resize(mac_len);
        return sig;
    }
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX* pctx = nullptr;
    EXPECT_EQ(EVP_DigestSignInit(ctx, &pctx, md_of(alg), nullptr, key), 1);
    if (jwt_algorithm_name(alg).starts_with("PS")) {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    }
    EXPECT_EQ(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len, data, input.size()), 1);
    EVP_MD_CTX_free(ctx);
    sig.resize(len);
    if (key_type_for(alg) == KeyType::ec) {
        const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
        ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
        const int n = alg == JwtAlgorithm::ES256 ? 32 : alg == JwtAlgorithm::ES384 ? 48 : 66;
        std::string raw = bn_bytes(ECDSA_SIG_get0_r(es), n) + bn_bytes(ECDSA_SIG_get0_s(es), n);
        ECDSA_SIG_free(es);
        return raw;
    }
    return sig;
}

std::string token(JwtAlgorithm alg, EVP_PKEY* key, std::string_view header_json, std::string_view claims_json,
                  std::string_view secret = {}) {
    std::string input = b64(header_json) + "." + b64(claims_json);
    return input + "." + b64(sign(alg, key, input, secret));
}

std::string header_for(JwtAlgorithm alg, std::string_view kid = "k1") {
    return R"({"alg":")" + std::string(jwt_algorithm_name(alg)) + R"(","typ":"JWT","kid":")" + std::string(kid) + "\"}";
}

const std::string good_claims = R"({"sub":"user-1","iss":"https://issuer.test","aud":"api","exp":1700000600,)"
                                R"("iat":1699999990,"nbf":1699999990})";

std::string jwk_of(EVP_PKEY* key, std::string_view kid, std::string_view extra = "") {
    std::string j;
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
        BIGNUM *n = nullptr, *e = nullptr;
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n);
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e);
        j = R"({"kty":"RSA","n":")" + b64(bn_bytes(n)) + R"(","e":")" + b64(bn_bytes(e)) + "\"";
        BN_free(n);
        BN_free(e);
    } else if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
        BIGNUM *x = nullptr, *y = nullptr;
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &x);
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &y);
        const int size = EVP_PKEY_get_bits(key) == 256 ? 32 : 48;
        j = R"({"kty":"EC","crv":")" + std::string(size == 32 ? "P-256" : "P-384") + R"(","x":")" +
            b64(bn_bytes(x, size)) + R"(","y":")" + b64(bn_bytes(y, size)) + "\"";
        BN_free(x);
        BN_free(y);
    } else {
        std::string raw(32, '\0');
        std::size_t len = raw.size();
        EVP_PKEY_get_raw_public_key(key, reinterpret_cast<unsigned char*>(raw.data()), &len);
        j = R"({"kty":"OKP","crv":"Ed25519","x":")" + b64(raw) + "\"";
    }
    return j + R"(,"kid":")" + std::string(kid) + "\"" + std::string(extra) + "}";
}

std::string pem_of(EVP_PKEY* key) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, key);
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<std::size_t>(len));
    BIO_free(bio);
    return pem;
}

JwtKey must(std::optional<JwtKey> key, const JwtStatus& status) {
    EXPECT_TRUE(key.has_value()) << status.message();
    return std::move(*key);
}

VerifyOptions options(AlgorithmSet algs) {
    VerifyOptions o;
    o.algorithms = algs;
    o.issuer = "https://issuer.test";
    o.audiences = {"api"};
    return o;
}

JwtError check(const JwtVerifier& v, const KeySet& keys, std::string_view tok, std::int64_t at = now) {
    VerifiedToken out;
    return v.verify(tok, out, keys, at).code;
}

const std::string secret(48, 's');

}  // namespace

TEST(Base64Url, StrictDecoding) {
    std::string out;
    EXPECT_TRUE(base64url_decode("aGVsbG8", out));
    EXPECT_EQ(out, "hello");
    EXPECT_EQ(base64url_encode("hello"), "aGVsbG8");
    EXPECT_TRUE(base64url_decode("", out));
    EXPECT_FALSE(base64url_decode("aGVsbG8=", out));  // padding
    EXPECT_FALSE(base64url_decode("a+8", out));       // standard alphabet
    EXPECT_FALSE(base64url_decode("a/8", out));
    EXPECT_FALSE(base64url_decode("aGVsb", out));    // 1 mod 4
    EXPECT_FALSE(base64url_decode("aGVsbG9", out));  // non-zero leftover bits: another spelling of "hello"
    EXPECT_FALSE(base64url_decode("aGV sbG8", out));
    for (int n = 0; n < 40; ++n) {
        std::string bytes;
        for (int i = 0; i < n; ++i) bytes.push_back(static_cast<char>(i * 37 + n));
        ASSERT_TRUE(base64url_decode(base64url_encode(bytes), out));
        EXPECT_EQ(out, bytes);
    }
}

TEST(Json, StrictAndBounded) {
    json::Value v;
    std::string err;
    ASSERT_TRUE(json::parse(R"( {"a":[1,-2.5e3,true,null,"x\u00e9\ud83d\ude00"],"b":{}} )", v, err)) << err;
    EXPECT_EQ(v.find("a")->items()[1].as_number(), -2500);
    EXPECT_EQ(v.find("a")->items()[4].as_string(), "x\xc3\xa9\xf0\x9f\x98\x80");
    for (const char* bad : {R"({"a":1,"a":2})", R"({"a":1,})", "[01]", "[1.]", R"(["\ud800"])", "{'a':1}", "[NaN]",
                            "[1] x", "\"a\x01\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "[", "{\"a\"1}"}) {
        EXPECT_FALSE(json::parse(bad, v, err)) << bad;
        EXPECT_FALSE(err.empty());
    }
    EXPECT_FALSE(json::parse("[1e999]", v, err));  // beyond a double: refused, not infinity
    ASSERT_TRUE(json::parse("[1.5e2,123456789012345678901234567890]", v, err)) << err;
    EXPECT_EQ(v.items()[0].as_number(), 150);
    EXPECT_EQ(v.items()[1].number_text(), "123456789012345678901234567890");
    std::string deep(20, '[');
    deep += std::string(20, ']');
    EXPECT_FALSE(json::parse(deep, v, err, {.max_depth = 16}));
    EXPECT_NE(err.find("nested too deep"), std::string::npos);
    EXPECT_TRUE(json::parse(deep, v, err, {.max_depth = 20}));
    EXPECT_FALSE(json::parse("[1,2,3,4]", v, err, {.max_depth = 4, .max_members = 3}));
}

// RFC 7515 Appendix A.1: HS256 with the RFC's key and token (exp 1300819380).
TEST(JwtVectors, Rfc7515HS256) {
    JwtStatus st;
    auto key = must(
        JwtKey::from_jwk_json(
            R"({"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"})",
            st),
        st);
    KeySet keys({key});
    VerifyOptions o;
    o.algorithms = {JwtAlgorithm::HS256};
    o.issuer = "joe";
    JwtVerifier v(o);
    const std::string tok =
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
        "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    VerifiedToken out;
    JwtStatus s = v.verify(tok, out, keys, 1300819370);
    ASSERT_TRUE(s) << s.message();
    EXPECT_TRUE(out.claims.find("http://example.com/is_root")->as_bool());
    EXPECT_EQ(check(v, keys, tok, 1300819380), JwtError::expired);
    std::string tampered = tok;
    tampered[tampered.size() - 2] = tampered[tampered.size() - 2] == 'X' ? 'Y' : 'X';
    EXPECT_NE(check(v, keys, tampered, 1300819370), JwtError::none);
}

// RFC 8037 Appendix A.4: Ed25519 over "Example of Ed25519 signing" (not a claims set: the key is checked).
TEST(JwtVectors, Rfc8037Ed25519) {
    JwtStatus st;
    auto key = must(
        JwtKey::from_jwk_json(R"({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})", st),
        st);
    std::string sig;
    ASSERT_TRUE(base64url_decode(
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg", sig));
    const std::string input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    EXPECT_TRUE(key.verify(JwtAlgorithm::EdDSA, input, sig));
    EXPECT_FALSE(key.verify(JwtAlgorithm::EdDSA, input + "x", sig));
    EXPECT_FALSE(key.verify(JwtAlgorithm::ES256, input, sig));
}

TEST(JwtAlgorithms, EveryAlgorithmThroughJwkAndPem) {
    struct Case {
        JwtAlgorithm alg;
        EVP_PKEY* key;
    };
    const Case cases[] = {
        {JwtAlgorithm::RS256, rsa_key()},  {JwtAlgorithm::RS384, rsa_key()},  {JwtAlgorithm::RS512, rsa_key()},
        {JwtAlgorithm::PS256, rsa_key()},  {JwtAlgorithm::PS384, rsa_key()},  {JwtAlgorithm::PS512, rsa_key()},
        {JwtAlgorithm::ES256, p256_key()}, {JwtAlgorithm::ES384, p384_key()}, {JwtAlgorithm::EdDSA, ed25519_key()}};
    for (const Case& c : cases) {
        SCOPED_TRACE(std::string(jwt_algorithm_name(c.alg)));
        JwtStatus st;
        KeySet by_jwk({must(JwtKey::from_jwk_json(jwk_of(c.key, "k1"), st), st)});
        KeySet by_pem({must(JwtKey::from_pem(pem_of(c.key), {c.alg}, "k1", st), st)});
        JwtVerifier v(options({c.alg}));
        const std::string tok = token(c.alg, c.key, header_for(c.alg), good_claims);
        VerifiedToken out;
        JwtStatus s = v.verify(tok, out, by_jwk, now);
        ASSERT_TRUE(s) << s.message();
        EXPECT_EQ(out.claims.string_member("sub"), "user-1");
        EXPECT_EQ(out.algorithm, c.alg);
        EXPECT_EQ(out.kid, "k1");
        EXPECT_EQ(check(v, by_pem, tok), JwtError::none);
        // One flipped bit anywhere in the signature.
        std::string sig;
        ASSERT_TRUE(base64url_decode(tok.substr(tok.rfind('.') + 1), sig));
        sig[sig.size() / 2] = static_cast<char>(sig[sig.size() / 2] ^ 0x01);
        EXPECT_EQ(check(v, by_jwk, tok.substr(0, tok.rfind('.') + 1) + b64(sig)), JwtError::bad_signature);
        // The claims changed after signing.
        const std::string forged = b64(header_for(c.alg)) + "." +
                                   b64(R"({"sub":"admin","iss":"https://issuer.test","aud":"api","exp":1700000600})") +
                                   tok.substr(tok.rfind('.'));
        EXPECT_EQ(check(v, by_jwk, forged), JwtError::bad_signature);
    }
    for (JwtAlgorithm alg : {JwtAlgorithm::HS256, JwtAlgorithm::HS384}) {
        JwtStatus st;
        KeySet keys({must(JwtKey::from_secret(secret, {}, "k1", st), st)});
        JwtVerifier v(options({alg}));
        EXPECT_EQ(check(v, keys, token(alg, nullptr, header_for(alg), good_claims, secret)), JwtError::none);
        EXPECT_EQ(check(v, keys, token(alg, nullptr, header_for(alg), good_claims, std::string(48, 't'))),
                  JwtError::bad_signature);
    }
    // HS512 needs a 64-byte secret (RFC 7518 §3.2): a 48-byte one does not accept it.
    JwtStatus st;
    EXPECT_FALSE(JwtKey::from_secret(secret, {JwtAlgorithm::HS512}, "", st));
    EXPECT_FALSE(must(JwtKey::from_secret(secret, {}, "", st), st).accepts(JwtAlgorithm::HS512));
    KeySet keys({must(JwtKey::from_secret(std::string(64, 'z'), {}, "k1", st), st)});
    EXPECT_EQ(
        check(JwtVerifier(options({JwtAlgorithm::HS512})), keys,
              token(JwtAlgorithm::HS512, nullptr, header_for(JwtAlgorithm::HS512), good_claims, std::string(64, 'z'))),
        JwtError::none);
}

TEST(JwtAttacks, AlgNoneIsNeverAccepted) {
    JwtStatus st;
    KeySet keys({must(JwtKey::from_secret(secret, {}, "k1", st), st)});
    JwtVerifier v(options({JwtAlgorithm::HS256}));
    for (const char* alg : {"none", "None", "NONE"}) {
        const std::string tok = b64(R"({"alg":")" + std::string(alg) + R"("})") + "." + b64(good_claims) + ".";
        VerifiedToken out;
        const JwtStatus s = v.verify(tok, out, keys, now);
        EXPECT_EQ(s.code, JwtError::unsupported_algorithm);
        EXPECT_EQ(s.message(), "unsupported signature algorithm: alg none is never accepted");
    }
    EXPECT_EQ(check(v, keys, b64(R"({"typ":"JWT"})") + "." + b64(good_claims) + ".x"), JwtError::unsupported_algorithm);
    EXPECT_EQ(check(v, keys, b64(R"({"alg":1})") + "." + b64(good_claims) + ".x"), JwtError::unsupported_algorithm);
}

// The classic confusion: a token signed with HS256 using the RSA public key (PEM) as the secret.
TEST(JwtAttacks, RsaPublicKeyAsHmacSecretIsRefused) {
    const std::string pem = pem_of(rsa_key());
    JwtStatus st;
    KeySet keys({must(JwtKey::from_pem(pem, {}, "k1", st), st)});
    // Even a verifier configured to accept both families refuses it: the key's type decides.
    JwtVerifier both(options({JwtAlgorithm::RS256, JwtAlgorithm::HS256}));
    const std::string forged = token(JwtAlgorithm::HS256, nullptr, header_for(JwtAlgorithm::HS256), good_claims, pem);
    EXPECT_EQ(check(both, keys, forged), JwtError::algorithm_not_allowed);
    const std::string no_kid = token(JwtAlgorithm::HS256, nullptr, R"({"alg":"HS256"})", good_claims, pem);
    EXPECT_EQ(check(both, keys, no_kid), JwtError::no_matching_key);
    EXPECT_EQ(check(JwtVerifier(options({JwtAlgorithm::RS256})), keys, forged), JwtError::algorithm_not_allowed);
    // And the configuration cannot make the PEM a secret either.
    EXPECT_FALSE(JwtKey::from_secret(pem, {}, "k1", st));
    EXPECT_EQ(st.code, JwtError::bad_key);
    EXPECT_FALSE(JwtKey::from_pem(pem, {JwtAlgorithm::HS256}, "k1", st));
    // An EC key never verifies RS256, nor a P-256 key ES384.
    KeySet ec({must(JwtKey::from_jwk_json(jwk_of(p256_key(), "k1"), st), st)});
    EXPECT_EQ(check(JwtVerifier(options({JwtAlgorithm::ES384})), ec,
                    token(JwtAlgorithm::ES384, p384_key(), header_for(JwtAlgorithm::ES384), good_claims)),
              JwtError::algorithm_not_allowed);
    // A JWK pinned to RS256 refuses PS256 even with the same key.
    KeySet pinned({must(JwtKey::from_jwk_json(jwk_of(rsa_key(), "k1", R"(,"alg":"RS256")"), st), st)});
    EXPECT_EQ(check(JwtVerifier(options({JwtAlgorithm::PS256})), pinned,
                    token(JwtAlgorithm::PS256, rsa_key(), header_for(JwtAlgorithm::PS256), good_claims)),
              JwtError::algorithm_not_allowed);
}

TEST(JwtClaims, TimesWithBoundedLeeway) {
    JwtStatus st;
    KeySet keys({must(JwtKey::from_secret(secret, {}, "k1", st), st)});
    auto tok = [&](std::string claims) {
        return token(JwtAlgorithm::HS256, nullptr, header_for(JwtAlgorithm::HS256), claims, secret);
    };
    const std::string base = R"("iss":"https://issuer.test","aud":"api")";
    JwtVerifier strict(options({JwtAlgorithm::HS256}));
    EXPECT_EQ(check(strict, keys, tok("{" + base + R"(,"exp":1700000000})")), JwtError::expired);  // exp == now
    EXPECT_EQ(check(strict, keys, tok("{" + base + R"(,"exp":1700000001})")), JwtError::none);
    EXPECT_EQ(check(strict, keys, tok("{" + base + R"(,"exp":1700000600,"nbf":1700000030})")), JwtError::not_yet_valid);
    EXPECT_EQ(check(strict, keys, tok("{" + base + R"(,"exp":1700000600,"iat":1700000030})")),
              JwtError::issued_in_future);
    EXPECT_EQ(check(strict, keys, tok("{" + base + "}")), JwtError::missing_claim);
    EXPECT_EQ(check(strict, keys, tok("{" + base + R"(,"exp":"1700000600"})")), JwtError::bad_claim);
    VerifyOptions o = options({JwtAlgorithm::HS256});
    o.leeway = std::chrono::seconds(60);
    JwtVerifier lenient(o);
    EXPECT_EQ(check(lenient, keys, tok("{" + base + R"(,"exp":1699999950})")), JwtError::none);
    EXPECT_EQ(check(lenient, keys, tok("{" + base + R"(,"exp":1699999930})")), JwtError::expired);
    EXPECT_EQ(check(lenient, keys, tok("{" + base + R"(,"exp":1700000600,"nbf":1700000050})")), JwtError::none);
    o.leeway = std::chrono::seconds(301);
    EXPECT_THROW(JwtVerifier{o}, std::invalid_argument);
    EXPECT_THROW(JwtVerifier{VerifyOptions{}}, std::invalid_argument);
}

TEST(JwtClaims, IssuerAndAudience) {
    JwtStatus st;
    KeySet keys({must(JwtKey::from_secret(secret, {}, "k1", st), st)});
    auto tok = [&](std::string claims) {
        return token(JwtAlgorithm::HS256, nullptr, header_for(JwtAlgorithm::HS256), claims, secret);
    };
    VerifyOptions o = options({JwtAlgorithm::HS256});
    o.audiences = {"api", "api2"};
    JwtVerifier v(o);
    const std::string exp = R"("exp":1700000600)";
    EXPECT_EQ(check(v, keys, tok(R"({"iss":"https://issuer.test","aud":["x","api2"],)" + exp + "}")), JwtError::none);
    EXPECT_EQ(check(v, keys, tok(R"({"iss":"https://issuer.test","aud":["x","y"],)" + exp + "}")),
              JwtError::wrong_audience);
    EXPECT_EQ(check(v, keys, tok(R"({"iss":"https://issuer.test","aud":"other",)" + exp + "}")),
              JwtError::wrong_audience);
    EXPECT_EQ(check(v, keys, tok(R"({"iss":"https://issuer.test","aud":[1],)" + exp + "}")), JwtError::bad_claim);
    EXPECT_EQ(check(v, keys, tok(R"({"iss":"https://issuer.test",)" + exp + "}")), JwtError::missing_claim);
    EXPECT_EQ(check(v, keys, tok(R"({"iss":"https://evil.test","aud":"api",)" + exp + "}")), JwtError::wrong_issuer);
    EXPECT_EQ(check(v, keys, tok(R"({"aud":"api",)" + exp + "}")), JwtError::missing_claim);
    // A token meant for some audience is refused by a service that expects none.
    VerifyOptions none = options({JwtAlgorithm::HS256});
    none.audiences.clear();
    EXPECT_EQ(check(JwtVerifier(none), keys, tok(R"({"iss":"https://issuer.test","aud":"api",)" + exp + "}")),
              JwtError::wrong_audience);
    EXPECT_EQ(check(JwtVerifier(none), keys, tok(R"({"iss":"https://issuer.test",)" + exp + "}")), JwtError::none);
}

TEST(JwtAttacks, MalformedOversizeAndUnknownKid) {
    JwtStatus st;
    KeySet keys({must(JwtKey::from_jwk_json(jwk_of(p256_key(), "k1"), st), st)});
    JwtVerifier v(options({JwtAlgorithm::ES256}));
    const std::string good = token(JwtAlgorithm::ES256, p256_key(), header_for(JwtAlgorithm::ES256), good_claims);
    ASSERT_EQ(check(v, keys, good), JwtError::none);
    EXPECT_EQ(
        check(v, keys, token(JwtAlgorithm::ES256, p256_key(), header_for(JwtAlgorithm::ES256, "k2"), good_claims)),
        JwtError::unknown_kid);
    EXPECT_EQ(check(v, keys, good + ".x"), JwtError::malformed);
    EXPECT_EQ(check(v, keys, "abc"), JwtError::malformed);
    EXPECT_EQ(check(v, keys, ".a.b"), JwtError::malformed);
    EXPECT_EQ(check(v, keys, "e30=." + good.substr(good.find('.') + 1)), JwtError::bad_base64);
    EXPECT_EQ(check(v, keys, b64("{\"alg\":") + "." + b64(good_claims) + ".AA"), JwtError::bad_json);
    EXPECT_EQ(check(v, keys, b64(R"({"alg":"ES256","alg":"HS256"})") + "." + b64(good_claims) + ".AA"),
              JwtError::bad_json);
    EXPECT_EQ(check(v, keys, b64(R"({"alg":"ES256","crit":["exp"]})") + "." + b64(good_claims) + ".AA"),
              JwtError::critical_header);
    EXPECT_EQ(check(v, keys, good.substr(0, good.rfind('.') + 1) + "!!"), JwtError::bad_base64);
    // A valid signature over claims that are not JSON, nested too deep, or with duplicate names.
    for (const char* claims : {"not json", R"({"a":[[[[[[[[[[1]]]]]]]]]],"exp":1700000600})",
                               R"({"sub":"a","sub":"admin","exp":1700000600})", "[1]"}) {
        SCOPED_TRACE(claims);
        EXPECT_EQ(check(v, keys, token(JwtAlgorithm::ES256, p256_key(), header_for(JwtAlgorithm::ES256), claims)),
                  JwtError::bad_json);
    }
    std::string big = R"({"exp":1700000600,"pad":")" + std::string(9000, 'a') + "\"}";
    EXPECT_EQ(check(v, keys, token(JwtAlgorithm::ES256, p256_key(), header_for(JwtAlgorithm::ES256), big)),
              JwtError::token_too_large);
    // ES256 signatures are exactly 64 bytes (r||s): a DER signature of the same input is refused.
    std::string sig;
    base64url_decode(good.substr(good.rfind('.') + 1), sig);
    EXPECT_EQ(check(v, keys, good.substr(0, good.rfind('.') + 1) + b64(sig.substr(0, 63))), JwtError::bad_signature);
}

TEST(Jwk, RefusesWeakOrUnusableKeys) {
    JwtStatus st;
    Pkey small = keygen("RSA", nullptr, 1024);
    EXPECT_FALSE(JwtKey::from_jwk_json(jwk_of(small.get(), "s"), st));
    EXPECT_NE(st.message().find("2048"), std::string::npos);
    EXPECT_FALSE(JwtKey::from_jwk_json(jwk_of(p256_key(), "k", R"(,"use":"enc")"), st));
    EXPECT_FALSE(JwtKey::from_jwk_json(jwk_of(p256_key(), "k", R"(,"key_ops":["encrypt"])"), st));
    EXPECT_FALSE(JwtKey::from_jwk_json(jwk_of(p256_key(), "k", R"(,"alg":"RS256")"), st));
    EXPECT_FALSE(JwtKey::from_secret("short", {}, "", st));
    // A point not on P-256 (y changed).
    std::string jwk = jwk_of(p256_key(), "k");
    const std::size_t y = jwk.find("\"y\":\"") + 5;
    jwk[y] = jwk[y] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(JwtKey::from_jwk_json(jwk, st));
    // A JWK Set: unusable keys are skipped and said why; secrets only when allowed.
    const std::string set = R"({"keys":[)" + jwk_of(rsa_key(), "r") + "," + jwk_of(p256_key(), "e", R"(,"use":"enc")") +
                            R"(,{"kty":"oct","k":")" + b64(secret) + R"(","kid":"h"},{"kty":"XYZ"}]})";
    std::vector<std::string> skipped;
    auto keys = KeySet::from_jwks_json(set, st, &skipped);
    ASSERT_TRUE(keys);
    EXPECT_EQ(keys->size(), 1u);
    EXPECT_TRUE(keys->has_kid("r"));
    EXPECT_EQ(skipped.size(), 3u);
    EXPECT_EQ(KeySet::from_jwks_json(set, st, nullptr, true)->size(), 2u);
    EXPECT_FALSE(KeySet::from_jwks_json(R"({"keyz":[]})", st));
}

TEST(JwtBearer, AnswersRfc6750ChallengesAndGivesTheClaims) {
    JwtStatus st;
    auto keys = std::make_shared<KeySet>(std::vector{must(JwtKey::from_secret(secret, {}, "k1", st), st)});
    VerifyOptions o = options({JwtAlgorithm::HS256});
    auto verifier = std::make_shared<JwtVerifier>(o, keys);
    JwtBearerMiddleware mw(verifier, {.paths = {"/api/"}, .realm = "covet"});
    covet::RequestContext ctx;
    const auto future = std::to_string(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count() +
        600);
    const std::string tok =
        token(JwtAlgorithm::HS256, nullptr, header_for(JwtAlgorithm::HS256),
              R"({"sub":"u1","iss":"https://issuer.test","aud":"api","exp":)" + future + "}", secret);

    covet::Request open;
    open.set_target("/public");
    EXPECT_FALSE(mw.before(open, ctx));
    EXPECT_EQ(JwtBearerMiddleware::token(open), nullptr);

    covet::Request missing;
    missing.set_target("/api/me");
    auto r = mw.before(missing, ctx);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status(), 401);
    EXPECT_EQ(r->headers().get("www-authenticate").value_or(""), "Bearer realm=\"covet\"");

    // Request keeps views of its header values: they live in these strings.
    const std::string bad_value = "Bearer " + tok.substr(0, tok.size() - 3) + "AAA";
    const std::string good_value = "bearer " + tok;
    const std::string rotated_value = "Bearer " + tok;
    covet::Request bad;
    bad.set_target("/api/me");
    bad.add_header("authorization", bad_value);
    r = mw.before(bad, ctx);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status(), 401);
    EXPECT_EQ(r->headers().get("www-authenticate").value_or(""),
              "Bearer realm=\"covet\", error=\"invalid_token\", error_description=\"invalid signature\"");
    EXPECT_EQ(r->body(), R"({"detail":"invalid signature"})");

    covet::Request good;
    good.set_target("/api/me");
    good.add_header("Authorization", good_value);
    EXPECT_FALSE(mw.before(good, ctx));
    const VerifiedToken* t = JwtBearerMiddleware::token(good);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->claims.string_member("sub"), "u1");
    covet::Response resp = covet::Response::text("ok");
    mw.after(good, ctx, resp);
    EXPECT_EQ(JwtBearerMiddleware::token(good), nullptr);

    // Key rotation: a new set replaces the old one for the next verification.
    verifier->set_keys(
        std::make_shared<KeySet>(std::vector{must(JwtKey::from_secret(std::string(40, 'n'), {}, "k2", st), st)}));
    covet::Request after_rotation;
    after_rotation.set_target("/api/me");
    after_rotation.add_header("authorization", rotated_value);
    r = mw.before(after_rotation, ctx);
    ASSERT_TRUE(r);
    EXPECT_NE(r->headers().get("www-authenticate").value_or("").find("unknown key id"), std::string::npos);
}

// Keys are shared by the worker threads: their prepared OpenSSL contexts are copied, never changed, so
// verifications run concurrently (scripts/tsan.sh runs this under ThreadSanitizer), and a rotation
// (set_keys) while they run is safe.
TEST(JwtThreads, ConcurrentVerificationsAndRotation) {
    JwtStatus st;
    auto keys = std::make_shared<KeySet>(std::vector{must(JwtKey::from_jwk_json(jwk_of(rsa_key(), "r"), st), st),
                                                     must(JwtKey::from_jwk_json(jwk_of(p256_key(), "e"), st), st),
                                                     must(JwtKey::from_secret(secret, {}, "h", st), st)});
    auto verifier = std::make_shared<JwtVerifier>(
        options({JwtAlgorithm::RS256, JwtAlgorithm::PS256, JwtAlgorithm::ES256, JwtAlgorithm::HS256}), keys);
    const std::string exp = std::to_string(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count() +
        600);
    const std::string claims = R"({"iss":"https://issuer.test","aud":"api","exp":)" + exp + "}";
    const std::vector<std::string> tokens = {
        token(JwtAlgorithm::RS256, rsa_key(), header_for(JwtAlgorithm::RS256, "r"), claims),
        token(JwtAlgorithm::PS256, rsa_key(), header_for(JwtAlgorithm::PS256, "r"), claims),
        token(JwtAlgorithm::ES256, p256_key(), header_for(JwtAlgorithm::ES256, "e"), claims),
        token(JwtAlgorithm::HS256, nullptr, header_for(JwtAlgorithm::HS256, "h"), claims, secret)};
    std::atomic<int> ok{0};
    std::atomic<int> failed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 40; ++i) {
                VerifiedToken out;
                (verifier->verify(tokens[static_cast<std::size_t>((t + i) % 4)], out) ? ok : failed)++;
            }
        });
    for (int i = 0; i < 10; ++i) verifier->set_keys(std::make_shared<KeySet>(*keys));  // same keys, new set
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(ok.load(), 160);
    EXPECT_EQ(failed.load(), 0);
}

// A verified token is remembered with its key set: the signature is not checked again, the clock is, and
// another set (a rotation) starts over.
TEST(JwtCache, RepeatsSkipTheSignatureButNotTheClockOrTheKeySet) {
    JwtStatus st;
    KeySet keys({must(JwtKey::from_jwk_json(jwk_of(p256_key(), "k1"), st), st)});
    JwtVerifier v(options({JwtAlgorithm::ES256}));
    const std::string tok = token(JwtAlgorithm::ES256, p256_key(), header_for(JwtAlgorithm::ES256), good_claims);
    VerifiedToken out;
    ASSERT_TRUE(v.verify(tok, out, keys, now));
    ASSERT_TRUE(v.verify(tok, out, keys, now));
    EXPECT_EQ(v.cache_hits(), 1u);
    EXPECT_EQ(out.claims.string_member("sub"), "user-1");
    EXPECT_EQ(check(v, keys, tok, 1700000600), JwtError::expired);  // exp reached: cached or not
    EXPECT_EQ(v.cache_hits(), 2u);
    EXPECT_EQ(check(v, KeySet{}, tok), JwtError::unknown_kid);  // another set: verified again, and refused
    const KeySet copy = keys;                                   // a copy is another set too
    EXPECT_EQ(check(v, copy, tok), JwtError::none);
    EXPECT_EQ(v.cache_hits(), 2u);
    // Failures are not remembered; the cache stays bounded.
    std::string sig;
    base64url_decode(tok.substr(tok.rfind('.') + 1), sig);
    sig[0] = static_cast<char>(sig[0] ^ 1);
    const std::string bad = tok.substr(0, tok.rfind('.') + 1) + b64(sig);
    EXPECT_EQ(check(v, keys, bad), JwtError::bad_signature);
    EXPECT_EQ(check(v, keys, bad), JwtError::bad_signature);
    VerifyOptions small = options({JwtAlgorithm::HS256});
    small.cache_entries = 2;
    JwtVerifier bounded(small);
    KeySet hs({must(JwtKey::from_secret(secret, {}, "k1", st), st)});
    for (int i = 0; i < 5; ++i) {
        const std::string claims =
            R"({"iss":"https://issuer.test","aud":"api","exp":1700000600,"i":)" + std::to_string(i) + "}";
        EXPECT_EQ(
            check(bounded, hs, token(JwtAlgorithm::HS256, nullptr, header_for(JwtAlgorithm::HS256), claims, secret)),
            JwtError::none);
    }
    EXPECT_EQ(bounded.cache_hits(), 0u);
}

// Through a served App: the middleware refuses before the handler, the handler reads the claims, and the
// server keeps serving after every refusal.
TEST(JwtBearerServer, RefusesAttacksAndServesTheClaims) {
    using namespace std::chrono_literals;
    covet::configure_logging("off");
    JwtStatus st;
    auto keys = std::make_shared<KeySet>(std::vector{must(JwtKey::from_jwk_json(jwk_of(rsa_key(), "k1"), st), st)});
    auto verifier = std::make_shared<JwtVerifier>(options({JwtAlgorithm::RS256}), keys);
    covet::App app;
    app.config().host = "127.0.0.1";
    app.config().port = 0;
    app.config().timeouts.shutdown = 3s;
    app.use(std::make_unique<JwtBearerMiddleware>(verifier, JwtBearerOptions{.paths = {"/api/"}}));
    app.get("/api/me", [](covet::Request& r) {
        const VerifiedToken* t = JwtBearerMiddleware::token(r);
        return covet::Response::text(t != nullptr ? std::string(t->claims.string_member("sub")) : "no claims");
    });
    app.get("/health", [](covet::Request&) { return covet::Response::text("ok"); });
    app.start(1);

    const auto future = std::to_string(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count() +
        600);
    const std::string claims = R"({"sub":"u1","iss":"https://issuer.test","aud":"api","exp":)" + future + "}";
    const std::string good = token(JwtAlgorithm::RS256, rsa_key(), header_for(JwtAlgorithm::RS256), claims);
    const std::string pem = pem_of(rsa_key());
    const std::string attacks[] = {
        b64(R"({"alg":"none"})") + "." + b64(claims) + ".",
        token(JwtAlgorithm::HS256, nullptr, header_for(JwtAlgorithm::HS256), claims, pem),
        good.substr(0, good.size() - 4) + "AAAA",
        token(JwtAlgorithm::RS256, rsa_key(), header_for(JwtAlgorithm::RS256, "k9"), claims),
        "not-a-token",
    };
    covet_test::Client c(app.port());
    for (const std::string& attack : attacks) {
        c.send("GET /api/me HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + attack + "\r\n\r\n");
        c.send("GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
        c.send("GET /api/me HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + good + "\r\n\r\n");
        auto r = c.responses(3);
        ASSERT_EQ(r.size(), 3u);
        EXPECT_EQ(covet_test::status_of(r[0]), "HTTP/1.1 401 Unauthorized");
        EXPECT_NE(r[0].find("WWW-Authenticate: Bearer error=\"invalid_token\", error_description=\""),
                  std::string::npos)
            << r[0];
        EXPECT_EQ(r[0].find(attack), std::string::npos);  // never echoed
        EXPECT_EQ(covet_test::body_of(r[1]), "ok");
        EXPECT_EQ(covet_test::body_of(r[2]), "u1");
    }
    c.send("GET /api/me HTTP/1.1\r\nHost: t\r\n\r\n");
    auto missing = c.responses(1);
    ASSERT_EQ(missing.size(), 1u);
    EXPECT_NE(missing[0].find("WWW-Authenticate: Bearer\r\n"), std::string::npos) << missing[0];
    app.stop();
}

// Mutated tokens (bytes flipped, cut, duplicated) never crash the parser or verify (the sanitizers watch),
// and none but the original verifies. A stand-in until the libFuzzer target of issue 17's fuzzing slice.
TEST(JwtAttacks, MutatedTokensAreRefusedWithoutCrashing) {
    JwtStatus st;
    KeySet keys({must(JwtKey::from_jwk_json(jwk_of(p256_key(), "k1"), st), st),
                 must(JwtKey::from_secret(secret, {}, "h1", st), st)});
    VerifyOptions o = options({JwtAlgorithm::ES256, JwtAlgorithm::HS256});
    o.cache_entries = 0;
    JwtVerifier v(o);
    const std::string seeds[] = {
        token(JwtAlgorithm::ES256, p256_key(), header_for(JwtAlgorithm::ES256), good_claims),
        token(JwtAlgorithm::HS256, nullptr, header_for(JwtAlgorithm::HS256, "h1"), good_claims, secret)};
    std::uint32_t rng = 12345;
    auto next = [&rng] { return rng = rng * 1664525u + 1013904223u; };
    int accepted = 0;
    for (const std::string& seed : seeds) {
        ASSERT_EQ(check(v, keys, seed), JwtError::none);
        for (int i = 0; i < 1500; ++i) {
            std::string t = seed;
            switch (next() % 4) {
                case 0: t[next() % t.size()] = static_cast<char>(next() & 0xFF); break;
                case 1: t.resize(next() % t.size()); break;
                case 2: t.insert(next() % t.size(), t.substr(next() % t.size(), 8)); break;
                default: t[next() % t.size()] = "._-=A{}\"\\"[next() % 9]; break;
            }
            VerifiedToken out;
            if (v.verify(t, out, keys, now)) accepted += t == seed ? 0 : 1;
        }
    }
    EXPECT_EQ(accepted, 0);
}

// Authorization on the verified claims: scope/scp and roles/realm_access.roles, 401 without a token, 403 with
// RFC 6750's insufficient_scope when a scope or a role is missing; the middleware's rules by path prefix
// (the longest matching prefix applies), checked after the signature (a forged token is still a 401).
TEST(JwtAccess, ScopesRolesAndRulesByPath) {
    JwtStatus st;
    auto keys = std::make_shared<KeySet>(std::vector{must(JwtKey::from_secret(secret, {}, "k1", st), st)});
    auto verifier = std::make_shared<JwtVerifier>(options({JwtAlgorithm::HS256}), keys);
    JwtBearerMiddleware mw(verifier, {.paths = {"/api/"},
                                      .realm = "covet",
                                      .rules = {{"/api/", {.scopes = {"read"}}},
                                                {"/api/admin/", {.scopes = {"read", "admin"}, .roles = {"ops"}}}}});
    covet::RequestContext ctx;
    const auto future = std::to_string(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count() +
        600);
    auto bearer = [&](std::string_view grants) {
        return "Bearer " + token(JwtAlgorithm::HS256, nullptr, header_for(JwtAlgorithm::HS256),
                                 R"({"sub":"u1","iss":"https://issuer.test","aud":"api","exp":)" + future +
                                     (grants.empty() ? "" : ",") + std::string(grants) + "}",
                                 secret);
    };
    const std::string reader = bearer(R"("scope":"read write")");
    const std::string admin_no_role = bearer(R"("scp":["read","admin"])");
    const std::string admin = bearer(R"("scp":"read admin","realm_access":{"roles":["ops"]})");
    const std::string forged = admin.substr(0, admin.size() - 3) + "AAA";
    struct Case {
        const char* path;
        const std::string* value;
        int status;  // 0: passes
        const char* challenge;
    };
    const Case cases[] = {
        {"/api/items", &reader, 0, ""},
        {"/api/admin/x", &reader, 403, R"(Bearer realm="covet", error="insufficient_scope", scope="read admin")"},
        {"/api/admin/x", &admin_no_role, 403, R"(Bearer realm="covet", error="insufficient_scope")"},
        {"/api/admin/x", &admin, 0, ""},
        {"/api/admin/x", &forged, 401,
         R"(Bearer realm="covet", error="invalid_token", error_description="invalid signature")"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(std::string(c.path) + " " + c.value->substr(0, 20));
        covet::Request request;
        request.set_target(c.path);
        request.add_header("authorization", *c.value);
        auto r = mw.before(request, ctx);
        if (c.status == 0) {
            EXPECT_FALSE(r);
            covet::Response ok = covet::Response::text("ok");
            mw.after(request, ctx, ok);
            continue;
        }
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status(), c.status);
        EXPECT_EQ(r->headers().get("www-authenticate").value_or(""), c.challenge);
        if (c.status == 403) {
            EXPECT_EQ(r->body(), R"({"detail":"Not enough permissions"})");
        }
    }

    // In a handler: the same check on the token the middleware verified, or 401 without one.
    covet::Request request;
    request.set_target("/api/items");
    request.add_header("authorization", admin);
    ASSERT_FALSE(mw.before(request, ctx));
    const VerifiedToken* t = JwtBearerMiddleware::token(request);
    ASSERT_NE(t, nullptr);
    EXPECT_TRUE(grants_scope(t->claims, "admin"));
    EXPECT_FALSE(grants_scope(t->claims, "adm"));
    EXPECT_TRUE(grants_role(t->claims, "ops"));
    EXPECT_FALSE(check_access(t, {.scopes = {"admin"}, .roles = {"ops"}}));
    auto denied = check_access(t, {.roles = {"root"}});
    ASSERT_TRUE(denied);
    EXPECT_EQ(denied->status(), 403);
    auto anonymous = check_access(nullptr, {.scopes = {"read"}});
    ASSERT_TRUE(anonymous);
    EXPECT_EQ(anonymous->status(), 401);
    EXPECT_EQ(anonymous->headers().get("www-authenticate").value_or(""), "Bearer");
    covet::Response ok = covet::Response::text("ok");
    mw.after(request, ctx, ok);
}
