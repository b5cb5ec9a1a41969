#!/usr/bin/env bash
# Measures the full-size real models on a device: sizes, load times, latency.
#
# usage: tools/measure_models.sh WEIGHTS_DIR [DEVICE]
#   WEIGHTS_DIR holds Hugging Face model directories:
#     clip-vit-base-patch32/{model.safetensors,tokenizer.json,config.json}
#     clip-vit-large-patch14/{model.safetensors,tokenizer.json,config.json}
#     FLUX.1-schnell/ (optional; Hugging Face layout, flux1-schnell.gguf preferred over
#       flux1-schnell.safetensors; T5's shards text_encoder_2/model-*.safetensors are all listed)
#   DEVICE is cpu (default) or cuda:N (then build with --features cuda, e.g. with
#   ../shared/cuda/build.sh on a machine without a GPU).
# Random weights of the full architecture measure the same latency as the real ones.
set -euo pipefail
weights=$(cd "${1:?usage: tools/measure_models.sh WEIGHTS_DIR [DEVICE]}" && pwd)
device=${2:-cpu}
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
entry() {
  printf '  %s:\n    weights: %s/model.safetensors\n    tokenizer: %s/tokenizer.json\n    config: %s/config.json\n    dtype: %s\n' \
    "$1" "$weights/$2" "$weights/$2" "$weights/$2" "$3"
}
dtype=f16; [ "$device" = cpu ] && dtype=f32
{
  sed -e "s/^  name: cpu$/  name: \"$device\"/" -e '/^models: {}$/,$d' config.yaml
  echo "models:"
  entry clip_b32 clip-vit-base-patch32 "$dtype"
  entry clip_l14 clip-vit-large-patch14 "$dtype"
  f=$weights/FLUX.1-schnell
  if [ -d "$f" ]; then
    t=$f/flux1-schnell.safetensors; [ -e "$f/flux1-schnell.gguf" ] && t=$f/flux1-schnell.gguf
    printf '  flux:\n    transformer: %s\n    vae: %s/ae.safetensors\n' "$t" "$f"
    shards=$(ls "$f"/text_encoder_2/model*.safetensors 2>/dev/null | paste -sd, -)
    printf '    t5: { weights: [%s], config: %s/text_encoder_2/config.json, tokenizer: %s/tokenizer_2/tokenizer.json }\n' "$shards" "$f" "$f"
    printf '    clip: { weights: %s/text_encoder/model.safetensors, config: %s/text_encoder/config.json, tokenizer: %s/tokenizer/tokenizer.json }\n' "$f" "$f" "$f"
    printf '    dtype: %s\n' "$( [ "$device" = cpu ] && echo f32 || echo bf16 )"
  fi
  sed -n '/^# The dual CLIP self-check/,$p' config.yaml
} >"$work/config.yaml"
features=(); [ "$device" != cpu ] && features=(--features cuda)
cargo run --release -p vortex-real "${features[@]}" --bin vortex -- models check --config "$work/config.yaml"
VORTEX_BENCH_CONFIG="$work/config.yaml" cargo bench -p vortex-real "${features[@]}" --bench real_models
