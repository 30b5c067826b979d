#!/usr/bin/env bash
# The main job on the embedded default: install what is missing, build, run.
# Until the methods land, this runs every end-to-end path that exists: the machine's GEMM peak (the
# denominator of every MFU figure), the safetensors validator, the CLIP tokenizer, a diffusers UNet
# folder run on reference inputs, the embedded world (render a scene, check it), and the
# evaluation of the shipped world teacher when models/world/ has one.
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
out=build/main_job
mkdir -p $out
$bin world render "a red circle to the left of a blue square" --count 8 --out $out/scenes.png
$bin world render "a red circle to the left of a blue square" --out $out/scene.png
$bin world check $out/scene.png "a red circle to the left of a blue square"
if [ -f models/world/unet/config.json ]; then
  $bin eval --model models/world --steps 25 --cfg 3 --limit 60 --reward world.compositional --out $out/teacher_eval
fi
