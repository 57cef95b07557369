# Finds llhttp. Prefers an installed llhttp library (llhttp::llhttp from its own CMake config, or libllhttp);
# otherwise builds the C sources Debian's node-llhttp ships (/usr/share/llhttp/*.c) into a static library.
# Defines llhttp::llhttp either way.
find_package(llhttp CONFIG QUIET NO_MODULE)
if(TARGET llhttp::llhttp)
  set(llhttp_FOUND TRUE)
  return()
endif()

find_path(LLHTTP_INCLUDE_DIR llhttp.h PATH_SUFFIXES llhttp)
find_library(LLHTTP_LIBRARY NAMES llhttp)
if(LLHTTP_INCLUDE_DIR AND LLHTTP_LIBRARY)
  add_library(llhttp::llhttp UNKNOWN IMPORTED)
  set_target_properties(llhttp::llhttp PROPERTIES
    IMPORTED_LOCATION "${LLHTTP_LIBRARY}" INTERFACE_INCLUDE_DIRECTORIES "${LLHTTP_INCLUDE_DIR}")
  set(llhttp_FOUND TRUE)
  return()
endif()

set(LLHTTP_SOURCE_DIR "/usr/share/llhttp" CACHE PATH "Directory with llhttp's C sources (api.c http.c llhttp.c)")
find_path(LLHTTP_SOURCE_HEADER_DIR llhttp.h HINTS /usr/share/include/llhttp)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(llhttp
  REQUIRED_VARS LLHTTP_SOURCE_HEADER_DIR LLHTTP_SOURCE_DIR
  FAIL_MESSAGE "llhttp not found: install a llhttp library, or Debian's node-llhttp (apt-get install node-llhttp) for its C sources")
if(llhttp_FOUND AND NOT TARGET covet_llhttp)
  add_library(covet_llhttp STATIC
    ${LLHTTP_SOURCE_DIR}/api.c ${LLHTTP_SOURCE_DIR}/http.c ${LLHTTP_SOURCE_DIR}/llhttp.c)
  set_target_properties(covet_llhttp PROPERTIES POSITION_INDEPENDENT_CODE ON C_VISIBILITY_PRESET hidden)
  target_include_directories(covet_llhttp PUBLIC
    $<BUILD_INTERFACE:${LLHTTP_SOURCE_HEADER_DIR}>)
  # Generated C: don't let our warning flags or sanitizers judge it.
  target_compile_options(covet_llhttp PRIVATE -w)
  add_library(llhttp::llhttp ALIAS covet_llhttp)
  if(NOT SKBUILD)
    install(TARGETS covet_llhttp EXPORT covetTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
  endif()
endif()
