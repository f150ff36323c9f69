# The braid ports of the PyTorch C++ examples mnist and dcgan, each with its one-process
# original (README.md here). Included by this folder's CMakeLists.txt (a user's project, against
# an installed braid) and by braid's own build, where tests/ports_test.sh runs them; both link
# braid::braid. Headers are included rooted at this folder ("mnist/net.h", "support/flags.h").
foreach(program mnist/mnist mnist/mnist_plain dcgan/dcgan dcgan/dcgan_plain)
  get_filename_component(name ${program} NAME)
  add_executable(${name} ${CMAKE_CURRENT_LIST_DIR}/${program}.cpp)
  target_include_directories(${name} PRIVATE ${CMAKE_CURRENT_LIST_DIR})
  target_link_libraries(${name} PRIVATE braid::braid)
endforeach()
