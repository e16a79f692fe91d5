# spark-inference: `make test` runs everything CI runs; `make help` lists the rest.
# Every target installs what it needs and is cheap when it is already there.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CACHE            ?= $(HOME)/.cache/spark-inference
VENV             ?= .venv
MODELS_DIR       ?= $(CACHE)/models
FIXTURES_DIR     ?= $(CACHE)/fixtures
BASE_IMAGE_LOCAL ?= spark-inference/debian:bookworm
# Extra CA certificates trusted by image builds (an HTTPS-intercepting proxy's CA): files or
# directories of *.crt, space-separated. Defaults to Debian's local CA directory.
EXTRA_CA_CERTS   ?= /usr/local/share/ca-certificates

PY     := $(CURDIR)/$(VENV)/bin/python
BIN    := $(CURDIR)/$(VENV)/bin
STAGE  := $(CURDIR)/scripts/stage
COLLECTIONS := $(CACHE)/collections
# This machine's pip config names local index directories that may not exist; drop that noise.
QUIET_PIP := sed "/is ignored: it is neither a file nor a directory/d"

export SPARK_MODELS_DIR   := $(MODELS_DIR)
export SPARK_FIXTURES_DIR := $(FIXTURES_DIR)
export BASE_IMAGE_LOCAL EXTRA_CA_CERTS
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export PATH := $(BIN):$(PATH)

.PHONY: help test system docker base-image gpu-host-image venv models fixtures collection lint unit lock demo demo-down

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# Each part of the project adds its targets and its test stages in mk/<part>.mk.
TEST_STAGES :=
include $(sort $(wildcard mk/*.mk))

test: system venv docker base-image gpu-host-image models fixtures collection lint unit $(TEST_STAGES) ## everything CI runs

system: ## Debian packages the tests need (ffmpeg, espeak-ng, chromium, docker.io, ...)
	@$(STAGE) system scripts/system-packages.sh

docker: system ## a Docker engine that answers (starts dockerd when none does)
	@$(STAGE) docker scripts/docker-engine.sh

base-image: docker ## the local Debian bookworm base image every test image builds FROM
	@$(STAGE) base-image scripts/base-image.sh

gpu-host-image: base-image ## the SSH-reachable stand-in for a GPU node (scripts/gpu-host.sh up NAME PORT)
	@$(STAGE) gpu-host-image scripts/gpu-host.sh image

venv: $(VENV)/.installed ## the pinned Python environment in .venv
$(VENV)/.installed: requirements/dev.txt
	@$(STAGE) venv bash -c 'set -eo pipefail; python3 -m venv $(VENV); \
	  $(BIN)/pip install -q --no-deps -r requirements/dev.txt 2>&1 | $(QUIET_PIP); $(BIN)/pip check; touch $@'

models: venv ## the offline model bundle in $(MODELS_DIR), verified by sha256
	@$(STAGE) models bash -c 'set -o pipefail; $(PY) scripts/model_bundle.py $(MODELS_DIR) 2>&1 | $(QUIET_PIP)'

fixtures: venv system ## synthesised test audio in $(FIXTURES_DIR)
	@$(STAGE) fixtures $(PY) scripts/fixtures.py $(FIXTURES_DIR)

collection: ## make this checkout importable as spark.inference (ANSIBLE_COLLECTIONS_PATH)
	@mkdir -p $(COLLECTIONS)/ansible_collections/spark
	@ln -sfn $(CURDIR) $(COLLECTIONS)/ansible_collections/spark/inference

lint: venv collection ## ansible-lint (production profile), yamllint, ruff
	@$(STAGE) lint bash -c 'set -e; $(BIN)/yamllint --strict . && $(BIN)/ansible-lint && \
	  $(BIN)/ruff check . && $(BIN)/ruff format --check .'

unit: venv models fixtures collection ## the fast tests (no image, no molecule)
	@$(STAGE) unit $(BIN)/pytest -m "not integration and not browser"

demo: system venv docker base-image gpu-host-image models fixtures collection control-image control-standin-image ## the main job: spark-control deployed from its image, a one-click WhisperX install on a Spark 2 stand-in, then a diarized transcript
	@$(STAGE) demo $(PY) scripts/demo.py up

demo-down: venv collection ## remove what `make demo` started (WhisperX through spark-control, spark-control, the stand-ins)
	@$(PY) scripts/demo.py down

lock: ## re-pin requirements/dev.txt from requirements/dev.in
	rm -rf $(CACHE)/lock-venv && python3 -m venv $(CACHE)/lock-venv
	$(CACHE)/lock-venv/bin/pip install -q --upgrade pip
	$(CACHE)/lock-venv/bin/pip install -q -r requirements/dev.in
	{ echo "# Pinned from requirements/dev.in by \`make lock\` (Python 3.11). Do not edit by hand."; \
	  $(CACHE)/lock-venv/bin/pip freeze --exclude pip; } > requirements/dev.txt
