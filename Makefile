# segrl — the two commands:
#   make test   install the Debian packages the build needs (when missing), configure CMake into
#               build/, build, run ctest
#   make demo   the same set-up, then the CPU training demo (examples/demo/demo.sh: synthetic data,
#               warm-up model, GRPO, test accuracy before/after and a supervised control;
#               make demo WARMUP=1 redoes the warm-up; see examples/demo/README.md)
# Other targets: make build, make bench (full-size benchmark), make clean.
# CUDA kernels are built when nvcc is found; /usr/local/cuda/bin is put on PATH for CMake.

BUILD ?= build
CMAKE_ARGS ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
# what configuring and building needs today (g++ is nvcc's host compiler)
DEBIAN_PACKAGES := cmake make gcc g++ pkg-config \
  libcjson-dev libpcre2-dev libcurl4-openssl-dev libopenblas-dev libtorch-dev gnuplot-nox \
  libopenmpi-dev openmpi-bin \
  clang libclang-rt-dev valgrind

export PATH := /usr/local/cuda/bin:$(PATH)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps configure build test demo bench clean

all: build

deps:
	@missing=""; \
	for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

configure: deps
	cmake -S . -B $(BUILD) $(CMAKE_ARGS)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure

demo: build
	sh examples/demo/demo.sh $(BUILD)

bench: build
	$(BUILD)/tests/bench/segrl-bench advantage --json $(BUILD)/bench-advantage.json

clean:
	rm -rf $(BUILD)

# ---- reliability checks (docs/reliability.md) ----
#   make sanitize     the C library and its CPU tests built with ASan + UBSan (clang's or gcc's
#                     -fsanitize) in $(SAN_BUILD), then ctest -L cpu there (the ATen bridge and the
#                     MPI layer are left out of this build: see docs/reliability.md)
#   make memcheck     valgrind memcheck over the CPU C tests of $(BUILD) (leaks and errors)
#   make fuzz-smoke   every libFuzzer target in fuzz/ for FUZZ_SECONDS (default 60) on its corpus
SAN_BUILD ?= $(BUILD)-asan
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
MEMCHECK_TESTS := test-core test-advantage test-errors test-segment test-tree test-loss \
  test-reward test-tokenizer test-safetensors test-rollout test-badinput test-examples
VALGRIND := valgrind --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
  --errors-for-leak-kinds=definite,indirect --track-origins=yes \
  --suppressions=$(CURDIR)/fuzz/valgrind.supp
FUZZ_BUILD ?= $(BUILD)-fuzz
FUZZ_SECONDS ?= 60

.PHONY: sanitize memcheck fuzz-smoke

sanitize: deps
	cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSEGRL_CUDA=OFF \
	  -DSEGRL_TORCH=OFF -DSEGRL_DIST=OFF "-DCMAKE_C_FLAGS=$(SAN_FLAGS)" \
	  "-DCMAKE_EXE_LINKER_FLAGS=$(SAN_FLAGS)" "-DCMAKE_SHARED_LINKER_FLAGS=$(SAN_FLAGS)"
	cmake --build $(SAN_BUILD) -j $(JOBS)
	$(SAN_ENV) ctest --test-dir $(SAN_BUILD) -L cpu -E '^test-install$$' --output-on-failure

memcheck: build
	@set -e; cd $(BUILD)/tests; for t in $(MEMCHECK_TESTS); do \
	  [ -x ./$$t ] || { echo "memcheck: $$t not built"; exit 1; }; \
	  echo "== valgrind $$t"; \
	  $(VALGRIND) --log-file=$$t.memcheck.log ./$$t > $$t.memcheck.out 2>&1 || { \
	    tail -5 $$t.memcheck.out; grep -E 'ERROR SUMMARY|definitely|indirectly' $$t.memcheck.log; \
	    echo "memcheck: $$t failed (log: $(BUILD)/tests/$$t.memcheck.log)"; exit 1; }; \
	  tail -1 $$t.memcheck.out; grep -E 'ERROR SUMMARY' $$t.memcheck.log; \
	done

fuzz-smoke: deps
	$(MAKE) -C fuzz -j $(JOBS) FUZZ_BUILD=$(abspath $(FUZZ_BUILD)) all
	$(MAKE) -C fuzz FUZZ_BUILD=$(abspath $(FUZZ_BUILD)) SECONDS=$(FUZZ_SECONDS) smoke
