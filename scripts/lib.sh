#!/usr/bin/env bash
# Shared by scripts/demo and scripts/test: install what a fresh Debian 12 machine lacks, then
# configure and build ddn in Release. Sourced, not run.
set -euo pipefail

DDN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DDN_BUILD=${DDN_BUILD:-$DDN_ROOT/build}

# Debian packages the build, the tests and the demos need.
DDN_PACKAGES=(
  build-essential cmake pkg-config
  libceres-dev libeigen3-dev libgoogle-glog-dev
  libopencv-dev opencv-doc
  libboost-program-options-dev
  nlohmann-json3-dev
  libgtest-dev libgmock-dev googletest
  libbenchmark-dev
  libnanoflann-dev
)

# The PyTorch bridge (python/) and its tests: scripts/test installs these too, scripts/demo does not need them
# (python3-torch alone is ~50 MB installed).
DDN_PYTHON_PACKAGES=(
  pybind11-dev python3-dev
  python3-torch python3-numpy python3-pytest
)

ddn_install_packages() {
  local missing=()
  for p in "${DDN_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  echo "ddn: installing Debian packages: ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

ddn_build() {
  local jobs
  jobs=$(nproc 2>/dev/null || echo 2)
  # DDN_WERROR=ON in the environment (CI sets it): compiler warnings in ddn's own targets are errors.
  cmake -S "$DDN_ROOT" -B "$DDN_BUILD" -DCMAKE_BUILD_TYPE=Release -DDDN_WERROR="${DDN_WERROR:-OFF}" "$@" >&2
  cmake --build "$DDN_BUILD" --parallel "$jobs" >&2
}
