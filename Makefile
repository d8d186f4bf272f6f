# bvp: `make train` runs the default job, `make test` runs the tests; both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SHARED_DATA ?= ../shared/data
ARGS ?=

.PHONY: install train test lint tensorboard data clean

install: $(STAMP)

# re-runs only when the package's dependencies or the pinned versions change
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# copy the offline MNIST files (if this machine has them) into ./data, where torchvision extracts them
data:
	@if [ ! -d data/MNIST/raw ] && [ -d $(SHARED_DATA)/MNIST/raw ]; then \
		mkdir -p data/MNIST && cp -r $(SHARED_DATA)/MNIST/raw data/MNIST/ && chmod -R u+w data/MNIST; \
		echo "copied MNIST from $(SHARED_DATA) into data/"; fi

train: install data
	$(PY) train.py $(ARGS)

test: install
	$(PY) -m pytest -q $(ARGS)

lint: install
	$(VENV)/bin/ruff check bvp tests train.py
	$(VENV)/bin/ruff format --check bvp tests train.py

tensorboard: install
	$(VENV)/bin/tensorboard --logdir outputs

clean:
	rm -rf $(VENV) outputs/runs outputs/multirun
