# bvp: `make train` runs the default job, `make test` runs the tests; both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SHARED_DATA ?= ../shared/data
FASHION_MNIST_DEB ?= /usr/share/datasets/fashion-mnist
ARGS ?=

.PHONY: install train test bench bench-latency report lint tensorboard data clean study study-quick

install: $(STAMP)

# re-runs only when the package's dependencies or the pinned versions change
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# copy the offline MNIST files (if this machine has them) into ./data, where torchvision extracts them, and extract
# Debian's Fashion-MNIST (re-gzipped, so torchvision's md5s fail on the .gz; it takes the extracted files as they are).
# Without the real CIFAR-10 batches, decode the JPEG stand-in (if this machine has it; about a minute) into its own
# folder, never data/cifar-10-batches-py: only dataset.jpeg_stand_in=true reads it (docs/data.md)
STAND_IN := data/cifar10-jpeg-stand-in
data:
	@if [ ! -d data/MNIST/raw ] && [ -d $(SHARED_DATA)/MNIST/raw ]; then \
		mkdir -p data/MNIST && cp -r $(SHARED_DATA)/MNIST/raw data/MNIST/ && chmod -R u+w data/MNIST; \
		echo "copied MNIST from $(SHARED_DATA) into data/"; fi
	@if [ ! -f data/FashionMNIST/raw/train-labels-idx1-ubyte ] && [ -d $(FASHION_MNIST_DEB) ]; then \
		mkdir -p data/FashionMNIST/raw && for f in $(FASHION_MNIST_DEB)/*-ubyte.gz; do \
		out=data/FashionMNIST/raw/$$(basename $$f .gz); gunzip -c $$f > $$out.part && mv $$out.part $$out; done; \
		echo "extracted Fashion-MNIST from $(FASHION_MNIST_DEB) (apt-get install dataset-fashion-mnist) into data/"; fi
	@if [ ! -f data/cifar-10-batches-py/data_batch_1 ] && [ ! -d $(STAND_IN) ] && [ -f $(SHARED_DATA)/cifar10-jpeg/make_batches.py ]; then \
		py=$(PY); [ -x $$py ] || py=$(PYTHON); rm -rf $(STAND_IN).part && \
		$$py $(SHARED_DATA)/cifar10-jpeg/make_batches.py $(STAND_IN).part >/dev/null && mv $(STAND_IN).part $(STAND_IN) && \
		echo "decoded the CIFAR-10 JPEG stand-in (lossy pixels, not CIFAR-10) from $(SHARED_DATA) into $(STAND_IN)/: read it with dataset.jpeg_stand_in=true"; fi

train: install data
	$(PY) train.py $(ARGS)

test: install
	$(PY) -m pytest -q $(ARGS)

# a study (docs/results.md; STUDY=mnist, fashion_mnist, cifar10 or dsprites), seed-major and resumable (re-run to finish
# what is left), then its report
STUDY ?= mnist
study: install data
	$(PY) -m bvp.study $(STUDY) $(ARGS)
	$(VENV)/bin/bvp-report outputs/study/$(STUDY) --out outputs/study/$(STUDY)/report

# the same study's shape on a small budget: 2 + 1 epochs, amounts 0 and 0.95, seeds 0-1 (MNIST: 80 runs, about 40 minutes on 2 cores)
study-quick: install data
	$(PY) -m bvp.study $(STUDY) --quick $(ARGS)
	$(VENV)/bin/bvp-report outputs/study-quick/$(STUDY) --out outputs/study-quick/$(STUDY)/report

# training throughput: the project's path vs a plain PyTorch loop vs the textbook DataLoader path
bench: install
	$(PY) -m bvp.bench $(ARGS)

# what pruning buys at inference: params, MACs, latency and file size, dense vs unstructured vs structured
bench-latency: install
	$(PY) -m bvp.cost_table $(ARGS)

# the study's table and figures from a sweep folder (default: the newest under outputs/multirun)
SWEEP ?= $(shell find outputs/multirun -name multirun.yaml -printf '%T@ %h\n' 2>/dev/null | sort -n | tail -1 | cut -d' ' -f2)
report: install
	@test -n "$(SWEEP)" || { echo "no sweep under outputs/multirun: make report SWEEP=path/to/sweep"; exit 2; }
	$(VENV)/bin/bvp-report $(SWEEP) $(ARGS)

lint: install
	$(VENV)/bin/ruff check bvp tests train.py
	$(VENV)/bin/ruff format --check bvp tests train.py

# the dashboard (HParams, accuracy-vs-sparsity curves) over every run under LOGDIR: a run, a sweep, or all of outputs/
LOGDIR ?= outputs
tensorboard: install
	$(VENV)/bin/tensorboard --logdir $(LOGDIR)

clean:
	rm -rf $(VENV) outputs/runs outputs/multirun
	@echo "kept: the dense-model cache (outputs/dense, or \$$BVP_CACHE_DIR; delete it to train every dense model again) and the rest of outputs/: $$(ls outputs 2>/dev/null | xargs)"
