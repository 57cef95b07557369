// The JWS algorithms this library verifies (RFC 7518 §3, RFC 8037 for EdDSA). "none" is not one of them and
// cannot be: there is no enumerator for it. A key accepts a set of these (AlgorithmSet), and each algorithm
// requires one key type (HS* an octet secret, RS*/PS* an RSA key, ES256 a P-256 key, ...): a token whose
// alg does not fit the key's type is refused whatever the set says, which is what prevents the classic
// confusion of an RSA public key used as an HMAC secret.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string_view>

namespace covet::security {

enum class JwtAlgorithm : unsigned char {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
};
inline constexpr int jwt_algorithm_count = 13;

enum class KeyType : unsigned char { oct, rsa, ec, okp };

constexpr std::string_view jwt_algorithm_name(JwtAlgorithm a) noexcept {
    constexpr std::string_view names[] = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256",
                                          "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"};
    return names[static_cast<int>(a)];
}

constexpr std::optional<JwtAlgorithm> parse_jwt_algorithm(std::string_view name) noexcept {
    for (int i = 0; i < jwt_algorithm_count; ++i)
        if (jwt_algorithm_name(static_cast<JwtAlgorithm>(i)) == name) return static_cast<JwtAlgorithm>(i);
    return std::nullopt;
}

constexpr KeyType key_type_for(JwtAlgorithm a) noexcept {
    switch (a) {
        case JwtAlgorithm::HS256:
        case JwtAlgorithm::HS384:
        case JwtAlgorithm::HS512: return KeyType::oct;
        case JwtAlgorithm::ES256:
        case JwtAlgorithm::ES384:
        case JwtAlgorithm::ES512: return KeyType::ec;
        case JwtAlgorithm::EdDSA: return KeyType::okp;
        default: return KeyType::rsa;
    }
}

class AlgorithmSet {
public:
    constexpr AlgorithmSet() noexcept = default;
    constexpr AlgorithmSet(std::initializer_list<JwtAlgorithm> algs) noexcept {
        for (JwtAlgorithm a : algs) add(a);
    }
    constexpr void add(JwtAlgorithm a) noexcept { bits_ |= bit(a); }
    constexpr bool contains(JwtAlgorithm a) const noexcept { return (bits_ & bit(a)) != 0; }
    constexpr bool empty() const noexcept { return bits_ == 0; }
    constexpr AlgorithmSet operator&(AlgorithmSet o) const noexcept { return from_bits(bits_ & o.bits_); }
    constexpr bool operator==(const AlgorithmSet&) const noexcept = default;
    // Every algorithm that a key of type `t` can verify (the default when a JWK has no "alg").
    static constexpr AlgorithmSet for_key_type(KeyType t) noexcept {
        AlgorithmSet s;
        for (int i = 0; i < jwt_algorithm_count; ++i)
            if (key_type_for(static_cast<JwtAlgorithm>(i)) == t) s.add(static_cast<JwtAlgorithm>(i));
        return s;
    }

private:
    static constexpr std::uint16_t bit(JwtAlgorithm a) noexcept {
        return static_cast<std::uint16_t>(1u << static_cast<unsigned>(a));
    }
    static constexpr AlgorithmSet from_bits(std::uint16_t b) noexcept {
        AlgorithmSet s;
        s.bits_ = b;
        return s;
    }
    std::uint16_t bits_ = 0;
};

}  // namespace covet::security
