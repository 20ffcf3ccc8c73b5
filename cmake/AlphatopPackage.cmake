# SPDX-License-Identifier: Apache-2.0
# What lets other builds find the installed agent library (included by agent/CMakeLists.txt):
#   alphatop.pc          pkg-config: `cc app.c $(pkg-config --cflags --libs alphatop)`
#   alphatopConfig.cmake find_package(alphatop): targets alphatop::agent (shared) and
#                        alphatop::agent_static, with alphatopConfigVersion.cmake
# Both locate the prefix from their own place, so an install moved elsewhere (or made with
# `cmake --install BUILD --prefix DIR`) still works.
include(CMakePackageConfigHelpers)

# alphatop.pc lives in LIBDIR/pkgconfig: its directories relative to ${pcfiledir}, except for
# the system prefix /usr (a distribution's package, never moved), written as they are so that
# pkg-config sees /usr/include and /usr/lib* as system directories and leaves them out.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    set(at_pc_prefix /usr)
    set(at_pc_libdir ${CMAKE_INSTALL_FULL_LIBDIR})
    set(at_pc_includedir ${CMAKE_INSTALL_FULL_INCLUDEDIR})
else()
    file(RELATIVE_PATH at_rel ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
    string(REGEX REPLACE "/$" "" at_rel "${at_rel}")
    set(at_pc_prefix "\${pcfiledir}/${at_rel}")
    set(at_pc_libdir "\${pcfiledir}/..")
    file(RELATIVE_PATH at_rel ${CMAKE_INSTALL_PREFIX} ${CMAKE_INSTALL_FULL_INCLUDEDIR})
    set(at_pc_includedir "\${prefix}/${at_rel}")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/alphatop.pc.in ${PROJECT_BINARY_DIR}/alphatop.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/alphatop.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

set(at_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/alphatop)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/alphatopConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/alphatopConfig.cmake
                              INSTALL_DESTINATION ${at_cmake_dir})
# The shared library's SONAME changes with the major version only: so does compatibility.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/alphatopConfigVersion.cmake
                                 COMPATIBILITY SameMajorVersion)
install(EXPORT alphatopTargets NAMESPACE alphatop:: DESTINATION ${at_cmake_dir})
install(FILES ${PROJECT_BINARY_DIR}/alphatopConfig.cmake
              ${PROJECT_BINARY_DIR}/alphatopConfigVersion.cmake DESTINATION ${at_cmake_dir})
