#!/usr/bin/env bash
# R0's ablations (docs/r0.md): every variant trained from the shipped world teacher for the
# same wall-clock, evaluated on the 504 held-out prompts, then one table. A benchmark, not a test:
# 10 runs x --minutes each (default 10) on 2 cores. Re-running resumes and skips finished runs.
# Writes table.md and two SVG plots (world reward and periodic accuracy against wall-clock) into --out.
# Usage: bench/r0/ablations.sh [--minutes M] [--out DIR] [--only NAME[,NAME...]]
# REWARDGEN_BIN=PATH runs another binary than build/rewardgen (a copy, so that builds may go on).
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes=10
out=runs/r0_ablations
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    *) echo "ablations.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
bin=${REWARDGEN_BIN:-build/rewardgen}
mkdir -p "$out/configs"

# name | method | config (JSON object over the method's defaults)
variants=(
  "full|r0|{}"
  "no_weight_regularization|r0|{\"weight_regularization\": false}"
  "no_random_eta|r0|{\"random_eta\": false}"
  "raw_gradients|r0|{\"normalize_gradients\": false}"
  "one_reward|r0|{\"rewards\": {\"world.compositional\": 1.0}, \"cfg_reward\": 0.0}"
  "no_clip_contrast|r0|{\"rewards\": {\"world.compositional\": 1.0, \"world.clip\": 1.0}}"
  "no_regularizer|r0|{\"weight_regularization\": false, \"random_eta\": false, \"normalize_gradients\": false}"
  "r0_plus|r0|{\"intermediate_supervision\": true}"
  "refl|refl|{\"variant\": \"refl\"}"
  "draft_k1|refl|{\"variant\": \"draft\", \"draft_k\": 1}"
)
names=()
for v in "${variants[@]}"; do
  IFS='|' read -r name method config <<< "$v"
  if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then continue; fi
  names+=("$name")
  echo "$config" > "$out/configs/$name.json"
  if [ -f "$out/$name/eval/eval.json" ]; then echo "$name: done"; continue; fi
  resume=()
  [ -f "$out/$name/config.json" ] && resume=(--resume)
  echo "$name: training $method for $minutes min"
  $bin --threads 2 train --method "$method" --config "$out/configs/$name.json" --out "$out/$name" \
    --minutes "$minutes" "${resume[@]}" > "$out/$name.log" 2>&1
done
if [ ! -f "$out/teacher_4step/eval.json" ]; then
  $bin --threads 2 eval --model models/world --precision fp32 --steps 4 --spacing trailing --cfg 1 --output x0 --out "$out/teacher_4step" > /dev/null
fi
args=("$out/teacher_4step"); labels=(--name "teacher, same 4 steps")
for name in "${names[@]}"; do args+=("$out/$name/eval"); labels+=(--name "$name"); done
$bin compare "${args[@]}" "${labels[@]}" | tee "$out/table.md"
# Training curves of every finished variant: the world reward and the periodic accuracy (60 prompts)
# against wall-clock, as SVG line plots.
runs=(); run_labels=()
for name in "${names[@]}"; do
  if [ -f "$out/$name/metrics.jsonl" ]; then runs+=("$out/$name"); run_labels+=(--name "$name"); fi
done
if [ ${#runs[@]} -gt 0 ]; then
  $bin plot "${runs[@]}" "${run_labels[@]}" --y reward/world.compositional --smooth 25 --out "$out/reward_vs_wall_clock.svg"
  $bin plot "${runs[@]}" "${run_labels[@]}" --y accuracy/overall --smooth 1 --out "$out/accuracy_vs_wall_clock.svg"
fi
