# Install tree: libraries, headers under include/braid/, the braid executable, and a CMake
# package so that users write find_package(braid) and link braid::braid.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(BRAID_LIBRARIES braid_common braid_collectives braid_optimizers braid_runtime)
install(TARGETS ${BRAID_LIBRARIES} EXPORT braidTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS braid RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(PROGRAMS launch/braid-slowlink DESTINATION ${CMAKE_INSTALL_BINDIR})
foreach(layer common collectives optimizers runtime)
  install(DIRECTORY ${layer}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/braid/${layer}
          FILES_MATCHING PATTERN "*.h" PATTERN "braid" EXCLUDE)
endforeach()
install(FILES ${PROJECT_BINARY_DIR}/generated/common/version.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/braid/common)
install(FILES runtime/braid/braid.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/braid)
install(EXPORT braidTargets NAMESPACE braid:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/braid)

configure_package_config_file(cmake/braidConfig.cmake.in
  ${PROJECT_BINARY_DIR}/braidConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/braid)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/braidConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/braidConfig.cmake ${PROJECT_BINARY_DIR}/braidConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/braid)
