# Dependency discovery. Debian 12 packages are the reference (scripts/setup.sh installs them);
# a downloaded LibTorch 2.x works through -DCMAKE_PREFIX_PATH=/path/to/libtorch.
find_program(BRAID_CCACHE ccache)
if(BRAID_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  # ccache caches compilations that use a precompiled header only with this sloppiness: it
  # cannot see #defines or __TIME__ through the .gch (ccache(1), "Precompiled headers"). The
  # base directory makes paths inside the clone relative, so that another clone's build/ finds
  # the same entries (unity batches and precompiled headers are named by absolute path).
  set(CMAKE_CXX_COMPILER_LAUNCHER ${CMAKE_COMMAND} -E env CCACHE_SLOPPINESS=pch_defines,time_macros
      CCACHE_BASEDIR=${PROJECT_SOURCE_DIR} ${BRAID_CCACHE})
endif()

find_package(Threads REQUIRED)
find_package(MPI REQUIRED COMPONENTS CXX)
find_package(Torch REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(nlohmann_json 3 REQUIRED)  # flight records (runtime/flight_file.cpp)
find_package(ZLIB REQUIRED)
find_path(BRAID_CLI11_INCLUDE CLI/CLI.hpp REQUIRED)

# Torch's config adds its flags (ABI macro) to the `torch` target; lower layers link it for
# headers and c10/ATen symbols only.
include(${CMAKE_CURRENT_LIST_DIR}/BraidCuda.cmake)
