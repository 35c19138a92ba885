#!/usr/bin/env bash
# Sets fdcsim up on Debian/Ubuntu: installs the packages it needs when they are missing, then
# configures and builds it in build/ (CUDA parts too when nvcc is on PATH).
#   FDCSIM_BUILD_DIR    build folder (default: build)
#   FDCSIM_CMAKE_ARGS   extra CMake arguments, e.g. "-DFDCSIM_CUDA=OFF -DFDCSIM_WERROR=ON"
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
packages=(g++ cmake ninja-build libboost-dev nlohmann-json3-dev libeigen3-dev libcli11-dev doctest-dev libbenchmark-dev zlib1g-dev libopenmpi-dev openmpi-bin)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
build=${FDCSIM_BUILD_DIR:-$root/build}
# shellcheck disable=SC2086
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release ${FDCSIM_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j"$(nproc)"
