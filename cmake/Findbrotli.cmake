# Finds the Brotli encoder (Debian: libbrotli-dev) and defines brotli::enc (and brotli::dec, the decoder).
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_BROTLIENC QUIET libbrotlienc)
endif()
find_path(BROTLI_INCLUDE_DIR brotli/encode.h HINTS ${PC_BROTLIENC_INCLUDE_DIRS})
find_library(BROTLIENC_LIBRARY NAMES brotlienc HINTS ${PC_BROTLIENC_LIBRARY_DIRS})
find_library(BROTLIDEC_LIBRARY NAMES brotlidec HINTS ${PC_BROTLIENC_LIBRARY_DIRS})  # tests decode with it
set(brotli_VERSION ${PC_BROTLIENC_VERSION})
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(brotli
  REQUIRED_VARS BROTLIENC_LIBRARY BROTLI_INCLUDE_DIR
  VERSION_VAR brotli_VERSION
  FAIL_MESSAGE "brotli not found: install it (Debian/Ubuntu: apt-get install libbrotli-dev)")
if(brotli_FOUND AND NOT TARGET brotli::enc)
  add_library(brotli::enc UNKNOWN IMPORTED)
  set_target_properties(brotli::enc PROPERTIES
    IMPORTED_LOCATION "${BROTLIENC_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${BROTLI_INCLUDE_DIR}")
endif()
if(brotli_FOUND AND BROTLIDEC_LIBRARY AND NOT TARGET brotli::dec)
  add_library(brotli::dec UNKNOWN IMPORTED)
  set_target_properties(brotli::dec PROPERTIES
    IMPORTED_LOCATION "${BROTLIDEC_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${BROTLI_INCLUDE_DIR}")
endif()
mark_as_advanced(BROTLI_INCLUDE_DIR BROTLIENC_LIBRARY BROTLIDEC_LIBRARY)
