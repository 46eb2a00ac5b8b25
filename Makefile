# Carbon benchmark harness. `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
HARNESS := $(PY) -m harness
BACKEND ?= auto
RESULTS ?= results

.PHONY: help setup engine base-image images test lint demo bench-cpu bench-gpu report data clean-venv

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

test: setup engine images  ## run the test suite (starts Docker: the container tests never skip)
	$(PY) -m pytest -q

lint: setup  ## ruff
	$(VENV)/bin/ruff check harness tests

demo: setup  ## generated data through to the report (a few minutes on 2 cores)
	$(HARNESS) run scenarios/demo.yaml --backend $(BACKEND) --results-dir $(RESULTS)

data: setup  ## download CIFAR-10 (or say how to import it)
	$(HARNESS) data fetch

bench-cpu: setup  ## the research workload on CPU (scenarios/cpu.yaml), then the report
	$(HARNESS) data fetch
	$(HARNESS) run scenarios/cpu.yaml --backend $(BACKEND) --results-dir $(RESULTS)

bench-gpu: setup  ## the research workload on GPU (scenarios/gpu.yaml), then the report
	$(HARNESS) data fetch
	$(HARNESS) run scenarios/gpu.yaml --backend $(BACKEND) --results-dir $(RESULTS)

report: setup  ## report over every session in results/
	$(HARNESS) report $(RESULTS)

clean-venv:  ## remove .venv
	rm -rf $(VENV)
