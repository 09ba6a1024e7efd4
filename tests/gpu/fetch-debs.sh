#!/usr/bin/env bash
# tests/gpu/fetch-debs.sh — fills .gpu-deps/ (git-ignored through .git/info/exclude) with the
# Debian packages that the core library needs at configure and link time and that the bare GPU
# machine lacks: cJSON, PCRE2 (8-bit), libcurl, OpenBLAS, and pkgconf. tests/gpu/check.sh unpacks
# them there with `dpkg -x` into a private prefix (nothing is installed system-wide).
#   bash tests/gpu/fetch-debs.sh        (here, from the repository root; needs apt-get, network)
# Then a device run carries the folder: carry [".gpu-deps"] (it must stay under 64 MiB).
set -euo pipefail
dir=${1:-.gpu-deps}
mkdir -p "$dir"
grep -qx '/.gpu-deps/' .git/info/exclude 2>/dev/null || echo '/.gpu-deps/' >> .git/info/exclude

pkgs=(
  # the four dependencies (runtime + headers, .so link and .pc file)
  libcjson1 libcjson-dev
  libpcre2-8-0 libpcre2-dev
  libcurl4 libcurl4-openssl-dev
  libopenblas0 libopenblas0-pthread libopenblas-dev libopenblas-pthread-dev
  libgfortran5 libquadmath0
  # pkg-config itself (CMake's FindPkgConfig needs the binary)
  pkgconf pkgconf-bin libpkgconf3
  # what libcurl.so.4 loads (ldd), beyond libc, libz and libgcc_s; check.sh exposes only the
  # ones the machine lacks, so a newer system copy is never shadowed
  libnghttp2-14 libidn2-0 libunistring2 librtmp1 libssh2-1 libpsl5 libssl3
  libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libkeyutils1 libcom-err2
  libldap-2.5-0 libsasl2-2 libzstd1 libbrotli1
  libgnutls30 libhogweed6 libnettle8 libgmp10 libp11-kit0 libtasn1-6 libffi8
)
rm -f "$dir"/*.deb
# (a machine whose package lists are missing or stale: update them once, then again)
(cd "$dir" && { apt-get download "${pkgs[@]}" || { apt-get update -qq && apt-get download "${pkgs[@]}"; }; })
ls -l "$dir"/*.deb | wc -l
du -sh "$dir"
