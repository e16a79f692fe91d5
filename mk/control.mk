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

control-tests: venv collection models fixtures gpu-host-image image control-standin-image ## spark-control against the real playbooks over SSH, the WhisperX image, the stand-ins, Chromium
	@$(STAGE) control-tests $(BIN)/pytest -m "integration or browser" tests/control

bench-control: venv collection fixtures control-standin-image ## SSE latency and proxy memory: docs/benchmarks/control.md
	@$(STAGE) bench-control $(PY) scripts/bench_control.py --out docs/benchmarks/control.md
