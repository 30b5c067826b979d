#!/usr/bin/env bash
# The main job on the embedded default: install what is missing, build, then post-train the shipped
# world teacher into a 4-step generator with R0 (default 10 minutes of training on 2 cores), evaluate
# it and the teacher on the 504 held-out prompts, print the table before -> after, and write the report
# (<out>/report/index.html: the table, training curves, the same prompts from every model).
# --methods trains others too, each for --minutes, in the order given: r0, refl, ddpo, lcd, rlcm, distar
# (rlcm and distar start from the LCM that lcd trained earlier in the same job, else from models/world/lcm).
# Usage: scripts/run.sh [--minutes M] [--out DIR] [--methods r0,ddpo,...]   (re-running resumes: finished parts are kept)
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=10
out=runs/main
methods=r0
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --methods) methods="$2"; shift 2 ;;
    *) echo "run.sh: unknown argument '$1' (allowed: --minutes M, --out DIR, --methods LIST)" >&2; exit 2 ;;
  esac
done
IFS=',' read -ra method_list <<< "$methods"
[ ${#method_list[@]} -gt 0 ] || { echo "run.sh: --methods names no method" >&2; exit 2; }
declare -A label=([r0]="R0, 4 steps, no CFG" [refl]="ReFL, 4 steps" [ddpo]="DDPO, 20 DDIM steps, CFG 3"
                  [lcd]="LCM (LCD), 4 steps" [rlcm]="RLCM, 4 LCM steps" [distar]="DI*, 1 step")
lcd_seen=false
for m in "${method_list[@]}"; do
  [ -n "${label[$m]:-}" ] || { echo "run.sh: unknown method '$m' in --methods (allowed: r0, refl, ddpo, lcd, rlcm, distar)" >&2; exit 2; }
  [ "$m" = lcd ] && lcd_seen=true
  if { [ "$m" = rlcm ] || [ "$m" = distar ]; } && [ "$lcd_seen" = false ] && [ ! -f models/world/lcm/model_index.json ]; then
    echo "run.sh: $m starts from an LCM: put lcd before $m in --methods (models/world/lcm is not shipped here)" >&2; exit 2
  fi
done
scripts/setup.sh
scripts/build.sh
bin=build/rewardgen
$bin --version
mkdir -p "$out"

# 1. Each method from the shipped models (resumes an interrupted or finished run; the budget counts over resumes).
for m in "${method_list[@]}"; do
  resume=(); model=()
  [ -f "$out/$m/config.json" ] && resume=(--resume)
  { [ "$m" = rlcm ] || [ "$m" = distar ]; } && [ -f "$out/lcd/generator/model_index.json" ] && model=(--model "$out/lcd/generator")
  $bin --threads 2 train --method "$m" "${model[@]}" --out "$out/$m" --minutes "$minutes" "${resume[@]}" > "$out/$m.log"
  echo "$m trained: $out/$m (log: $out/$m.log)"
done

# 2. The teacher, evaluated once: R0's 4-step recipe (999, 749, 499, 249; x̂₀ out) untrained, and its 50-NFE reference
#    (fp32, as the training job evaluates R0, so that the table compares like with like), scored with the world's rewards.
rewards=(--reward world.compositional --reward world.clip --reward world.clip_contrast)
if [ ! -f "$out/teacher_4step/eval.json" ]; then
  $bin --threads 2 eval --model models/world --precision fp32 --sampler ddim --steps 4 --spacing trailing --cfg 1 --output x0 \
    "${rewards[@]}" --relation-control --out "$out/teacher_4step" > /dev/null
fi
if [ ! -f "$out/teacher_ddim25_cfg3/eval.json" ]; then
  $bin --threads 2 eval --model models/world --precision fp32 --steps 25 --cfg 3 "${rewards[@]}" --relation-control \
    --out "$out/teacher_ddim25_cfg3" > /dev/null
fi

# 3. Before -> after.
echo
rows=("$out/teacher_4step" "$out/teacher_ddim25_cfg3"); names=(--name "teacher, DDIM 4, no CFG" --name "teacher, DDIM 25, CFG 3")
for m in "${method_list[@]}"; do rows+=("$out/$m/eval"); names+=(--name "${label[$m]}"); done
$bin compare "${rows[@]}" "${names[@]}"

# 4. The report: the table beside the teacher at DDIM 25 and 50 + CFG 3 (the 50-step one evaluated here once), the
#    training curves, the same prompts and seeds from every model.
reports=("$out/teacher_4step"); report_names=(--name "teacher, DDIM 4, no CFG")
for m in "${method_list[@]}"; do reports+=("$out/$m"); report_names+=(--name "${label[$m]}"); done
reports+=("$out/teacher_ddim25_cfg3"); report_names+=(--name "teacher, DDIM 25, CFG 3")
$bin --threads 2 report "${reports[@]}" "${report_names[@]}" --out "$out/report" > /dev/null
echo
first=${method_list[0]}
echo "outputs: $out/$first/generator (sample it: $bin sample --model $out/$first/generator --prompt \"a red circle\")"
echo "         $out/*/eval/grid.png, $out/*/eval.json, $out/*/metrics.jsonl"
echo "report:  $out/report/index.html"
