#!/usr/bin/env bash
# The main job on the embedded default: install what is missing, build, run.
# Until the embedded world and the methods land, this runs every end-to-end path that exists: the
# machine's GEMM peak (the denominator of every MFU figure), the safetensors validator, the CLIP
# tokenizer, and a diffusers UNet folder checked from its config and run on reference inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
bin=build/rewardgen
$bin --version
$bin bench gemm
$bin inspect tests/data/reference_tiny.safetensors
$bin tokenize "a photo of a cat"
$bin model info tests/data/parity/unet_mixed
$bin model forward --model tests/data/parity/unet_mixed --inputs tests/data/parity/unet_mixed/inputs.safetensors \
  --out build/unet_mixed_outputs.safetensors
