#!/usr/bin/env bash
# Installs what rewardgen needs from Debian 12 packages, only what is missing (idempotent): runs
# `apt-get update` only when a package has to be installed. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  cmake g++ ninja-build              # build (Ninja: with -DREWARDGEN_UNITY=OFF adding a source file rebuilds only that file)
  libtorch-dev                       # LibTorch 1.13 (CPU)
  libdnnl-dev                        # headers of the oneDNN that LibTorch links: Winograd convolutions
  libopenblas0-openmp                # fast BLAS for LibTorch; the reference BLAS is ~15x slower
  nlohmann-json3-dev libcli11-dev    # config files, command line
  libturbojpeg0-dev libpng-dev       # JPEG reward, PNG images
  libicu-dev zlib1g-dev              # tokenizer: Unicode classes and NFC; gzipped BPE merges
  libgloo-dev                        # torch's c10d Gloo process group: data-parallel training
  libcairo2-dev fonts-dejavu-core    # the report's plots as PNG (lines and text)
  libgtest-dev libbenchmark-dev      # tests, benchmarks
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root to run: $*" >&2; exit 1; fi
}

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# LibTorch calls BLAS through libblas.so.3: make sure the OpenMP OpenBLAS serves it.
arch=$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)
want=/usr/lib/$arch/openblas-openmp/libblas.so.3
current=$(update-alternatives --query "libblas.so.3-$arch" 2>/dev/null | awk '/^Value:/ {print $2}')
if [ -e "$want" ] && [ "$current" != "$want" ]; then
  echo "setup: selecting $want as libblas.so.3"
  as_root update-alternatives --set "libblas.so.3-$arch" "$want"
fi
