# The CUDA path: BRAID_CUDA = AUTO | ON | OFF (and BRAID_CUDA_WITHOUT_GPU for AUTO). Sets BRAID_HAS_CUDA (0/1) for the generated header
# collectives/cuda_config.h and, when 1, enables the CUDA language (nvcc compiles only the few
# .cu kernel files) and finds CUDA::cudart and NCCL. LibTorch need not have CUDA: braid's
# transport and kernels use the CUDA runtime directly; training on CUDA tensors needs a CUDA
# LibTorch, which the runtime checks at start-up.
string(TOUPPER "${BRAID_CUDA}" BRAID_CUDA)
if(NOT BRAID_CUDA MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "BRAID_CUDA is '${BRAID_CUDA}'; valid: AUTO, ON, OFF")
endif()
set(BRAID_HAS_CUDA 0)
# AUTO skips the CUDA path on a machine without a visible GPU (a driver device node), where it
# cannot run: the main job's first build then compiles nothing with nvcc. The test command sets
# BRAID_CUDA_WITHOUT_GPU so that the NCCL code compiles and links there all the same.
set(gpu_visible FALSE)
if(EXISTS /dev/nvidiactl OR EXISTS /dev/nvidia0)
  set(gpu_visible TRUE)
endif()
if(BRAID_CUDA STREQUAL "AUTO" AND NOT gpu_visible AND NOT BRAID_CUDA_WITHOUT_GPU)
  message(STATUS "braid: CUDA path off (BRAID_CUDA=AUTO and no GPU visible; "
                 "-DBRAID_CUDA_WITHOUT_GPU=ON or -DBRAID_CUDA=ON builds it anyway)")
elseif(NOT BRAID_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  find_package(CUDAToolkit QUIET)
  find_path(BRAID_NCCL_INCLUDE nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include)
  find_library(BRAID_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib64)
  set(missing "")
  if(NOT CMAKE_CUDA_COMPILER)
    list(APPEND missing "nvcc (set CMAKE_CUDA_COMPILER or put it on PATH)")
  endif()
  if(NOT CUDAToolkit_FOUND)
    list(APPEND missing "the CUDA toolkit (CUDAToolkit_ROOT)")
  endif()
  if(NOT BRAID_NCCL_INCLUDE OR NOT BRAID_NCCL_LIBRARY)
    list(APPEND missing "NCCL (nccl.h and libnccl; set BRAID_NCCL_INCLUDE and BRAID_NCCL_LIBRARY)")
  endif()
  if(missing STREQUAL "")
    set(BRAID_HAS_CUDA 1)
    # For `braid --version`: the toolkit's version and NCCL's, from nccl.h.
    set(BRAID_CUDA_VERSION "${CUDAToolkit_VERSION}")
    file(STRINGS "${BRAID_NCCL_INCLUDE}/nccl.h" nccl_parts REGEX "^#define NCCL_(MAJOR|MINOR|PATCH) ")
    string(REGEX REPLACE "[^;]*NCCL_[A-Z]+ +([0-9]+)[^;]*" "\\1" nccl_parts "${nccl_parts}")
    string(REPLACE ";" "." BRAID_NCCL_VERSION "${nccl_parts}")
  elseif(BRAID_CUDA STREQUAL "ON")
    string(REPLACE ";" ", " missing "${missing}")
    message(FATAL_ERROR "BRAID_CUDA=ON but these were not found: ${missing}. "
                        "Install them or configure with -DBRAID_CUDA=OFF (or AUTO).")
  endif()
endif()
if(BRAID_HAS_CUDA)
  # sm_90 (H100/H200) as machine code plus compute_90 PTX that newer GPUs JIT-compile; one
  # architecture keeps nvcc quick on small CI machines. scripts/gpu_check.sh passes "native".
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 90)
  endif()
  if(BRAID_CCACHE AND NOT CMAKE_CUDA_COMPILER_LAUNCHER)
    set(CMAKE_CUDA_COMPILER_LAUNCHER ${BRAID_CCACHE})
  endif()
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 17)
  message(STATUS "braid: CUDA path on (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, NCCL ${BRAID_NCCL_LIBRARY})")
elseif(NOT BRAID_CUDA STREQUAL "AUTO" OR gpu_visible OR BRAID_CUDA_WITHOUT_GPU)
  message(STATUS "braid: CUDA path off (BRAID_CUDA=${BRAID_CUDA})")
endif()
