// Python face of the native JWT verifier (see jwt_binding.hpp and covet/security/jwt_verifier.hpp).
//
// JwtKeySet holds an immutable KeySet behind a shared pointer: adding keys builds a new set (copy on write),
// so a verification that released the GIL keeps the set it started with while another thread rotates keys.
// JwtVerifier.verify copies the token, releases the GIL for the parse + signature + claims checks, and
// returns (None, claims) or (error_name, message); covet/security/jwt.py turns errors into 401s. The claims
// dict is built straight from the parsed JSON (json.loads of the claims text would cost as much as the whole
// HS256 verification).
#include "jwt_binding.hpp"

#include <pybind11/stl.h>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "covet/security/jwk.hpp"
#include "covet/security/jwt_verifier.hpp"

namespace py = pybind11;
namespace sec = covet::security;

namespace covet_py {

namespace {

sec::AlgorithmSet algorithm_set(const std::vector<std::string>& names) {
    sec::AlgorithmSet set;
    for (const std::string& name : names) {
        const auto alg = sec::parse_jwt_algorithm(name);
        if (!alg)
            throw py::value_error("unsupported JWT algorithm '" + name +
                                  "' (HS256/384/512, RS256/384/512, PS256/384/512, ES256/384/512, EdDSA; never none)");
        set.add(*alg);
    }
    return set;
}

// A parsed JSON value as the Python object json.loads would give (integers of any size stay ints).
py::object to_python(const sec::json::Value& v) {
    switch (v.type()) {
        case sec::json::Type::null: return py::none();
        case sec::json::Type::boolean: return py::bool_(v.as_bool());
        case sec::json::Type::string: return py::str(v.as_string().data(), v.as_string().size());
        case sec::json::Type::number: {
            const std::string_view text = v.number_text();
            if (text.find_first_of(".eE") != std::string_view::npos) return py::float_(v.as_number());
            const std::string digits(text);
            // NULL with ValueError set past int()'s digit limit (the parser's numbers stay far below it today)
            PyObject* number = PyLong_FromString(digits.c_str(), nullptr, 10);
            if (!number) throw py::error_already_set();
            return py::reinterpret_steal<py::object>(number);
        }
        case sec::json::Type::array: {
            py::list list(v.items().size());
            for (std::size_t i = 0; i < v.items().size(); ++i) list[i] = to_python(v.items()[i]);
            return std::move(list);
        }
        case sec::json::Type::object: {
            py::dict dict;
            for (const auto& [key, value] : v.members()) dict[py::str(key.data(), key.size())] = to_python(value);
            return std::move(dict);
        }
    }
    return py::none();
}

class PyKeySet {
public:
    std::shared_ptr<const sec::KeySet> set = std::make_shared<const sec::KeySet>();
    std::vector<std::string> skipped;

    void add(std::optional<sec::JwtKey> key, const sec::JwtStatus& status) {
        if (!key) throw py::value_error(status.message());
        auto next = std::make_shared<sec::KeySet>(*set);
        next->add(std::move(*key));
        set = std::move(next);
    }
};

}  // namespace

void register_jwt(py::module_& m) {
    py::class_<PyKeySet, std::shared_ptr<PyKeySet>>(m, "JwtKeySet",
                                                    "Verification keys for JwtVerifier (see covet.security.jwt).")
        .def(py::init<>())
        .def_static(
            "from_jwks",
            [](const std::string& text, bool allow_secrets) {
                sec::JwtStatus status;
                auto out = std::make_shared<PyKeySet>();
                auto set = sec::KeySet::from_jwks_json(text, status, &out->skipped, allow_secrets);
                if (!set) throw py::value_error(status.message());
                out->set = std::make_shared<const sec::KeySet>(std::move(*set));
                return out;
            },
            py::arg("text"), py::arg("allow_secrets") = false)
        .def("add_jwk",
             [](PyKeySet& self, const std::string& text) {
                 sec::JwtStatus status;
                 self.add(sec::JwtKey::from_jwk_json(text, status), status);
             })
        .def(
            "add_pem",
            [](PyKeySet& self, const std::string& pem, const std::vector<std::string>& algorithms, std::string kid) {
                sec::JwtStatus status;
                self.add(sec::JwtKey::from_pem(pem, algorithm_set(algorithms), std::move(kid), status), status);
            },
            py::arg("pem"), py::arg("algorithms"), py::arg("kid") = "")
        .def(
            "add_secret",
            [](PyKeySet& self, const py::bytes& secret, const std::vector<std::string>& algorithms, std::string kid) {
                sec::JwtStatus status;
                self.add(
                    sec::JwtKey::from_secret(std::string(secret), algorithm_set(algorithms), std::move(kid), status),
                    status);
            },
            py::arg("secret"), py::arg("algorithms"), py::arg("kid") = "")
        .def("kids",
             [](const PyKeySet& self) {
                 std::vector<std::string> kids;
                 for (const sec::JwtKey& k : self.set->keys()) kids.emplace_back(k.kid());
                 return kids;
             })
        .def_readonly("skipped", &PyKeySet::skipped)
        .def("__len__", [](const PyKeySet& self) { return self.set->size(); });

    py::class_<sec::JwtVerifier, std::shared_ptr<sec::JwtVerifier>>(m, "JwtVerifier",
                                                                    "Native JWS/JWT verification with a fixed policy.")
        .def(py::init([](const std::vector<std::string>& algorithms, std::string issuer,
                         std::vector<std::string> audiences, int leeway, bool require_exp, bool require_iat,
                         bool require_nbf, std::size_t max_token_bytes, std::size_t max_depth,
                         std::size_t cache_entries) {
                 sec::VerifyOptions o;
                 o.algorithms = algorithm_set(algorithms);
                 o.issuer = std::move(issuer);
                 o.audiences = std::move(audiences);
                 o.leeway = std::chrono::seconds(leeway);
                 o.require_exp = require_exp;
                 o.require_iat = require_iat;
                 o.require_nbf = require_nbf;
                 o.max_token_bytes = max_token_bytes;
                 o.json_limits.max_depth = max_depth;
                 o.cache_entries = cache_entries;
                 try {
                     return std::make_shared<sec::JwtVerifier>(std::move(o));
                 } catch (const std::invalid_argument& e) {
                     throw py::value_error(e.what());
                 }
             }),
             py::kw_only(), py::arg("algorithms"), py::arg("issuer") = "",
             py::arg("audiences") = std::vector<std::string>{}, py::arg("leeway") = 0, py::arg("require_exp") = true,
             py::arg("require_iat") = false, py::arg("require_nbf") = false, py::arg("max_token_bytes") = 8192,
             py::arg("max_depth") = 8, py::arg("cache_entries") = 512)
        .def_property_readonly("cache_hits", &sec::JwtVerifier::cache_hits)
        .def(
            "verify",
            [](const sec::JwtVerifier& self, std::string_view token, const PyKeySet& keys,
               std::optional<std::int64_t> now) -> py::tuple {
                // Oversize tokens are refused before the copy.
                if (token.size() > self.options().max_token_bytes)
                    return py::make_tuple(sec::jwt_error_name(sec::JwtError::token_too_large),
                                          sec::jwt_error_message(sec::JwtError::token_too_large));
                const std::string copy(token);
                const std::shared_ptr<const sec::KeySet> set = keys.set;
                const std::int64_t at = now ? *now
                                            : std::chrono::duration_cast<std::chrono::seconds>(
                                                  std::chrono::system_clock::now().time_since_epoch())
                                                  .count();
                sec::VerifiedToken out;
                sec::JwtStatus status;
                {
                    py::gil_scoped_release release;
                    status = self.verify(copy, out, *set, at);
                }
                if (!status) return py::make_tuple(sec::jwt_error_name(status.code), status.message());
                return py::make_tuple(py::none(), to_python(out.claims));
            },
            py::arg("token"), py::arg("keys"), py::arg("now") = py::none());
}

}  // namespace covet_py
