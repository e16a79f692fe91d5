#!/usr/bin/env bash
# The GPU smoke test: the first thing to run on a new Spark (or any GPU host), once the image is built.
#
#   scripts/gpu-smoke.sh [--image IMAGE] [--model NAME] [--models DIR] [--hf-token-file FILE] [--cpu]
#
# On the host: nvidia-smi (the driver and the GPU). In a throwaway container of the image, with the GPUs:
# torch's view of the GPU and its compute capability, CTranslate2's CUDA devices and compute types, then the
# bundled two-speaker dialogue transcribed and diarized, with each stage's real-time factor and the peak
# GPU memory (whisperx_container/app/smoke). Exits non-zero on any failure.
#
#   --image          the image (default: the one the running whisperx-asr container was made from)
#   --model          Whisper model (default: medium, the service's)
#   --models DIR     an offline model bundle (scripts/model_bundle.py) instead of the whisperx-models volume
#   --hf-token-file  the Hugging Face token for the gated pyannote pipeline when the volume lacks it
#   --cpu            no GPU: skip the GPU checks and still transcribe (CI runs this against the CPU image)
set -euo pipefail

image="" model="medium" models="" token_file="" cpu=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --image) image="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --models) models="$2"; shift 2 ;;
    --hf-token-file) token_file="$2"; shift 2 ;;
    --cpu) cpu=1; shift ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-smoke: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

fail() { echo "GPU smoke test FAILED: $*" >&2; exit 1; }

if [[ -z "$image" ]]; then
  image=$(docker inspect --format '{{.Config.Image}}' whisperx-asr 2>/dev/null) \
    || fail "no --image given and no whisperx-asr container to take it from: install WhisperX first, or pass --image"
fi
docker image inspect "$image" >/dev/null 2>&1 || fail "the image $image is not on this host"

run=(docker run --rm --name "gpu-smoke-$$" -e "WHISPER_MODEL=$model" -e WHISPERX_BATCH_SIZE=8)
if [[ -z "$cpu" ]]; then
  echo "Host"
  command -v nvidia-smi >/dev/null || fail "nvidia-smi is not on this host: install the NVIDIA driver (a DGX Spark ships with it)"
  gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader 2>&1) \
    || fail "nvidia-smi found no GPU: $gpu"
  echo "  ok   nvidia-smi: $gpu"
  run+=(--gpus all)
fi
if [[ -n "$models" ]]; then
  [[ -f "$models/manifest.json" ]] || fail "$models is not a model bundle (no manifest.json)"
  run+=(-v "$(cd "$models" && pwd):/models:ro" -e WHISPERX_MODEL_BUNDLE=/models)
else
  run+=(-v whisperx-models:/root/.cache/huggingface)
fi
if [[ -n "$token_file" ]]; then
  [[ -r "$token_file" ]] || fail "cannot read the token file $token_file"
  run+=(-v "$(cd "$(dirname "$token_file")" && pwd)/$(basename "$token_file"):/run/secrets/hf_token:ro"
        -e HF_TOKEN_FILE=/run/secrets/hf_token)
fi

echo "Image $image, Whisper $model"
"${run[@]}" "$image" python -m app.smoke ${cpu:+--cpu}
