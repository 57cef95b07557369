// JWT verification keys over OpenSSL 3.0 (see covet/security/jwk.hpp): JWK/PEM/secret import, key strength
// checks, and the signature checks of each JWS algorithm.
#include "covet/security/jwk.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <array>
#include <cstring>

#include "covet/security/base64url.hpp"

namespace covet::security {

namespace {

template <class T, void (*Free)(T*)>
struct Deleter {
    void operator()(T* p) const noexcept { Free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX, EVP_MD_CTX_free>>;
using MacCtxPtr = std::unique_ptr<EVP_MAC_CTX, Deleter<EVP_MAC_CTX, EVP_MAC_CTX_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using ParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM, OSSL_PARAM_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG, ECDSA_SIG_free>>;

constexpr std::size_t min_rsa_bits = 2048;
constexpr std::size_t min_secret_bytes = 32;

// The digest of each algorithm, fetched once (an implicit fetch per verification costs a provider lookup).
const EVP_MD* digest_for(JwtAlgorithm a) noexcept {
    static const std::array<EVP_MD*, 3> mds = {EVP_MD_fetch(nullptr, "SHA256", nullptr),
                                               EVP_MD_fetch(nullptr, "SHA384", nullptr),
                                               EVP_MD_fetch(nullptr, "SHA512", nullptr)};
    switch (a) {
        case JwtAlgorithm::HS256:
        case JwtAlgorithm::RS256:
        case JwtAlgorithm::PS256:
        case JwtAlgorithm::ES256: return mds[0];
        case JwtAlgorithm::HS384:
        case JwtAlgorithm::RS384:
        case JwtAlgorithm::PS384:
        case JwtAlgorithm::ES384: return mds[1];
        case JwtAlgorithm::HS512:
        case JwtAlgorithm::RS512:
        case JwtAlgorithm::PS512:
        case JwtAlgorithm::ES512: return mds[2];
        case JwtAlgorithm::EdDSA: return nullptr;
    }
    return nullptr;
}

std::size_t hash_bytes(JwtAlgorithm a) noexcept {
    const EVP_MD* md = digest_for(a);
    return md != nullptr ? static_cast<std::size_t>(EVP_MD_get_size(md)) : 0;
}

const char* digest_name(JwtAlgorithm a) noexcept {
    switch (hash_bytes(a)) {
        case 32: return "SHA256";
        case 48: return "SHA384";
        default: return "SHA512";
    }
}

bool is_hmac(JwtAlgorithm a) noexcept { return key_type_for(a) == KeyType::oct; }
bool is_pss(JwtAlgorithm a) noexcept {
    return a == JwtAlgorithm::PS256 || a == JwtAlgorithm::PS384 || a == JwtAlgorithm::PS512;
}

JwtStatus bad_key(std::string detail) { return {JwtError::bad_key, std::move(detail)}; }

bool b64_member(const json::Value& jwk, std::string_view name, std::string& out) {
    const json::Value* v = jwk.find(name);
    return v != nullptr && v->is_string() && base64url_decode(v->as_string(), out) && !out.empty();
}

bool looks_like_public_key(std::string_view secret) noexcept {
    for (std::string_view marker : {"-----BEGIN", "ssh-rsa ", "ssh-ed25519 ", "ecdsa-sha2-"})
        if (secret.find(marker) != std::string_view::npos) return true;
    return false;
}

}  // namespace

struct JwtKey::Native {
    PkeyPtr pkey;
    std::string secret;
    std::size_t ec_coordinate_bytes = 0;  // ES*: the size of r and of s in the raw signature
    std::array<MacCtxPtr, 3> hmac;        // HS256/384/512: a context keyed once, copied per verification
    // RS*/PS*/ES*: a verification context set up once per algorithm (digest, key, PSS parameters) and
    // copied per verification: EVP_DigestVerifyInit fetches the signature implementation from the provider
    // store every time, a measurable share of an RSA verification in OpenSSL 3.0.
    std::array<MdCtxPtr, jwt_algorithm_count> verify_templates;

    Native() = default;
    Native(const Native&) = delete;
    Native& operator=(const Native&) = delete;
    ~Native() {
        if (!secret.empty()) OPENSSL_cleanse(secret.data(), secret.size());
    }
};

std::optional<JwtKey> JwtKey::make(std::shared_ptr<Native> native, KeyType type, AlgorithmSet requested,
                                   std::string kid, JwtStatus& status) {
    AlgorithmSet allowed = AlgorithmSet::for_key_type(type);
    if (type == KeyType::rsa) {
        const int bits = EVP_PKEY_get_bits(native->pkey.get());
        if (bits < static_cast<int>(min_rsa_bits)) {
            status = bad_key("RSA modulus of " + std::to_string(bits) + " bits, under the minimum 2048");
            return std::nullopt;
        }
    } else if (type == KeyType::ec) {
        char group[32] = {};
        std::size_t len = 0;
        EVP_PKEY_get_utf8_string_param(native->pkey.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len);
        const std::string_view g(group, len);
        if (g == "prime256v1" || g == "P-256")
            allowed = {JwtAlgorithm::ES256}, native->ec_coordinate_bytes = 32;
        else if (g == "secp384r1" || g == "P-384")
            allowed = {JwtAlgorithm::ES384}, native->ec_coordinate_bytes = 48;
        else if (g == "secp521r1" || g == "P-521")
            allowed = {JwtAlgorithm::ES512}, native->ec_coordinate_bytes = 66;
        else {
            status = bad_key("EC curve not supported for JWS (P-256, P-384, P-521)");
            return std::nullopt;
        }
    } else if (type == KeyType::oct) {
        if (native->secret.size() < min_secret_bytes) {
            status = bad_key("HMAC secret shorter than 32 bytes");
            return std::nullopt;
        }
        if (looks_like_public_key(native->secret)) {
            status = bad_key("the HMAC secret is a PEM or SSH public key (algorithm confusion)");
            return std::nullopt;
        }
        AlgorithmSet by_length;  // RFC 7518 §3.2: a key at least as long as the hash
        for (JwtAlgorithm a : {JwtAlgorithm::HS256, JwtAlgorithm::HS384, JwtAlgorithm::HS512})
            if (native->secret.size() >= hash_bytes(a)) by_length.add(a);
        if ((requested & allowed & by_length) != (requested & allowed)) {
            status = bad_key("HMAC secret shorter than the hash of a requested algorithm");
            return std::nullopt;
        }
        allowed = allowed & by_length;
    }
    const AlgorithmSet algorithms = requested.empty() ? allowed : requested & allowed;
    if (algorithms.empty()) {
        status = bad_key("none of the requested algorithms fits this key's type");
        return std::nullopt;
    }
    if (type == KeyType::oct) {
        static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
        const JwtAlgorithm hs[] = {JwtAlgorithm::HS256, JwtAlgorithm::HS384, JwtAlgorithm::HS512};
        for (int i = 0; i < 3; ++i) {
            if (!algorithms.contains(hs[i])) continue;
            MacCtxPtr ctx(EVP_MAC_CTX_new(mac));
            OSSL_PARAM params[] = {
                OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest_name(hs[i])), 0),
                OSSL_PARAM_construct_end()};
            if (!ctx || EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(native->secret.data()),
                                     native->secret.size(), params) != 1) {
                status = bad_key("HMAC unavailable in OpenSSL");
                return std::nullopt;
            }
            native->hmac[static_cast<std::size_t>(i)] = std::move(ctx);
        }
    }
    if (type == KeyType::rsa || type == KeyType::ec) {
        for (int i = 0; i < jwt_algorithm_count; ++i) {
            const auto alg = static_cast<JwtAlgorithm>(i);
            if (!algorithms.contains(alg)) continue;
            MdCtxPtr ctx(EVP_MD_CTX_new());
            EVP_PKEY_CTX* pctx = nullptr;
            bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), &pctx, digest_for(alg), nullptr, native->pkey.get()) == 1;
            if (ok && is_pss(alg))  // RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash
                ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
                     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
                     EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, digest_for(alg)) == 1;
            if (!ok) {
                status = bad_key("OpenSSL cannot verify " + std::string(jwt_algorithm_name(alg)) + " with this key");
                return std::nullopt;
            }
            native->verify_templates[static_cast<std::size_t>(i)] = std::move(ctx);
        }
    }
    status = {};
    return JwtKey(std::move(native), type, algorithms, std::move(kid));
}

std::optional<JwtKey> JwtKey::from_jwk(const json::Value& jwk, JwtStatus& status) {
    if (!jwk.is_object()) {
        status = bad_key("a JWK must be a JSON object");
        return std::nullopt;
    }
    const json::Value* kid_v = jwk.find("kid");
    if (kid_v != nullptr && !kid_v->is_string()) {
        status = bad_key("kid is not a string");
        return std::nullopt;
    }
    std::string kid(kid_v != nullptr ? kid_v->as_string() : std::string_view{});
    if (const json::Value* use = jwk.find("use"); use != nullptr && !(use->is_string() && use->as_string() == "sig")) {
        status = bad_key(R"("use" is not "sig")");
        return std::nullopt;
    }
    if (const json::Value* ops = jwk.find("key_ops"); ops != nullptr) {
        bool verify = false;
        if (ops->is_array())
            for (const json::Value& op : ops->items())
                verify = verify || (op.is_string() && op.as_string() == "verify");
        if (!verify) {
            status = bad_key(R"("key_ops" does not include "verify")");
            return std::nullopt;
        }
    }
    AlgorithmSet requested;
    if (const json::Value* alg = jwk.find("alg"); alg != nullptr) {
        const auto a = alg->is_string() ? parse_jwt_algorithm(alg->as_string()) : std::nullopt;
        if (!a) {
            status = bad_key("unsupported \"alg\"");
            return std::nullopt;
        }
        requested.add(*a);
    }
    auto native = std::make_shared<Native>();
    const std::string_view kty = jwk.string_member("kty");
    const std::string_view crv = jwk.string_member("crv");
    if (kty == "oct") {
        if (!b64_member(jwk, "k", native->secret)) {
            status = bad_key("oct JWK without a valid \"k\"");
            return std::nullopt;
        }
        return make(std::move(native), KeyType::oct, requested, std::move(kid), status);
    }
    EVP_PKEY* raw = nullptr;
    KeyType type = KeyType::rsa;
    if (kty == "RSA") {
        std::string n, e;
        if (!b64_member(jwk, "n", n) || !b64_member(jwk, "e", e)) {
            status = bad_key(R"(RSA JWK without valid "n" and "e")");
            return std::nullopt;
        }
        BnPtr bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()), nullptr));
        BnPtr bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()), nullptr));
        if (!bn_e || !BN_is_odd(bn_e.get()) || BN_is_one(bn_e.get())) {
            status = bad_key("RSA exponent \"e\" must be odd and greater than 1");
            return std::nullopt;
        }
        ParamBldPtr bld(OSSL_PARAM_BLD_new());
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get());
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get());
        ParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
        PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
        if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
            EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
            status = bad_key("RSA JWK rejected by OpenSSL");
            return std::nullopt;
        }
    } else if (kty == "EC") {
        type = KeyType::ec;
        std::size_t size = crv == "P-256" ? 32 : crv == "P-384" ? 48 : crv == "P-521" ? 66 : 0;
        std::string x, y;
        if (size == 0) {
            status = bad_key("EC JWK curve not supported (P-256, P-384, P-521)");
            return std::nullopt;
        }
        if (!b64_member(jwk, "x", x) || !b64_member(jwk, "y", y) || x.size() != size || y.size() != size) {
            status = bad_key("EC JWK coordinates missing or not of the curve's length");
            return std::nullopt;
        }
        const std::string point = "\x04" + x + y;
        const std::string group(crv);  // the builder keeps pointers until OSSL_PARAM_BLD_to_param
        ParamBldPtr bld(OSSL_PARAM_BLD_new());
        OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group.c_str(), 0);
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
        ParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
        PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
        if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
            EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
            status = bad_key("EC JWK point is not on its curve");
            return std::nullopt;
        }
    } else if (kty == "OKP") {
        type = KeyType::okp;
        std::string x;
        const int id = crv == "Ed25519" ? EVP_PKEY_ED25519 : crv == "Ed448" ? EVP_PKEY_ED448 : 0;
        const std::size_t size = crv == "Ed25519" ? 32 : 57;
        if (id == 0) {
            status = bad_key("OKP JWK curve not supported for signatures (Ed25519, Ed448)");
            return std::nullopt;
        }
        if (!b64_member(jwk, "x", x) || x.size() != size) {
            status = bad_key("OKP JWK \"x\" missing or not of the curve's length");
            return std::nullopt;
        }
        raw = EVP_PKEY_new_raw_public_key(id, nullptr, reinterpret_cast<const unsigned char*>(x.data()), x.size());
        if (raw == nullptr) {
            status = bad_key("OKP JWK rejected by OpenSSL");
            return std::nullopt;
        }
    } else {
        status = bad_key("unsupported \"kty\"");
        return std::nullopt;
    }
    native->pkey.reset(raw);
    if (type == KeyType::ec) {  // EVP_PKEY_fromdata does not promise a full public-key check
        PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, raw, nullptr));
        if (!check || EVP_PKEY_public_check(check.get()) != 1) {
            status = bad_key("EC JWK point is not a valid public key");
            return std::nullopt;
        }
    }
    return make(std::move(native), type, requested, std::move(kid), status);
}

std::optional<JwtKey> JwtKey::from_jwk_json(std::string_view text, JwtStatus& status) {
    json::Value v;
    std::string error;
    if (!json::parse(text, v, error)) {
        status = bad_key("JWK is not valid JSON: " + error);
        return std::nullopt;
    }
    return from_jwk(v, status);
}

std::optional<JwtKey> JwtKey::from_pem(std::string_view pem, AlgorithmSet algorithms, std::string kid,
                                       JwtStatus& status) {
    BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    EVP_PKEY* raw = bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr;
    if (raw == nullptr) {
        BioPtr again(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
        X509Ptr cert(again ? PEM_read_bio_X509(again.get(), nullptr, nullptr, nullptr) : nullptr);
        if (cert) raw = X509_get_pubkey(cert.get());
    }
    if (raw == nullptr) {
        status = bad_key("not a PEM public key or certificate");
        return std::nullopt;
    }
    auto native = std::make_shared<Native>();
    native->pkey.reset(raw);
    KeyType type;
    switch (EVP_PKEY_get_base_id(raw)) {
        case EVP_PKEY_RSA: type = KeyType::rsa; break;
        case EVP_PKEY_EC: type = KeyType::ec; break;
        case EVP_PKEY_ED25519:
        case EVP_PKEY_ED448: type = KeyType::okp; break;
        default: status = bad_key("PEM key type not supported for JWS"); return std::nullopt;
    }
    return make(std::move(native), type, algorithms, std::move(kid), status);
}

std::optional<JwtKey> JwtKey::from_secret(std::string_view secret, AlgorithmSet algorithms, std::string kid,
                                          JwtStatus& status) {
    auto native = std::make_shared<Native>();
    native->secret.assign(secret);
    return make(std::move(native), KeyType::oct, algorithms, std::move(kid), status);
}

bool JwtKey::verify(JwtAlgorithm alg, std::string_view signing_input, std::string_view signature) const noexcept {
    if (!accepts(alg) || !native_) return false;
    const auto* data = reinterpret_cast<const unsigned char*>(signing_input.data());
    const auto* sig = reinterpret_cast<const unsigned char*>(signature.data());
    if (is_hmac(alg)) {
        const std::size_t slot = alg == JwtAlgorithm::HS256 ? 0 : alg == JwtAlgorithm::HS384 ? 1 : 2;
        const EVP_MAC_CTX* keyed = native_->hmac[slot].get();
        if (keyed == nullptr || signature.size() != hash_bytes(alg)) return false;
        MacCtxPtr ctx(EVP_MAC_CTX_dup(keyed));
        unsigned char mac[EVP_MAX_MD_SIZE];
        std::size_t mac_len = 0;
        if (!ctx || EVP_MAC_update(ctx.get(), data, signing_input.size()) != 1 ||
            EVP_MAC_final(ctx.get(), mac, &mac_len, sizeof mac) != 1 || mac_len != signature.size())
            return false;
        return CRYPTO_memcmp(mac, sig, mac_len) == 0;
    }
    // ES*: JWS carries r||s, fixed-size big-endian; OpenSSL wants a DER ECDSA-Sig-Value.
    unsigned char der[160];
    std::size_t sig_len = signature.size();
    if (type_ == KeyType::ec) {
        const std::size_t n = native_->ec_coordinate_bytes;
        if (signature.size() != 2 * n) return false;
        EcdsaSigPtr ecdsa(ECDSA_SIG_new());
        BIGNUM* r = BN_bin2bn(sig, static_cast<int>(n), nullptr);
        BIGNUM* s = BN_bin2bn(sig + n, static_cast<int>(n), nullptr);
        if (!ecdsa || r == nullptr || s == nullptr || ECDSA_SIG_set0(ecdsa.get(), r, s) != 1) {
            BN_free(r);
            BN_free(s);
            return false;
        }
        unsigned char* out = der;
        const int len = i2d_ECDSA_SIG(ecdsa.get(), nullptr);
        if (len <= 0 || static_cast<std::size_t>(len) > sizeof der) return false;
        sig_len = static_cast<std::size_t>(i2d_ECDSA_SIG(ecdsa.get(), &out));
        sig = der;
    }
    MdCtxPtr ctx(EVP_MD_CTX_new());
    if (!ctx) return false;
    if (const EVP_MD_CTX* prepared = native_->verify_templates[static_cast<std::size_t>(alg)].get()) {
        if (EVP_MD_CTX_copy_ex(ctx.get(), prepared) != 1) return false;
    } else if (EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, native_->pkey.get()) != 1) {  // EdDSA
        return false;
    }
    return EVP_DigestVerify(ctx.get(), sig, sig_len, data, signing_input.size()) == 1;
}

std::optional<KeySet> KeySet::from_jwks_json(std::string_view text, JwtStatus& status,
                                             std::vector<std::string>* skipped, bool allow_secrets) {
    json::Value doc;
    std::string error;
    if (!json::parse(text, doc, error, {.max_depth = 8, .max_members = 1 << 16})) {
        status = bad_key("JWK Set is not valid JSON: " + error);
        return std::nullopt;
    }
    const json::Value* keys = doc.is_object() ? doc.find("keys") : nullptr;
    if (keys == nullptr || !keys->is_array()) {
        status = bad_key("not a JWK Set: no \"keys\" array");
        return std::nullopt;
    }
    KeySet set;
    for (const json::Value& jwk : keys->items()) {
        if (!allow_secrets && jwk.is_object() && jwk.string_member("kty") == "oct") {
            if (skipped != nullptr) skipped->emplace_back("an oct key (a secret) in a published JWK Set");
            continue;
        }
        JwtStatus key_status;
        if (auto key = JwtKey::from_jwk(jwk, key_status))
            set.add(std::move(*key));
        else if (skipped != nullptr)
            skipped->push_back(key_status.message());
    }
    status = {};
    return set;
}

}  // namespace covet::security
