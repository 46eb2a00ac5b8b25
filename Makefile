# Carbon benchmark harness. `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
HARNESS := $(PY) -m harness
BACKEND ?= auto
RESULTS ?= results

.PHONY: help setup engine base-image images test test-fast lint demo bench bench-cpu bench-gpu bench-strategies report data clean-venv slurm-cluster slurm-stop

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[worker,dev]'
	touch $@

setup: $(VENV)/.installed  ## create .venv with the harness, TensorFlow (CPU) and test tools

engine:  ## install (Debian's docker.io, as root) and start the Docker engine
	docker/install-engine.sh
	docker/start-engine.sh

base-image: engine  ## build the stand-in for python:3.11-slim-bookworm from Debian packages
	docker/build-base-image.sh

images: setup base-image  ## build the CPU and CUDA worker images if their inputs changed
	$(HARNESS) image all

test: setup engine images slurm-cluster  ## run the test suite (starts Docker and the test Slurm cluster: their tests never skip)
	$(PY) -m pytest -q

test-fast: setup  ## the inner loop: every test that needs no engine, no cluster and no training
	$(PY) -m pytest -q -m "not docker and not slurm and not slow"

lint: setup  ## ruff
	$(VENV)/bin/ruff check harness tests

demo: setup  ## generated data through to the report (a few minutes on 2 cores)
	$(HARNESS) run scenarios/demo.yaml --backend $(BACKEND) --results-dir $(RESULTS)

data: setup  ## download CIFAR-10 (or say how to import it)
	$(HARNESS) data fetch

# DATA=synthetic runs the same scenarios on generated data of CIFAR-10's size (no download),
# by default of the cifar-like difficulty (SYNTHETIC=easy for the quick smoke-test kind).
DATA ?= cifar10
SYNTHETIC ?= cifar-like
ifeq ($(DATA),synthetic)
FETCH := true
RUN_DATA := --synthetic $(SYNTHETIC)
else
FETCH := $(HARNESS) data fetch
RUN_DATA :=
endif

bench-cpu: setup  ## the research workload on CPU (scenarios/cpu.yaml), then the report
	$(FETCH)
	$(HARNESS) run scenarios/cpu.yaml --backend $(BACKEND) --results-dir $(RESULTS) $(RUN_DATA)

bench-gpu: setup  ## the research workload on GPU (scenarios/gpu.yaml), then the report
	$(FETCH)
	$(HARNESS) run scenarios/gpu.yaml --backend $(BACKEND) --results-dir $(RESULTS) $(RUN_DATA)

.PHONY: gpu-check
gpu-check: setup  ## on a GPU host: a short CPU and GPU run in the containers that checks GPU use, NVML energy and the report (GPU_CHECK_ARGS)
	$(HARNESS) gpu-check --results-dir $(RESULTS) $(GPU_CHECK_ARGS)

bench-strategies: setup  ## the carbon-efficiency strategies against the baseline, with repeats (scenarios/strategies.yaml; DATA=synthetic possible; about 30 min on 2 cores)
	$(FETCH)
	$(HARNESS) run scenarios/strategies.yaml --backend $(BACKEND) --results-dir $(RESULTS) $(RUN_DATA)

bench: setup  ## performance: worker vs research training, harness overhead (about 15 min)
	$(HARNESS) bench $(BENCH_ARGS)

report: setup  ## report over every session in results/
	$(HARNESS) report $(RESULTS)

clean-venv:  ## remove .venv
	rm -rf $(VENV)

slurm-cluster:  ## install (Debian's Slurm, as root) and start the single-host test Slurm cluster
	slurm/install.sh
	slurm/start-cluster.sh

slurm-stop:  ## stop the test Slurm cluster (slurm/stop-cluster.sh --purge also deletes its state)
	slurm/stop-cluster.sh
