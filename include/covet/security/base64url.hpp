// Strict base64url (RFC 4648 §5) as JOSE uses it (RFC 7515 §2): the URL-safe alphabet, no padding, no
// whitespace, and no non-zero bits left over in the last character, so that each value has exactly one
// encoding (a token that was altered into another spelling of the same bytes is refused).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace covet::security {

// Decodes `in` into `out` (replacing its contents); false for any character outside the alphabet, padding,
// a length of 1 mod 4, or non-canonical trailing bits.
bool base64url_decode(std::string_view in, std::string& out);

// Encodes without padding.
std::string base64url_encode(std::string_view in);

}  // namespace covet::security
