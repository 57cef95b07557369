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
  if(COVET_SANITIZE MATCHES "thread" AND COVET_SANITIZE MATCHES "address|leak|memory")
    message(FATAL_ERROR "COVET_SANITIZE=${COVET_SANITIZE}: ThreadSanitizer cannot be combined with ASan/LSan/MSan; "
                        "use a separate build tree (cmake --preset tsan -> build-tsan, cmake --preset asan -> build)")
  endif()
  add_compile_options(-fsanitize=${COVET_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  if(COVET_SANITIZE MATCHES "thread")
    # Asio brackets handler calls with std::atomic_thread_fence, which TSan does not model (GCC: -Werror=tsan).
    # Its real hand-offs go through the scheduler's mutex, which TSan sees; the null fence block leaves those.
    add_compile_definitions(BOOST_ASIO_DISABLE_FENCED_BLOCK)
  endif()
  add_link_options(-fsanitize=${COVET_SANITIZE})
endif()
