# SPDX-License-Identifier: Apache-2.0
# What lets other builds find the installed agent library (included by agent/CMakeLists.txt):
#   alphatop.pc          pkg-config: `cc app.c $(pkg-config --cflags --libs alphatop)`
#   alphatopConfig.cmake find_package(alphatop): targets alphatop::agent (shared) and
#                        alphatop::agent_static, with alphatopConfigVersion.cmake
# Both locate the prefix from their own place, so an install moved elsewhere (or made with
# `cmake --install BUILD --prefix DIR`) still works.
include(CMakePackageConfigHelpers)

# alphatop.pc lives in LIBDIR/pkgconfig: its prefix and includedir relative to ${pcfiledir}.
file(RELATIVE_PATH at_pc_to_prefix ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
file(RELATIVE_PATH at_prefix_to_include ${CMAKE_INSTALL_PREFIX} ${CMAKE_INSTALL_FULL_INCLUDEDIR})
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
