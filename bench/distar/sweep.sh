#!/usr/bin/env bash
# DI* against DI*-KL (docs/distar.md): the paper's ablation on the world. Every variant
# trains a one-step generator from the shipped LCM for the same wall-clock, then the training job
# evaluates it on the 504 held-out prompts; one table, and per variant its reward and periodic
# accuracy against wall-clock. A benchmark, not a test: one run of --minutes per variant on 2 cores,
# nothing else on them. Re-running resumes and skips finished runs.
#   score_a<α>, kl_a<α>   the score divergence (DI*) and the integral KL (DI*-KL) at reward scale α
#   score_a<α>_c<c>       the pseudo-Huber c sweep at one α
#   teacher_a<α>          DI* started from the teacher itself (DDIM x̂₀ at t*, no CFG) instead of the LCM
# Usage: bench/distar/sweep.sh [--minutes M] [--out DIR] [--alphas 0,1,10,100] [--cs 10,100]
#          [--c-alpha A] [--precision bf16|fp32|auto] [--only NAME[,NAME...]]
# REWARDGEN_BIN=PATH runs another binary than build/rewardgen (a copy, so that builds may go on).
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes=20
out=runs/distar_sweep
alphas=0,1,10,100
cs=10,100  # with c = 1, the default, score_a<c-alpha> is the sweep's third point (docs/distar.md)
c_alpha=10
precision=bf16
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --alphas) alphas="$2"; shift 2 ;;
    --cs) cs="$2"; shift 2 ;;
    --c-alpha) c_alpha="$2"; shift 2 ;;
    --precision) precision="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    *) echo "sweep.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
bin=${REWARDGEN_BIN:-build/rewardgen}
mkdir -p "$out/configs"

# name | method | config (JSON object over the method's defaults) | start model (empty: the method's default, the LCM)
variants=()
IFS=',' read -ra alpha_list <<< "$alphas"
for a in "${alpha_list[@]}"; do
  variants+=("score_a$a|distar|{\"alpha\": $a, \"precision\": \"$precision\"}|"
             "kl_a$a|distar-kl|{\"alpha\": $a, \"precision\": \"$precision\"}|"
             "teacher_a$a|distar|{\"alpha\": $a, \"precision\": \"$precision\", \"generator\": {\"sampler\": \"ddim\"}}|models/world")
done
IFS=',' read -ra c_list <<< "$cs"
for c in "${c_list[@]}"; do
  variants+=("score_a${c_alpha}_c$c|distar|{\"alpha\": $c_alpha, \"huber_c\": $c, \"precision\": \"$precision\"}|")
done

names=()
for v in "${variants[@]}"; do
  IFS='|' read -r name method config model <<< "$v"
  if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then continue; fi
  names+=("$name")
  echo "$config" > "$out/configs/$name.json"
  if [ -f "$out/$name/eval/eval.json" ]; then echo "$name: done"; continue; fi
  resume=()
  [ -f "$out/$name/config.json" ] && resume=(--resume)
  start=()
  [ -n "$model" ] && start=(--model "$model")
  echo "$name: training $method for $minutes min"
  $bin --threads 2 train --method "$method" --config "$out/configs/$name.json" --out "$out/$name" \
    --minutes "$minutes" "${start[@]}" "${resume[@]}" > "$out/$name.log" 2>&1
done
[ ${#names[@]} -gt 0 ] || { echo "sweep.sh: --only names no variant" >&2; exit 2; }
args=(); labels=(); points=()
for name in "${names[@]}"; do
  args+=("$out/$name/eval"); labels+=(--name "$name")
  case "$name" in  # one line per regulariser (and start), its points labelled by α (or c)
    score_a*_c*) points+=(--name "c=${name##*_c}" --series "DI*, α=$c_alpha, c sweep") ;;
    score_a*) points+=(--name "α=${name#score_a}" --series "DI* (score divergence)") ;;
    kl_a*) points+=(--name "α=${name#kl_a}" --series "DI*-KL (integral KL)") ;;
    teacher_a*) points+=(--name "α=${name#teacher_a}" --series "DI* from the teacher") ;;
  esac
done
$bin compare "${args[@]}" "${labels[@]}" | tee "$out/table.md"
$bin compare "${args[@]}" "${points[@]}" --plot "$out/accuracy_vs_fd.svg" \
  --title "DI* / DI*-KL: accuracy against FD (504 prompts, one step)" > /dev/null
$bin compare "${args[@]}" "${points[@]}" --plot "$out/reward_vs_fd.svg" --y rewards/world.compositional/mean \
  --title "DI* / DI*-KL: world.compositional against FD (504 prompts, one step)" > /dev/null
runs=(); run_labels=()
for name in "${names[@]}"; do runs+=("$out/$name"); run_labels+=(--name "$name"); done
$bin plot "${runs[@]}" "${run_labels[@]}" --y reward --smooth 20 --title "DI* / DI*-KL: reward (one step)" --out "$out/reward.svg"
$bin plot "${runs[@]}" "${run_labels[@]}" --y accuracy/overall --title "DI* / DI*-KL: accuracy on 60 prompts (one step)" \
  --out "$out/accuracy.svg"
echo "wrote $out/table.md, $out/accuracy_vs_fd.svg, $out/reward_vs_fd.svg, $out/reward.svg, $out/accuracy.svg"
