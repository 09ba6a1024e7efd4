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
  libopenmpi-dev openmpi-bin

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
