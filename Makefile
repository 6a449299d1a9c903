# deid-pipeline: `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
KEY    := .keys/sample.key
OUT    := out
N      ?= 2000
SECONDS ?= 60
REFERENCE ?= ../shared/reference

.PHONY: help install system-deps run test lint fuzz wheel-smoke bench profiles samples clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) system-deps  ## create .venv and install the package, its test tools and system packages

# Debian packages the pipeline and its tests use: tesseract (OCR of burned-in text),
# chromium (the HTML report is opened in a headless browser by the tests), xmllint from
# libxml2-utils (the tests validate the audit message against the PS3.15 A.5.1 RELAX NG schema)
# and dicom3tools (its dciodvfy checks that outputs keep the IOD conformance of their inputs);
# orthanc with orthanc-dicomweb is the DICOMweb server the source tests start (tests/servers.py).
system-deps:  ## install the Debian packages (tesseract-ocr, chromium, libxml2-utils, dicom3tools, orthanc, orthanc-dicomweb) when missing
	@missing=""; \
	command -v tesseract >/dev/null 2>&1 || missing="$$missing tesseract-ocr"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v xmllint >/dev/null 2>&1 || missing="$$missing libxml2-utils"; \
	command -v dciodvfy >/dev/null 2>&1 || missing="$$missing dicom3tools"; \
	dpkg -s orthanc >/dev/null 2>&1 || missing="$$missing orthanc"; \
	dpkg -s orthanc-dicomweb >/dev/null 2>&1 || missing="$$missing orthanc-dicomweb"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; \
		else echo "please install the Debian packages:$$missing"; exit 1; fi; \
		echo "installing$$missing"; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(KEY): | $(STAMP)
	$(BIN)/deid-pipeline keygen $(KEY)

run: install $(KEY)  ## de-identify sample_data/archive on a local Dask cluster, verify the release, score it
	rm -rf $(OUT)
	@mkdir -p $(OUT)
	$(BIN)/deid-pipeline run sample_data/archive --output $(OUT)/release --key-file $(KEY) \
		--mapping-dir $(OUT)/mapping --workers 2 --quiet --clean-pixels ocr; rc=$$?; \
		if [ $$rc -gt 1 ]; then exit $$rc; fi  # 1: the bad inputs and PDFs are quarantined, as they must be
	$(BIN)/deid-pipeline report $(OUT)/release
	$(BIN)/deid-pipeline verify $(OUT)/release --originals sample_data/archive --key-file $(KEY)
	$(BIN)/deid-pipeline score $(OUT)/release --key sample_data/archive_key.json \
		--uid-mapping $(OUT)/mapping/uid_mapping.csv

test: install  ## run the test suite
	$(BIN)/python -m pytest -q

fuzz: install  ## fuzz process_one for SECONDS (default 60; SEED=N repeats a run): every kind, verify catches per rule (expected 0)
	$(BIN)/python -m tests.runner.test_fuzz --seconds $(SECONDS) $(if $(SEED),--seed $(SEED))

wheel-smoke: install  ## build the wheel, install it in a fresh venv outside the checkout, run the samples through it
	BUILD_PYTHON=$(BIN)/python PYTHON=$(PYTHON) .ci/wheel-smoke

lint: install  ## ruff, mypy --strict and the import contracts of pyproject.toml (lint-imports)
	$(BIN)/ruff check pipeline tests profiles sample_data bench
	$(BIN)/mypy pipeline
	$(BIN)/lint-imports

bench: install  ## throughput and memory against baselines (N=2000)
	$(BIN)/python bench/bench.py --files $(N) $(BENCH_ARGS)

profiles: install  ## regenerate pipeline/recipes/*.deid, profiles/table-e1-1.json and pipeline/profile/iod_types.json from the tables in $(REFERENCE)
	$(BIN)/python profiles/generate_recipes.py --reference $(REFERENCE)
	$(BIN)/python profiles/generate_iod_types.py --reference $(REFERENCE)

samples: install  ## regenerate the synthetic archive (N patients into sample_data/generated)
	$(BIN)/python sample_data/generate.py --out sample_data/generated --patients $(N)

clean:  ## remove outputs (keeps .venv and the key)
	rm -rf $(OUT)
