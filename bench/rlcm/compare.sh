#!/usr/bin/env bash
# RLCM against DDPO (docs/rlcm.md): for each reward, DDPO on the world teacher and RLCM on
# its LCM, each for the same wall-clock, then the 504-prompt evaluation of both, the wall-clock each
# needs to reach DDPO's final reward, and DDPO's gain from its own start (`rewardgen reach`; the two
# start from different models), one table and a reward-vs-wall-clock plot
# per reward. A benchmark, not a test: 2 runs x --minutes per reward on 2 cores, nothing else on
# them. Re-running resumes and skips finished runs.
# Usage: bench/rlcm/compare.sh --lcm DIR [--minutes M] [--rlcm-minutes M] [--out DIR] [--window N]
#          [--rewards world.jpeg,jpeg_incompressibility,world.compositional]
# --window (default 5) is the number of logged rounds `rewardgen reach` averages for a final or
# initial value: a round's reward is the mean of one batch, so a wider window is steadier.
# --rlcm-minutes (default: --minutes) shortens RLCM's budget: the issue runs RLCM until it passes
# DDPO's final reward or DDPO's budget ends; `rewardgen reach` says whether it passed, and a run
# that did not can be resumed longer with a larger --rlcm-minutes after deleting its eval/ folder.
# REWARDGEN_BIN=PATH runs another binary than build/rewardgen (a copy, so that builds may go on).
set -euo pipefail
cd "$(dirname "$0")/../.."
minutes=8
rlcm_minutes=
out=runs/rlcm_vs_ddpo
lcm=models/world/lcm
rewards=world.jpeg,jpeg_incompressibility,world.compositional
precision=bf16
window=5
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="$2"; shift 2 ;;
    --rlcm-minutes) rlcm_minutes="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --lcm) lcm="$2"; shift 2 ;;
    --rewards) rewards="$2"; shift 2 ;;
    --precision) precision="$2"; shift 2 ;;
    --window) window="$2"; shift 2 ;;
    *) echo "compare.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
bin=${REWARDGEN_BIN:-build/rewardgen}
rlcm_minutes=${rlcm_minutes:-$minutes}
[[ "$window" =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --window must be a whole number >= 1, got '$window'" >&2; exit 2; }
[ -f "$lcm/model_index.json" ] || { echo "compare.sh: '$lcm' is not an LCM pipeline folder (--lcm)" >&2; exit 2; }
mkdir -p "$out/configs"

train() {  # method reward model minutes
  local method=$1 reward=$2 model=$3 budget=$4 name="$1_$2"
  echo "{\"rewards\": {\"$reward\": 1.0}, \"precision\": \"$precision\"}" > "$out/configs/$name.json"
  if [ -f "$out/$name/eval/eval.json" ]; then echo "$name: done"; return; fi
  local resume=()
  [ -f "$out/$name/config.json" ] && resume=(--resume)
  echo "$name: training for $budget min"
  $bin --threads 2 train --method "$method" --model "$model" --config "$out/configs/$name.json" --out "$out/$name" \
    --minutes "$budget" "${resume[@]}" > "$out/$name.log" 2>&1
}

IFS=',' read -ra reward_list <<< "$rewards"
for reward in "${reward_list[@]}"; do
  train ddpo "$reward" models/world "$minutes"
  train rlcm "$reward" "$lcm" "$rlcm_minutes"
done
: > "$out/table.md"
for reward in "${reward_list[@]}"; do
  {
    echo "## $reward"
    echo
    $bin reach "$out/ddpo_$reward" "$out/rlcm_$reward" --name DDPO --name RLCM --y "reward/$reward" --window "$window"
    echo
    $bin reach "$out/ddpo_$reward" "$out/rlcm_$reward" --name DDPO --name RLCM --y "reward/$reward" --window "$window" --gain
    echo
    $bin compare "$out/ddpo_$reward/eval" "$out/rlcm_$reward/eval" --name "DDPO ($reward)" --name "RLCM ($reward)"
    echo
  } | tee -a "$out/table.md"
  $bin plot "$out/ddpo_$reward" "$out/rlcm_$reward" --name DDPO --name RLCM --y "reward/$reward" --smooth 10 \
    --title "$reward: DDPO (teacher, 20 DDIM steps + CFG) vs RLCM (LCM, 4 steps)" --out "$out/reward_$reward.svg"
done
