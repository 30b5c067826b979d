#!/usr/bin/env bash
# A probe of bad input across every command (docs/reliability.md): hundreds of malformed flags,
# files, model folders, configs, prompts, images, run folders and output paths, each given to the
# real program the way a user would. Every case must end in a clear refusal — exit code 2 for a bad
# command line, 1 for bad content, and a message naming the flag, file or key — or, where the input
# is unusual but valid, in success. Anything else is counted and listed:
#   CRASH    ended by a signal (or exit code >= 128)
#   HANG     still running after --limit seconds
#   SILENT   exit code 0 where a refusal was expected (plausible garbage), or a refusal that names nothing
#   OUTSIDE  a file written anywhere but under the case's own output folder
# The output folder of each case lies under --out; the program runs in an empty working folder there.
# Writes <out>/cases.tsv (case, expected, outcome, exit code, first line of stderr) and prints the
# counts. Takes a few minutes; no other work on the machine while it runs (the OUTSIDE check looks
# at every file changed during a case in the checkout, $HOME and /tmp).
# Usage: bench/reliability/probe.sh [--out DIR] [--limit SECONDS] [--only PREFIX]
# REWARDGEN_BIN=PATH probes another binary than build/rewardgen.
set -uo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
out=runs/probe
limit=120
only=
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --limit) limit="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    *) echo "probe.sh: unknown argument '$1' (allowed: --out DIR, --limit SECONDS, --only PREFIX)" >&2; exit 2 ;;
  esac
done
[[ "$limit" =~ ^[1-9][0-9]*$ ]] || { echo "probe.sh: --limit must be an integer >= 1, got '$limit'" >&2; exit 2; }
bin=$(realpath "${REWARDGEN_BIN:-build/rewardgen}")
[ -x "$bin" ] || { echo "probe.sh: no binary at $bin (build first: scripts/build.sh)" >&2; exit 2; }
rm -rf "$out"
mkdir -p "$out/cases" "$out/in" "$out/cwd"
out=$(realpath "$out")
in=$out/in
stamp=$out/.stamp
world=$repo/models/world
: > "$out/cases.tsv"
declare -A count=()

# Files changed since the stamp outside this probe's folder: the checkout (build folders, runs/ and
# git's objects aside), $HOME and /tmp (aside: the shell tool's job folders, compilers' temporaries and
# the corpus files a libFuzzer run may be writing at the same time).
written_outside() {
  {
    find "$repo" -xdev \( -path "$repo/.git/objects" -o -path "$repo/build*" -o -path "$repo/runs" -o -path "$out" \) -prune -o -newer "$stamp" -type f -print
    find "$HOME" -xdev -maxdepth 3 -newer "$stamp" -type f -print 2>/dev/null
    find /tmp -xdev -maxdepth 3 \( -path '/tmp/bash_jobs*' -o -path '/tmp/bash_tool*' -o -path "$out" \) -prune -o -newer "$stamp" -type f -print 2>/dev/null
  } | grep -v "^$out/" | grep -vE '^/tmp/cc[A-Za-z0-9]{6}\.[a-z]+$|^/tmp/tmp\.[A-Za-z0-9]{10}/[0-9a-f]{40}$' | head -5
}

# probe NAME EXPECT NEEDLE -- ARGS...: runs the program with ARGS in the empty working folder.
# EXPECT: usage (exit 2), error (exit 1) or ok (exit 0). A refusal's stderr must contain NEEDLE
# (case-insensitive; "" for any message). @OUT in ARGS is replaced by the case's output folder.
probe() {
  local name=$1 expect=$2 needle=$3
  shift 4
  [ -n "$only" ] && [[ "$name" != "$only"* ]] && return 0
  local dir=$out/cases/$name
  mkdir -p "$dir"
  local args=() arg
  for arg in "$@"; do args+=("${arg//@OUT/$dir/out}"); done
  touch "$stamp"
  sleep 0.01
  (cd "$out/cwd" && timeout -k 5 "$limit" "$bin" --threads 2 "${args[@]}" < /dev/null > "$dir/stdout" 2> "$dir/stderr")
  local rc=$? outcome
  local message
  # The first line of the refusal: after any progress line, before CLI11's pointer to --help.
  message=$(grep -a -v '^\s*$' "$dir/stderr" | grep -a -v -i '^\[\|^Run with --help\|[0-9]%) ' | head -1 | cut -c1-200)
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then outcome=HANG
  elif [ $rc -ge 128 ]; then outcome=CRASH
  elif [ $rc -eq 0 ]; then
    if [ "$expect" = ok ]; then outcome=ok; else outcome=SILENT; fi
  elif [ -z "$message" ] || { [ -n "$needle" ] && ! grep -aqiF -- "$needle" "$dir/stderr"; }; then outcome=SILENT
  elif [ "$expect" = ok ]; then outcome=REFUSED
  else outcome=refused
  fi
  local outside
  outside=$(written_outside)
  if [ -n "$outside" ]; then outcome=OUTSIDE; message="wrote $(echo "$outside" | tr '\n' ' ')"; fi
  count[$outcome]=$(( ${count[$outcome]:-0} + 1 ))
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$expect" "$outcome" "$rc" "$message" >> "$out/cases.tsv"
  case "$outcome" in ok|refused) ;; *) printf '%-8s %-48s exit %-3s %s\n' "$outcome" "$name" "$rc" "$message" ;; esac
}

# ---- Inputs -------------------------------------------------------------------------------------

# u64le N: the 8 bytes of N, little-endian, as printf escapes.
u64le() { local n=$1 i s=; for i in 0 1 2 3 4 5 6 7; do s+=$(printf '\\x%02x' $(( (n >> (8 * i)) & 255 ))); done; printf '%s' "$s"; }
# safetensors FILE HEADER DATA_BYTES: a file with that JSON header and that many zero bytes of data.
safetensors() {
  { printf "$(u64le ${#2})"; printf '%s' "$2"; head -c "$3" /dev/zero; } > "$1"
}
# model NAME: a copy of the shipped teacher (hard links: an edit replaces the file, never the original).
model() { rm -rf "$in/$1"; cp -al "$world" "$in/$1"; rm -rf "$in/$1/lcm"; echo "$in/$1"; }
# edit FILE SED: a sed edit of a copied file, written anew so that the shipped file is untouched.
edit() { local text; text=$(sed "$2" "$1"); rm -f "$1"; printf '%s\n' "$text" > "$1"; }

prompt="a red circle to the left of a blue square"
mkfifo "$in/fifo"
mkdir -p "$in/folder" "$in/empty_folder"
printf '%s\n' "$prompt" > "$in/prompts.txt"

# ---- 1. Every numeric flag of every command: NaN, negative, absurd, not a number ------------------
# Base arguments that make each command valid, so that an accepted value would really run it.
declare -A base=(
  ["bench gemm"]="--seconds 0.1" ["bench unet"]="--repeats 1" ["bench reward"]="--reward world.jpeg --repeats 1"
  ["bench sample"]="--model $world --images 1 --repeats 1" ["bench speed"]="--rows world --repeats 1" ["bench"]="--out @OUT"
  ["tokenize"]="hello" ["sample"]="--model $world --prompt red --steps 1 --out @OUT" ["world render"]="red --out @OUT.png"
  ["world tokenizer"]="@OUT" ["pretrain vae"]="--out @OUT --export @OUT.export --steps 1"
  ["pretrain clip"]="--out @OUT --export @OUT.export --steps 1" ["pretrain teacher"]="--out @OUT --export @OUT.export --steps 1"
  ["eval"]="--model $world --out @OUT --limit 1 --steps 1" ["reward"]="--reward world.jpeg --images $in/folder --prompts $in/prompts.txt"
  ["train"]="--out @OUT --no-eval --minutes 0.01" ["distill"]="--out @OUT --no-eval --minutes 0.01"
  ["plot"]="$in/folder --out @OUT.svg" ["reach"]="$in/folder" ["report"]="$in/folder --out @OUT")
for command in "${!base[@]}"; do
  read -ra words <<< "$command"
  read -ra base_args <<< "${base[$command]}"
  flags=$("$bin" "${words[@]}" --help 2>&1 | grep -oE '^\s+(-[a-z],)?--[a-z0-9-]+ (INT|FLOAT|UINT)' | grep -oE -- '--[a-z0-9-]+')
  for flag in $flags; do
    for value in nan -1 1e30 abc ""; do
      # Documented meanings of -1: bench sample --cfg -1 is "the recipe's".
      [ "$command $flag $value" = "bench sample --cfg -1" ] && continue
      probe "flag.${command// /_}${flag}=${value:-empty}" usage "$flag" -- "${words[@]}" "${base_args[@]}" "$flag" "$value"
    done
  done
done
for value in nan -1 1e30 abc; do probe "flag.global--threads=$value" usage "--threads" -- --threads "$value" world prompts; done
probe flag.unknown_flag usage "--no-such" -- eval --model "$world" --out @OUT --no-such 1
probe flag.unknown_command usage "nope" -- nope
probe flag.missing_required usage "--model" -- eval --out @OUT
probe flag.bad_choice usage "--sampler" -- sample --model "$world" --prompt red --sampler euler --out @OUT
probe flag.bad_device error "cuda" -- sample --model "$world" --prompt red --steps 1 --device cuda:7 --out @OUT
probe flag.bad_device_name error "tpu" -- sample --model "$world" --prompt red --steps 1 --device tpu --out @OUT
probe flag.bad_log_level usage "--log-level" -- --log-level loud world prompts
probe flag.bad_method usage "--method" -- train --method ppo --out @OUT
probe flag.distill_method usage "--method" -- distill --method r0 --out @OUT
probe flag.bad_reward error "nope" -- eval --model "$world" --out @OUT --limit 1 --steps 1 --reward nope

# ---- 2. Files where a file is read ----------------------------------------------------------------
: > "$in/empty.safetensors"
printf 'short' > "$in/short.safetensors"
safetensors "$in/huge_header.safetensors" '{}' 0; printf "$(u64le 1099511627776){}" > "$in/huge_header.safetensors"
safetensors "$in/not_json.safetensors" '{"a": [1, 2' 0
safetensors "$in/array.safetensors" '[1, 2, 3]' 0
safetensors "$in/bad_dtype.safetensors" '{"x": {"dtype": "Q8", "shape": [2], "data_offsets": [0, 2]}}' 2
safetensors "$in/negative_shape.safetensors" '{"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}' 4
safetensors "$in/overflow_shape.safetensors" '{"x": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 4]}}' 4
safetensors "$in/reversed_offsets.safetensors" '{"x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}' 4
safetensors "$in/beyond.safetensors" '{"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}' 8
safetensors "$in/gap.safetensors" '{"x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}' 8
safetensors "$in/overlap.safetensors" '{"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "y": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}' 12
safetensors "$in/duplicate.safetensors" '{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}' 8
safetensors "$in/metadata.safetensors" '{"__metadata__": {"a": 1}, "x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}' 4
safetensors "$in/size_mismatch.safetensors" '{"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}' 8
safetensors "$in/empty_name.safetensors" '{"": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}' 4
safetensors "$in/float_offsets.safetensors" '{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0.5, 4]}}' 4
safetensors "$in/string_shape.safetensors" '{"x": {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}}' 4
safetensors "$in/deep.safetensors" "$(printf '%.0s[' {1..5000})" 0
head -c 100 "$world/unet/diffusion_pytorch_model.safetensors" > "$in/truncated.safetensors"
ln -sf "$in/loop_b" "$in/loop_a"; ln -sf "$in/loop_a" "$in/loop_b"
for file in empty short huge_header not_json array bad_dtype negative_shape overflow_shape reversed_offsets beyond gap overlap \
            duplicate metadata size_mismatch empty_name float_offsets string_shape deep truncated; do
  probe "file.inspect.$file" error "$file.safetensors" -- inspect "$in/$file.safetensors"
done
probe file.inspect.fifo error "fifo" -- inspect "$in/fifo"
probe file.inspect.folder error "folder" -- inspect "$in/folder"
probe file.inspect.dev_zero error "/dev/zero" -- inspect /dev/zero
probe file.inspect.missing error "missing" -- inspect "$in/missing.safetensors"
probe file.inspect.symlink_loop error "loop_a" -- inspect "$in/loop_a"
for file in not_json bad_dtype beyond duplicate truncated; do
  probe "file.model_forward.$file" error "$file.safetensors" -- model forward --model "$world/unet" --inputs "$in/$file.safetensors" --out @OUT.safetensors
done
safetensors "$in/wrong_inputs.safetensors" '{"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}' 4
probe file.model_forward.wrong_input_names error "" -- model forward --model "$world/unet" --inputs "$in/wrong_inputs.safetensors" --out @OUT.safetensors
probe file.model_forward.fifo error "fifo" -- model forward --model "$world/unet" --inputs "$in/fifo" --out @OUT.safetensors
probe file.model_forward.out_is_input usage "" -- model forward --model "$world/unet" --inputs "$in/wrong_inputs.safetensors" --out "$in/wrong_inputs.safetensors"

# Prompts files.
: > "$in/no_prompts.txt"
head -c 3000 /dev/urandom > "$in/binary_prompts.txt"
printf '\n \n\t\n' > "$in/blank_prompts.txt"
head -c 200000 /dev/zero | tr '\0' 'a' > "$in/long_prompt.txt"
printf '%s\r\n%s\r\n' "$prompt" "a green triangle" > "$in/crlf_prompts.txt"
printf '{"prompt": "a red circle"\n' > "$in/bad_jsonl.txt"
printf '{"text": "a red circle"}\n' > "$in/wrong_key.jsonl"
printf 'a photo of a cat\n' > "$in/foreign_prompts.txt"
printf '\xff\xfe\x00a\n' > "$in/invalid_utf8.txt"
for file in no_prompts blank_prompts; do
  probe "file.sample.prompts.$file" error "$file" -- sample --model "$world" --prompts "$in/$file.txt" --steps 1 --out @OUT
done
probe file.sample.prompts.binary error "binary_prompts.txt' line 1" -- sample --model "$world" --prompts "$in/binary_prompts.txt" --steps 1 --batch 64 --out @OUT
probe file.sample.prompts.long ok "" -- sample --model "$world" --prompts "$in/long_prompt.txt" --steps 1 --out @OUT
probe file.sample.prompts.crlf ok "" -- sample --model "$world" --prompts "$in/crlf_prompts.txt" --steps 1 --out @OUT
probe file.sample.prompts.invalid_utf8 error "invalid_utf8.txt' line 1" -- sample --model "$world" --prompts "$in/invalid_utf8.txt" --steps 1 --out @OUT
probe file.sample.prompts.fifo error "fifo" -- sample --model "$world" --prompts "$in/fifo" --steps 1 --out @OUT
probe file.sample.prompts.folder error "folder" -- sample --model "$world" --prompts "$in/folder" --steps 1 --out @OUT
probe file.sample.prompts.missing error "missing" -- sample --model "$world" --prompts "$in/missing.txt" --steps 1 --out @OUT
for file in no_prompts.txt blank_prompts.txt bad_jsonl.txt wrong_key.jsonl foreign_prompts.txt binary_prompts.txt invalid_utf8.txt fifo folder; do
  probe "file.eval.prompts.$file" error "${file%.*}" -- eval --model "$world" --prompts "$in/$file" --steps 1 --out @OUT
done
probe file.tokenize.file_missing error "missing" -- tokenize --file "$in/missing.txt"
probe file.tokenize.file_fifo error "fifo" -- tokenize --file "$in/fifo"
probe file.tokenize.file_binary error "binary_prompts.txt' line 1" -- tokenize --file "$in/binary_prompts.txt"
probe file.tokenize.file_long ok "" -- tokenize --file "$in/long_prompt.txt" --length 8
probe file.tokenize.tokenizer_folder_empty error "empty_folder" -- tokenize hi --tokenizer "$in/empty_folder"
probe file.tokenize.nothing usage "" -- tokenize

# Images.
"$bin" world render "$prompt" --out "$in/scene.png" > /dev/null
head -c 300 "$in/scene.png" > "$in/cut.png"
printf 'not an image' > "$in/text.png"
: > "$in/zero.png"
cp "$in/scene.png" "$in/scene_named.jpg"
"$bin" world render "$prompt" --count 4 --out "$in/grid.png" > /dev/null  # a grid: not 64 x 64
printf '\xff\xd8\xff\xe0\x00\x10JFIF\x00' > "$in/cut.jpg"
for file in cut.png text.png zero.png cut.jpg fifo folder missing.png; do
  probe "file.world_check.$file" error "${file%.*}" -- world check "$in/$file" "$prompt"
done
probe file.world_check.grid_not_64 error "64" -- world check "$in/grid.png" "$prompt"
probe file.world_check.png_named_jpg ok "" -- world check "$in/scene_named.jpg" "$prompt"
probe file.world_check.foreign_prompt error "cat" -- world check "$in/scene.png" "a photo of a cat"
probe file.world_check.empty_prompt error "" -- world check "$in/scene.png" ""
mkdir -p "$in/images_bad" "$in/images_ok" "$in/images_mixed"
cp "$in/cut.png" "$in/images_bad/0.png"; cp "$in/scene.png" "$in/images_bad/1.png"
cp "$in/scene.png" "$in/images_ok/0.png"; cp "$in/scene.png" "$in/images_ok/1.png"
cp "$in/scene.png" "$in/images_mixed/0.png"; cp "$in/grid.png" "$in/images_mixed/1.png"
printf '%s\n%s\n' "$prompt" "$prompt" > "$in/two_prompts.txt"
probe file.reward.corrupt_image error "0.png" -- reward --reward world.jpeg --images "$in/images_bad" --prompts "$in/two_prompts.txt"
probe file.reward.prompt_count error "prompts" -- reward --reward world.jpeg --images "$in/images_ok" --prompts "$in/prompts.txt"
probe file.reward.empty_folder error "empty_folder" -- reward --reward world.jpeg --images "$in/empty_folder" --prompts "$in/prompts.txt"
probe file.reward.not_folder error "scene.png" -- reward --reward world.jpeg --images "$in/scene.png" --prompts "$in/prompts.txt"
probe file.reward.mixed_sizes ok "" -- reward --reward world.jpeg --images "$in/images_mixed" --prompts "$in/two_prompts.txt"
probe file.reward.compositional_on_grid error "" -- reward --reward world.compositional --images "$in/images_mixed" --prompts "$in/two_prompts.txt"
probe file.reward.unknown_reward error "nope" -- reward --reward nope --images "$in/images_ok" --prompts "$in/two_prompts.txt"
probe file.reward.bad_composite error "" -- reward --reward '{"world.jpeg": "x"}' --images "$in/images_ok" --prompts "$in/two_prompts.txt"
probe file.reward.nan_weight error "" -- reward --reward '{"world.jpeg": 1e999}' --images "$in/images_ok" --prompts "$in/two_prompts.txt"
probe file.reward.aesthetic_missing error "nowhere" -- reward --reward aesthetic:/nowhere --images "$in/images_ok" --prompts "$in/two_prompts.txt"

# ---- 3. Model folders, one fault each (sample, and a few through eval, train, bench and report) -----
sample_with() { probe "model.$1" error "$2" -- sample --model "$3" --prompt "$prompt" --steps 1 --out @OUT; }
# config_faults PREFIX FILE NEEDLE EDITS: one copy of the teacher per entry of the associative array
# EDITS (fault name -> sed script), FILE of the copy edited, sampled, refused naming NEEDLE.
config_faults() {
  local -n faults=$4
  local fault m
  for fault in "${!faults[@]}"; do
    m=$(model "$1_$fault"); edit "$m/$2" "${faults[$fault]}"; sample_with "$1_$fault" "$3" "$m"
  done
}
m=$(model no_index); rm "$m/model_index.json"; sample_with no_index model_index.json "$m"
m=$(model index_not_json); printf '{"unet": ' > "$m/model_index.json.new"; mv "$m/model_index.json.new" "$m/model_index.json"; sample_with index_not_json model_index.json "$m"
m=$(model index_array); printf '[]' > "$m/model_index.json.new"; mv "$m/model_index.json.new" "$m/model_index.json"; sample_with index_array model_index.json "$m"
m=$(model no_unet); rm -r "$m/unet"; sample_with no_unet unet "$m"
m=$(model no_vae_weights); rm "$m/vae/diffusion_pytorch_model.safetensors"; sample_with no_vae_weights vae "$m"
m=$(model unet_config_dir); rm "$m/unet/config.json"; mkdir "$m/unet/config.json"; sample_with unet_config_dir config.json "$m"
m=$(model unet_config_fifo); rm "$m/unet/config.json"; mkfifo "$m/unet/config.json"; sample_with unet_config_fifo config.json "$m"
declare -A unet_edits=(
  [heads_zero]='s/"attention_head_dim": 4/"attention_head_dim": 0/' [heads_negative]='s/"attention_head_dim": 4/"attention_head_dim": -4/'
  [heads_string]='s/"attention_head_dim": 4/"attention_head_dim": "four"/' [heads_huge]='s/"attention_head_dim": 4/"attention_head_dim": 1000000000/'
  [heads_float]='s/"attention_head_dim": 4/"attention_head_dim": 4.5/' [layers_negative]='s/"layers_per_block": 1/"layers_per_block": -2/'
  [layers_zero]='s/"layers_per_block": 1/"layers_per_block": 0/' [channel_zero]='0,/    64,/s//    0,/'
  [groups_7]='s/"norm_num_groups": 32/"norm_num_groups": 7/' [in_channels_zero]='s/"in_channels": 4/"in_channels": 0/'
  [in_channels_3]='s/"in_channels": 4/"in_channels": 3/' [cross_dim_256]='s/"cross_attention_dim": 128/"cross_attention_dim": 256/'
  [block_unknown]='s/"DownBlock2D"$/"FooBlock2D"/' [act_unknown]='s/"act_fn": "silu"/"act_fn": "swoosh"/'
  [norm_eps_negative]='s/"norm_eps": 1e-05/"norm_eps": -1/' [norm_eps_huge]='s/"norm_eps": 1e-05/"norm_eps": 1e308/'
  [sample_size_zero]='s/"sample_size": 16/"sample_size": 0/' [flip_string]='s/"flip_sin_to_cos": true/"flip_sin_to_cos": "yes"/'
  [freq_shift_huge]='s/"freq_shift": 0.0/"freq_shift": 1e300/' [mid_unknown]='s/"UNetMidBlock2DCrossAttn"/"UNetMidBlockFoo"/'
  [transformer_layers_zero]='s/"transformer_layers_per_block": 1/"transformer_layers_per_block": 0/'
  [truncated_json]='$d' [no_class]='/_class_name/d')
config_faults unet unet/config.json unet unet_edits
m=$(model unet_weights_truncated); w=$m/unet/diffusion_pytorch_model.safetensors; head -c 5000 "$world/unet/diffusion_pytorch_model.safetensors" > "$w.new"; rm "$w"; mv "$w.new" "$w"
sample_with unet_weights_truncated diffusion_pytorch_model.safetensors "$m"
m=$(model unet_weights_text); w=$m/unet/diffusion_pytorch_model.safetensors; rm "$w"; printf 'hello' > "$w"; sample_with unet_weights_text diffusion_pytorch_model.safetensors "$m"
m=$(model unet_weights_of_vae); w=$m/unet/diffusion_pytorch_model.safetensors; rm "$w"; ln "$world/vae/diffusion_pytorch_model.safetensors" "$w"; sample_with unet_weights_of_vae "unet" "$m"
m=$(model unet_weights_zero_tensor); w=$m/unet/diffusion_pytorch_model.safetensors; rm "$w"
safetensors "$w" '{"x": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}' 0; sample_with unet_weights_zero_tensor "unet" "$m"
m=$(model unet_index_escape); rm "$m/unet/diffusion_pytorch_model.safetensors"
printf '{"metadata": {}, "weight_map": {"conv_in.weight": "../../../etc/passwd"}}' > "$m/unet/diffusion_pytorch_model.safetensors.index.json"
sample_with unet_index_escape "passwd" "$m"
declare -A vae_edits=(
  [scaling_zero]='s/"scaling_factor": [0-9.]*/"scaling_factor": 0/' [scaling_negative]='s/"scaling_factor": [0-9.]*/"scaling_factor": -1/'
  [scaling_huge]='s/"scaling_factor": [0-9.]*/"scaling_factor": 1e300/' [latent_3]='s/"latent_channels": 4/"latent_channels": 3/'
  [groups_5]='s/"norm_num_groups": 8/"norm_num_groups": 5/' [layers_zero]='s/"layers_per_block": 1/"layers_per_block": 0/')
config_faults vae vae/config.json vae vae_edits
declare -A scheduler_edits=(
  [timesteps_zero]='s/"num_train_timesteps": 1000/"num_train_timesteps": 0/' [timesteps_negative]='s/"num_train_timesteps": 1000/"num_train_timesteps": -5/'
  [timesteps_huge]='s/"num_train_timesteps": 1000/"num_train_timesteps": 1000000000000/' [beta_end_2]='s/"beta_end": 0.012/"beta_end": 2.0/'
  [beta_reversed]='s/"beta_start": 0.00085/"beta_start": 0.5/' [beta_negative]='s/"beta_start": 0.00085/"beta_start": -0.1/'
  [schedule_unknown]='s/"scaled_linear"/"cubic"/' [prediction_unknown]='s/"epsilon"/"noise"/'
  [offset_negative]='s/"steps_offset": 1/"steps_offset": -1/' [offset_huge]='s/"steps_offset": 1/"steps_offset": 5000/')
config_faults scheduler scheduler/scheduler_config.json scheduler scheduler_edits
declare -A text_edits=(
  [hidden_zero]='s/"hidden_size": 128/"hidden_size": 0/' [hidden_130]='s/"hidden_size": 128/"hidden_size": 130/'
  [heads_3]='s/"num_attention_heads": 4/"num_attention_heads": 3/' [positions_2]='s/"max_position_embeddings": 16/"max_position_embeddings": 2/'
  [eos_outside]='s/"eos_token_id": 586/"eos_token_id": 99999/' [act_unknown]='s/"quick_gelu"/"relu7"/')
config_faults text text_encoder/config.json text_encoder text_edits
m=$(model tokenizer_vocab_broken); edit "$m/tokenizer/vocab.json" '1s/^/[/'; sample_with tokenizer_vocab_broken vocab.json "$m"
m=$(model tokenizer_merges_empty); rm "$m/tokenizer/merges.txt"; : > "$m/tokenizer/merges.txt"; sample_with tokenizer_merges_empty merges.txt "$m"
m=$(model tokenizer_merges_garbage); rm "$m/tokenizer/merges.txt"; printf 'a b c d\nzz\n' > "$m/tokenizer/merges.txt"; sample_with tokenizer_merges_garbage merges.txt "$m"
m=$(model tokenizer_length_zero); edit "$m/tokenizer/tokenizer_config.json" 's/"model_max_length": 16/"model_max_length": 0/'; sample_with tokenizer_length_zero model_max_length "$m"
# Unusual but valid: a scheduler's class is metadata (the sampler comes from the recipe and the
# flags); a tokenizer length beyond the text encoder's positions is capped by them.
m=$(model scheduler_class_unknown); edit "$m/scheduler/scheduler_config.json" 's/"DDIMScheduler"/"MagicScheduler"/'
probe model.scheduler_class_unknown ok "" -- sample --model "$m" --prompt "$prompt" --steps 1 --out @OUT
m=$(model tokenizer_length_huge); edit "$m/tokenizer/tokenizer_config.json" 's/"model_max_length": 16/"model_max_length": 1000000000000/'
probe model.tokenizer_length_huge ok "" -- sample --model "$m" --prompt "$prompt" --steps 1 --out @OUT
probe model.eval.heads_zero error "attention_head_dim" -- eval --model "$in/unet_heads_zero" --out @OUT --limit 1 --steps 1
probe model.train.heads_zero error "attention_head_dim" -- train --model "$in/unet_heads_zero" --out @OUT --no-eval --minutes 0.01
probe model.distill.scheduler_beta error "beta" -- distill --model "$in/scheduler_beta_end_2" --out @OUT --no-eval --minutes 0.01
probe model.bench_sample.no_index error "model_index.json" -- bench sample --model "$in/no_index" --images 1 --repeats 1
probe model.info.heads_zero error "attention_head_dim" -- model info "$in/unet_heads_zero"
probe model.info.missing error "nowhere" -- model info /nowhere
probe model.forward.config_only error "" -- model forward --model "$in/unet_weights_text/unet" --inputs "$in/wrong_inputs.safetensors" --out @OUT.safetensors
printf '{"_class_name": "UNet2DConditionModel", "block_out_channels": [1000000, 1000000]}' > "$in/unet_huge.json"
probe model.bench_unet.huge_config error "block_out_channels" -- bench unet --config "$in/unet_huge.json" --repeats 1
probe model.bench_unet.not_json error "text.png" -- bench unet --config "$in/text.png" --repeats 1

# ---- 4. Run configs ---------------------------------------------------------------------------------
config_case() {  # config_case NAME NEEDLE METHOD JSON
  printf '%s' "$4" > "$in/config_$1.json"
  probe "config.$1" error "$2" -- train --method "$3" --config "$in/config_$1.json" --out @OUT --no-eval --minutes 0.01
}
config_case not_json "config_not_json.json" r0 '{"batch_size": '
config_case array "" r0 '[1, 2]'
config_case unknown_key "bogus" r0 '{"bogus": 1}'
config_case batch_zero "batch_size" r0 '{"batch_size": 0}'
config_case batch_negative "batch_size" r0 '{"batch_size": -4}'
config_case batch_huge "batch_size" r0 '{"batch_size": 100000000}'
config_case batch_string "batch_size" r0 '{"batch_size": "8"}'
config_case batch_float "batch_size" r0 '{"batch_size": 8.5}'
config_case lr_huge "lr" r0 '{"trainer": {"lr": 1e300}}'
config_case lr_negative "lr" r0 '{"trainer": {"lr": -0.001}}'
config_case lr_overflow "" r0 '{"trainer": {"lr": 1e999}}'
config_case adam_beta_one "beta2" r0 '{"trainer": {"adam": {"beta2": 1.0}}}'
config_case warmup_negative "warmup_steps" r0 '{"trainer": {"warmup_steps": -10}}'
config_case keep_last_zero "keep_last" r0 '{"trainer": {"keep_last": 0}}'
config_case checkpoint_every_zero "checkpoint_every" r0 '{"trainer": {"checkpoint_every": 0}}'
config_case normalize_eps_zero "normalize_eps" r0 '{"normalize_eps": 0}'
config_case weight_lambda_nan "weight_lambda" r0 '{"weight_lambda": "NaN"}'
config_case cfg_t_reversed "cfg_t" r0 '{"cfg_t_min": 900, "cfg_t_max": 100}'
config_case prompts_file_missing "nowhere" r0 '{"prompts_file": "/nowhere/prompts.txt"}'
config_case prompts_file_fifo "fifo" r0 '{"prompts_file": "'"$in"'/fifo"}'
config_case rewards_empty "rewards" r0 '{"rewards": {}}'
config_case reward_weight_string "world.clip" r0 '{"rewards": {"world.clip": "high"}}'
config_case timesteps_empty "timesteps" r0 '{"generator": {"timesteps": []}}'
config_case timesteps_outside "timesteps" r0 '{"generator": {"timesteps": [1000, 500]}}'
config_case timesteps_negative "timesteps" r0 '{"generator": {"timesteps": [999, -1]}}'
config_case ema_above_one "ema" r0 '{"generator": {"ema_decay": 1.5}}'
config_case lora_rank_zero "lora_rank" ddpo '{"generator": {"lora_rank": 0}}'
config_case guidance_negative "guidance" ddpo '{"generator": {"guidance": -3}}'
config_case clip_range_negative "clip_range" ddpo '{"clip_range": -0.1}'
config_case eta_huge "eta" ddpo '{"generator": {"eta": 1e300}}'
config_case reward_unknown "nope" r0 '{"rewards": {"nope": 1.0}}'
config_case max_steps_zero "max_steps" lcd '{"trainer": {"max_steps": 0}}'
config_case grad_clip_negative "grad_clip" rlcm '{"trainer": {"grad_clip": -1}}'
config_case sampler_unknown "sampler" refl '{"generator": {"sampler": "euler"}}'
config_case precision_unknown "precision" r0 '{"precision": "fp8"}'
config_case last_step_unknown "last_step" r0 '{"generator": {"last_step": "middle"}}'
config_case lora_alpha_zero "lora_alpha" ddpo '{"generator": {"lora_alpha": 0}}'
config_case nested_type "generator" distar '{"generator": 5}'
config_case deep_nesting "" r0 "$(printf '%.0s{"a":' {1..3000})1$(printf '%.0s}' {1..3000})"
config_case duplicate_key "" r0 '{"batch_size": 8, "batch_size": 0}'
printf '{}' > "$in/config_pretrain_ok.json"
for stage in vae clip teacher; do
  probe "config.pretrain_$stage.not_json" error "config_not_json.json" -- pretrain "$stage" --config "$in/config_not_json.json" --out @OUT --export @OUT.export --steps 1
  probe "config.pretrain_$stage.unknown_key" error "bogus" -- pretrain "$stage" --config "$in/config_unknown_key.json" --out @OUT --export @OUT.export --steps 1
  probe "config.pretrain_$stage.fifo" error "fifo" -- pretrain "$stage" --config "$in/fifo" --out @OUT --export @OUT.export --steps 1
done

# ---- 5. Run folders, metrics and evaluations --------------------------------------------------------
run=$out/in/run_r0
printf '{"batch_size": 2, "trainer": {"max_steps": 2, "checkpoint_every": 1}, "eval_limit": 6}' > "$in/config_reference.json"
"$bin" --threads 2 train --method r0 --config "$in/config_reference.json" --out "$run" --eval-limit 6 > /dev/null 2>&1 || echo "probe.sh: the reference run in $run failed: the run-folder cases below are not meaningful" >&2
resume_case() {  # resume_case NAME EXPECT NEEDLE EDIT-COMMAND: a copy of the reference run, edited, then resumed
  local copy=$in/run_$1
  rm -rf "$copy"; cp -r "$run" "$copy"
  (cd "$copy" && eval "$4")
  probe "run.resume.$1" "$2" "$3" -- train --out "$copy" --resume --no-eval
}
resume_case config_broken error "config.json" 'printf "{" > config.json'
resume_case config_gone error "config.json" 'rm config.json'
resume_case checkpoints_truncated error "no valid checkpoint" 'for f in $(find checkpoints -name "*.safetensors"); do head -c 100 "$f" > t; mv t "$f"; done'
# A run without checkpoints starts over (with a warning): a failed first start must not block a retry.
resume_case checkpoints_gone ok "" 'rm -rf checkpoints'
resume_case checkpoint_text error "no valid checkpoint" 'for f in $(find checkpoints -name "*.safetensors"); do printf x > "$f"; done'
# A metrics line cut short by a crash: dropped on resume (its step comes after the checkpoint).
resume_case metrics_cut ok "" 'head -c 40 metrics.jsonl > m; mv m metrics.jsonl' 
resume_case method_changed error "ppo" 'sed -i "s/\"r0\"/\"ppo\"/" config.json'
probe run.resume.not_a_run error "empty_folder" -- train --out "$in/empty_folder" --resume
probe run.train_into_run error "--resume" -- train --out "$run" --no-eval --minutes 0.01
printf '{"step": 1, "reward": 0.5}\n{"step": 2, "rew' > "$in/cut_metrics.jsonl"
printf 'hello\n' > "$in/text_metrics.jsonl"
printf '{"step": 1, "reward": "high"}\n' > "$in/string_metrics.jsonl"
: > "$in/empty_metrics.jsonl"
for file in cut text string empty; do
  probe "run.plot.$file" error "${file}_metrics.jsonl" -- plot "$in/${file}_metrics.jsonl" --out @OUT.svg
  probe "run.reach.$file" error "${file}_metrics.jsonl" -- reach "$in/${file}_metrics.jsonl" "$run"
done
probe run.plot.unknown_metric error "nope" -- plot "$run" --y nope --out @OUT.svg
probe run.plot.out_folder error "" -- plot "$run" --out "$in/folder"
probe run.plot.ok ok "" -- plot "$run" --out @OUT.png
probe run.reach.one_run error "baseline" -- reach "$run"
printf '{' > "$in/broken_eval.json"
printf '{"model": 5}' > "$in/odd_eval.json"
printf '[]' > "$in/array_eval.json"
for file in broken odd array; do probe "run.compare.$file" error "${file}_eval.json" -- compare "$in/${file}_eval.json"; done
probe run.compare.folder_without_eval error "empty_folder" -- compare "$in/empty_folder"
probe run.compare.names_mismatch usage "" -- compare "$run/eval/eval.json" --name a --name b
probe model.report_teacher.no_unet error "no_unet" -- report "$run" --teacher "$in/no_unet" --out @OUT
probe run.report.empty_folder error "empty_folder" -- report "$in/empty_folder" --out @OUT --reference-limit 6
probe run.report.out_is_input error "" -- report "$run" --out "$run"
probe run.report.out_inside_input error "" -- report "$run" --out "$run/report"

# ---- 6. Output paths --------------------------------------------------------------------------------
probe out.sample_into_shipped_model error "" -- sample --model "$world" --prompt red --steps 1 --out "$world"
probe out.eval_into_model error "" -- eval --model "$world" --out "$world" --limit 1 --steps 1
probe out.train_into_model error "" -- train --model "$world" --out "$world" --no-eval --minutes 0.01
probe out.sample_used_folder error "" -- sample --model "$world" --prompt red --steps 1 --out "$in/images_ok"
probe out.sample_into_file error "scene.png" -- sample --model "$world" --prompt red --steps 1 --out "$in/scene.png"
probe out.eval_unwritable error "/proc" -- eval --model "$world" --out /proc/rewardgen_probe --limit 1 --steps 1
probe out.render_creates_its_folder ok "" -- world render "$prompt" --out "$in/nowhere/x.png"
probe out.render_into_folder error "folder" -- world render "$prompt" --out "$in/folder"
probe out.tokenizer_into_file error "scene.png" -- world tokenizer "$in/scene.png"
probe out.plot_unwritable error "/proc" -- plot "$run" --out /proc/rewardgen_probe.svg
probe out.bench_unwritable error "/proc" -- bench --out /proc/rewardgen_probe --no-methods --images 1 --repeats 1
probe out.pretrain_export_over_out error "" -- pretrain vae --out @OUT --export @OUT --steps 1
probe out.forward_unwritable error "" -- model forward --model "$world/unet" --inputs "$in/wrong_inputs.safetensors" --out /proc/x.safetensors

# ---- Summary ------------------------------------------------------------------------------------------
total=$(wc -l < "$out/cases.tsv")
echo "probe: $total cases; $(for k in "${!count[@]}"; do printf '%s %s, ' "$k" "${count[$k]}"; done | sed 's/, $//')"
echo "cases: $out/cases.tsv"
bad=$(awk -F'\t' '$3 != "ok" && $3 != "refused"' "$out/cases.tsv" | wc -l)
[ "$bad" -eq 0 ]
