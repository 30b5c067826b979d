#!/usr/bin/env bash
# The main job on the embedded default: install what is missing, build, run.
# Until the methods land this is every end-to-end path that exists: the CLI, the machine's GEMM
# peak (the denominator of every later MFU figure) and the safetensors validator on a shipped file.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
bin=build/rewardgen
$bin --version
$bin bench gemm
$bin inspect tests/data/reference_tiny.safetensors
