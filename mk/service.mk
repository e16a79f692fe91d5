# The WhisperX service image (whisperx_container/): build it, test it, benchmark it.
SERVICE_IMAGE   ?= spark-inference/whisperx-asr:cpu
SERVICE_CONTEXT := $(CACHE)/build/whisperx
UV_VENV         := $(CACHE)/uv-venv

export SERVICE_IMAGE

.PHONY: image service-tests bench-service service-lock gpu-smoke eval eval-sweep

TEST_STAGES += service-tests

# The build context is staged outside the tree so the extra CA certificates never land in git. The
# classic builder keys COPY on file contents, not mtimes, so an unchanged context is a fully cached build.
image: docker base-image ## the CPU service image (spark-inference/whisperx-asr:cpu) FROM the local Debian base
	@$(STAGE) image bash -c 'set -euo pipefail; rm -rf $(SERVICE_CONTEXT); \
	  mkdir -p $(dir $(SERVICE_CONTEXT)); cp -r whisperx_container $(SERVICE_CONTEXT); \
	  scripts/extra-ca-certs.sh $(SERVICE_CONTEXT)/certs; \
	  DOCKER_BUILDKIT=0 docker build --build-arg BASE_IMAGE=$(BASE_IMAGE_LOCAL) -t $(SERVICE_IMAGE) $(SERVICE_CONTEXT)'

service-tests: image models fixtures venv ## integration tests against the built image (offline bundle, tiny.en)
	@$(STAGE) service-tests $(BIN)/pytest -m integration tests/service

# On a GPU host (a new Spark first): the image's view of the GPU, then the bundled dialogue through it.
# GPU_SMOKE_ARGS: e.g. --image whisperx-asr:ctx-... --model large-v3; --cpu --models DIR for a CPU image.
gpu-smoke: ## the GPU smoke test (scripts/gpu-smoke.sh): nvidia-smi, torch, CTranslate2, RTF per stage, GPU memory
	scripts/gpu-smoke.sh $(GPU_SMOKE_ARGS)

eval: image models fixtures venv ## diarization quality, the service beside whisperX: docs/benchmarks/quality.md
	@$(STAGE) eval $(PY) -m scripts.eval.run --image $(SERVICE_IMAGE) --out docs/benchmarks

eval-sweep: image models venv ## the diarization settings grid on the eval recordings (chooses the defaults): quality.json
	@$(STAGE) eval-sweep $(PY) -m scripts.eval.sweep --image $(SERVICE_IMAGE) --out docs/benchmarks/quality.json

bench-service: image models fixtures venv ## the long-audio benchmark (about an hour): docs/benchmarks/service.md
	@$(STAGE) bench-service $(PY) -m scripts.bench_service --out docs/benchmarks

service-lock: ## re-pin whisperx_container/requirements.txt (x86_64 + aarch64) from requirements.in
	test -x $(UV_VENV)/bin/uv || { python3 -m venv $(UV_VENV) && $(UV_VENV)/bin/pip install -q uv; }
	cd whisperx_container && $(UV_VENV)/bin/uv pip compile --universal --python-version 3.11 \
	  --index-url https://pypi.org/simple --no-emit-index-url --custom-compile-command "make service-lock" \
	  requirements.in -o requirements.txt
