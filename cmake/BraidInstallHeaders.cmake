# Run by `cmake --install` (see BraidInstall.cmake): installs the public header braid.h as
# <prefix>/include/braid/braid.h and every layer header under <prefix>/include/braid/<layer>/,
# rewriting the rooted includes between them ("collectives/communicator.h") to
# <braid/collectives/communicator.h>. Users then put only <prefix>/include on the include path:
# <braid/braid.h> and everything it includes resolve, and "runtime/data.h" does not. In the
# source tree the includes stay rooted (STYLE.md rule 2); only the installed copies change.
#
# Inputs: BRAID_SOURCE_DIR, BRAID_BINARY_DIR, BRAID_LAYERS (folders), BRAID_INCLUDE_DIR (the
# destination relative to the install prefix, e.g. include/braid).
set(stage ${BRAID_BINARY_DIR}/install-headers)
file(REMOVE_RECURSE ${stage})
string(REPLACE ";" "|" layer_alternatives "${BRAID_LAYERS}")
set(rooted_include "#include \"((${layer_alternatives})/[^\"]+)\"")

# Copies SOURCE to the stage as RELATIVE (a path under include/braid/), includes rewritten.
function(braid_stage_header source relative)
  file(READ ${source} text)
  string(REGEX REPLACE "${rooted_include}" "#include <braid/\\1>" text "${text}")
  file(WRITE ${stage}/${relative} "${text}")
endfunction()

braid_stage_header(${BRAID_SOURCE_DIR}/runtime/braid/braid.h braid.h)
braid_stage_header(${BRAID_BINARY_DIR}/generated/common/version.h common/version.h)
foreach(layer ${BRAID_LAYERS})
  file(GLOB headers RELATIVE ${BRAID_SOURCE_DIR} ${BRAID_SOURCE_DIR}/${layer}/*.h)
  foreach(header ${headers})
    braid_stage_header(${BRAID_SOURCE_DIR}/${header} ${header})
  endforeach()
endforeach()
file(INSTALL ${stage}/ DESTINATION ${CMAKE_INSTALL_PREFIX}/${BRAID_INCLUDE_DIR})
