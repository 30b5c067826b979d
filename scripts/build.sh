#!/usr/bin/env bash
# Configures and builds rewardgen (Release) in ./build. Extra arguments go to CMake's configure
# step, e.g. scripts/build.sh -DTorch_DIR=/opt/libtorch/share/cmake/Torch
set -euo pipefail
cd "$(dirname "$0")/.."
# Ninja, not Makefiles: the Makefile generator rewrites flags.make at every re-configure and the
# precompiled header depends on it, so adding one source file used to rebuild the whole project.
# A build folder made by another generator is configured afresh.
if [ -f build/CMakeCache.txt ] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' build/CMakeCache.txt; then
  echo "build: build/ was made by another CMake generator; configuring it afresh for Ninja"
  rm -rf build/CMakeCache.txt build/CMakeFiles
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j "$(nproc)"
