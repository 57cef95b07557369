# Finds nghttp2 (Debian: libnghttp2-dev) and defines nghttp2::nghttp2.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_NGHTTP2 QUIET libnghttp2)
endif()
find_path(NGHTTP2_INCLUDE_DIR nghttp2/nghttp2.h HINTS ${PC_NGHTTP2_INCLUDE_DIRS})
find_library(NGHTTP2_LIBRARY NAMES nghttp2 HINTS ${PC_NGHTTP2_LIBRARY_DIRS})
set(nghttp2_VERSION ${PC_NGHTTP2_VERSION})
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(nghttp2
  REQUIRED_VARS NGHTTP2_LIBRARY NGHTTP2_INCLUDE_DIR
  VERSION_VAR nghttp2_VERSION
  FAIL_MESSAGE "nghttp2 not found: install it (Debian/Ubuntu: apt-get install libnghttp2-dev)")
if(nghttp2_FOUND AND NOT TARGET nghttp2::nghttp2)
  add_library(nghttp2::nghttp2 UNKNOWN IMPORTED)
  set_target_properties(nghttp2::nghttp2 PROPERTIES
    IMPORTED_LOCATION "${NGHTTP2_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${NGHTTP2_INCLUDE_DIR}")
endif()
mark_as_advanced(NGHTTP2_INCLUDE_DIR NGHTTP2_LIBRARY)
