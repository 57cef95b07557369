# Finds nghttp3, HTTP/3 and QPACK (Debian: libnghttp3-dev), and defines nghttp3::nghttp3.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_NGHTTP3 QUIET libnghttp3)
endif()
find_path(NGHTTP3_INCLUDE_DIR nghttp3/nghttp3.h HINTS ${PC_NGHTTP3_INCLUDE_DIRS})
find_library(NGHTTP3_LIBRARY NAMES nghttp3 HINTS ${PC_NGHTTP3_LIBRARY_DIRS})
set(nghttp3_VERSION ${PC_NGHTTP3_VERSION})
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(nghttp3
  REQUIRED_VARS NGHTTP3_LIBRARY NGHTTP3_INCLUDE_DIR
  VERSION_VAR nghttp3_VERSION
  FAIL_MESSAGE "nghttp3 not found: install it (Debian/Ubuntu: apt-get install libnghttp3-dev)")
if(nghttp3_FOUND AND NOT TARGET nghttp3::nghttp3)
  add_library(nghttp3::nghttp3 UNKNOWN IMPORTED)
  set_target_properties(nghttp3::nghttp3 PROPERTIES
    IMPORTED_LOCATION "${NGHTTP3_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${NGHTTP3_INCLUDE_DIR}")
endif()
mark_as_advanced(NGHTTP3_INCLUDE_DIR NGHTTP3_LIBRARY)
