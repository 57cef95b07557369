# Finds ngtcp2 and its GnuTLS crypto helper (Debian: libngtcp2-dev, libngtcp2-crypto-gnutls-dev) and defines
# ngtcp2::ngtcp2 and ngtcp2::crypto_gnutls. The QUIC handshake uses GnuTLS because Debian bookworm's OpenSSL 3.0 has
# no QUIC API (ngtcp2's OpenSSL helper needs OpenSSL >= 3.5 or quictls).
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_NGTCP2 QUIET libngtcp2)
  pkg_check_modules(PC_NGTCP2_GNUTLS QUIET libngtcp2_crypto_gnutls)
endif()
find_path(NGTCP2_INCLUDE_DIR ngtcp2/ngtcp2.h HINTS ${PC_NGTCP2_INCLUDE_DIRS})
find_library(NGTCP2_LIBRARY NAMES ngtcp2 HINTS ${PC_NGTCP2_LIBRARY_DIRS})
find_library(NGTCP2_CRYPTO_GNUTLS_LIBRARY NAMES ngtcp2_crypto_gnutls HINTS ${PC_NGTCP2_GNUTLS_LIBRARY_DIRS})
set(ngtcp2_VERSION ${PC_NGTCP2_VERSION})
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(ngtcp2
  REQUIRED_VARS NGTCP2_LIBRARY NGTCP2_CRYPTO_GNUTLS_LIBRARY NGTCP2_INCLUDE_DIR
  VERSION_VAR ngtcp2_VERSION
  FAIL_MESSAGE "ngtcp2 not found: install it (Debian/Ubuntu: apt-get install libngtcp2-dev libngtcp2-crypto-gnutls-dev)")
if(ngtcp2_FOUND AND NOT TARGET ngtcp2::ngtcp2)
  add_library(ngtcp2::ngtcp2 UNKNOWN IMPORTED)
  set_target_properties(ngtcp2::ngtcp2 PROPERTIES
    IMPORTED_LOCATION "${NGTCP2_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${NGTCP2_INCLUDE_DIR}")
  add_library(ngtcp2::crypto_gnutls UNKNOWN IMPORTED)
  set_target_properties(ngtcp2::crypto_gnutls PROPERTIES
    IMPORTED_LOCATION "${NGTCP2_CRYPTO_GNUTLS_LIBRARY}"
    INTERFACE_LINK_LIBRARIES ngtcp2::ngtcp2)
endif()
mark_as_advanced(NGTCP2_INCLUDE_DIR NGTCP2_LIBRARY NGTCP2_CRYPTO_GNUTLS_LIBRARY)
