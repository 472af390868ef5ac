# Two commands on a fresh clone: `make demo` and `make test`. Each creates .venv if missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
EXTRAS ?= dev,s3,media,torch,index,progress,ray,jax,hf,av,serve

.PHONY: demo test test-all bench lint venv clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# CPU torch from the local wheel store first; the package only asks for torch>=2.2.
	$(BIN)/python -m pip install -q torch==2.13.0
	# constraints.txt pins a known-good set (pip freeze of a green run): fast, reproducible
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-*; touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m plane.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m ""

bench: $(STAMP)
	$(BIN)/python -m pip install -q pylance
	$(BIN)/python bench/format_bench.py
	$(BIN)/python bench/versioning_bench.py
	$(BIN)/python bench/loader_quick.py
	$(BIN)/python bench/media_decode_bench.py
	# peers installed on demand, never dependencies of the project (Mosaic: /tmp/mosaic-venv)
	$(BIN)/python -m pip install -q -c constraints.txt litdata webdataset lancedb
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python bench/loader_bench.py
	$(BIN)/python bench/ingest_bench.py
	$(BIN)/python bench/query_bench.py
	$(BIN)/python bench/scalar_index_bench.py

lint: $(STAMP)
	$(BIN)/ruff check plane actors jobs configs tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info
