#!/usr/bin/env bash
# Data-parallel scaling on one machine (docs/distributed.md): the same global batch of an
# R0 training step on the world teacher, trained by 1 process × T threads and by N processes × T/N
# threads (a torchrun-style launch on 127.0.0.1 through the environment variables); the mean
# wall-clock of a step after the first two, from each run's metrics.jsonl. A benchmark, not a test:
# nothing else on the cores while it runs. Report the figures, don't tune to them.
# Usage: bench/dist/scaling.sh [--processes N] [--threads T] [--batch B] [--steps S] [--out DIR]
#   B: the global batch (each of the N processes trains on B/N samples)
# REWARDGEN_BIN=PATH runs another binary than build/rewardgen.
set -euo pipefail
cd "$(dirname "$0")/../.."
processes=2
threads=2
batch=16
steps=12
out=runs/dist_scaling
while [ $# -gt 0 ]; do
  case "$1" in
    --processes) processes="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "scaling.sh: unknown argument '$1' (allowed: --processes N, --threads T, --batch B, --steps S, --out DIR)" >&2; exit 2 ;;
  esac
done
for value in "$processes" "$threads" "$batch" "$steps"; do
  [[ "$value" =~ ^[1-9][0-9]*$ ]] || { echo "scaling.sh: counts must be integers >= 1, got '$value'" >&2; exit 2; }
done
[ "$steps" -ge 4 ] || { echo "scaling.sh: --steps must be >= 4 (the first two are not timed)" >&2; exit 2; }
[ $((batch % processes)) -eq 0 ] || { echo "scaling.sh: --batch $batch does not split over $processes processes" >&2; exit 2; }
[ $((threads % processes)) -eq 0 ] || { echo "scaling.sh: --threads $threads does not split over $processes processes" >&2; exit 2; }
bin=${REWARDGEN_BIN:-build/rewardgen}
[ -x "$bin" ] || { echo "scaling.sh: no binary at $bin (build first: scripts/build.sh)" >&2; exit 2; }
rm -rf "$out"
mkdir -p "$out"

config() {  # $1: per-process batch
  printf '{"batch_size": %d, "trainer": {"max_steps": %d, "checkpoint_every": 1000000, "eval_every": 0}}\n' "$1" "$steps"
}
# Mean seconds per step after the first two (warm-up), from wall_time in metrics.jsonl.
step_time() {
  awk -F'"wall_time":' 'NR>=2 {split($2, a, /[,}]/); t[NR]=a[1]} END {printf "%.3f", (t[NR]-t[2])/(NR-2)}' "$1/metrics.jsonl"
}

config "$batch" > "$out/one.json"
"$bin" --threads "$threads" --log-level warn train --method r0 --config "$out/one.json" --out "$out/one" --no-eval > /dev/null
config $((batch / processes)) > "$out/many.json"
port=$((29500 + RANDOM % 1000))
pids=()
for ((rank = 0; rank < processes; ++rank)); do
  RANK=$rank WORLD_SIZE=$processes LOCAL_RANK=$rank MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    "$bin" --threads $((threads / processes)) --log-level warn train --method r0 --config "$out/many.json" --out "$out/many" \
    --no-eval > /dev/null &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done

one=$(step_time "$out/one")
many=$(step_time "$out/many")
echo "R0 step, global batch $batch, world teacher:"
echo "  1 process x $threads threads:            $one s"
echo "  $processes processes x $((threads / processes)) thread(s) (Gloo): $many s"
awk -v a="$one" -v b="$many" 'BEGIN {printf "  ratio (processes / threads): %.2f\n", b / a}'
