# Two entry points for a fresh machine: `make run` (set up, open the planner app) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch build installed when the venv has none. The default is the CPU wheel these development machines
# keep on disk; on your own machine pick the build for your hardware, e.g. `make run TORCH_SPEC=torch`
# (CUDA on Linux), or install torch into .venv yourself first: an existing torch is never replaced.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup run measure test test-fast lint clean
PORT ?= 8501
# The app listens on this machine only. `make run HOST=0.0.0.0` serves it to the network: anyone who can reach
# the port can then upload files into data/ and run sizings on this machine (there is no login).
HOST ?= 127.0.0.1

$(VENV)/.setup-done: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[measure,app,test]"
	touch $@

setup: $(VENV)/.setup-done

# The tests also start a real LLM engine (transformers serve, the `llm` extra) and a local Ray cluster (the
# `ray` extra); the planner app never needs either.
$(VENV)/.setup-test-extras-done: $(VENV)/.setup-done
	$(PY) -m pip install --quiet -e ".[measure,app,test,llm,ray]"
	touch $@

# The main job: the planner app on the shipped runs, scenarios, profiles and price book.
run: setup
	@[ "$(HOST)" = "127.0.0.1" ] || echo "warning: serving on $(HOST):$(PORT) with no login; anyone who reaches it can upload files and run sizings" >&2
	$(PY) serve.py --server.address $(HOST) --server.port $(PORT) --browser.gatherUsageStats false --server.fileWatcherType none

# A CPU measurement sweep (mlp, fp32 and bf16, batch 1, 4, 16) into data/runs, then the list of runs.
measure: setup
	$(VENV)/bin/fleetwise measure --workload mlp --device cpu --precision fp32,bf16 --batch 1,4,16
	$(VENV)/bin/fleetwise runs data/runs

test: setup $(VENV)/.setup-test-extras-done
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy measure planner fleetwise_cli app.py serve.py pages
	$(VENV)/bin/python -m pytest

# The unit tests alone (no `slow` or `browser` marker): the loop while changing code; `make test` is what CI runs.
test-fast: setup $(VENV)/.setup-test-extras-done
	$(VENV)/bin/python -m pytest -q -m "not slow and not browser"

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy measure planner fleetwise_cli app.py serve.py pages

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
