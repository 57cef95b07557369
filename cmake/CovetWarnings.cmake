# Warning and sanitizer flags shared by every covet target.
function(covet_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow=local -Wnon-virtual-dtor)
  # GCC 12 at -O3 reports -Wrestrict false positives inside libstdc++ std::string (GCC bug 105329).
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
  if(COVET_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

if(COVET_SANITIZE)
  add_compile_options(-fsanitize=${COVET_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${COVET_SANITIZE})
endif()
