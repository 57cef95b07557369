// The q-values of an Accept-style list's members (RFC 9110 §12.4.2): Accept, Accept-Encoding.
#pragma once

#include <string_view>

#include "covet/http/ascii.hpp"

namespace covet {

// q=... among the parameters of one list member (what follows its first ';'), in thousandths: 1000 when absent,
// -1 when malformed (more than three decimals are ignored, as RFC 9110 allows no more).
constexpr int qvalue(std::string_view params) noexcept {
    while (!params.empty()) {
        const std::size_t semi = params.find(';');
        const std::string_view p = trim_ows(params.substr(0, semi));
        params = semi == std::string_view::npos ? std::string_view{} : params.substr(semi + 1);
        if (p.size() < 2 || ascii_lower(p[0]) != 'q' || p[1] != '=') continue;
        const std::string_view v = p.substr(2);
        if (v.empty() || (v[0] != '0' && v[0] != '1')) return -1;
        int q = (v[0] - '0') * 1000;
        if (v.size() > 1) {
            if (v[1] != '.') return -1;
            int scale = 100;
            for (std::size_t i = 2; i < v.size() && scale > 0; ++i, scale /= 10) {
                if (v[i] < '0' || v[i] > '9') return -1;
                q += (v[i] - '0') * scale;
            }
        }
        return q > 1000 ? -1 : q;
    }
    return 1000;
}

// Calls `each(name, q)` for every member of an Accept-style list (`name` trimmed, its parameters dropped; `q` in
// thousandths), skipping members whose q-value is malformed.
template <class Each>
constexpr void for_each_weighted(std::string_view list, Each&& each) {
    while (!list.empty()) {
        const std::size_t comma = list.find(',');
        const std::string_view member = list.substr(0, comma);
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
        const std::size_t semi = member.find(';');
        const int q = semi == std::string_view::npos ? 1000 : qvalue(member.substr(semi + 1));
        if (q >= 0) each(trim_ows(member.substr(0, semi)), q);
    }
}

}  // namespace covet
