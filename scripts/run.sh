#!/usr/bin/env bash
# The main job on the embedded default: install what is missing, build, then post-train the shipped
# world teacher into a 4-step generator with R0 (default 10 minutes of training on 2 cores), evaluate
# it and the teacher on the 504 held-out prompts, and print the table before -> after.
# Usage: scripts/run.sh [--minutes M] [--out DIR]      (re-running resumes: finished parts are kept)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=10
out=runs/main
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "run.sh: unknown argument '$1' (allowed: --minutes M, --out DIR)" >&2; exit 2 ;;
  esac
done
scripts/setup.sh
scripts/build.sh
bin=build/rewardgen
$bin --version
mkdir -p "$out"

# 1. R0 from the shipped teacher (resumes an interrupted or finished run; the budget counts over resumes).
resume=()
[ -f "$out/r0/config.json" ] && resume=(--resume)
$bin --threads 2 train --method r0 --out "$out/r0" --minutes "$minutes" "${resume[@]}" > "$out/r0.log"
echo "R0 trained: $out/r0 (log: $out/r0.log)"

# 2. The teacher, evaluated once: R0's 4-step recipe (999, 749, 499, 249; x̂₀ out) untrained, and its 50-NFE reference
#    (fp32, as the training job evaluates R0, so that the table compares like with like).
if [ ! -f "$out/teacher_4step/eval.json" ]; then
  $bin --threads 2 eval --model models/world --precision fp32 --sampler ddim --steps 4 --spacing trailing --cfg 1 --output x0 \
    --out "$out/teacher_4step" > /dev/null
fi
if [ ! -f "$out/teacher_ddim25_cfg3/eval.json" ]; then
  $bin --threads 2 eval --model models/world --precision fp32 --steps 25 --cfg 3 --out "$out/teacher_ddim25_cfg3" > /dev/null
fi

# 3. Before -> after.
echo
$bin compare "$out/teacher_4step" "$out/teacher_ddim25_cfg3" "$out/r0/eval" \
  --name "teacher, DDIM 4, no CFG" --name "teacher, DDIM 25, CFG 3" --name "R0, 4 steps, no CFG"
echo
echo "outputs: $out/r0/generator (sample it: $bin sample --model $out/r0/generator --prompt \"a red circle\")"
echo "         $out/r0/eval/grid.png, $out/*/eval.json, $out/r0/metrics.jsonl"
