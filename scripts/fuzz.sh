#!/usr/bin/env bash
# Fuzzes every reader of user input (docs/reliability.md, fuzz/harnesses.h) under AddressSanitizer
# and UndefinedBehaviorSanitizer: builds build-fuzz/ with clang (libFuzzer, Debian's clang) or,
# without clang, with g++ and the mutation driver, then runs each target for --runs inputs from its
# seed corpus (fuzz/corpus/<target>/). A crash, a hang (--timeout s per input), a leak or a
# sanitizer report stops that target and leaves its input in build-fuzz/findings/<target>/.
# Long (the build alone is a full build): run it apart from other work.
# Usage: scripts/fuzz.sh [--runs N] [--timeout S] [--jobs J] [--targets safetensors,png,...]
# (--jobs: targets fuzzed at once, one core each; default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=1000000
timeout=20
jobs=1
targets=safetensors,torch_checkpoint,model_config,clip_tokenizer,bert_tokenizer,png,jpeg
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    --targets) targets="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    *) echo "fuzz.sh: unknown argument '$1' (allowed: --runs N, --timeout S, --jobs J, --targets LIST)" >&2; exit 2 ;;
  esac
done
for value in "$runs" "$timeout" "$jobs"; do
  [[ "$value" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: counts must be integers >= 1, got '$value'" >&2; exit 2; }
done
scripts/setup.sh
if command -v clang++ > /dev/null; then compiler=(-DCMAKE_CXX_COMPILER=clang++); libfuzzer=yes; else compiler=(); libfuzzer=no; fi
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${compiler[@]}" -DREWARDGEN_SANITIZE=ON -DREWARDGEN_FUZZ=ON \
  -DREWARDGEN_BUILD_TESTS=OFF -DREWARDGEN_BUILD_BENCH=OFF > /dev/null
if [ "$libfuzzer" = yes ]; then
  cmake --build build-fuzz -j "$(nproc)" --target $(printf 'fuzz_%s ' ${targets//,/ })
else
  cmake --build build-fuzz -j "$(nproc)" --target rewardgen_fuzz
fi
# Leaks are checked after every input that allocated more than it freed; those inside LibTorch's
# own code are suppressed (fuzz/lsan.supp says which and why).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_odr_violation=0:allocator_may_return_null=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$(pwd)/fuzz/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# One target: its result line on stdout, exit status 1 when it found something.
fuzz_target() {
  local target=$1 findings=build-fuzz/findings/$1 work start result=clean
  mkdir -p "$findings"
  work=$(mktemp -d)
  cp fuzz/corpus/"$target"/* "$work"/
  start=$(date +%s)
  if [ "$libfuzzer" = yes ]; then
    # The committed corpus stays as it is: libFuzzer grows a copy.
    build-fuzz/fuzz/fuzz_"$target" -runs="$runs" -timeout="$timeout" -rss_limit_mb=4096 -max_len=65536 \
      -artifact_prefix="$findings/" -print_final_stats=1 "$work" > "$findings/log.txt" 2>&1 || result=FAILED
  else
    timeout $((timeout * 100)) build-fuzz/fuzz/rewardgen_fuzz "$target" "$work" --runs "$runs" > "$findings/log.txt" 2>&1 || result=FAILED
  fi
  rm -rf "$work"
  echo "$target: $runs inputs, $result in $(( $(date +%s) - start )) s (log: $findings/log.txt)"
  [ "$result" = clean ]
}
status=0
pids=()
for target in ${targets//,/ }; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
  fuzz_target "$target" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
