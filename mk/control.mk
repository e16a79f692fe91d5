# spark-control (spark_control/): its integration tests, the Spark 2 stand-in image, the benchmark.
# Its unit tests run in `make unit` (real ansible-runner on stand-in playbooks, no Docker).
STANDIN_IMAGE   ?= spark-inference/spark2-standin:bookworm
STANDIN_CONTEXT := tests/images/spark2-standin

export CONTROL_STANDIN_IMAGE := $(STANDIN_IMAGE)

.PHONY: control-standin-image control-tests bench-control

TEST_STAGES += control-tests

# Rebuilt only when its context changes (the label carries the context's hash).
control-standin-image: docker base-image ## the stand-in for Parakeet and Magpie on Spark 2 (spark2-standin image)
	@$(STAGE) control-standin-image scripts/context-image.sh $(STANDIN_IMAGE) $(STANDIN_CONTEXT)

control-tests: venv collection models fixtures gpu-host-image image control-standin-image control-image ## spark-control against the real playbooks over SSH, the WhisperX image, the stand-ins, Chromium
	@$(STAGE) control-tests $(BIN)/pytest -m "integration or browser" tests/control

bench-control: venv collection fixtures control-standin-image ## SSE latency and proxy memory: docs/benchmarks/control.md
	@$(STAGE) bench-control $(PY) scripts/bench_control.py --out docs/benchmarks/control.md

# spark-control's own image (spark_control/Dockerfile), FROM the local Debian base; built once per run and
# reused by the role's tests and `make demo` (the classic builder's layer cache makes a rebuild seconds).
CONTROL_IMAGE   ?= spark-inference/spark-control:latest
CONTROL_CONTEXT := $(CACHE)/build/spark-control
export CONTROL_IMAGE

.PHONY: control-image spark-control-lock

control-image: docker base-image ## spark-control's image (spark-inference/spark-control) FROM the local Debian base
	@$(STAGE) control-image bash -c 'set -euo pipefail; scripts/spark-control-context.sh $(CONTROL_CONTEXT); \
	  DOCKER_BUILDKIT=0 docker build -q --build-arg BASE_IMAGE=$(BASE_IMAGE_LOCAL) -t $(CONTROL_IMAGE) $(CONTROL_CONTEXT) \
	  >/dev/null && docker image inspect --format "$(CONTROL_IMAGE): {{.Size}} bytes" $(CONTROL_IMAGE)'

spark-control-lock: venv ## re-pin spark_control/requirements.txt (the image's runtime) at the versions requirements/dev.txt pins
	$(PY) scripts/spark-control-lock.py
