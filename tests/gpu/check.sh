#!/usr/bin/env bash
# tests/gpu/check.sh — everything a GPU session runs, in ONE call of the device tool:
#   run  command: "bash tests/gpu/check.sh"   carry: [".gpu-deps"]   timeout_s: 600
# The GPU machine has nvcc, CMake and a python3 with a CUDA torch, but not the Debian libraries
# the core links (cJSON, PCRE2, libcurl, OpenBLAS) nor pkg-config: tests/gpu/fetch-debs.sh puts
# their .deb files in .gpu-deps/ here, and this script unpacks them (dpkg -x) into a private
# prefix, writes the prefix into their .pc files, configures with CUDA for the local GPU's
# architecture and with the pip torch (libsegrl_torch, the trainer, the torch tests), builds, runs
# the CUDA tests, the benchmarks (advantage, segment, tree with --device all; loss, generate with
# --device cuda), then the rest of ctest. Every stage has a time limit; a failed stage does not
# stop the ones that do not need it; the whole script keeps within GPU_CHECK_BUDGET seconds (480).
# What it writes under $OUT (default ./gpu-out; at most 8 files come back from a device run):
#   summary.txt   one line per stage (status, seconds), where the four libraries came from, the
#                 ctest totals and the failed tests
#   device.txt    nvidia-smi, nvcc, torch, compiler, what the deps prefix supplied
#   ctest.log     the CUDA tests, then all the others (--output-on-failure)
#   bench.txt     the text output of every benchmark
#   bench.json    {"advantage": rows, "segment": rows, ...} (each segrl-bench --json file)
#   logs.tar.gz   every stage's full log (configure, build, ...) and the per-benchmark files
# Knobs (environment): GPU_CHECK_BUDGET, GPU_CHECK_JOBS, GPU_BUILD (build dir, default build-gpu),
# PYTHON (the one with torch), GPU_CUDA_ARCH (default: nvidia-smi's compute capability, else 90),
# GPU_DEPS_ONLY=1 (pkg-config sees only the carried .pc files: simulates the bare machine),
# GPU_DEPS_EXPOSE_ALL=1 (expose every carried library, not only those the system lacks),
# GPU_DEPS_LDCONFIG=0/1 (register the carried libraries with ldconfig; default: only as root on a
# machine where nvidia-smi sees a GPU), GPU_CHECK_SCALE (multiplies every stage's limit: a slow
# machine), GPU_BENCH="advantage segment tree loss generate", GPU_BENCH_DEVICE (all, cpu or cuda:
# the same for every benchmark).
set -uo pipefail
root=$(pwd)
export OUT=${OUT:-$root/gpu-out}
mkdir -p "$OUT"
build=${GPU_BUILD:-$root/build-gpu}
case $build in /*) ;; *) build=$root/$build ;; esac
logs=$build-logs
budget=${GPU_CHECK_BUDGET:-480}
jobs=${GPU_CHECK_JOBS:-$(nproc)}
py=${PYTHON:-python3}
deps=$root/.gpu-deps
prefix=${GPU_DEPS_PREFIX:-$deps/prefix}
benches=${GPU_BENCH:-advantage segment tree loss generate}
rm -rf "$logs" && mkdir -p "$logs"
: > "$logs/summary.txt"
failed=0
t0=$SECONDS

note() { echo "$*" | tee -a "$logs/summary.txt"; }
# copy the small files to $OUT and pack every log (after each stage: a run cut short by the
# device tool's limit still returns what was done)
pack() {
  cp "$logs/summary.txt" "$OUT/summary.txt"
  [ -f "$logs/device.log" ] && cp "$logs/device.log" "$OUT/device.txt"
  cat "$logs"/ctest-*.log > "$OUT/ctest.log" 2>/dev/null || true
  cat "$logs"/bench-*.log > "$OUT/bench.txt" 2>/dev/null || true
  tar czf "$OUT/logs.tar.gz" -C "$logs" . 2>/dev/null || true
}
# stage NAME LIMIT FUNCTION: runs FUNCTION (exported) with its output in $logs/NAME.log, killed
# after min(LIMIT, what is left of the budget); records status and seconds in summary.txt
stage() {
  local name=$1 limit=$2 fn=$3 s=$SECONDS rc status
  local left=$(( budget - (SECONDS - t0) - 15 ))
  limit=$(( limit * ${GPU_CHECK_SCALE:-1} ))
  if (( left < 10 )); then
    note "$(printf '%-20s %-22s' "$name" 'SKIPPED (budget spent)')"; failed=1; pack; return 124
  fi
  (( limit > left )) && limit=$left
  timeout -k 10 "$limit" bash -c "$fn" > "$logs/$name.log" 2>&1
  rc=$?
  if (( rc == 0 )); then status=ok
  elif (( rc == 124 || rc == 137 )); then status="TIMEOUT (${limit}s)"
  else status="FAILED (rc=$rc)"; fi
  (( rc != 0 )) && failed=1
  note "$(printf '%-20s %-22s %5ds' "$name" "$status" $(( SECONDS - s )))"
  pack
  return $rc
}

# ---- CUDA ---------------------------------------------------------------------------------
if [ -d /usr/local/cuda/bin ]; then
  export PATH=/usr/local/cuda/bin:$PATH
  export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda} CUDAToolkit_ROOT=${CUDAToolkit_ROOT:-/usr/local/cuda}
  export CUDA_PATH=${CUDA_PATH:-/usr/local/cuda}
fi
cc=${GPU_CUDA_ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')}
cc=${cc:-90}
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-${cc%?}.${cc: -1}}

# ---- the carried Debian packages -----------------------------------------------------------
# unpack: dpkg-deb -x, else ar + tar, else Python (ar and tar.xz/zst readers)
unpack_deps() {
  set -e
  ls "$deps"/*.deb > /dev/null
  rm -rf "$prefix" && mkdir -p "$prefix"
  for d in "$deps"/*.deb; do
    if command -v dpkg-deb > /dev/null; then dpkg-deb -x "$d" "$prefix"
    elif command -v ar > /dev/null; then
      t=$(mktemp -d) && (cd "$t" && ar x "$d" && tar xf data.tar.* -C "$prefix") && rm -rf "$t"
    else
      "$py" - "$d" "$prefix" <<'EOF'
import io, sys, tarfile
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'!<arch>\n'
pos = 8
while pos < len(data):
    name = data[pos:pos + 16].decode().strip().rstrip('/')
    size = int(data[pos + 48:pos + 58].decode().strip())
    body = data[pos + 60:pos + 60 + size]
    if name.startswith('data.tar'):
        tarfile.open(fileobj=io.BytesIO(body)).extractall(sys.argv[2])
    pos += 60 + size + (size & 1)
EOF
    fi
    echo "unpacked $(basename "$d")"
  done
  # the .pc files name /usr (prefix=, libdir=, includedir=): write the prefix in, in place (CMake
  # also finds them through CMAKE_PREFIX_PATH)
  for pc in "$prefix"/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc \
            "$prefix"/usr/lib/x86_64-linux-gnu/openblas-pthread/pkgconfig/*.pc; do
    sed -i -E "s#^(prefix|exec_prefix|libdir|includedir)=/usr#\\1=$prefix/usr#" "$pc"
  done
  # the libraries the machine lacks, as links in one folder (a newer system copy is never
  # shadowed); GPU_DEPS_EXPOSE_ALL=1 links all of them
  mkdir -p "$prefix/lib"
  # (an earlier call's registration of this prefix does not count)
  have=$( (ldconfig -p || /sbin/ldconfig -p) 2>/dev/null | grep -v "=> $prefix/" | awk '{print $1}')
  for f in "$prefix"/usr/lib/x86_64-linux-gnu/lib*.so.* "$prefix"/lib/x86_64-linux-gnu/lib*.so.* \
           "$prefix"/usr/lib/x86_64-linux-gnu/openblas-pthread/lib*.so.*; do
    [ -e "$f" ] || continue
    n=$(basename "$f")
    if [ "${GPU_DEPS_EXPOSE_ALL:-0}" = 1 ] || ! grep -qx "$n" <<< "$have"; then
      ln -sf "$f" "$prefix/lib/$n"
    fi
  done
  echo "exposed: $(cd "$prefix/lib" && ls | tr '\n' ' ')"
}
export deps prefix py
export -f unpack_deps
if ls "$deps"/*.deb > /dev/null 2>&1; then
  if stage deps 120 unpack_deps; then
    # pkg-config: the machine's, else the carried pkgconf
    command -v pkg-config > /dev/null || export PATH=$PATH:$prefix/usr/bin
    sysdirs=/usr/local/lib/x86_64-linux-gnu/pkgconfig:/usr/local/lib/pkgconfig:/usr/local/share/pkgconfig:/usr/lib/x86_64-linux-gnu/pkgconfig:/usr/lib/pkgconfig:/usr/share/pkgconfig
    pcdirs=$prefix/usr/lib/x86_64-linux-gnu/pkgconfig:$prefix/usr/lib/x86_64-linux-gnu/openblas-pthread/pkgconfig
    if [ "${GPU_DEPS_ONLY:-0}" = 1 ]; then export PKG_CONFIG_LIBDIR=$pcdirs
    else export PKG_CONFIG_LIBDIR=$pcdirs:$sysdirs; fi
    libdirs=$prefix/usr/lib/x86_64-linux-gnu:$prefix/usr/lib/x86_64-linux-gnu/openblas-pthread
    export LD_LIBRARY_PATH=$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export LIBRARY_PATH=$libdirs${LIBRARY_PATH:+:$LIBRARY_PATH}
    export CPATH=$prefix/usr/include${CPATH:+:$CPATH}
    export CMAKE_PREFIX_PATH=$prefix/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
    ldconf_dirs=$prefix/lib
  fi
else
  note "deps: no .deb files in .gpu-deps/ (tests/gpu/fetch-debs.sh; carry [\".gpu-deps\"]): using the system's"
fi

# ---- torch: the pip package's CMake files and its CUDA libraries ---------------------------
ldconf_dirs=${ldconf_dirs:-}
torch_args=
torch_prefix=$("$py" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null)
if [ -n "$torch_prefix" ]; then
  site=$(dirname "$("$py" -c 'import torch, os; print(os.path.dirname(torch.__file__))' 2>/dev/null)")
  # torch's CUDA libraries (cuDNN, cuBLAS, NCCL, ... from the nvidia-* wheels): the linker needs
  # them for executables that link libtorch_cuda; the dist layer opens libnccl.so.2 itself
  nv=$(find "$site/nvidia" -maxdepth 3 -type d -name lib 2>/dev/null | sort | tr '\n' ':')
  export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}${nv%:}
  # ... and so does the install test's downstream program, which links the installed
  # libsegrl_torch (no RUNPATH) in a CMake project of its own (LDFLAGS seeds its link flags)
  export LDFLAGS="${LDFLAGS:+$LDFLAGS }-Wl,-rpath-link,$nv$site/torch/lib"
  ldconf_dirs="$ldconf_dirs $site/torch/lib ${nv//:/ }"
  export CMAKE_PREFIX_PATH=$torch_prefix${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
  # TorchConfig looks for c10 on the default paths first: a system libtorch (Debian's libc10.so)
  # would be mixed in
  [ -f "$site/torch/lib/libc10.so" ] && torch_args="-Dc10_LIBRARY=$site/torch/lib/libc10.so"
fi

# programs that reset LD_LIBRARY_PATH (the install test runs its downstream programs with only
# the install prefix's lib/) still find the carried libraries and torch's: registered with
# ldconfig after the system's own folders, on the disposable GPU machine only (see the knob)
ldc=${GPU_DEPS_LDCONFIG:-auto}
if [ "$ldc" = auto ]; then
  ldc=0; [ "$(id -u)" = 0 ] && nvidia-smi -L > /dev/null 2>&1 && ldc=1
fi
if [ "$ldc" = 1 ] && [ -n "${ldconf_dirs// /}" ] && [ -d /etc/ld.so.conf.d ]; then
  printf '%s\n' $ldconf_dirs > /etc/ld.so.conf.d/zz-segrl-gpu-check.conf && ldconfig
  note "ldconfig: registered $(echo $ldconf_dirs | wc -w) folders (/etc/ld.so.conf.d/zz-segrl-gpu-check.conf)"
fi

device_info() {
  nvidia-smi || true
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv || true
  nvcc --version | tail -2
  cmake --version | head -1
  cc --version | head -1
  "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), "cxx11abi", torch.compiled_with_cxx11_abi())' || true
  echo "torch cmake prefix: $torch_prefix"
  echo "CUDA arch: $cc  TORCH_CUDA_ARCH_LIST: $TORCH_CUDA_ARCH_LIST  jobs: $jobs"
  echo "pkg-config: $(command -v pkg-config)  PKG_CONFIG_LIBDIR=${PKG_CONFIG_LIBDIR:-}"
  pkg-config --modversion libcjson libpcre2-8 libcurl openblas || true
  echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
  [ -d "$prefix/lib" ] && echo "carried libraries exposed: $(ls "$prefix/lib" | tr '\n' ' ')"
  grep -E 'GLIBC|^PRETTY' /etc/os-release 2>/dev/null; ldd --version | head -1
}
export cc jobs torch_prefix torch_args
export -f device_info
stage device 60 device_info

# ---- configure (with torch; without it when torch's CMake files fail), build ---------------
gen=()
command -v ninja > /dev/null && gen=(-G Ninja)
[ -f "$build/CMakeCache.txt" ] && gen=()   # a build dir from an earlier call keeps its generator
export build root logs gen_arg="${gen[*]}"
configure() {
  cmake -S "$root" -B "$build" $gen_arg -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_ARCHITECTURES="$cc" "$@"
}
configure_torch() { configure $torch_args; }
configure_notorch() { rm -rf "$build"; configure -DSEGRL_TORCH=OFF; }
build_all() {
  if [ -f "$build/build.ninja" ]; then cmake --build "$build" -j "$jobs" -- -k 0
  else cmake --build "$build" -j "$jobs" -- -k; fi
}
export -f configure configure_torch configure_notorch build_all
configured=0
if stage configure 240 configure_torch; then configured=1
elif stage configure-notorch 120 configure_notorch; then configured=1
fi
if (( configured )); then
  grep -E 'segrl: (CUDA|ATen|communicator)' "$logs"/configure*.log | tail -3 | sed 's/^.*-- /  /' \
    | tee -a "$logs/summary.txt"
  # where CMake took the four libraries from (the carried prefix on the GPU machine)
  grep -E '^pkgcfg_lib_SEGRL_DEP.*:FILEPATH=' "$build/CMakeCache.txt" | sed 's/^pkgcfg_lib_SEGRL_DEP_/  /' \
    | tee -a "$logs/summary.txt"
  stage build 360 build_all
fi

# ---- CUDA tests, benchmarks, then every other test -----------------------------------------
ctest_cuda() { ctest --test-dir "$build" -L cuda --timeout 120 --output-on-failure; }
ctest_rest() {
  ctest --test-dir "$build" -LE cuda -j "$(( jobs > 8 ? 8 : jobs ))" --timeout 240 \
    --output-on-failure
}
run_bench() {
  local bin=$bench_build/tests/bench/segrl-bench
  echo "== segrl-bench $bench --device $dev ($bin)"
  [ -x "$bin" ] || { echo "no $bin (build failed?)"; return 1; }
  "$bin" "$bench" --device "$dev" --json "$logs/bench-$bench.json"
}
export -f ctest_cuda ctest_rest run_bench
# segrl-bench links libsegrl_torch when torch was found: if the torch part did not build, a second
# build dir without torch still gives the CUDA kernels' benchmarks (generate needs torch)
export bench_build=$build
if (( configured )) && [ ! -x "$build/tests/bench/segrl-bench" ] && grep -q 'ATen bridge ON' "$logs"/configure*.log; then
  build_notorch() {
    local g=$gen_arg; [ -f "$build-notorch/CMakeCache.txt" ] && g=
    cmake -S "$root" -B "$build-notorch" $g -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CUDA_ARCHITECTURES="$cc" -DSEGRL_TORCH=OFF -DSEGRL_BUILD_EXAMPLES=OFF &&
    cmake --build "$build-notorch" -j "$jobs" --target segrl-bench
  }
  export -f build_notorch
  stage build-notorch 240 build_notorch && bench_build=$build-notorch
fi
if [ -f "$build/CTestTestfile.cmake" ]; then
  stage ctest-cuda 180 ctest_cuda
  for b in $benches; do
    lim=90; [ "$b" = generate ] && lim=150
    # loss, generate: the CUDA rows only (their CPU rows take minutes; docs/performance.md has them)
    export bench=$b dev=${GPU_BENCH_DEVICE:-all}
    case $b in loss|generate) dev=${GPU_BENCH_DEVICE:-cuda} ;; esac
    stage "bench-$b" $lim run_bench
  done
  stage ctest-rest 300 ctest_rest
else
  note "tests: no build dir to test"; failed=1
fi

# ---- summary -------------------------------------------------------------------------------
"$py" - "$logs" "$OUT/bench.json" <<'EOF' || true
import glob, json, os, sys
out = {}
for f in sorted(glob.glob(os.path.join(sys.argv[1], 'bench-*.json'))):
    name = os.path.basename(f)[len('bench-'):-len('.json')]
    try:
        out[name] = json.load(open(f))
    except Exception as e:
        out[name] = {'error': str(e)}
json.dump(out, open(sys.argv[2], 'w'), indent=1)
EOF
{
  for f in "$logs"/ctest-*.log; do
    [ -f "$f" ] || continue
    echo "$(basename "$f" .log): $(grep -E 'tests passed|No tests were found' "$f" | tail -1)"
    sed -n '/The following tests/,$p' "$f"
  done
  echo "total $(( SECONDS - t0 ))s; results in $OUT: $(ls "$OUT" | tr '\n' ' ')"
} | tee -a "$logs/summary.txt"
pack
exit $failed
