# The communicator layer (libsegrl_dist): test-dist run by mpirun (2 and 3 ranks, uneven batch
# slices), by a torchrun-style launcher (test-dist-launch: RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT,
# TCP rendezvous) and alone (a world of one); failure tests: a rank that never joins (MPI) and a
# rank that exits (TCP) make the others fail with a clear error within their timeout.
if(TARGET segrl_dist)
  add_executable(test-dist test-dist.c)
  target_link_libraries(test-dist PRIVATE segrl_dist segrl::segrl m)
  target_include_directories(test-dist PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  target_compile_options(test-dist PRIVATE -Wall -Wextra -Werror)
  if(SEGRL_WITH_CUDA)
    target_compile_definitions(test-dist PRIVATE SEGRL_TEST_CUDA_BUILD)
    target_link_libraries(test-dist PRIVATE CUDA::cudart)
    # NCCL on one GPU (a world of one); exits 77 without a GPU. libnccl.so.2 must be on the
    # library path (the CUDA toolkit's lib folder is added here)
    add_test(NAME test-dist-cuda COMMAND test-dist cuda)
    set_tests_properties(test-dist-cuda PROPERTIES LABELS cuda SKIP_RETURN_CODE 77 TIMEOUT 120
      ENVIRONMENT "LD_LIBRARY_PATH=${CUDAToolkit_LIBRARY_DIR}:$ENV{LD_LIBRARY_PATH}")
  endif()
  add_executable(test-dist-launch test-dist-launch.c)
  target_compile_options(test-dist-launch PRIVATE -Wall -Wextra -Werror)

  # OpenMPI refuses root without these and 2 cores without --oversubscribe
  set(SEGRL_MPIEXEC_FLAGS "")
  if(SEGRL_DIST_OPENMPI)
    set(SEGRL_MPIEXEC_FLAGS --oversubscribe --allow-run-as-root)
  endif()
  set(SEGRL_MPI_ENV OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
      OMPI_MCA_rmaps_base_oversubscribe=1)

  foreach(np 2 3)
    add_test(NAME test-dist-mpi-${np}
             COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} ${SEGRL_MPIEXEC_FLAGS}
                     $<TARGET_FILE:test-dist> collectives mpi)
    add_test(NAME test-dist-estimators-mpi-${np}
             COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} ${SEGRL_MPIEXEC_FLAGS}
                     $<TARGET_FILE:test-dist> estimators)
    set_tests_properties(test-dist-mpi-${np} test-dist-estimators-mpi-${np} PROPERTIES
      LABELS cpu TIMEOUT 120 ENVIRONMENT "${SEGRL_MPI_ENV}")
  endforeach()
  # the last rank never joins an all-reduce: the others must report SEGRL_ERR_COMM after the
  # 2 s timeout and end the job (MPI_Abort); a hang fails on the ctest TIMEOUT
  add_test(NAME test-dist-mpi-stuck
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 3 ${SEGRL_MPIEXEC_FLAGS}
                   $<TARGET_FILE:test-dist> stuck 2)
  set_tests_properties(test-dist-mpi-stuck PROPERTIES LABELS cpu TIMEOUT 40
    ENVIRONMENT "${SEGRL_MPI_ENV}"
    PASS_REGULAR_EXPRESSION "dist-failure-ok rank 0"
    FAIL_REGULAR_EXPRESSION "FAIL;still alive")

  # the last rank exits early while mpirun is told to let the job go on (OpenMPI's default ends
  # the whole job at once, which is no hang either): the others fail on their 2 s timeout
  if(SEGRL_DIST_ORTE)
    add_test(NAME test-dist-mpi-dies
             COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 3 ${SEGRL_MPIEXEC_FLAGS}
                     --mca orte_abort_on_non_zero_status 0
                     $<TARGET_FILE:test-dist> dies 2 timeout)
    set_tests_properties(test-dist-mpi-dies PROPERTIES LABELS cpu TIMEOUT 40
      ENVIRONMENT "${SEGRL_MPI_ENV}"
      PASS_REGULAR_EXPRESSION "dist-failure-ok rank 0"
      FAIL_REGULAR_EXPRESSION "FAIL")
  endif()

  # torchrun-style launch: TCP rendezvous and the TCP transport
  add_test(NAME test-dist-env-3
           COMMAND test-dist-launch 3 ok $<TARGET_FILE:test-dist> collectives tcp)
  add_test(NAME test-dist-estimators-env-3
           COMMAND test-dist-launch 3 ok $<TARGET_FILE:test-dist> estimators)
  add_test(NAME test-dist-env-port
           COMMAND test-dist-launch 2 busy $<TARGET_FILE:test-dist> collectives tcp)
  add_test(NAME test-dist-env-agent
           COMMAND test-dist-launch 2 agent $<TARGET_FILE:test-dist> collectives tcp)
  add_test(NAME test-dist-env-dies
           COMMAND test-dist-launch 3 dies $<TARGET_FILE:test-dist> dies 20 closed)
  # no launcher at all: a world of one
  add_test(NAME test-dist-self COMMAND test-dist collectives self)
  set_tests_properties(test-dist-env-3 test-dist-estimators-env-3 test-dist-env-port
    test-dist-env-agent test-dist-env-dies test-dist-self
    PROPERTIES LABELS cpu TIMEOUT 90)
endif()
