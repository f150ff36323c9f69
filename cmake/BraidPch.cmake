# Precompiled headers. Much of a cold build is GCC parsing LibTorch's headers again in every
# translation unit (a runtime file: 8 of its 14 s; docs/building.md has the measurements). GCC
# accepts a precompiled header only when the flags that made it match those of the file using
# it (-fPIC for libraries, -fPIE for programs), so there is one for the libraries' flags and one
# for the programs'; CMake adds -Winvalid-pch, so a refused header shows as a warning.
# The header set is chosen per layer: a 570 MB <torch/torch.h> header takes 3.5 s to load, as
# long as parsing the part of it a runtime file uses, while <ATen/ATen.h> loads in under 1 s.
option(BRAID_PCH "Precompile LibTorch's headers (one copy per layer and one for the tests)" ON)

# Each precompiled header has an owner of its own: an object library that compiles nothing else
# and depends only on the packages whose headers it holds, so that it is built beside the
# lowest layers instead of between them (a layer's objects wait for the layers below).
set(BRAID_PCH_SOURCE ${PROJECT_BINARY_DIR}/generated/pch_owner.cpp)
if(BRAID_PCH AND NOT EXISTS ${BRAID_PCH_SOURCE})
  file(WRITE ${BRAID_PCH_SOURCE} "// A precompiled header's owner compiles this empty file and its header.\n")
endif()

# braid_pch_owner(NAME PIE HEADER...): NAME precompiles HEADER... with the libraries' flags
# (-fPIC), or with the programs' (-fPIE) when PIE is ON.
function(braid_pch_owner name pie)
  if(NOT BRAID_PCH)
    return()
  endif()
  add_library(${name} OBJECT EXCLUDE_FROM_ALL ${BRAID_PCH_SOURCE})
  target_link_libraries(${name} PRIVATE torch spdlog::spdlog fmt::fmt MPI::MPI_CXX)
  if(pie)
    set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE OFF)
    target_compile_options(${name} PRIVATE ${CMAKE_CXX_COMPILE_OPTIONS_PIE})
  else()
    target_compile_options(${name} PRIVATE ${BRAID_WARNINGS})
  endif()
  target_precompile_headers(${name} PRIVATE ${ARGN})
endfunction()

# ATen alone for compression; the module and optimizer interfaces too for the layers above it.
braid_pch_owner(braid_pch_aten OFF <ATen/ATen.h>)
braid_pch_owner(braid_pch_modules OFF <ATen/ATen.h> <torch/nn/module.h> <torch/optim/optimizer.h>
                <spdlog/spdlog.h>)
# All of LibTorch's C++ API for the programs that include <torch/torch.h>.
braid_pch_owner(braid_pch_programs ON <torch/torch.h>)
# Test programs compile at -O1 in a Release build: their time is in LibTorch and the libraries,
# while -O3 costs 40% more compiler time per file. The owner of their precompiled header must
# use the same level: GCC given a header made at another level can crash, not just refuse it.
set(BRAID_PROGRAM_OPTIONS $<$<CONFIG:Release>:-O1>)
if(TARGET braid_pch_programs)
  target_compile_options(braid_pch_programs PRIVATE ${BRAID_PROGRAM_OPTIONS})
endif()

# braid_precompile(TARGET OWNER): TARGET's files start from OWNER's precompiled header.
function(braid_precompile target owner)
  if(BRAID_PCH)
    target_precompile_headers(${target} REUSE_FROM ${owner})
  endif()
endfunction()

# braid_test_programs(TARGET...): the test programs TARGET... compile with BRAID_PROGRAM_OPTIONS;
# those whose sources include <torch/torch.h> (directly or through tests/training_helpers.h)
# start from braid_pch_programs, the others parse less than its 570 MB take to load.
function(braid_test_programs)
  foreach(target ${ARGN})
    target_compile_options(${target} PRIVATE ${BRAID_PROGRAM_OPTIONS})
    if(NOT BRAID_PCH)
      continue()
    endif()
    get_target_property(sources ${target} SOURCES)
    get_target_property(source_dir ${target} SOURCE_DIR)
    foreach(source ${sources})
      get_filename_component(path ${source} ABSOLUTE BASE_DIR ${source_dir})
      file(STRINGS ${path} hits REGEX "#include (<torch/torch.h>|\"training_helpers.h\")")
      if(hits)
        target_precompile_headers(${target} REUSE_FROM braid_pch_programs)
        break()
      endif()
    endforeach()
  endforeach()
endfunction()
