# test-install: install the build tree into a scratch prefix, then build and run a downstream C
# program with find_package(segrl) (shared and static targets) and with pkg-config.
#   cmake -DSEGRL_BUILD=<build> -DSEGRL_SOURCE=<src> -DSEGRL_WORK=<scratch> -P run.cmake
set(prefix ${SEGRL_WORK}/prefix)
file(REMOVE_RECURSE ${SEGRL_WORK})

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

run("cmake --install" ${CMAKE_COMMAND} --install ${SEGRL_BUILD} --prefix ${prefix})
foreach(f include/segrl/segrl.h include/segrl/core.h include/segrl/advantage.h)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()

foreach(kind shared static)
  set(bin ${SEGRL_WORK}/${kind})
  run("configure downstream (${kind})" ${CMAKE_COMMAND} -S ${SEGRL_SOURCE}/tests/install/downstream
      -B ${bin} -G "${SEGRL_GENERATOR}" -DCMAKE_PREFIX_PATH=${prefix} -DSEGRL_LINK=${kind})
  run("build downstream (${kind})" ${CMAKE_COMMAND} --build ${bin})
  run("run downstream (${kind})" ${bin}/downstream)
  message(STATUS "${kind}: ${last_output}")
endforeach()

# pkg-config (relocatable .pc: the prefix is found from the file's own folder)
find_program(PKG_CONFIG pkg-config REQUIRED)
file(GLOB_RECURSE pcs ${prefix}/*/segrl.pc)
list(GET pcs 0 pc)
get_filename_component(pcdir ${pc} DIRECTORY)
set(ENV{PKG_CONFIG_PATH} ${pcdir})
run("pkg-config" ${PKG_CONFIG} --cflags --libs segrl)
string(STRIP "${last_output}" flags)
separate_arguments(flags UNIX_COMMAND "${flags}")
find_program(CC NAMES cc gcc REQUIRED)
run("cc with pkg-config flags" ${CC} -std=c11 -o ${SEGRL_WORK}/downstream-pc
    ${SEGRL_SOURCE}/tests/install/downstream/main.c ${flags})
get_filename_component(libdir ${pcdir} DIRECTORY)
set(ENV{LD_LIBRARY_PATH} ${libdir})
run("run downstream (pkg-config)" ${SEGRL_WORK}/downstream-pc)
message(STATUS "pkg-config: ${last_output}")

# the ATen bridge, when it was built: a C program that loads a model, samples, recomputes the
# log-probs with autograd, takes a PPO loss and backpropagates, using the installed headers only
file(GLOB torchlibs ${prefix}/*/libsegrl_torch.so)
if(torchlibs)
  set(bin ${SEGRL_WORK}/torch)
  run("configure downstream (torch)" ${CMAKE_COMMAND} -S ${SEGRL_SOURCE}/tests/install/downstream-torch
      -B ${bin} -G "${SEGRL_GENERATOR}" -DCMAKE_PREFIX_PATH=${prefix})
  run("build downstream (torch)" ${CMAKE_COMMAND} --build ${bin})
  run("run downstream (torch)" ${bin}/downstream-torch ${SEGRL_SOURCE}/tests/fixtures/model/qwen2_tied)
  message(STATUS "torch: ${last_output}")
endif()
