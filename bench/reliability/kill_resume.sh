#!/usr/bin/env bash
# Kill and resume, method by method (docs/reliability.md). Per method: a short run on the embedded
# world (batch 2, a checkpoint after every step, no evaluation, fixed threads) trained straight
# through; then the same run SIGKILLed at random moments (during start-up, a step, a checkpoint
# write) and resumed, again and again, until it has been killed --kills times and then finishes.
# After every kill, each checkpoint under its final name must read back whole (`rewardgen inspect`);
# at the end the exported generator's weights must equal the straight run's byte for byte, and
# metrics.jsonl (wall_time aside) line for line. A check that takes minutes per method, not a test:
# nothing else on the cores while it runs.
# Usage: bench/reliability/kill_resume.sh [--methods r0,refl,ddpo,lcd,rlcm,distar,distar-kl] [--kills N]
#                                         [--steps S] [--out DIR] [--seed K]
# REWARDGEN_BIN=PATH runs another binary than build/rewardgen.
set -euo pipefail
cd "$(dirname "$0")/../.."
methods=r0,refl,ddpo,lcd,rlcm,distar,distar-kl
kills=20
steps=12
out=runs/kill_resume
seed=1
while [ $# -gt 0 ]; do
  case "$1" in
    --methods) methods="$2"; shift 2 ;;
    --kills) kills="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    *) echo "kill_resume.sh: unknown argument '$1' (allowed: --methods LIST, --kills N, --steps S, --out DIR, --seed K)" >&2; exit 2 ;;
  esac
done
for value in "$kills" "$steps" "$seed"; do
  [[ "$value" =~ ^[1-9][0-9]*$ ]] || { echo "kill_resume.sh: counts must be integers >= 1, got '$value'" >&2; exit 2; }
done
bin=${REWARDGEN_BIN:-build/rewardgen}
[ -x "$bin" ] || { echo "kill_resume.sh: no binary at $bin (build first: scripts/build.sh)" >&2; exit 2; }
RANDOM=$seed
mkdir -p "$out"

# The command of one method's run: distill for LCD, train for the others; rlcm and the DI* pair
# start from the shipped LCM (their default).
job() {  # $1 method, $2 run folder
  local command=train
  [ "$1" = lcd ] && command=distill
  echo "$bin --threads 2 --log-level warn $command --method $1 --config $out/$1.json --out $2 --no-eval"
}
without_wall_time() { sed -E 's/"wall_time":[^,}]*,?//' "$1"; }
now() { date +%s.%N; }

failures=0
for method in ${methods//,/ }; do
  printf '{"batch_size": 2, "trainer": {"max_steps": %d, "checkpoint_every": 1, "eval_every": 0}}\n' "$steps" > "$out/$method.json"
  straight="$out/$method.straight"
  killed="$out/$method.killed"
  rm -rf "$straight" "$killed"
  start=$(now)
  $(job "$method" "$straight") > /dev/null
  seconds=$(awk -v a="$start" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}')
  # Kill delays uniform in [0.1 s, 0.1 s + 3 x straight / kills]: about a third of the run between
  # kills on average, so the run moves on while most kills still land mid-run.
  span_ms=$(awk -v s="$seconds" -v k="$kills" 'BEGIN {printf "%d", 3000 * s / k + 1}')
  done_kills=0
  launches=0
  while :; do
    resume=()
    [ -f "$killed/config.json" ] && resume=(--resume)
    $(job "$method" "$killed") "${resume[@]}" > /dev/null 2>> "$out/$method.killed.log" &
    pid=$!
    launches=$((launches + 1))
    if [ "$done_kills" -lt "$kills" ]; then
      delay_ms=$((100 + (RANDOM * 32768 + RANDOM) % span_ms))
      sleep "$(awk -v ms="$delay_ms" 'BEGIN {printf "%.3f", ms / 1000}')"
      if kill -9 "$pid" 2> /dev/null; then
        wait "$pid" 2> /dev/null || true
        done_kills=$((done_kills + 1))
        for checkpoint in "$killed"/checkpoints/step_*.safetensors; do
          [ -e "$checkpoint" ] || continue
          if ! "$bin" --log-level quiet inspect "$checkpoint" > /dev/null 2>&1; then
            echo "$method: kill $done_kills left an unreadable checkpoint under its final name: $checkpoint" >&2
            failures=$((failures + 1))
          fi
        done
        continue
      fi
    fi
    wait "$pid" || { echo "$method: launch $launches failed (see $out/$method.killed.log)" >&2; failures=$((failures + 1)); break; }
    break  # finished
  done
  weights=$(cd "$straight/generator" && find . -name '*.safetensors' | sort)
  same=yes
  for w in $weights; do cmp -s "$straight/generator/$w" "$killed/generator/$w" || same=no; done
  [ -n "$weights" ] || same=no
  diff -q <(without_wall_time "$straight/metrics.jsonl") <(without_wall_time "$killed/metrics.jsonl") > /dev/null || same=no
  [ "$same" = yes ] || failures=$((failures + 1))
  printf '%-10s straight %6.1f s, %2d steps; %2d kills over %2d launches; weights and metrics equal: %s\n' \
    "$method" "$seconds" "$steps" "$done_kills" "$launches" "$same"
done
[ "$failures" -eq 0 ] || { echo "kill_resume.sh: $failures failure(s)" >&2; exit 1; }
