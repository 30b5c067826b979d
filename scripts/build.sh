#!/usr/bin/env bash
# Configures and builds rewardgen (Release) in ./build. Extra arguments go to CMake's configure
# step, e.g. scripts/build.sh -DTorch_DIR=/opt/libtorch/share/cmake/Torch
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j "$(nproc)"
