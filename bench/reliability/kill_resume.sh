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
steps=24
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
[ "$steps" -gt $((kills * 4 / 5)) ] || { echo "kill_resume.sh: --steps must exceed 4/5 of --kills (each kill in training takes a step)" >&2; exit 2; }
bin=${REWARDGEN_BIN:-build/rewardgen}
[ -x "$bin" ] || { echo "kill_resume.sh: no binary at $bin (build first: scripts/build.sh)" >&2; exit 2; }
RANDOM=$seed
mkdir -p "$out"

# The command of one method's run: distill for LCD, train for the others; rlcm and the DI* pair
# start from the shipped LCM (their default).
job() {  # $1 method, $2 run folder: sets the array `launch` (paths may hold spaces)
  local command=train
  [ "$1" = lcd ] && command=distill
  launch=("$bin" --threads 2 --log-level info "$command" --method "$1" --config "$out/$1.json" --out "$2" --no-eval)
}
# The newest step checkpointed in run folder $1 (0: none).
newest_step() {
  local newest
  newest=$(ls "$1/checkpoints" 2> /dev/null | sed -n 's/^step_0*\([0-9][0-9]*\)\.safetensors$/\1/p' | sort -n | tail -1)
  echo "${newest:-0}"
}
without_wall_time() { sed -E 's/"wall_time":[^,}]*,?//' "$1"; }
now() { date +%s.%N; }

failures=0
for method in ${methods//,/ }; do
  printf '{"batch_size": 2, "trainer": {"max_steps": %d, "checkpoint_every": 1, "eval_every": 0}}\n' "$steps" > "$out/$method.json"
  straight="$out/$method.straight"
  killed="$out/$method.killed"
  rm -rf "$straight" "$killed" "$out/$method.killed.log"
  start=$(now)
  job "$method" "$straight"
  "${launch[@]}" > /dev/null 2> "$out/$method.straight.log"
  seconds=$(awk -v a="$start" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}')
  # A launch spends O seconds starting (loading the models) and exporting, T training: the last
  # wall_time of the straight run. Kill k (of N) waits until the launch has checkpointed a step of
  # its own and the run has reached step k·S/N, then a random part of a step, so that the kills
  # spread over the whole run and land in steps and in checkpoint saves; of every five, the third
  # lands inside the launch's first checkpoint save and the fifth at a random moment of the
  # start-up. (S must exceed the N·4/5 kills that each take a step.)
  train_seconds=$(awk -F'"wall_time":' 'END {split($2, a, /[,}]/); print a[1]}' "$straight/metrics.jsonl")
  startup_ms=$(awk -v s="$seconds" -v t="$train_seconds" 'BEGIN {printf "%d", 1000 * (s - t) + 1}')
  step_ms=$(awk -v t="$train_seconds" -v n="$steps" 'BEGIN {printf "%d", 1000 * t / n + 1}')
  done_kills=0
  launches=0
  while :; do
    resume=()
    [ -f "$killed/config.json" ] && resume=(--resume)
    job "$method" "$killed"
    "${launch[@]}" "${resume[@]}" > /dev/null 2>> "$out/$method.killed.log" &
    pid=$!
    launches=$((launches + 1))
    if [ "$done_kills" -lt "$kills" ]; then
      if [ $((done_kills % 5)) -eq 4 ]; then
        sleep "$(awk -v ms=$((RANDOM % startup_ms)) 'BEGIN {printf "%.3f", ms / 1000}')"
      elif [ $((done_kills % 5)) -eq 2 ]; then
        # Inside a checkpoint save: as soon as its temporary file appears (a busy poll: a save of
        # a LoRA or of a small model lasts milliseconds).
        while kill -0 "$pid" 2> /dev/null && ! compgen -G "$killed/checkpoints/step_*.safetensors.tmp.*" > /dev/null; do :; done
      else
        target=$((done_kills * steps / kills))
        own=$(( $(newest_step "$killed") + 1 ))
        [ "$own" -gt "$target" ] && target=$own
        while kill -0 "$pid" 2> /dev/null && [ "$(newest_step "$killed")" -lt "$target" ]; do sleep 0.02; done
        sleep "$(awk -v ms=$((RANDOM % step_ms)) 'BEGIN {printf "%.3f", ms / 1000}')"
      fi
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
  # What the kills hit, from the resumed launches' logs: a save cut short (its temporary file is
  # removed at the next start), or a start before the first checkpoint (the run begins again).
  in_save=$(grep -c "unfinished checkpoint save" "$out/$method.killed.log" || true)
  before_first=$(grep -c "no checkpoint in" "$out/$method.killed.log" || true)
  printf '%-10s straight %6.1f s, %2d steps; %2d kills over %2d launches (%d during a save, %d before the first checkpoint); weights and metrics equal: %s\n' \
    "$method" "$seconds" "$steps" "$done_kills" "$launches" "$in_save" "$before_first" "$same"
done
[ "$failures" -eq 0 ] || { echo "kill_resume.sh: $failures failure(s)" >&2; exit 1; }
