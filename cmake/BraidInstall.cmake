# Install tree: libraries, headers under include/braid/ (users include <braid/...> only), the
# braid executable, and a CMake package so that users write find_package(braid) and link
# braid::braid.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(BRAID_LIBRARIES braid_common braid_collectives braid_compression braid_optimizers braid_runtime)
install(TARGETS ${BRAID_LIBRARIES} EXPORT braidTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS braid RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(PROGRAMS launch/braid-slowlink launch/braid-restart DESTINATION ${CMAKE_INSTALL_BINDIR})
# Headers: include/braid/braid.h and include/braid/<layer>/*.h, including each other as
# <braid/...>; the interface include directory is <prefix>/include alone (BraidTarget.cmake).
install(CODE "
  set(BRAID_SOURCE_DIR \"${PROJECT_SOURCE_DIR}\")
  set(BRAID_BINARY_DIR \"${PROJECT_BINARY_DIR}\")
  set(BRAID_LAYERS common collectives compression optimizers runtime)
  set(BRAID_INCLUDE_DIR \"${CMAKE_INSTALL_INCLUDEDIR}/braid\")
  include(\"${PROJECT_SOURCE_DIR}/cmake/BraidInstallHeaders.cmake\")")
install(EXPORT braidTargets NAMESPACE braid:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/braid)

configure_package_config_file(cmake/braidConfig.cmake.in
  ${PROJECT_BINARY_DIR}/braidConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/braid)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/braidConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/braidConfig.cmake ${PROJECT_BINARY_DIR}/braidConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/braid)
