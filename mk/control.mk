# spark-control (spark_control/): its integration tests, the Spark 2 stand-in image, the benchmark.
# Its unit tests run in `make unit` (real ansible-runner on stand-in playbooks, no Docker).
STANDIN_IMAGE   ?= spark-inference/spark2-standin:bookworm
STANDIN_CONTEXT := tests/images/spark2-standin

export CONTROL_STANDIN_IMAGE := $(STANDIN_IMAGE)

.PHONY: control-standin-image control-tests bench-control

TEST_STAGES += control-tests

# Rebuilt only when its context changes (the label carries the context's hash).
control-standin-image: docker base-image ## the stand-in for Parakeet and Magpie on Spark 2 (spark2-standin image)
	@$(STAGE) control-standin-image bash -c 'set -euo pipefail; \
	  sum=$$(cat $(STANDIN_CONTEXT)/* | sha256sum | cut -c1-12); \
	  if [ "$$(docker image inspect --format "{{index .Config.Labels \"context-sha\"}}" $(STANDIN_IMAGE) 2>/dev/null)" = "$$sum" ]; then \
	    echo "stand-in image $(STANDIN_IMAGE) present"; exit 0; fi; \
	  DOCKER_BUILDKIT=0 docker build -q --build-arg BASE_IMAGE=$(BASE_IMAGE_LOCAL) --label context-sha=$$sum \
	    -t $(STANDIN_IMAGE) $(STANDIN_CONTEXT) >/dev/null; echo "stand-in image $(STANDIN_IMAGE) built"'

control-tests: venv collection models fixtures gpu-host-image image control-standin-image ## spark-control against the real playbooks over SSH, the WhisperX image, the stand-ins, Chromium
	@$(STAGE) control-tests $(BIN)/pytest -m "integration or browser" tests/control

bench-control: venv collection fixtures control-standin-image ## SSE latency and proxy memory: docs/benchmarks/control.md
	@$(STAGE) bench-control $(PY) scripts/bench_control.py --out docs/benchmarks/control.md
