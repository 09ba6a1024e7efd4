#!/usr/bin/env bash
# tests/gpu/check.sh — everything a GPU session runs, in one call of the device tool:
# configure with CUDA for the local GPU's architecture, build, run the whole ctest suite (the
# CUDA tests compare every kernel with the CPU reference), then the advantage, segment and tree benchmarks on CPU and
# CUDA. Results go under $OUT (default ./gpu-out): ctest.log, bench-<name>.txt/.json, device.txt.
#   bash tests/gpu/check.sh            (on the GPU machine, from the repository root)
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
export PATH=/usr/local/cuda/bin:$PATH
{ nvidia-smi || true; nvcc --version | tail -2; } > "$OUT/device.txt" 2>&1
# compute capability of GPU 0, e.g. "90" for an H100/H200
cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.')
cc=${cc:-90}
build=build-gpu
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$cc" \
  > "$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
cmake --build "$build" -j "$(nproc)" > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
ctest --test-dir "$build" --output-on-failure > "$OUT/ctest.log" 2>&1
rc=$?
tail -15 "$OUT/ctest.log"
for b in advantage segment tree; do
  "$build/tests/bench/segrl-bench" $b --device all --json "$OUT/bench-$b.json" \
    > "$OUT/bench-$b.txt" 2>&1
  cat "$OUT/bench-$b.txt"
done
exit $rc
